"""Kubernetes timestamps and human durations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def parse_time(value: object) -> datetime | None:
    """Parse an RFC 3339 timestamp as Kubernetes writes it; None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def format_time(dt: datetime | None) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if dt else ""


def human_duration(delta: timedelta) -> str:
    """``2d3h``, ``105m``, ``40s``: kubectl-style ages."""
    secs = int(delta.total_seconds())
    if secs < 0:
        secs = 0
    if secs < 120:
        return f"{secs}s"
    if secs < 3 * 3600:
        return f"{secs // 60}m"
    if secs < 48 * 3600:
        h, m = divmod(secs // 60, 60)
        return f"{h}h{m}m" if m else f"{h}h"
    d, h = divmod(secs // 3600, 24)
    return f"{d}d{h}h" if h else f"{d}d"
