"""Pick a renderer by name and write its output to a console."""

from __future__ import annotations

from rich.console import Console

from kubeshape.report.html import render_html
from kubeshape.report.json_ import render_json
from kubeshape.report.markdown import render_markdown
from kubeshape.report.model import Report
from kubeshape.report.sarif import render_sarif
from kubeshape.report.text import render_text
from kubeshape.rules.base import Rule

FORMATS = ("text", "markdown", "json", "sarif", "html")


def render(report: Report, fmt: str, rules: list[Rule], console: Console, *, verbose: bool = False) -> None:
    """Write ``report`` as ``fmt``; non-text formats go to ``console.file`` verbatim (no Rich markup)."""
    if fmt == "text":
        render_text(report, console, verbose=verbose)
        return
    if fmt == "markdown":
        out = render_markdown(report)
    elif fmt == "json":
        out = render_json(report)
    elif fmt == "sarif":
        out = render_sarif(report, rules)
    elif fmt == "html":
        out = render_html(report)
    else:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    console.file.write(out)
    console.file.flush()
