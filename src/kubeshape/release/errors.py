"""Errors of a release that end it before anything changed, or after, with a one-line message."""

from __future__ import annotations

from kubeshape.errors import EXIT_INPUT, KubeshapeError


class ReleaseError(KubeshapeError):
    """A release step failed; the one-line message says what was and was not changed."""

    def __init__(self, message: str, exit_code: int = EXIT_INPUT) -> None:
        super().__init__(" ".join(message.split()))
        self.exit_code = exit_code


class ReleaseAborted(ReleaseError):
    """The release stopped before changing git, the work tree or the cluster."""
