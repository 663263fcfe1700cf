"""Write a collection (and optionally a registry snapshot) as a bundle: format version 1."""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from kubeshape import __version__
from kubeshape.errors import InputError
from kubeshape.redact import redact_text
from kubeshape.sources.bundle import FORMAT_VERSION, MANIFEST, compact_managed_fields, redact_item, strip_secret
from kubeshape.sources.live import Collection, keep_rule_files
from kubeshape.timeutil import format_time


def bundle_members(col: Collection, registry: dict[str, Any] | None = None) -> dict[str, bytes]:
    """Bundle file name → bytes. Everything written passes the redactor again (objects in place, idempotent):
    a bundle holds no secret value whatever collected it. managedFields are written compacted, as they are read."""
    members: dict[str, bytes] = {}
    resources = {}
    for spec, doc in sorted(col.lists.items(), key=lambda kv: kv[0].file_stem):
        name = f"resources/{spec.file_stem}.json"
        resources[spec.key] = name
        items = doc.get("items") or []
        doc["items"] = [(strip_secret(i) if spec.kind == "Secret" else keep_rule_files(i) if spec.kind == "ConfigMap"
                         else _compacted(redact_item(i))) if isinstance(i, dict) else i for i in items]
        members[name] = orjson.dumps(doc)
    for (ns, pod, container), text in sorted(col.logs.items()):
        members[f"logs/{ns}/{pod}/{container}.log"] = redact_text(text).encode()
    if registry is not None:
        members["registry.json"] = orjson.dumps(registry, option=orjson.OPT_INDENT_2)
    manifest = {
        "apiVersion": "kubeshape.io/v1", "kind": "Bundle", "formatVersion": FORMAT_VERSION,
        "collectedAt": format_time(col.collected_at), "generator": f"kubeshape {__version__}",
        "cluster": {"name": col.context, "serverVersion": col.server_version},
        "namespaces": col.namespaces or "all", "resources": resources,
        "blindSpots": [{"kind": k, "reason": redact_text(r)} for k, r in col.blind_spots],
        "notes": [redact_text(n) for n in col.notes],
    }
    members[MANIFEST] = orjson.dumps(manifest, option=orjson.OPT_INDENT_2)
    return members


def _compacted(item: dict[str, Any]) -> dict[str, Any]:
    meta = item.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        meta["managedFields"] = compact_managed_fields(meta["managedFields"])
    return item


def write_bundle(path: Path, members: dict[str, bytes]) -> Path:
    """Write ``members`` atomically as a .tar.gz (or a directory when ``path`` has no archive suffix)."""
    if path.name.endswith((".tar.gz", ".tgz")):
        tmp_fd, tmp_name = tempfile.mkstemp(prefix=".kubeshape-", suffix=".tar.gz", dir=path.parent or ".")
        try:
            with os.fdopen(tmp_fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
                for name in [MANIFEST, *sorted(n for n in members if n != MANIFEST)]:
                    info = tarfile.TarInfo(name)
                    info.size, info.mtime, info.mode = len(members[name]), int(time.time()), 0o644
                    tar.addfile(info, io.BytesIO(members[name]))
            os.replace(tmp_name, path)
        except OSError as exc:
            Path(tmp_name).unlink(missing_ok=True)
            raise InputError(f"{path}: cannot write bundle ({exc.strerror})") from None
        return path
    if path.exists() and any(path.iterdir()):
        raise InputError(f"{path}: directory exists and is not empty -- choose a new path or a .tar.gz name")
    for name, data in members.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return path
