"""The plan of ``init gitops`` as printed: services, what was chosen and why, what goes, files, diffs."""

from __future__ import annotations

from kubeshape.scaffold.gitops.layout import KUSTOMIZATION, FileOp
from kubeshape.scaffold.gitops.mask import diff
from kubeshape.scaffold.gitops.plan import Plan, describe_change
from kubeshape.scaffold.gitops.services import Choice, Service

MAX_FIELDS = 12  # differing fields listed per dropped definition


def _objects(svc: Service) -> str:
    return ", ".join(f"{k[0]} {k[2]}" for k in sorted(svc.keys, key=lambda k: (k[0], k[2])))


def _choice_lines(c: Choice) -> list[str]:
    kind, _, name = c.key
    if c.kept is None or not c.dropped:
        return []
    lines = [f"  {kind} {name}: {len(c.defs)} definitions; kept {c.kept.where}: {c.reason}"]
    for d, fields in c.dropped:
        if not fields:
            lines.append(f"    dropped {d.where} (the same)")
            continue
        lines.append(f"    dropped {d.where}, which differs in {len(fields)} field{'s' if len(fields) != 1 else ''}"
                     " (kept -> dropped):")
        lines += [f"      {describe_change(f, kind)}" for f in fields[:MAX_FIELDS]]
        if len(fields) > MAX_FIELDS:
            lines.append(f"      ... and {len(fields) - MAX_FIELDS} more")
    return lines


def _service_lines(plan: Plan, svc: Service) -> list[str]:
    base = plan.layout.bases.get(svc.id, "?")
    flux = plan.layout.flux_names.get(svc.id)
    lines = [f"Service {svc.id} -> {base}/" + (f" (Flux Kustomization {flux})" if flux else ""),
             f"  {_objects(svc)}"]
    for key in svc.keys:
        lines += _choice_lines(plan.grouping.choices[key])
    for key in svc.keys:
        c = plan.grouping.choices[key]
        if c.kept is None:
            continue
        dc = plan.changes.get((c.kept.doc.file, c.kept.doc.index))
        if dc is None:
            continue
        kind = key[0]
        if dc.live:
            n = len(dc.live)
            lines.append(f"  {kind} {key[2]}: set to what runs in the cluster ({n} field{'s' if n != 1 else ''}):")
            lines += [f"    {describe_change(f, kind)}" for f in dc.live]
        if dc.secrets:
            lines.append(f"  {kind} {key[2]}: NOT written, the cluster's value is secret -- set it in "
                         f"{c.kept.file} yourself (from a Secret): {', '.join(dc.secrets)}")
        if dc.cleaned:
            lines.append(f"  {kind} {key[2]}: cluster-only fields removed: {', '.join(f.path for f in dc.cleaned)}")
        if dc.not_compared:
            lines.append(f"  {kind} {key[2]}: {dc.not_compared}")
    lines += [f"  note: {n}" for n in svc.notes]
    return lines


def _op_line(op: FileOp) -> str:
    why = f" -- {op.why}" if op.why else ""
    if op.op == "move":
        return f"  git mv {op.source} -> {op.path}{why}"
    if op.op == "remove":
        return f"  git rm {op.path} ({', '.join(op.what)}){why}"
    if op.op == "edit":
        return f"  edit   {op.path}{why}"
    return f"  new    {op.path} ({', '.join(op.what)}){why}"


def render(plan: Plan, *, apply: bool) -> list[str]:
    """The plan, line by line."""
    if plan.empty:
        lines = ["Nothing to do: no manifests are applied as plain files (kubectl apply -f) outside the GitOps tree."]
        lines += [f"Left alone: {x}" for x in plan.left_alone]
        return lines
    services = plan.grouping.services
    mode = "" if apply else " (dry run)"
    if services:
        head = (f"init gitops{mode}: {len(services)} service{'s' if len(services) != 1 else ''}, one kustomize base "
                f"each under {plan.settings.apps}/, applied by Flux from clusters/{plan.settings.cluster}/")
    else:
        head = f"init gitops{mode}: no service to move; copies of what the GitOps tree deploys leave the repository"
    lines = [head, f"Which definition wins: {plan.reference}", ""]
    for svc in services:
        lines += [*_service_lines(plan, svc), ""]
    gone = plan.grouping.gone
    if plan.notes:
        lines += ["Notes:", *(f"  {n}" for n in plan.notes), ""]
    if gone:
        lines.append("Leaving the repository:")
        for key, why in sorted(gone.items()):
            where = ", ".join(d.where for d in plan.grouping.choices[key].defs)
            name = f"{key[1]}/{key[2]}" if key[1] else key[2]
            lines.append(f"  {key[0]} {name} ({where}): {why}")
        lines.append("")
    lines.append("Files:")
    order = {"move": 0, "edit": 1, "remove": 2, "create": 3}
    lines += [_op_line(op) for op in sorted(plan.layout.ops, key=lambda o: (order[o.op], o.path))]
    if plan.left_alone:
        lines += ["", "Left alone:", *(f"  {x}" for x in plan.left_alone)]
    changed = [op for op in plan.layout.ops if op.kept and op.text != op.kept]
    if changed:
        lines += ["", "Changes inside the documents that move (dropped documents are listed above):"]
        for op in changed:
            lines += [f"  {ln}" for ln in diff(op.kept, op.text, op.source or op.path, op.path)]
    generated = [op for op in plan.layout.ops if op.op == "create" and (op.path.endswith(f"/{KUSTOMIZATION}")
                                                                       or op.path.startswith("clusters/"))]
    if generated:
        lines += ["", "New files:"]
        for op in generated:
            lines += [f"  {op.path}:", *(f"    {ln}" for ln in op.text.splitlines())]
    if plan.cleanup:
        lines += ["", "In the cluster (this command does not change it): once Flux applies the services, delete what "
                  "left the repository:", *(f"  {c}" for c in plan.cleanup)]
    if plan.url_note and plan.writes_sync:
        lines += ["", f"Flux: {plan.url_note}"]
    if plan.uncommitted and not apply:
        lines += ["", f"Uncommitted changes in {', '.join(plan.uncommitted)}: --apply refuses unless --allow-dirty"]
    return lines
