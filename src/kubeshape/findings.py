"""The finding model shared by rules, reports, admission and metrics."""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.IntEnum):
    """How bad a finding is; ordered so that ``max()`` gives the worst."""

    INFO = 1
    WARNING = 2
    ERROR = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str) -> Severity:
        try:
            return cls[value.upper()]
        except KeyError:
            raise ValueError(f"unknown severity {value!r}: use info, warning or error") from None


FAMILIES: dict[int, str] = {
    1: "Images",
    2: "Manifests",
    3: "Pipeline",
    4: "Registry",
    5: "Stability",
    6: "Orphans",
    7: "Observability",
}

FAMILY_TITLES: dict[int, str] = {
    1: "Image registry chaos",
    2: "Deployment manifest fragmentation",
    3: "Missing CI/CD pipeline",
    4: "No image tagging strategy",
    5: "Restart storms, crash loops and log floods",
    6: "Orphaned resources",
    7: "Missing observability infrastructure",
}


@dataclass(frozen=True, slots=True, order=True)
class ObjectRef:
    """A Kubernetes object (or a registry repository) a finding is about."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{ns}{self.kind}/{self.name}"

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name}


@dataclass(slots=True)
class Finding:
    """What is wrong, on which object, the evidence, the root cause and the exact fix."""

    rule: str
    severity: Severity
    family: int
    object: ObjectRef | None
    message: str
    evidence: list[str] = field(default_factory=list)
    fix: str = ""
    root_cause: str = ""
    file: str | None = None
    line: int | None = None
    source: str = "repo"
    data: dict[str, Any] = field(default_factory=dict)
    # Findings with the same dedupe key are one problem seen from two sources (file and live).
    dedupe: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The stable JSON contract for one finding."""
        return {
            "rule": self.rule,
            "severity": self.severity.label,
            "family": self.family,
            "object": self.object.as_dict() if self.object else None,
            "file": self.file,
            "line": self.line,
            "message": self.message,
            "evidence": list(self.evidence),
            "root_cause": self.root_cause,
            "fix": self.fix,
            "source": self.source,
            "data": self.data,
        }


def fingerprint(f: Finding) -> str:
    """A stable identity for a finding across runs: no line numbers, and counts in a message without a dedupe
    key do not matter (SARIF ``partialFingerprints`` and finding IDs use it)."""
    key = f.dedupe or re.sub(r"\d+", "#", f.message)
    parts = (f.rule, str(f.object or ""), f.file or "", key)
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def finding_id(f: Finding) -> str:
    """``KS105-3f9a2c``: the rule and the start of the fingerprint, for ``kubeshape explain``."""
    return f"{f.rule}-{fingerprint(f)[:6]}"
