"""The retention decision for one registry repository, as a pure function (docs/retention.md).

Every tag gets exactly one decision; the first rule that applies wins:

1. ``in-use``          the cluster or the repo references the tag;
2. ``in-use-digest``   an image reference pins its digest, or it shares the digest of an in-use tag;
3. ``last-known-good`` it is (or shares the digest of) a workload's last known good image;
4. ``rollback-target`` it is (or shares the digest of) an image of a Deployment's retained old revision;
5. ``interrupted``     DROP: a throw-away manifest left by an interrupted ``prune --apply``;
6. ``digest-unknown`` / ``age-unknown``: kept, nothing proves it is safe to drop;
7. ``keep-tags``       it matches a ``keep_tags`` regex (``re.search``);
8. ``keep-days``       its image is younger than ``keep_days`` days;
9. ``keep-last``       its image is one of the ``keep_last`` newest images (distinct digests, ``ordering``);
10. ``expired``        DROP: none of the above, unless it is a build tag whose image stays for another tag
    (``dates-kept-image``: its commit time is what orders that image).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from kubeshape.actions.ordering import TagLike, build_time, image_times, known_created, newest_first

DROP_CODES = frozenset({"interrupted", "expired"})


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


def _images(n: int) -> str:
    return f"{n} image" if n == 1 else f"{n} images"


def _newest_images(tags: Sequence[TagLike], n: int, skip: set[str]) -> dict[str, int]:
    """Digest → rank (1 = newest) of the ``n`` newest images (``ordering.image_times``; ties: given order)."""
    kept = [t for t in tags if t.tag not in skip]
    times = image_times(kept)
    ordered: list[str] = []
    for t in newest_first([t for t in kept if t.digest in times]):
        if t.digest and t.digest not in ordered:
            ordered.append(t.digest)
    return {d: i + 1 for i, d in enumerate(ordered[:n])}


def _age(t: TagLike, times: dict[str, datetime]) -> datetime | None:
    """The newest usable time of ``t``'s image (ordering time or ``created``): keep_days never drops a fresh
    rebuild of an old commit."""
    found = [w for w in (times.get(t.digest) if t.digest else build_time(t.tag), known_created(t.created)) if w]
    return max(found) if found else None


def plan_prune(tags: Iterable[TagLike], policy: PolicyLike, in_use: set[str], in_use_digests: set[str],
               now: datetime, *, last_known_good: Iterable[str] = (), rollback_targets: Iterable[str] = (),
               interrupted: Iterable[str] = ()) -> list[Decision]:
    """Decide every tag of one repository (newest first, ``ordering.newest_first``).

    ``in_use``: tags the cluster or repo references; ``in_use_digests``: digests they reference or run.
    ``last_known_good``: tags or digests (``algo:hex``) of workloads' last known good images.
    ``rollback_targets``: tags or digests of the images of Deployments' retained old revisions.
    ``interrupted``: tags that hold a throw-away manifest of an interrupted delete.
    """
    tags = list(tags)
    lkg = set(last_known_good)
    rollback = set(rollback_targets)
    leftovers = set(interrupted)
    used_digests = set(in_use_digests) | {t.digest for t in tags if t.tag in in_use and t.digest}
    good_digests = {x for x in lkg if ":" in x} | {t.digest for t in tags if t.tag in lkg and t.digest}
    rollback_digests = {x for x in rollback if ":" in x} | {t.digest for t in tags if t.tag in rollback and t.digest}
    twin_of = {t.digest: t.tag for t in sorted(tags, key=lambda t: t.tag, reverse=True) if t.tag in in_use and t.digest}
    patterns = [re.compile(p) for p in policy.keep_tags]
    newest = _newest_images(tags, policy.keep_last, leftovers)
    times = image_times([t for t in tags if t.tag not in leftovers])
    max_age = timedelta(days=policy.keep_days)

    def decide(t: TagLike) -> Decision:
        def keep(code: str, reason: str) -> Decision:
            return Decision(t.tag, t.digest, t.created, True, code, reason)

        if t.tag in in_use:
            return keep("in-use", "in use")
        if t.digest in used_digests:
            twin = twin_of.get(t.digest)
            return keep("in-use-digest", f"same image as in-use tag {twin}" if twin else "in use by digest")
        if t.tag in lkg or t.digest in good_digests:
            return keep("last-known-good", "last known good of a workload")
        if t.tag in rollback or t.digest in rollback_digests:
            return keep("rollback-target", "rollback target of a Deployment")
        if t.tag in leftovers:
            return Decision(t.tag, t.digest, t.created, False, "interrupted",
                            "throw-away manifest of an interrupted prune")
        if not t.digest:
            return keep("digest-unknown", "digest unknown")
        age = _age(t, times)
        if age is None:
            return keep("age-unknown", "no build tag time and no usable created time: age unknown")
        for p in patterns:
            if p.search(t.tag):
                return keep("keep-tags", f"matches keep_tags '{p.pattern}'")
        if policy.keep_days and now - age < max_age:
            return keep("keep-days", f"younger than {policy.keep_days} days")
        if t.digest in newest:
            return keep("keep-last", f"one of the newest {_images(policy.keep_last)} (#{newest[t.digest]})")
        why = f"not used, not among the newest {_images(policy.keep_last)}"
        if policy.keep_days:
            why += f", older than {policy.keep_days} days"
        return Decision(t.tag, t.digest, t.created, False, "expired", why)

    decisions = [decide(t) for t in newest_first(tags)]
    stays = {x.digest: x.tag for x in reversed(decisions) if x.keep and x.digest}

    def dates_kept_image(x: Decision) -> Decision:
        # Dropping it would free nothing and make the image look as new as its config says: the next plan
        # could then rank it among the newest and drop an image this plan keeps.
        if x.code == "expired" and x.digest in stays and build_time(x.tag) is not None:
            return Decision(x.tag, x.digest, x.created, True, "dates-kept-image",
                            f"its commit time dates an image that stays (tag {stays[x.digest]})")
        return x

    return [dates_kept_image(x) for x in decisions]
