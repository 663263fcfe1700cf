"""The rule catalog: every rule documented like `ruff rule`, and covered by positive and negative tests."""

from __future__ import annotations

import re
from pathlib import Path

from kubeshape.rules.base import all_rules

TESTS = Path(__file__).parent / "rules"


def test_every_rule_has_a_complete_doc() -> None:
    rules = all_rules()
    assert len({r.name for r in rules}) == len(rules), "rule names must be unique"
    for r in rules:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", r.name), r.name
        assert r.summary.endswith("."), r.id
        for part in (r.doc.what, r.doc.why, r.doc.example, r.doc.fix):
            assert len(part) > 20, f"{r.id} has a thin doc section"
        assert "```" in r.doc.example, f"{r.id}: the example should be a code block"


def test_every_rule_has_tests() -> None:
    source = "\n".join(p.read_text() for p in TESTS.glob("test_*.py")).lower()
    for r in all_rules():
        uses = len(re.findall(rf"\b{r.id.lower()}\b", source))
        assert uses >= 2, f"{r.id} needs a positive and a negative test in tests/rules (found {uses} mentions)"
