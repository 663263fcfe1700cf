"""JSON that is deep, not numbers, not UTF-8, or not a List; special files; log tails."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kubeshape.sources.bundle import load_bundle
from tests.hostile._bundles import MANIFEST, assert_one_line_error, assert_sane, doctor, pod, pods_list, write_bundle


def deep(levels: int) -> bytes:
    return b'{"kind": "List", "items": [' + b"[" * levels + b"]" * levels + b"]}"


BAD_PODS: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "10,000 levels deep": (deep(10_000), ("pods.json", "nested deeper than 512")),
    "600 levels deep": (deep(600), ("pods.json", "nested deeper than 512", "KUBESHAPE_BUNDLE_MAX_JSON_DEPTH")),
    "NaN": (b'{"kind": "List", "items": [{"status": {"x": NaN}}]}', ("pods.json", "invalid JSON")),
    "Infinity": (b'{"kind": "List", "items": [Infinity]}', ("pods.json", "invalid JSON")),
    "a number too big for a double": (b'{"kind": "List", "items": [1e400]}', ("pods.json", "invalid JSON")),
    "not UTF-8": (b'{"kind": "List", "items": [{"metadata": {"name": "\xff\xfe"}}]}', ("pods.json", "invalid JSON")),
    "UTF-16 with BOM": ('\ufeff{"kind": "List", "items": []}'.encode("utf-16-le"), ("pods.json", "UTF-16")),
    "UTF-16 without BOM": ('{"kind": "List", "items": []}'.encode("utf-16-le"), ("pods.json", "invalid JSON")),
    "a top-level list": (b"[]", ("pods.json", "expected a Kubernetes List", "got a list")),
    "a top-level number": (b"42", ("pods.json", "expected a Kubernetes List", "got an integer")),
    "a top-level string": (b'"pods"', ("pods.json", "got a string")),
    "a top-level null": (b"null", ("pods.json", "got null")),
    "an object without items": (b'{"kind": "PodList"}', ("pods.json", "without 'items'")),
    "an empty file": (b"", ("pods.json", "invalid JSON")),
    "a truncated file": (json.dumps(pods_list(pod())).encode()[:-7], ("pods.json", "invalid JSON")),
    "two documents": (b'{"items": []}{"items": []}', ("pods.json", "invalid JSON")),
}


@pytest.mark.parametrize("case", list(BAD_PODS))
def test_bad_json_is_one_line(tmp_path: Path, case: str) -> None:
    data, needles = BAD_PODS[case]
    root = write_bundle(tmp_path / "b", {"pods.json": data})
    assert_one_line_error(doctor(root, tmp_path), *needles)


@pytest.mark.parametrize(("name", "data", "needle"), [
    ("kubeshape-bundle.json", b"[1, 2]", "(top level): expected an object, got a list"),
    ("kubeshape-bundle.json", b'"Bundle"', "(top level): expected an object, got a string"),
    ("kubeshape-bundle.json", deep(10_000), "nested deeper"),
    ("registry.json", b"[]", "registries"),
    ("registry.json", b'{"registries": [{"host": "r", "repositories": [{"name": "a", "tags": '
                      b'[{"tag": "1", "size": 1e400}]}]}]}', "invalid JSON"),
])
def test_bad_manifest_or_registry(tmp_path: Path, name: str, data: bytes, needle: str) -> None:
    root = write_bundle(tmp_path / "b", {"pods.json": pods_list(pod())})
    (root / name).write_bytes(data)
    assert_one_line_error(doctor(root, tmp_path), name, needle)


def test_deep_but_allowed_and_huge_numbers_in_unread_fields(tmp_path: Path) -> None:
    """Nesting under the limit and integers beyond 64 bits (read as floats) where no rule looks are fine."""
    nested: object = {}
    for _ in range(400):
        nested = {"a": nested}
    item = pod(**{"spec.affinity": nested, "spec.priority": 10**30, "metadata.labels": {"big": "1" * 10_000}})
    root = write_bundle(tmp_path / "b", {"pods.json": pods_list(item)})
    run = doctor(root, tmp_path)
    assert_sane(run)
    assert run.code in (0, 1), run.stderr


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b", {"pods.json": b"\xef\xbb\xbf" + json.dumps(pods_list(pod())).encode()})
    run = doctor(root, tmp_path)
    assert run.code in (0, 1), run.stderr


def test_fifo_named_pods_json_is_skipped_not_opened(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b", {"nodes.json": {"kind": "NodeList", "items": []}})
    os.mkfifo(root / "resources" / "pods.json")
    (root / "logs" / "ns" / "p").mkdir(parents=True)
    os.mkfifo(root / "logs" / "ns" / "p" / "c.log")
    run = doctor(root, tmp_path, timeout=20)
    assert_sane(run, seconds=20)
    assert run.code in (0, 1), run.stderr
    notes = "\n".join(json.loads(run.stdout).get("notes") or [])
    assert "resources/pods.json: a FIFO; skipped" in notes


def test_fifo_as_the_manifest_or_the_bundle(tmp_path: Path) -> None:
    root = tmp_path / "b"
    root.mkdir()
    os.mkfifo(root / "kubeshape-bundle.json")
    assert_one_line_error(doctor(root, tmp_path, timeout=20), "not a kubeshape bundle")
    os.mkfifo(tmp_path / "bundle.tar.gz")
    assert_one_line_error(doctor(tmp_path / "bundle.tar.gz", tmp_path, timeout=20), "not a directory or a regular file")


def test_symlink_to_a_device_is_not_read(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b", {"nodes.json": {"kind": "NodeList", "items": []}})
    (root / "resources" / "pods.json").symlink_to("/dev/zero")
    run = doctor(root, tmp_path, timeout=20)
    assert run.code in (0, 1), run.stderr
    assert "a character device; skipped" in "\n".join(json.loads(run.stdout).get("notes") or [])


def test_wrong_types_in_a_cluster_info_dump(tmp_path: Path) -> None:
    dump = tmp_path / "dump"
    (dump / "shop").mkdir(parents=True)
    (dump / "nodes.json").write_text(json.dumps({"kind": "NodeList", "items": [{"metadata": {"name": "n"}}]}))
    (dump / "shop" / "pods.json").write_text(json.dumps({"kind": "PodList", "items": [pod(status="Running")]}))
    assert_one_line_error(doctor(dump, tmp_path), "shop/pods.json", "items[0].status: expected an object")


def test_only_the_tail_of_a_long_log_is_read(tmp_path: Path) -> None:
    lines = [f"line {i:07d} " + "x" * 50 for i in range(100_000)]  # ~6 MiB
    root = write_bundle(tmp_path / "b", {"pods.json": pods_list(pod())},
                        extra={"logs/d/p/c.log": "\n".join(lines).encode() + b"\n"})
    cluster, _ = load_bundle(root)
    tail = cluster.logs[("d", "p", "c")]
    assert tail == lines[-2000:]


def test_limits_from_the_environment_are_checked(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b", {"pods.json": pods_list(pod())})
    line = assert_one_line_error(doctor(root, tmp_path, env={"KUBESHAPE_BUNDLE_MAX_BYTES": "lots"}),
                                 "KUBESHAPE_BUNDLE_MAX_BYTES")
    assert "positive number" in line
    run = doctor(root, tmp_path, env={"KUBESHAPE_BUNDLE_MAX_BYTES": "1K"})
    assert_one_line_error(run, "more than 1 KiB", "KUBESHAPE_BUNDLE_MAX_BYTES")
    assert MANIFEST["kind"] == "Bundle"
