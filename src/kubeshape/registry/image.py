"""Build tiny, real OCI images in Python (no Docker) and push them.

Everything is deterministic: the same files, times and labels give the same digests, so several tags can
share one digest on purpose. Used by the tests, the benchmark and the demo.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

import orjson

from kubeshape.registry.client import RegistryClient
from kubeshape.registry.models import (
    ATTESTATION,
    IN_TOTO,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    REFERENCE_TYPE,
    format_created,
    sha256_digest,
)


def _json(doc: Any) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True, slots=True)
class Blob:
    """Content-addressed bytes with their media type."""

    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True, slots=True)
class BuiltImage:
    """An image manifest with its config and layers."""

    manifest: bytes
    config: Blob
    layers: tuple[Blob, ...]
    platform: dict[str, str]
    media_type: str = OCI_MANIFEST

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers)

    @property
    def size(self) -> int:
        """Config plus layers, in bytes (what ``image_info`` reports)."""
        return sum(b.size for b in self.blobs)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.manifest), **extra}


@dataclass(frozen=True, slots=True)
class BuiltIndex:
    """An image index over platform images (and attestation manifests)."""

    manifest: bytes
    images: tuple[BuiltImage, ...]
    media_type: str = OCI_INDEX

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)


def layer_tar(files: dict[str, bytes], mtime: int) -> bytes:
    """An uncompressed tar of ``files`` (sorted, parent directories added, uid/gid 0, fixed mtime)."""
    dirs = {str(p) for name in files for p in PurePosixPath(name.lstrip("/")).parents if str(p) != "."}
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(dirs | {n.lstrip("/") for n in files}):
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "", ""
            if name in dirs:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                data = files.get(name, files.get("/" + name, b""))
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def build_image(files: dict[str, bytes], *, created: datetime, labels: dict[str, str] | None = None,
                architecture: str = "amd64", os: str = "linux", base: BuiltImage | None = None,
                annotations: dict[str, str] | None = None) -> BuiltImage:
    """A one-layer OCI image of ``files`` (on top of ``base``'s layers, which are then shared)."""
    tar = layer_tar(files, int(created.timestamp()))
    layer = Blob(OCI_LAYER_GZIP, gzip.compress(tar, compresslevel=6, mtime=0))
    when = format_created(created)
    base_config = orjson.loads(base.config.data) if base is not None else {}
    diff_ids = [*(base_config.get("rootfs") or {}).get("diff_ids", []), sha256_digest(tar)]
    history = [*base_config.get("history", []), {"created": when, "created_by": "kubeshape build_image"}]
    config = Blob(OCI_CONFIG, _json({
        "created": when, "architecture": architecture, "os": os,
        "config": {"Labels": dict(labels or {}), "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }))
    layers = (*(base.layers if base is not None else ()), layer)
    manifest: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(),
                                "layers": [la.descriptor() for la in layers]}
    if annotations:
        manifest["annotations"] = dict(annotations)
    return BuiltImage(_json(manifest), config, layers, {"architecture": architecture, "os": os})


def build_attestation(image: BuiltImage, *, created: datetime) -> BuiltImage:
    """A buildx-style provenance attestation manifest for ``image`` (platform unknown/unknown)."""
    statement = Blob(IN_TOTO, _json({
        "_type": "https://in-toto.io/Statement/v0.1", "predicateType": "https://slsa.dev/provenance/v0.2",
        "subject": [{"name": "image", "digest": {"sha256": image.digest.removeprefix("sha256:")}}],
        "predicate": {"buildType": "kubeshape", "metadata": {"buildFinishedOn": format_created(created)}},
    }))
    config = Blob(OCI_CONFIG, _json({"architecture": "unknown", "os": "unknown", "config": {},
                                     "rootfs": {"type": "layers", "diff_ids": [statement.digest]}}))
    layer = statement.descriptor(annotations={"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"})
    manifest = _json({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(),
                      "layers": [layer]})
    return BuiltImage(manifest, config, (statement,), {"architecture": "unknown", "os": "unknown"})


def build_index(images: list[BuiltImage], *, created: datetime, attestations: bool = True,
                annotations: dict[str, str] | None = None) -> BuiltIndex:
    """An OCI index over ``images``, each followed by its attestation manifest when ``attestations``."""
    members: list[BuiltImage] = []
    entries: list[dict[str, Any]] = []
    for image in images:
        members.append(image)
        entries.append(image.descriptor(platform=dict(image.platform)))
        if attestations:
            att = build_attestation(image, created=created)
            members.append(att)
            entries.append(att.descriptor(platform=dict(att.platform), annotations={
                "vnd.docker.reference.digest": image.digest, REFERENCE_TYPE: ATTESTATION}))
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    if annotations:
        doc["annotations"] = dict(annotations)
    return BuiltIndex(_json(doc), tuple(members))


def push_image(client: RegistryClient, repo: str, tag: str | None, image: BuiltImage | BuiltIndex) -> str:
    """Push blobs, then manifests (an index's members by digest), then tag; returns the pushed digest."""
    if isinstance(image, BuiltIndex):
        for member in image.images:
            push_image(client, repo, None, member)
    else:
        for blob in image.blobs:
            client.push_blob(repo, blob.data)
    return client.put_manifest(repo, tag or image.digest, image.manifest, image.media_type)
