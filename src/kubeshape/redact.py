"""Keep secret values out of bundles, reports, logs and errors."""

from __future__ import annotations

import re
from typing import Any

import orjson

REDACTED = "<redacted>"
SECRET_NAME = re.compile(r"(PASS(WORD|WD)?|SECRET|TOKEN|API_?KEY|PRIVATE|CREDENTIAL|AUTH|SESSION|COOKIE|DSN|"
                         r"CONN(ECTION)?_?STR|ACCESS_?KEY|_KEY$|^KEY$)", re.I)
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^/@:\s]+):(?P<pw>[^/@\s]+)@", re.I)


def is_secret_name(name: str) -> bool:
    """True for environment variable names that usually hold secrets (DB_PASSWORD, API_TOKEN, …)."""
    return bool(SECRET_NAME.search(name))


def redact_value(name: str, value: str) -> str:
    """The value to show for env var ``name``: redacted when the name looks secret; URL passwords masked."""
    if is_secret_name(name):
        return REDACTED
    return _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", value)


def _redact_env(containers: Any) -> None:
    for c in containers or []:
        if not isinstance(c, dict):
            continue
        for env in c.get("env") or []:
            if isinstance(env, dict) and isinstance(env.get("value"), str):
                env["value"] = redact_value(str(env.get("name", "")), env["value"])


def _walk_pod_specs(node: Any, depth: int = 0) -> None:
    if depth > 6 or not isinstance(node, dict):
        return
    for key in ("containers", "initContainers", "ephemeralContainers"):
        if key in node:
            _redact_env(node[key])
    for key in ("spec", "template", "jobTemplate"):
        if key in node:
            _walk_pod_specs(node[key], depth + 1)


def redact_object(raw: dict[str, Any]) -> dict[str, Any]:
    """Redact secret-looking env values in any pod spec or template of ``raw`` (in place) and in its
    last-applied-configuration annotation."""
    _walk_pod_specs(raw)
    meta = raw.get("metadata")
    if isinstance(meta, dict):
        ann = meta.get("annotations")
        applied_text = ann.get(LAST_APPLIED) if isinstance(ann, dict) else None
        # Parse only what can hold secrets: a Secret, or an object with env values.
        if isinstance(ann, dict) and isinstance(applied_text, str) and (
                '"env"' in applied_text or '"Secret"' in applied_text or '"data"' in applied_text):
            try:
                applied = orjson.loads(ann[LAST_APPLIED])
            except orjson.JSONDecodeError:
                ann[LAST_APPLIED] = REDACTED
            else:
                if isinstance(applied, dict):
                    if applied.get("kind") == "Secret":
                        ann[LAST_APPLIED] = REDACTED
                    else:
                        _walk_pod_specs(applied)
                        ann[LAST_APPLIED] = orjson.dumps(applied).decode()
    return raw
