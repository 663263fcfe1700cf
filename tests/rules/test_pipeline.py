"""KS3xx: traceable tags and CI coverage."""

from __future__ import annotations

from pathlib import Path

from kubeshape.inventory import GitSource
from tests.helpers import check, config, deployment, inventory
from tests.rules.test_manifests import dep_yaml

WORKFLOW = """\
on: push
jobs:
  build:
    steps:
      - run: docker build services/homelab-dashboard/ -t ghcr.io/pesuga/homelab/homelab-dashboard:latest
"""
PRIVATE = "registries: {private: ['100.81.76.55:30500']}"


def test_ks301_meaningless_tag_of_a_private_registry_image(tmp_path: Path) -> None:
    inv = inventory(tmp_path, files={"a.yaml": dep_yaml(image="100.81.76.55:30500/family-assistant:fixed-final")})
    [f] = check("KS301", inv, config(PRIVATE))
    assert "'fixed-final' does not name a commit" in f.message
    assert f.line == 13
    assert check("KS301", inv) == []  # neither a private registry nor CI: whose image it is cannot be told


def test_ks301_traceable_tags_pass(tmp_path: Path) -> None:
    for tag in ("1.4.2", "v1.4.2", "1.4.2-20251117T100000Z.gabc1234", "main-abc1234-1731837600", "sha-abc1234f"):
        inv = inventory(tmp_path, files={"a.yaml": dep_yaml(image=f"100.81.76.55:30500/app:{tag}")})
        assert check("KS301", inv, config(PRIVATE)) == [], tag


def test_ks301_ignores_third_party_and_digest_pinned_images(tmp_path: Path) -> None:
    ci = {".github/workflows/ci.yml": (
        "jobs:\n  test:\n    services:\n      redis:\n        image: redis:alpine\n    steps:\n"
        "      - run: docker pull ghcr.io/home-assistant/home-assistant:2024.1\n"
        "      - run: docker push 100.81.76.55:30500/family-assistant:$TAG\n")}
    for image in ("redis:alpine", "ghcr.io/home-assistant/home-assistant:2024.1",
                  "100.81.76.55:30500/family-assistant:fixed-final@sha256:" + "a" * 64):
        inv = inventory(tmp_path, files={"a.yaml": dep_yaml(image=image), **ci})
        assert check("KS301", inv, config(PRIVATE)) == [], image


def test_ks301_images_the_ci_builds_are_your_own(tmp_path: Path) -> None:
    files = {"a.yaml": dep_yaml(image="ghcr.io/pesuga/homelab/homelab-dashboard:fixed"),
             "services/homelab-dashboard/Dockerfile": "FROM node:22\n", ".github/workflows/dash.yml": WORKFLOW}
    [f] = check("KS301", inventory(tmp_path, files=files))
    assert "'fixed' does not name a commit" in f.message


def test_ks301_sha_must_exist_in_git(tmp_path: Path) -> None:
    files = {"a.yaml": dep_yaml(image="family-assistant:main-abc1234-1731837600"),
             ".github/workflows/fa.yml": "steps:\n  - run: docker build -t family-assistant:$TAG .\n"}
    inv = inventory(tmp_path, files=files)
    inv.git = GitSource(root=str(tmp_path), commits=frozenset({"0123456789abcdef" * 2 + "01234567"}))
    [f] = check("KS301", inv)
    assert "names commit abc1234, which is not in this repository" in f.message
    inv.git = GitSource(root=str(tmp_path), commits=frozenset({"abc1234" + "0" * 33}))
    assert check("KS301", inv) == []


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
    files = {".github/workflows/homelab-dashboard.yml": WORKFLOW, "services/family-assistant/Dockerfile": "FROM x\n"}
    objects = [deployment("family-assistant-backend", "family-assistant:phase2-mcp-logging-fix"),
               deployment("cache", "redis:7.4"),  # unqualified, but nothing says it is ours
               deployment("homelab-dashboard", "ghcr.io/pesuga/homelab/homelab-dashboard:latest"),
               deployment("prometheus", "quay.io/prometheus/prometheus:v2.54.1")]
    [f] = check("KS303", inventory(tmp_path, files=files, objects=objects))
    assert f.object is not None and f.object.name == "family-assistant-backend"


def test_ks303_negative(tmp_path: Path) -> None:
    files = {".github/workflows/fa.yml": "run: docker push 100.81.76.55:30500/family-assistant:$TAG\n"}
    objects = [deployment("family-assistant-backend", "100.81.76.55:30500/family-assistant:1.0.0")]
    cfg = config("registries: {private: ['100.81.76.55:30500']}")
    assert check("KS303", inventory(tmp_path, files=files, objects=objects), cfg) == []


def test_ks301_unqualified_image_of_a_repository_deployed_from_the_private_registry_is_ours(tmp_path: Path) -> None:
    files = {"a.yaml": dep_yaml(name="a", image="100.81.76.55:30500/family-assistant:1.4.2"),
             "b.yaml": dep_yaml(name="b", image="family-assistant:fixed"),
             "c.yaml": dep_yaml(name="c", image="redis:fixed")}
    inv = inventory(tmp_path, files=files)
    found = check("KS301", inv, config('registries: {private: ["100.81.76.55:30500"]}'))
    assert [(f.file, f.object.name if f.object else "") for f in found] == [("b.yaml", "b")]
