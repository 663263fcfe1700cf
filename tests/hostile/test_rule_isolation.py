"""A rule that raises becomes a KS000 finding; the other rules still report and the CLI exits 2."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeshape.cli.app import main
from kubeshape.config import Config
from kubeshape.engine import run
from kubeshape.findings import Finding, Severity
from kubeshape.inventory import Inventory
from kubeshape.rules import base
from kubeshape.sources.bundle import load_bundle
from tests.hostile._bundles import pod, pods_list, write_bundle

BROKEN = "KS501"


@pytest.fixture
def broken_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    base.all_rules()
    good = base.REGISTRY[BROKEN]

    def boom(ctx: base.Context) -> Iterator[Finding]:
        yield from good.func(ctx)  # whatever it found before failing is dropped: no half-counted findings
        raise ValueError("restartCount\nsecond line")

    monkeypatch.setitem(base.REGISTRY, BROKEN, dataclasses.replace(good, func=boom))


def bundle(tmp_path: Path) -> Path:
    return write_bundle(tmp_path / "b", {"pods.json": pods_list(pod(**{"spec.containers": [
        {"name": "c", "image": "app"}]}))})  # an unqualified, untagged image: KS1xx findings


def test_engine_records_ks000_and_runs_the_others(tmp_path: Path, broken_rule: None) -> None:
    cluster, registry = load_bundle(bundle(tmp_path))
    result = run(Inventory(cluster=cluster, registry=registry), Config())
    errors = [f for f in result.findings if f.rule == "KS000"]
    assert len(errors) == 1
    assert errors[0].severity is Severity.ERROR and errors[0].object is None
    assert errors[0].message == f"internal error in rule {BROKEN}: ValueError: restartCount second line"
    assert BROKEN in result.rules_run
    assert any(f.rule.startswith("KS1") for f in result.findings)
    assert not any(f.rule == BROKEN for f in result.findings)


def test_cli_exits_2_with_the_report(tmp_path: Path, broken_rule: None, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["kubeshape", "doctor", "--bundle", str(bundle(tmp_path)), "-o", "json"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert [f["rule"] for f in report["findings"] if f["rule"] == "KS000"] == ["KS000"]
    assert any(f["rule"].startswith("KS1") for f in report["findings"])
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and f"internal error in rule {BROKEN}" in lines[0], err
    assert "Traceback" not in out + err


@pytest.mark.parametrize("fmt", ["text", "markdown", "sarif", "html"])
def test_every_format_renders_ks000(tmp_path: Path, broken_rule: None, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["kubeshape", "doctor", "--bundle", str(bundle(tmp_path)), "-o", fmt])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    assert "KS000" in capsys.readouterr().out
