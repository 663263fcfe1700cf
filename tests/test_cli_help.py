"""``kubeshape ... --help`` on an 80- or 100-column terminal: every flag name in full, no ``<bool>`` noise.

The commands are listed from the Typer app itself, so a new command or sub-command is checked without
touching this file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from kubeshape.cli.app import app

WIDTHS = (80, 100)
_OPTION_TOKEN = re.compile(r"-{1,2}\w[\w-]*")
_METAVAR = re.compile(r"<[^>\s]*>(\.\.\.)?|\[[^\]\s]*\](\.\.\.)?|[A-Z][A-Z0-9_/\[\]:.=-]*")
_BOOL_TEXT = re.compile(r"BOOLEAN|<bool>", re.IGNORECASE)


def _walk(command: Any, path: tuple[str, ...], parent: Any) -> list[tuple[tuple[str, ...], Any, Any]]:
    """Every (command path, click command, its context) below ``command``, ``command`` included."""
    ctx = command.make_context(path[-1] if path else "kubeshape", [], parent=parent, resilient_parsing=True)
    found = [(path, command, ctx)]
    subcommands = getattr(command, "commands", None) or {}
    for name in command.list_commands(ctx) if subcommands else []:
        found += _walk(command.get_command(ctx, name), (*path, name), ctx)
    return found


ROOT = typer.main.get_command(app)
COMMANDS = _walk(ROOT, (), None)
PATHS = [path for path, _, _ in COMMANDS]


def _options(path: tuple[str, ...]) -> list[Any]:
    """The options of one command as click declares them, the help option included."""
    _, command, ctx = next(c for c in COMMANDS if c[0] == path)
    return [p for p in command.get_params(ctx) if p.param_type_name == "option" and not getattr(p, "hidden", False)]


def _help(path: tuple[str, ...], width: int) -> str:
    env = {"COLUMNS": str(width), "LINES": "50", "TERM": "dumb", "NO_COLOR": "1"}
    result = CliRunner().invoke(app, [*path, "--help"], env=env, prog_name="kubeshape")
    assert result.exit_code == 0, result.output
    return result.output


def _declared_names(line: str) -> list[str]:
    """The option names an option line of the help declares: the leading flags (and their metavars) before the
    help text; empty for other lines. Border and required-marker characters of a panel layout are skipped."""
    tokens = re.split(r"[\s,]+", line.strip(" │*\t"))
    if not tokens or not _OPTION_TOKEN.fullmatch(tokens[0]):
        return []
    names = []
    for token in tokens:
        if _OPTION_TOKEN.fullmatch(token):
            names.append(token)
        elif token != "/" and not _METAVAR.fullmatch(token):
            break  # the help text begins
    return names


def _option_lines(output: str) -> dict[str, str]:
    """Each option name the help shows in its option column -> that line."""
    return {name: line for line in output.splitlines() for name in _declared_names(line)}


def test_every_command_is_covered() -> None:
    names = {" ".join(p) for p in PATHS}
    assert {"", "lint", "doctor", "snapshot", "rules", "rule", "rbac", "version", "registry", "registry tags",
            "registry prune", "release", "history"} <= names, names


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "kubeshape")
def test_help_shows_every_option_in_full_and_fits(path: tuple[str, ...], width: int) -> None:
    output = _help(path, width)
    too_long = [line for line in output.splitlines() if len(line) > width]
    assert not too_long, f"lines wider than {width} columns:\n" + "\n".join(too_long)
    assert "…" not in output, output  # nothing cropped with an ellipsis
    shown = _option_lines(output)
    for option in _options(path):
        for name in [*option.opts, *option.secondary_opts]:
            assert name in shown, f"{name} is not shown whole in the option column:\n{output}"
            assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w…-])", output), output
            if getattr(option, "is_flag", False):
                assert not _BOOL_TEXT.search(shown[name]), f"{name} shows a type: {shown[name]!r}"


@pytest.mark.parametrize("path", [p for p, c, _ in COMMANDS if getattr(c, "commands", None)],
                         ids=lambda p: " ".join(p) or "kubeshape")
def test_command_lists_are_not_cut_short(path: tuple[str, ...]) -> None:
    """The one-line summaries in a command list are whole sentences, not ``...``-truncated."""
    output = _help(path, 80)
    _, group, ctx = next(c for c in COMMANDS if c[0] == path)
    for name in group.list_commands(ctx):
        [line] = [ln.strip(" │") for ln in output.splitlines() if ln.strip(" │").startswith(f"{name} ")]
        assert not line.endswith(("...", "…")), line


def test_real_process_at_80_columns() -> None:
    """The entry point a user runs, in a real process: the same guarantees as the in-process runs."""
    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb"}
    proc = subprocess.run([sys.executable, "-m", "kubeshape", "doctor", "--help"], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert max(len(line) for line in proc.stdout.splitlines()) <= 80, proc.stdout
    shown = _option_lines(proc.stdout)
    for name in ("--request-timeout", "--no-annotation-ignores", "--registry-snapshot", "-A", "--all-namespaces"):
        assert name in shown, proc.stdout
    for flag in ("--demo", "--verbose", "-v", "--all-contexts"):
        assert not _BOOL_TEXT.search(shown[flag]), shown[flag]
