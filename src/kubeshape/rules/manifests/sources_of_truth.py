"""KS2xx manifests, sources of truth: one workload in many files, live state drifting from all of them, no
change-cause, unreadable files."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

from kubeshape.findings import Finding, Severity
from kubeshape.imageref import parse_or_none
from kubeshape.inventory import K8sObject, containers
from kubeshape.rules import _gitops
from kubeshape.rules._common import SYSTEM_NAMESPACES
from kubeshape.rules.base import Context, rule
from kubeshape.rules.manifests import _flux
from kubeshape.timeutil import format_time, parse_time

CHANGE_CAUSE = "kubernetes.io/change-cause"
REVISION = "deployment.kubernetes.io/revision"
IMPERATIVE_MANAGERS = {"kubectl-set": "kubectl set", "kubectl-edit": "kubectl edit",
                       "kubectl-patch": "kubectl patch", "kubectl-scale": "kubectl scale",
                       "kubectl-rollout": "kubectl rollout", "kubectl-annotate": "kubectl annotate"}
_COMPARED = ("image", "imagePullPolicy")


def _shape(obj: K8sObject) -> dict[str, Any]:
    """The fields people fight over: per-container image and pull policy, and replicas."""
    out: dict[str, Any] = {}
    if obj.kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        out["replicas"] = obj.spec.get("replicas", 1)
    for c in containers(obj):
        for f in _COMPARED:
            out[f"{c.name}.{f}"] = c.spec.get(f)
    return out


def _describe(shape: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in shape.items() if v is not None)


def _definitions(ctx: Context) -> list[list[K8sObject]]:
    """Objects with one identity that several distinct places in the repo deploy to the same target."""
    groups: dict[tuple[str, tuple[str, str, str]], dict[tuple[str, str | None, int | None], K8sObject]] = \
        defaultdict(dict)
    for o in ctx.inv.repo_objects:
        if "${" in o.name or "${" in o.namespace:
            continue  # identity unknown until the variable is resolved
        # One place rendered once per root: a base reused by overlays of *other* targets never meets itself here.
        groups[(o.target, o.key)].setdefault((o.root, o.file, o.line), o)
    return [list(defs.values()) for defs in groups.values() if len(defs) > 1]


@rule("KS201", "duplicate-definition", severity=Severity.ERROR, requires=("repo",))
def duplicate_definition(ctx: Context) -> Iterator[Finding]:
    """The same object defined in several files that deploy to the same cluster.

    ## What it does
    Finds objects (same API group, kind, namespace and name) that two different places in the repository
    deploy to the same target — the plain files applied with `kubectl apply -f`, one Flux tree, one Argo CD
    destination, one overlay — and shows how the definitions differ: image, pull policy, replicas. A base or
    component that several overlays or Flux Kustomizations render is one definition, not several.

    ## Why is this bad?
    `kubectl apply` of whichever file someone finds first decides what runs. Nobody can tell which file
    is production, and every apply silently reverts someone else's change.

    ## Example
    ```text
    family-assistant-backend.yaml                                  image=100.81.76.55:30500/family-assistant:fixed-final
    infrastructure/kubernetes/family-assistant-backend.yaml        image=family-assistant:fixed, Never
    ```

    ## Fix
    Keep one definition (a kustomize base), delete the others (`git rm`), and apply only from it.
    """
    inv = ctx.inv
    per_file = Counter(o.file for o in inv.repo_objects)
    for objs in _definitions(ctx):
        key = objs[0].key
        shapes = [_shape(o) for o in objs]
        differs = sorted({k for s in shapes for k in s if len({str(x.get(k)) for x in shapes}) > 1})
        via = len({o.root for o in objs}) > 1 and objs[0].target != "files"
        evidence = [f"{o.file}:{o.line}{f' (via {o.root})' if via else ''}: {_describe(s) or o.kind}"
                    for o, s in zip(objs, shapes, strict=True)]
        if objs[0].target != "files":
            evidence.append(f"rendered by {', '.join(sorted({o.root for o in objs}))}, which deploy to the same "
                            "cluster")
        if differs:
            evidence.append(f"they disagree on: {', '.join(differs)}")
        live = inv.live_by_key.get(key)
        keep = objs[0]
        if live is not None:
            live_shape = _shape(live)
            evidence.append(f"live: {_describe(live_shape)}")
            scores = [sum(1 for k, v in s.items() if live_shape.get(k) == v) for s in shapes]
            keep = objs[scores.index(max(scores))]
        others = [o for o in objs if o is not keep]
        fix = [f"# keep {keep.file} as the single source of truth, remove the other definitions:"]
        fix += [f"git rm {o.file}" if per_file[o.file] == 1 else f"# delete the {o.kind} {o.name} document "
                f"from {o.file} (line {o.line})" for o in others]
        first = objs[0]
        files = sorted({str(o.file) for o in objs})
        roots = sorted({o.root for o in objs})
        if len(files) > 1:
            where = f"defined in {len(files)} files"
        elif len(roots) > 1:
            where = f"applied by {len(roots)} render roots ({', '.join(roots)}) from {files[0]}"
        else:
            where = f"defined {len(objs)} times in {files[0]}"
        yield ctx.finding(
            first, f"{first.kind} {first.name} is {where}"
            + (f" that disagree on {', '.join(differs)}" if differs else ""),
            severity=Severity.ERROR if differs else Severity.WARNING, evidence=evidence, fix="\n".join(fix),
            root_cause="No single source of truth: copies of the manifest were made instead of overlays, "
                       "and each was edited separately.",
            data={"files": [o.file for o in objs], "lines": [o.line for o in objs], "keep": keep.file})


def _name_tokens(name: str) -> list[str]:
    return name.split("-")


def _common_prefix(names: list[str]) -> str:
    tokens = [_name_tokens(n) for n in names]
    out: list[str] = []
    for parts in zip(*tokens, strict=False):
        if len(set(parts)) != 1:
            break
        out.append(parts[0])
    return "-".join(out)


@rule("KS202", "variant-sprawl", severity=Severity.WARNING, requires=("repo",))
def variant_sprawl(ctx: Context) -> Iterator[Finding]:
    """Several workloads that are really one service.

    ## What it does
    Groups repo workloads in a namespace that run the same image repository and share a name prefix
    (`family-assistant-backend`, `family-assistant-enhanced`, `family-assistant-enhancement`).

    ## Why is this bad?
    Variants multiply manifests, HPAs and Services; fixes land in one and not the others, and deleted
    variants leave orphans behind.

    ## Example
    ```text
    family-assistant-backend.yaml, family-assistant-enhancement.yaml, family-assistant-enhanced-deployment.yaml
    ```

    ## Fix
    One kustomize base per service with overlays for real differences:
    ```text
    homelab/family-assistant/{deployment,service,kustomization}.yaml
    ```
    """
    groups: dict[tuple[str, str], dict[str, K8sObject]] = defaultdict(dict)
    files: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for obj in ctx.inv.repo_workloads:
        files[obj.key].add(obj.file or "")
        for c in containers(obj):
            ref = parse_or_none(c.image)
            if ref is not None and not c.init:
                groups[(obj.namespace, ref.path)].setdefault(obj.name, obj)
    for (ns, path), by_name in sorted(groups.items()):
        if len(by_name) < 2:
            continue
        prefix = _common_prefix(sorted(by_name))
        if not prefix:
            continue
        objs = sorted(by_name.values(), key=lambda o: o.name)
        evidence = []
        for o in objs:
            live = ctx.inv.live_by_key.get(o.key) if ctx.inv.cluster else None
            state = "" if ctx.inv.cluster is None else (" — live" if live else " — not in the cluster")
            image = next((c.image for c in containers(o) if not c.init), "")
            evidence.append(f"{o.kind} {o.name} in {o.file}:{o.line} runs {image}{state}")
        all_files = sorted({f for o in objs for f in files[o.key]})
        deletes = [(o, f"kubectl delete {o.kind.lower()} {o.name} -n {ns} --ignore-not-found") for o in objs[1:]]
        by_hand = [cmd for o, cmd in deletes if _gitops.applier(ctx.inv, o) is None]
        remove = ("then delete the variants (and their HPAs/Services) from the cluster and the repo:\n"
                  + "\n".join(by_hand)) if by_hand else ""
        flux = _gitops.remove(ctx.inv, deletes)  # the variants Flux applies: out of git, and Flux prunes them
        if flux is not None:
            remove += ("\n\n" if remove else "then delete the variants (and their HPAs/Services) from the "
                       "repository.\n\n") + flux
        yield ctx.finding(
            objs[0], f"{len(objs)} workloads in {ns} run image {path} under different names ({prefix}-*)",
            evidence=[*evidence, f"{len(all_files)} manifest files for one service: {', '.join(all_files)}"],
            data={"files": all_files, "workloads": [o.name for o in objs]},
            root_cause="Variants were created by copying manifests instead of changing one service; the old "
                       "ones were never removed.",
            fix=(f"Consolidate into one service directory:\n  {ns}/{prefix}/deployment.yaml\n"
                 f"  {ns}/{prefix}/service.yaml\n  {ns}/{prefix}/kustomization.yaml\n{remove}"))


def _managers(obj: K8sObject) -> list[dict[str, Any]]:
    return [m for m in obj.metadata.get("managedFields") or [] if isinstance(m, dict)]


def _imperative_evidence(obj: K8sObject) -> list[str]:
    out = []
    for m in _managers(obj):
        name = str(m.get("manager") or "")
        if name in IMPERATIVE_MANAGERS:
            out.append(f"changed imperatively by '{IMPERATIVE_MANAGERS[name]}' at {m.get('time', '?')}")
    return out


@rule("KS203", "live-drift", severity=Severity.WARNING, requires=("repo", "cluster"))
def live_drift(ctx: Context) -> Iterator[Finding]:
    """Live object that matches none of its definitions in the repo.

    ## What it does
    Compares each live workload with every repo definition of it (image, pull policy and replicas —
    replicas only when no HPA manages them) and flags it when it differs from all of them. Workloads Flux
    applies are left to KS211 (who changed which field) and KS206/KS208 (why Flux lags behind the repo).

    ## Why is this bad?
    Someone ran `kubectl set image`/`edit`: what runs cannot be reproduced from the repo, and the next
    `kubectl apply` silently reverts it.

    ## Example
    ```text
    live image family-assistant:phase2-mcp-logging-fix; files say fixed / fixed-final
    ```

    ## Fix
    Decide which is right, commit it to the single source-of-truth file, and apply from git only.
    """
    inv = ctx.inv
    hpa_targets = {(h.namespace, (h.spec.get("scaleTargetRef") or {}).get("name"))
                   for h in inv.objects("HorizontalPodAutoscaler")}
    for live in inv.live_workloads:
        defs = inv.repo_by_key.get(live.key)
        if not defs or _flux.applied_by_flux(inv, live):
            continue  # Flux's objects: KS211 names who changed what, KS206/KS208 why Flux lags behind the repo
        live_shape = _shape(live)
        if (live.namespace, live.name) in hpa_targets:
            live_shape.pop("replicas", None)
        diffs_per_def = []
        for d in defs:
            shape = _shape(d)
            diffs = [k for k in live_shape if k in shape and str(shape[k]) != str(live_shape[k])
                     and not (k.endswith(".imagePullPolicy") and shape[k] is None)]
            diffs_per_def.append((d, shape, diffs))
        if any(not diffs for _, _, diffs in diffs_per_def):
            continue
        evidence = [f"live: {_describe(live_shape)}"]
        for d, shape, diffs in diffs_per_def:
            evidence.append(f"{d.file}:{d.line}: " + ", ".join(f"{k}={shape[k]}" for k in diffs))
        evidence += _imperative_evidence(live)
        rev = live.annotations.get(REVISION)
        if rev:
            evidence.append(f"live revision {rev}")
        first = defs[0]
        yield ctx.finding(
            live, f"live {live.kind} {live.name} matches none of its {len(defs)} definition(s) in the repo",
            evidence=evidence, source="cluster",
            root_cause="The cluster was changed imperatively (kubectl set image / edit) and the change was never "
                       "committed, so the repo no longer describes what runs.",
            fix=(f"# either record what runs in {first.file}:\n"
                 f"kubectl get {live.kind.lower()} {live.name} -n {live.namespace} -o yaml  # copy image/replicas\n"
                 f"# or restore the repo's version:\nkubectl apply -f {first.file}"),
            file=first.file, line=first.line)


@rule("KS204", "live-not-in-repo", severity=Severity.INFO, requires=("repo", "cluster"))
def live_not_in_repo(ctx: Context) -> Iterator[Finding]:
    """Live workload that no file in the repo defines.

    ## What it does
    Lists live Deployments, StatefulSets, DaemonSets and CronJobs in namespaces the repo manages that
    have no definition in the repository. Workloads Flux applies, and namespaces Flux manages (KS210
    reports what Flux does not manage there), are left out.

    ## Why is this bad?
    Snowflakes: nobody can rebuild them after a disaster, and nobody knows who owns them.

    ## Example
    ```text
    homelab/Deployment/prometheus exists live; no manifest defines it
    ```

    ## Fix
    Export it into the repo (`kubectl get … -o yaml`, strip status and server fields) or delete it.
    """
    inv = ctx.inv
    per_ns = Counter(o.namespace for o in inv.repo_objects if o.namespace)
    for live in inv.live_workloads:
        if live.kind not in ("Deployment", "StatefulSet", "DaemonSet", "CronJob"):
            continue
        if live.namespace in SYSTEM_NAMESPACES or live.namespace not in per_ns or live.key in inv.repo_by_key:
            continue
        if _flux.flux_covers(inv, live):
            continue  # applied by Flux from its source, or in a namespace Flux manages: KS210 says it better
        created = live.metadata.get("creationTimestamp", "?")
        yield ctx.finding(
            live, f"live {live.kind} {live.name} is not defined in the repo",
            evidence=[f"created {created}", *_imperative_evidence(live),
                      f"the repo defines {per_ns[live.namespace]} objects in namespace {live.namespace}, not this one"],
            root_cause="Created by hand (kubectl create/apply of a local file) and never committed.",
            fix=f"kubectl get {live.kind.lower()} {live.name} -n {live.namespace} -o yaml > "
                f"{live.namespace}/{live.name}/{live.kind.lower()}.yaml  # then remove status and server fields",
            source="cluster")


def _revision(obj: K8sObject) -> int:
    """The rollout revision; 0 when the annotation is absent or not a number (``1.5``, ``²``)."""
    value = obj.annotations.get(REVISION, "")
    try:
        return int(value) if value.isdecimal() else 0
    except ValueError:  # more digits than int() converts
        return 0


@rule("KS205", "no-change-cause", severity=Severity.WARNING, requires=("cluster",))
def no_change_cause(ctx: Context) -> Iterator[Finding]:
    """Rollout revisions without a change-cause.

    ## What it does
    For each live Deployment, counts its revisions (`deployment.kubernetes.io/revision`) and the retained
    ReplicaSets that carry no `kubernetes.io/change-cause` annotation. Deployments Flux applies are left
    out: their history is git's.

    ## Why is this bad?
    `kubectl rollout history` shows `<none>` for every revision: nobody can tell what changed, which
    revision was good, or what to roll back to.

    ## Example
    ```text
    REVISION  CHANGE-CAUSE
    61        <none>
    62        <none>
    ```

    ## Fix
    Annotate every rollout with what and why (`kubeshape release` does it), e.g.
    `kubectl annotate deployment/x kubernetes.io/change-cause="release 1.4.2 (abc1234)" --overwrite`.
    The annotation is copied into the next revision unless overwritten, so set it on every change.
    """
    inv = ctx.inv
    limit = ctx.cfg.thresholds.max_revisions_without_cause
    for dep in inv.live("Deployment"):
        revisions = [rs for rs in inv.children.get(dep.uid, []) if rs.kind == "ReplicaSet"]
        if not revisions or _flux.applied_by_flux(inv, dep):
            continue  # under Flux the history is git's; annotating by hand would be a change behind it (KS211)
        missing = [rs for rs in revisions if not rs.annotations.get(CHANGE_CAUSE)]
        if len(missing) <= limit or _revision(dep) < 2:
            continue  # a first rollout has no history to explain
        revs = sorted(_revision(r) for r in missing)
        current = dep.annotations.get(REVISION, "?")
        created = [t for r in revisions if (t := parse_time(r.metadata.get("creationTimestamp")))]
        evidence = [f"deployment is at revision {current}",
                    f"{len(missing)} of {len(revisions)} retained ReplicaSets have no change-cause "
                    f"(revisions {revs[0]}–{revs[-1]})" if revs else f"{len(missing)} revisions without cause"]
        if created:
            evidence.append(f"retained revisions span {format_time(min(created))} → {format_time(max(created))}")
        evidence += _imperative_evidence(dep)
        yield ctx.finding(
            dep, f"{dep.name} is at revision {current} and {len(missing)} retained revisions have no change-cause",
            evidence=evidence, source="cluster", data={"revision": current, "without_cause": len(missing)},
            root_cause="Images are changed by hand (kubectl set image) without recording why; there is no "
                       "release process that annotates rollouts.",
            fix=(f"kubectl annotate deployment/{dep.name} -n {dep.namespace} "
                 f"kubernetes.io/change-cause=\"<what and why, e.g. release 1.4.2 (abc1234)>\" --overwrite\n"
                 "# or let 'kubeshape release' set it on every rollout"))


@rule("KS209", "invalid-manifest", severity=Severity.ERROR, requires=("repo",))
def invalid_manifest(ctx: Context) -> Iterator[Finding]:
    """Manifest file that cannot be read.

    ## What it does
    Reports YAML files under the manifest roots that do not parse, at the file and line of the error.
    The rest of the repository is still analysed; the command exits 2.

    ## Why is this bad?
    `kubectl apply` rejects the file, and every other tool silently skips it: whatever it defines is
    not what you think it is.

    ## Example
    ```yaml
    spec:
      containers: [
    ```

    ## Fix
    Correct the syntax at the reported line (`kubectl apply --dry-run=client -f FILE` confirms it).
    """
    repo = ctx.inv.repo
    assert repo is not None
    for file, line, message in repo.errors:
        yield ctx.finding(None, f"{file}: {message}", file=file, line=line, source="repo",
                          evidence=[f"{file}:{line}: {message}"],
                          root_cause="The file was edited by hand without validation.",
                          fix=f"kubectl apply --dry-run=client -f {file}  # after fixing line {line}")
