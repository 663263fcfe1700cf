"""The Flux objects a GitOps release goes through: the GitRepository that follows the checkout's branch and the
Kustomizations of it that deploy the released workload (found from their inventory, or named), read and asked
to reconcile through the API server."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kubeshape.errors import InputError, SourceUnreachable
from kubeshape.release.gitrepo import redact_url
from kubeshape.release.kube import Kube
from kubeshape.sources.live import ApiError

SOURCE_GROUP = "source.toolkit.fluxcd.io"
KUSTOMIZE_GROUP = "kustomize.toolkit.fluxcd.io"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"  # what `flux reconcile` sets; any new value triggers one
DEFAULT_BRANCH = "master"  # a GitRepository without spec.ref follows master
_SCP = re.compile(r"^(?:[^@/]+@)?([^:/]+):(?!//)(.+)$")  # git@host:org/repo.git
_SHA = re.compile(r"(?:^|@sha1:|/)([0-9a-f]{40})$")
_DEFAULT_PORTS = {"http": "80", "https": "443", "ssh": "22", "git": "9418"}


class FluxMissing(SourceUnreachable):
    """The cluster serves no Flux source or kustomize API (exit 3)."""


@dataclass(frozen=True, slots=True)
class Ref:
    """A namespaced Flux object: ``kind namespace/name``."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, kind: str, text: str, option: str) -> Ref:
        ns, sep, name = text.partition("/")
        if not sep or not ns or not name or "/" in name:
            raise InputError(f"{option} {text!r}: give NAMESPACE/NAME")
        return cls(kind, ns, name)

    @classmethod
    def of(cls, obj: dict[str, Any]) -> Ref:
        meta = obj.get("metadata") or {}
        return cls(str(obj.get("kind") or ""), str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def repo_key(url: str) -> tuple[str, str, str, str]:
    """(scheme, host, port, path) of a git URL, normalized: no user, no ``.git``, no slashes at the ends,
    lower case, default ports dropped. ``git@host:org/repo`` reads as ssh."""
    url = url.strip()
    scp = _SCP.match(url) if "://" not in url else None
    if scp:
        scheme, host, port, path = "ssh", scp.group(1), "", scp.group(2)
    else:
        parts = urlsplit(url)
        scheme, host, path = parts.scheme or "file", parts.hostname or "", parts.path
        try:
            port = str(parts.port or "")
        except ValueError:
            port = ""
    port = "" if _DEFAULT_PORTS.get(scheme) == port else port
    path = path.strip("/").removesuffix(".git").rstrip("/")
    return scheme.lower(), host.lower(), port, path.lower()


def same_repo(a: str, b: str) -> bool:
    """Whether two git URLs name the same repository (https and ssh forms of it included)."""
    sa, ha, pa, xa = repo_key(a)
    sb, hb, pb, xb = repo_key(b)
    return ha == hb and xa == xb and (pa == pb or sa != sb)


def followed_branch(obj: dict[str, Any]) -> str | None:
    """The branch a GitRepository follows; None when its ref pins a tag, semver range, other ref or commit."""
    ref = (obj.get("spec") or {}).get("ref") or {}
    if not isinstance(ref, dict):
        return None
    if ref.get("commit") or ref.get("semver") or ref.get("tag"):
        return None
    if ref.get("name"):
        name = str(ref["name"])
        return name.removeprefix("refs/heads/") if name.startswith("refs/heads/") else None
    return str(ref.get("branch") or DEFAULT_BRANCH)


def describe_ref(obj: dict[str, Any]) -> str:
    ref = (obj.get("spec") or {}).get("ref") or {}
    pinned = [f"{k} {ref[k]}" for k in ("commit", "name", "semver", "tag") if isinstance(ref, dict) and ref.get(k)]
    return pinned[0] if pinned else f"branch {followed_branch(obj)}"


def revision_sha(revision: Any) -> str | None:
    """The commit SHA of a Flux revision (``main@sha1:<sha>``, or the older ``main/<sha>``)."""
    m = _SHA.search(str(revision or ""))
    return m.group(1) if m else None


def condition(obj: dict[str, Any], kind: str = "Ready") -> dict[str, Any]:
    conds = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conds if isinstance(c, dict) and c.get("type") == kind), {})


def inventory_ids(obj: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(namespace, name, group, kind) of every object a Kustomization's ``status.inventory`` records."""
    out = []
    for entry in ((obj.get("status") or {}).get("inventory") or {}).get("entries") or []:
        parts = str((entry or {}).get("id") or "").split("_")
        if len(parts) == 4:
            out.append((parts[0], parts[1], parts[2], parts[3]))
    return out


@dataclass
class FluxApi:
    """Flux's source and kustomize APIs in one context (the versions the API server serves)."""

    kube: Kube
    source_version: str
    kustomize_version: str

    @classmethod
    def discover(cls, kube: Kube) -> FluxApi:
        """Raise FluxMissing unless both API groups are served."""
        versions = []
        for group, kind in ((SOURCE_GROUP, "GitRepository"), (KUSTOMIZE_GROUP, "Kustomization")):
            try:
                doc = kube.api.get(f"/apis/{group}")
            except ApiError as exc:
                if exc.status == 404:
                    raise FluxMissing(f"Flux is not installed in context '{kube.context}': the API server serves "
                                      f"no {group} ({kind} CRD missing) -- install Flux (`flux install`) or drop "
                                      "--gitops flux") from None
                raise SourceUnreachable(f"context '{kube.context}': cannot read the API group {group} "
                                        f"({exc.status}: {exc})") from None
            served = [str(v.get("version")) for v in doc.get("versions") or [] if isinstance(v, dict)]
            preferred = str((doc.get("preferredVersion") or {}).get("version") or "")
            versions.append("v1" if "v1" in served else preferred or (served[0] if served else "v1"))
        return cls(kube, versions[0], versions[1])

    def _path(self, kind: str, namespace: str | None = None, name: str | None = None) -> str:
        group, version, plural = ((SOURCE_GROUP, self.source_version, "gitrepositories") if kind == "GitRepository"
                                  else (KUSTOMIZE_GROUP, self.kustomize_version, "kustomizations"))
        where = f"/namespaces/{namespace}" if namespace else ""
        return f"/apis/{group}/{version}{where}/{plural}" + (f"/{name}" if name else "")

    def list(self, kind: str, hint: str) -> list[dict[str, Any]]:
        """Every object of ``kind`` in the cluster (``hint``: the option that avoids the listing)."""
        try:
            doc = self.kube.api.get(self._path(kind))
        except ApiError as exc:
            raise InputError(f"context '{self.kube.context}' may not list {kind} objects in all namespaces "
                             f"({exc.status}) -- name the one to use with {hint}") from None
        return [dict(i, kind=kind) for i in doc.get("items") or [] if isinstance(i, dict)]

    def get(self, ref: Ref) -> dict[str, Any]:
        obj = dict(self.kube.get(self._path(ref.kind, ref.namespace, ref.name), str(ref)))
        obj.setdefault("kind", ref.kind)
        return obj

    def path(self, ref: Ref) -> str:
        return self._path(ref.kind, ref.namespace, ref.name)

    def may_annotate(self, ref: Ref) -> bool:
        group, plural = ((SOURCE_GROUP, "gitrepositories") if ref.kind == "GitRepository"
                         else (KUSTOMIZE_GROUP, "kustomizations"))
        return self.kube.allowed("patch", group, plural, ref.namespace, ref.name)

    def request_reconcile(self, ref: Ref, token: str) -> None:
        """What `flux reconcile` does: a new ``reconcile.fluxcd.io/requestedAt`` value."""
        self.kube.annotate(self.path(ref), {REQUESTED_AT: token}, str(ref))


@dataclass
class FluxTarget:
    """Where a GitOps release goes: the remote and branch to push, the GitRepository following them, the
    Kustomizations deploying the workloads, and each workload's namespace as Flux applied it."""

    source: Ref
    url: str
    remote: str
    branch: str
    kustomizations: list[Ref]
    namespaces: dict[str, str]  # workload name -> namespace


def find_source(api: FluxApi, remotes: dict[str, str], branch: str, explicit: Ref | None) -> tuple[dict[str, Any],
                                                                                                   str]:
    """The GitRepository following ``branch`` of one of ``remotes``, and that remote's name."""
    shown = ", ".join(f"{n} {redact_url(u)}" for n, u in remotes.items()) or "none"
    if not remotes:
        raise InputError("the checkout has no git remote: a GitOps release pushes its commit to the remote a Flux "
                         "GitRepository follows -- `git remote add origin URL`")
    if explicit is not None:
        obj = api.get(explicit)
        url = str((obj.get("spec") or {}).get("url") or "")
        remote = next((n for n, u in remotes.items() if same_repo(u, url)), None)
        if remote is None:
            raise InputError(f"{explicit} follows {url}, which is none of this checkout's remotes ({shown}) -- "
                             "release from a checkout of that repository")
        if followed_branch(obj) != branch:
            raise InputError(f"{explicit} follows {describe_ref(obj)}, but the checkout is on branch {branch} -- "
                             f"check out {followed_branch(obj) or 'the branch it follows'}")
        return obj, remote
    repos = api.list("GitRepository", "--flux-source NAMESPACE/NAME")
    found, near = [], []
    for obj in repos:
        url = str((obj.get("spec") or {}).get("url") or "")
        remote = next((n for n, u in remotes.items() if same_repo(u, url)), None)
        if remote is None:
            continue
        if followed_branch(obj) == branch:
            found.append((obj, remote))
        else:
            near.append(f"{Ref.of(obj)} follows {describe_ref(obj)}")
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        names = ", ".join(str(Ref.of(o)) for o, _ in found)
        raise InputError(f"{names} all follow branch {branch} of this repository: give --flux-source "
                         "NAMESPACE/NAME")
    seen = "; ".join(near) if near else f"none of the {len(repos)} GitRepositories in context " \
                                        f"'{api.kube.context}' names one of these URLs"
    raise InputError(f"no Flux GitRepository follows branch {branch} of this checkout's remotes ({shown}): {seen} "
                     "-- give --flux-source NAMESPACE/NAME, or point a GitRepository at the remote and branch")


def _of_source(ks: dict[str, Any], source: Ref) -> bool:
    ref = (ks.get("spec") or {}).get("sourceRef") or {}
    ns = ref.get("namespace") or (ks.get("metadata") or {}).get("namespace")
    return bool(ref.get("kind") == "GitRepository" and ref.get("name") == source.name and ns == source.namespace)


def _holding(ks: dict[str, Any], kind: str, name: str, namespace: str | None) -> list[str]:
    """Namespaces in which ``ks``'s inventory holds workload ``kind``/``name``."""
    group = "apps" if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet") else \
        "batch" if kind in ("Job", "CronJob") else ""
    return [ns for ns, n, g, k in inventory_ids(ks) if (k, n, g) == (kind, name, group)
            and (namespace is None or ns == namespace)]


def find_kustomizations(api: FluxApi, source: Ref, workloads: list[tuple[str, str, str | None]],
                        explicit: Ref | None, strict: bool = False) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The Kustomizations of ``source`` whose inventory holds the workloads (kind, name, namespace or None),
    and the namespace each workload has there. Unless ``strict`` (a namespace the user gave), a workload found
    in no Kustomization under its file's namespace is looked for in any (a ``targetNamespace`` moves it)."""
    if explicit is not None:
        ks = api.get(explicit)
        if not _of_source(ks, source):
            ref = (ks.get("spec") or {}).get("sourceRef") or {}
            raise InputError(f"{explicit} applies {ref.get('kind')} {ref.get('namespace') or explicit.namespace}/"
                             f"{ref.get('name')}, not {source}")
        candidates = [ks]
    else:
        candidates = [k for k in api.list("Kustomization", "--flux-kustomization NAMESPACE/NAME")
                      if _of_source(k, source)]
    chosen: dict[str, dict[str, Any]] = {}
    namespaces: dict[str, str] = {}
    for kind, name, ns in workloads:
        holders = [(k, found) for k in candidates if (found := _holding(k, kind, name, ns))]
        if not holders and ns is not None and not strict:
            holders = [(k, found) for k in candidates if (found := _holding(k, kind, name, None))]
        spaces = sorted({n for _, found in holders for n in found})
        if not holders:
            where = f" in namespace {ns}" if ns else ""
            looked = ", ".join(str(Ref.of(k)) for k in candidates) or f"no Kustomization applies {source}"
            raise InputError(f"no Kustomization of {source} holds {kind} {name}{where} in its inventory (looked at: "
                             f"{looked}) -- give --flux-kustomization NAMESPACE/NAME, or wait until Flux applied it "
                             "once")
        if len(spaces) > 1:
            raise InputError(f"{kind} {name} is deployed by {source} in namespaces {', '.join(spaces)}: pass -n "
                             "NAMESPACE")
        namespaces[name] = spaces[0]
        for k, _ in holders:
            chosen[Ref.of(k).key] = k
    return list(chosen.values()), namespaces
