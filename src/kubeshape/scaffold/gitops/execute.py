"""``init gitops --apply``: write the plan with git (moves keep their history), stage it, commit on request."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from kubeshape.errors import InputError
from kubeshape.scaffold.gitops import gitinfo
from kubeshape.scaffold.gitops.layout import FileOp
from kubeshape.scaffold.gitops.plan import URL_MISSING, Plan


@dataclass(slots=True)
class Done:
    moved: int = 0
    edited: int = 0
    created: int = 0
    removed: int = 0
    commit: str = ""
    paths: list[str] = field(default_factory=list)


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror}) -- check the directory's permissions") from None


def _unchanged(plan: Plan) -> None:
    """Sources must still hold what the plan was made from."""
    for op in plan.layout.ops:
        if op.op == "create":
            continue
        src = plan.root / (op.source or op.path)
        try:
            now = src.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            now = None
        if now != op.before:
            raise InputError(f"{op.source or op.path} changed while the plan was made -- run again")


def _moves_in_order(ops: list[FileOp]) -> list[FileOp]:
    """Moves whose destination is another move's source run after that one."""
    pending = [op for op in ops if op.op == "move"]
    ordered: list[FileOp] = []
    while pending:
        sources = {op.source for op in pending}
        ready = [op for op in pending if op.path not in sources or op.path == op.source]
        if not ready:
            raise InputError("the planned moves go in a circle -- move the files by hand")
        ordered += ready
        pending = [op for op in pending if op not in ready]
    return ordered


def _prune_dirs(root: Path, rels: list[str]) -> None:
    """Remove directories the moves and removals left empty."""
    for rel in rels:
        parent = (root / rel).parent
        while parent != root and parent.is_relative_to(root):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


def apply(plan: Plan, *, commit: bool, allow_dirty: bool) -> Done:
    """Make the changes of ``plan`` in its working tree; with ``commit``, commit exactly those paths."""
    root = plan.root
    if plan.uncommitted and not allow_dirty:
        raise InputError(f"uncommitted changes in {', '.join(plan.uncommitted)}: commit or stash them first, or pass "
                         "--allow-dirty (nothing was changed)")
    if plan.writes_sync and plan.settings.url == URL_MISSING:
        raise InputError("no git remote to point Flux at: pass --url with the URL Flux clones this repository from "
                         "(nothing was changed)")
    _unchanged(plan)
    done = Done()
    tracked_sources: list[str] = []
    for op in _moves_in_order(plan.layout.ops):
        (root / op.path).parent.mkdir(parents=True, exist_ok=True)
        if gitinfo.tracked(root, op.source):
            gitinfo.git(root, "mv", "--", op.source, op.path)
            tracked_sources.append(op.source)
        else:
            os.replace(root / op.source, root / op.path)
        if op.text != op.before:
            _write(root / op.path, op.text)
        done.moved += 1
        done.paths.append(op.path)
    for op in plan.layout.ops:
        if op.op == "edit":
            _write(root / op.path, op.text)
            done.edited += 1
            done.paths.append(op.path)
        elif op.op == "create":
            _write(root / op.path, op.text)
            done.created += 1
            done.paths.append(op.path)
    for op in plan.layout.ops:
        if op.op != "remove":
            continue
        if gitinfo.tracked(root, op.path):
            gitinfo.git(root, "rm", "--quiet", "--", op.path)
            tracked_sources.append(op.path)
        else:
            (root / op.path).unlink(missing_ok=True)
        done.removed += 1
    _prune_dirs(root, [op.source or op.path for op in plan.layout.ops if op.op in ("move", "remove")])
    if done.paths:
        gitinfo.git(root, "add", "--", *done.paths)
    if commit:
        message = (f"One kustomize base per service under {plan.settings.apps}/, applied by Flux\n\n"
                   + "\n".join(f"- {s.id}: {plan.layout.bases.get(s.id, '')}" for s in plan.grouping.services)
                   + "\n")
        gitinfo.git(root, "commit", "--quiet", "-m", message, "--", *done.paths, *tracked_sources)
        done.commit = gitinfo.git(root, "rev-parse", "HEAD").strip()
    return done
