"""The command line as a user runs it: real processes, real files, exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.fixtures.clean import write_bundle, write_repo

SEED_CANARY = "S3CR3T-CANARY-do-not-leak"


def ks(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubeshape", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300, check=False, env={**os.environ, **(env or {})})


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("clean")
    return write_repo(root / "repo"), write_bundle(root / "bundle")


@pytest.fixture(scope="module")
def demo_json() -> dict:  # type: ignore[type-arg]
    proc = ks("doctor", "--demo", "-o", "json")
    assert proc.returncode == 1, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_demo_reports_all_seven_families_with_seed_evidence(demo_json: dict) -> None:  # type: ignore[type-arg]
    families = {f["family"] for f in demo_json["findings"]}
    assert families == {1, 2, 3, 4, 5, 6, 7}
    for f in demo_json["findings"]:
        assert set(f) >= {"rule", "severity", "family", "object", "file", "line", "message", "evidence", "fix"}
        assert f["evidence"], f"{f['rule']} has no evidence"
    text = json.dumps(demo_json)
    # The demo is a live snapshot: the seed's 461 pull back-offs over 105 minutes cannot be in it.
    for fact in ("asuna", "pesubuntu", "family-assistant:phase2-mcp-logging-fix", "598", "429",
                 "family-assistant-enhanced-hpa", "whisper-hpa", "FailedGetScale", "45 tags", "otel-collector",
                 "revision 62", "100.81.76.55:30500"):
        assert fact in text, fact
    assert demo_json["metrics"]["deployment_success_rate"]["value"] < 95


def test_demo_text_report_reads_like_the_rca() -> None:
    proc = ks("doctor", "--demo")
    assert proc.returncode == 1
    out = proc.stdout
    for title in ("Images", "Manifests", "Pipeline", "Registry", "Stability", "Orphans", "Observability",
                  "Incidents", "Stop the bleeding", "Foundation", "Excellence", "Now vs target"):
        assert title in out, title
    full = ks("doctor", "--demo", "-v").stdout
    assert "Evidence" in full and "Fix" in full and "Root cause" in full


def test_no_secret_value_reaches_any_output() -> None:
    for fmt in ("text", "markdown", "json", "sarif", "html"):
        proc = ks("doctor", "--demo", "-o", fmt, "--verbose")
        assert SEED_CANARY not in proc.stdout + proc.stderr, fmt
        assert "UzNDUjNULUNBTkFSWS" not in proc.stdout  # nor its base64


def test_clean_repo_and_bundle_exit_zero_with_no_findings(clean: tuple[Path, Path]) -> None:
    repo, bundle = clean
    proc = ks("doctor", "--repo", str(repo), "--bundle", str(bundle), "-o", "json")
    report = json.loads(proc.stdout)
    assert [(f["rule"], f["message"]) for f in report["findings"]] == []
    assert proc.returncode == 0


def test_clean_repo_lints_clean(clean: tuple[Path, Path]) -> None:
    repo, _ = clean
    proc = ks("lint", cwd=repo)
    assert proc.returncode == 0, proc.stdout
    assert "No problems found" in proc.stdout


def test_bundle_as_tar_gz_gives_the_same_findings(clean: tuple[Path, Path], tmp_path: Path) -> None:
    repo, bundle = clean
    archive = tmp_path / "bundle.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(bundle, arcname="snapshot")
    a = json.loads(ks("doctor", "--repo", str(repo), "--bundle", str(bundle), "-o", "json").stdout)
    b = json.loads(ks("doctor", "--repo", str(repo), "--bundle", str(archive), "-o", "json").stdout)
    assert a["findings"] == b["findings"]
    assert a["sources"]["cluster"] == b["sources"]["cluster"].replace("bundle.tar.gz", "bundle")


LINT_MANIFEST = """\
apiVersion: v1
kind: Pod
metadata:
  name: app
spec:
  containers:
  - name: app
    image: {image}
"""


@pytest.mark.parametrize(("image", "tag_finding"), [
    ("registry.local:5000/app:1.0", False),
    ("app", True),
    ("app:latest", True),
])
def test_lint_tag_findings(tmp_path: Path, image: str, tag_finding: bool) -> None:
    (tmp_path / "pod.yaml").write_text(LINT_MANIFEST.format(image=image))
    proc = ks("lint", "pod.yaml", "-o", "json", cwd=tmp_path)
    rules = {f["rule"] for f in json.loads(proc.stdout)["findings"]}
    assert ("KS103" in rules) is tag_finding
    if tag_finding:
        assert proc.returncode == 1


def test_broken_yaml_one_line_error_exit_2_and_other_files_still_linted(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(LINT_MANIFEST.format(image="app:latest"))
    (tmp_path / "broken.yaml").write_text("kind: Pod\nmetadata: {name: x\nspec: 1\n")
    proc = ks("lint", ".", "-o", "json", cwd=tmp_path)
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert line.startswith("kubeshape: error: broken.yaml:3:")
    rules = {f["rule"] for f in json.loads(proc.stdout)["findings"]}
    assert {"KS103", "KS209"} <= rules


def test_truncated_bundle_is_a_one_line_error(clean: tuple[Path, Path], tmp_path: Path) -> None:
    _, bundle = clean
    archive = tmp_path / "bundle.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(bundle, arcname=".")
    data = archive.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    proc = ks("doctor", "--bundle", str(cut))
    assert proc.returncode == 2
    assert "cut.tar.gz: truncated or corrupt bundle archive" in one_line_error(proc)


def test_unknown_config_key_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "kubeshape.yaml").write_text("thresholds:\n  restarts_per_dya: 3\n")
    proc = ks("lint", cwd=tmp_path)
    assert proc.returncode == 2
    assert "unknown key 'thresholds.restarts_per_dya'" in one_line_error(proc)


def test_missing_bundle_and_nothing_to_do(tmp_path: Path) -> None:
    proc = ks("doctor", "--bundle", str(tmp_path / "nope.tar.gz"))
    assert proc.returncode == 2 and "bundle not found" in one_line_error(proc)
    proc = ks("doctor", env={"KUBECONFIG": str(tmp_path / "none"), "HOME": str(tmp_path)})
    assert proc.returncode == 2 and "no kubeconfig found" in one_line_error(proc)


UNREACHABLE = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:%d", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t0ps3cret}}]
contexts: [{name: lab, context: {cluster: c, user: u}}]
current-context: lab
"""


def test_unreachable_cluster_exits_3_with_a_clear_message(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(UNREACHABLE % port)
    proc = ks("doctor", "--kubeconfig", str(kubeconfig))
    assert proc.returncode == 3
    line = one_line_error(proc)
    assert f"cannot reach the API server of context 'lab' at https://127.0.0.1:{port}" in line
    assert "t0ps3cret" not in proc.stderr + proc.stdout


def test_usage_error_exit_2() -> None:
    assert ks("doctor", "--demo", "-o", "yaml-ish").returncode == 2
    proc = ks("lint", "--select", "KS999")
    assert proc.returncode == 2 and "unknown rule 'KS999'" in one_line_error(proc)


def test_fail_on_controls_the_exit_code() -> None:
    assert ks("doctor", "--demo", "--fail-on", "never", "-o", "json").returncode == 0
    assert ks("doctor", "--demo", "--fail-on", "error", "-o", "json").returncode == 1


def test_annotation_suppression_and_opt_out(tmp_path: Path) -> None:
    manifest = LINT_MANIFEST.format(image="registry.local:5000/app:latest").replace(
        "  name: app\n", "  name: app\n  annotations:\n    kubeshape.io/ignore: KS103\n")
    (tmp_path / "pod.yaml").write_text(manifest)
    quiet = json.loads(ks("lint", "-o", "json", cwd=tmp_path).stdout)
    assert "KS103" not in {f["rule"] for f in quiet["findings"]}
    assert quiet["summary"]["suppressed"] == 1
    loud = json.loads(ks("lint", "-o", "json", "--no-annotation-ignores", cwd=tmp_path).stdout)
    assert "KS103" in {f["rule"] for f in loud["findings"]}


def test_config_suppression_needs_a_reason_and_applies(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(LINT_MANIFEST.format(image="registry.local:5000/app:latest"))
    (tmp_path / "kubeshape.yaml").write_text("suppressions:\n- rule: KS103\n  object: default/Pod/app\n")
    proc = ks("lint", cwd=tmp_path)
    assert proc.returncode == 2 and "'suppressions.0.reason'" in one_line_error(proc)
    (tmp_path / "kubeshape.yaml").write_text(
        "suppressions:\n- rule: KS103\n  object: default/Pod/app\n  reason: pinned elsewhere\n")
    report = json.loads(ks("lint", "-o", "json", cwd=tmp_path).stdout)
    assert "KS103" not in {f["rule"] for f in report["findings"]}


def test_ignore_flag(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(LINT_MANIFEST.format(image="app:latest"))
    report = json.loads(ks("lint", "-o", "json", "--ignore", "KS1xx", cwd=tmp_path).stdout)
    assert not [f for f in report["findings"] if f["family"] == 1]


def test_sarif_points_at_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(LINT_MANIFEST.format(image="app:latest"))
    sarif = json.loads(ks("lint", "-o", "sarif", cwd=tmp_path).stdout)
    results = sarif["runs"][0]["results"]
    ks103 = next(r for r in results if r["ruleId"] == "KS103")
    loc = ks103["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == "pod.yaml" and loc["region"]["startLine"] == 8


def test_rule_catalog() -> None:
    listing = json.loads(ks("rules", "-o", "json").stdout)
    assert len(listing) >= 25
    assert {r["family"] for r in listing} == {1, 2, 3, 4, 5, 6, 7}
    doc = ks("rule", "ks101")
    assert doc.returncode == 0
    for section in ("What it does", "Why is this bad?", "Example", "Fix"):
        assert section in doc.stdout
    assert ks("rule", "KS999").returncode == 2


def test_report_file_and_html(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    proc = ks("doctor", "--demo", "-o", "html", "--report-file", str(out))
    assert proc.returncode == 1 and proc.stdout == ""
    assert out.read_text().lstrip().lower().startswith("<!doctype html")
