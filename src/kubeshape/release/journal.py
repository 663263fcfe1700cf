"""The release journal: a small JSON file under ``.git/kubeshape/`` naming the plan and every step begun or
done, rewritten atomically at each step, so that ``kubeshape release --abort`` / ``--resume`` know what was
changed after the process that changed it is gone."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import orjson

from kubeshape.errors import InputError
from kubeshape.release.gitrepo import GitRepo

NAME = "release.json"


def journal_path(repo: GitRepo) -> Path:
    git_dir = Path(repo.git("rev-parse", "--git-dir").strip())
    return (git_dir if git_dir.is_absolute() else repo.root / git_dir) / "kubeshape" / NAME


class Journal:
    """``plan`` (what the release does) and ``steps`` (``{"name", "state": started|done, ...}``, in order)."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    @classmethod
    def create(cls, repo: GitRepo, plan: dict[str, Any]) -> Journal:
        """A new journal; refuse while an unfinished one exists."""
        path = journal_path(repo)
        if path.exists():
            raise InputError(f"{path}: an unfinished release is recorded here -- run `kubeshape release --resume` "
                             "to continue it or `kubeshape release --abort` to undo it")
        journal = cls(path, {"version": 1, "plan": plan, "steps": [], "failure": None})
        journal.save()
        return journal

    @classmethod
    def load(cls, repo: GitRepo) -> Journal:
        path = journal_path(repo)
        try:
            data = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            raise InputError(f"{repo.root}: no unfinished release is recorded (no {path})") from None
        except (OSError, orjson.JSONDecodeError) as exc:
            raise InputError(f"{path}: unreadable release journal ({exc}) -- delete it after checking git and "
                             "the cluster by hand") from None
        if not isinstance(data, dict) or not isinstance(data.get("plan"), dict):
            raise InputError(f"{path}: not a kubeshape release journal")
        return cls(path, data)

    @property
    def plan(self) -> dict[str, Any]:
        return dict(self.data["plan"])

    @property
    def steps(self) -> list[dict[str, Any]]:
        return list(self.data["steps"])

    def entry(self, name: str) -> dict[str, Any] | None:
        return next((s for s in self.data["steps"] if s["name"] == name), None)

    def done(self, name: str) -> bool:
        e = self.entry(name)
        return e is not None and e["state"] == "done"

    def begin(self, name: str, **info: Any) -> None:
        e = self.entry(name)
        if e is None:
            self.data["steps"].append({"name": name, "state": "started", **info})
        else:
            e.update(info, state="started")
        self.save()

    def finish(self, name: str, **info: Any) -> None:
        e = self.entry(name)
        if e is None:
            e = {"name": name}
            self.data["steps"].append(e)
        e.update(info, state="done")
        self.save()

    def fail(self, message: str) -> None:
        self.data["failure"] = message
        self.save()

    def save(self) -> None:
        """Write to a temporary file beside the journal, then rename it over (never a half-written journal)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".release-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(orjson.dumps(self.data, option=orjson.OPT_INDENT_2))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def close(self) -> None:
        """The release ended (released, or compensated): nothing is left to resume or abort."""
        self.path.unlink(missing_ok=True)
