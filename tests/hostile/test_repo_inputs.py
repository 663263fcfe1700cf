"""Broken and hostile manifests through ``kubeshape lint``: a documented exit code, no traceback, bounded time and
memory, one clear line for what is a real error, and nothing written into the repository."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.hostile._bundles import assert_one_line_error, assert_sane, kubeshape

MANIFEST = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: b\n"


def _write(name: str, data: bytes) -> Callable[[Path], None]:
    def make(repo: Path) -> None:
        (repo / name).write_bytes(data)
    return make


def _fifo(repo: Path) -> None:
    os.mkfifo(repo / "x.yaml")


def _escaping_symlink(repo: Path) -> None:
    (repo.parent / "outside.yaml").write_text(MANIFEST.replace("name: x", "name: outside"))
    (repo / "link.yaml").symlink_to(repo.parent / "outside.yaml")


# name → (how to make it, exit code, text the one stderr line must hold; None: no error expected)
CASES: dict[str, tuple[Callable[[Path], None], int, str | None]] = {
    "10,000-deep flow sequence": (_write("deep.yaml", b"apiVersion: v1\nkind: ConfigMap\ndata:\n  a: "
                                         + b"[" * 10_000 + b"]" * 10_000 + b"\n"), 2, "nesting deeper than"),
    "2,000-deep block mapping": (_write("deep.yaml", b"kind: X\n" + b"".join(b" " * i + b"k:\n"
                                                                          for i in range(2_000))), 2, "nesting"),
    "alias bomb": (_write("bomb.yaml", ("apiVersion: v1\nkind: ConfigMap\ndata:\n  a0: &a0 [x,x,x,x,x,x,x,x,x,x]\n"
                                        + "".join(f"  a{i}: &a{i} [" + ",".join([f"*a{i-1}"] * 10) + "]\n"
                                                  for i in range(1, 10))).encode()), 2, "alias expansion"),
    "not UTF-8": (_write("latin1.yaml", MANIFEST.replace("b\n", "caf\xe9\n").encode("latin-1")), 2, "not UTF-8"),
    "UTF-16 with BOM": (_write("u16.yaml", MANIFEST.encode("utf-16")), 0, None),
    "list document": (_write("list.yaml", b"- a\n- b\n"), 0, None),
    "scalar document": (_write("scalar.yaml", b"just text\n"), 0, None),
    "manifest without kind": (_write("nokind.yaml", b"apiVersion: v1\nmetadata:\n  name: x\n"), 0, None),
    "duplicate keys": (_write("dup.yaml", MANIFEST.encode() + b"  a: c\n"), 0, None),
    "huge integer and NaN": (_write("n.yaml", MANIFEST.encode() + b"  n: " + b"9" * 4000 + b"\n  f: .nan\n"),
                             0, None),
    "integer past Python's digit limit": (_write("n.yaml", MANIFEST.encode() + b"  n: " + b"9" * 5000 + b"\n"),
                                          2, "too large"),
    "FIFO named x.yaml": (_fifo, 0, None),
    "symlink leaving the repository": (_escaping_symlink, 0, None),
    "containers as a mapping": (_write("d.yaml", b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: w\n"
                                                 b"spec:\n  template:\n    spec:\n      containers:\n        name: w\n"
                                                 b"        image: nginx:1\n"), 2, "must be a list"),
    "file over 16 MiB": (_write("big.yaml", MANIFEST.encode() + b"#" * (17 << 20) + b"\n"), 2, "limit"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_lint_survives(name: str, tmp_path: Path) -> None:
    make, code, needle = CASES[name]
    repo = tmp_path / "repo"
    repo.mkdir()
    make(repo)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    run = kubeshape("lint", str(repo), "--select", "KS1,KS2", cwd=tmp_path, timeout=60)
    assert_sane(run, seconds=30)
    assert run.peak_rss_mib < 300, run.peak_rss_mib
    if needle is None:
        assert run.code == code, run.stderr
        assert "outside" not in run.stdout  # the symlinked file was not read
    else:
        assert_one_line_error(run, needle)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written
