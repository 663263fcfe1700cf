"""The corpus of real repository shapes (tests/corpus/*): each gives exactly its expected findings.

Every corpus repository is copied to a temporary directory (outside this project's git repository, as a user's
clone would be) and linted by a real ``kubeshape lint`` process started from another working directory. Its
``expected.json`` lists the exit code, every finding as ``RULE file:line`` — no more, no fewer — and the notes and
the "not analysed" list, exactly. ``KUBESHAPE_UPDATE_GOLDEN=1`` rewrites the golden files from the
current output (review the diff: each CORPUS.md says what should and should not be reported, and why).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from testbed.binaries import binary

CORPUS = Path(__file__).parent / "corpus"
REPOS = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def helm_path() -> str:
    """PATH with the test bed's helm first: local charts are rendered with ``helm template``."""
    return f"{binary('helm').parent}{os.pathsep}{os.environ.get('PATH', '')}"


def _lint(repo: Path, path: str) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run([sys.executable, "-m", "kubeshape", "lint", str(repo), "-o", "json"],
                          capture_output=True, text=True, cwd="/", timeout=300, check=False,
                          env={**os.environ, "PATH": path})
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def _summary(code: int, report: dict[str, Any]) -> dict[str, Any]:
    return {
        "exit": code,
        "findings": sorted(f"{f['rule']} {f['file'] or '-'}:{f['line'] or '-'}" for f in report["findings"]),
        "notes": report["notes"],
        "not_analysed": report["blindSpots"],
    }


@pytest.mark.parametrize("name", REPOS)
def test_corpus_repository(name: str, tmp_path: Path, helm_path: str) -> None:
    repo = tmp_path / name
    shutil.copytree(CORPUS / name, repo, symlinks=True)
    code, report, stderr = _lint(repo, helm_path)
    got = _summary(code, report)
    golden = CORPUS / name / "expected.json"
    if os.environ.get("KUBESHAPE_UPDATE_GOLDEN"):
        golden.write_text(json.dumps({**got, "notes": sorted(got["notes"]),
                                      "not_analysed": sorted(got["not_analysed"])}, indent=2) + "\n")
    want = json.loads(golden.read_text())
    assert code in (0, 1), f"lint must not fail on a real repository shape: {stderr}"
    assert got["exit"] == want["exit"], stderr
    assert got["findings"] == want["findings"]
    assert sorted(got["notes"]) == want["notes"]
    assert sorted(got["not_analysed"]) == want["not_analysed"]
