"""Errors that end a command with a one-line message and a documented exit code."""

from __future__ import annotations

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_INPUT = 2
EXIT_UNREACHABLE = 3


class KubeshapeError(Exception):
    """Base error; ``str(exc)`` is the one-line message shown to the user."""

    exit_code = EXIT_INPUT


class InputError(KubeshapeError):
    """Bad input: a file, bundle, config key or argument the user must fix (exit 2)."""

    exit_code = EXIT_INPUT


class SourceUnreachable(KubeshapeError):
    """A cluster, registry or other source could not be reached (exit 3)."""

    exit_code = EXIT_UNREACHABLE
