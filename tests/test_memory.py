"""A long-lived process gets its memory back: loading and analysing the same inputs again and again (a server,
a script using kubeshape as a library, commands invoked in-process) does not grow the heap."""

from __future__ import annotations

import gc
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

import kubeshape
from kubeshape.analysis import analyse
from kubeshape.cli.app import app
from kubeshape.config import Config
from kubeshape.inventory import Inventory
from kubeshape.sources.bundle import load_bundle
from kubeshape.sources.repo import load_repo

DEMO = Path(kubeshape.__file__).parent / "demo"
RUNS = 4


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo repository with a manifest that does not parse, as real repositories have (a half-made edit)."""
    root = tmp_path_factory.mktemp("repo") / "repo"
    shutil.copytree(DEMO / "repo", root)
    (root / "half-edited.yaml").write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: half-edited\n"
                                          "spec:\n  template:\n    spec:\n      containers: [\n        {name: app\n")
    return root


def _analyser(repo: Path) -> Callable[[], object]:
    def run() -> object:
        cluster, registry = load_bundle(DEMO / "bundle")
        source = load_repo([Path(".")], repo)
        assert source.errors, "the broken file is reported"
        return analyse(Inventory(repo=source, cluster=cluster, registry=registry), Config())
    return run


def _growth(run: Callable[[], object]) -> tuple[int, int]:
    """(memory blocks one run's result holds, blocks still held after ``RUNS`` more runs were dropped). Two runs
    first, so bounded caches (parsed image references, compiled patterns) are warm."""
    run()
    run()
    gc.collect()
    before = sys.getallocatedblocks()
    kept = run()
    held = sys.getallocatedblocks() - before
    del kept
    for _ in range(RUNS):
        run()
    gc.collect()
    return held, sys.getallocatedblocks() - before


def test_loading_and_analysing_again_does_not_grow_the_heap(repo: Path) -> None:
    held, grown = _growth(_analyser(repo))
    assert held > 10_000  # the demo's inventory and report are a real allocation, so a leak would show
    assert grown < held // 20, f"{RUNS} more loads left {grown} blocks behind (one result holds {held})"


def test_doctor_invoked_in_process_does_not_grow_the_heap(repo: Path) -> None:
    runner = CliRunner()

    def doctor() -> object:
        result = runner.invoke(app, ["doctor", "--repo", str(repo), "--bundle", str(DEMO / "bundle"),
                                     "-o", "json"])
        assert result.exit_code == 2, result.output  # the report, then the file that did not parse
        assert '"rule": "KS101"' in result.stdout
        return result

    _, grown = _growth(doctor)
    held, _ = _growth(_analyser(repo))
    assert grown < held // 20, f"{RUNS} in-process doctor runs left {grown} blocks behind"


def test_the_command_line_still_exits_with_its_report() -> None:
    """The console script keeps what it loaded until it exits (no collection rescans it): same report."""
    proc = subprocess.run([sys.executable, "-m", "kubeshape", "doctor", "--demo", "-o", "json"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1, proc.stderr
    in_process = CliRunner().invoke(app, ["doctor", "--demo", "-o", "json"])

    def strip(text: str) -> str:
        return "\n".join(line for line in text.splitlines() if '"generatedAt"' not in line)

    assert strip(proc.stdout) == strip(in_process.output)
