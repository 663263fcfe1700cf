"""Family 6 -- orphaned resources: HPAs without targets, stale ReplicaSets, selectors that select nothing."""

from __future__ import annotations

import json
import shlex
from collections import defaultdict
from collections.abc import Iterable, Iterator
from difflib import SequenceMatcher
from typing import Any

from kubeshape.findings import Finding, Severity
from kubeshape.inventory import Inventory, K8sObject, event_count, pod_template_labels, selector_matches
from kubeshape.rules import _gitops
from kubeshape.rules.base import Context, rule
from kubeshape.timeutil import format_time, human_duration, parse_time

REVISION = "deployment.kubernetes.io/revision"
HASH_LABELS = ("pod-template-hash", "controller-revision-hash", "statefulset.kubernetes.io/pod-name")
SAMPLE = 8
SIMILAR = 0.6  # value similarity that makes a workload a likely intended target

Labels = dict[str, str]


def _where(obj: K8sObject, path: str = "") -> str:
    """``infra/hpa.yaml:12`` for (a field of) a repo object, ``live`` for a cluster one."""
    if not obj.file:
        return "live"
    line = obj.line_of(path) if path else obj.line
    return f"{obj.file}:{line}" if line else obj.file


def _files(inv: Inventory, obj: K8sObject) -> list[str]:
    """Repo files that define ``obj`` (by kind, namespace and name)."""
    return sorted({o.file for o in inv.repo_by_key.get(obj.key, []) if o.file})


def _age(inv: Inventory, obj: K8sObject) -> str:
    created = parse_time(obj.metadata.get("creationTimestamp"))
    return f"created {format_time(created)} ({human_duration(inv.now - created)} ago)" if created else ""


def _json_arg(value: Any) -> str:
    return shlex.quote(json.dumps(value, separators=(",", ":"), sort_keys=True))


def _remove_from_files(files: list[str], obj: K8sObject) -> str:
    if not files:
        return ""
    return (f"\n\nThen remove the {obj.kind} {obj.name} document from {', '.join(files)} "
            "so the next apply does not bring it back")


# -- KS601 ------------------------------------------------------------------------


def _event_time(ev: dict[str, Any]) -> str:
    series = ev.get("series") or {}
    t = parse_time(ev.get("lastTimestamp") or series.get("lastObservedTime") or ev.get("eventTime")
                   or (ev.get("metadata") or {}).get("creationTimestamp"))
    return format_time(t)


def _scale_events(inv: Inventory, hpa: K8sObject) -> list[str]:
    events = inv.events_for("HorizontalPodAutoscaler", hpa.namespace, hpa.name, "FailedGetScale")
    if not events:
        return []
    last = max(events, key=_event_time)
    total = sum(event_count(e) for e in events)
    message = last.get("message") or last.get("note") or ""
    return [f"{total} FailedGetScale warnings, last at {_event_time(last) or 'unknown time'}: {message}"]


def _able_to_scale(hpa: K8sObject) -> list[str]:
    for cond in hpa.status.get("conditions") or []:
        if cond.get("type") == "AbleToScale" and cond.get("status") == "False":
            return [f"condition AbleToScale=False, reason {cond.get('reason')}: {cond.get('message', '')}"]
    return []


def _target(hpa: K8sObject) -> tuple[str, str] | None:
    ref = hpa.spec.get("scaleTargetRef") or {}
    kind, name = ref.get("kind"), ref.get("name")
    return (str(kind), str(name)) if kind and name else None


def _hpa_fix(inv: Inventory, hpa: K8sObject, kind: str, name: str) -> str:
    delete = f"kubectl delete hpa {hpa.name} -n {hpa.namespace}"
    fix = _gitops.delete(inv, hpa, delete) or delete + _remove_from_files(_files(inv, hpa), hpa)
    defined = inv.repo_by_key.get((kind, hpa.namespace, name), [])
    files = sorted({o.file for o in defined if o.file})
    apps = [a for a in dict.fromkeys(_gitops.applier(inv, o) for o in defined) if a is not None]
    if files and apps:
        fix += (f"\n\nIf {kind} {name} should run: {', '.join(files)} define it and Flux "
                f"({', '.join(a.title for a in apps)}) applies them; see why it has not (KS206, KS208), or:\n"
                + "\n".join(a.reconcile for a in apps))
    elif files:
        fix += (f"\n\nIf {kind} {name} should run, apply it instead: "
                + "; ".join(f"kubectl apply -f {f}" for f in files))
    return fix


def _hpa_finding(ctx: Context, hpa: K8sObject, kind: str, name: str, evidence: list[str],
                 severity: Severity | None = None) -> Finding:
    return ctx.finding(
        hpa, f"HorizontalPodAutoscaler {hpa.namespace}/{hpa.name} scales {kind}/{name}, which does not exist",
        path="spec.scaleTargetRef.name", severity=severity, evidence=evidence,
        fix=_hpa_fix(ctx.inv, hpa, kind, name), dedupe=f"{hpa.namespace}/{hpa.name}",
        root_cause=f"{kind} {name} was deleted or renamed but its autoscaler was left behind; the HPA "
                   "controller keeps retrying and emits a FailedGetScale warning on every sync.",
        data={"target": {"kind": kind, "name": name}})


@rule("KS601", "hpa-target-missing", severity=Severity.ERROR)
def hpa_target_missing(ctx: Context) -> Iterator[Finding]:
    """A HorizontalPodAutoscaler points at a workload that does not exist.

    ## What it does
    Resolves each HPA's `spec.scaleTargetRef` (kind and name, same namespace). Live: the target kind was
    listed and has no such object; the evidence counts the FailedGetScale warnings. Repo (lint): no file
    defines the target (a warning, since it may be deployed from elsewhere).

    ## Why is this bad?
    The autoscaler does nothing, and the controller emits a warning every 15 seconds, burying real
    events; it is also a sign that deleting a service leaves its parts behind.

    ## Example
    ```yaml
    kind: HorizontalPodAutoscaler
    metadata: {name: whisper-hpa, namespace: homelab}
    spec:
      scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: whisper}   # no such Deployment
    ```

    ## Fix
    `kubectl delete hpa whisper-hpa -n homelab`, and delete it from the file that defines it (or apply
    the missing target if it should run). Under Flux, remove it from the repository and let Flux prune it:
    deleted with kubectl, it is re-created at the next reconcile.
    """
    inv = ctx.inv
    for hpa in inv.live("HorizontalPodAutoscaler"):
        target = _target(hpa)
        if target is None or not inv.listed(target[0]):
            continue
        kind, name = target
        if (kind, hpa.namespace, name) in inv.live_by_key:
            continue
        files = _files(inv, hpa)
        evidence = [f"no {kind} {name} in namespace {hpa.namespace} (live)",
                    *_scale_events(inv, hpa), *_able_to_scale(hpa)]
        evidence += [f"the HPA is defined in {f}" for f in files]
        yield _hpa_finding(ctx, hpa, kind, name, evidence)
    for hpa in inv.repo_objects:
        target = _target(hpa) if hpa.kind == "HorizontalPodAutoscaler" else None
        if target is None:
            continue
        kind, name = target
        key = (kind, hpa.namespace, name)
        if key in inv.repo_by_key or key in inv.live_by_key:
            continue
        evidence = [f"no {kind} {name} in namespace {hpa.namespace} is defined in the repo "
                    f"(scaleTargetRef at {_where(hpa, 'spec.scaleTargetRef.name')})"]
        yield _hpa_finding(ctx, hpa, kind, name, evidence, severity=Severity.WARNING)


# -- KS602 ------------------------------------------------------------------------


def _revision(rs: K8sObject) -> int:
    try:
        return int(rs.annotations.get(REVISION, -1))
    except ValueError:
        return -1


def _replicas(rs: K8sObject) -> int:
    return max(int(rs.spec.get("replicas", 1) or 0), int(rs.status.get("replicas") or 0))


def _ranges(numbers: Iterable[int]) -> str:
    """``44-58, 60`` for a set of revisions."""
    out: list[str] = []
    nums = sorted(set(numbers))
    start = prev = nums[0] if nums else 0
    for n in [*nums[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        out.append(f"{start}-{prev}" if prev > start else str(start))
        if n is not None:
            start = prev = n
    return ", ".join(out) if nums else ""


def _stale_replicasets(inv: Inventory, dep: K8sObject, keep: int) -> tuple[list[K8sObject], list[K8sObject]]:
    """(idle, stale): old zero-replica ReplicaSets newest first, and those beyond the newest ``keep``."""
    owned = [c for c in inv.children.get(dep.uid, []) if c.kind == "ReplicaSet"]
    if not owned:
        return [], []
    current = dep.annotations.get(REVISION) or str(max(_revision(rs) for rs in owned))
    idle = [rs for rs in owned if _replicas(rs) == 0 and rs.annotations.get(REVISION) != current]
    idle.sort(key=lambda rs: (_revision(rs), rs.metadata.get("creationTimestamp") or ""), reverse=True)
    return idle, idle[keep:]


def _history_limit(dep: K8sObject) -> str:
    limit = dep.spec.get("revisionHistoryLimit")
    return f"revisionHistoryLimit is {limit}" if limit is not None else \
        "revisionHistoryLimit is not set (defaults to 10)"


@rule("KS602", "old-replicasets", severity=Severity.INFO, requires=("cluster",))
def old_replicasets(ctx: Context) -> Iterator[Finding]:
    """A Deployment keeps more empty old ReplicaSets than rollbacks need, or ReplicaSets lost their owner.

    ## What it does
    Counts each live Deployment's ReplicaSets with zero replicas (never the current one) and reports
    those beyond the newest `thresholds.keep_replicasets` (default 3); also reports zero-replica
    ReplicaSets with no owner at all (left by `kubectl delete deployment --cascade=orphan`).

    ## Why is this bad?
    Dozens of revisions with no change-cause are noise, not history: `kubectl rollout history` becomes
    unreadable and nobody can tell which revision was the last good one.

    ## Example
    ```shell
    $ kubectl get rs -n homelab | grep -c family-assistant-backend
    62
    ```

    ## Fix
    `kubectl patch deployment X -n NS -p '{"spec":{"revisionHistoryLimit":3}}'` (and in the manifest),
    then `kubectl delete rs ...` for the exact ReplicaSets beyond the newest three.
    Under Flux the fix changes the repository's file and line instead (commit, push, `flux reconcile`):
    a kubectl change would be reverted at the next reconcile.
    """
    inv, keep = ctx.inv, ctx.cfg.thresholds.keep_replicasets
    for dep in inv.live("Deployment"):
        idle, stale = _stale_replicasets(inv, dep, keep)
        if stale:
            yield _history_finding(ctx, dep, idle, stale, keep)
    yield from _orphaned_replicasets(ctx)


def _history_finding(ctx: Context, dep: K8sObject, idle: list[K8sObject], stale: list[K8sObject],
                     keep: int) -> Finding:
    inv = ctx.inv
    oldest = stale[-1]
    revisions = [_revision(rs) for rs in idle if _revision(rs) >= 0]
    evidence = [f"{len(idle)} old ReplicaSets with 0 replicas; kubeshape keeps {keep} "
                "(thresholds.keep_replicasets)",
                f"revisions: {_ranges(revisions) or 'not annotated'}; current revision "
                f"{dep.annotations.get(REVISION, 'unknown')}",
                f"oldest: {oldest.name} (revision {_revision(oldest)}) {_age(inv, oldest)}".rstrip(),
                _history_limit(dep)]
    names = " ".join(rs.name for rs in stale)
    flux = _gitops.change(inv, dep, [_gitops.Edit("spec.revisionHistoryLimit", str(keep))])
    if flux is not None:
        fix = (f"{flux}\n\nThe ReplicaSets beyond the newest {keep} can go now:\n\n"
               f"kubectl delete rs {names} -n {dep.namespace}")
    else:
        fix = (f"kubectl patch deployment {dep.name} -n {dep.namespace} -p "
               f"'{{\"spec\":{{\"revisionHistoryLimit\":{keep}}}}}'\n"
               f"kubectl delete rs {names} -n {dep.namespace}")
    for f in _files(inv, dep) if flux is None else []:
        fix += f"\n\nand set `revisionHistoryLimit: {keep}` under spec in {f} so the next apply keeps it"
    return ctx.finding(
        dep, f"Deployment {dep.namespace}/{dep.name} keeps {len(idle)} old ReplicaSets; {len(stale)} are "
             f"beyond the {keep} needed for rollback",
        evidence=evidence, fix=fix,
        root_cause="Every image change makes a new ReplicaSet and the Deployment's revision history limit "
                   "keeps the old ones around.",
        data={"idle": len(idle), "stale": [rs.name for rs in stale], "keep": keep})


def _orphaned_replicasets(ctx: Context) -> Iterator[Finding]:
    groups: dict[tuple[str, str], list[K8sObject]] = defaultdict(list)
    for rs in ctx.inv.live("ReplicaSet"):
        if not rs.metadata.get("ownerReferences") and _replicas(rs) == 0:
            suffix = rs.labels.get("pod-template-hash")
            base = rs.name.removesuffix(f"-{suffix}") if suffix else rs.name
            groups[(rs.namespace, base)].append(rs)
    for (ns, base), rss in sorted(groups.items()):
        rss.sort(key=lambda rs: (rs.metadata.get("creationTimestamp") or "", rs.name), reverse=True)
        names = [rs.name for rs in rss]
        evidence = [f"{len(rss)} ReplicaSets in {ns} have no ownerReferences and 0 replicas: "
                    f"{', '.join(names[:SAMPLE])}{' ...' if len(names) > SAMPLE else ''}"]
        evidence += [f"{rs.name}: {_age(ctx.inv, rs)}" for rs in rss[:SAMPLE] if _age(ctx.inv, rs)]
        if ("Deployment", ns, base) not in ctx.inv.live_by_key and ctx.inv.listed("Deployment"):
            evidence.append(f"no Deployment {base} exists in {ns}")
        yield ctx.finding(
            rss[0], f"{len(rss)} ReplicaSets of {ns}/{base} have no owner and no replicas",
            evidence=evidence, fix=f"kubectl delete rs {' '.join(names)} -n {ns}",
            root_cause="Their Deployment was deleted with --cascade=orphan (or the owner reference removed), "
                       "so no controller will ever clean them up.",
            data={"replicasets": names})


# -- selectors: KS603, KS604 ---------------------------------------------------------


class _LabelIndex:
    """Distinct label sets per namespace, indexed by (namespace, key, value): selector lookups only
    look at label sets sharing the selector's first label."""

    def __init__(self, labelled: Iterable[tuple[str, Labels]]) -> None:
        self.count: dict[str, int] = defaultdict(int)
        self.by_ns: dict[str, list[Labels]] = defaultdict(list)
        self.by_pair: dict[tuple[str, str, str], list[Labels]] = defaultdict(list)
        seen: set[tuple[str, frozenset[tuple[str, str]]]] = set()
        same: set[tuple[str, tuple[tuple[str, str], ...]]] = set()  # pods of one workload: the same labels
        for ns, labels in labelled:
            self.count[ns] += 1
            spelled = (ns, tuple(labels.items()))
            if spelled in same:
                continue
            same.add(spelled)
            key = (ns, frozenset(labels.items()))
            if key in seen:
                continue
            seen.add(key)
            self.by_ns[ns].append(labels)
            for k, v in labels.items():
                self.by_pair[(ns, k, v)].append(labels)

    def matches(self, ns: str, selector: dict[str, Any]) -> bool:
        """Any label set in ``ns`` matches; ``{}`` selects everything, as for a PodDisruptionBudget."""
        if selector == {}:
            return bool(self.by_ns.get(ns))
        plain = selector.get("matchLabels") if _structured(selector) else selector
        first = next(iter((plain or {}).items()), None)
        candidates = self.by_pair.get((ns, *first), []) if first else self.by_ns.get(ns, [])
        return any(selector_matches(selector, labels) for labels in candidates)


def _structured(selector: dict[str, Any]) -> bool:
    return "matchLabels" in selector or "matchExpressions" in selector


def _wanted(selector: dict[str, Any]) -> Labels:
    """The key=value pairs a selector asks for (matchLabels or a plain map)."""
    plain = selector.get("matchLabels") if _structured(selector) else selector
    return {str(k): str(v) for k, v in (plain or {}).items()}


def _fmt(labels: Labels) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "(none)"


def _identity(workload: K8sObject | None) -> Labels:
    """The labels that identify a workload's pods: its selector's matchLabels, else its template labels."""
    if workload is None:
        return {}
    own = (workload.spec.get("selector") or {}).get("matchLabels") if workload.kind != "Pod" else None
    labels = own or pod_template_labels(workload)
    return {k: v for k, v in labels.items() if k not in HASH_LABELS}


def _similarity(wanted: Labels, labels: Labels, floor: float = 0.0) -> float:
    """The best similarity of a value under a key both have, when above ``floor``; else at most ``floor``
    (cheap upper bounds skip the values that cannot beat it)."""
    similar = floor
    for k, v in wanted.items():
        other = labels.get(k)
        if other is None:
            continue
        # SequenceMatcher's real_quick_ratio() and quick_ratio() bounds, without building a matcher
        total = len(v) + len(other)
        if (2.0 * min(len(v), len(other)) / total if total else 1.0) <= similar:
            continue
        if (2.0 * _common_chars(v, other) / total if total else 1.0) <= similar:
            continue
        similar = max(similar, SequenceMatcher(None, v, other).ratio())
    return similar


def _common_chars(a: str, b: str) -> int:
    """Characters ``a`` and ``b`` have in common, counted with multiplicity (as ``quick_ratio()`` counts)."""
    counts: dict[str, int] = {}
    for ch in b:
        counts[ch] = counts.get(ch, 0) + 1
    found = 0
    for ch in a:
        n = counts.get(ch, 0)
        if n > 0:
            counts[ch] = n - 1
            found += 1
    return found


def _closest(selector: dict[str, Any], workloads: list[K8sObject]) -> K8sObject | None:
    """The workload whose pod labels come closest to the selector: it shares a pair, or has a key whose
    value looks alike (``app=family-assistant`` vs ``app=family-assistant-backend``)."""
    wanted = _wanted(selector)
    best, best_same, best_similar = None, 0, SIMILAR
    for w in workloads:
        labels = pod_template_labels(w)
        same = sum(labels.get(k) == v for k, v in wanted.items())
        if same < best_same:
            continue
        # More shared pairs wins whatever the similarity; as many wins only by a higher one.
        similar = _similarity(wanted, labels, best_similar if same == best_same else 0.0)
        if same > best_same or similar > best_similar:
            best, best_same, best_similar = w, same, similar
    return best


def _by_namespace(objs: Iterable[K8sObject]) -> dict[str, list[K8sObject]]:
    out: dict[str, list[K8sObject]] = defaultdict(list)
    for o in objs:
        out[o.namespace].append(o)
    return out


MIRROR = "kubernetes.io/config.mirror"
# Custom resources that never create pods themselves, so they leave a namespace's pods knowable (a Flux
# Kustomization applies manifests, which are read from the repository like any other file).
PODLESS_GROUPS = {"cert-manager.io", "acme.cert-manager.io", "external-secrets.io", "source.toolkit.fluxcd.io",
                  "kustomize.toolkit.fluxcd.io", "notification.toolkit.fluxcd.io", "image.toolkit.fluxcd.io",
                  "traefik.io", "traefik.containo.us"}
PODLESS_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule", "Probe", "ScrapeConfig", "AlertmanagerConfig"}


def _may_create_pods(obj: K8sObject) -> bool:
    """A custom resource (of an API group that is not Kubernetes' own) that an operator may turn into pods."""
    return not obj.builtin and obj.group not in PODLESS_GROUPS and obj.kind not in PODLESS_KINDS


def _unseen_creators(inv: Inventory) -> dict[str, list[str]]:
    """Per namespace, what may create pods no manifest or listed workload shows: Helm releases, operators'
    custom resources, a node's static pods."""
    out: dict[str, dict[str, None]] = defaultdict(dict)
    live = [o for objs in inv.cluster.objects.values() for o in objs] if inv.cluster else []
    for o in [*inv.repo_objects, *live]:
        if o.kind == "Pod" and MIRROR in o.annotations:
            out[o.namespace][f"static pod {o.name} (from a node's pod manifests)"] = None
        elif _may_create_pods(o):
            # A HelmRelease or an Argo CD Application may deploy into another namespace.
            target = o.spec.get("targetNamespace") or (o.spec.get("destination") or {}).get("namespace")
            for ns in {o.namespace, str(target or o.namespace)}:
                out[ns][f"{o.kind} {o.namespace}/{o.name}"] = None
    return {ns: list(found) for ns, found in out.items()}


class _Selectables:
    """What selectors can select: live pods and workload templates, repo workload templates."""

    def __init__(self, inv: Inventory) -> None:
        self.inv = inv
        self.unseen = _unseen_creators(inv)
        self.pods_listed = inv.listed("Pod")
        self.pods = _LabelIndex((p.namespace, p.labels) for p in inv.live("Pod"))
        self.live = _by_namespace(inv.live_workloads)
        self.live_templates = _LabelIndex((w.namespace, pod_template_labels(w)) for w in inv.live_workloads)
        self.repo = _by_namespace(inv.repo_workloads)
        self.repo_templates = _LabelIndex((w.namespace, pod_template_labels(w)) for w in inv.repo_workloads)

    def live_selects(self, ns: str, selector: dict[str, Any]) -> bool:
        """Selects a pod, or the template of a live workload (scaled to zero is not orphaned)."""
        return self.pods.matches(ns, selector) or self.live_templates.matches(ns, selector)

    def orphaned(self, obj: K8sObject, selector: dict[str, Any]) -> bool | None:
        """True when ``selector`` selects nothing; None when that cannot be known."""
        if obj.source == "cluster":
            return not self.live_selects(obj.namespace, selector) if self.pods_listed else None
        if self.repo_templates.matches(obj.namespace, selector):
            return False
        return not (self.pods_listed and self.live_selects(obj.namespace, selector))

    def evidence(self, obj: K8sObject, selector: dict[str, Any]) -> tuple[list[str], K8sObject | None]:
        ns = obj.namespace
        if obj.source == "cluster":
            found = [f"selector {_fmt(_wanted(selector))} matches none of the {self.pods.count.get(ns, 0)} "
                     f"pods in namespace {ns}"]
            candidates = self.live.get(ns, [])
        else:
            found = [f"selector {_fmt(_wanted(selector))} ({_where(obj, 'spec.selector')}) matches no pod "
                     f"template of the {len(self.repo.get(ns, []))} workloads the repo defines in namespace {ns}"]
            candidates = self.repo.get(ns, [])
        closest = _closest(selector, candidates)
        if closest is not None:
            found.append(f"closest: {closest.ref} has pod labels {_fmt(pod_template_labels(closest))}")
        else:
            found.append(f"no workload in {ns} has pod labels like {_fmt(_wanted(selector))}")
        return found, closest


def _yaml_selector(value: dict[str, Any], indent: str = "    ") -> str:
    """``spec.selector`` set to ``value``, as nested YAML."""
    lines = [f"{indent}spec:", f"{indent}  selector:"]
    for k, v in sorted(value.items()):
        if isinstance(v, dict):
            lines.append(f"{indent}    {k}:")
            lines += [f"{indent}      {kk}: {vv}" for kk, vv in sorted(v.items())]
        else:
            lines.append(f"{indent}    {k}: {v}")
    return "\n".join(lines)


def _selector_fix(inv: Inventory, obj: K8sObject, resource: str, value: dict[str, Any] | None,
                  closest: K8sObject | None) -> str:
    """Point ``spec.selector`` at ``closest`` (live patch or file edit), or delete ``obj``."""
    delete = f"kubectl delete {resource} {obj.name} -n {obj.namespace}"
    flux_delete = _gitops.delete(inv, obj, delete)
    if flux_delete is not None:
        return _flux_selector_fix(inv, obj, value, closest, flux_delete)
    if closest is None or not value:
        where = f" and remove it from {obj.file}" if obj.file else ""
        return f"If its workload is gone for good, delete it:\n\n  {delete}{where}"
    if obj.file:
        line = obj.line_of("spec.selector")
        loc = f"{obj.file}:{line}" if line else obj.file
        return (f"To select {closest.ref}, set in {loc}:\n\n{_yaml_selector(value)}\n\n"
                f"then `kubectl apply -f {obj.file}`; or, if its workload is gone for good, {delete}")
    patch = [{"op": "replace", "path": "/spec/selector", "value": value}]
    return (f"To select {closest.ref}:\n\n  kubectl patch {resource} {obj.name} -n {obj.namespace} "
            f"--type=json -p {_json_arg(patch)}\n\nor, if its workload is gone for good:\n\n  {delete}")


def _flux_selector_fix(inv: Inventory, obj: K8sObject, value: dict[str, Any] | None, closest: K8sObject | None,
                       delete: str) -> str:
    """``_selector_fix`` for an object Flux applies: the repository's copy changed, committed and pushed."""
    if closest is None or not value:
        return f"If its workload is gone for good, delete it. {delete}"
    if obj.file:
        line = obj.line_of("spec.selector")
        loc = f"{obj.file}:{line}" if line else obj.file
        change = f"set in {loc}:\n\n{_yaml_selector(value)}\n\n{_gitops.publish(inv, [obj]) or ''}"
    else:
        shown = json.dumps(value, sort_keys=True, separators=(", ", ": "))
        change = _gitops.change(inv, obj, [_gitops.Edit("spec.selector", shown)]) or ""
    return f"To select {closest.ref}: {change}\n\nOr, if its workload is gone for good: {delete}"


def _unknown(ctx: Context, obj: K8sObject, resource: str, selector: dict[str, Any], sel: _Selectables) -> Finding:
    """Info: nothing visible matches, but something in the namespace may create the pods."""
    unseen = sel.unseen[obj.namespace]
    labels = _fmt(_wanted(selector))
    query = f"-l {labels}" if _wanted(selector) else "--show-labels"
    app = _gitops.applier(ctx.inv, obj)
    act = (f"in the repository: Flux ({app.title}) applies it and reverts a kubectl change at its next reconcile"
           if app is not None else f"(`kubectl delete {resource} {obj.name} -n {obj.namespace}`)")
    evidence = sel.evidence(obj, selector)[0][:1]
    evidence += [f"{u} may create pods in {obj.namespace} that are not visible here" for u in unseen[:SAMPLE]]
    return ctx.finding(
        obj, f"{obj.kind} {obj.namespace}/{obj.name}: unknown whether it selects pods ({labels})",
        path="spec.selector", severity=Severity.INFO, evidence=evidence, dedupe=f"{obj.namespace}/{obj.name}",
        fix=f"Once deployed, check that it selects pods:\n\n  kubectl get pods -n {obj.namespace} {query}\n\n"
            f"If that lists nothing, set the selector to the workload's pod labels or delete it {act}.",
        root_cause="Pods in this namespace can come from a Helm chart, an operator or a node's static pod "
                   "manifests, whose pod labels only show once they run.")


# -- KS603 ------------------------------------------------------------------------


@rule("KS603", "pdb-selects-nothing", severity=Severity.WARNING)
def pdb_selects_nothing(ctx: Context) -> Iterator[Finding]:
    """A PodDisruptionBudget's selector matches no pods.

    ## What it does
    Matches each PodDisruptionBudget's `spec.selector` against the pods of its namespace (live, when pods
    were listed; a live workload scaled to zero still counts) or the pod templates of the repo's
    workloads in that namespace (repo). When a HelmRelease, an operator's custom resource or static pods
    in the namespace may create pods that are not visible, it only notes (info) that this is unknown.

    ## Why is this bad?
    The budget protects nothing: its workload was deleted or relabelled, and a drain will take the real
    pods down all at once while everyone believes they are covered.

    ## Example
    ```yaml
    kind: PodDisruptionBudget
    metadata: {name: whisper-pdb, namespace: homelab}
    spec:
      minAvailable: 1
      selector: {matchLabels: {app: whisper}}   # no pod has app=whisper
    ```

    ## Fix
    Point the selector at the workload's labels, or delete the budget
    (`kubectl delete pdb whisper-pdb -n homelab`).
    """
    sel = ctx.inv.memo("orphans.selectables", lambda: _Selectables(ctx.inv))
    for pdb in ctx.inv.objects("PodDisruptionBudget"):
        selector = pdb.spec.get("selector")
        if selector is not None and not sel.orphaned(pdb, selector):
            continue
        if selector is not None and pdb.namespace in sel.unseen:
            yield _unknown(ctx, pdb, "pdb", selector, sel)
            continue
        if selector is None:
            evidence, closest = [f"spec.selector is not set ({_where(pdb)}): it selects no pod"], None
        else:
            evidence, closest = sel.evidence(pdb, selector)
        yield ctx.finding(
            pdb, f"PodDisruptionBudget {pdb.namespace}/{pdb.name} selects no pods", path="spec.selector",
            evidence=evidence, dedupe=f"{pdb.namespace}/{pdb.name}",
            fix=_selector_fix(ctx.inv, pdb, "pdb", {"matchLabels": ident} if (ident := _identity(closest)) else None,
                              closest),
            root_cause="The workload it protected was deleted or relabelled, and the budget was left behind.")


# -- KS604 ------------------------------------------------------------------------


@rule("KS604", "service-selects-nothing", severity=Severity.WARNING)
def service_selects_nothing(ctx: Context) -> Iterator[Finding]:
    """A Service's selector matches no pods, so it has no endpoints.

    ## What it does
    Matches each Service's non-empty `spec.selector` against the pods of its namespace (live, when pods
    were listed; a live workload scaled to zero still counts) or the pod templates of the repo's
    workloads (repo), and names the workload whose labels come closest. ExternalName Services and
    Services without a selector (manual Endpoints) are skipped. When a HelmRelease, an operator's custom
    resource or static pods in the namespace may create pods that are not visible, it only notes (info)
    that this is unknown.

    ## Why is this bad?
    Every connection to it fails or hangs: clients see "connection refused" or DNS that resolves to a
    Service with no backends, far from the real cause, a label mismatch or a deleted workload.

    ## Example
    ```yaml
    kind: Service
    metadata: {name: family-assistant, namespace: homelab}
    spec:
      selector: {app: family-assistant}   # pods are labelled app=family-assistant-backend
    ```

    ## Fix
    Set the selector to the workload's pod labels, or delete the Service if its workload is gone.
    """
    sel = ctx.inv.memo("orphans.selectables", lambda: _Selectables(ctx.inv))
    for svc in ctx.inv.objects("Service"):
        selector = svc.spec.get("selector")
        if svc.spec.get("type") == "ExternalName" or not selector or not sel.orphaned(svc, selector):
            continue
        if svc.namespace in sel.unseen:
            yield _unknown(ctx, svc, "service", selector, sel)
            continue
        evidence, closest = sel.evidence(svc, selector)
        yield ctx.finding(
            svc, f"Service {svc.namespace}/{svc.name} selects no pods ({_fmt(_wanted(selector))})",
            path="spec.selector", evidence=evidence, dedupe=f"{svc.namespace}/{svc.name}",
            fix=_selector_fix(ctx.inv, svc, "service", _identity(closest), closest),
            root_cause="The Service's selector does not match the labels of any pod: the workload behind it "
                       "was deleted, renamed or relabelled.")
