"""Bundle limits can be set in kubeshape.yaml (``limits:``); the environment still wins."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.clean import write_bundle
from tests.hostile._bundles import assert_one_line_error, assert_sane, kubeshape


def test_limit_from_kubeshape_yaml_applies_and_is_named(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "bundle")
    cfg = tmp_path / "kubeshape.yaml"
    cfg.write_text("limits:\n  bundle_max_members: 2\n")
    run = kubeshape("doctor", "--bundle", str(bundle), "--config", str(cfg), "-o", "json", cwd=tmp_path)
    assert_one_line_error(run, "more than 2 files", "limits.bundle_max_members in kubeshape.yaml")
    # the environment overrides the file: the same bundle loads
    run = kubeshape("doctor", "--bundle", str(bundle), "--config", str(cfg), "-o", "json", cwd=tmp_path,
                    env={"KUBESHAPE_BUNDLE_MAX_MEMBERS": "1000"})
    assert_sane(run)
    assert run.code in (0, 1), run.stderr


def test_a_bad_limit_in_kubeshape_yaml_is_one_line(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "bundle")
    cfg = tmp_path / "kubeshape.yaml"
    cfg.write_text("limits:\n  bundle_max_bytes: lots\n")
    run = kubeshape("doctor", "--bundle", str(bundle), "--config", str(cfg), "-o", "json", cwd=tmp_path)
    assert_one_line_error(run, "limits.bundle_max_bytes", "K, M or G")
