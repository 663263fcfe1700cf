"""What the Flux rules share: Flux's objects and inventories indexed once, their health, who manages a live
object, and the managedFields evidence of changes made behind Flux's back."""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kubeshape.inventory import (
    FLUX_GROUPS,
    FLUX_HELM_GROUP,
    FLUX_KUSTOMIZE_GROUP,
    FLUX_SOURCE_GROUP,
    Inventory,
    K8sObject,
    builtin_group,
    cluster_key,
)
from kubeshape.rules._common import SYSTEM_NAMESPACES
from kubeshape.timeutil import format_time, human_duration, parse_time

KUSTOMIZATION = cluster_key("Kustomization", FLUX_KUSTOMIZE_GROUP)
HELMRELEASE = cluster_key("HelmRelease", FLUX_HELM_GROUP)
SOURCE_KINDS = ("GitRepository", "OCIRepository", "HelmRepository")
FLUX_KEYS = (*(cluster_key(k, FLUX_SOURCE_GROUP) for k in SOURCE_KINDS), KUSTOMIZATION, HELMRELEASE)
GROUP_OF = {**dict.fromkeys(SOURCE_KINDS, FLUX_SOURCE_GROUP), "Bucket": FLUX_SOURCE_GROUP,
            "HelmChart": FLUX_SOURCE_GROUP, "ExternalArtifact": FLUX_SOURCE_GROUP,
            "Kustomization": FLUX_KUSTOMIZE_GROUP, "HelmRelease": FLUX_HELM_GROUP}
# `flux suspend|resume|reconcile <noun> NAME`
CLI_NOUN = {"GitRepository": "source git", "OCIRepository": "source oci", "HelmRepository": "source helm",
            "Kustomization": "kustomization", "HelmRelease": "helmrelease"}

NAME_LABEL = "kustomize.toolkit.fluxcd.io/name"
NAMESPACE_LABEL = "kustomize.toolkit.fluxcd.io/namespace"
HELM_LABELS = ("helm.toolkit.fluxcd.io/name",)
HELM_RELEASE_ANNOTATION = "meta.helm.sh/release-name"
MANAGED_BY = "app.kubernetes.io/managed-by"

# Field managers of Flux and of Kubernetes itself: their writes are not changes made behind Flux.
FLUX_MANAGERS = frozenset({"kustomize-controller", "helm-controller", "source-controller", "notification-controller",
                           "image-reflector-controller", "image-automation-controller", "flux",
                           "flux-client-side-apply"})

SYSTEM_MANAGERS = frozenset({"kube-controller-manager", "kube-scheduler", "kubelet", "kube-apiserver",
                             "cloud-controller-manager", "kube-proxy", "k3s", "rke2", "cluster-autoscaler"})
# Managers of people's tools (kubectl's sub-commands name theirs ``kubectl-<verb>``).
HUMAN_MANAGERS = re.compile(r"kubectl(-.*)?|before-first-apply|k9s|lens|kubernetes-dashboard|headlamp|oc")
# Fields a person touches without changing what runs: a rollout restart, kubectl's own bookkeeping.
BENIGN_FIELDS = frozenset({'spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]',
                           'metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]',
                           'metadata.annotations["reconcile.fluxcd.io/requestedAt"]'})
# Ready=False reasons that only pass on a failure of what the object depends on (its source, its dependsOn).
BLOCKED_REASONS = frozenset({"ArtifactFailed", "DependencyNotReady", "SourceNotReady"})
MIN_STUCK = timedelta(minutes=5)
SLACK = timedelta(minutes=1)


# -- small readers ----------------------------------------------------------------------------------------------
def is_flux_manager(name: object) -> bool:
    """Flux's controllers and CLI (on their own objects the controllers write as ``gotk-<controller>``)."""
    return isinstance(name, str) and (name in FLUX_MANAGERS or name.startswith("gotk-"))


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: Any) -> timedelta | None:
    """A Go duration as Kubernetes writes it (``10m0s``, ``1h``, ``30s``, ``1.5h``); None when it is not one."""
    if not isinstance(text, str) or not text:
        return None
    total, pos = 0.0, 0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    return timedelta(seconds=total) if pos == len(text) and pos else None


def interval(obj: K8sObject) -> timedelta | None:
    return parse_duration(obj.spec.get("interval"))


def condition(obj: K8sObject, kind: str) -> dict[str, Any] | None:
    for c in obj.status.get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == kind:
            return c
    return None


def revision_sha(revision: Any) -> str:
    """The commit or digest of a Flux revision: ``main@sha1:abc…`` and older ``main/abc…`` → ``abc…``."""
    text = str(revision or "")
    if "@" in text:
        text = text.rpartition("@")[2]
    if ":" in text:
        return text.partition(":")[2]
    return text.rpartition("/")[2]


def short(revision: Any) -> str:
    """``main@sha1:0123456789ab…`` → ``main@sha1:0123456`` (revisions are long and repeated in evidence)."""
    text = str(revision or "")
    sha = revision_sha(text)
    return text[: len(text) - len(sha) + 7] if len(sha) > 12 and text.endswith(sha) else text


def ago(now: datetime, when: datetime | None) -> str:
    return f"{format_time(when)} ({human_duration(now - when)} ago)" if when else "an unknown time"


def flux_name(obj: K8sObject) -> str:
    """``Kustomization flux-system/apps`` (the kind alone: Flux's objects are identified by group in refs)."""
    return f"{obj.kind} {obj.namespace}/{obj.name}"


def cli(verb: str, obj: K8sObject, extra: str = "") -> str:
    """``flux <verb> kustomization NAME -n NS`` for ``obj``."""
    return f"flux {verb} {CLI_NOUN.get(obj.kind, obj.kind.lower())} {obj.name} -n {obj.namespace}{extra}"


def kubectl_resource(obj: K8sObject) -> str:
    """How kubectl names the kind: ``deployment``, ``servicemonitor.monitoring.coreos.com``."""
    return obj.kind.lower() if builtin_group(obj.group) else f"{obj.kind.lower()}.{obj.group}"


def managers(obj: K8sObject) -> list[dict[str, Any]]:
    return [m for m in obj.metadata.get("managedFields") or [] if isinstance(m, dict)]


def is_flux(obj: K8sObject) -> bool:
    return obj.group in FLUX_GROUPS or obj.group.endswith(".toolkit.fluxcd.io")


# -- the index --------------------------------------------------------------------------------------------------
def ref_key(kind: str, name: str, namespace: str) -> tuple[str, str, str]:
    """The inventory key of a Flux object reference (``sourceRef``, ``dependsOn``)."""
    group = GROUP_OF.get(kind, "")
    return (f"{kind}.{group}" if group else kind, namespace, name)


def entry_key(entry_id: str) -> tuple[str, str, str] | None:
    """An inventory entry id ``<namespace>_<name>_<group>_<Kind>`` as an object key (kind qualified by group)."""
    parts = entry_id.split("_")
    if len(parts) != 4 or not parts[1] or not parts[3]:
        return None
    ns, name, group, kind = parts
    return (kind if builtin_group(group) else f"{kind}.{group}", ns, name)


@dataclass(slots=True)
class FluxIndex:
    """Flux's objects and what their inventories hold."""

    objects: dict[tuple[str, str, str], K8sObject] = field(default_factory=dict)
    kustomizations: list[K8sObject] = field(default_factory=list)
    owners: dict[tuple[str, str, str], K8sObject] = field(default_factory=dict)  # applied object -> Kustomization
    namespaces: dict[str, list[K8sObject]] = field(default_factory=lambda: defaultdict(list))
    listed: bool = False  # Kustomizations were listed: an inventory that does not hold an object means something
    dependents: dict[tuple[str, str, str], list[K8sObject]] = field(default_factory=lambda: defaultdict(list))

    def get(self, key: tuple[str, str, str] | None) -> K8sObject | None:
        return self.objects.get(key) if key else None

    def source_of(self, obj: K8sObject) -> K8sObject | None:
        key = source_key(obj)
        return self.objects.get(key) if key else None


def source_key(obj: K8sObject) -> tuple[str, str, str] | None:
    """The source a Kustomization or HelmRelease reads (``sourceRef``, ``chart.spec.sourceRef``, ``chartRef``)."""
    spec = obj.spec
    ref = spec.get("sourceRef") or ((spec.get("chart") or {}).get("spec") or {}).get("sourceRef") \
        or spec.get("chartRef")
    if not isinstance(ref, dict) or not ref.get("kind") or not ref.get("name"):
        return None
    return ref_key(str(ref["kind"]), str(ref["name"]), str(ref.get("namespace") or obj.namespace))


def depends_keys(obj: K8sObject) -> list[tuple[str, str, str]]:
    return [ref_key(obj.kind, str(d["name"]), str(d.get("namespace") or obj.namespace))
            for d in obj.spec.get("dependsOn") or [] if isinstance(d, dict) and d.get("name")]


def flux_index(inv: Inventory) -> FluxIndex:
    """The index, built once per inventory."""
    return inv.memo("flux.index", lambda: _build(inv))


def _build(inv: Inventory) -> FluxIndex:
    idx = FluxIndex(listed=inv.listed(KUSTOMIZATION))
    for key in FLUX_KEYS:
        for obj in inv.live(key):
            idx.objects[obj.key] = obj
    for obj in idx.objects.values():
        for dep in [source_key(obj), *depends_keys(obj)]:
            if dep is not None:
                idx.dependents[dep].append(obj)
    idx.kustomizations = sorted(inv.live(KUSTOMIZATION), key=lambda o: o.key)
    for ks in idx.kustomizations:
        target = str(ks.spec.get("targetNamespace") or "")
        if target:
            idx.namespaces[target].append(ks)
        for entry in (ks.status.get("inventory") or {}).get("entries") or []:
            held = entry_key(str(entry.get("id") or "")) if isinstance(entry, dict) else None
            if held is None:
                continue
            idx.owners.setdefault(held, ks)
            if held[1] and ks not in idx.namespaces[held[1]]:
                idx.namespaces[held[1]].append(ks)
    return idx


def managing_kustomization(inv: Inventory, obj: K8sObject) -> tuple[str, str, K8sObject | None] | None:
    """(namespace, name, the Kustomization when listed) that applies ``obj``: its labels, else an inventory."""
    idx = flux_index(inv)
    labels = obj.labels
    name, ns = labels.get(NAME_LABEL), labels.get(NAMESPACE_LABEL)
    if name and ns:
        return ns, name, idx.objects.get((KUSTOMIZATION, ns, name))
    if not idx.owners:
        return None
    owner = idx.owners.get(obj.key)
    return (owner.namespace, owner.name, owner) if owner is not None else None


def managed_namespaces(inv: Inventory) -> dict[str, list[K8sObject]]:
    """Namespaces Flux applies into (inventories, ``targetNamespace``) → their Kustomizations; the system's own
    namespaces excepted."""
    return {ns: kss for ns, kss in flux_index(inv).namespaces.items() if ns not in SYSTEM_NAMESPACES}


def applied_by_flux(inv: Inventory, obj: K8sObject) -> bool:
    """Applied by a Kustomization (its labels or an inventory) or installed by a HelmRelease (its labels)."""
    return managing_kustomization(inv, obj) is not None or any(label in obj.labels for label in HELM_LABELS)


def flux_covers(inv: Inventory, obj: K8sObject) -> bool:
    """True when a Flux rule speaks for this live object: Flux applies it (KS211 reports changes to it,
    KS206/KS208 why it lags), or it is in a namespace Flux manages (KS210 reports it when Flux does not)."""
    return applied_by_flux(inv, obj) or (flux_index(inv).listed and obj.namespace in managed_namespaces(inv))


def helm_managed(obj: K8sObject) -> bool:
    """Installed by Helm (a HelmRelease, or the helm CLI)."""
    return (obj.labels.get(MANAGED_BY) == "Helm" or HELM_RELEASE_ANNOTATION in obj.annotations
            or any(label in obj.labels for label in HELM_LABELS))


# -- health -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Health:
    """Why a Flux object is not doing its job: its condition, reason, message and since when."""

    condition: str  # "Ready=False", "Stalled", "Ready=Unknown", "no status"
    reason: str
    message: str
    since: datetime | None


def health(obj: K8sObject, now: datetime) -> Health | None:
    """Not None when ``obj`` fails: Stalled, Ready=False, Ready=Unknown for longer than two intervals (at least
    five minutes), or never reconciled for as long. A suspended object is not judged (KS207 says it)."""
    if obj.spec.get("suspend") is True:
        return None
    if obj.kind == "HelmRepository" and obj.spec.get("type") == "oci":
        return None  # static since Flux 2.3: source-controller gives it no status
    stalled = condition(obj, "Stalled")
    ready = condition(obj, "Ready")
    if stalled is not None and stalled.get("status") == "True":
        if ready is not None and ready.get("status") == "False" and ready.get("message"):
            # helm-controller stalls with "RetriesExceeded: Failed to upgrade after 1 attempt(s)"; the cause
            # (Helm's own error) is in Ready's reason and message
            cause = _health(f"Ready=False, Stalled {stalled.get('reason') or ''}".strip(), ready)
            extra = str(stalled.get("message") or "").strip()
            message = f"{cause.message}\n{extra}" if extra and extra not in cause.message else cause.message
            return Health(cause.condition, cause.reason, message, cause.since)
        return _health("Stalled", stalled)
    if ready is not None and ready.get("status") == "False":
        return _health("Ready=False", ready)
    patience = max(2 * (interval(obj) or timedelta()), MIN_STUCK)
    if ready is not None and ready.get("status") == "Unknown":
        since = parse_time(ready.get("lastTransitionTime"))
        if since is not None and now - since > patience:
            return _health("Ready=Unknown", ready)
        return None
    if ready is None:
        created = parse_time(obj.metadata.get("creationTimestamp"))
        if created is not None and now - created > patience:
            return Health("no status", "NotReconciled", f"no {obj.kind} controller has reconciled it since it was "
                          f"created {human_duration(now - created)} ago", created)
    return None


def _health(what: str, cond: dict[str, Any]) -> Health:
    return Health(what, str(cond.get("reason") or ""), str(cond.get("message") or "").strip(),
                  parse_time(cond.get("lastTransitionTime")))


# -- managedFields ----------------------------------------------------------------------------------------------
Segment = str | dict[str, Any] | int | None  # field name, list-map key, list index, set member
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_path(path: str) -> list[Segment]:
    """Segments of a compact field path (``spec.containers[{"name":"app"}].image``, see ``field_paths``)."""
    out: list[Segment] = []
    decoder = json.JSONDecoder()
    i = 0
    while i < len(path):
        ch = path[i]
        if ch == ".":
            i += 1
            continue
        if ch == "[":
            if path.startswith("[*]", i):
                out.append(None)
                i += 3
                continue
            try:
                value, end = decoder.raw_decode(path, i + 1)
            except json.JSONDecodeError:
                return out
            out.append(value if isinstance(value, str | dict | int) else None)
            i = end + 1  # past "]"
            continue
        m = _NAME.match(path, i)
        if m is None:
            return out
        out.append(m.group())
        i = m.end()
    return out


def pretty(path: str) -> str:
    """A compact field path for people: ``spec.template.spec.containers[name=app].image``."""
    text = ""
    for seg in parse_path(path):
        if isinstance(seg, str):
            plain = _NAME.fullmatch(seg)
            text += (f".{seg}" if text else seg) if plain else f"[{seg}]"
        elif isinstance(seg, dict):
            text += "[" + ",".join(f"{k}={v}" for k, v in seg.items()) + "]"
        elif isinstance(seg, int):
            text += f"[{seg}]"
        else:
            text += "[*]"
    return text


def resolve(raw: Any, path: str) -> tuple[str, Any] | None:
    """Where ``path`` is in the object ``raw``, as the line index names it (``spec.containers[0].image``), and
    the value there; None when ``raw`` does not hold it."""
    node, where = raw, ""
    for seg in parse_path(path):
        if isinstance(seg, str):
            if not isinstance(node, dict) or seg not in node:
                return None
            node, where = node[seg], f"{where}.{seg}" if where else seg
        elif isinstance(seg, dict | int):
            if not isinstance(node, list):
                return None
            index = seg if isinstance(seg, int) else next(
                (i for i, item in enumerate(node) if isinstance(item, dict)
                 and all(str(item.get(k)) == str(v) for k, v in seg.items())), None)
            if index is None or not 0 <= index < len(node):
                return None
            node, where = node[index], f"{where}[{index}]"
        else:
            return None
    return where, node


@dataclass(frozen=True, slots=True)
class Change:
    """One managedFields ``Update`` of an object by a manager that is not Flux's or Kubernetes'."""

    manager: str
    time: datetime | None
    fields: tuple[str, ...]  # compact paths; empty when the bundle did not record them
    truncated: int


def foreign_changes(obj: K8sObject) -> list[Change]:
    """Updates of ``obj`` by other managers than Flux and Kubernetes, made after Flux last applied it (when both
    times are known), that own a field which changes what runs (a rollout restart does not count)."""
    entries = managers(obj)
    flux_times = [t for m in entries if is_flux_manager(m.get("manager")) and (t := parse_time(m.get("time")))]
    applied = max(flux_times) if flux_times else None
    out: list[Change] = []
    for m in entries:
        name = str(m.get("manager") or "")
        if m.get("operation") != "Update" or m.get("subresource") or not name:
            continue
        if is_flux_manager(name) or name in SYSTEM_MANAGERS:
            continue
        when = parse_time(m.get("time"))
        if applied is not None and when is not None and when <= applied:
            continue  # Flux applied the object since: what it sets is back, the rest is not its to judge
        paths = tuple(p for p in m.get("fields") or [] if isinstance(p, str) and p not in BENIGN_FIELDS)
        truncated = int(m.get("fieldsTruncated") or 0)
        unknown = not m.get("fields") and name.startswith("kubectl") and name != "kubectl-rollout"
        if not paths and not truncated and not unknown:
            continue  # only benign fields; or a snapshot without field paths and no sign of a person
        out.append(Change(name, when, paths, truncated))
    return out


def suspended_by(obj: K8sObject) -> tuple[str, datetime | None] | None:
    """The manager and time of the Update that set ``spec.suspend``, when managedFields record it."""
    for m in managers(obj):
        if "spec.suspend" in (m.get("fields") or []):
            return str(m.get("manager") or "?"), parse_time(m.get("time"))
    return None


# -- the repository ---------------------------------------------------------------------------------------------
def git_relative(inv: Inventory, file: str) -> str:
    """``file`` (relative to the loaded repository) relative to the git work tree Flux checks out."""
    if inv.repo is None or inv.git is None:
        return file
    full = os.path.normpath(os.path.join(inv.repo.root, file))
    rel = os.path.relpath(full, inv.git.root)
    return file if rel.startswith("..") else rel.replace(os.sep, "/")


def normal_dir(directory: str) -> str:
    """A Kustomization ``spec.path`` as a relative directory: ``./apps/`` → ``apps``, ``./`` → ``.``."""
    return os.path.normpath(directory.lstrip("/").removeprefix("./") or ".").replace(os.sep, "/")


def under(path: str, directory: str) -> bool:
    directory = normal_dir(directory)
    return directory == "." or path == directory or path.startswith(directory + "/")


def repo_definition(inv: Inventory, live: K8sObject, ks: K8sObject | None, ks_ref: tuple[str, str]) -> \
        K8sObject | None:
    """The repository's definition of a Flux-applied object: the one the Kustomization renders, or one of the
    same kind and name in a file under the Kustomization's path, in the object's namespace (or in none, or in
    any when the Kustomization's ``targetNamespace`` sets it)."""
    if inv.repo is None:
        return None
    root = f"Flux Kustomization {ks_ref[0]}/{ks_ref[1]}"
    same = inv.repo_by_key.get(live.key, [])
    chosen = next((o for o in same if o.root == root), None) or (same[0] if len(same) == 1 else None)
    if chosen is not None or ks is None:
        return chosen
    path = str(ks.spec.get("path") or ".")
    retargeted = ks.spec.get("targetNamespace") == live.namespace
    by_name = inv.memo("flux.repo_by_name", lambda: _repo_by_name(inv))
    for o in by_name.get((live.qualified_kind, live.name), []):
        declared = (o.raw.get("metadata") or {}).get("namespace")
        if (retargeted or declared in (None, "", live.namespace)) and o.file \
                and under(git_relative(inv, o.file), path):
            return o
    return None


def _repo_by_name(inv: Inventory) -> dict[tuple[str, str], list[K8sObject]]:
    out: dict[tuple[str, str], list[K8sObject]] = defaultdict(list)
    for o in inv.repo_objects:
        out[(o.qualified_kind, o.name)].append(o)
    return out


_SCP = re.compile(r"^(?:[\w.-]+@)?([\w.-]+):(?!//)(.+)$")


def normalize_url(url: str) -> str:
    """A git URL as host/path, so that ``https://github.com/o/r.git``, ``ssh://git@github.com/o/r`` and
    ``git@github.com:o/r.git`` compare equal."""
    text = url.strip()
    m = _SCP.match(text)
    if m and "://" not in text:
        host, path = m.group(1), m.group(2)
    else:
        rest = text.split("://", 1)[-1]
        host, _, path = rest.partition("/")
        host = host.rpartition("@")[2]
        for default in (":443", ":22", ":80"):
            host = host.removesuffix(default)
    return f"{host.lower()}/{path.strip('/').removesuffix('.git')}"


def checkout_branch(inv: Inventory, repo: K8sObject) -> tuple[str, str, int] | None:
    """(ref, commit, committer time) of the branch a GitRepository follows, as the loaded checkout knows it —
    only when the checkout's remote is that GitRepository's URL; the remote-tracking ref (what was pushed)
    wins over the local branch."""
    git = inv.git
    branch = (repo.spec.get("ref") or {}).get("branch")
    url = repo.spec.get("url")
    if git is None or not branch or not isinstance(url, str):
        return None
    want = normalize_url(url)
    for remote, remote_url in sorted(git.remotes.items()):
        if normalize_url(remote_url) != want:
            continue
        for ref in (f"{remote}/{branch}", str(branch)):
            if ref in git.branches:
                sha, when = git.branches[ref]
                return ref, sha, when
    return None
