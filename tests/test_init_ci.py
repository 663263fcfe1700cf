"""``kubeshape init ci`` and the GitHub Action: the files a user commits, checked by the real actionlint, their lint
steps run as CI runs them, and the writer's promise (unchanged, refused, overwritten with --force).

actionlint checks workflows, not action metadata: action.yml is checked through a workflow that uses it as a
local action (``uses: ./``), for which actionlint reads action.yml and checks the inputs and outputs used.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from kubeshape import __version__
from kubeshape.cli import init_cmd
from testbed.binaries import binary

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ".github/workflows/kubeshape.yml"
GITLAB = ".gitlab-ci.yml"
CONFIG = 'registries: {private: ["registry.example:5000"]}\n'
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: family-assistant
  namespace: homelab
spec:
  replicas: 1
  selector:
    matchLabels: {app: family-assistant}
  template:
    metadata:
      labels: {app: family-assistant}
    spec:
      containers:
        - name: app
          image: family-assistant:phase2
"""
# What a GitHub-hosted runner runs a `run:` step (and a composite step with `shell: bash`) with.
GITHUB_BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=60).stdout


def git_repo(path: Path, remote: str | None = None, branch: str = "main", manifests: bool = True) -> Path:
    """A new git repository with a kubeshape.yaml and a Deployment running an unqualified image."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", branch)
    if remote:
        git(path, "remote", "add", "origin", remote)
    if manifests:
        (path / "kubeshape.yaml").write_text(CONFIG)
        (path / "k8s").mkdir()
        (path / "k8s" / "deploy.yaml").write_text(DEPLOYMENT)
    return path


def init_ci(repo: Path, *args: str) -> Any:
    result = CliRunner().invoke(init_cmd.app, ["ci", "--dir", str(repo), *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def ks_init(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``kubeshape init ...`` in a real process."""
    return subprocess.run([sys.executable, "-m", "kubeshape", "init", *args],
                          capture_output=True, text=True, timeout=120, check=False, cwd=cwd)


def actionlint(repo: Path, *files: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary("actionlint")), "-no-color", "-oneline", *files], cwd=repo,
                          capture_output=True, text=True, timeout=120, check=False)


def env_with_kubeshape() -> dict[str, str]:
    """The environment with this interpreter's ``python`` and ``kubeshape`` scripts first on PATH."""
    bindir = Path(sys.executable).parent
    if not (bindir / "kubeshape").is_file():
        pytest.fail(f"no kubeshape script in {bindir}: install the package (python3 -m pip install -e '.[test]')")
    return {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}


def steps(workflow: dict[str, Any], job: str) -> list[dict[str, Any]]:
    return list(workflow["jobs"][job]["steps"])


def release_options() -> set[str]:
    from kubeshape.cli.app import app

    command = typer.main.get_command(app).commands["release"]  # type: ignore[attr-defined]
    return {name for p in command.params for name in [*p.opts, *p.secondary_opts]}


def sarif_results(path: Path) -> list[dict[str, Any]]:
    return [r for run in json.loads(path.read_text())["runs"] for r in run["results"]]


# -- the GitHub workflow -------------------------------------------------------------------------------------


def test_generated_workflow_passes_actionlint_and_a_broken_one_fails(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "homelab", remote="https://github.com/me/homelab.git")
    init_ci(repo)
    assert (repo / WORKFLOW).is_file() and not (repo / GITLAB).exists()

    ok = actionlint(repo, WORKFLOW)
    assert ok.returncode == 0 and not ok.stdout.strip(), ok.stdout + ok.stderr

    # The same file with a job name and a context name mistyped: the check really reads the workflow.
    text = (repo / WORKFLOW).read_text()
    assert "needs: lint\n" in text and "vars.KUBESHAPE_IMAGE != ''" in text
    broken = text.replace("needs: lint\n", "needs: lints\n").replace("vars.KUBESHAPE_IMAGE != ''",
                                                                    "var.KUBESHAPE_IMAGE != ''")
    (repo / ".github/workflows/broken.yml").write_text(broken)
    bad = actionlint(repo, ".github/workflows/broken.yml")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert 'needs job "lints" which does not exist' in bad.stdout, bad.stdout
    assert 'undefined variable "var"' in bad.stdout, bad.stdout


def test_workflow_uploads_sarif_even_with_findings_then_fails_the_job(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "homelab")
    init_ci(repo, "--github", "--no-gitlab")
    workflow = yaml.safe_load((repo / WORKFLOW).read_text())
    assert workflow[True]["pull_request"] is None  # PyYAML reads the key `on` as True
    lint = workflow["jobs"]["lint"]
    assert lint["permissions"] == {"contents": "read", "security-events": "write"}
    order = lint["steps"]
    upload = next(s for s in order if s.get("uses", "").startswith("github/codeql-action/upload-sarif@v3"))
    sarif_step, gate = (s for s in order if s.get("run", "").startswith("kubeshape lint"))
    # The SARIF report, its upload (whatever happened before), then the step that fails the job.
    assert order.index(sarif_step) < order.index(upload) < order.index(gate)
    assert upload["if"].startswith("always()"), upload
    assert f"python -m pip install \"kubeshape=={__version__}\"" in [s.get("run") for s in lint["steps"]]

    # The two lint steps, run as the runner runs them, on a repository with an unqualified image.
    env = env_with_kubeshape()
    first = subprocess.run([*GITHUB_BASH, sarif_step["run"]], cwd=repo, env=env, capture_output=True, text=True,
                           timeout=300, check=False)
    assert first.returncode == 0, first.stderr  # findings do not stop the report
    report = repo / upload["with"]["sarif_file"]
    assert {r["ruleId"] for r in sarif_results(report)} >= {"KS101"}
    last = subprocess.run([*GITHUB_BASH, gate["run"]], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert last.returncode == 1, last.stdout + last.stderr
    assert "KS101" in last.stdout and "family-assistant" in last.stdout, last.stdout


def test_release_job_runs_on_pushes_to_the_default_branch_with_secrets_from_the_repository(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "homelab", branch="master")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "manifests")
    git(repo, "checkout", "-q", "-b", "feature")  # run from a topic branch: releases still go from master
    init_ci(repo, "--github")
    text = (repo / WORKFLOW).read_text()
    workflow = yaml.safe_load(text)
    assert workflow[True]["push"] == {"branches": ["master"]}  # the repository's branch, not a guess
    release = workflow["jobs"]["release"]
    assert release["needs"] == "lint" and release["permissions"] == {"contents": "write"}
    assert "github.event_name == 'push'" in release["if"]
    checkout = next(s for s in release["steps"] if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0  # the tag comes from git history and tags
    login = next(s for s in release["steps"] if "docker login" in s.get("run", ""))
    assert login["env"] == {"REGISTRY_USERNAME": "${{ secrets.REGISTRY_USERNAME }}",
                            "REGISTRY_PASSWORD": "${{ secrets.REGISTRY_PASSWORD }}"}
    assert "--password-stdin" in login["run"] and "$REGISTRY_PASSWORD" in login["run"]
    script = next(s["run"] for s in release["steps"] if "kubeshape release" in s.get("run", ""))
    used = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", script))
    assert {"--image", "--push"} <= used and used <= release_options(), used - release_options()
    assert 'git push origin "HEAD:$GITHUB_REF_NAME"' in script


# -- the GitLab pipeline -------------------------------------------------------------------------------------


def test_gitlab_pipeline_has_the_lint_and_release_jobs_and_its_lint_lines_work(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "homelab", remote="git@gitlab.com:me/homelab.git")
    out = init_ci(repo).stdout
    assert (repo / GITLAB).is_file() and not (repo / WORKFLOW).exists(), out  # chosen from the remote
    pipeline = yaml.safe_load((repo / GITLAB).read_text())
    assert pipeline["stages"] == ["lint", "release"]
    assert pipeline["variables"]["KUBESHAPE_VERSION"] == __version__
    jobs = {k: v for k, v in pipeline.items() if isinstance(v, dict) and "script" in v}
    assert set(jobs) == {"kubeshape-lint", "kubeshape-release"}
    assert all(j["stage"] in pipeline["stages"] for j in jobs.values())

    lint = jobs["kubeshape-lint"]
    assert {"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'} in lint["rules"]
    assert lint["artifacts"]["when"] == "always" and lint["artifacts"]["paths"] == ["kubeshape.sarif"]
    release = jobs["kubeshape-release"]
    assert release["rules"] == [{"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $KUBESHAPE_IMAGE"}]
    assert release["needs"] == ["kubeshape-lint"] and release["variables"]["GIT_DEPTH"] == "0"
    script = [*release["before_script"], *release["script"]]
    assert any("--password-stdin" in line and "$REGISTRY_PASSWORD" in line for line in script)
    used = {t for line in script if re.search(r"set --|kubeshape release", line)
            for t in re.findall(r"(?<![\w-])--[a-z][\w-]*", line)}
    assert {"--image", "--push"} <= used and used <= release_options(), used - release_options()

    # The lint job's kubeshape lines, each as the runner's shell runs it.
    env = env_with_kubeshape()
    codes = []
    for line in lint["script"]:
        if line.startswith("kubeshape "):
            proc = subprocess.run(["sh", "-c", line], cwd=repo, env=env, capture_output=True, text=True,
                                  timeout=300, check=False)
            codes.append(proc.returncode)
    assert codes == [0, 1]  # the report is written whatever it finds; then the job fails on the findings
    assert {r["ruleId"] for r in sarif_results(repo / "kubeshape.sarif")} >= {"KS101"}


# -- choosing, idempotency and errors ------------------------------------------------------------------------


@pytest.mark.parametrize(("remote", "args", "expected"), [
    (None, [], {WORKFLOW}),
    ("https://github.com/me/homelab.git", [], {WORKFLOW}),
    ("https://gitlab.example.com/me/homelab.git", [], {GITLAB}),
    (None, ["--gitlab"], {GITLAB}),
    (None, ["--no-github"], {GITLAB}),
    (None, ["--github", "--gitlab"], {WORKFLOW, GITLAB}),
])
def test_which_files_are_written(tmp_path: Path, remote: str | None, args: list[str], expected: set[str]) -> None:
    repo = git_repo(tmp_path / "homelab", remote=remote)
    out = init_ci(repo, *args).stdout
    written = {p for p in (WORKFLOW, GITLAB) if (repo / p).exists()}
    assert written == expected
    for p in expected:
        assert f"created: {repo / p}" in out, out


def test_second_run_is_unchanged_an_edit_is_kept_until_force(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "homelab")
    first = ks_init("ci", "--github", "--gitlab", cwd=repo)
    assert first.returncode == 0, first.stderr
    assert "created: .github/workflows/kubeshape.yml" in first.stdout and "created: .gitlab-ci.yml" in first.stdout
    assert "kubeshape.yaml found" in first.stdout and "Next steps:" in first.stdout
    generated = (repo / WORKFLOW).read_text()

    again = ks_init("ci", "--github", "--gitlab", cwd=repo)
    assert again.returncode == 0, again.stderr
    assert "unchanged: .github/workflows/kubeshape.yml" in again.stdout
    assert "unchanged: .gitlab-ci.yml" in again.stdout

    edited = generated.replace("--fail-on warning", "--fail-on error")
    (repo / WORKFLOW).write_text(edited)
    refused = ks_init("ci", "--github", "--gitlab", cwd=repo)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    lines = [ln for ln in refused.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert lines[0].startswith("kubeshape: error: .github/workflows/kubeshape.yml exists with other content")
    assert "--force" in lines[0]
    assert (repo / WORKFLOW).read_text() == edited  # the user's edit is untouched

    forced = ks_init("ci", "--github", "--gitlab", "--force", cwd=repo)
    assert forced.returncode == 0, forced.stderr
    assert "overwritten (--force): .github/workflows/kubeshape.yml" in forced.stdout
    assert "unchanged: .gitlab-ci.yml" in forced.stdout
    assert (repo / WORKFLOW).read_text() == generated


def test_without_kubeshape_yaml_it_says_lint_uses_the_defaults(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "homelab", manifests=False)
    out = init_ci(repo).stdout
    assert f"no kubeshape.yaml in {repo}" in out and "kubeshape.yaml found" not in out


@pytest.mark.parametrize(("where", "args", "message"), [
    ("sub", [], "is inside the git repository"),
    ("missing", [], "no such directory"),
    (".", ["--no-github", "--no-gitlab"], "leave nothing to write"),
])
def test_errors_are_one_line_exit_2(tmp_path: Path, where: str, args: list[str], message: str) -> None:
    repo = git_repo(tmp_path / "homelab")
    (repo / "sub").mkdir()
    proc = ks_init("ci", "--dir", where, *args, cwd=repo)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert not (repo / ".github").exists() and not (repo / where / ".github").exists()


# -- the GitHub Action (action.yml) --------------------------------------------------------------------------


def action() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "action.yml").read_text())  # type: ignore[no-any-return]


def test_action_inputs_used_exist_and_every_input_is_used() -> None:
    meta = action()
    assert meta["runs"]["using"] == "composite"
    text = (ROOT / "action.yml").read_text()
    used = set(re.findall(r"\binputs\.([A-Za-z_][\w-]*)", text))
    declared = set(meta["inputs"])
    assert used == declared, (used, declared)
    step_ids = {s["id"] for s in meta["runs"]["steps"] if "id" in s}
    for name, out in meta["outputs"].items():
        ref = re.fullmatch(r"\$\{\{ steps\.([\w-]+)\.outputs\.([\w-]+) \}\}", out["value"])
        assert ref and ref.group(1) in step_ids and ref.group(2) == name, out
    install = next(s for s in meta["runs"]["steps"] if s.get("name") == "Install kubeshape")
    assert install["env"]["ACTION_PATH"] == "${{ github.action_path }}"  # the action's own code by default


def test_workflow_using_the_action_passes_actionlint_and_a_wrong_input_fails(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "uses-action", manifests=False)
    (repo / "action.yml").write_text((ROOT / "action.yml").read_text())
    inputs = {name: "x" for name in action()["inputs"]}
    workflow = {
        "name": "lint", "on": {"pull_request": None},
        "jobs": {"lint": {"runs-on": "ubuntu-latest", "permissions": {"contents": "read", "security-events": "write"},
                          "steps": [{"uses": "actions/checkout@v4"},
                                    {"id": "kubeshape", "uses": "./", "with": inputs},
                                    {"if": "always()", "uses": "github/codeql-action/upload-sarif@v3",
                                     "with": {"sarif_file": "${{ steps.kubeshape.outputs.sarif-file }}"}},
                                    {"run": "echo \"$FINDINGS findings\"",
                                     "env": {"FINDINGS": "${{ steps.kubeshape.outputs.findings }}"}}]}}}
    path = repo / ".github/workflows/lint.yml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(workflow, sort_keys=False))
    ok = actionlint(repo, ".github/workflows/lint.yml")
    assert ok.returncode == 0 and not ok.stdout.strip(), ok.stdout + ok.stderr

    workflow["jobs"]["lint"]["steps"][1]["with"] = {**inputs, "fail_on": "error"}  # type: ignore[index]
    path.write_text(yaml.safe_dump(workflow, sort_keys=False))
    bad = actionlint(repo, ".github/workflows/lint.yml")
    assert bad.returncode == 1 and 'input "fail_on" is not defined' in bad.stdout, bad.stdout + bad.stderr


def _run_action_lint_step(repo: Path, given: dict[str, str], tmp_path: Path) -> tuple[
        subprocess.CompletedProcess[str], dict[str, str]]:
    """The action's lint step, run as the runner runs it: inputs (defaults, then ``given``) put into its env."""
    meta = action()
    values = {name: str(spec.get("default", "")) for name, spec in meta["inputs"].items()} | given
    step = next(s for s in meta["runs"]["steps"] if s.get("id") == "lint")
    assert step["shell"] == "bash"
    env = env_with_kubeshape()
    for key, value in step["env"].items():
        resolved = re.sub(r"\$\{\{ inputs\.([\w-]+) \}\}", lambda m: values[m.group(1)], value)
        assert "${{" not in resolved, value
        env[key] = resolved
    outputs = tmp_path / "github-output"
    outputs.write_text("")
    env["GITHUB_OUTPUT"] = str(outputs)
    proc = subprocess.run([*GITHUB_BASH, step["run"]], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    found = dict(line.split("=", 1) for line in outputs.read_text().splitlines() if "=" in line)
    return proc, found


def test_action_lint_step_writes_sarif_and_outputs_then_fails_on_findings(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "homelab")
    proc, outputs = _run_action_lint_step(repo, {}, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "KS101" in proc.stdout, proc.stdout
    assert set(outputs) == set(action()["outputs"])
    results = sarif_results(repo / outputs["sarif-file"])
    assert outputs["sarif-file"] == "kubeshape.sarif" and int(outputs["findings"]) == len(results) > 0


def test_action_lint_step_takes_paths_config_and_fail_on(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "homelab")
    (repo / "apps").mkdir()
    (repo / "apps" / "other.yaml").write_text(DEPLOYMENT.replace("family-assistant", "whisper"))
    (repo / "ci.yaml").write_text(CONFIG)
    (repo / "kubeshape.yaml").unlink()
    given = {"path": "k8s apps", "fail-on": "never", "config": "ci.yaml", "sarif-file": "ks.sarif"}
    proc, outputs = _run_action_lint_step(repo, given, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = sarif_results(repo / "ks.sarif")
    images = {r["message"]["text"] for r in results if r["ruleId"] == "KS101"}
    assert any("whisper" in m for m in images) and any("family-assistant" in m for m in images), images
    assert outputs == {"sarif-file": "ks.sarif", "findings": str(len(results))}
