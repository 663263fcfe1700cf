"""The git operations a release needs: HEAD's state, committing one file, reverting a commit, and for a GitOps
release the remotes, fetching and pushing one branch."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from kubeshape.errors import InputError
from kubeshape.release.tagging import GitState


class GitError(InputError):
    """A git command failed (its stderr's first line is in the message)."""


class PushRejected(GitError):
    """The remote refused a push (not a fast-forward, a server hook, a protected branch): nothing was pushed."""


_CREDENTIALS = re.compile(r"(\w+://)[^@/\s]*@")


def redact_url(url: str) -> str:
    """``url`` (or any text) without the user and password an https URL may carry."""
    return _CREDENTIALS.sub(r"\1", url)


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return redact_url(lines[0]) if lines else "no output"


class GitRepo:
    """One git work tree (``root`` is its top-level directory)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def discover(cls, path: Path) -> GitRepo:
        """The work tree containing ``path``; raise GitError when there is none."""
        if shutil.which("git") is None:
            raise GitError("git is not installed: a release computes its tag from git")
        start = path if path.is_dir() else path.parent
        if not start.exists():
            raise GitError(f"{path}: no such directory")
        try:
            top = _run(start, "rev-parse", "--show-toplevel")
        except GitError:
            raise GitError(f"{path}: not inside a git work tree (a release tag names a commit)") from None
        return cls(Path(top.strip()))

    def git(self, *args: str) -> str:
        return _run(self.root, *args)

    def state(self) -> GitState:
        """HEAD's SHA, branch, commit time, tags and the dirty files."""
        try:
            sha = self.git("rev-parse", "--verify", "HEAD^{commit}").strip()
        except GitError:
            raise GitError(f"{self.root}: the repository has no commit yet") from None
        branch = self.git("rev-parse", "--abbrev-ref", "HEAD").strip()
        if branch == "HEAD":  # detached: CI checkouts name the branch in the environment
            branch = next((os.environ[v] for v in ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME")
                           if os.environ.get(v)), "")
        commit_time = int(self.git("log", "-1", "--format=%ct", "HEAD").strip())
        tags = tuple(self.git("tag", "--points-at", "HEAD").split())
        return GitState(sha, branch or None, commit_time, tags, tuple(self.dirty_files()))

    def dirty_files(self, *paths: Path) -> list[str]:
        """Changed, staged or untracked files (``.gitignore`` respected), optionally only under ``paths``."""
        args = ["status", "--porcelain=v1", "-z", "--untracked-files=all"]
        if paths:
            args += ["--", *(self.rel(p) for p in paths)]
        out = self.git(*args)
        entries = [e for e in out.split("\0") if e]
        files: list[str] = []
        skip = False
        for entry in entries:
            if skip:  # the source path of a rename
                skip = False
                continue
            files.append(entry[3:])
            skip = entry[0] in "RC"
        return files

    def rel(self, path: Path) -> str:
        """``path`` relative to the work tree, as git names it."""
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            raise GitError(f"{path} is not inside the git work tree {self.root}") from None

    def remote_url(self) -> str | None:
        """``origin``'s URL without credentials, for the image's source label."""
        try:
            url = self.git("remote", "get-url", "origin").strip()
        except GitError:
            return None
        return redact_url(url) or None

    def remotes(self) -> dict[str, str]:
        """Remote name → fetch URL (credentials included: never print them, see ``redact_url``)."""
        out: dict[str, str] = {}
        for line in self.git("remote", "-v").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2] == "(fetch)":
                out.setdefault(parts[0], parts[1])
        return out

    def fetch(self, remote: str, branch: str) -> str | None:
        """Fetch ``branch`` of ``remote``; the SHA it points at, None when the remote has no such branch."""
        proc = _proc(self.root, "fetch", "--quiet", "--no-tags", remote, f"refs/heads/{branch}")
        if proc.returncode != 0:
            if "couldn't find remote ref" in proc.stderr:
                return None
            raise GitError(f"git fetch {remote} {branch} failed in {self.root}: {_first_line(proc.stderr)}")
        return self.git("rev-parse", "FETCH_HEAD").strip()

    def is_ancestor(self, ancestor: str, commit: str) -> bool | None:
        """Whether ``ancestor`` is ``commit`` or one of its ancestors; None when git knows either not."""
        code = _proc(self.root, "merge-base", "--is-ancestor", ancestor, commit).returncode
        return True if code == 0 else False if code == 1 else None

    def count(self, revisions: str) -> int:
        """How many commits ``git rev-list`` lists for ``revisions`` (e.g. ``A..B``)."""
        return int(self.git("rev-list", "--count", revisions).strip() or 0)

    def remote_contains(self, remote: str, branch: str, sha: str) -> bool:
        """Fetch ``branch`` of ``remote``: does it hold commit ``sha``?"""
        tip = self.fetch(remote, branch)
        return tip is not None and bool(self.is_ancestor(sha, tip))

    def push(self, remote: str, sha: str, branch: str) -> None:
        """Push commit ``sha`` to ``branch`` of ``remote`` (a fast-forward); raise PushRejected when the remote
        refuses it, GitError when it cannot be reached."""
        proc = _proc(self.root, "push", "--porcelain", remote, f"{sha}:refs/heads/{branch}")
        if proc.returncode == 0:
            return
        refused = [ln.split("\t")[-1].strip() for ln in proc.stdout.splitlines() if ln.startswith("!")]
        said = [ln.removeprefix("remote:").strip() for ln in proc.stderr.splitlines() if ln.startswith("remote:")]
        said = [ln for ln in said if ln and not ln.lower().startswith("error: hook declined")]
        url = redact_url(self.remotes().get(remote, remote))
        if refused:
            why = refused[0] + (f" -- the server said: {said[0]}" if said else "")
            raise PushRejected(f"git push of {sha[:12]} to {remote} ({url}) branch {branch} was rejected: {why}")
        raise GitError(f"git push to {remote} ({url}) branch {branch} failed: {_first_line(proc.stderr)}")

    def reset_keep(self, sha: str) -> None:
        """Move the branch back to ``sha``, updating the files that change (refused over local edits)."""
        self.git("reset", "--quiet", "--keep", sha)

    def commit_file(self, path: Path, message: str) -> str:
        """Commit ``path`` alone (other staged changes stay staged); returns the new HEAD SHA."""
        rel = self.rel(path)
        self.git("add", "--", rel)
        try:
            self.git("commit", "--quiet", "-m", message, "--only", "--", rel)
        except GitError as exc:  # a hook refused it: say so (the caller restores the file and unstages it)
            raise GitError(f"git commit of {rel} failed (a hook or git itself refused it): {exc}") from None
        return self.git("rev-parse", "HEAD").strip()

    def revert(self, sha: str, message: str) -> str:
        """A commit undoing ``sha`` with ``message``; returns its SHA."""
        try:
            self.git("revert", "--no-commit", sha)
        except GitError:
            _run(self.root, "revert", "--abort", check=False)
            raise
        self.git("commit", "--quiet", "-m", message)
        return self.git("rev-parse", "HEAD").strip()

    def git_quiet(self, *args: str) -> None:
        """Run git, ignoring failure (clean-up after a failed command)."""
        _run(self.root, *args, check=False)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()


def _proc(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=120,
                              check=False, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(f"git {args[0]}: {redact_url(str(exc))}") from None


def _run(cwd: Path, *args: str, check: bool = True) -> str:
    proc = _proc(cwd, *args)
    if check and proc.returncode != 0:
        raise GitError(f"git {' '.join(args[:2])} failed in {cwd}: {_first_line(proc.stderr or proc.stdout)}")
    return proc.stdout
