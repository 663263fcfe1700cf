"""Values the registry client returns, and the media types it speaks."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
IN_TOTO = "application/vnd.in-toto+json"

MANIFEST_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_TYPES = (DOCKER_MANIFEST_LIST, OCI_INDEX)
# Sent on every manifest HEAD/GET: without the OCI types, distribution answers 404 for OCI manifests.
MANIFEST_ACCEPT = ", ".join((DOCKER_MANIFEST, OCI_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX))

REVISION_LABEL = "org.opencontainers.image.revision"
CREATED_ANNOTATION = "org.opencontainers.image.created"
REFERENCE_TYPE = "vnd.docker.reference.type"
ATTESTATION = "attestation-manifest"


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parse_created(value: object) -> datetime | None:
    """An image ``created`` time (RFC 3339, maybe with nanoseconds) as an aware datetime; None if unusable."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    date, sep, rest = text.partition(".")
    if sep:  # trim the fraction to microseconds: Go writes nanoseconds
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{date}.{rest[:min(digits, 6)]}{rest[digits:]}" if digits else date + rest
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def format_created(dt: datetime | None) -> str | None:
    """RFC 3339 in UTC with ``Z``; microseconds only when present."""
    if dt is None:
        return None
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if dt.microsecond else "%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Credentials:
    """Username and password (or token); ``repr`` hides the secret."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ManifestRef:
    """What HEAD on a manifest says: its digest, media type and size in bytes."""

    digest: str
    media_type: str
    size: int


@dataclass(frozen=True, slots=True)
class Manifest:
    """A fetched manifest: raw bytes (what the digest covers) and the parsed JSON."""

    digest: str
    media_type: str
    body: bytes
    data: dict[str, Any]

    @property
    def size(self) -> int:
        return len(self.body)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES or "manifests" in self.data


@dataclass(frozen=True, slots=True)
class Layer:
    """A layer blob."""

    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What an image is: created time, labels, revision, layers and total size.

    For an index the platform images are merged (attestation manifests skipped): ``created`` is the latest,
    ``labels`` the union (first platform wins), and blobs shared between platforms count once in ``layers``
    and ``size`` (configs and layers).
    """

    digest: str
    media_type: str
    created: datetime | None
    labels: dict[str, str]
    revision: str | None
    layers: tuple[Layer, ...]
    size: int
    platforms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TagDeletion:
    """Outcome of ``delete_tag``: which digest the tag pointed to and how it was removed."""

    tag: str
    digest: str
    siblings: tuple[str, ...]  # other tags on the same digest, still there
    deleted_manifest: bool  # True: the digest itself was deleted (no sibling tags)
