"""Container image reference parsing.

Follows the grammar of github.com/distribution/reference::

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [domain "/"] path
    domain           := host [ ":" port ]
    host             := domain-name | IPv4 | "[" IPv6 "]"
    path             := path-component [ "/" path-component ]*
    path-component   := /[a-z0-9]+/ [ separator /[a-z0-9]+/ ]*
    separator        := /[_.]|__|[-]+/
    tag              := /[\\w][\\w.-]{0,127}/
    digest           := algorithm ":" encoded

The first "/"-separated component is a domain only under docker's
``splitDockerDomain`` rule (it contains "." or ":", is "localhost", or has
uppercase letters); otherwise the whole name is the repository path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "DEFAULT_REGISTRY", "MAX_NAME_LENGTH", "ImageRef", "InvalidReference", "is_valid_tag", "parse", "parse_or_none",
]

DEFAULT_REGISTRY = "docker.io"
MAX_NAME_LENGTH = 255

_LEGACY_REGISTRY = "index.docker.io"
_OFFICIAL_PREFIX = "library/"
_DEFAULT_TAG = "latest"

# Written so that no two alternatives can match the same text: matching stays
# linear even on long, hostile input.
_ALNUM = r"[a-z0-9]+"
_PATH_COMPONENT = _ALNUM + r"(?:(?:[._]|__|-+)" + _ALNUM + r")*"
_DOMAIN_COMPONENT = r"[a-zA-Z0-9]+(?:-+[a-zA-Z0-9]+)*"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"

_DOMAIN_RE = re.compile(_HOST + r"(?::[0-9]+)?", re.ASCII)
_PATH_RE = re.compile(_PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*", re.ASCII)
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)
_DIGEST_RE = re.compile(r"([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]{32,})", re.ASCII)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}", re.ASCII)
_LOWER_HEX_RE = re.compile(r"[a-f0-9]+", re.ASCII)
# Registered algorithms (OCI image spec) and the hex length of their encoding.
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


class InvalidReference(ValueError):
    """An image reference that does not follow the grammar."""

    reference: str
    reason: str

    def __init__(self, reference: str, reason: str) -> None:
        super().__init__(f"invalid reference {reference!r}: {reason}")
        self.reference = reference
        self.reason = reason

    def __reduce__(self) -> tuple[type[InvalidReference], tuple[str, str]]:
        return (type(self), (self.reference, self.reason))


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A parsed image reference; fields keep the spelling of the input."""

    raw: str
    domain: str | None
    path: str
    tag: str | None
    digest: str | None

    @property
    def qualified(self) -> bool:
        """True iff an explicit registry domain was written."""
        return self.domain is not None

    @property
    def registry(self) -> str:
        """The registry domain, ``docker.io`` when none was written."""
        return self.domain if self.domain is not None else DEFAULT_REGISTRY

    @property
    def name(self) -> str:
        """Repository name as written: ``[domain/]path``."""
        return self.path if self.domain is None else f"{self.domain}/{self.path}"

    @property
    def normalized_name(self) -> str:
        """Fully qualified name, e.g. ``docker.io/library/nginx`` for ``nginx``."""
        domain = self.registry
        if domain == _LEGACY_REGISTRY:
            domain = DEFAULT_REGISTRY
        path = self.path
        if domain == DEFAULT_REGISTRY and "/" not in path:
            path = _OFFICIAL_PREFIX + path
        return f"{domain}/{path}"

    @property
    def mutable(self) -> bool:
        """True when not pinned by digest and the tag is absent or ``latest``."""
        return self.digest is None and self.tag in (None, _DEFAULT_TAG)

    @property
    def effective_tag(self) -> str | None:
        """The tag, or ``latest`` when neither tag nor digest is given."""
        if self.tag is None and self.digest is None:
            return _DEFAULT_TAG
        return self.tag

    def with_tag(self, tag: str) -> ImageRef:
        """Return the same name with ``tag`` and no digest; raises InvalidReference."""
        text = f"{self.name}:{tag}"
        if not is_valid_tag(tag):
            raise InvalidReference(text, f"invalid tag {tag!r}")
        return ImageRef(raw=text, domain=self.domain, path=self.path, tag=tag, digest=None)

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += ":" + self.tag
        if self.digest is not None:
            text += "@" + self.digest
        return text


def parse_or_none(ref: str) -> ImageRef | None:
    """``parse(ref)``, or None for a reference that does not follow the grammar."""
    try:
        return parse(ref)
    except InvalidReference:
        return None


def is_valid_tag(tag: str) -> bool:
    """True iff ``tag`` matches ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``."""
    return _TAG_RE.fullmatch(tag) is not None


def parse(ref: str) -> ImageRef:
    """Parse an image reference; raises InvalidReference with the reason."""
    result = _parse(ref)
    if isinstance(result, str):
        raise InvalidReference(ref, result)
    return result


@lru_cache(maxsize=65536)
def _parse(ref: str) -> ImageRef | str:
    """Parse ``ref``, returning the ImageRef or the reason it is invalid."""
    if not ref:
        return "empty reference"
    if ref != ref.strip():
        return "leading or trailing whitespace"
    if _IDENTIFIER_RE.fullmatch(ref):
        return "cannot specify a 64-character hexadecimal string as a repository name"

    # Split right to left (digest, then tag), validate left to right.
    remainder, at, digest = ref.partition("@")
    name, tag = remainder, None
    colon = remainder.rfind(":")
    if colon > remainder.rfind("/"):
        name, tag = remainder[:colon], remainder[colon + 1 :]
    if not name:
        return "missing repository name"

    domain: str | None = None
    path = name
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, path = first, rest
        if not _DOMAIN_RE.fullmatch(domain):
            if "." in first or ":" in first or not _PATH_RE.fullmatch(first.lower()):
                return f"invalid registry domain {domain!r}"
            return "repository name must be lowercase"

    if not _PATH_RE.fullmatch(path):
        if path != path.lower() and _PATH_RE.fullmatch(path.lower()):
            return "repository name must be lowercase"
        return f"invalid repository path {path!r}"
    if len(name) > MAX_NAME_LENGTH:
        return f"repository name must not be more than {MAX_NAME_LENGTH} characters"
    if tag is not None and not is_valid_tag(tag):
        return f"invalid tag {tag!r}"
    if at:
        reason = _digest_error(digest)
        if reason is not None:
            return reason

    return ImageRef(raw=ref, domain=domain, path=path, tag=tag, digest=digest if at else None)


def _digest_error(digest: str) -> str | None:
    """Return why ``digest`` is invalid, or None when it is valid."""
    match = _DIGEST_RE.fullmatch(digest)
    if match is None:
        return f"invalid digest {digest!r}"
    algorithm, encoded = match.groups()
    length = _DIGEST_HEX_LENGTHS.get(algorithm)
    if length is not None and (len(encoded) != length or not _LOWER_HEX_RE.fullmatch(encoded)):
        return f"invalid {algorithm} digest: expected {length} lowercase hex characters"
    return None
