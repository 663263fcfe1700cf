"""Which definition of each object wins, which workloads are one service, and what belongs to each service.

Only objects applied as plain files (``kubectl apply -f``) take part; whatever kustomize, Flux, Argo CD or Helm
renders is left alone, and a definition of the same object that a Flux or Argo CD tree deploys wins over the
plain copies.

* Several definitions of one object: the one closest to the live object when a cluster was read (its fields
  are then set to what runs), else the most recently committed file; ``--prefer FILE`` overrides both.
* Variants (workloads in one namespace running the same image under names with a common prefix, as rule
  KS202 finds them) are one service named after that prefix. The variants that run in the cluster are kept
  (without a cluster: the most recently committed one); the others go, with the objects only they use.
* Other objects follow the workload that uses them: a Service or PodDisruptionBudget selecting its pods, an
  autoscaler scaling it, ConfigMaps, Secrets, a ServiceAccount and volume claims it names, RBAC bound to that
  account, an Ingress routing to the Service. Objects nothing uses stay with the workloads of their file, or
  form a service named after the file.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubeshape.imageref import parse_or_none
from kubeshape.inventory import K8sObject, containers, pod_spec, pod_template_labels, selector_matches
from kubeshape.scaffold.gitops.overlay import FieldChange, differences, distance
from kubeshape.scaffold.gitops.sourcefiles import Doc, SourceFile
from kubeshape.sources.flux import ARGO_GROUP

Key = tuple[str, str, str]
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "CronJob", "Job", "ReplicaSet", "Pod")
# Kinds whose whole spec the cluster source reads (ConfigMaps: metadata only; Jobs: their template is immutable).
LIVE_CONTENT = ("Deployment", "StatefulSet", "DaemonSet", "CronJob", "Service", "HorizontalPodAutoscaler",
                "PodDisruptionBudget")
CLUSTER_DIR = "_cluster"  # where services of cluster-scoped objects only go (no namespace is named so)
PLAIN = "plain files"


@dataclass(slots=True)
class Definition:
    """One definition of an object: the object as read and the document that holds it."""

    obj: K8sObject
    doc: Doc

    @property
    def file(self) -> str:
        return self.doc.file

    @property
    def where(self) -> str:
        return f"{self.doc.file}:{self.doc.line}"


@dataclass(slots=True)
class Choice:
    """The definitions of one object and which one is kept."""

    key: Key
    defs: list[Definition]
    kept: Definition | None = None  # None: a definition that is left alone wins, or the object goes
    reason: str = ""
    dropped: list[tuple[Definition, list[FieldChange]]] = field(default_factory=list)
    live: K8sObject | None = None


@dataclass(slots=True)
class Service:
    """One service: a directory of its own with the objects it is made of."""

    namespace: str  # the directory under the apps path (CLUSTER_DIR for cluster-scoped objects only)
    name: str
    keys: list[Key] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(slots=True)
class World:
    """What the decisions are made from."""

    objects: list[K8sObject]  # everything the repository renders, with provenance
    files: dict[str, SourceFile]  # the plain files, by path relative to the repository root
    live: dict[Key, K8sObject] | None  # None: no cluster was read
    listed: set[str] = field(default_factory=set)  # kinds the cluster source listed
    times: dict[str, int] = field(default_factory=dict)  # last commit per file (absent: not committed)
    prefer: set[str] = field(default_factory=set)
    keep_variants: bool = False


@dataclass(slots=True)
class Grouping:
    choices: dict[Key, Choice]
    services: list[Service]
    service_of: dict[Key, Service]
    gone: dict[Key, str]  # objects that leave the repository altogether, and why
    variants: list[str]  # what was decided about variants, for the plan
    candidates: list[Definition]


def is_candidate(obj: K8sObject) -> bool:
    """An object applied as a plain file that ``init gitops`` moves: not a Flux or Argo CD object."""
    return (obj.root == PLAIN and not obj.group.endswith(".fluxcd.io") and obj.group != ARGO_GROUP
            and "${" not in obj.name and "${" not in obj.namespace and bool(obj.kind) and bool(obj.name))


def _when(stamp: int | None) -> str:
    if stamp is None:
        return "not committed"
    return "last committed " + datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _recency(d: Definition, times: dict[str, int]) -> float:
    return times.get(d.file, math.inf)  # an uncommitted file is the newest


def _newest(defs: list[Definition], times: dict[str, int]) -> tuple[Definition, str]:
    ordered = sorted(defs, key=lambda d: (-_recency(d, times), d.file, d.doc.line))
    best = ordered[0]
    tied = [d for d in ordered if _recency(d, times) == _recency(best, times)]
    if len(tied) > 1:
        return best, (f"{len(tied)} definitions {_when(times.get(best.file))} together: the first by path is kept "
                      "-- pass --prefer FILE to keep another")
    return best, f"the most recently committed ({_when(times.get(best.file))})"


def _live_note(world: World, kind: str, live: K8sObject | None) -> str:
    if world.live is None:
        return "no cluster was read"
    if kind not in world.listed:
        return f"the cluster's {kind} objects were not read"
    if live is None:
        return "not in the cluster"
    return f"the cluster's {kind} content is not read"


def _choose(world: World, key: Key, defs: list[Definition], elsewhere: list[K8sObject]) -> Choice:
    kind = key[0]
    live = world.live.get(key) if world.live is not None else None
    choice = Choice(key=key, defs=defs, live=live)
    deployed = [o for o in elsewhere if o.target.startswith(("flux:", "argo:"))]
    if deployed:
        other = deployed[0]
        choice.reason = f"already defined in {other.file}:{other.line}, which {other.root} deploys (left alone)"
        choice.dropped = [(d, []) for d in defs]
        return choice
    preferred = [d for d in defs if d.file in world.prefer]
    if len(preferred) == 1:
        kept, reason = preferred[0], "chosen with --prefer"
    elif live is not None and kind in LIVE_CONTENT and len(defs) > 1:
        scores = [distance(d.doc.data, live.raw, kind) for d in defs]
        best = min(scores)
        tied = [d for d, s in zip(defs, scores, strict=True) if s == best]
        kept, why = _newest(tied, world.times) if len(tied) > 1 else (tied[0], "")
        reason = ("the same as the live object" if best == 0 else
                  f"the closest to the live object ({best} field{'s differ' if best != 1 else ' differs'})")
        if len(tied) > 1:
            reason += f"; of {len(tied)} as close: {why}"
    elif len(defs) > 1:
        kept, reason = _newest(defs, world.times)
        reason += f" ({_live_note(world, kind, live)})"
    else:
        kept, reason = defs[0], ""
    choice.kept = kept
    choice.reason = reason
    choice.dropped = [(d, differences(kept.doc.data, d.doc.data)) for d in defs if d is not kept]
    return choice


# -- references ------------------------------------------------------------------------------------------------


def _named(obj: K8sObject) -> set[tuple[str, str]]:
    """(kind, name) of the ConfigMaps, Secrets, ServiceAccount and claims a workload's pods use."""
    spec = pod_spec(obj) or {}
    out: set[tuple[str, str]] = set()
    if spec.get("serviceAccountName") or spec.get("serviceAccount"):
        out.add(("ServiceAccount", str(spec.get("serviceAccountName") or spec.get("serviceAccount"))))
    for s in spec.get("imagePullSecrets") or []:
        if isinstance(s, dict) and s.get("name"):
            out.add(("Secret", str(s["name"])))
    for v in spec.get("volumes") or []:
        if not isinstance(v, dict):
            continue
        if isinstance(v.get("configMap"), dict):
            out.add(("ConfigMap", str(v["configMap"].get("name"))))
        if isinstance(v.get("secret"), dict):
            out.add(("Secret", str(v["secret"].get("secretName"))))
        if isinstance(v.get("persistentVolumeClaim"), dict):
            out.add(("PersistentVolumeClaim", str(v["persistentVolumeClaim"].get("claimName"))))
        for src in (v.get("projected") or {}).get("sources") or [] if isinstance(v.get("projected"), dict) else []:
            if isinstance(src, dict):
                for kind, ref in (("ConfigMap", src.get("configMap")), ("Secret", src.get("secret"))):
                    if isinstance(ref, dict) and ref.get("name"):
                        out.add((kind, str(ref["name"])))
    for c in containers(obj):
        for ef in c.spec.get("envFrom") or []:
            if isinstance(ef, dict):
                for kind, ref in (("ConfigMap", ef.get("configMapRef")), ("Secret", ef.get("secretRef"))):
                    if isinstance(ref, dict) and ref.get("name"):
                        out.add((kind, str(ref["name"])))
        for env in c.spec.get("env") or []:
            vf = env.get("valueFrom") if isinstance(env, dict) else None
            if isinstance(vf, dict):
                for kind, ref in (("ConfigMap", vf.get("configMapKeyRef")), ("Secret", vf.get("secretKeyRef"))):
                    if isinstance(ref, dict) and ref.get("name"):
                        out.add((kind, str(ref["name"])))
    if obj.kind == "StatefulSet":
        for t in obj.spec.get("volumeClaimTemplates") or []:
            name = (t.get("metadata") or {}).get("name") if isinstance(t, dict) else None
            if name:
                out.add(("PersistentVolumeClaim", f"{name}-{obj.name}"))
    return out


def _uses(workload: K8sObject, other: K8sObject) -> bool:
    """``other`` belongs with ``workload``: it selects, scales or is named by it."""
    if other.namespace != workload.namespace and other.namespace:
        return False
    if (other.kind, other.name) in _named(workload):
        return True
    labels = pod_template_labels(workload)
    spec = other.spec
    if other.kind == "Service":
        selector = spec.get("selector")
        return isinstance(selector, dict) and bool(selector) and selector_matches(selector, labels)
    if other.kind in ("PodDisruptionBudget", "NetworkPolicy"):
        selector = spec.get("selector") if other.kind == "PodDisruptionBudget" else spec.get("podSelector")
        return isinstance(selector, dict) and bool(selector.get("matchLabels") or selector.get("matchExpressions")) \
            and selector_matches(selector, labels)
    target = spec.get("scaleTargetRef") if other.kind == "HorizontalPodAutoscaler" else spec.get("targetRef")
    if other.kind in ("HorizontalPodAutoscaler", "VerticalPodAutoscaler") and isinstance(target, dict):
        return target.get("kind") == workload.kind and target.get("name") == workload.name
    return False


def _backends(spec: dict[str, Any]) -> set[str]:
    """Service names an Ingress routes to."""
    out: set[str] = set()
    default = spec.get("defaultBackend") or {}
    if isinstance(default, dict) and isinstance(default.get("service"), dict):
        out.add(str(default["service"].get("name")))
    for rule in spec.get("rules") or []:
        paths = ((rule.get("http") or {}).get("paths") or []) if isinstance(rule, dict) else []
        for p in paths:
            backend = p.get("backend") if isinstance(p, dict) else None
            if isinstance(backend, dict):
                if isinstance(backend.get("service"), dict):
                    out.add(str(backend["service"].get("name")))
                elif backend.get("serviceName"):
                    out.add(str(backend["serviceName"]))
    return out


def _follows(obj: K8sObject, anchor: K8sObject) -> bool:
    """Second-hand links: an Ingress to its Service, RBAC bindings to their account, roles to their binding."""
    if obj.kind == "Ingress" and anchor.kind == "Service" and obj.namespace == anchor.namespace:
        return anchor.name in _backends(obj.spec)
    if obj.kind in ("RoleBinding", "ClusterRoleBinding") and anchor.kind == "ServiceAccount":
        return any(isinstance(s, dict) and s.get("kind") == "ServiceAccount" and s.get("name") == anchor.name
                   and (s.get("namespace") or obj.namespace) == anchor.namespace
                   for s in obj.raw.get("subjects") or [])
    if obj.kind in ("Role", "ClusterRole") and anchor.kind in ("RoleBinding", "ClusterRoleBinding"):
        ref = anchor.raw.get("roleRef") or {}
        return isinstance(ref, dict) and ref.get("kind") == obj.kind and ref.get("name") == obj.name \
            and (obj.kind == "ClusterRole" or obj.namespace == anchor.namespace)
    return False


# -- variants ---------------------------------------------------------------------------------------------


def _prefix(names: list[str]) -> str:
    out: list[str] = []
    for parts in zip(*(n.split("-") for n in names), strict=False):
        if len(set(parts)) != 1:
            break
        out.append(parts[0])
    return "-".join(out)


class _Union:
    def __init__(self) -> None:
        self.parent: dict[Key, Key] = {}

    def find(self, k: Key) -> Key:
        self.parent.setdefault(k, k)
        while self.parent[k] != k:
            self.parent[k] = self.parent[self.parent[k]]
            k = self.parent[k]
        return k

    def join(self, a: Key, b: Key) -> None:
        self.parent[self.find(a)] = self.find(b)


def _variant_groups(workloads: dict[Key, Definition]) -> list[list[Key]]:
    """Workloads that rule KS202 reports as one service: same namespace and image, a common name prefix."""
    by_image: dict[tuple[str, str], dict[str, Key]] = defaultdict(dict)
    for key, d in sorted(workloads.items()):
        for c in containers(d.obj):
            ref = parse_or_none(c.image)
            if ref is not None and not c.init:
                by_image[(d.obj.namespace, ref.path)].setdefault(d.obj.name, key)
    union = _Union()
    for by_name in by_image.values():
        if len(by_name) > 1 and _prefix(sorted(by_name)):
            keys = list(by_name.values())
            for k in keys[1:]:
                union.join(keys[0], k)
    comps: dict[Key, list[Key]] = defaultdict(list)
    for key in workloads:
        comps[union.find(key)].append(key)
    return [sorted(c) for c in comps.values()]


def _slug(text: str) -> str:
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-") or "manifests"


# -- all together -----------------------------------------------------------------------------------------


def group(world: World) -> Grouping:
    """Decide, for every object applied as a plain file, whether it stays, where, and what goes."""
    docs_at = {(src.rel, d.line): d for src in world.files.values() for d in src.docs}
    defs: dict[Key, list[Definition]] = defaultdict(list)
    elsewhere: dict[Key, list[K8sObject]] = defaultdict(list)
    candidates: list[Definition] = []
    for obj in world.objects:
        if is_candidate(obj):
            doc = docs_at.get((obj.file or "", obj.line or 0))
            if doc is not None:
                d = Definition(obj, doc)
                defs[obj.key].append(d)
                candidates.append(d)
        elif obj.root != PLAIN:
            elsewhere[obj.key].append(obj)
    choices = {key: _choose(world, key, ds, elsewhere.get(key, [])) for key, ds in sorted(defs.items())}
    gone: dict[Key, str] = {key: c.reason for key, c in choices.items() if c.kept is None}
    kept = {key: c.kept for key, c in choices.items() if c.kept is not None}

    workloads = {k: d for k, d in kept.items() if d.obj.kind in WORKLOAD_KINDS and d.obj.builtin}
    services: dict[tuple[str, str], Service] = {}
    service_of: dict[Key, Service] = {}
    notes: list[str] = []

    def service(namespace: str, name: str) -> Service:
        return services.setdefault((namespace, name), Service(namespace, name))

    for comp in _variant_groups(workloads):
        names = sorted({workloads[k].obj.name for k in comp})
        staying, mode = _variants_kept(world, comp, workloads, notes) if len(names) > 1 else (comp, "")
        name = _prefix(names) if len(names) > 1 else names[0]
        svc = service(workloads[comp[0]].obj.namespace, name or workloads[staying[0]].obj.name)
        for k in comp:
            if k in staying:
                svc.keys.append(k)
                service_of[k] = svc
            else:
                gone[k] = (f"a variant of {', '.join(workloads[s].obj.name for s in staying)} (same image "
                           f"{_image_path(workloads[k])} in {k[1]}): {_variant_why(world, mode, k, workloads)}")

    _attach(world, kept, workloads, service_of, gone, service)
    return Grouping(choices=choices, services=sorted(services.values(), key=lambda s: s.id),
                    service_of=service_of, gone=gone, variants=notes, candidates=candidates)


def _image_path(d: Definition) -> str:
    for c in containers(d.obj):
        ref = parse_or_none(c.image)
        if ref is not None and not c.init:
            return ref.path
    return "?"


def _variant_why(world: World, mode: str, key: Key, workloads: dict[Key, Definition]) -> str:
    if mode == "live":
        return "not in the cluster"
    if mode == "prefer":
        return "--prefer keeps another"
    return f"not the newest ({_when(world.times.get(workloads[key].file))})"


def _variants_kept(world: World, comp: list[Key], workloads: dict[Key, Definition],
                   notes: list[str]) -> tuple[list[Key], str]:
    """The variants that stay, and what decided: "keep", "prefer", "live" or "newest"."""
    names = ", ".join(workloads[k].obj.name for k in comp)
    if world.keep_variants:
        notes.append(f"{names}: kept as variants (--keep-variants); rule KS202 still reports them")
        return comp, "keep"
    preferred = [k for k in comp if workloads[k].file in world.prefer]
    if len(preferred) == 1:
        notes.append(f"{names}: {workloads[preferred[0]].obj.name} is kept (--prefer)")
        return preferred, "prefer"
    if world.live is not None and all(k[0] in world.listed for k in comp):
        running = [k for k in comp if k in world.live]
        if running:
            if len(running) > 1:
                notes.append(f"{', '.join(workloads[k].obj.name for k in running)} all run in the cluster: all are "
                             "kept; rule KS202 still reports them -- remove the ones you do not need")
            else:
                notes.append(f"{names}: {workloads[running[0]].obj.name} runs in the cluster and is kept")
            return running, "live"
    best, why = _newest([workloads[k] for k in comp], world.times)
    notes.append(f"{names}: {best.obj.name} is kept, {why}; --keep-variants keeps them all")
    return [best.obj.key], "newest"


def _attach(world: World, kept: dict[Key, Definition], workloads: dict[Key, Definition],
            service_of: dict[Key, Service], gone: dict[Key, str], service: Callable[[str, str], Service]) -> None:
    """Put every kept object that is not a workload with the workloads that use it."""
    all_workloads = {k: d for k, d in kept.items() if k in workloads}
    rest = {k: d for k, d in kept.items() if k not in workloads}
    placed: dict[Key, Definition] = dict(all_workloads)
    changed = True
    while changed:  # workload → Service → Ingress; workload → ServiceAccount → binding → role
        changed = False
        for key, d in sorted(rest.items()):
            if key in service_of or key in gone:
                continue
            users = [k for k, w in placed.items() if (k in all_workloads and _uses(w.obj, d.obj))
                     or (k not in all_workloads and _follows(d.obj, w.obj))]
            if not users:
                continue
            staying = sorted({service_of[k].id: service_of[k] for k in users if k in service_of}.items())
            if staying:
                svc = staying[0][1]
                svc.keys.append(key)
                service_of[key] = svc
                placed[key] = d
                changed = True
                if len(staying) > 1:
                    svc.notes.append(f"{key[0]} {key[2]} is also used by {', '.join(s for s, _ in staying[1:])}")
            elif all(k in gone for k in users):
                first = placed[users[0]].obj
                gone[key] = f"used only by {first.kind} {first.name}, which goes"
                placed[key] = d
                changed = True
    for key, d in sorted(rest.items()):
        if key in service_of or key in gone:
            continue
        # the workloads of its file, in its namespace (a Namespace object: the one it creates)
        ns = d.obj.name if d.obj.kind == "Namespace" else d.obj.namespace
        same_file = sorted((service_of[k] for k, w in kept.items()
                            if k in service_of and k in workloads and w.file == d.file
                            and service_of[k].namespace == ns), key=lambda s: s.id)
        if same_file:
            svc = same_file[0]
        else:
            stem = d.file.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            svc = service(d.obj.namespace or CLUSTER_DIR, _slug(stem))
        svc.keys.append(key)
        service_of[key] = svc
