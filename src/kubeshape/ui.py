"""Terminal helpers: the stderr console and spinners that appear only for people, never in pipes."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from functools import cache
from typing import ClassVar

from rich.console import Console, ConsoleOptions, RenderResult
from rich.markdown import CodeBlock, Markdown, MarkdownElement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.segment import Segment
from rich.syntax import Syntax
from rich.text import Text


@cache
def err_console() -> Console:
    return Console(stderr=True, highlight=False)


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner on stderr while slow work runs (only when stderr is a terminal)."""
    if not sys.stderr.isatty():
        yield
        return
    with err_console().status(message):
        yield


class KindProgress:
    """A progress bar over the kinds being listed (stderr, terminals only); a no-op in pipes and CI."""

    def __init__(self, label: str, total: int) -> None:
        self.enabled = sys.stderr.isatty()
        self.total = total
        self.objects = 0
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self.label = label

    def __enter__(self) -> KindProgress:
        if self.enabled:
            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(), console=err_console(),
                                      transient=True)
            self._progress.__enter__()
            self._task = self._progress.add_task(self.label, total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def update(self, kind: str, count: int, done: bool) -> None:
        if self._progress is None or self._task is None:
            return
        if done:
            self.objects += count
            self._progress.update(self._task, advance=1,
                                  description=f"{self.label}: {kind} ({self.objects} objects so far)")
        else:
            self._progress.update(self._task, description=f"{self.label}: {kind} ({count}…)")


class _WholeLineCode(CodeBlock):
    """A Markdown code block whose lines are never wrapped or cut: a long command overflows and stays pasteable."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        code = str(self.text).rstrip()
        highlighted = Syntax(code, self.lexer_name, theme=self.theme, background_color="default").highlight(code)
        highlighted.rstrip()
        for line in highlighted.split("\n", allow_blank=True):
            yield Text("  ") + line
            yield Segment.line()


class PasteableMarkdown(Markdown):
    """Rich Markdown with code blocks printed whole (print it with ``crop=False``)."""

    elements: ClassVar[dict[str, type[MarkdownElement]]] = {**Markdown.elements, "fence": _WholeLineCode,
                                                             "code_block": _WholeLineCode}


def print_markdown(text: str, console: Console | None = None) -> None:
    """Markdown rendered by Rich in a terminal, and written as it is when piped or redirected."""
    console = console or Console()
    if console.is_terminal:
        console.print(PasteableMarkdown(text), crop=False, soft_wrap=False)
    else:
        console.file.write(text if text.endswith("\n") else text + "\n")
        console.file.flush()
