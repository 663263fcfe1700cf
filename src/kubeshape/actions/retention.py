"""The retention decision for one registry repository, as a pure function (docs/retention.md).

Every tag gets exactly one decision; the first rule that applies wins:

1. ``in-use``          the cluster or the repo references the tag;
2. ``in-use-digest``   an image reference pins its digest, or it shares the digest of an in-use tag;
3. ``last-known-good`` it is (or shares the digest of) a workload's last known good image;
4. ``interrupted``     DROP: a throw-away manifest left by an interrupted ``prune --apply``;
5. ``digest-unknown`` / ``age-unknown``: kept, nothing proves it is safe to drop;
6. ``keep-tags``       it matches a ``keep_tags`` regex (``re.search``);
7. ``keep-days``       its image is younger than ``keep_days`` days;
8. ``keep-last``       its image is one of the ``keep_last`` newest images (distinct digests, by ``created``);
9. ``expired``         DROP: none of the above.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

# Reproducible builds (ko, bazel, nix, SOURCE_DATE_EPOCH=0) stamp 1970: such a time says nothing about age.
MEANINGFUL_SINCE = datetime(1980, 1, 2, tzinfo=UTC)
DROP_CODES = frozenset({"interrupted", "expired"})


class TagLike(Protocol):
    """What ``plan_prune`` reads of a tag (``inventory.TagInfo`` fits)."""

    @property
    def tag(self) -> str: ...
    @property
    def digest(self) -> str | None: ...
    @property
    def created(self) -> datetime | None: ...


class PolicyLike(Protocol):
    """What ``plan_prune`` reads of a policy (``config.Retention`` fits)."""

    @property
    def keep_last(self) -> int: ...
    @property
    def keep_tags(self) -> list[str]: ...
    @property
    def keep_days(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Decision:
    """Keep or drop ``tag``, with a machine-readable ``code`` and a sentence for people."""

    tag: str
    digest: str | None
    created: datetime | None
    keep: bool
    code: str
    reason: str


def known_created(created: datetime | None) -> datetime | None:
    """``created`` when it says something about age, else None (missing, or a reproducible-build epoch)."""
    return created if created is not None and created >= MEANINGFUL_SINCE else None


def _images(n: int) -> str:
    return f"{n} image" if n == 1 else f"{n} images"


def _newest_images(tags: Sequence[TagLike], n: int, skip: set[str]) -> dict[str, int]:
    """Digest → rank (1 = newest) of the ``n`` newest images by created (ties: by digest)."""
    images: dict[str, datetime] = {}
    for t in tags:
        when = known_created(t.created)
        if t.digest and when is not None and t.tag not in skip:
            images[t.digest] = max(when, images.get(t.digest, when))
    ordered = sorted(images, key=lambda d: (-images[d].timestamp(), d))
    return {d: i + 1 for i, d in enumerate(ordered[:n])}


def plan_prune(tags: Iterable[TagLike], policy: PolicyLike, in_use: set[str], in_use_digests: set[str],
               now: datetime, *, last_known_good: Iterable[str] = (),
               interrupted: Iterable[str] = ()) -> list[Decision]:
    """Decide every tag of one repository (newest first).

    ``in_use``: tags the cluster or repo references; ``in_use_digests``: digests they reference or run.
    ``last_known_good``: tags or digests (``algo:hex``) of workloads' last known good images.
    ``interrupted``: tags that hold a throw-away manifest of an interrupted delete.
    """
    tags = list(tags)
    lkg = set(last_known_good)
    leftovers = set(interrupted)
    used_digests = set(in_use_digests) | {t.digest for t in tags if t.tag in in_use and t.digest}
    good_digests = {x for x in lkg if ":" in x} | {t.digest for t in tags if t.tag in lkg and t.digest}
    twin_of = {t.digest: t.tag for t in sorted(tags, key=lambda t: t.tag, reverse=True) if t.tag in in_use and t.digest}
    patterns = [re.compile(p) for p in policy.keep_tags]
    newest = _newest_images(tags, policy.keep_last, leftovers)
    max_age = timedelta(days=policy.keep_days)

    def decide(t: TagLike) -> Decision:
        def keep(code: str, reason: str) -> Decision:
            return Decision(t.tag, t.digest, t.created, True, code, reason)

        when = known_created(t.created)
        if t.tag in in_use:
            return keep("in-use", "in use")
        if t.digest in used_digests:
            twin = twin_of.get(t.digest)
            return keep("in-use-digest", f"same image as in-use tag {twin}" if twin else "in use by digest")
        if t.tag in lkg or t.digest in good_digests:
            return keep("last-known-good", "last known good of a workload")
        if t.tag in leftovers:
            return Decision(t.tag, t.digest, t.created, False, "interrupted",
                            "throw-away manifest of an interrupted prune")
        if not t.digest:
            return keep("digest-unknown", "digest unknown")
        if when is None:
            return keep("age-unknown", "no usable created time: age unknown")
        for p in patterns:
            if p.search(t.tag):
                return keep("keep-tags", f"matches keep_tags '{p.pattern}'")
        if policy.keep_days and now - when < max_age:
            return keep("keep-days", f"younger than {policy.keep_days} days")
        if t.digest in newest:
            return keep("keep-last", f"one of the newest {_images(policy.keep_last)} (#{newest[t.digest]})")
        why = f"not used, not among the newest {_images(policy.keep_last)}"
        if policy.keep_days:
            why += f", older than {policy.keep_days} days"
        return Decision(t.tag, t.digest, t.created, False, "expired", why)

    def order(t: TagLike) -> tuple[bool, float, str]:
        when = known_created(t.created)
        return (when is None, -when.timestamp() if when else 0.0, t.tag)

    return [decide(t) for t in sorted(tags, key=order)]
