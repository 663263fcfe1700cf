"""The pre-commit hook ``kubeshape-lint`` (.pre-commit-hooks.yaml), run by the real pre-commit with the
configuration docs/ci.md shows: pre-commit installs kubeshape from this repository into an environment of its own
and runs the ``kubeshape`` script it installed.

This working tree is committed into a repository of its own at a fixed path under the test-bed cache, with a fixed
author and date: the same tree gives the same commit, so pre-commit (``PRE_COMMIT_HOME`` under the same cache)
builds its environment once per tree. The first run downloads kubeshape's dependencies from PyPI.
(``pre-commit try-repo`` would build a new environment on every run: it always uses a temporary store.)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.binaries import cache_dir
from tests.test_readme_install import copy_checkout

ROOT = Path(__file__).resolve().parents[1]
HOOK_TIMEOUT = 20 * 60  # seconds; the first run creates the environment: dependencies from PyPI
COMMIT_ENV = {"GIT_AUTHOR_NAME": "kubeshape tests", "GIT_AUTHOR_EMAIL": "tests@kubeshape.invalid",
              "GIT_COMMITTER_NAME": "kubeshape tests", "GIT_COMMITTER_EMAIL": "tests@kubeshape.invalid",
              "GIT_AUTHOR_DATE": "2025-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2025-01-01T00:00:00Z"}
CONFIG = 'registries:\n  private: ["registry.example:5000"]\n'
BAD_IMAGE = "family-assistant:phase2"
GOOD_IMAGE = "registry.example:5000/family-assistant:1.2.3"
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: family-assistant
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
          image: IMAGE
"""
OVERLAY = "namespace: homelab\nresources:\n  - ../../base\n"
OVERLAY_RENAMES_IMAGE = OVERLAY + (
    "images:\n  - name: registry.example:5000/family-assistant\n    newName: family-assistant\n    newTag: phase2\n")


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **COMMIT_ENV}
    return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True,
                          timeout=120).stdout.strip()


@pytest.fixture(scope="module")
def hook_repo() -> tuple[Path, str]:
    """This working tree as a git repository at a fixed path, and its commit."""
    src = cache_dir() / "pre-commit-source" / "kubeshape"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    copy_checkout(src)
    assert (src / ".pre-commit-hooks.yaml").is_file()
    git(src, "init", "-q", "-b", "main")
    git(src, "add", "-A")
    git(src, "commit", "-q", "--no-verify", "-m", "kubeshape under test")
    return src, git(src, "rev-parse", "HEAD")


def documented_config(repo: Path, rev: str) -> str:
    """The .pre-commit-config.yaml of docs/ci.md, pointed at ``repo`` and ``rev``."""
    text = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"^```yaml\n(.*?)^```", text, re.M | re.S) if "repos:" in b]
    assert blocks, "docs/ci.md shows no .pre-commit-config.yaml"
    config: dict[str, Any] = yaml.safe_load(blocks[0])
    [entry] = config["repos"]
    assert [h["id"] for h in entry["hooks"]] == ["kubeshape-lint"], entry
    entry["repo"], entry["rev"] = str(repo), rev
    return yaml.safe_dump(config, sort_keys=False)


def pre_commit(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRE_COMMIT_HOME": str(cache_dir() / "pre-commit")}
    return subprocess.run([sys.executable, "-m", "pre_commit", *args], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=HOOK_TIMEOUT, check=False)


def write(repo: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)


def test_hook_blocks_a_commit_that_breaks_a_manifest(hook_repo: tuple[Path, str], tmp_path: Path) -> None:
    src, rev = hook_repo
    repo = tmp_path / "homelab"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo, {
        ".pre-commit-config.yaml": documented_config(src, rev),
        "kubeshape.yaml": CONFIG,
        "README.md": "# homelab\n",
        "k8s/base/deployment.yaml": DEPLOYMENT.replace("IMAGE", BAD_IMAGE),
        "k8s/base/kustomization.yaml": "resources:\n  - deployment.yaml\n",
        "k8s/overlays/prod/kustomization.yaml": OVERLAY,
    })
    git(repo, "add", "-A")
    try:
        bad = pre_commit(repo, "run", "--all-files", "--color", "never")
        out = bad.stdout + bad.stderr
        assert bad.returncode == 1, out
        assert re.search(r"^kubeshape lint\.+Failed$", out, re.M), out
        assert "KS101" in out and "unqualified image" in out, out
        assert "Traceback" not in out, out

        write(repo, {"k8s/base/deployment.yaml": DEPLOYMENT.replace("IMAGE", GOOD_IMAGE)})
        git(repo, "add", "-A")
        good = pre_commit(repo, "run", "--all-files", "--color", "never")
        assert good.returncode == 0, good.stdout + good.stderr
        assert re.search(r"^kubeshape lint\.+Passed$", good.stdout, re.M), good.stdout
        git(repo, "commit", "-q", "--no-verify", "-m", "manifests")

        # A commit that changes no YAML file does not run the hook.
        write(repo, {"README.md": "# homelab\n\nManifests for the cluster.\n"})
        git(repo, "add", "README.md")
        docs = pre_commit(repo, "run", "--color", "never")
        assert docs.returncode == 0, docs.stdout + docs.stderr
        assert re.search(r"^kubeshape lint\.+\(no files to check\)Skipped$", docs.stdout, re.M), docs.stdout
        git(repo, "commit", "-q", "--no-verify", "-m", "readme")

        # Only the overlay's kustomization.yaml is staged, but it renames the image of a Deployment defined in
        # another file: the hook lints the repository as it is deployed, so it catches it.
        write(repo, {"k8s/overlays/prod/kustomization.yaml": OVERLAY_RENAMES_IMAGE})
        git(repo, "add", "k8s/overlays/prod/kustomization.yaml")
        assert git(repo, "diff", "--cached", "--name-only") == "k8s/overlays/prod/kustomization.yaml"
        overlay = pre_commit(repo, "run", "--color", "never")
        assert overlay.returncode == 1, overlay.stdout + overlay.stderr
        assert "KS101" in overlay.stdout, overlay.stdout
        write(repo, {"k8s/overlays/prod/kustomization.yaml": OVERLAY})
        git(repo, "add", "k8s/overlays/prod/kustomization.yaml")

        # Only kubeshape.yaml is staged: it now allows images from ghcr.io only, and the Deployment pulls from
        # registry.example:5000. Linting the changed file alone would pass.
        write(repo, {"kubeshape.yaml": CONFIG + '  allowed: ["ghcr.io"]\n'})
        git(repo, "add", "kubeshape.yaml")
        config = pre_commit(repo, "run", "--color", "never")
        assert config.returncode == 1, config.stdout + config.stderr
        assert "KS107" in config.stdout, config.stdout
    finally:
        # Drop the environments of earlier trees; this tree's stays (its config still exists) for the next run.
        pre_commit(repo, "gc")
