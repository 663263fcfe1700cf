"""KS3xx: traceable tags and CI coverage."""

from __future__ import annotations

from pathlib import Path

from kubeshape.inventory import GitSource
from tests.helpers import check, deployment, inventory
from tests.rules.test_manifests import dep_yaml


def test_ks301_meaningless_tag(tmp_path: Path) -> None:
    [f] = check("KS301", inventory(tmp_path, files={"a.yaml": dep_yaml(image="a.io/family-assistant:me-fixed")}))
    assert "'me-fixed' does not name a commit" in f.message
    assert f.line == 13


def test_ks301_traceable_tags_pass(tmp_path: Path) -> None:
    for tag in ("1.4.2", "v1.4.2", "1.4.2-20251117T100000Z.gabc1234", "main-abc1234-1731837600", "sha-abc1234f"):
        inv = inventory(tmp_path, files={"a.yaml": dep_yaml(image=f"a.io/app:{tag}")})
        assert check("KS301", inv) == [], tag


def test_ks301_sha_must_exist_in_git(tmp_path: Path) -> None:
    inv = inventory(tmp_path, files={"a.yaml": dep_yaml(image="family-assistant:main-abc1234-1731837600")})
    inv.git = GitSource(root=str(tmp_path), commits=frozenset({"0123456789abcdef" * 2 + "01234567"}))
    [f] = check("KS301", inv)
    assert "names commit abc1234, which is not in this repository" in f.message
    inv.git = GitSource(root=str(tmp_path), commits=frozenset({"abc1234" + "0" * 33}))
    assert check("KS301", inv) == []


WORKFLOW = """\
on: push
jobs:
  build:
    steps:
      - run: docker build services/homelab-dashboard/ -t ghcr.io/pesuga/homelab/homelab-dashboard:latest
"""


def test_ks302_dockerfile_without_ci(tmp_path: Path) -> None:
    files = {"services/family-assistant-enhanced/Dockerfile": "FROM python:3.12\n",
             "services/homelab-dashboard/Dockerfile": "FROM node:22\n",
             ".github/workflows/homelab-dashboard.yml": WORKFLOW}
    [f] = check("KS302", inventory(tmp_path, files=files))
    assert f.file == "services/family-assistant-enhanced/Dockerfile"
    assert ".github/workflows/homelab-dashboard.yml builds services/homelab-dashboard" in f.evidence
    assert 'paths: ["services/family-assistant-enhanced/**"]' in f.fix


def test_ks302_negative_all_built(tmp_path: Path) -> None:
    files = {"services/homelab-dashboard/Dockerfile": "FROM node:22\n",
             ".github/workflows/homelab-dashboard.yml": WORKFLOW}
    assert check("KS302", inventory(tmp_path, files=files)) == []


def test_ks303_live_image_no_workflow_builds(tmp_path: Path) -> None:
    files = {".github/workflows/homelab-dashboard.yml": WORKFLOW}
    objects = [deployment("family-assistant-backend", "family-assistant:phase2-mcp-logging-fix"),
               deployment("homelab-dashboard", "ghcr.io/pesuga/homelab/homelab-dashboard:latest"),
               deployment("prometheus", "quay.io/prometheus/prometheus:v2.54.1")]
    [f] = check("KS303", inventory(tmp_path, files=files, objects=objects))
    assert f.object is not None and f.object.name == "family-assistant-backend"


def test_ks303_negative(tmp_path: Path) -> None:
    files = {".github/workflows/fa.yml": "run: docker push 100.81.76.55:30500/family-assistant:$TAG\n"}
    objects = [deployment("family-assistant-backend", "100.81.76.55:30500/family-assistant:1.0.0")]
    from tests.helpers import config

    cfg = config("registries: {private: ['100.81.76.55:30500']}")
    assert check("KS303", inventory(tmp_path, files=files, objects=objects), cfg) == []
