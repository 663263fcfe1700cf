"""The git side of ``init gitops``: when files were last committed, what is uncommitted, moves and commits."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from kubeshape.errors import InputError
from kubeshape.redact import redact_text


def _env() -> dict[str, str]:
    return {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=120,
                              env=_env(), check=False)
    except FileNotFoundError:
        raise InputError("git is not installed -- init gitops moves files with git mv") from None
    except subprocess.TimeoutExpired:
        raise InputError(f"git {args[0]} in {root} did not finish within 120s") from None


def git(root: Path, *args: str) -> str:
    """Run git in ``root``; InputError with git's own message when it fails."""
    proc = _run(root, *args)
    if proc.returncode != 0:
        why = (proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}").splitlines()[-1]
        raise InputError(f"git {' '.join(args[:2])} failed in {root}: {redact_text(why)}")
    return proc.stdout


def toplevel(directory: Path) -> Path | None:
    """The top of the git work tree holding ``directory``, or None."""
    proc = _run(directory, "rev-parse", "--show-toplevel")
    return Path(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip() else None


def has_commits(root: Path) -> bool:
    return _run(root, "rev-parse", "--verify", "--quiet", "HEAD").returncode == 0


def commit_times(root: Path, rels: list[str]) -> dict[str, int]:
    """Unix time of the last commit that touched each of ``rels`` (absent: never committed)."""
    if not rels or not has_commits(root):
        return {}
    out: dict[str, int] = {}
    stamp = 0
    for line in git(root, "log", "--format=%x00%ct", "--name-only", "--no-renames", "--", *rels).splitlines():
        if line.startswith("\0"):
            stamp = int(line[1:] or 0)
        elif line and line not in out:
            out[line] = stamp
    return out


def uncommitted(root: Path, rels: list[str]) -> list[str]:
    """Those of ``rels`` with changes git has not committed (modified, staged, untracked, deleted)."""
    if not rels:
        return []
    raw = git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *rels)
    entries = raw.split("\0")
    out: list[str] = []
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        out.append(entry[3:])
        if entry[0] in "RC":
            i += 1  # the rename's source follows
    return sorted(set(out))


def tracked(root: Path, rel: str) -> bool:
    return _run(root, "ls-files", "--error-unmatch", "--", rel).returncode == 0


def remote_url(root: Path) -> str | None:
    """``origin``'s URL, else the only remote's; None without remotes."""
    proc = _run(root, "remote", "get-url", "origin")
    if proc.returncode == 0 and proc.stdout.strip():
        return proc.stdout.strip()
    names = _run(root, "remote").stdout.split()
    if len(names) == 1:
        proc = _run(root, "remote", "get-url", names[0])
        return proc.stdout.strip() or None
    return None


def current_branch(root: Path) -> str | None:
    proc = _run(root, "symbolic-ref", "--quiet", "--short", "HEAD")
    return proc.stdout.strip() or None if proc.returncode == 0 else None


_SCP = re.compile(r"^(?P<user>[\w.-]+@)?(?P<host>[\w.-]+):(?P<path>(?!//)[^\s]+)$")
_USERINFO = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@]*@", re.I)


def flux_url(url: str) -> tuple[str, bool]:
    """``url`` as Flux's GitRepository takes it: scp-like ``git@host:owner/repo`` becomes ``ssh://``; credentials
    in an http(s) URL are dropped. Returns the URL and whether credentials were dropped."""
    m = _SCP.match(url)
    if m and "://" not in url:
        return f"ssh://{m['user'] or ''}{m['host']}/{m['path']}", False
    if url.lower().startswith(("http://", "https://")) and _USERINFO.match(url):
        return _USERINFO.sub(r"\g<scheme>", url), True
    return url, False
