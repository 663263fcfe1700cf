"""The machine fixes, in the order a plan makes them (checks-as-data: rule IDs -> the function that fixes them).

The order matters: copies are removed before anything edits them (KS201), orphans go before their files are
edited (KS601), files are corrected before a live workload takes the repository's image (KS1xx), and the revision
history is capped before the revisions that remain are annotated (KS602, then KS205).
"""

from __future__ import annotations

from collections.abc import Callable

from kubeshape.actions.fix.context import FixContext
from kubeshape.actions.fix.fixers.duplicates import fix_duplicates
from kubeshape.actions.fix.fixers.history import fix_change_cause
from kubeshape.actions.fix.fixers.images import fix_images
from kubeshape.actions.fix.fixers.orphans import fix_hpa_target_missing, fix_old_replicasets
from kubeshape.actions.fix.fixers.probes import fix_probes
from kubeshape.actions.fix.fixers.telemetry import fix_missing_collector
from kubeshape.findings import Finding

Fixer = Callable[[FixContext, list[Finding]], None]

FIXERS: tuple[tuple[tuple[str, ...], Fixer], ...] = (
    (("KS201",), fix_duplicates),
    (("KS601",), fix_hpa_target_missing),
    (("KS101", "KS102", "KS105", "KS106", "KS404"), fix_images),
    (("KS701",), fix_missing_collector),
    (("KS502",), fix_probes),
    (("KS602",), fix_old_replicasets),
    (("KS205",), fix_change_cause),
)

MACHINE_FIXES: frozenset[str] = frozenset(r for rules, _ in FIXERS for r in rules)
