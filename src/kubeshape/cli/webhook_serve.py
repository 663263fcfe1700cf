"""``kubeshape webhook serve``: the validating admission webhook."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kubeshape.config import load_config
from kubeshape.ui import err_console

# Defaults of kubeshape.admission (imported when serving: the server stack stays out of other commands' start-up).
DEFAULT_TIMEOUT = 10.0
DEFAULT_TTL = 30.0


def serve(
    cert_file: Annotated[Path, typer.Option("--cert-file", help="Serving certificate (PEM), e.g. from "
                                            "'kubeshape webhook certs'.", dir_okay=False)],
    key_file: Annotated[Path, typer.Option("--key-file", help="Its private key (PEM).", dir_okay=False)],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "0.0.0.0",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.", min=1, max=65535)] = 8443,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="kubeshape.yaml to judge by "
                                                "(registries, thresholds, suppressions).", dir_okay=False)] = None,
    kubeconfig: Annotated[Path | None, typer.Option("--kubeconfig", help="Cluster to watch for context (default: "
                                                    "in-cluster, else $KUBECONFIG).", dir_okay=False)] = None,
    context: Annotated[str | None, typer.Option("--context", help="kubeconfig context.")] = None,
    no_cluster: Annotated[bool, typer.Option("--no-cluster", help="Judge objects on their own: no HPA-target or "
                                             "Service checks.")] = False,
    registry: Annotated[list[str] | None, typer.Option(
        "--registry", help="Registry whose tags are checked: HOST[:PORT] or REACH=NAME-IN-IMAGES (repeatable). "
                           "Default: registries.private.")] = None,
    insecure_registry: Annotated[bool, typer.Option("--insecure-registry", help="Plain HTTP to --registry.")] = False,
    no_registry: Annotated[bool, typer.Option("--no-registry", help="Do not look tags up.")] = False,
    registry_ttl: Annotated[float, typer.Option("--registry-ttl", help="Seconds a tag list is reused.",
                                                min=0)] = DEFAULT_TTL,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to answer in when the apiserver does not "
                                           "say (it sends its timeoutSeconds).", min=0.5, max=30)] = DEFAULT_TIMEOUT,
    max_inflight: Annotated[int, typer.Option("--max-inflight", help="Reviews judged at once; more wait, and one "
                                              "that cannot start in time is allowed with a warning.",
                                              min=1)] = 64,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
    allow_all: Annotated[bool, typer.Option("--allow-all", hidden=True)] = False,
) -> None:
    """Serve the admission webhook.

    A validating admission webhook (AdmissionReview v1 over TLS) on POST /validate. Objects are judged by the
    rules 'kubeshape lint' uses: error findings deny with the rule, the problem and the fix; warnings reach
    kubectl as admission warnings. A watch of Deployments, StatefulSets and Services backs the HPA-target
    (KS601) and Service (KS701) checks; the team's registry backs KS104.
    """
    from kubeshape.actions.registries import Target
    from kubeshape.admission.app import Settings
    from kubeshape.admission.registry_lookup import RegistryLookup
    from kubeshape.admission.serve import Listen, check_tls, run
    from kubeshape.sources.live import connect
    from kubeshape.sources.watch import ClusterCache

    if log_level.lower() not in ("debug", "info", "warning", "error"):
        raise typer.BadParameter("expected debug, info, warning or error", param_hint="--log-level")
    listen = Listen(host, port, cert_file, key_file)
    check_tls(listen)
    cfg, cfg_path = load_config(config, Path.cwd()) if config is not None else load_config(None, None)
    cache = None
    if not no_cluster and not allow_all:
        api, _ = connect(kubeconfig, context, qps=20, burst=40, timeout=30)
        cache = ClusterCache(api)
    lookup = None
    targets = [Target.parse(s) for s in registry or []] or [Target(h, h) for h in cfg.registries.private]
    if targets and not no_registry and not allow_all:
        lookup = RegistryLookup(targets, insecure=insecure_registry, ttl=registry_ttl)
    settings = Settings(cfg=cfg, cache=cache, registry=lookup, max_inflight=max_inflight, timeout=timeout,
                        allow_all=allow_all)
    where = f"https://{host}:{port}/validate"
    err_console().print(f"kubeshape webhook on {where}" + (f" (config {cfg_path})" if cfg_path else "")
                      + ("; cluster cache on" if cache else "") + (f"; registry look-ups: "
                      f"{', '.join(t.name for t in targets)}" if lookup else ""), highlight=False)
    run(settings, listen, log_level=log_level.lower())
