"""Talk to OCI/Docker registries: list, resolve, inspect, push and delete; snapshot them for ``registry.json``."""

from __future__ import annotations

from kubeshape.registry.client import RegistryClient
from kubeshape.registry.errors import (
    BlobNotFound,
    DeleteDisabled,
    ManifestNotFound,
    RegistryAuthError,
    RegistryConfigError,
    RegistryConnectionError,
    RegistryError,
    RegistryNotFound,
    RegistryProtocolError,
    RegistryServerError,
    RegistryTimeout,
    RegistryTLSError,
    RegistryUnreachable,
    RepositoryNotFound,
)
from kubeshape.registry.models import Credentials, ImageInfo, Layer, Manifest, ManifestRef, TagDeletion

__all__ = [
    "BlobNotFound",
    "Credentials",
    "DeleteDisabled",
    "ImageInfo",
    "Layer",
    "Manifest",
    "ManifestNotFound",
    "ManifestRef",
    "RegistryAuthError",
    "RegistryClient",
    "RegistryConfigError",
    "RegistryConnectionError",
    "RegistryError",
    "RegistryNotFound",
    "RegistryProtocolError",
    "RegistryServerError",
    "RegistryTLSError",
    "RegistryTimeout",
    "RegistryUnreachable",
    "RepositoryNotFound",
    "TagDeletion",
]
