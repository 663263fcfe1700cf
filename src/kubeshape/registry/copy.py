"""Copy an image (a manifest or an index with its children, and every blob) from one registry to another."""

from __future__ import annotations

from typing import Any

from kubeshape.registry.client import RegistryClient


def _blobs(manifest: dict[str, Any]) -> list[str]:
    out = []
    config = manifest.get("config")
    if isinstance(config, dict) and isinstance(config.get("digest"), str):
        out.append(config["digest"])
    for layer in manifest.get("layers") or []:
        if isinstance(layer, dict) and isinstance(layer.get("digest"), str):
            out.append(layer["digest"])
    return out


def _copy_manifest(src: RegistryClient, src_repo: str, ref: str, dst: RegistryClient, dst_repo: str,
                   dst_ref: str) -> str:
    m = src.get_manifest(src_repo, ref)
    if m.is_index:
        for child in m.data.get("manifests") or []:
            if isinstance(child, dict) and isinstance(child.get("digest"), str):
                _copy_manifest(src, src_repo, child["digest"], dst, dst_repo, child["digest"])
    else:
        for digest in _blobs(m.data):
            if not dst.blob_exists(dst_repo, digest):  # one blob in memory at a time
                dst.push_blob(dst_repo, src.get_blob(src_repo, digest))
    return dst.put_manifest(dst_repo, dst_ref, m.body, m.media_type)


def copy_image(src: RegistryClient, src_repo: str, ref: str, dst: RegistryClient, dst_repo: str, tag: str) -> str:
    """Copy ``src_repo:ref`` to ``dst_repo:tag`` (children of an index too, blobs the destination lacks);
    returns the manifest digest, the same on both sides."""
    return _copy_manifest(src, src_repo, ref, dst, dst_repo, tag)
