"""What every renderer receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubeshape.findings import Finding


@dataclass(slots=True)
class Metric:
    """One of the seed's success metrics: the value now against its target."""

    key: str
    title: str
    value: float | None
    unit: str
    target: str
    ok: bool | None
    detail: str = ""

    def display(self) -> str:
        if self.value is None:
            return "n/a"
        if self.unit == "%":
            return f"{self.value:.0f}%"
        if float(self.value).is_integer():
            return f"{int(self.value)}{(' ' + self.unit) if self.unit else ''}"
        return f"{self.value:.1f}{(' ' + self.unit) if self.unit else ''}"

    def as_dict(self) -> dict[str, Any]:
        return {"title": self.title, "value": self.value, "unit": self.unit, "target": self.target,
                "ok": self.ok, "detail": self.detail}


@dataclass(slots=True)
class Report:
    """Findings plus the context a reader needs to trust them."""

    findings: list[Finding]
    metrics: list[Metric] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    blind_spots: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    suppressed: int = 0
    generated_at: datetime | None = None
    command: str = "doctor"
    tool_version: str = ""
