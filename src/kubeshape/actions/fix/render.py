"""The plan as a reader reviews it: per incident, each step's diff and its cluster changes, then what was not
fixed and why."""

from __future__ import annotations

from kubeshape.actions.fix.plan import Plan, Step


def counts(plan: Plan) -> tuple[int, int, int]:
    """(steps, files changed, cluster changes)."""
    files = {fc.path for s in plan.steps for fc in s.files}
    return len(plan.steps), len(files), sum(len(s.cluster) for s in plan.steps)


def _groups(plan: Plan) -> list[tuple[str, list[Step]]]:
    order: dict[str, list[Step]] = {}
    for s in plan.steps:
        order.setdefault(s.incident or "Other findings", []).append(s)
    return list(order.items())


def render_text(plan: Plan, *, applied: bool = False) -> str:
    """Unified diffs for files and a kubectl-style list of cluster changes, grouped by incident."""
    steps, files, changes = counts(plan)
    out: list[str] = []
    if not plan.steps:
        out.append("Nothing to fix automatically.")
    else:
        head = f"Plan: {steps} step{'s' * (steps != 1)}, {files} file{'s' * (files != 1)} to change, " \
               f"{changes} cluster change{'s' * (changes != 1)}"
        out.append(head + ("" if applied else " (dry run: nothing changed; --apply makes them)"))
    for incident, group in _groups(plan):
        out += ["", f"Incident {incident}"]
        for s in group:
            out.append(f"  Step {s.id}: {s.title}  [{', '.join(s.findings)}]")
            for p in s.pushes:
                out.append(f"    registry: copy {p.source} to {p.target}")
            for fc in s.files:
                out.append(f"    file {fc.path}" + (" (deleted)" if fc.deletes else ""))
                out += ["      " + ln.rstrip("\r\n") for ln in fc.diff.splitlines()]
            for c in s.cluster:
                guard = f" (if still at generation {c.generation})" if c.generation is not None else ""
                what = f"server-side apply {c.object}: {c.summary}" if c.action == "apply" else \
                    f"delete {c.object}{f' {c.summary}' if c.summary else ''}"
                out.append(f"    cluster: {what}{guard}")
            out += [f"    note: {n}" for n in s.notes]
    if plan.skipped:
        out += ["", f"Not fixed automatically ({len(plan.skipped)}):"]
        out += [f"  {s.finding}: {s.reason}" for s in plan.skipped]
    if plan.steps and any(s.files for s in plan.steps):
        out += ["", "Commit message:", *("  " + ln for ln in plan.commit_message().splitlines())]
    return "\n".join(out) + "\n"
