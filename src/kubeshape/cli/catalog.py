"""``kubeshape rules`` and ``kubeshape rule KSxxx``: the rule catalog, like ``ruff rule``."""

from __future__ import annotations

from kubeshape.errors import InputError
from kubeshape.findings import FAMILIES
from kubeshape.rules.base import Rule, all_rules
from kubeshape.ui import print_markdown


def rule_markdown(r: Rule) -> str:
    """The rule's documentation as Markdown."""
    needs = f"\n\nNeeds: {', '.join(r.requires)}." if r.requires else ""
    return (f"# {r.id} {r.name}\n\n**{r.summary}**\n\nFamily {r.family} ({FAMILIES[r.family]}), default severity "
            f"{r.severity.label}.{needs}\n\n## What it does\n{r.doc.what}\n\n## Why is this bad?\n{r.doc.why}\n\n"
            f"## Example\n{r.doc.example}\n\n## Fix\n{r.doc.fix}\n")


def print_rule(r: Rule) -> None:
    print_markdown(rule_markdown(r))


def print_rules(fmt: str) -> None:
    if fmt == "json":
        import orjson

        data = [{"id": r.id, "name": r.name, "family": r.family, "familyName": FAMILIES[r.family],
                 "severity": r.severity.label, "summary": r.summary, "requires": list(r.requires)}
                for r in all_rules()]
        print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return
    if fmt != "text":
        raise InputError(f"unknown output format {fmt!r}: use text or json")
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("ID", "NAME", "FAMILY", "SEVERITY", "SUMMARY"):
        table.add_column(col, no_wrap=col != "SUMMARY")
    for r in all_rules():
        table.add_row(r.id, r.name, FAMILIES[r.family], r.severity.label, r.summary)
    Console().print(table)
