"""The Typer app of a command group (``kubeshape registry|webhook|policy|init``), set up as the root app is."""

from __future__ import annotations

import typer


def sub_app(name: str, help: str) -> typer.Typer:
    """A command group with plain help (as the root app: see cli/app.py), ``-h``, and no Typer tracebacks."""
    return typer.Typer(name=name, help=help, no_args_is_help=True, rich_markup_mode=None,
                       pretty_exceptions_enable=False, context_settings={"help_option_names": ["-h", "--help"]})
