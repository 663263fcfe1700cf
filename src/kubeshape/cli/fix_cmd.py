"""``kubeshape fix`` (a plain function; ``cli/app.py`` registers it)."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from kubeshape.actions.fix.apply import Cluster, Outcome, apply_plan
from kubeshape.actions.fix.build import build_plan
from kubeshape.actions.fix.context import Options
from kubeshape.actions.fix.plan import Plan, Step, load_plan
from kubeshape.actions.fix.render import counts, render_text
from kubeshape.cli.app import (
    AllNamespacesOpt,
    BurstOpt,
    ConfigOpt,
    ContextOpt,
    IgnoreOpt,
    InsecureOpt,
    KubeconfigOpt,
    MaxLogsOpt,
    NamespaceOpt,
    NoAnnOpt,
    QpsOpt,
    RegistryOpt,
    RegistrySnapshotOpt,
    RequestTimeoutOpt,
    SelectOpt,
    _demo_paths,
    _namespaces,
    _selection,
    load_sources,
)
from kubeshape.cli.timeouts import parse_request_timeout
from kubeshape.errors import EXIT_CLEAN, InputError
from kubeshape.redact import redact_text
from kubeshape.ui import err_console

SUMMARY = "Fix what doctor finds: edit files, commit, change the cluster."


class FixFormat(StrEnum):
    text = "text"
    json = "json"


def fix(
    repo: Annotated[Path | None, typer.Option("--repo", help="Manifests repository (a git work tree) to fix.",
                                              file_okay=False)] = None,
    bundle: Annotated[Path | None, typer.Option("--bundle", "-b", help="Cluster bundle to plan from (no cluster "
                                                "changes can be applied from a bundle).")] = None,
    registry_snapshot: RegistrySnapshotOpt = None,
    repo_only: Annotated[bool, typer.Option("--repo-only", help="Plan from the repository alone, as lint "
                                            "does: no cluster is read or changed.")] = False,
    demo: Annotated[bool, typer.Option("--demo", help="Plan the fixes of the bundled homelab demo (dry run "
                                       "only).")] = False,
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
    select: SelectOpt = None,
    ignore: IgnoreOpt = None,
    no_annotation_ignores: NoAnnOpt = False,
    output: Annotated[FixFormat, typer.Option("--output", "-o", help="text: diffs and cluster changes; json: "
                                              "the plan, for review and --plan.")] = FixFormat.text,
    apply: Annotated[bool, typer.Option("--apply", help="Write the files, commit them and change the "
                                        "cluster (default: dry run).")] = False,
    plan_file: Annotated[Path | None, typer.Option("--plan", help="With --apply: apply this reviewed plan "
                                                   "(from 'fix -o json') instead of planning again.",
                                                   dir_okay=False)] = None,
    interactive: Annotated[bool, typer.Option("--interactive", "-i", help="With --apply: ask before each "
                                              "step.")] = False,
    push_missing: Annotated[bool, typer.Option("--push-missing", help="Copy an image tag the private "
                                               "registry lacks from where its name resolves now.")] = False,
    push_from: Annotated[str, typer.Option("--push-from", help="Registry --push-missing copies from (where "
                                           "unqualified names resolve: docker.io; or a mirror).")] = "docker.io",
    otel_endpoint: Annotated[str | None, typer.Option("--otel-endpoint", help="Point telemetry at this "
                                                      "collector instead of disabling the SDK.")] = None,
) -> None:
    """Fix what doctor finds: edit files, commit, change the cluster. Takes doctor's sources;
    the plan shows each file as a unified diff and each cluster change kubectl-style, grouped by incident."""
    if plan_file is not None and not apply:
        raise InputError("--plan applies a reviewed plan: add --apply (a plan is shown with 'fix -o json')")
    if interactive and not apply:
        raise InputError("--interactive asks before each step of --apply: add --apply")
    timeout = parse_request_timeout(request_timeout)
    if plan_file is not None:
        plan = load_plan(plan_file)
        root = repo or (Path(plan.repo) if plan.repo else None)
        ctx_name = context or plan.context
        _finish(plan, root, apply, interactive, output, kubeconfig, ctx_name, qps, burst, timeout,
                planned_context=plan.context)
        return
    from kubeshape.analysis import analyse
    from kubeshape.cli.live import LiveOptions
    from kubeshape.ui import status

    sel = _selection(select, ignore, no_annotation_ignores)
    reach = {name or where: where for where, _, name in (spec.partition("=") for spec in registry or [])}
    options = Options(push_missing=push_missing, push_from=push_from, registry_reach=reach, insecure=insecure,
                      otel_endpoint=otel_endpoint)
    if demo:
        if repo or bundle or apply:
            raise InputError("--demo plans the demo's fixes as a dry run: drop --repo, --bundle and --apply")
        with _demo_paths() as (demo_repo, demo_bundle):
            src = load_sources(demo_repo, demo_bundle, registry_snapshot, config, use_git=False)
            inv = src.inventories[0]
            report, _ = analyse(inv, src.cfg, sel, command="fix")
            options.use_git = False
            plan = build_plan(inv, src.cfg, report.findings, demo_repo, options)
            plan.repo = "demo/repo"
        _finish(plan, None, False, False, output, None, None, qps, burst, timeout)
        return
    live = None
    if repo_only:
        if repo is None:
            raise InputError("--repo-only plans from the repository: add --repo")
        if bundle is not None or kubeconfig or context or namespace:
            raise InputError("--repo-only plans from --repo alone: drop --bundle/--kubeconfig/--context/-n")
    elif bundle is None:
        live = LiveOptions(kubeconfig, [context] if context else None, _namespaces(namespace, all_namespaces), qps,
                           max_logs, False, timeout, burst)
    elif kubeconfig or context or namespace:
        raise InputError("--context/--kubeconfig/-n read a live cluster; drop them or --bundle")
    src = load_sources(repo, bundle, registry_snapshot, config, True, live, registry or [], insecure, timeout)
    inv = src.inventories[0]
    for file, line, msg in src.repo.errors if src.repo else []:
        err_console().print(f"[bold yellow]kubeshape: warning:[/] {redact_text(f'{file}:{line}: {msg}')} (not read, "
                            "so not fixed)", highlight=False, soft_wrap=True)
    with status("Planning"):
        report, _ = analyse(inv, src.cfg, sel, command="fix")
        context_name = inv.cluster.name if inv.cluster is not None and bundle is None else None
        plan = build_plan(inv, src.cfg, report.findings, repo, options, context=context_name)
    _finish(plan, repo, apply, interactive, output, kubeconfig if live is not None else None, context_name, qps,
            burst, timeout, live_allowed=live is not None)


def _finish(plan: Plan, root: Path | None, apply: bool, interactive: bool, output: FixFormat,
            kubeconfig: Path | None, context: str | None, qps: float, burst: int, timeout: float | None,
            planned_context: str | None = None, live_allowed: bool = True) -> None:
    if output is FixFormat.json and not apply:
        sys.stdout.write(plan.to_json().decode() + "\n")
        return
    out = sys.stdout
    if not apply:
        out.write(redact_text(render_text(plan)))
        return
    if plan.empty:
        out.write("Nothing to apply.\n")
        return
    cluster = None
    api = None
    if any(s.cluster for s in plan.steps):
        if not live_allowed:
            raise InputError("the plan changes the cluster, which a bundle cannot: run fix against the cluster "
                             "(--kubeconfig/--context) to apply it")
        from kubeshape.sources.live import connect

        api, _ = connect(kubeconfig, context, qps=qps, burst=burst, timeout=timeout)
        if planned_context and api.context != planned_context:
            raise InputError(f"the plan was made for context '{planned_context}', not '{api.context}': pass "
                             f"--context {planned_context}")
        cluster = Cluster(api)
    console = err_console()
    try:
        outcome = apply_plan(plan, root, cluster, confirm=_ask if interactive else None,
                             progress=lambda s, what: console.print(f"[bold cyan]fix:[/] step {s.id} {what}: "
                                                                     f"{s.title}", highlight=False, markup=True,
                                                                     soft_wrap=True))
    finally:
        if api is not None:
            api.http.close()
    _report(plan, outcome)


def _ask(step: Step) -> bool:
    single = Plan(steps=[step])
    sys.stdout.write(redact_text(render_text(single, applied=True)))
    return typer.confirm(f"Apply step {step.id}?", default=False)


def _report(plan: Plan, outcome: Outcome) -> None:
    console = err_console()
    steps = counts(plan)[0]
    line = f"applied {len(outcome.applied)} of {steps} steps"
    if outcome.declined:
        line += f", {len(outcome.declined)} declined"
    if outcome.commit:
        line += f"; committed {outcome.commit[:12]}"
    console.print(f"[bold cyan]fix:[/] {line}", highlight=False, soft_wrap=True)
    if plan.gitops and outcome.commit:
        console.print("[bold cyan]fix:[/] Flux applies the commit once it is pushed: git push", highlight=False)
    if outcome.stopped:
        console.print(f"[bold red]kubeshape: error:[/] {redact_text(outcome.stopped)}", highlight=False,
                      soft_wrap=True, markup=True)
        raise typer.Exit(outcome.stopped_exit)
    raise typer.Exit(EXIT_CLEAN)
