"""KS201: a workload defined in several files -- delete the copies that are not the source of truth."""

from __future__ import annotations

from kubeshape.actions.fix.context import FixContext
from kubeshape.actions.fix.fixers._where import remove_document
from kubeshape.findings import Finding


def fix_duplicates(ctx: FixContext, findings: list[Finding]) -> None:
    """Keep the definition KS201 chose (the one closest to what runs), delete the document from every other
    file, and the file when nothing else is left in it. Copies rendered by different Flux or kustomize roots
    from one file are not plain copies: they are left to ``kubeshape init gitops``."""
    for f in findings:
        keep = f.data.get("keep")
        if f.object is None or not keep:
            ctx.refuse([f], "the finding does not name the definition to keep")
            continue
        copies = [o for o in ctx.inv.repo_by_key.get((f.object.kind, f.object.namespace, f.object.name), [])
                  if o.file in f.data.get("files", [])]
        others = [o for o in copies if o.file != keep]
        if not others:
            ctx.refuse([f], f"every definition is in {keep} (rendered by several roots): consolidate the roots "
                            "with 'kubeshape init gitops'")
            continue
        with ctx.step(f"Keep {keep} as the only definition of {f.object.kind} {f.object.namespace}/"
                      f"{f.object.name}", [f]):
            for o in others:
                remove_document(ctx, o)
