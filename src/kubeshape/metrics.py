"""The seed's success metrics computed from the inventory: now vs target."""

from __future__ import annotations

from collections import defaultdict

from kubeshape.findings import Finding
from kubeshape.inventory import Inventory, K8sObject
from kubeshape.report.model import Metric
from kubeshape.timeutil import parse_time

PULL_FAILURES = {"ImagePullBackOff", "ErrImagePull", "ErrImageNeverPull", "InvalidImageName"}
CRASHING = {"CrashLoopBackOff", "CreateContainerConfigError", "RunContainerError"}


def rollout_outcome(inv: Inventory, dep: K8sObject) -> bool | None:
    """True when the latest rollout completed by ``kubectl rollout status`` rules, False when it
    failed or is stuck, None when it is still in progress."""
    spec, status = dep.spec, dep.status
    gen = dep.metadata.get("generation") or 0
    if (status.get("observedGeneration") or 0) < gen:
        return None
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return False
    replicas = spec.get("replicas", 1)
    updated = status.get("updatedReplicas") or 0
    available = status.get("availableReplicas") or 0
    total = status.get("replicas") or 0
    if updated == replicas and total == updated and available == updated:
        return True
    for pod in inv.pods_of(dep):
        for cs in (pod.status.get("containerStatuses") or []) + (pod.status.get("initContainerStatuses") or []):
            reason = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
            if reason in PULL_FAILURES or reason in CRASHING:
                return False
    return None


def restarts_per_day(inv: Inventory, workload: K8sObject) -> tuple[float, int]:
    """Restarts per day over the pods' lifetimes (at least one day), and the restart total."""
    total = 0
    days = 0.0
    for pod in inv.pods_of(workload):
        start = parse_time(pod.status.get("startTime") or pod.metadata.get("creationTimestamp"))
        restarts = sum(int(cs.get("restartCount") or 0) for cs in pod.status.get("containerStatuses") or [])
        total += restarts
        if start is not None:
            days = max(days, (inv.now - start).total_seconds() / 86400)
    # Younger than a day: what was observed is the floor of the daily count, never an extrapolation.
    return total / max(days, 1.0), total


def compute(inv: Inventory, findings: list[Finding], restart_target: float = 5.0,
            tag_target: int = 10) -> list[Metric]:
    """Metrics for whatever sources are loaded; a metric without data says n/a."""
    out: list[Metric] = []
    deployments = inv.live("Deployment")
    if inv.cluster is not None:
        outcomes = [rollout_outcome(inv, d) for d in deployments]
        done = [o for o in outcomes if o is not None]
        ok = sum(1 for o in done if o)
        rate = 100.0 * ok / len(done) if done else None
        out.append(Metric("deployment_success_rate", "Deployment success rate", rate, "%", "≥ 95%",
                          None if rate is None else rate >= 95,
                          f"{ok} of {len(done)} latest rollouts available"))
        worst_name, worst_rate, worst_total = "", 0.0, 0
        for w in inv.live_workloads:
            r, total = restarts_per_day(inv, w)
            if r > worst_rate:
                worst_name, worst_rate, worst_total = f"{w.namespace}/{w.name}", r, total
        out.append(Metric("restarts_per_day", "Pod restarts per day (worst service)", worst_rate, "/day",
                          f"< {restart_target:g} per day per service", worst_rate < restart_target,
                          f"{worst_name}: {worst_total} restarts" if worst_name else "no restarts"))
        revisions = [rs for rs in inv.live("ReplicaSet") if rs.owner("Deployment")]
        with_cause = sum(1 for rs in revisions if rs.annotations.get("kubernetes.io/change-cause"))
        cov = 100.0 * with_cause / len(revisions) if revisions else None
        out.append(Metric("change_cause_coverage", "Revisions with a change-cause", cov, "%", "100%",
                          None if cov is None else cov >= 100, f"{with_cause} of {len(revisions)} revisions"))
    if inv.registry is not None and inv.registry.repos:
        counts = {f"{r.host}/{r.name}": len(r.tags) for r in inv.registry.repos.values()}
        name, most = max(counts.items(), key=lambda kv: kv[1])
        out.append(Metric("tags_per_repository", "Image tags per repository (worst)", float(most), "tags",
                          f"< {tag_target} per service", most < tag_target, name))
    if inv.repo is not None:
        files: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        for o in inv.repo_workloads:
            files[o.key].add(o.file or "")
        services: dict[tuple[str, str], set[str]] = defaultdict(set)
        for f in findings:
            if f.rule == "KS202":
                for file in f.data.get("files", []):
                    services[(f.object.namespace if f.object else "", f.object.name if f.object else "")].add(file)
        worst = max([len(v) for v in files.values()] + [len(v) for v in services.values()] + [0])
        out.append(Metric("manifest_files_per_service", "Manifest files per service (worst)",
                          float(worst) if files else None, "files", "1 (single source of truth)",
                          worst <= 1 if files else None))
    orphans = sum(1 for f in findings if f.family == 6)
    if inv.cluster is not None:
        out.append(Metric("orphans", "Orphaned resources", float(orphans), "", "0", orphans == 0))
    return out
