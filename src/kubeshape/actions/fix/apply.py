"""Apply a plan step by step: files (each checked against the SHA-256 the plan saw), then the step's cluster
changes (each checked against the object's uid and generation, and sent with the resourceVersion just read).

The first step whose guard fails stops the run with one line; the steps before it stay applied and their files
are committed together, so the repository and the cluster agree on everything that was done.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2 as httpx
import orjson

from kubeshape.actions.fix.context import spec_digest
from kubeshape.actions.fix.plan import ClusterChange, Plan, RegistryPush, Step, sha256
from kubeshape.errors import InputError, KubeshapeError, SourceUnreachable
from kubeshape.release.gitrepo import GitError, GitRepo
from kubeshape.sources.bundle import redact_item
from kubeshape.sources.live import ApiClient, ApiError, kind_spec

CONFLICT_RETRIES = 5


class StepFailed(KubeshapeError):
    """A step's guard did not hold or the API server refused it; the message names the step and the object."""


@dataclass
class Outcome:
    applied: list[int] = field(default_factory=list)
    declined: list[int] = field(default_factory=list)
    commit: str | None = None
    stopped: str | None = None  # the one line that says why the run stopped
    stopped_exit: int = 0


def _resource_path(c: ClusterChange) -> str:
    group, _, version = c.object.api_version.rpartition("/")
    spec = kind_spec(c.object.kind, group)
    if spec is None:
        raise InputError(f"{c.object.kind} ({c.object.api_version}) is not a kind kubeshape changes")
    spec = dataclasses.replace(spec, version=version)  # the version the plan names
    return f"{spec.path(quote(c.object.namespace) or None)}/{quote(c.object.name)}"


class Cluster:
    """The three calls a plan makes: read an object, server-side apply, delete with preconditions."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api
        self.generations: dict[str, int] = {}  # generation our own earlier change left an object at

    def _send(self, method: str, path: str, *, body: bytes | None = None,
              content_type: str = "application/json") -> httpx.Response:
        self.api.limiter.acquire()
        try:
            return self.api.http.request(method, path, content=body, headers={"Content-Type": content_type})
        except httpx.TransportError as exc:
            raise SourceUnreachable(f"the API server of context '{self.api.context}' did not answer {method} "
                                    f"{path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") \
                from None

    def current(self, c: ClusterChange) -> dict[str, Any] | None:
        try:
            return dict(self.api.get(_resource_path(c), retry_5xx=True))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise StepFailed(f"cannot read {c.object} ({exc.status}: {exc})") from None

    def check(self, c: ClusterChange, live: dict[str, Any]) -> str:
        """The resourceVersion to send; StepFailed when the object is another one or its spec changed."""
        meta = live.get("metadata") or {}
        if c.uid and meta.get("uid") != c.uid:
            raise StepFailed(f"{c.object} was deleted and created again since the plan: make a new plan")
        if c.spec is not None and spec_digest(redact_item(copy.deepcopy(live))) != c.spec:
            raise StepFailed(f"{c.object} changed in the cluster since the plan (its spec differs): make a new plan")
        expected = self.generations.get(_key(c), c.generation)
        if expected is not None and meta.get("generation") != expected:
            raise StepFailed(f"{c.object} changed in the cluster since the plan (generation {expected} -> "
                             f"{meta.get('generation')}): make a new plan")
        return str(meta.get("resourceVersion") or "")

    def precheck(self, c: ClusterChange) -> None:
        """StepFailed unless ``c``'s guards hold now (a read, no write)."""
        live = self.current(c)
        if live is None:
            if c.action == "delete" or c.if_exists:
                return
            raise StepFailed(f"{c.object} no longer exists: make a new plan")
        self.check(c, live)

    def run(self, c: ClusterChange) -> str:
        """Make one change; returns what was done (``applied``, ``deleted``, ``already gone``). The guards are
        checked on a fresh read and the write carries that read's resourceVersion; when a controller's status
        update slips in between (409), the read, the check and the write are repeated."""
        for _ in range(CONFLICT_RETRIES):
            live = self.current(c)
            if live is None:
                if c.action == "delete" or c.if_exists:
                    return "already gone"
                raise StepFailed(f"{c.object} no longer exists: make a new plan")
            rv = self.check(c, live)
            resp = self._delete(c, rv) if c.action == "delete" else self._apply(c, rv)
            if resp.status_code == 409:
                continue
            if resp.status_code == 404 and (c.action == "delete" or c.if_exists):
                return "already gone"
            if resp.status_code == 422 and (c.action == "delete" or c.if_exists) and self._went_away(c):
                # A controller deleted it between the read and the write (a Deployment pruning its old
                # ReplicaSets): an apply to a missing object is a create, refused for carrying a resourceVersion.
                return "already gone"
            self._raise(resp, c)
            if c.action == "delete":
                return "deleted"
            gen = (orjson.loads(resp.content).get("metadata") or {}).get("generation")
            if isinstance(gen, int):
                self.generations[_key(c)] = gen
            return "applied"
        raise StepFailed(f"{c.object} kept changing while it was being changed ({CONFLICT_RETRIES} attempts): "
                         "try again")

    def _went_away(self, c: ClusterChange) -> bool:
        """True when ``c``'s object is gone or being deleted now (a fresh read)."""
        live = self.current(c)
        return live is None or bool((live.get("metadata") or {}).get("deletionTimestamp"))

    def _delete(self, c: ClusterChange, rv: str) -> httpx.Response:
        pre: dict[str, Any] = {"resourceVersion": rv}
        if c.uid:
            pre["uid"] = c.uid
        return self._send("DELETE", _resource_path(c), body=orjson.dumps(
            {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": pre}))

    def _apply(self, c: ClusterChange, rv: str) -> httpx.Response:
        body = dict(c.body or {})
        body["metadata"] = {**(body.get("metadata") or {}), "resourceVersion": rv}
        return self._send("PATCH", f"{_resource_path(c)}?fieldManager={quote(c.field_manager)}&force=true",
                          body=orjson.dumps(body), content_type="application/apply-patch+yaml")

    def _raise(self, resp: httpx.Response, c: ClusterChange) -> None:
        if resp.status_code < 400:
            return
        try:
            message = str(orjson.loads(resp.content).get("message") or resp.reason_phrase)
        except (orjson.JSONDecodeError, AttributeError):
            message = f"{resp.status_code} {resp.reason_phrase}"
        if resp.status_code == 409:
            raise StepFailed(f"{c.object} changed in the cluster while it was being changed ({message}): "
                             "make a new plan")
        raise StepFailed(f"the API server refused to change {c.object} ({resp.status_code}: {message})")


def _key(c: ClusterChange) -> str:
    return f"{c.object.api_version}|{c.object.kind}|{c.object.namespace}|{c.object.name}"


def _check_files(root: Path, step: Step) -> list[tuple[Path, str, str | None]]:
    """(path, text now, text after) for the step's files; StepFailed when one is not as the plan saw it."""
    out = []
    for fc in step.files:
        path = root / fc.path
        if not path.resolve().is_relative_to(root.resolve()):
            raise InputError(f"step {step.id}: {fc.path} is outside the repository")
        try:
            now = path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            raise StepFailed(f"step {step.id}: {fc.path} no longer exists: make a new plan") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise StepFailed(f"step {step.id}: cannot read {fc.path} ({exc})") from None
        if sha256(now) != fc.before:
            raise StepFailed(f"step {step.id}: {fc.path} changed since the plan was made: make a new plan")
        try:
            after = fc.apply_to(now)
        except ValueError as exc:
            raise StepFailed(f"step {step.id}: {exc}: make a new plan") from None
        out.append((path, now, after))
    return out


def _write(files: list[tuple[Path, str, str | None]]) -> None:
    done: list[tuple[Path, str]] = []
    try:
        for path, now, after in files:
            if after is None:
                path.unlink()
            else:
                path.write_bytes(after.encode("utf-8"))
            done.append((path, now))
    except OSError as exc:
        for path, now in done:  # leave the step all or nothing
            path.write_bytes(now.encode("utf-8"))
        raise StepFailed(f"cannot write {path}: {exc.strerror or exc}") from None


def _push(p: RegistryPush) -> None:
    """Copy the image unless the target already has the tag (a re-run); StepFailed when the source lacks it."""
    from kubeshape.registry.client import RegistryClient
    from kubeshape.registry.copy import copy_image
    from kubeshape.registry.errors import RegistryError, RegistryNotFound

    src_name, _, src_tag = p.source.rpartition(":")
    dst_name, _, dst_tag = p.target.rpartition(":")
    src_repo, dst_repo = src_name.partition("/")[2], dst_name.partition("/")[2]
    try:
        with RegistryClient(p.target_reach, insecure=p.insecure) as dst:
            try:
                dst.head_manifest(dst_repo, dst_tag, suggest=False)
                return
            except RegistryNotFound:
                pass
            with RegistryClient(p.source_reach, insecure=p.insecure) as src:
                try:
                    copy_image(src, src_repo, src_tag, dst, dst_repo, dst_tag)
                except RegistryNotFound:
                    raise StepFailed(f"{p.source} does not exist, so it cannot be pushed to {p.target}: push it "
                                     "from where it was built") from None
    except RegistryError as exc:
        raise StepFailed(f"pushing {p.source} to {p.target}: {exc}") from None


def _restore(files: list[tuple[Path, str, str | None]]) -> None:
    """Put the step's files back as they were (its cluster change failed)."""
    for path, now, _ in files:
        path.write_bytes(now.encode("utf-8"))


def preflight(plan: Plan, root: Path | None) -> GitRepo | None:
    """The git work tree the edits are committed to; InputError when files would change outside git or over
    uncommitted edits."""
    paths = sorted({fc.path for s in plan.steps for fc in s.files})
    if not paths:
        return None
    if root is None:
        raise InputError("the plan changes files but no repository was given: pass --repo")
    try:
        repo = GitRepo.discover(root)
    except GitError:
        raise InputError(f"{root}: not a git repository -- kubeshape fix commits what it changes; run 'git init' "
                         "or apply the diff by hand") from None
    dirty = repo.dirty_files(*(root / p for p in paths if (root / p).exists()))
    if dirty:
        raise InputError(f"{', '.join(dirty[:3])}: uncommitted changes -- commit or stash them, then run "
                         "kubeshape fix again")
    return repo


def apply_plan(plan: Plan, root: Path | None, cluster: Cluster | None,
               confirm: Callable[[Step], bool] | None = None,
               progress: Callable[[Step, str], None] | None = None) -> Outcome:
    """Apply ``plan``'s steps in order; stop at the first that fails, commit what was done."""
    repo = preflight(plan, root)
    if cluster is None and any(s.cluster for s in plan.steps):
        raise InputError("the plan changes the cluster but no cluster was given: drop --bundle and use "
                         "--kubeconfig/--context")
    out = Outcome()
    written: list[Path] = []
    done_steps: list[Step] = []
    for step in plan.steps:
        if confirm is not None and not confirm(step):
            out.declined.append(step.id)
            continue
        files: list[tuple[Path, str, str | None]] = []
        try:
            files = _check_files(root, step) if step.files and root is not None else []
            for c in step.cluster:  # every guard of the step holds before anything of it is done
                assert cluster is not None
                cluster.precheck(c)
            for push in step.pushes:
                _push(push)
            _write(files)
            try:
                for c in step.cluster:
                    assert cluster is not None
                    cluster.run(c)
            except (StepFailed, SourceUnreachable):
                _restore(files)
                raise
            written += [p for p, _, _ in files]
        except StepFailed as exc:
            out.stopped, out.stopped_exit = str(exc) if str(exc).startswith("step ") else \
                f"step {step.id}: {exc}", 2
            break
        except SourceUnreachable as exc:
            out.stopped, out.stopped_exit = f"step {step.id}: {exc}", 3
            break
        out.applied.append(step.id)
        done_steps.append(step)
        if progress is not None:
            progress(step, "applied")
    if repo is not None and written:
        out.commit = _commit(repo, plan, done_steps, written)
    return out


def _commit(repo: GitRepo, plan: Plan, steps: list[Step], written: list[Path]) -> str:
    part = Plan(repo=plan.repo, context=plan.context, gitops=plan.gitops, steps=[s for s in steps if s.files])
    rels = sorted({p.resolve().relative_to(repo.root.resolve()).as_posix() for p in written})
    repo.git("add", "-A", "--", *rels)
    try:
        repo.git("commit", "--quiet", "-m", part.commit_message(), "--", *rels)
    except GitError as exc:
        raise StepFailed(f"the files are changed but git commit failed ({exc}): commit them by hand") from None
    return repo.head()
