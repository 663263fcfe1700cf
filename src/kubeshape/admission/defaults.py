"""Names and defaults of the webhook's deployment, shared by the CLI and the builders (no heavy imports)."""

from __future__ import annotations

import re
from pathlib import Path

from kubeshape.errors import InputError

DEFAULT_OUT = Path("kubeshape-webhook-certs")
DEFAULT_NAMESPACE = "kubeshape"
DEFAULT_SERVICE = "kubeshape-webhook"
CA_DAYS = 3650

_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def check_dns_label(value: str, what: str) -> str:
    """``value`` if it is a DNS-1123 label (the form of namespace and Service names); else an InputError."""
    if not _DNS_LABEL.fullmatch(value):
        raise InputError(f"{what} {value!r}: not a valid name -- use lowercase letters, digits and '-' "
                         "(at most 63, starting and ending with a letter or digit)")
    return value
