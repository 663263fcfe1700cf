"""Terminal helpers: the stderr console and spinners that appear only for people, never in pipes.

Rich's progress bars and Markdown renderer are imported when they are shown, so that commands which print
plainly (pipes, CI, ``kubeshape rule`` into a file) do not load them.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from rich.console import Console
    from rich.markdown import Markdown
    from rich.progress import Progress, TaskID


@cache
def err_console() -> Console:
    from rich.console import Console

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
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

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


@cache
def _pasteable_markdown() -> type[Markdown]:
    """Rich Markdown with code blocks printed whole (print it with ``crop=False``)."""
    from rich.console import ConsoleOptions, RenderResult
    from rich.markdown import CodeBlock, Markdown, MarkdownElement
    from rich.segment import Segment
    from rich.syntax import Syntax
    from rich.text import Text

    class WholeLineCode(CodeBlock):
        """A Markdown code block whose lines are never wrapped or cut: a long command overflows and stays
        pasteable."""

        def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
            code = str(self.text).rstrip()
            highlighted = Syntax(code, self.lexer_name, theme=self.theme, background_color="default").highlight(code)
            highlighted.rstrip()
            for line in highlighted.split("\n", allow_blank=True):
                yield Text("  ") + line
                yield Segment.line()

    class PasteableMarkdown(Markdown):
        elements: ClassVar[dict[str, type[MarkdownElement]]] = {**Markdown.elements, "fence": WholeLineCode,
                                                                 "code_block": WholeLineCode}

    return PasteableMarkdown


def _plain_stdout() -> bool:
    """stdout is a pipe or a file and nothing in the environment tells Rich to treat it as a terminal, so Rich
    would write Markdown as it is: no need to import it."""
    return not sys.stdout.isatty() and "FORCE_COLOR" not in os.environ and "TTY_COMPATIBLE" not in os.environ


def print_markdown(text: str, console: Console | None = None) -> None:
    """Markdown rendered by Rich in a terminal, and written as it is when piped or redirected."""
    if console is None:
        if _plain_stdout():
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
            sys.stdout.flush()
            return
        from rich.console import Console

        console = Console()
    if console.is_terminal:
        console.print(_pasteable_markdown()(text), crop=False, soft_wrap=False)
    else:
        console.file.write(text if text.endswith("\n") else text + "\n")
        console.file.flush()
