"""Wait until Flux has applied a pushed commit, as Flux reports it: the GitRepository's artifact at the commit
(or a later one containing it), then each Kustomization's ``lastAppliedRevision``. Speeds it up the way
`flux reconcile --with-source` does; stops with Flux's own reason when a Kustomization fails at the commit."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubeshape.errors import KubeshapeError
from kubeshape.release.flux import FluxApi, Ref, condition, revision_sha
from kubeshape.release.gitrepo import GitError, GitRepo
from kubeshape.release.kube import KubeError

DEFAULT_TIMEOUT = 300.0  # seconds for Flux to apply a commit when --timeout is not given


class FluxFailed(KubeshapeError):
    """Flux did not apply the commit: it reported a failure, was suspended, or ran out of time (exit 1)."""

    exit_code = 1


def request_token() -> str:
    """A ``reconcile.fluxcd.io/requestedAt`` value: the time, as `flux reconcile` writes it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _describe(obj: dict[str, Any]) -> str:
    ready = condition(obj)
    if not ready:
        return "no Ready condition yet"
    text = f"Ready={ready.get('status')}"
    if ready.get("reason"):
        text += f" {ready['reason']}"
    if ready.get("message"):
        text += f": {' '.join(str(ready['message']).split())}"
    return text


@dataclass
class FluxWait:
    """One wait for commit ``sha`` of ``branch``: ``live_ok`` tells whether the workloads already carry the
    commit's images (then a Kustomization still running health checks counts as applied)."""

    api: FluxApi
    repo: GitRepo
    remote: str
    branch: str
    progress: Callable[[str], None]
    poll: float
    timeout: float
    live_ok: Callable[[], bool]
    notes: list[str] = field(default_factory=list)
    _start: float = field(default_factory=time.monotonic)
    _last: str = ""
    _sha: str = ""

    def _say(self, line: str) -> None:
        if line != self._last:
            self.progress(f"flux [{time.monotonic() - self._start:4.0f}s] {line}")
            self._last = line

    def _contains(self, sha: str, revision: Any) -> bool:
        """Whether Flux's ``revision`` is ``sha`` or a later commit of the branch that contains it."""
        at = revision_sha(revision)
        if at is None:
            return False
        if at == sha:
            return True
        known = self.repo.is_ancestor(sha, at)
        if known is None:  # a commit pushed by someone else: fetch it to compare
            try:
                self.repo.fetch(self.remote, self.branch)
            except GitError:
                return False
            known = self.repo.is_ancestor(sha, at)
        return bool(known)

    def _request(self, ref: Ref) -> str | None:
        token = request_token()
        try:
            self.api.request_reconcile(ref, token)
        except KubeError as exc:
            self.notes.append(f"could not ask {ref} to reconcile now ({exc}): waited for its interval instead")
            return None
        return token

    def _expired(self, what: str, obj: dict[str, Any]) -> None:
        if time.monotonic() - self._start > self.timeout:
            raise FluxFailed(f"Flux did not apply {self.branch}@sha1:{self._sha[:12]} within {self.timeout:g}s: "
                             f"{what} ({_describe(obj)})")

    def until_applied(self, source: Ref, kustomizations: list[Ref], sha: str) -> list[str]:
        """Block until every Kustomization applied ``sha``; ``Kustomization ns/name at REVISION`` lines."""
        self._sha, self._start, self._last = sha, time.monotonic(), ""
        self._source(source, sha)
        for ks in kustomizations:
            self._request(ks)
        pending = list(kustomizations)
        applied: list[str] = []
        while pending:
            for ks in list(pending):
                revision = self._kustomization(ks, sha)
                if revision is not None:
                    applied.append(f"{ks} at {revision}")
                    pending.remove(ks)
            if pending:
                time.sleep(self.poll)
        return applied

    def _source(self, ref: Ref, sha: str) -> None:
        token = self._request(ref)
        while True:
            obj = self.api.get(ref)
            spec, status = obj.get("spec") or {}, obj.get("status") or {}
            revision = (status.get("artifact") or {}).get("revision")
            if spec.get("suspend"):
                raise FluxFailed(f"{ref} is suspended: Flux does not fetch {self.branch} -- `flux resume source git "
                                 f"{ref.name} -n {ref.namespace}`")
            if self._contains(sha, revision):
                self._say(f"{ref} fetched {revision}")
                return
            ready = condition(obj)
            if token is not None and status.get("lastHandledReconcileAt") == token and ready.get("status") == "False":
                raise FluxFailed(f"{ref} cannot fetch {self.branch}@sha1:{sha[:12]}: {ready.get('reason')}: "
                                 f"{' '.join(str(ready.get('message') or '').split())}")
            self._say(f"{ref} at {revision or 'no artifact yet'}, waiting for {self.branch}@sha1:{sha[:12]}")
            self._expired(f"{ref} is at {revision or 'no artifact'}", obj)
            time.sleep(self.poll)

    def _kustomization(self, ref: Ref, sha: str) -> str | None:
        """The applied revision once ``ref`` applied ``sha``; None while it has not; raise when it failed."""
        obj = self.api.get(ref)
        meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
        if spec.get("suspend"):
            raise FluxFailed(f"{ref} is suspended: Flux does not apply {self.branch}@sha1:{sha[:12]} -- `flux resume "
                             f"kustomization {ref.name} -n {ref.namespace}`")
        applied, attempted = status.get("lastAppliedRevision"), status.get("lastAttemptedRevision")
        if self._contains(sha, applied):
            self._say(f"{ref} applied {applied}")
            return str(applied)
        ready = condition(obj)
        current = int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
        if self._contains(sha, attempted) and current:
            if ready.get("status") == "False":
                raise FluxFailed(f"{ref} failed to apply {attempted}: {ready.get('reason')}: "
                                 f"{' '.join(str(ready.get('message') or '').split())}")
            if self.live_ok():  # applied; Flux still runs its health checks (spec.wait / healthChecks)
                self._say(f"{ref} applied {attempted} (Flux health checks running)")
                return str(attempted)
        self._say(f"{ref}: last applied {applied or 'nothing yet'}, {_describe(obj)}")
        self._expired(f"{ref} last applied {applied or 'nothing'}", obj)
        return None
