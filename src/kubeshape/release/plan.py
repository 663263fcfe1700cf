"""What a release will do, decided before its first side effect and kept in the journal: the image, the file,
the Deployments with their images before and after, the last known good each one returns to on failure, and for
a GitOps release the remote, branch and Flux objects it goes through."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from kubeshape.imageref import InvalidReference, parse
from kubeshape.release.rollout import Outcome


@dataclass
class Target:
    """A live Deployment a release updates: container → image before, after, and at the last known good."""

    namespace: str
    name: str
    before: dict[str, str]
    after: dict[str, str]
    lkg: dict[str, str] = field(default_factory=dict)  # empty: history knows no good revision (use ``before``)
    lkg_digest: str | None = None
    lkg_revision: int | None = None
    rollback: Outcome | None = None

    @property
    def restore(self) -> dict[str, str]:
        """The images a rollback sets: the last known good, else what ran before."""
        return {c: self.lkg.get(c, i) for c, i in self.before.items()}

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "rollback"}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Target:
        return cls(**{f.name: doc[f.name] for f in fields(cls) if f.name in doc and f.name != "rollback"})


@dataclass
class Plan:
    service: str
    tag: str
    tag_commit: str  # the full SHA the tag names
    image: str  # name:tag as deployed
    ref_name: str  # the repository as manifests name it
    digest: str | None = None
    subject: str = ""  # the commit subject and the change-cause
    file: str | None = None
    kind: str | None = None  # "manifest" | "kustomization"
    container: str | None = None  # the file's container that runs the image
    commit: bool = True
    adopt: str | None = None  # the live image to write into the file first (--adopt-live)
    targets: list[Target] = field(default_factory=list)
    kubeconfig: str | None = None
    context: str | None = None
    watch: bool = False
    rollback_on_failure: bool = False
    poll: float = 1.0
    timeout: float | None = None
    notes: list[str] = field(default_factory=list)
    stall_after: float | None = 30.0  # failed pulls on new pods for this long fail the rollout (None: deadline)
    gitops: str | None = None  # "flux": push the commit and let Flux apply it (never patch the workload)
    flux_source: str | None = None  # the GitRepository, "namespace/name"
    flux_kustomizations: list[str] = field(default_factory=list)  # "namespace/name" of each deploying one
    git_remote: str | None = None  # the remote the GitRepository follows
    git_branch: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc = {f.name: getattr(self, f.name) for f in fields(self)}
        doc["targets"] = [t.to_json() for t in self.targets]
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Plan:
        kwargs = {f.name: doc[f.name] for f in fields(cls) if f.name in doc}
        kwargs["targets"] = [Target.from_json(t) for t in doc.get("targets") or []]
        return cls(**kwargs)

    @property
    def lkg_image(self) -> str | None:
        """The one image every target returns to (None when they differ or nothing is known)."""
        images = {i for t in self.targets for i in t.restore.values()}
        return images.pop() if len(images) == 1 else None

    @property
    def lkg_digest(self) -> str | None:
        digests = {t.lkg_digest for t in self.targets if t.lkg_digest}
        return digests.pop() if len(digests) == 1 else None


def tag_of(image: str) -> str:
    """The tag (or digest) of an image reference, for messages."""
    try:
        ref = parse(image)
    except InvalidReference:
        return image
    return ref.tag or ref.digest or image
