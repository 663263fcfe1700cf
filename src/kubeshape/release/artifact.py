"""An image to push (manifest or index, its child manifests and blobs), read from an OCI image layout or from a
registry, and the OCI labels that make it traceable to a commit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from kubeshape.errors import InputError
from kubeshape.registry.client import RegistryClient
from kubeshape.registry.models import ATTESTATION, INDEX_TYPES, OCI_MANIFEST, REFERENCE_TYPE, sha256_digest

REVISION = "org.opencontainers.image.revision"
SOURCE = "org.opencontainers.image.source"
CREATED = "org.opencontainers.image.created"
VERSION = "org.opencontainers.image.version"
REF_NAME = "org.opencontainers.image.ref.name"


class LayoutError(InputError):
    """The OCI image layout is missing, malformed or inconsistent."""


@dataclass
class Artifact:
    """``manifest`` (an image manifest or an index), the ``children`` an index lists, and a way to read blobs."""

    manifest: bytes
    media_type: str
    children: list[tuple[bytes, str]] = field(default_factory=list)
    blob_digests: list[str] = field(default_factory=list)
    fetch: Callable[[str], bytes] = field(default=lambda d: b"", repr=False)

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def images(self) -> list[dict[str, Any]]:
        """The image manifests (an index's platform images; attestations left out)."""
        if not self.is_index:
            return [orjson.loads(self.manifest)]
        index = orjson.loads(self.manifest)
        skip = {str(d.get("digest")) for d in index.get("manifests") or []
                if (d.get("annotations") or {}).get(REFERENCE_TYPE) == ATTESTATION}
        return [orjson.loads(body) for body, _ in self.children if sha256_digest(body) not in skip]

    def labels(self) -> dict[str, str]:
        """The config labels of the (first platform) image."""
        images = self.images()
        if not images:
            return {}
        cfg = orjson.loads(self.fetch(str(images[0]["config"]["digest"])))
        return {str(k): str(v) for k, v in ((cfg.get("config") or {}).get("Labels") or {}).items()}

    def revision(self) -> str | None:
        """``org.opencontainers.image.revision``: the manifest's annotation, else the config label."""
        annotations = orjson.loads(self.manifest).get("annotations") or {}
        return str(annotations.get(REVISION) or "") or self.labels().get(REVISION)


def read_layout(directory: Path) -> Artifact:
    """The one image (or index) an OCI image layout's ``index.json`` lists, with its blobs."""
    index_file = directory / "index.json"
    if not (directory / "oci-layout").is_file() or not index_file.is_file():
        raise LayoutError(f"{directory}: not an OCI image layout (needs oci-layout and index.json)")
    try:
        index = orjson.loads(index_file.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise LayoutError(f"{index_file}: cannot read ({exc})") from None
    entries = index.get("manifests") or []
    if len(entries) != 1:
        names = ", ".join(str((e.get("annotations") or {}).get(REF_NAME, e.get("digest"))) for e in entries)
        raise LayoutError(f"{index_file}: lists {len(entries)} images ({names or 'none'}): keep exactly one")

    def fetch(digest: str) -> bytes:
        algo, _, hexa = digest.partition(":")
        path = directory / "blobs" / algo / hexa
        try:
            data = path.read_bytes()
        except OSError:
            raise LayoutError(f"{directory}: blob {digest} is missing") from None
        if algo == "sha256" and sha256_digest(data) != digest:
            raise LayoutError(f"{directory}: blob {digest} does not match its digest")
        return data

    top = entries[0]
    manifest = fetch(str(top["digest"]))
    media_type = str(top.get("mediaType") or orjson.loads(manifest).get("mediaType") or OCI_MANIFEST)
    return _complete(Artifact(manifest, media_type, fetch=fetch))


def fetch_remote(client: RegistryClient, repo: str, ref: str) -> Artifact:
    """An image or index as a registry holds it (blobs are read lazily, when pushed)."""
    m = client.get_manifest(repo, ref)
    return _complete(Artifact(m.body, m.media_type, fetch=lambda d: client.get_blob(repo, d)),
                     lambda d: client.get_manifest(repo, d, suggest=False).body)


def _complete(art: Artifact, get_child: Callable[[str], bytes] | None = None) -> Artifact:
    """Fill in the children and blob digests the manifest references."""
    doc = orjson.loads(art.manifest)
    docs = [doc]
    if art.is_index or "manifests" in doc:
        art.media_type = art.media_type if art.is_index else str(doc.get("mediaType"))
        for d in doc.get("manifests") or []:
            body = (get_child or art.fetch)(str(d["digest"]))
            art.children.append((body, str(d.get("mediaType") or OCI_MANIFEST)))
            docs.append(orjson.loads(body))
    seen: dict[str, None] = {}
    for m in docs:
        for desc in [m.get("config"), *(m.get("layers") or [])]:
            if isinstance(desc, dict) and desc.get("digest"):
                seen.setdefault(str(desc["digest"]), None)
    art.blob_digests = list(seen)
    return art


def stamp(art: Artifact, labels: dict[str, str]) -> tuple[Artifact, bool]:
    """``art`` with ``labels`` added to its image config (a new config and manifest digest); unchanged when the
    labels are already there. Indexes are not rewritten (their attestations would no longer match)."""
    if art.is_index:
        return art, False
    manifest = orjson.loads(art.manifest)
    config_digest = str(manifest["config"]["digest"])
    config = orjson.loads(art.fetch(config_digest))
    current = (config.get("config") or {}).get("Labels") or {}
    if all(current.get(k) == v for k, v in labels.items() if k != CREATED):
        return art, False
    config["config"] = {**(config.get("config") or {}), "Labels": {**current, **labels}}
    new_config = orjson.dumps(config, option=orjson.OPT_SORT_KEYS)
    new_digest = sha256_digest(new_config)
    manifest["config"] = {**manifest["config"], "digest": new_digest, "size": len(new_config)}
    body = orjson.dumps(manifest)
    old_fetch = art.fetch

    def fetch(digest: str) -> bytes:
        return new_config if digest == new_digest else old_fetch(digest)

    blobs = [new_digest if d == config_digest else d for d in art.blob_digests]
    return Artifact(body, art.media_type, [], blobs, fetch), True


def write_layout(directory: Path, manifest: bytes, media_type: str, blobs: list[bytes],
                 ref_name: str | None = None) -> Path:
    """Write an OCI image layout holding ``manifest`` and ``blobs`` (child manifests count as blobs)."""
    root = directory / "blobs" / "sha256"
    root.mkdir(parents=True, exist_ok=True)
    for data in [*blobs, manifest]:
        (root / sha256_digest(data).removeprefix("sha256:")).write_bytes(data)
    desc: dict[str, Any] = {"mediaType": media_type, "digest": sha256_digest(manifest), "size": len(manifest)}
    if ref_name:
        desc["annotations"] = {REF_NAME: ref_name}
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (directory / "index.json").write_bytes(orjson.dumps({"schemaVersion": 2, "manifests": [desc]}))
    return directory
