"""Load what rules need from a git repository: commits (to trace image tags), tags, remotes and branch heads
(to tell whether Flux applied what was pushed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from kubeshape.inventory import GitSource


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def load_git(root: Path) -> GitSource | None:
    """Commits reachable from any ref, HEAD and tags; None when ``root`` is not in a git work tree."""
    if shutil.which("git") is None:
        return None
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None:
        return None
    head = (_git(root, "rev-parse", "--verify", "-q", "HEAD") or "").strip() or None
    commits = frozenset((_git(root, "rev-list", "--all") or "").split())
    tags: dict[str, str] = {}
    for line in (_git(root, "show-ref", "--tags", "-d") or "").splitlines():
        sha, _, ref = line.partition(" ")
        name = ref.removeprefix("refs/tags/").removesuffix("^{}")
        tags[name] = sha
    return GitSource(root=top.strip(), head=head, commits=commits, tags=tags, remotes=_remotes(root),
                     branches=_branches(root))


def _remotes(root: Path) -> dict[str, str]:
    """Remote name → fetch URL (``remote.<name>.url``)."""
    out: dict[str, str] = {}
    for line in (_git(root, "config", "--get-regexp", r"^remote\..*\.url$") or "").splitlines():
        key, _, url = line.partition(" ")
        name = key.removeprefix("remote.").removesuffix(".url")
        if name and url:
            out[name] = url.strip()
    return out


def _branches(root: Path) -> dict[str, tuple[str, int]]:
    """Local and remote-tracking branches (``main``, ``origin/main``) → (commit, committer time)."""
    out: dict[str, tuple[str, int]] = {}
    text = _git(root, "for-each-ref", "--format=%(refname) %(objectname) %(committerdate:unix)",
                "refs/heads", "refs/remotes") or ""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or not parts[2].isdigit():
            continue
        ref, sha, when = parts
        name = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else ref.removeprefix("refs/remotes/")
        if not name.endswith("/HEAD"):
            out[name] = (sha, int(when))
    return out
