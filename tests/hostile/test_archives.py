"""Broken archives, members that must never be followed, and decompression bombs."""

from __future__ import annotations

import gzip
import json
import tarfile
import uuid
from pathlib import Path

import pytest

from tests.hostile._bundles import (
    MANIFEST,
    assert_one_line_error,
    assert_sane,
    doctor,
    gzip_tar,
    pod,
    pods_list,
    tar_member,
    write_bundle,
)

GOOD = json.dumps(MANIFEST).encode()
PODS = json.dumps(pods_list(pod())).encode()
BOMB_SECONDS = 20
BOMB_RSS_MIB = 300


def packed(tmp_path: Path) -> Path:
    root = write_bundle(tmp_path / "src" / "b", {"pods.json": pods_list(pod())})
    archive = tmp_path / "b.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="b")
    return archive


def test_garbage_with_a_tar_gz_name(tmp_path: Path) -> None:
    (tmp_path / "x.tar.gz").write_bytes(b"\x1f\x8b" + bytes(range(256)) * 40)
    assert_one_line_error(doctor(tmp_path / "x.tar.gz", tmp_path), "x.tar.gz", "corrupt")


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_archive(tmp_path: Path, keep: float) -> None:
    data = packed(tmp_path).read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: int(len(data) * keep)])
    assert_one_line_error(doctor(cut, tmp_path), "cut.tar.gz", "truncated or corrupt")


def test_gzip_of_something_that_is_not_a_tar(tmp_path: Path) -> None:
    gzip_tar(tmp_path / "ok.tar.gz", [])  # valid gzip, empty tar
    raw = tmp_path / "notar.tar.gz"
    raw.write_bytes(gzip.compress(b"hello, not a tar" * 100))
    assert_one_line_error(doctor(raw, tmp_path), "notar.tar.gz")


def test_members_that_must_not_be_followed(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar_member(tar, "b/kubeshape-bundle.json", GOOD)
        tar_member(tar, f"../escaped-{tag}.json", b'{"items": "x"}')
        tar_member(tar, f"/tmp/escaped-{tag}.json", b'{"items": "x"}')
        tar_member(tar, "b/resources/../../escaped.json", b'{"items": "x"}')
        tar_member(tar, "b/resources/pods.json", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        tar_member(tar, "b/resources/nodes.json", type=tarfile.LNKTYPE, linkname="b/kubeshape-bundle.json")
        tar_member(tar, "b/resources/services.json", type=tarfile.CHRTYPE, devmajor=1, devminor=5)
        tar_member(tar, "b/resources/events.json", type=tarfile.FIFOTYPE)
        tar_member(tar, "b/resources/configmaps.json", type=tarfile.BLKTYPE, devmajor=7, devminor=0)
        tar_member(tar, "b/resources/deployments.apps.json", json.dumps(
            {"kind": "DeploymentList", "items": []}).encode())
    before = set(tmp_path.parent.iterdir())
    run = doctor(archive, tmp_path)
    assert_sane(run)
    assert run.code in (0, 1), run.stderr
    report = json.loads(run.stdout)
    notes = "\n".join(report.get("notes") or [])
    for what in ("symbolic link", "hard link", "device or FIFO", "absolute path", "'..'"):
        assert what in notes, notes
    assert set(tmp_path.parent.iterdir()) == before
    assert not Path(f"/tmp/escaped-{tag}.json").exists()
    assert not list(tmp_path.rglob("escaped*"))


def test_too_many_members(tmp_path: Path) -> None:
    archive = tmp_path / "many.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar_member(tar, "kubeshape-bundle.json", GOOD)
        for i in range(150):
            tar_member(tar, f"junk/{i}", b"x")
    line = assert_one_line_error(doctor(archive, tmp_path, env={"KUBESHAPE_BUNDLE_MAX_MEMBERS": "100"}),
                                 "more than 100 files")
    assert "KUBESHAPE_BUNDLE_MAX_MEMBERS" in line


def test_member_declaring_more_than_the_size_limit(tmp_path: Path) -> None:
    """A header that claims 8 GiB stops the read before anything is decompressed."""
    archive = tmp_path / "claims.tar.gz"
    manifest = tarfile.TarInfo("kubeshape-bundle.json")
    manifest.size = len(GOOD)
    claim = tarfile.TarInfo("resources/pods.json")
    claim.size = 8 * 1024**3
    raw = manifest.tobuf(format=tarfile.GNU_FORMAT) + GOOD + bytes(-len(GOOD) % 512)
    archive.write_bytes(gzip.compress(raw + claim.tobuf(format=tarfile.GNU_FORMAT) + PODS))
    run = doctor(archive, tmp_path)
    assert_one_line_error(run, "more than 4 GiB", "KUBESHAPE_BUNDLE_MAX_BYTES")
    assert run.seconds < BOMB_SECONDS


BOMBS = {
    "ignored member": ("b/padding.bin", (2 * 1024**3, b"\0")),
    "pods.json of whitespace": ("b/resources/pods.json", (1024**3, b" ")),
    "log file": ("b/logs/ns/pod/c.log", (1024**3, b"a")),
}


@pytest.mark.parametrize("case", list(BOMBS))
def test_gzip_bomb_stops_fast_in_little_memory(tmp_path: Path, case: str) -> None:
    name, content = BOMBS[case]
    archive = gzip_tar(tmp_path / "bomb.tar.gz", [("b/kubeshape-bundle.json", GOOD), (name, content)])
    assert archive.stat().st_size < 3 * 1024**2
    run = doctor(archive, tmp_path, timeout=BOMB_SECONDS)
    line = assert_one_line_error(run, "bomb.tar.gz", "compressed size")
    assert "KUBESHAPE_BUNDLE_MAX_RATIO" in line
    print(f"bomb {case}: {archive.stat().st_size / 1024**2:.1f} MiB -> {content[0] / 1024**3:.0f} GiB, "
          f"exit {run.code} in {run.seconds:.2f}s, peak RSS {run.peak_rss_mib:.0f} MiB")
    assert run.seconds < BOMB_SECONDS
    assert run.peak_rss_mib < BOMB_RSS_MIB


def test_ordinary_archive_still_loads(tmp_path: Path) -> None:
    run = doctor(packed(tmp_path), tmp_path)
    assert run.code in (0, 1), run.stderr
