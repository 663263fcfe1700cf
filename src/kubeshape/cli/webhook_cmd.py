"""``kubeshape webhook certs|manifests``: the TLS files and the Kubernetes objects that deploy the webhook."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from kubeshape.admission import defaults
from kubeshape.admission import manifests as mf
from kubeshape.cli.manifest_output import match_labels, render_json_list, render_yaml
from kubeshape.cli.subapp import sub_app
from kubeshape.config import load_config
from kubeshape.errors import InputError
from kubeshape.imageref import InvalidReference
from kubeshape.imageref import parse as parse_image

if TYPE_CHECKING:
    from kubeshape.admission.certs import CertFiles

app = sub_app(
    "webhook",
    "Admission webhook that stops bad deploys. It judges workloads with kubeshape's rules as they are "
    "created or changed. 'certs' makes its TLS files, 'manifests' prints what runs it in the cluster, "
    "'serve' runs it.",
)

MAX_CONFIG_BYTES = 1_000_000  # a ConfigMap holds at most 1 MiB


class Output(StrEnum):
    yaml = "yaml"
    json = "json"


class FailurePolicy(StrEnum):
    Ignore = "Ignore"
    Fail = "Fail"


NamespaceOpt = Annotated[str, typer.Option("--namespace", "-n", help="Namespace of the webhook.")]


# -- certs ---------------------------------------------------------------------------------------------------


def _next_steps(files: CertFiles, namespace: str, renewed_only: bool) -> list[str]:
    ns = "" if namespace == defaults.DEFAULT_NAMESPACE else f" -n {namespace}"
    secret = (f"kubectl create secret tls {mf.TLS_SECRET} --cert={shlex.quote(str(files.cert))} "
              f"--key={shlex.quote(str(files.key))} -n {namespace} --dry-run=client -o yaml | kubectl apply -f -")
    if renewed_only:
        return ["Next: update the Secret and restart the webhook so that it serves the new certificate (the CA, "
                "and so the webhook configuration, stay as they are):",
                f"  {secret}", f"  kubectl -n {namespace} rollout restart deployment/{mf.NAME}"]
    return ["Next: deploy the webhook, then give it its certificate:",
            f"  kubeshape webhook manifests{ns} --ca-file {shlex.quote(str(files.ca_cert))} | kubectl apply -f -",
            f"  {secret}"]


@app.command("certs")
def certs(
    out: Annotated[Path, typer.Option("--out", help="Directory for ca.crt, ca.key, tls.crt and tls.key.",
                                      file_okay=False)] = defaults.DEFAULT_OUT,
    host: Annotated[list[str] | None, typer.Option(
        "--host", help="Another name of the webhook: a DNS name or an IP address, e.g. 127.0.0.1 when it runs "
                       "outside the cluster (repeatable).")] = None,
    namespace: NamespaceOpt = defaults.DEFAULT_NAMESPACE,
    service: Annotated[str, typer.Option("--service", help="Name of the webhook's Service (the manifests name it "
                                         f"{mf.NAME}).")] = defaults.DEFAULT_SERVICE,
    days: Annotated[int, typer.Option("--days", min=1, max=defaults.CA_DAYS,
                                      help="Validity of the serving certificate (the CA's: 10 years).")] = 365,
    force: Annotated[bool, typer.Option("--force", help="Make a new CA and serving certificate even if the "
                                        "existing ones are fine (then re-apply the manifests).")] = False,
) -> None:
    """Create the webhook's CA and serving certificate. Run it again any time: it renews the serving certificate
    with the same CA when names change or fewer than 30 days are left, and otherwise changes nothing."""
    from kubeshape.admission import certs as tls

    before = {p: _contents(p) for p in (out / "ca.crt", out / "tls.crt")}
    files = tls.ensure_certs(out, list(host or []), namespace=namespace, service=service, days=days, force=force)
    cert = tls.load_cert(files.cert)
    if not files.changed:
        typer.echo(f"{out}: up to date -- tls.crt is valid for {', '.join(tls.cert_names(cert))} until "
                   f"{cert.not_valid_after_utc:%Y-%m-%d}; nothing changed")
        return
    for change in files.changed:
        typer.echo(f"{out}: {change}")
    new_ca = _contents(files.ca_cert) != before[files.ca_cert]
    if new_ca or _contents(files.cert) != before[files.cert]:
        for line in _next_steps(files, namespace, renewed_only=not new_ca):
            typer.echo(line)


def _contents(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


# -- manifests -----------------------------------------------------------------------------------------------


def _ca_bundle(path: Path) -> bytes:
    """The PEM of the CA certificates in ``path``, checked: what the apiserver will trust the webhook by."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from kubeshape.admission import certs as tls

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file -- give the ca.crt that 'kubeshape webhook certs' wrote") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        found = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise InputError(f"{path}: not a PEM certificate -- give the ca.crt that 'kubeshape webhook certs' "
                         "wrote") from None
    cas = [c for c in found if tls.is_ca(c)]
    if not cas:
        raise InputError(f"{path}: not a CA certificate (the serving certificate?) -- give ca.crt, not tls.crt")
    now = datetime.now(UTC)
    if all(c.not_valid_after_utc <= now for c in cas):
        raise InputError(f"{path}: the CA expired on {cas[0].not_valid_after_utc:%Y-%m-%d} -- make a new one "
                         "with 'kubeshape webhook certs --force'")
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in cas)


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise InputError(f"--url {url!r}: the apiserver calls webhooks over HTTPS only -- give "
                         "https://HOST:PORT/validate")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InputError(f"--url {url!r}: no user, query or fragment allowed -- give https://HOST:PORT/validate")
    if parts.path in ("", "/"):
        raise InputError(f"--url {url!r}: give the webhook's path too, e.g. https://{parts.netloc}{mf.PATH}")
    return url


def _config_text(path: Path | None) -> str:
    if path is None:
        return mf.EMPTY_CONFIG
    load_config(path)  # refuse a config the webhook would refuse at start
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    if len(text.encode()) > MAX_CONFIG_BYTES:
        raise InputError(f"{path}: larger than a ConfigMap holds (1 MB) -- trim it")
    return text if text.endswith("\n") else text + "\n"


@app.command("manifests")
def manifests(
    ca_file: Annotated[Path, typer.Option("--ca-file", help="The CA that signed the webhook's certificate "
                                          "(ca.crt from 'kubeshape webhook certs').", dir_okay=False)],
    namespace: NamespaceOpt = defaults.DEFAULT_NAMESPACE,
    image: Annotated[str | None, typer.Option("--image", help=f"Image to run (default: {mf.DEFAULT_IMAGE}).")]
    = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="kubeshape.yaml for the webhook "
                                                "(default: an empty one).", dir_okay=False)] = None,
    url: Annotated[str | None, typer.Option("--url", help="The webhook runs outside the cluster at this URL "
                                            "(https://HOST:PORT/validate): print only the webhook "
                                            "configuration.")] = None,
    failure_policy: Annotated[FailurePolicy, typer.Option(
        "--failure-policy", case_sensitive=False,
        help="When the webhook cannot answer: Ignore lets the request through, so that a webhook that is down "
             "does not block every deploy of a small cluster; Fail rejects it, for strict gates.")]
    = FailurePolicy.Ignore,
    timeout_seconds: Annotated[int, typer.Option("--timeout-seconds", min=1, max=30,
                                                 help="How long the apiserver waits for an answer.")] = 5,
    namespace_selector: Annotated[list[str] | None, typer.Option(
        "--namespace-selector", help="Only gate namespaces with this label KEY=VALUE (repeatable).")] = None,
    output: Annotated[Output, typer.Option("--output", "-o", help="yaml, or json (a List).")] = Output.yaml,
) -> None:
    """Print the objects that run the webhook. They are: Namespace, RBAC, config, Deployment,
    PodDisruptionBudget, Service and the ValidatingWebhookConfiguration. Apply them with: kubectl apply -f -"""
    defaults.check_dns_label(namespace, "--namespace")
    if url is not None:
        _check_url(url)
        if image is not None or config is not None:
            raise InputError("--image and --config set up the webhook in the cluster; with --url it runs "
                             "elsewhere: give its config to 'kubeshape webhook serve' there")
    if image is not None:
        try:
            parse_image(image)
        except InvalidReference as exc:
            raise InputError(f"--image {image!r}: {exc.reason}") from None
    labels = match_labels(list(namespace_selector or []))
    bundle = _ca_bundle(ca_file)
    objects = mf.all_manifests(bundle, url=url, namespace=namespace, image=image or mf.DEFAULT_IMAGE,
                               config_text=_config_text(config), failure_policy=failure_policy.value,
                               timeout_seconds=timeout_seconds, match_labels=labels)
    if output is Output.json:
        typer.echo(render_json_list(objects))
        return
    where = f"served at {url}" if url else f"in namespace {namespace}; its TLS Secret {mf.TLS_SECRET} comes " \
                                           "from 'kubeshape webhook certs'"
    typer.echo(render_yaml(objects, f"kubeshape validating admission webhook, {where}"), nl=False)
