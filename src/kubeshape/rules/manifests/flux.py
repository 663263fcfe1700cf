"""KS2xx manifests, Flux: what Flux fails to apply, does not apply any more, has not applied yet, and what
changed in the cluster behind its back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from kubeshape.findings import Finding, Severity
from kubeshape.inventory import Inventory, K8sObject
from kubeshape.redact import redact_value
from kubeshape.rules._common import pull_problem
from kubeshape.rules.base import Context, rule
from kubeshape.rules.manifests import _flux as fx
from kubeshape.timeutil import format_time, human_duration, parse_time

MAX_DEPTH = 20  # longest dependency chain followed to its root cause
MAX_LISTED = 10  # objects named in one evidence line


def _failing(inv: Inventory) -> dict[tuple[str, str, str], fx.Health]:
    def build() -> dict[tuple[str, str, str], fx.Health]:
        out = {}
        for key, obj in fx.flux_index(inv).objects.items():
            state = fx.health(obj, inv.now)
            if state is not None:
                out[key] = state
        return out

    return inv.memo("flux.failing", build)


def _blocker(idx: fx.FluxIndex, failing: dict[tuple[str, str, str], fx.Health], obj: K8sObject) -> K8sObject | None:
    """The failing object ``obj`` waits for (its source, a dependsOn), when its own failure only passes that on."""
    state = failing.get(obj.key)
    if state is None or state.reason not in fx.BLOCKED_REASONS:
        return None
    for key in [fx.source_key(obj), *fx.depends_keys(obj)]:
        dep = idx.get(key)
        if dep is not None and dep.key in failing:
            return dep
    return None


def root_causes(inv: Inventory) -> dict[tuple[str, str, str], list[K8sObject]]:
    """Each failing Flux object that fails on its own → the failing objects it blocks (through ``sourceRef``
    and ``dependsOn``, transitively)."""
    idx = fx.flux_index(inv)
    failing = _failing(inv)
    out: dict[tuple[str, str, str], list[K8sObject]] = {}
    for key in sorted(failing):
        obj = idx.objects[key]
        root, seen = obj, {obj.key}
        for _ in range(MAX_DEPTH):
            nxt = _blocker(idx, failing, root)
            if nxt is None or nxt.key in seen:
                break
            root = nxt
            seen.add(root.key)
        out.setdefault(root.key, [])
        if root is not obj:
            out[root.key].append(obj)
    return out


def _first_line(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _fix_for(obj: K8sObject, state: fx.Health) -> str:
    reconcile = fx.cli("reconcile", obj, " --with-source" if obj.kind in ("Kustomization", "HelmRelease") else "")
    spec = obj.spec
    if obj.kind == "Kustomization" and state.reason == "BuildFailed":
        path = spec.get("path") or "./"
        rev = obj.status.get("lastAttemptedRevision") or "the source's revision"
        return (f"# reproduce Flux's build of {path} at {fx.short(rev)} in a checkout of that commit:\n"
                f"git checkout {fx.revision_sha(rev)[:12] or '<commit>'} && kustomize build {path}\n"
                "# fix the error it reports, commit and push, then:\n" + reconcile)
    if obj.kind == "GitRepository":
        ref = spec.get("ref") or {}
        what = ref.get("branch") or ref.get("tag") or ref.get("commit") or ""
        return (f"git ls-remote {spec.get('url', '<url>')} {what}".rstrip()
                + "  # the URL and ref must exist and be readable with the credentials of spec.secretRef\n"
                "# correct spec.url / spec.ref / the secret, then:\n" + reconcile)
    if obj.kind in ("OCIRepository", "HelmRepository"):
        return (f"# check that {spec.get('url', 'the URL')} answers and the credentials of spec.secretRef are "
                f"valid, then:\n{reconcile}")
    if state.reason == "HealthCheckFailed":
        return ("# the message names the objects that did not become ready; inspect them, e.g.\n"
                f"kubectl get events -n {spec.get('targetNamespace') or obj.namespace} "
                "--sort-by=.lastTimestamp\n# fix them in the repository, commit and push, then:\n" + reconcile)
    if state.reason == "NotReconciled":
        return (f"# is the controller for {obj.kind} running?\nkubectl get pods -n flux-system\n"
                f"flux check")
    return (f"kubectl describe {fx.kubectl_resource(obj)} {obj.name} -n {obj.namespace}\n"
            f"flux logs --kind={obj.kind} --name={obj.name} -n {obj.namespace}\n"
            f"# fix the cause Flux reports above, then:\n{reconcile}")


def _what(obj: K8sObject, inv: Inventory) -> list[str]:
    """What a Flux object reads and has done: its source and path, revisions, URL."""
    out: list[str] = []
    spec, status = obj.spec, obj.status
    src = fx.source_key(obj)
    if src is not None:
        found = fx.flux_index(inv).get(src)
        state = "" if found is not None or not inv.listed(src[0]) else " (not among the objects read)"
        out.append(f"source: {src[0].split('.')[0]} {src[1]}/{src[2]}{state}")
    if obj.kind == "Kustomization":
        out.append(f"path: {spec.get('path') or './'}")
    if spec.get("url"):
        ref = spec.get("ref") or {}
        refs = ", ".join(f"{k} {v}" for k, v in ref.items() if isinstance(v, str))
        out.append(f"url: {spec['url']}" + (f" ({refs})" if refs else ""))
    for field in ("lastAttemptedRevision", "lastAppliedRevision"):
        if status.get(field):
            out.append(f"{field}: {status[field]}")
    artifact = status.get("artifact") or {}
    if artifact.get("revision"):
        out.append(f"last artifact: {artifact['revision']}"
                   + (f" (since {artifact['lastUpdateTime']})" if artifact.get("lastUpdateTime") else ""))
    return out


@rule("KS206", "flux-not-ready", severity=Severity.ERROR, requires=("cluster",))
def flux_not_ready(ctx: Context) -> Iterator[Finding]:
    """Flux object that fails to reconcile.

    ## What it does
    Reads the `Ready` and `Stalled` conditions of every GitRepository, OCIRepository, HelmRepository,
    Kustomization and HelmRelease: `Ready=False`, `Stalled=True`, `Ready=Unknown` for longer than two
    intervals, or no status at all long after creation. It reports Flux's own reason and message, since
    when, and what the object reads (source, path, revision). An object that fails only because what it
    depends on fails (a Kustomization whose GitRepository cannot fetch: `ArtifactFailed`; a `dependsOn`
    that is not ready: `DependencyNotReady`) is listed under that root cause, not reported apart.

    ## Why is this bad?
    Nothing in git reaches the cluster while it fails: commits pile up, drift is not corrected, and the
    cluster runs whatever the last successful reconcile left.

    ## Example
    ```text
    Kustomization flux-system/apps: Ready=False BuildFailed since 2025-11-17T09:12:00Z
    kustomize build failed: accumulating resources: ... 'apps/missing.yaml': no such file or directory
    ```

    ## Fix
    Reproduce the failure where Flux reports it (`kustomize build <path>` for a BuildFailed, `git ls-remote`
    for a GitOperationFailed), fix it in the repository, and `flux reconcile ... --with-source`.
    """
    inv = ctx.inv
    idx = fx.flux_index(inv)
    failing = _failing(inv)
    for key, blocked in sorted(root_causes(inv).items()):
        obj, state = idx.objects[key], failing[key]
        since = f" since {fx.ago(inv.now, state.since)}" if state.since else ""
        evidence = [f"{state.condition} {state.reason}{since}".strip(), *(f"message: {line}" for line in
                                                                         state.message.splitlines()[:20]),
                    *_what(obj, inv)]
        applied, source = obj.status.get("lastAppliedRevision"), idx.source_of(obj)
        artifact = ((source.status.get("artifact") or {}).get("revision") if source is not None else None)
        if applied and artifact and applied != artifact:
            evidence.append(f"the cluster still runs {fx.short(applied)}; the source is at {fx.short(artifact)}")
        for dep in sorted(blocked, key=lambda o: o.key)[:MAX_LISTED]:
            d = failing[dep.key]
            evidence.append(f"blocks {fx.flux_name(dep)}: {d.condition} {d.reason}: {_first_line(d.message)}")
        users = [u for u in idx.dependents.get(key, []) if u.key not in failing and u.spec.get("suspend") is not True]
        if users and obj.status.get("artifact"):
            names = ", ".join(fx.flux_name(u) for u in users[:MAX_LISTED])
            evidence.append(f"still applying the last artifact it fetched, new commits not reaching them: {names}")
        blocks = f"; it blocks {len(blocked)} more Flux object(s)" if blocked else ""
        yield ctx.finding(
            obj, f"{fx.flux_name(obj)} is not ready: {state.reason or state.condition}: "
                 f"{_first_line(state.message, 120)}{blocks}",
            evidence=evidence, source="cluster", fix=_fix_for(obj, state),
            root_cause=f"Flux reports {state.reason or state.condition} for {fx.flux_name(obj)}"
                       + (f", which {', '.join(fx.flux_name(b) for b in blocked[:MAX_LISTED])} wait(s) on"
                          if blocked else "") + ".",
            data={"reason": state.reason, "condition": state.condition, "since": format_time(state.since),
                  "blocks": [str(b.ref) for b in blocked]})


def _suspended_scope(obj: K8sObject, inv: Inventory) -> list[str]:
    idx = fx.flux_index(inv)
    out: list[str] = []
    if obj.kind == "Kustomization":
        entries = (obj.status.get("inventory") or {}).get("entries") or []
        namespaces = sorted({k[1] for e in entries if isinstance(e, dict)
                             and (k := fx.entry_key(str(e.get("id") or ""))) and k[1]})
        if "inventory" in obj.status:
            out.append(f"{len(entries)} applied object(s)"
                       + (f" in namespace(s) {', '.join(namespaces)}" if namespaces else "")
                       + ": drift is not corrected, nothing is pruned")
        applied, source = obj.status.get("lastAppliedRevision"), idx.source_of(obj)
        artifact = (source.status.get("artifact") or {}).get("revision") if source is not None else None
        if applied:
            out.append(f"stays at {fx.short(applied)}"
                       + (f" while its source is at {fx.short(artifact)}" if artifact and artifact != applied
                          else ""))
    elif obj.kind == "HelmRelease":
        chart = (obj.spec.get("chart") or {}).get("spec") or {}
        out.append(f"release {obj.spec.get('releaseName') or obj.name} (chart {chart.get('chart', '?')} "
                   f"{chart.get('version', '')}) is neither upgraded nor repaired".replace(" )", ")"))
    else:
        users = idx.dependents.get(obj.key, [])
        out.append(f"no new revisions are fetched from {obj.spec.get('url', '?')}"
                   + (f"; {', '.join(fx.flux_name(u) for u in users[:MAX_LISTED])} see none" if users else ""))
    return out


@rule("KS207", "flux-suspended", severity=Severity.WARNING, requires=("cluster",))
def flux_suspended(ctx: Context) -> Iterator[Finding]:
    """Flux object whose reconciliation is suspended.

    ## What it does
    Lists GitRepositories, OCIRepositories, HelmRepositories, Kustomizations and HelmReleases with
    `spec.suspend: true`, what they no longer reconcile (applied objects, revisions left behind, dependent
    objects) and, when the object's managedFields record it, who suspended it and when.

    ## Why is this bad?
    `flux suspend` is meant for minutes. Forgotten, it silently freezes that part of the cluster: commits
    are not applied, manual changes are not reverted, deleted manifests are not pruned.

    ## Example
    ```text
    Kustomization flux-system/apps is suspended (by flux at 2025-11-10T08:00:00Z)
    stays at main@sha1:1a2b3c4 while its source is at main@sha1:9f8e7d6
    ```

    ## Fix
    `flux resume kustomization apps -n flux-system` (and remove `suspend: true` from the repository when it
    is set there).
    """
    inv = ctx.inv
    for obj in fx.flux_index(inv).objects.values():
        if obj.spec.get("suspend") is not True:
            continue
        who = fx.suspended_by(obj)
        evidence = [f"spec.suspend: true, set by {who[0]} at {fx.ago(inv.now, who[1])}" if who else
                    "spec.suspend: true (when and by whom is not recorded: the change was an apply, or the "
                    "snapshot holds no field paths)"]
        evidence += _suspended_scope(obj, inv)
        ready = fx.condition(obj, "Ready")
        if ready is not None:
            evidence.append(f"last status: Ready={ready.get('status')} {ready.get('reason', '')} since "
                            f"{ready.get('lastTransitionTime', '?')}")
        fix = fx.cli("resume", obj)
        repo_def = next((o for o in inv.repo_by_key.get(obj.key, []) if o.spec.get("suspend") is True), None)
        file = line = None
        if repo_def is not None:
            file, line = repo_def.where("spec.suspend")
            fix = f"# the repository suspends it: remove `suspend: true` at {file}:{line}, commit and push\n{fix}"
        elif obj.labels.get(fx.NAME_LABEL) and who is None:
            fix += ("\n# it is applied by Kustomization "
                    f"{obj.labels.get(fx.NAMESPACE_LABEL)}/{obj.labels[fx.NAME_LABEL]}: if the repository sets "
                    "suspend: true, remove it there or the next reconcile suspends it again")
        since = f" since {format_time(who[1])}" if who and who[1] else ""
        yield ctx.finding(
            obj, f"{fx.flux_name(obj)} is suspended{since}: Flux does not reconcile it", evidence=evidence,
            fix=fix, file=file, line=line, source="cluster",
            root_cause="Reconciliation was paused (flux suspend, or suspend: true in the repository) and "
                       "never resumed.",
            data={"suspended_by": who[0] if who else None, "since": format_time(who[1]) if who else ""})


def _grace(*intervals: timedelta | None) -> timedelta:
    return sum((i for i in intervals if i is not None), timedelta()) + fx.SLACK


@rule("KS208", "flux-behind", severity=Severity.WARNING, requires=("cluster",))
def flux_behind(ctx: Context) -> Iterator[Finding]:
    """Kustomization that has not applied the latest commit.

    ## What it does
    Compares each Kustomization's `lastAppliedRevision` with its source's `status.artifact.revision`, and —
    when doctor is given the repository and the checkout's remote is the GitRepository's URL — with the
    head of the branch the GitRepository follows (the remote-tracking branch, i.e. what was pushed). It
    allows for the intervals (a push is not fetched at once) and stays silent when Flux reports a failure
    (KS206 says why) or when the checkout does not know the applied commit.

    ## Why is this bad?
    What was merged is not what runs, and nothing says so: the GitRepository polls rarely, or the
    Kustomization is suspended or stuck, and people debug a version that is not deployed.

    ## Example
    ```text
    Kustomization flux-system/apps applied main@sha1:1a2b3c4; origin/main in the checkout is at 9f8e7d6
    (pushed 2h ago); GitRepository flux-system/homelab polls every 1h
    ```

    ## Fix
    `flux reconcile kustomization <name> --with-source` (fetch now), `flux resume` when suspended, and a
    shorter `spec.interval` or a webhook Receiver on the GitRepository.
    """
    inv = ctx.inv
    idx = fx.flux_index(inv)
    failing = _failing(inv)
    for ks in idx.kustomizations:
        applied = str(ks.status.get("lastAppliedRevision") or "")
        source = idx.source_of(ks)
        if not applied or source is None or ks.key in failing or source.key in failing:
            continue
        suspended = ks.spec.get("suspend") is True
        artifact = source.status.get("artifact") or {}
        revision = str(artifact.get("revision") or "")
        fetched = parse_time(artifact.get("lastUpdateTime"))
        evidence: list[str] = []
        causes: list[str] = []
        behind_source = bool(revision) and revision != applied and (
            suspended or fetched is None or inv.now - fetched > _grace(fx.interval(ks)))
        if behind_source:
            evidence.append(f"applied {fx.short(applied)}; {fx.flux_name(source)} has fetched {fx.short(revision)}"
                            + (f" at {fx.ago(inv.now, fetched)}" if fetched else ""))
            causes.append("it is suspended" if suspended else
                          f"it has not reconciled since its source fetched {fx.short(revision)}")
        head = fx.checkout_branch(inv, source) if source.kind == "GitRepository" else None
        behind_head = False
        if head is not None and inv.git is not None:
            ref, sha, when = head
            pushed = datetime.fromtimestamp(when, UTC)
            applied_sha = fx.revision_sha(applied)
            source_has_it = fx.revision_sha(revision) == sha
            if sha != applied_sha and applied_sha in inv.git.commits:
                waited = inv.now - pushed
                grace = _grace(fx.interval(source), fx.interval(ks) if source_has_it else None)
                if behind_source or suspended or source.spec.get("suspend") is True or waited > grace:
                    behind_head = True
                    evidence.append(f"{ref} in the checkout ({inv.git.root}) is at {sha[:12]}, committed "
                                    f"{human_duration(waited)} ago; the cluster runs {applied_sha[:12]}")
                    if not source_has_it:
                        poll = source.spec.get("interval", "?")
                        causes.append(f"{fx.flux_name(source)} has not fetched {sha[:12]} (it polls every {poll}"
                                      + (f"; last new artifact {fx.ago(inv.now, fetched)}" if fetched else "")
                                      + ")")
        if not (behind_source or behind_head):
            continue
        if suspended:
            evidence.append("the Kustomization is suspended (see KS207)")
        fix = [fx.cli("resume", ks)] if suspended else []
        if behind_head and source.spec.get("suspend") is True:
            fix.append(fx.cli("resume", source))
        fix.append(fx.cli("reconcile", ks, " --with-source"))
        if behind_head and not suspended:
            fix.append(f"# to deploy pushes promptly: a shorter spec.interval on {fx.flux_name(source)} or a Flux "
                       "webhook Receiver")
        target = f"the head of {head[0]}" if behind_head and head else "its source's revision"
        yield ctx.finding(
            ks, f"{fx.flux_name(ks)} is behind {target}: it runs {fx.short(applied)}",
            evidence=evidence, fix="\n".join(fix), source="cluster",
            root_cause="Flux has not applied the latest commit: " + "; ".join(causes or ["not reconciled yet"]) + ".",
            data={"applied": applied, "source_revision": revision, "head": head[1] if behind_head and head else None})


def _made_by_system(obj: K8sObject) -> bool:
    """Created by Kubernetes itself (the CA ConfigMap in every namespace, the API server's Service)."""
    names = {str(m.get("manager") or "") for m in fx.managers(obj)}
    if names and names <= fx.SYSTEM_MANAGERS:
        return True
    return (obj.kind, obj.name) in {("ConfigMap", "kube-root-ca.crt"), ("Service", "kubernetes")}


def by_hand(inv: Inventory, obj: K8sObject) -> bool:
    """A live object in a namespace Flux manages that neither Flux nor Helm nor a controller made."""
    idx = fx.flux_index(inv)
    return (obj.namespace in fx.managed_namespaces(inv) and not fx.is_flux(obj)
            and not obj.metadata.get("ownerReferences") and fx.managing_kustomization(inv, obj) is None
            and not fx.helm_managed(obj) and not _made_by_system(obj) and idx.listed)


@rule("KS210", "applied-by-hand", severity=Severity.WARNING, requires=("cluster",))
def applied_by_hand(ctx: Context) -> Iterator[Finding]:
    """Live object in a Flux-managed namespace that Flux does not manage.

    ## What it does
    A namespace is Flux-managed when a Kustomization applies objects into it (its `status.inventory`) or
    targets it (`targetNamespace`). Every object doctor lists there that is in no Kustomization's inventory,
    carries no Flux labels, is not installed by Helm or a HelmRelease, and is not made by a controller
    (ownerReferences) or by Kubernetes itself is reported, with the managers that wrote it. Severity is
    warning when a person's tool wrote it (kubectl, k9s, Lens): someone bypassed git; info otherwise (an
    application or operator writing objects at runtime).

    ## Why is this bad?
    In a namespace that git is supposed to describe, this object is invisible to review, lost when the
    cluster is rebuilt, and may silently shadow or fight what Flux applies.

    ## Example
    ```text
    homelab/Service/debug-web: created by kubectl-client-side-apply at 2025-11-16T22:14:03Z; in no
    Kustomization's inventory (Kustomization flux-system/apps manages homelab)
    ```

    ## Fix
    Commit it to the repository under the Kustomization's path (then Flux owns it), or delete it.
    """
    inv = ctx.inv
    managed = fx.managed_namespaces(inv)
    if not managed or not fx.flux_index(inv).listed or inv.cluster is None:
        return
    for key, objs in sorted(inv.cluster.objects.items()):
        if key in fx.FLUX_KEYS:
            continue
        for obj in objs:
            if not by_hand(inv, obj):
                continue
            kss = managed[obj.namespace]
            writers = [(str(m.get("manager") or "?"), str(m.get("operation") or "?"), str(m.get("time") or "?"))
                       for m in fx.managers(obj)]
            person = any(fx.HUMAN_MANAGERS.fullmatch(w[0]) for w in writers)
            ks_text = ", ".join(f"{fx.flux_name(k)} (path {k.spec.get('path') or './'})" for k in kss[:MAX_LISTED])
            evidence = [f"namespace {obj.namespace} is managed by Flux: {ks_text}",
                        "in no Kustomization's inventory, without Flux's labels, not installed by Helm",
                        *(f"written by {m} ({op} at {t})" for m, op, t in writers[:MAX_LISTED]),
                        f"created {obj.metadata.get('creationTimestamp', '?')}"]
            if not writers:
                evidence.append("who wrote it is not recorded (no managedFields)")
            path = str(kss[0].spec.get("path") or ".").removeprefix("./").rstrip("/") or "."
            resource = fx.kubectl_resource(obj)
            yield ctx.finding(
                obj, f"{obj.kind} {obj.namespace}/{obj.name} is in Flux-managed namespace {obj.namespace} but Flux "
                     "does not apply it" + (" (applied by hand)" if person else ""),
                severity=Severity.WARNING if person else Severity.INFO, evidence=evidence, source="cluster",
                root_cause=("Applied by hand (kubectl/k9s) into a namespace git manages, and never committed."
                            if person else "Written at runtime by something other than Flux, in a namespace "
                                           "git manages."),
                fix=(f"# commit it, so that Flux applies it:\nkubectl get {resource} {obj.name} -n {obj.namespace} "
                     f"-o yaml > {path}/{obj.name}.yaml  # remove status and server fields; list it in "
                     f"{path}/kustomization.yaml if there is one\n# or delete it:\n"
                     f"kubectl delete {resource} {obj.name} -n {obj.namespace}"),
                data={"managers": sorted({w[0] for w in writers}),
                      "kustomizations": [str(k.ref) for k in kss]})


def _value(value: object, path: str) -> str:
    segs = [s for s in fx.parse_path(path) if isinstance(s, str)]
    name = segs[-1] if segs else ""
    text = value if isinstance(value, str) else repr(value) if isinstance(value, int | float | bool) else None
    return redact_value(name, text) if text is not None else "…"


@rule("KS211", "changed-behind-flux", severity=Severity.WARNING, requires=("cluster",))
def changed_behind_flux(ctx: Context) -> Iterator[Finding]:
    """Flux-managed object changed in the cluster by someone else.

    ## What it does
    For every object a Kustomization applies (Flux's `kustomize.toolkit.fluxcd.io/name` labels, or its
    inventory), reads managedFields: an `Update` of the object itself (not a subresource such as `scale` or
    `status`) by a manager that is neither Flux nor Kubernetes, made after Flux last applied the object,
    shows who changed which fields (`kubectl-set` owning `spec.template.spec.containers[name=app].image`).
    With the repository loaded, the file and line that set the field are named.

    ## Why is this bad?
    The change is not in git. Flux reverts the fields the repository sets at its next reconcile — the
    hotfix silently disappears — and fields the repository does not set stay, invisible to review.

    ## Example
    ```text
    homelab/Deployment/web: kubectl-set changed spec.template.spec.containers[name=web].image at
    2025-11-17T09:40:00Z (live web:debug; apps/web.yaml:18 sets web:1)
    ```

    ## Fix
    Commit the change to the file that sets it (or revert it with `flux reconcile kustomization <name>`);
    make changes through git only.
    """
    inv = ctx.inv
    if inv.cluster is None:
        return
    for _, objs in sorted(inv.cluster.objects.items()):
        for obj in objs:
            owner = fx.managing_kustomization(inv, obj)
            if owner is None or not fx.managers(obj):
                continue
            changes = fx.foreign_changes(obj)
            if changes:
                yield _changed(ctx, obj, owner, changes)


def _changed(ctx: Context, obj: K8sObject, owner: tuple[str, str, K8sObject | None],
             changes: list[fx.Change]) -> Finding:
    inv = ctx.inv
    ks_ns, ks_name, ks = owner
    period = fx.interval(ks) if ks is not None else None
    next_run = f"≤ {human_duration(period)}" if period else "its interval"
    repo_def = fx.repo_definition(inv, obj, ks, (ks_ns, ks_name))
    evidence: list[str] = [f"applied by Kustomization {ks_ns}/{ks_name}"
                           + ("" if ks is not None else " (per its labels; the Kustomization was not read)")]
    flux_times = [t for m in fx.managers(obj) if fx.is_flux_manager(m.get("manager"))
                  and (t := parse_time(m.get("time")))]
    if flux_times:
        evidence.append(f"Flux last changed it at {format_time(max(flux_times))}")
    in_repo: list[tuple[str, str, int | None]] = []  # (path, file, line) the repository sets
    not_in_repo: list[str] = []
    committed: list[dict[str, Any]] = []  # what the repository sets for the changed fields, where
    images: list[tuple[str, str | None]] = []  # (live image, committed image) of changed image fields
    for change in changes:
        when = format_time(change.time) if change.time else "an unknown time"
        if not change.fields:
            evidence.append(f"{change.manager} changed it (Update at {when}); which fields is not recorded")
        for path in change.fields:
            live = fx.resolve(obj.raw, path)
            shown = f" = {_value(live[1], path)}" if live is not None and not isinstance(live[1], dict | list) \
                else ""
            line_text = f"{change.manager} changed {fx.pretty(path)}{shown} (Update at {when})"
            hit = fx.resolve(repo_def.raw, path) if repo_def is not None else None
            if _is_image(path) and live is not None and isinstance(live[1], str):
                images.append((live[1], hit[1] if hit is not None and isinstance(hit[1], str) else None))
            if repo_def is not None:
                if hit is not None:
                    file, line = repo_def.where(hit[0])
                    in_repo.append((path, str(file), line))
                    value = f": {_value(hit[1], path)}" if not isinstance(hit[1], dict | list) else ""
                    line_text += f"; {file}:{line} sets it{value}"
                    committed.append({"field": fx.pretty(path), "value": _value(hit[1], path), "file": file,
                                      "line": line})
                else:
                    not_in_repo.append(path)
                    line_text += f"; {repo_def.file} does not set it"
            evidence.append(line_text)
        if change.truncated:
            evidence.append(f"{change.manager} owns {change.truncated} more field(s) not listed")
    who = ", ".join(sorted({c.manager for c in changes}))
    fields = [fx.pretty(p) for c in changes for p in c.fields]
    reconcile = f"flux reconcile kustomization {ks_name} -n {ks_ns}"
    live_problems = [f"the live image {p}" for img, _ in images if (p := pull_problem(inv, img)[0])]
    checks = [pull_problem(inv, img) for _, img in images if img is not None]
    committed_problems = [f"the committed image {p}" for p, _ in checks if p]
    unchecked = [u for _, u in checks if u]
    restorable = bool(committed) and not committed_problems
    restore_first = restorable and bool(live_problems)  # the change broke it and git holds what works
    fix: list[str] = []
    file = line = None
    if restore_first:
        path, file, line = in_repo[0]
        fix.append(_restore_text(committed, f"{ks_ns}/{ks_name}", next_run, f"{reconcile} --with-source",
                                 unchecked))
        broken = "; ".join(live_problems)
        fix.append(f"{broken[0].upper()}{broken[1:]}: to run it, make it pullable first (push it to the registry) "
                   f"and commit its registry name to {file}:{line}.")
    elif in_repo:
        path, file, line = in_repo[0]
        fix.append(f"commit this change to {file}:{line} ({fx.pretty(path)}), or Flux reverts it at the next "
                   f"reconcile in {next_run}")
        fix += [f"also {fx.pretty(p)} at {f}:{n}" for p, f, n in in_repo[1:MAX_LISTED]]
    elif repo_def is None:
        source = f" (path {ks.spec.get('path') or './'} of its source)" if ks is not None else ""
        fix.append(f"commit this change to the file Kustomization {ks_ns}/{ks_name} applies{source}, or Flux "
                   f"reverts the fields the repository sets at the next reconcile in {next_run}")
    if not_in_repo:
        assert repo_def is not None
        fix.append(f"{repo_def.file} does not set {', '.join(fx.pretty(p) for p in not_in_repo[:MAX_LISTED])}: "
                   "Flux does not revert it; add it to the file or undo it by hand")
    if not restore_first:
        fix += [f"# {p}: fix it before you commit it" for p in live_problems]
        fix += [f"# {p}: restoring it does not help" for p in committed_problems]
        if not committed_problems:
            fix.append(f"# to restore what git says now: {reconcile}")
    return ctx.finding(
        obj, f"{obj.kind} {obj.namespace}/{obj.name} was changed behind Flux by {who}"
             + (f": {', '.join(fields[:3])}{'…' if len(fields) > 3 else ''}" if fields else ""),
        evidence=evidence, fix="\n".join(fix), file=file, line=line, source="cluster",
        root_cause=f"{who} changed a Flux-managed object directly in the cluster instead of committing to git.",
        data={"managers": sorted({c.manager for c in changes}), "fields": fields,
              "kustomization": f"{ks_ns}/{ks_name}", "images": [img for img, _ in images],
              "pod_template": not fields or any(_in_template(p) for c in changes for p in c.fields),
              "committed": committed, "restorable": restorable, "committed_problem": "; ".join(committed_problems),
              "committed_unchecked": "; ".join(unchecked), "not_reverted": [fx.pretty(p) for p in not_in_repo],
              "reconcile": f"{reconcile} --with-source", "next_reconcile": next_run})


def _is_image(path: str) -> bool:
    names = [s for s in fx.parse_path(path) if isinstance(s, str)]
    return bool(names) and names[-1] == "image" and "containers" in " ".join(names).lower()


def _in_template(path: str) -> bool:
    """A field of the pod template: changing it changes the pods."""
    return path.startswith(("spec.template.", "spec.jobTemplate."))


def _restore_text(committed: list[dict[str, Any]], ks: str, next_run: str, reconcile: str,
                  unchecked: list[str]) -> str:
    values = "; ".join(f"{c['field']} = {c['value']} at {c['file']}:{c['line']}" for c in committed[:MAX_LISTED])
    note = f" ({'; '.join(unchecked)})" if unchecked else ""
    return (f"The repository sets {values}{note}: Flux restores it at the next reconcile of Kustomization {ks} "
            f"({next_run}), or now:\n```bash\n{reconcile}\n```")
