"""``kubeshape registry tags|prune``: registry tags with their usage, and retention-policy pruning."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, cast

import orjson
import typer

from kubeshape.actions.prune import ApplyResult, apply_plan, build_plan
from kubeshape.actions.registries import RegistryState, Target, read_registries, targets_for
from kubeshape.actions.render import outcome_line, plan_json, plan_text, result_text
from kubeshape.actions.tags import build_listing, family4_findings, listing_json, listing_text
from kubeshape.actions.usage import Usage, compute_usage
from kubeshape.cli.subapp import sub_app
from kubeshape.config import Config, load_config
from kubeshape.errors import InputError
from kubeshape.inventory import ClusterSource, Inventory, RepoSource
from kubeshape.ui import status

app = sub_app(
    "registry",
    "Registry tags and where they are used; prune old tags. Pruning follows the retention policy of "
    "kubeshape.yaml.",
)

NO_USAGE_FLAG = "--no-usage-check"


class Output(StrEnum):
    text = "text"
    json = "json"


RegistryOpt = Annotated[list[str] | None, typer.Option(
    "--registry", help="Registry HOST[:PORT], or REACH=NAME-IN-IMAGES (repeatable). Default: registries.private.")]
InsecureOpt = Annotated[bool, typer.Option("--insecure-registry", help="Plain HTTP for --registry.")]
RepositoryOpt = Annotated[list[str] | None, typer.Option(
    "--repository", help="Only this repository: NAME or HOST/NAME (repeatable). Default: the catalog.")]
RepoOpt = Annotated[Path | None, typer.Option("--repo", help="Manifests repository: its images count as used.",
                                              file_okay=False)]
BundleOpt = Annotated[Path | None, typer.Option("--bundle", "-b", help="Cluster bundle: its images count as used.")]
KubeconfigOpt = Annotated[Path | None, typer.Option("--kubeconfig", help="Read this live cluster.", dir_okay=False)]
ContextOpt = Annotated[str | None, typer.Option("--context", help="Read the live cluster of this context.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="kubeshape.yaml to use.", dir_okay=False)]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="text or json.")]
TimeoutOpt = Annotated[str, typer.Option("--request-timeout", "--timeout", help="How long one request may take, "
                                          "retries included: 30s, 1m, 500ms, or seconds; 0 waits forever.")]
KeepRollbackOpt = Annotated[int | None, typer.Option(
    "--keep-rollback-targets", metavar="N",
    help="Scaled-down old revisions per Deployment whose images stay as rollback targets (fewer if its "
         "revisionHistoryLimit is lower); 0 keeps only what runs. Default: thresholds.keep_replicasets (3).")]


def _echo(lines: list[str]) -> None:
    for line in lines:
        typer.echo(line)


def _split_repositories(values: list[str], targets: list[Target]) -> tuple[list[str], list[Target]]:
    """``NAME`` or ``HOST/NAME``: the names, and the targets (only the named hosts, when any is named)."""
    names: list[str] = []
    hosts: set[str] = set()
    for v in values:
        t = next((t for t in targets if v.startswith((f"{t.name}/", f"{t.reach}/"))), None)
        if t is not None:
            hosts.add(t.name)
            v = v.removeprefix(f"{t.name}/").removeprefix(f"{t.reach}/")
        names.append(v)
    return list(dict.fromkeys(names)), [t for t in targets if not hosts or t.name in hosts]


def _default_targets(registry: list[str] | None, repository: list[str] | None, cfg: Config) -> list[Target]:
    """--registry, else registries.private, else the hosts of ``HOST/NAME`` repositories."""
    if not registry and not cfg.registries.private and repository:
        hosts = {r.split("/", 1)[0] for r in repository if "/" in r}
        qualified = {h for h in hosts if "." in h or ":" in h or h == "localhost"}
        if qualified:
            return targets_for(sorted(qualified), cfg)
    return targets_for(registry or [], cfg)


def _load_usage_sources(repo_dir: Path | None, bundle: Path | None, kubeconfig: Path | None, context: str | None,
                        cfg: Config, timeout: float | None) -> tuple[RepoSource | None, ClusterSource | None]:
    from kubeshape.sources._gc import kept_until_exit

    with kept_until_exit():  # a command's process exits after it: what it loaded need not be collected
        return _read_usage_sources(repo_dir, bundle, kubeconfig, context, cfg, timeout)


def _read_usage_sources(repo_dir: Path | None, bundle: Path | None, kubeconfig: Path | None, context: str | None,
                        cfg: Config, timeout: float | None) -> tuple[RepoSource | None, ClusterSource | None]:
    from kubeshape.cli.live import LiveOptions, read_live
    from kubeshape.sources.bundle import load_bundle
    from kubeshape.sources.repo import load_repo

    if bundle is not None and (kubeconfig or context):
        raise InputError("--bundle and --kubeconfig/--context both give a cluster: pick one")
    repo = cluster = None
    if repo_dir is not None:
        if not repo_dir.is_dir():
            raise InputError(f"{repo_dir}: not a directory -- --repo takes the manifests repository")
        with status(f"Reading manifests in {repo_dir}"):
            repo = load_repo([Path(p) for p in cfg.manifest_roots], repo_dir, cfg.exclude)
    if bundle is not None:
        with status(f"Loading bundle {bundle}"):
            cluster, _ = load_bundle(bundle)  # registry data is read live, not from the bundle
    elif kubeconfig or context:
        [cluster] = read_live(LiveOptions(kubeconfig, [context] if context else None, None, 20.0, 0, False, timeout))
    return repo, cluster


def _gather(registry: list[str] | None, insecure: bool, repository: list[str] | None, repo_dir: Path | None,
            bundle: Path | None, kubeconfig: Path | None, context: str | None, config: Path | None,
            request_timeout: str, keep_rollback: int | None) -> tuple[Config, RegistryState, Inventory, Usage]:
    from kubeshape.cli.timeouts import parse_request_timeout

    if keep_rollback is not None and keep_rollback < 0:
        raise InputError(f"--keep-rollback-targets {keep_rollback}: expected 0 or more old revisions per Deployment")
    timeout = parse_request_timeout(request_timeout)
    cfg, _ = load_config(config, repo_dir or Path.cwd())
    targets = _default_targets(registry, repository, cfg)
    names, targets = _split_repositories(list(repository or []), targets)
    repo, cluster = _load_usage_sources(repo_dir, bundle, kubeconfig, context, cfg, timeout)
    with status("Reading registries"):
        # read_registries hands timeout to RegistryClient, which takes None (no limit); its annotation says float
        state = read_registries(targets, insecure=insecure, repositories=names or None,
                                timeout=cast(float, timeout))
    inv = Inventory(repo=repo, cluster=cluster, registry=state.snapshot, now=datetime.now(UTC))
    return cfg, state, inv, compute_usage(inv, cfg, keep_rollback=keep_rollback)


@app.command("tags")
def tags(registry: RegistryOpt = None, insecure: InsecureOpt = False, repository: RepositoryOpt = None,
         repo: RepoOpt = None, bundle: BundleOpt = None, kubeconfig: KubeconfigOpt = None,
         context: ContextOpt = None, config: ConfigOpt = None, output: OutputOpt = Output.text,
         timeout: TimeoutOpt = "30s", keep_rollback_targets: KeepRollbackOpt = None) -> None:
    """List every tag per repository and where it is used. Also: digest, created, size, tag scheme, which
    Deployment revisions it is a rollback target of, and the KS401-KS404 findings."""
    cfg, state, inv, usage = _gather(registry, insecure, repository, repo, bundle, kubeconfig, context, config,
                                     timeout, keep_rollback_targets)
    try:
        listing = build_listing(state, usage, cfg)
        findings = family4_findings(inv, cfg)
    finally:
        state.close()
    if output is Output.json:
        typer.echo(orjson.dumps(listing_json(listing, findings, usage), option=orjson.OPT_INDENT_2).decode())
    else:
        _echo(listing_text(listing, findings, usage))


def _refuse_unknown_usage(usage: Usage) -> None:
    if not usage.checked:
        raise InputError("refusing to --apply: no cluster (--kubeconfig/--context or --bundle) and no repo (--repo) "
                         "was given, so kubeshape cannot tell which tags are in use; give them, or pass "
                         f"{NO_USAGE_FLAG} if nothing deployed uses these repositories")
    if usage.gaps:
        raise InputError(f"refusing to --apply: usage is incomplete ({'; '.join(usage.gaps)}); fix that, or pass "
                         f"{NO_USAGE_FLAG} if you know no hidden workload uses these repositories")


@app.command("prune")
def prune(
    registry: RegistryOpt = None, insecure: InsecureOpt = False, repository: RepositoryOpt = None,
    repo: RepoOpt = None, bundle: BundleOpt = None, kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None, config: ConfigOpt = None, output: OutputOpt = Output.text,
    timeout: TimeoutOpt = "30s", keep_rollback_targets: KeepRollbackOpt = None,
    apply: Annotated[bool, typer.Option("--apply", help="Delete the tags the plan drops (default: dry run).")]
    = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show the plan (the default).")] = False,
    no_usage_check: Annotated[bool, typer.Option(NO_USAGE_FLAG, help="Allow --apply without a cluster or repo "
                                                 "to tell which tags are in use.")] = False,
) -> None:
    """Plan tag deletion by the retention policy. With --apply, delete the tags the plan drops; tags in use and
    the images of rollback targets are never deleted."""
    if apply and dry_run:
        raise InputError("--apply and --dry-run exclude each other")
    if apply and not no_usage_check and not (repo or bundle or kubeconfig or context):
        _refuse_unknown_usage(Usage())
    cfg, state, _, usage = _gather(registry, insecure, repository, repo, bundle, kubeconfig, context, config,
                                   timeout, keep_rollback_targets)
    try:
        if apply and not no_usage_check:
            _refuse_unknown_usage(usage)
        plan = build_plan(state, usage, cfg, datetime.now(UTC))
        text = output is Output.text
        if text:
            _echo(plan_text(plan, apply=apply))
            if apply and plan.drops:
                typer.echo("")
        result: ApplyResult | None = None
        if apply:
            result = apply_plan(plan, state.clients, (lambda o: typer.echo(outcome_line(o))) if text else None)
    finally:
        state.close()
    if text:
        _echo(result_text(plan, result))
    else:
        typer.echo(orjson.dumps(plan_json(plan, result, apply=apply), option=orjson.OPT_INDENT_2).decode())
    if result is not None and result.error is not None:
        raise result.error
    if result is not None and result.interrupted:
        raise typer.Exit(130)
