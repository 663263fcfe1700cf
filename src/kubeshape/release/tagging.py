"""The release tag scheme (docs/tag-scheme.md).

* HEAD carries a release tag ``vX.Y.Z`` (or ``X.Y.Z``, optionally a SemVer pre-release) → ``X.Y.Z``: a plain
  SemVer that Flux/Argo ``semver`` policies pick up and that sorts above its pre-releases.
* otherwise → ``<branch-slug>-<sha7>-<unix commit time>``: unique (the SHA), traceable (the SHA), sortable by
  the fixed-width timestamp (Flux ``numerical`` policy on the extracted ``ts``).
* a dirty work tree is refused unless allowed; then ``-dirty`` is appended and the tag is *not* traceable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kubeshape.errors import InputError

_NUM = r"(?:0|[1-9]\d*)"
_PRE_ID = r"(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)"
SEMVER = rf"{_NUM}\.{_NUM}\.{_NUM}(?:-{_PRE_ID}(?:\.{_PRE_ID})*)?"
GIT_RELEASE_TAG = re.compile(rf"^v?(?P<version>{SEMVER})$")
BUILD_TAG = re.compile(r"^(?P<branch>[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)-(?P<sha>[0-9a-f]{7,40})-(?P<ts>\d{10})"
                       r"(?P<dirty>-dirty)?$")
SHA_TAG = re.compile(r"^(?:sha-)?(?P<sha>[0-9a-f]{7,40})$")
DIRTY_SUFFIX = "-dirty"
SHORT_SHA = 7
MAX_SLUG = 63
DETACHED = "detached"


class DirtyWorkTree(InputError):
    """The work tree has uncommitted changes, so no tag could name what would be built."""


@dataclass(frozen=True, slots=True)
class GitState:
    """What the tag is computed from."""

    sha: str  # full commit SHA of HEAD
    branch: str | None  # None: detached HEAD
    commit_time: int  # committer date, unix seconds
    tags_at_head: tuple[str, ...] = ()
    dirty_files: tuple[str, ...] = field(default_factory=tuple)

    @property
    def dirty(self) -> bool:
        return bool(self.dirty_files)


@dataclass(frozen=True, slots=True)
class ReleaseTag:
    """A computed tag and what it says."""

    tag: str
    commit: str  # full SHA of the commit it was computed from
    version: str | None  # "1.4.2" for a release, else None
    dirty: bool = False

    @property
    def traceable(self) -> bool:
        """A dirty build names a commit it does not match: never traceable."""
        return not self.dirty

    @property
    def short_sha(self) -> str:
        return self.commit[:SHORT_SHA]


@dataclass(frozen=True, slots=True)
class ParsedTag:
    """What an existing tag says about its build (any scheme kubeshape recognises)."""

    kind: str  # "release" | "build" | "sha" | "unknown"
    version: str | None = None
    commit: str | None = None  # a SHA prefix
    timestamp: int | None = None
    branch: str | None = None
    dirty: bool = False


def slugify(branch: str) -> str:
    """``feature/Login_v2`` → ``feature-login-v2``: lowercase ``[a-z0-9-]``, at most 63 characters."""
    slug = re.sub(r"[^a-z0-9]+", "-", branch.lower()).strip("-")
    slug = slug[:MAX_SLUG].rstrip("-")
    return slug or "branch"


def _version_key(version: str) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
    """SemVer precedence: a release sorts above its pre-releases; numeric identifiers below alphanumeric."""
    core, _, pre = version.partition("-")
    major, minor, patch = (int(x) for x in core.split("."))
    ids = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split(".")) if pre else ()
    return (major, minor, patch, 0 if pre else 1, ids)


def release_version(tags: tuple[str, ...] | list[str]) -> str | None:
    """The highest SemVer among git tags ``vX.Y.Z``/``X.Y.Z`` (``v`` dropped), or None."""
    versions = [m.group("version") for t in tags if (m := GIT_RELEASE_TAG.match(t))]
    return max(versions, key=_version_key) if versions else None


def compute_tag(state: GitState, *, allow_dirty: bool = False) -> ReleaseTag:
    """The tag for HEAD; raises DirtyWorkTree on a dirty work tree unless ``allow_dirty``."""
    if state.dirty and not allow_dirty:
        sample = ", ".join(state.dirty_files[:5]) + (" …" if len(state.dirty_files) > 5 else "")
        raise DirtyWorkTree(f"the work tree has uncommitted changes ({sample}): commit or stash them, or pass "
                            "--allow-dirty (the tag then ends in -dirty and is not traceable)")
    version = release_version(state.tags_at_head)
    if version is not None:
        tag = version
    else:
        branch = slugify(state.branch or DETACHED)
        tag = f"{branch}-{state.sha[:SHORT_SHA]}-{state.commit_time:010d}"
    if state.dirty:
        tag += DIRTY_SUFFIX
    return ReleaseTag(tag, state.sha, version, state.dirty)


def parse_tag(tag: str) -> ParsedTag:
    """Read a tag back: a release version, or the commit and time of a build tag."""
    dirty = tag.endswith(DIRTY_SUFFIX)
    if m := BUILD_TAG.match(tag):
        return ParsedTag("build", commit=m.group("sha"), timestamp=int(m.group("ts")), branch=m.group("branch"),
                         dirty=dirty)
    bare = tag.removesuffix(DIRTY_SUFFIX) if dirty else tag
    if m := GIT_RELEASE_TAG.match(bare):
        return ParsedTag("release", version=m.group("version"), dirty=dirty)
    if (m := SHA_TAG.match(tag)) and re.search(r"[a-f]", m.group("sha")):
        return ParsedTag("sha", commit=m.group("sha"))
    return ParsedTag("unknown", dirty=dirty)
