"""Preflight of a release through Flux, before anything is pushed or committed: Flux is installed, a
GitRepository follows the checkout's remote and branch, Kustomizations of it deploy the workloads, none of them
is suspended, and the remote branch holds nothing the checkout lacks (else the push would be refused)."""

from __future__ import annotations

from typing import Any

from kubeshape.errors import InputError, SourceUnreachable
from kubeshape.release.edit import Edit
from kubeshape.release.flux import FluxApi, FluxTarget, Ref, condition, find_kustomizations, find_source
from kubeshape.release.gitrepo import GitError, GitRepo, redact_url
from kubeshape.release.kube import Kube
from kubeshape.release.steps import Reporter


def _suspended(obj: dict[str, Any], command: str) -> None:
    if (obj.get("spec") or {}).get("suspend"):
        ref = Ref.of(obj)
        raise InputError(f"{ref} is suspended: Flux would not apply the release -- `{command} {ref.name} -n "
                         f"{ref.namespace}` first")


def _in_sync(repo: GitRepo, remote: str, branch: str, url: str, reporter: Reporter) -> None:
    """Refuse when the remote branch has commits HEAD lacks; say how many local commits go along."""
    try:
        tip = repo.fetch(remote, branch)
    except GitError as exc:
        raise SourceUnreachable(f"cannot fetch {branch} from {remote} ({redact_url(url)}): {exc}") from None
    if tip is None:
        reporter.warn(f"{remote} has no branch {branch} yet: the release creates it")
        return
    behind = repo.count(f"HEAD..{tip}")
    if behind:
        raise InputError(f"{remote}/{branch} has {behind} commit{'s' if behind != 1 else ''} this checkout lacks: "
                         f"the push would be refused -- `git pull --rebase {remote} {branch}`, then release again")
    ahead = repo.count(f"{tip}..HEAD")
    if ahead:
        reporter.step(f"{ahead} local commit{'s' if ahead != 1 else ''} not yet on {remote}/{branch} will be "
                      "pushed with the release")


def flux_preflight(kube: Kube, repo: GitRepo, branch: str | None, edit: Edit, namespace: str | None,
                   source: str | None, kustomization: str | None, reporter: Reporter) -> FluxTarget:
    """Where the release goes through Flux; refuse (one line, nothing changed) when it cannot."""
    api = FluxApi.discover(kube)
    if not branch:
        raise InputError(f"{repo.root}: HEAD is detached -- check out the branch the Flux GitRepository follows")
    explicit_source = Ref.parse("GitRepository", source, "--flux-source") if source else None
    explicit_ks = Ref.parse("Kustomization", kustomization, "--flux-kustomization") if kustomization else None
    remotes = repo.remotes()
    obj, remote = find_source(api, remotes, branch, explicit_source)
    src = Ref.of(obj)
    _suspended(obj, "flux resume source git")
    workloads = [(w.kind, w.name, namespace or w.namespace) for w in edit.workloads if w.kind == "Deployment"]
    if not workloads:
        found = ", ".join(str(w) for w in edit.workloads) or "no workload running the image"
        raise InputError(f"{edit.path}: deploys no Deployment running the image ({found}): nothing to release")
    kss, namespaces = find_kustomizations(api, src, workloads, explicit_ks, strict=namespace is not None)
    for ks in kss:
        _suspended(ks, "flux resume kustomization")
        ready = condition(ks)
        if ready.get("status") == "False":
            reporter.warn(f"{Ref.of(ks)} is not Ready ({ready.get('reason')}: "
                          f"{' '.join(str(ready.get('message') or '').split())}): it may not apply the release")
    url = remotes[remote]
    _in_sync(repo, remote, branch, url, reporter)
    refs = [Ref.of(k) for k in kss]
    reporter.step(f"Flux: {src} follows {remote} ({redact_url(url)}) branch {branch}; "
                  f"{', '.join(str(r) for r in refs)} deploys "
                  f"{', '.join(f'Deployment {namespaces[n]}/{n}' for _, n, _ in workloads)}")
    return FluxTarget(src, redact_url(url), remote, branch, refs, namespaces)
