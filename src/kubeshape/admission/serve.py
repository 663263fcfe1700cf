"""Run the webhook: TLS on uvicorn, the cluster cache and the registry look-up started beside it."""

from __future__ import annotations

import gc
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from kubeshape.admission.app import Settings, create_app
from kubeshape.errors import InputError


@dataclass(frozen=True, slots=True)
class Listen:
    host: str
    port: int
    cert_file: Path
    key_file: Path


def check_tls(listen: Listen) -> None:
    """Load the serving certificate and key once before starting, so a bad pair is a one-line error."""
    for path in (listen.cert_file, listen.key_file):
        if not path.is_file():
            raise InputError(f"{path}: not found -- create it with 'kubeshape webhook certs'")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(listen.cert_file, listen.key_file)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise InputError(f"{listen.cert_file}, {listen.key_file}: not a usable certificate and key ({exc}) -- "
                         "create them with 'kubeshape webhook certs'") from None


def run(settings: Settings, listen: Listen, *, log_level: str = "info") -> None:
    """Serve until interrupted; the cluster cache and registry look-up stop with the server."""
    check_tls(listen)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.cache is not None:
        settings.cache.start()
    config = uvicorn.Config(
        create_app(settings), host=listen.host, port=listen.port, ssl_certfile=str(listen.cert_file),
        ssl_keyfile=str(listen.key_file), log_level=log_level, access_log=False, lifespan="off",
        timeout_keep_alive=30, server_header=False, backlog=2048)
    # Everything loaded so far lives as long as the server: keep it out of the collector's way, and collect the
    # young generation less often (a review allocates a few thousand objects), so no review waits on a long pass.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 50)
    try:
        uvicorn.Server(config).run()
    finally:
        if settings.cache is not None:
            settings.cache.stop()
        if settings.registry is not None:
            settings.registry.close()
