"""Names and defaults of the webhook's deployment, shared by the CLI and the builders (no heavy imports)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_OUT = Path("kubeshape-webhook-certs")
DEFAULT_NAMESPACE = "kubeshape"
DEFAULT_SERVICE = "kubeshape-webhook"
CA_DAYS = 3650
