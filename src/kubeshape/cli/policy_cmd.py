"""``kubeshape policy export|install``: the image rules as admission policies the API server (or Kyverno) runs."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from kubeshape.admission.defaults import check_dns_label
from kubeshape.cli.manifest_output import match_labels, render_json_list, render_yaml
from kubeshape.cli.subapp import sub_app
from kubeshape.config import Config, load_config
from kubeshape.policy import kyverno, vap
from kubeshape.ui import err_console, status

if TYPE_CHECKING:
    from kubeshape.policy.verify import Answer

app = sub_app(
    "policy",
    "Image rules the API server enforces itself. 'export' prints kubeshape's image rules as "
    "ValidatingAdmissionPolicies (or a Kyverno ClusterPolicy), 'install' applies them; the registries come "
    "from kubeshape.yaml.",
)


class Format(StrEnum):
    vap = "vap"
    kyverno = "kyverno"


class Output(StrEnum):
    yaml = "yaml"
    json = "json"


class InstallOutput(StrEnum):
    text = "text"
    yaml = "yaml"
    json = "json"


class FailurePolicy(StrEnum):
    Fail = "Fail"
    Ignore = "Ignore"


ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="kubeshape.yaml to take the registries "
                                                "from (default: the one found from here up).", dir_okay=False)]
NamespaceOpt = Annotated[str, typer.Option("--namespace", "-n", help="Namespace of the parameter ConfigMap "
                                           f"{vap.PARAMS}.")]
SelectorOpt = Annotated[list[str] | None, typer.Option(
    "--namespace-selector", help="Only gate namespaces with this label KEY=VALUE (repeatable).")]
FailureOpt = Annotated[FailurePolicy, typer.Option(
    "--failure-policy", case_sensitive=False,
    help="When a check cannot be evaluated (missing parameters, an object too large to check): Fail rejects "
         "the request, Ignore lets it through.")]
KubeconfigOpt = Annotated[Path | None, typer.Option("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, "
                                                    "~/.kube/config).", dir_okay=False)]
ContextOpt = Annotated[str | None, typer.Option("--context", help="kubeconfig context (default: current).")]


def _options(namespace: str, selector: list[str] | None, failure_policy: FailurePolicy) -> vap.Options:
    check_dns_label(namespace, "--namespace")
    return vap.Options(namespace, failure_policy.value, match_labels(list(selector or [])))


def _config(path: Path | None) -> Config:
    from kubeshape.sources.repo import repository_root

    here = Path.cwd()
    cfg, _ = load_config(path, here, stop=repository_root(here))
    return cfg


@app.command("export")
def export(
    fmt: Annotated[Format, typer.Option("--format", "-f", help="vap: ValidatingAdmissionPolicies (Kubernetes "
                                        "1.30+); kyverno: one Kyverno ClusterPolicy.")] = Format.vap,
    config: ConfigOpt = None,
    namespace: NamespaceOpt = "kubeshape",
    namespace_selector: SelectorOpt = None,
    failure_policy: FailureOpt = FailurePolicy.Fail,
    output: Annotated[Output, typer.Option("--output", "-o", help="yaml, or json (a List).")] = Output.yaml,
) -> None:
    """Print the policies. vap: a deny and a warn policy, their bindings and the parameter ConfigMap with what
    they read of kubeshape.yaml; apply them with 'kubectl apply -f -' or 'kubeshape policy install'."""
    opts = _options(namespace, namespace_selector, failure_policy)
    cfg = _config(config)
    if fmt is Format.kyverno:
        objects = [kyverno.cluster_policy(cfg, opts.failure_policy, opts.match_labels)]
        header = "kubeshape image rules as a Kyverno ClusterPolicy (Kyverno 1.13+)"
    else:
        objects = vap.export(cfg, opts)
        header = (f"kubeshape image rules as ValidatingAdmissionPolicies (Kubernetes 1.30+); settings in "
                  f"ConfigMap {vap.PARAMS} of namespace {opts.namespace}")
    if output is Output.json:
        typer.echo(render_json_list(objects))
    else:
        typer.echo(render_yaml(objects, header, long_strings_as_blocks=True), nl=False)


@app.command("install")
def install(
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    config: ConfigOpt = None,
    namespace: NamespaceOpt = "kubeshape",
    namespace_selector: SelectorOpt = None,
    failure_policy: FailureOpt = FailurePolicy.Fail,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Let the API server check everything, change "
                                          "nothing, and show what would be applied.")] = False,
    output: Annotated[InstallOutput, typer.Option("--output", "-o", help="text, or the applied objects as yaml "
                                                  "or json.")] = InstallOutput.text,
    request_timeout: Annotated[str, typer.Option("--request-timeout", help="How long one request may take: 30s, "
                                                 "1m, or seconds; 0 waits forever.")] = "30s",
) -> None:
    """Apply the policies to a cluster. Server-side apply of the parameter ConfigMap (and its namespace), both
    policies and both bindings; running it again updates them in place. Then a dry-run request shows that the
    API server enforces them."""
    from kubeshape.cli.timeouts import parse_request_timeout
    from kubeshape.policy.install import apply_all
    from kubeshape.policy.verify import verify
    from kubeshape.sources.live import check_server, connect

    opts = _options(namespace, namespace_selector, failure_policy)
    cfg = _config(config)
    timeout = parse_request_timeout(request_timeout)
    api, _ = connect(kubeconfig, context, timeout=timeout)
    checked: tuple[str | None, Answer | None] = (None, None)
    try:
        with status(f"Applying to context {api.context}"):
            check_server(api)
            applied = apply_all(api, vap.export(cfg, opts), dry_run=dry_run)
        if not dry_run:
            with status("Checking that the API server enforces the policies"):
                checked = verify(api, opts)
    finally:
        api.http.close()
    text = output is InstallOutput.text
    if not text:
        objects = [a.object for a in applied]
        if output is InstallOutput.json:
            typer.echo(render_json_list(objects))
        else:
            typer.echo(render_yaml(objects, "as applied", long_strings_as_blocks=True), nl=False)
    else:
        for a in applied:
            done = a.outcome if not dry_run or a.outcome == "unchanged" else f"would be {a.outcome}"
            typer.echo(f"{a.title}: {done}")
        if dry_run:
            typer.echo("Dry run: nothing was changed.")
    if not dry_run:
        _report_check(*checked, text=text)


def _report_check(namespace: str | None, answer: Answer | None, *, text: bool) -> None:
    """The outcome of the test request: a line in text output, a warning on stderr when it was not enforced."""
    if namespace is None or answer is None:
        if text:
            typer.echo("Not checked: no namespace the bindings select exists yet; they apply as soon as one does.")
    elif not answer.enforced:
        said = " ".join(answer.message.split()) or ("admitted" if answer.status < 300 else f"HTTP {answer.status}")
        err_console().print(f"kubeshape: warning: could not see the API server enforce the policies: a test "
                            f"Deployment in namespace {namespace} got: {escape(said)}", highlight=False,
                            soft_wrap=True)
    elif text:
        which = f"{vap.DENY} and {vap.WARN}" if answer.warned else vap.DENY
        how = "denied and warned about" if answer.warned else "denied"
        typer.echo(f"Checked: the API server enforces {which} (a test Deployment in namespace {namespace} was "
                   f"{how}; nothing was stored).")
