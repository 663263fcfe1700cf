"""KS601: delete an HPA whose target does not exist. KS602: cap the revision history, delete what is beyond it."""

from __future__ import annotations

from functools import partial

from kubeshape.actions.fix import yamledit as ye
from kubeshape.actions.fix.context import FixContext, Refuse
from kubeshape.actions.fix.fixers._where import locate, remove_document
from kubeshape.actions.usage import last_known_good
from kubeshape.findings import Finding


def _history_limit(text: str, *, file: str, doc: int, keep: int) -> str:
    return ye.set_value(text, file, doc, ("spec", "revisionHistoryLimit"), keep, near="replicas")


def fix_hpa_target_missing(ctx: FixContext, findings: list[Finding]) -> None:
    """Delete the HPA from every file that defines it and from the cluster (the cluster only when no file does);
    when Flux applies it, the commit is the delete (Flux prunes)."""
    for f in findings:
        if f.object is None:
            continue
        key = (f.object.kind, f.object.namespace, f.object.name)
        target = f.data.get("target") or {}
        with ctx.step(f"Delete HorizontalPodAutoscaler {f.object.namespace}/{f.object.name} (its target "
                      f"{target.get('kind', 'workload')}/{target.get('name', '?')} does not exist)", [f]):
            live = ctx.live(*key)
            if "cluster" in f.source and live is not None:
                tkind, tname = str(target.get("kind") or ""), str(target.get("name") or "")
                if tkind and not ctx.inv.listed(tkind):
                    raise Refuse(f"{tkind} was not listed, so the target's absence is not proven")
                if ctx.live(tkind, f.object.namespace, tname) is not None:
                    raise Refuse(f"{tkind} {tname} exists now: the HPA is in use")
            copies = ctx.inv.repo_by_key.get(key, [])
            for o in copies:
                remove_document(ctx, o)
            if live is not None:
                ctx.delete(live, "")


def fix_old_replicasets(ctx: FixContext, findings: list[Finding]) -> None:
    """``revisionHistoryLimit`` in the files and live, and delete the stale ReplicaSets beyond it -- never the
    current one, one with replicas, or the last known good."""
    for f in findings:
        if f.object is None or "stale" not in f.data:
            ctx.refuse([f], "ReplicaSets without an owner: delete them with kubectl once you have checked them")
            continue
        keep = int(f.data.get("keep") or ctx.cfg.thresholds.keep_replicasets)
        dep = ctx.live(f.object.kind, f.object.namespace, f.object.name)
        if dep is None:
            ctx.refuse([f], "the Deployment is not in the cluster snapshot")
            continue
        good = {g.revision for g in last_known_good(ctx.inv) if g.proven and g.workload == str(dep.ref)}
        with ctx.step(f"Keep {keep} old ReplicaSets of Deployment {dep.namespace}/{dep.name}", [f]):
            for o in ctx.inv.repo_by_key.get(dep.key, []):
                spot = locate(ctx, o)
                if spot is None:
                    continue
                if o.origins and "spec.revisionHistoryLimit" in o.origins:
                    raise Refuse(f"revisionHistoryLimit is set by {o.origins['spec.revisionHistoryLimit'][0]}: "
                                 "change it there")
                ctx.edit(spot.file, partial(_history_limit, file=spot.file, doc=spot.doc, keep=keep))
            if dep.spec.get("revisionHistoryLimit") != keep:
                ctx.apply(dep, {"spec": {"revisionHistoryLimit": keep}},
                          f"set revisionHistoryLimit {keep}")
            children = {rs.name: rs for rs in ctx.inv.children.get(dep.uid, []) if rs.kind == "ReplicaSet"}
            for name in f.data["stale"]:
                rs = children.get(str(name))
                if rs is None:
                    continue
                if int(rs.spec.get("replicas") or 0) or int(rs.status.get("replicas") or 0):
                    continue
                rev = rs.annotations.get("deployment.kubernetes.io/revision")
                if rev is not None and rev.isdigit() and int(rev) in good:
                    continue
                ctx.delete(rs, f"(revision {rev or '?'})",
                           through_flux=False)
