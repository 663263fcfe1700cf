"""Registry errors: one-line messages that name the host, repository and tag, and say what to do.

Messages never contain credentials or tokens. ``RegistryUnreachable`` and its subclasses are
``SourceUnreachable`` (exit 3); every other ``RegistryError`` is an input problem (exit 2).
"""

from __future__ import annotations

from kubeshape.errors import EXIT_INPUT, EXIT_UNREACHABLE, KubeshapeError, SourceUnreachable


class RegistryError(KubeshapeError):
    """Base class: ``str(exc)`` is the message; ``host``/``repository``/``reference`` give the context."""

    exit_code = EXIT_INPUT

    def __init__(self, message: str, *, host: str = "", repository: str | None = None,
                 reference: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.host = host
        self.repository = repository
        self.reference = reference
        self.status = status


class RegistryConfigError(RegistryError):
    """Bad client input: host, repository name, tag, digest, Docker config file."""


class RegistryAuthError(RegistryError):
    """401/403: missing, wrong or insufficient credentials."""


class RegistryNotFound(RegistryError):
    """404: something does not exist."""


class RepositoryNotFound(RegistryNotFound):
    """The repository does not exist (``NAME_UNKNOWN``)."""


class ManifestNotFound(RegistryNotFound):
    """The tag or digest does not exist in the repository (``MANIFEST_UNKNOWN``)."""

    def __init__(self, message: str, *, close_matches: list[str] | None = None, host: str = "",
                 repository: str | None = None, reference: str | None = None, status: int | None = None) -> None:
        super().__init__(message, host=host, repository=repository, reference=reference, status=status)
        self.close_matches = close_matches or []


class BlobNotFound(RegistryNotFound):
    """A blob (config or layer) is missing (``BLOB_UNKNOWN``)."""


class DeleteDisabled(RegistryError):
    """405 / ``UNSUPPORTED`` on DELETE: the registry runs with deletes disabled."""


class RegistryProtocolError(RegistryError):
    """The registry answered something we cannot use (bad JSON, digest mismatch, unexpected status)."""


class RegistryUnreachable(RegistryError, SourceUnreachable):
    """The registry could not be talked to (exit 3)."""

    exit_code = EXIT_UNREACHABLE


class RegistryConnectionError(RegistryUnreachable):
    """Connection refused, reset, or the host name does not resolve."""


class RegistryTimeout(RegistryUnreachable):
    """Connect or read timeout, after retries."""


class RegistryServerError(RegistryUnreachable):
    """5xx or 429 still returned after the retries."""


class RegistryTLSError(RegistryUnreachable):
    """TLS handshake or certificate verification failed."""
