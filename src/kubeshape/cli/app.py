"""The ``kubeshape`` command line."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ClassVar

import typer

from kubeshape import __version__
from kubeshape.cli.lazy import LazyCommand, LazyGroup, add_stand_ins
from kubeshape.cli.timeouts import REQUEST_TIMEOUT_HELP, parse_request_timeout
from kubeshape.errors import EXIT_CLEAN, EXIT_FINDINGS, EXIT_INPUT, InputError, KubeshapeError
from kubeshape.sources._gc import exits_after_command

# Only what `kubeshape version` and `--help` need is imported here; each command imports the rest when it runs.
if TYPE_CHECKING:
    from rich.console import Console

    from kubeshape.analysis import Selection
    from kubeshape.cli.live import LiveOptions
    from kubeshape.config import Config
    from kubeshape.findings import Severity
    from kubeshape.inventory import Inventory, RepoSource
    from kubeshape.report.model import Report


def _registry_app() -> typer.Typer:
    from kubeshape.cli import registry_cmd

    return registry_cmd.app


@cache
def _webhook_app() -> typer.Typer:
    from kubeshape.cli import webhook_cmd, webhook_serve

    webhook_cmd.app.command("serve")(webhook_serve.serve)
    return webhook_cmd.app


def _policy_app() -> typer.Typer:
    from kubeshape.cli import policy_cmd

    return policy_cmd.app


def _init_app() -> typer.Typer:
    from kubeshape.cli import init_cmd

    return init_cmd.app


def _release() -> Callable[..., None]:
    from kubeshape.cli import release_cmd

    return release_cmd.release


def _fix() -> Callable[..., None]:
    from kubeshape.cli import fix_cmd

    return fix_cmd.fix


def _history() -> Callable[..., None]:
    from kubeshape.cli import release_cmd

    return release_cmd.history


class _Root(LazyGroup):
    # Summaries as the command list shows them (tests/test_cli_startup.py checks they match the commands' help).
    lazy: ClassVar[dict[str, LazyCommand]] = {
        "fix": LazyCommand("Fix what doctor finds: edit files, commit, change the cluster.", _fix),
        "release": LazyCommand("Release from git: tag, push, update the manifest, deploy.", _release),
        "history": LazyCommand("Show the revisions of a Deployment and the last known good.", _history),
        "registry": LazyCommand("Registry tags and where they are used; prune old tags.", _registry_app, group=True),
        "webhook": LazyCommand("Admission webhook that stops bad deploys.", _webhook_app, group=True),
        "policy": LazyCommand("Image rules the API server enforces itself.", _policy_app, group=True),
        "init": LazyCommand("Set a repository up for kubeshape.", _init_app, group=True),
    }


app = typer.Typer(
    name="kubeshape",
    cls=_Root,
    help="Find what is wrong with your Kubernetes deployments -- evidence, root cause and the exact fix.",
    no_args_is_help=True,
    # Plain, kubectl-like help: one names column and the text. Rich's help panel gives the type column its own
    # width and squeezes flag names at 80 columns (`--request-tim…`); click's layout never breaks a name, shows
    # no type for flags, and puts the text under a long name instead. Applies to every sub-command and group.
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class OutputFormat(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"
    sarif = "sarif"
    html = "html"


class FailOn(StrEnum):
    error = "error"
    warning = "warning"
    info = "info"
    never = "never"


ContextOpt = Annotated[str | None, typer.Option("--context", help="kubeconfig context (default: current).")]
KubeconfigOpt = Annotated[Path | None, typer.Option("--kubeconfig", help="kubeconfig file (default: "
                                                    "$KUBECONFIG, ~/.kube/config).", dir_okay=False)]
NamespaceOpt = Annotated[list[str] | None, typer.Option("--namespace", "-n", help="Only this namespace "
                                                        "(repeatable). Default: all namespaces.")]
AllNamespacesOpt = Annotated[bool, typer.Option("--all-namespaces", "-A", help="All namespaces (the default).")]
QpsOpt = Annotated[float, typer.Option("--qps", help="Client-side limit of API requests per second once --burst "
                                        "is used up (as kubectl's discovery client: 50; 0: no limit).")]
BurstOpt = Annotated[int, typer.Option("--burst", min=1, help="API requests let out at once before --qps paces "
                                       "them (as kubectl's discovery client: 300).")]
MaxLogsOpt = Annotated[int, typer.Option("--max-logs", help="Log tails to read (restarting pods first).")]
RegistryOpt = Annotated[list[str] | None, typer.Option("--registry", help="Read this registry too: host[:port], "
                                                       "or reach=name-in-images (repeatable).")]
InsecureOpt = Annotated[bool, typer.Option("--insecure-registry", help="Plain HTTP for --registry.")]
RequestTimeoutOpt = Annotated[str, typer.Option("--request-timeout", help=REQUEST_TIMEOUT_HELP)]
OutputOpt = Annotated[OutputFormat, typer.Option("--output", "-o", help="Report format.")]
FailOnOpt = Annotated[FailOn, typer.Option("--fail-on", help="Exit 1 when a finding is at least this severe.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="kubeshape.yaml to use.",
                                                dir_okay=False)]
SelectOpt = Annotated[list[str] | None, typer.Option("--select", help="Only these rules (KS101, KS1xx).")]
IgnoreOpt = Annotated[list[str] | None, typer.Option("--ignore", help="Skip these rules (KS103, KS4xx).")]
NoAnnOpt = Annotated[bool, typer.Option("--no-annotation-ignores",
                                        help="Do not honour kubeshape.io/ignore annotations on objects.")]
RegistrySnapshotOpt = Annotated[Path | None, typer.Option("--registry-snapshot", help="registry.json to use.",
                                                          dir_okay=False)]
ReportFileOpt = Annotated[Path | None, typer.Option("--report-file", help="Write the report to this file.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Show all evidence lines.")]


def main() -> None:
    """Console-script entry point: one-line errors and the documented exit codes."""
    # Documents may nest up to the YAML reader's limit (1,000 levels) and several steps walk them recursively:
    # leave room above that (Python-to-Python calls do not grow the C stack).
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    with exits_after_command():
        try:
            app()  # Typer exits with the command's code; usage errors exit 2
        except KubeshapeError as exc:
            from kubeshape.redact import redact_text
            from kubeshape.ui import err_console

            err_console().print(f"[bold red]kubeshape: error:[/] {redact_text(str(exc))}", highlight=False,
                                soft_wrap=True)
            sys.exit(exc.exit_code)


def _fail_threshold(fail_on: FailOn) -> Severity | None:
    from kubeshape.findings import Severity

    return None if fail_on is FailOn.never else Severity.parse(fail_on.value)


@contextlib.contextmanager
def _output(report_file: Path | None) -> Iterator[Console]:
    from rich.console import Console

    if report_file is None:
        yield Console(soft_wrap=False)
        return
    try:
        with report_file.open("w", encoding="utf-8") as fh:
            yield Console(file=fh, no_color=True, width=120, force_terminal=False)
    except OSError as exc:
        raise InputError(f"{report_file}: cannot write report ({exc.strerror})") from None


def _emit(report: Report, fmt: OutputFormat, fail_on: FailOn, report_file: Path | None, verbose: bool,
          input_errors: list[str], explain: str | None = None) -> int:
    from kubeshape.engine import INTERNAL_ERROR
    from kubeshape.redact import redact_text
    from kubeshape.report.render import render
    from kubeshape.rules.base import all_rules
    from kubeshape.ui import err_console

    if explain is not None:
        from kubeshape.report.explain import explain as explain_text
        from kubeshape.ui import print_markdown

        out = explain_text(report, explain, fmt.value)
        with _output(report_file) as console:
            if fmt is OutputFormat.json:
                console.file.write(out)
            else:
                print_markdown(out, console)
        return EXIT_CLEAN
    with _output(report_file) as console:
        render(report, fmt.value, all_rules(), console, verbose=verbose)
    input_errors = [*input_errors, *(f.message for f in report.findings if f.rule == INTERNAL_ERROR)]
    for line in input_errors:
        err_console().print(f"[bold red]kubeshape: error:[/] {redact_text(line)}", highlight=False, soft_wrap=True)
    if input_errors:
        return EXIT_INPUT
    threshold = _fail_threshold(fail_on)
    if threshold is not None and any(f.severity >= threshold for f in report.findings):
        return EXIT_FINDINGS
    return EXIT_CLEAN


def _config_for(config: Path | None, search_dir: Path, stop: Path | None = None) -> Config:
    from kubeshape.config import load_config

    cfg, _ = load_config(config, search_dir, stop=stop)
    return cfg


@app.command()
def lint(
    paths: Annotated[list[Path] | None, typer.Argument(help="Manifest files or directories (default: the "
                                                            "manifest_roots of kubeshape.yaml, else .).")] = None,
    config: ConfigOpt = None,
    output: OutputOpt = OutputFormat.text,
    fail_on: FailOnOpt = FailOn.warning,
    select: SelectOpt = None,
    ignore: IgnoreOpt = None,
    no_annotation_ignores: NoAnnOpt = False,
    report_file: ReportFileOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Check manifest files only; no cluster needed. Made for CI and pre-commit hooks."""
    from kubeshape.analysis import analyse
    from kubeshape.config import load_config
    from kubeshape.inventory import Inventory
    from kubeshape.sources._gc import kept_until_exit
    from kubeshape.sources.git import load_git
    from kubeshape.sources.repo import load_repo, repository_root
    from kubeshape.ui import status

    targets = [p.absolute() for p in paths] if paths else []
    for p in targets:
        if not p.exists():
            raise InputError(f"{p}: no such file or directory -- pass a manifests directory or file")
    start = targets[0] if targets else Path.cwd()
    base = repository_root(start)
    cfg, cfg_path = load_config(config, start if start.is_dir() else start.parent, stop=base)
    # manifest_roots are relative to the directory of the kubeshape.yaml that names them
    roots = targets or [(cfg_path.parent if cfg_path else start) / p for p in cfg.manifest_roots]
    with status("Reading manifests"), kept_until_exit():
        repo = load_repo(roots, base, cfg.exclude)
        git = load_git(base)
    inv = Inventory(repo=repo, git=git)
    report, _ = analyse(inv, cfg, _selection(select, ignore, no_annotation_ignores), command="lint")
    errors = [f"{f}:{line}: {msg}" for f, line, msg in repo.errors]
    raise typer.Exit(_emit(report, output, fail_on, report_file, verbose, errors))


def _selection(select: list[str] | None, ignore: list[str] | None, no_ann: bool) -> Selection:
    from kubeshape.analysis import Selection

    return Selection(select=_split(select), ignore=_split(ignore), annotation_ignores=False if no_ann else None)


def _split(values: list[str] | None) -> list[str]:
    from kubeshape.rules.base import get_rule

    out: list[str] = []
    for v in values or []:
        for part in v.split(","):
            part = part.strip().upper()
            if not part:
                continue
            if not (part.startswith("KS") and (get_rule(part) or part.endswith("XX") or len(part) == 3)):
                raise InputError(f"unknown rule {part!r} -- see 'kubeshape rules'")
            out.append(part)
    return out


@contextlib.contextmanager
def _demo_paths() -> Iterator[tuple[Path, Path]]:
    from importlib import resources

    root = resources.files("kubeshape") / "demo"
    with resources.as_file(root) as demo:
        repo, bundle = Path(demo) / "repo", Path(demo) / "bundle"
        if not repo.is_dir() or not bundle.is_dir():
            raise InputError(f"{demo}: the demo data is missing from this installation -- reinstall kubeshape")
        yield repo, bundle


@app.command()
def doctor(
    repo: Annotated[Path | None, typer.Option("--repo", help="Manifests repository to correlate.",
                                              file_okay=False)] = None,
    bundle: Annotated[Path | None, typer.Option("--bundle", "-b", help="Cluster bundle (directory or "
                                                "tar.gz; also 'kubectl cluster-info dump' output).")] = None,
    registry_snapshot: Annotated[Path | None, typer.Option("--registry-snapshot",
                                                           help="registry.json to use instead of the "
                                                                "bundle's.", dir_okay=False)] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Analyse the bundled homelab demo.")] = False,
    context: ContextOpt = None,
    kubeconfig: KubeconfigOpt = None,
    namespace: NamespaceOpt = None,
    all_namespaces: AllNamespacesOpt = False,
    all_contexts: Annotated[bool, typer.Option("--all-contexts", help="Every context of the kubeconfig, "
                                               "one report.")] = False,
    qps: QpsOpt = 50.0,
    burst: BurstOpt = 300,
    max_logs: MaxLogsOpt = 30,
    registry: RegistryOpt = None,
    insecure: InsecureOpt = False,
    request_timeout: RequestTimeoutOpt = "30s",
    config: ConfigOpt = None,
    output: OutputOpt = OutputFormat.text,
    fail_on: FailOnOpt = FailOn.warning,
    select: SelectOpt = None,
    ignore: IgnoreOpt = None,
    no_annotation_ignores: NoAnnOpt = False,
    report_file: ReportFileOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Explain what is wrong, with evidence and the fix. Correlates repo + cluster + registry + git."""
    from kubeshape.cli.live import LiveOptions

    raise typer.Exit(_diagnose(
        demo, repo, bundle, registry_snapshot, config, _selection(select, ignore, no_annotation_ignores), output,
        fail_on, report_file, verbose, LiveOptions(kubeconfig, [context] if context else None,
                                                   _namespaces(namespace, all_namespaces), qps, max_logs,
                                                   all_contexts, parse_request_timeout(request_timeout), burst),
        registry or [], insecure))


@app.command()
def explain(
    incident: Annotated[str, typer.Argument(help="Incident number (3 or #3), finding ID (KS105-3f9a2c) or rule ID.")],
    repo: Annotated[Path | None, typer.Option("--repo", help="Manifests repository to correlate.",
                                              file_okay=False)] = None,
    bundle: Annotated[Path | None, typer.Option("--bundle", "-b", help="Cluster bundle (directory or tar.gz).")] = None,
    registry_snapshot: RegistrySnapshotOpt = None,
    demo: Annotated[bool, typer.Option("--demo", help="Explain from the bundled homelab demo.")] = False,
    context: ContextOpt = None,
    kubeconfig: KubeconfigOpt = None,
    namespace: NamespaceOpt = None,
    all_namespaces: AllNamespacesOpt = False,
    qps: QpsOpt = 50.0,
    burst: BurstOpt = 300,
    max_logs: MaxLogsOpt = 30,
    registry: RegistryOpt = None,
    insecure: InsecureOpt = False,
    request_timeout: RequestTimeoutOpt = "30s",
    config: ConfigOpt = None,
    output: OutputOpt = OutputFormat.text,
    select: SelectOpt = None,
    ignore: IgnoreOpt = None,
    no_annotation_ignores: NoAnnOpt = False,
    report_file: ReportFileOpt = None,
) -> None:
    """Show one incident or finding in full. Takes the same sources as doctor: chain, evidence, fix."""
    from kubeshape.cli.live import LiveOptions

    if output in (OutputFormat.sarif, OutputFormat.html):
        raise InputError("explain prints text, markdown or json")
    raise typer.Exit(_diagnose(
        demo, repo, bundle, registry_snapshot, config, _selection(select, ignore, no_annotation_ignores), output,
        FailOn.never, report_file, False, LiveOptions(kubeconfig, [context] if context else None,
                                                      _namespaces(namespace, all_namespaces), qps, max_logs,
                                                      False, parse_request_timeout(request_timeout), burst),
        registry or [], insecure, explain=incident))


def _diagnose(demo: bool, repo: Path | None, bundle: Path | None, registry_snapshot: Path | None,
              config: Path | None, sel: Selection, output: OutputFormat, fail_on: FailOn, report_file: Path | None,
              verbose: bool, live: LiveOptions, registries: list[str], insecure: bool,
              explain: str | None = None) -> int:
    """doctor and explain: read the demo, a bundle or the live cluster (the kubeconfig's, unless --bundle)."""
    if demo:
        if repo or bundle:
            raise InputError("--demo cannot be combined with --repo or --bundle")
        with _demo_paths() as (demo_repo, demo_bundle):
            return _doctor(demo_repo, demo_bundle, registry_snapshot, config, sel, output, fail_on, report_file,
                           verbose, use_git=False, explain=explain)
    if bundle is not None:
        if live.kubeconfig or live.contexts or live.namespaces or live.all_contexts:
            flags = "--context/--kubeconfig/-n" + ("" if explain is not None else "/--all-contexts")
            raise InputError(f"{flags} read a live cluster; drop them or --bundle")
        return _doctor(repo, bundle, registry_snapshot, config, sel, output, fail_on, report_file, verbose,
                       registries=registries, insecure=insecure, timeout=live.request_timeout, explain=explain)
    return _doctor(repo, None, registry_snapshot, config, sel, output, fail_on, report_file, verbose, live=live,
                   registries=registries, insecure=insecure, timeout=live.request_timeout, explain=explain)


@dataclass
class Sources:
    """What a command read: the config, the repository (and its root), one inventory per cluster context."""

    cfg: Config
    repo_dir: Path | None
    repo: RepoSource | None
    inventories: list[Inventory]


def load_sources(repo_dir: Path | None, bundle: Path | None, registry_snapshot: Path | None, config: Path | None,
                 use_git: bool = True, live: LiveOptions | None = None, registries: list[str] | None = None,
                 insecure: bool = False, timeout: float | None = 30.0) -> Sources:
    """Read the sources doctor and fix take into inventories. Each source's reader is imported only when that
    source is given: a live doctor loads no repository, bundle or git code, a lint no Kubernetes client."""
    from kubeshape.sources._gc import kept_until_exit

    with kept_until_exit():  # a command's process exits after it: what it loaded need not be collected
        return _load_sources(repo_dir, bundle, registry_snapshot, config, use_git, live, registries, insecure,
                             timeout)


def _load_sources(repo_dir: Path | None, bundle: Path | None, registry_snapshot: Path | None, config: Path | None,
                  use_git: bool, live: LiveOptions | None, registries: list[str] | None, insecure: bool,
                  timeout: float | None) -> Sources:
    from kubeshape.inventory import Inventory
    from kubeshape.ui import status

    cfg = _config_for(config, repo_dir or Path.cwd())
    repo = git = cluster = registry = None
    if repo_dir is not None:
        if not repo_dir.is_dir():
            raise InputError(f"{repo_dir}: not a directory -- --repo takes the manifests repository")
        from kubeshape.sources.git import load_git
        from kubeshape.sources.repo import load_repo

        with status(f"Reading manifests in {repo_dir}"):
            repo = load_repo([Path(p) for p in cfg.manifest_roots], repo_dir, cfg.exclude)
            git = load_git(repo_dir) if use_git else None
    if bundle is not None:
        from kubeshape.sources.bundle import load_bundle
        from kubeshape.sources.limits import Limits

        with status(f"Loading bundle {bundle}"):
            cluster, registry = load_bundle(bundle, Limits.from_env(configured=cfg.limits.configured()))
    if registry_snapshot is not None:
        import orjson

        from kubeshape.sources.bundle import parse_registry_snapshot

        try:
            registry = parse_registry_snapshot(orjson.loads(registry_snapshot.read_bytes()), str(registry_snapshot))
        except (OSError, orjson.JSONDecodeError) as exc:
            raise InputError(f"{registry_snapshot}: cannot read registry snapshot ({exc})") from None
    if registries:
        from kubeshape.cli.live import snapshot_registries
        from kubeshape.sources.bundle import parse_registry_snapshot

        with status("Reading registries"):
            registry = parse_registry_snapshot(snapshot_registries(registries, insecure, timeout), "registry")
    if live is not None:
        from kubeshape.cli.live import read_live

        inventories = [Inventory(repo=repo, cluster=c, registry=registry, git=git) for c in read_live(live)]
    else:
        inventories = [Inventory(repo=repo, cluster=cluster, registry=registry, git=git)]
    return Sources(cfg, repo_dir, repo, inventories)


def _doctor(repo_dir: Path | None, bundle: Path | None, registry_snapshot: Path | None, config: Path | None,
            sel: Selection, output: OutputFormat, fail_on: FailOn, report_file: Path | None,
            verbose: bool, use_git: bool = True, live: LiveOptions | None = None,
            registries: list[str] | None = None, insecure: bool = False, timeout: float | None = 30.0,
            explain: str | None = None) -> int:
    from kubeshape.analysis import analyse
    from kubeshape.ui import status

    src = load_sources(repo_dir, bundle, registry_snapshot, config, use_git, live, registries, insecure, timeout)
    if live is not None:
        from kubeshape.cli.live import merge_reports

        reports = [analyse(inv, src.cfg, sel)[0] for inv in src.inventories]
        report = merge_reports(reports) if len(reports) > 1 else reports[0]
    else:
        with status("Analysing"):
            report, _ = analyse(src.inventories[0], src.cfg, sel)
    errors = [f"{f}:{line}: {msg}" for f, line, msg in (src.repo.errors if src.repo else [])]
    return _emit(report, output, fail_on, report_file, verbose, errors, explain)


def _namespaces(namespace: list[str] | None, all_namespaces: bool) -> list[str] | None:
    if namespace and all_namespaces:
        raise InputError("-n/--namespace and -A/--all-namespaces exclude each other")
    return list(namespace) if namespace else None


@app.command()
def snapshot(
    out: Annotated[Path, typer.Option("--output", "-o", help="Bundle to write: NAME.tar.gz, or a new "
                                      "directory.")],
    context: ContextOpt = None,
    kubeconfig: KubeconfigOpt = None,
    namespace: NamespaceOpt = None,
    all_namespaces: AllNamespacesOpt = False,
    registry: RegistryOpt = None,
    insecure: InsecureOpt = False,
    request_timeout: RequestTimeoutOpt = "30s",
    qps: QpsOpt = 50.0,
    burst: BurstOpt = 300,
    max_logs: MaxLogsOpt = 30,
) -> None:
    """Write a bundle of a live cluster. Secret values and secret-looking env values are redacted."""
    from kubeshape.cli.live import LiveOptions, collect_live, snapshot_registries
    from kubeshape.sources.bundle_writer import bundle_members, write_bundle
    from kubeshape.ui import err_console

    timeout = parse_request_timeout(request_timeout)
    live = LiveOptions(kubeconfig, [context] if context else None, _namespaces(namespace, all_namespaces),
                       qps, max_logs, False, timeout, burst)
    [col] = collect_live(live)
    reg = snapshot_registries(registry or [], insecure, timeout) if registry else None
    members = bundle_members(col, reg)
    write_bundle(out, members)
    n = sum(len(d["items"]) for d in col.lists.values())
    err_console().print(f"wrote {out}: {n} objects of {len(col.lists)} kinds, {len(col.logs)} log tails"
                        + (f", {len(reg['registries'])} registries" if reg else "")
                        + f", {len(col.blind_spots)} blind spots ({col.requests} API requests)")


@app.command("rules")
def list_rules(
    output: Annotated[str, typer.Option("--output", "-o", help="text or json")] = "text",
) -> None:
    """List every rule: ID, name, family, default severity, summary."""
    from kubeshape.cli.catalog import print_rules

    print_rules(output)


@app.command("rule")
def show_rule(rule_id: Annotated[str, typer.Argument(help="Rule ID, e.g. KS101.")]) -> None:
    """Explain one rule: what it does, why, an example and the fix."""
    from kubeshape.cli.catalog import print_rule
    from kubeshape.rules.base import get_rule

    found = get_rule(rule_id)
    if found is None:
        raise InputError(f"unknown rule {rule_id!r} -- see 'kubeshape rules'")
    print_rule(found)


@app.command()
def rbac(namespace: Annotated[str, typer.Option("--namespace", "-n", help="Namespace of the ServiceAccount.")]
         = "kubeshape") -> None:
    """Print the read-only RBAC that doctor and snapshot need. A ServiceAccount, a ClusterRole and their binding."""
    from kubeshape.rbac import render

    typer.echo(render(namespace), nl=False)


add_stand_ins(app, _Root.lazy)  # release and history list before version; the sub-apps after the commands


@app.command()
def version() -> None:
    """Print the kubeshape version."""
    typer.echo(f"kubeshape {__version__}")
