"""Pick a renderer by name and write its output to a console (only the chosen renderer is imported)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from kubeshape.report.model import Report
    from kubeshape.rules.base import Rule

FORMATS = ("text", "markdown", "json", "sarif", "html")


def render(report: Report, fmt: str, rules: list[Rule], console: Console, *, verbose: bool = False) -> None:
    """Write ``report`` as ``fmt``; non-text formats go to ``console.file`` verbatim (no Rich markup)."""
    if fmt == "text":
        from kubeshape.report.text import render_text

        render_text(report, console, verbose=verbose)
        return
    if fmt == "markdown":
        from kubeshape.report.markdown import render_markdown

        out = render_markdown(report)
    elif fmt == "json":
        from kubeshape.report.json_ import render_json

        out = render_json(report)
    elif fmt == "sarif":
        from kubeshape.report.sarif import render_sarif

        out = render_sarif(report, rules)
    elif fmt == "html":
        from kubeshape.report.html import render_html

        out = render_html(report)
    else:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    console.file.write(out)
    console.file.flush()
