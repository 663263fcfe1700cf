"""Which images of a repository are the newest (docs/retention.md, "Which images are newest").

kubeshape's own build tags (docs/tag-scheme.md, ``<branch>-<sha7>-<unix commit time>``) carry their commit
time, which orders their image. Other images, SemVer releases included, are ordered by their image config
``created``; equal times put the later SemVer release first, then keep the registry's order, as do images
with no usable time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cmp_to_key
from typing import Protocol, TypeVar

from kubeshape.release.tagging import parse_tag, release_version

# Reproducible builds (ko, bazel, nix, SOURCE_DATE_EPOCH=0) stamp 1970: such a time says nothing about age.
MEANINGFUL_SINCE = datetime(1980, 1, 2, tzinfo=UTC)


class TagLike(Protocol):
    """What ordering reads of a tag (``inventory.TagInfo`` fits)."""

    @property
    def tag(self) -> str: ...
    @property
    def digest(self) -> str | None: ...
    @property
    def created(self) -> datetime | None: ...


T = TypeVar("T", bound=TagLike)


def known_created(created: datetime | None) -> datetime | None:
    """``created`` when it says something about age, else None (missing, or a reproducible-build epoch)."""
    return created if created is not None and created >= MEANINGFUL_SINCE else None


def build_time(tag: str) -> datetime | None:
    """The commit time a build tag (``main-abc1234-1763373600``) carries, else None."""
    parsed = parse_tag(tag)
    if parsed.kind != "build" or parsed.timestamp is None:
        return None
    return known_created(datetime.fromtimestamp(parsed.timestamp, UTC))


def _by_precedence(a: str, b: str) -> int:
    """Compare two SemVer versions by precedence (a release above its pre-releases)."""
    if a == b:
        return 0
    return 1 if release_version([a, b]) == a else -1


def _release_ranks(tags: Sequence[TagLike]) -> dict[str, int]:
    """Digest → rank of its highest SemVer release tag (higher = later release); images without one: absent."""
    versions: dict[str, list[str]] = {}
    for t in tags:
        parsed = parse_tag(t.tag)
        if t.digest and parsed.kind == "release" and parsed.version is not None:
            versions.setdefault(t.digest, []).append(parsed.version)
    ordered = sorted({v for vs in versions.values() for v in vs}, key=cmp_to_key(_by_precedence))
    rank = {v: i for i, v in enumerate(ordered)}
    return {digest: max(rank[v] for v in vs) for digest, vs in versions.items()}


def image_times(tags: Sequence[TagLike]) -> dict[str, datetime]:
    """Digest → the time that orders the image (images with no usable time are left out).

    The commit time of the image's build tags (the newest, when several) wins over its config ``created``:
    an image rebuilt today from an old commit is old. Each image's time depends on its own tags only, so
    pruning other images never reorders the ones that stay.
    """
    built: dict[str, datetime] = {}
    created: dict[str, datetime] = {}
    for t in tags:
        if not t.digest:
            continue
        if (when := build_time(t.tag)) is not None:
            built[t.digest] = max(when, built.get(t.digest, when))
        elif (when := known_created(t.created)) is not None:
            created[t.digest] = max(when, created.get(t.digest, when))
    return {**created, **built}


def newest_first(tags: Sequence[T]) -> list[T]:
    """``tags`` newest image first (``image_times``); equal times: the later SemVer release first, then the
    given (registry) order; unknown times last."""
    times = image_times(tags)
    ranks = _release_ranks(tags)

    def key(t: T) -> tuple[bool, float, int]:
        when = times.get(t.digest) if t.digest else build_time(t.tag) or known_created(t.created)
        rank = ranks.get(t.digest, -1) if t.digest else -1
        return (when is None, -when.timestamp() if when is not None else 0.0, -rank)

    return sorted(tags, key=key)
