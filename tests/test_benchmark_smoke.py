"""The benchmark generator writes a bundle and repo that kubeshape loads, with work for every rule family.

A correctness smoke test of ``benchmarks/gen_bundle.py`` at a tiny size: no timing assertions (speed is
measured by ``benchmarks/bench_doctor.py`` against a same-process baseline).
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import orjson
import pytest

from kubeshape.analysis import analyse
from kubeshape.config import Config
from kubeshape.inventory import Inventory
from kubeshape.sources.bundle import load_bundle
from kubeshape.sources.repo import load_repo

GEN = Path(__file__).resolve().parents[1] / "benchmarks" / "gen_bundle.py"
SIZE = {"pods": 200, "deployments": 50, "events": 600, "manifests": 30}


def _gen_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kubeshape_bench_gen_bundle", GEN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    _gen_module().generate(out, seed=7, **SIZE)
    return out


def test_bundle_loads_with_expected_counts(generated: Path) -> None:
    cluster, registry = load_bundle(generated / "bundle")
    pods = cluster.objects["Pod"]
    assert len(pods) == SIZE["pods"]
    assert len(cluster.objects["Deployment"]) == SIZE["deployments"]
    assert len(cluster.events) == SIZE["events"]
    # 2-4 ReplicaSets per Deployment, a few with a longer history, a few orphaned
    assert 2 * SIZE["deployments"] <= len(cluster.objects["ReplicaSet"]) <= 13 * SIZE["deployments"]
    assert cluster.objects["Node"] and all(n.status.get("images") for n in cluster.objects["Node"])
    assert cluster.collected_at is not None
    assert cluster.logs and all(lines for lines in cluster.logs.values())
    assert registry is not None and registry.repos
    assert all(t.layers for r in registry.repos.values() for t in r.tags.values())
    # Owner chain Pod → ReplicaSet → Deployment resolves through uids.
    inv = Inventory(cluster=cluster, registry=registry)
    pod = next(p for p in pods if p.owner("ReplicaSet"))
    assert inv.top_workload(pod).kind == "Deployment"
    assert any(p.status.get("containerStatuses") for p in pods)


def test_lists_are_shaped_like_api_responses(generated: Path) -> None:
    doc = orjson.loads((generated / "bundle" / "resources" / "pods.json").read_bytes())
    assert doc["kind"] == "PodList" and doc["apiVersion"] == "v1"
    item = doc["items"][0]
    assert "kind" not in item and "apiVersion" not in item
    assert {"uid", "ownerReferences", "managedFields", "labels"} <= item["metadata"].keys()


def test_repo_has_the_requested_number_of_manifests(generated: Path) -> None:
    repo = load_repo([Path(".")], generated / "repo")
    assert len(repo.yaml_files) == SIZE["manifests"]
    kinds = Counter(o.kind for o in repo.objects)
    assert kinds["Deployment"] and kinds["Service"] and kinds["HorizontalPodAutoscaler"]
    assert repo.errors  # one deliberately broken file
    assert repo.dockerfiles and repo.ci_files


def test_every_rule_family_has_work(generated: Path) -> None:
    cluster, registry = load_bundle(generated / "bundle")
    repo = load_repo([Path(".")], generated / "repo")
    inv = Inventory(repo=repo, cluster=cluster, registry=registry)
    _, result = analyse(inv, Config())
    families = {f.family for f in result.findings}
    assert len(families) >= 5, families
    rules = {f.rule for f in result.findings}
    for expected in ("KS101", "KS103", "KS105", "KS501", "KS601"):
        assert expected in rules, sorted(rules)


def test_generation_is_deterministic(tmp_path: Path, generated: Path) -> None:
    _gen_module().generate(tmp_path, seed=7, **SIZE)
    for rel in ("bundle/resources/pods.json", "bundle/resources/events.json", "bundle/registry.json"):
        assert (tmp_path / rel).read_bytes() == (generated / rel).read_bytes(), rel
