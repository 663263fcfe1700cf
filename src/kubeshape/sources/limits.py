"""Bounds on what reading a bundle may cost, each overridable by an environment variable.

The defaults fit a real 5,000-node cluster; they exist so that a hostile or broken bundle (a gzip bomb,
a million members, JSON nested ten thousand deep) ends with a one-line error instead of eating the machine.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from kubeshape.errors import InputError

KIB, MIB, GIB = 1024, 1024**2, 1024**3
_ORJSON_MAX_DEPTH = 1024  # orjson refuses deeper documents by itself
_SIZE = re.compile(r"\s*(\d+)\s*(k|kb|kib|m|mb|mib|g|gb|gib)?\s*", re.I)
_UNITS = {"": 1, "k": KIB, "m": MIB, "g": GIB}


@dataclass(frozen=True, slots=True)
class Limits:
    """What one bundle may hold; see ``ENV`` for the variable that overrides each field."""

    max_bytes: int = 4 * GIB  # decompressed bytes of all members, read or skipped
    max_members: int = 200_000  # archive members or directory files
    max_log_bytes: int = 1 * MIB  # per log tail; only the end of a longer log is read
    max_json_depth: int = 512  # nesting of arrays and objects in one JSON file
    max_ratio: int = 200  # decompressed/compressed bytes, checked once past ``ratio_floor``
    ratio_floor: int = 64 * MIB

    @property
    def json_pad(self) -> int:
        """Arrays to wrap a JSON document in so that orjson's own depth limit (1024) enforces ours."""
        return _ORJSON_MAX_DEPTH - self.max_json_depth

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, configured: dict[str, str] | None = None) -> Limits:
        """The defaults, then ``configured`` (kubeshape.yaml ``limits:``), then any ``KUBESHAPE_BUNDLE_*``
        variable."""
        env = os.environ if environ is None else environ
        values: dict[str, int] = {}
        for field_name, text in (configured or {}).items():
            values[field_name] = _parse(f"kubeshape.yaml: limits.bundle_{field_name}", text)
        for field_name, var in ENV.items():
            if value := env.get(var):
                values[field_name] = _parse(var, value)
        limits = cls(**values)
        if not 1 <= limits.max_json_depth < _ORJSON_MAX_DEPTH:
            raise InputError(f"{ENV['max_json_depth']}={limits.max_json_depth}: must be between 1 and "
                             f"{_ORJSON_MAX_DEPTH - 1}")
        return limits


ENV: dict[str, str] = {
    "max_bytes": "KUBESHAPE_BUNDLE_MAX_BYTES",
    "max_members": "KUBESHAPE_BUNDLE_MAX_MEMBERS",
    "max_log_bytes": "KUBESHAPE_BUNDLE_MAX_LOG_BYTES",
    "max_json_depth": "KUBESHAPE_BUNDLE_MAX_JSON_DEPTH",
    "max_ratio": "KUBESHAPE_BUNDLE_MAX_RATIO",
}


def _parse(var: str, text: str) -> int:
    m = _SIZE.fullmatch(text)
    if not m or int(m[1]) <= 0:
        raise InputError(f"{var}={text!r}: expected a positive number, optionally with K, M or G (binary units)")
    return int(m[1]) * _UNITS[(m[2] or "")[:1].lower()]


def human_bytes(n: int) -> str:
    """``4 GiB``, ``1 MiB``, ``300 B``."""
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) or value >= 10 else f"{value:.1f} {unit}"
    return f"{n} B"
