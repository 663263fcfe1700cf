"""What ``init ci`` reads from the repository: its git root, its hosting platform and its default branch."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kubeshape.config import CONFIG_NAMES

DEFAULT_BRANCH = "main"


@dataclass(frozen=True, slots=True)
class RepoFacts:
    """Facts about the directory ``init ci`` writes into."""

    git_root: Path | None  # top level of the git work tree holding the directory, if any
    remotes: str  # `git remote -v` output ("" without git or remotes)
    branch: str  # origin's HEAD, else an existing main or master, else the unborn HEAD branch, else main
    config: Path | None  # kubeshape.yaml (or one of its other names) in the directory

    @property
    def on_github(self) -> bool:
        return "github" in self.remotes.lower()

    @property
    def on_gitlab(self) -> bool:
        return "gitlab" in self.remotes.lower()


def _git(directory: Path, *args: str) -> str | None:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        proc = subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True, timeout=30,
                              env=env, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _branch(directory: Path) -> str:
    origin_head = _git(directory, "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD")
    if origin_head and "/" in origin_head:
        return origin_head.split("/", 1)[1]
    for name in ("main", "master"):
        if _git(directory, "rev-parse", "--verify", "--quiet", f"refs/heads/{name}") is not None:
            return name
    if _git(directory, "rev-parse", "--verify", "--quiet", "HEAD") is None:  # no commit yet: HEAD names it
        return _git(directory, "symbolic-ref", "--quiet", "--short", "HEAD") or DEFAULT_BRANCH
    return DEFAULT_BRANCH


def inspect(directory: Path) -> RepoFacts:
    """Read git and the kubeshape config of ``directory`` (an existing directory)."""
    root = _git(directory, "rev-parse", "--show-toplevel")
    config = next((directory / n for n in CONFIG_NAMES if (directory / n).is_file()), None)
    if root is None:
        return RepoFacts(None, "", DEFAULT_BRANCH, config)
    return RepoFacts(Path(root), _git(directory, "remote", "-v") or "", _branch(directory), config)
