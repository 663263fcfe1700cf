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
from typing import Any

import orjson
import pytest
import yaml

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


# -- benchmarks/peers.py: the plain-manifest repository kubeshape lint and kube-score both read ----------------

PEERS = Path(__file__).resolve().parents[1] / "benchmarks" / "peers.py"
# (apiVersion, kind) kube-score v1.20.0 scores (parser/parse.go), and the kinds it reads and skips
KUBE_SCORE_SCORES = {("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("v1", "Service"),
                     ("networking.k8s.io/v1", "Ingress"), ("networking.k8s.io/v1", "NetworkPolicy"),
                     ("autoscaling/v2", "HorizontalPodAutoscaler"), ("policy/v1", "PodDisruptionBudget"),
                     ("batch/v1", "CronJob")}
KUBE_SCORE_SKIPS = {("v1", "ConfigMap"), ("v1", "PersistentVolumeClaim")}


def _peers_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kubeshape_bench_peers", PEERS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def plain_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("peers") / "repo"
    return out, _peers_module().generate(out, files=400, seed=1)


def test_plain_repo_has_exactly_the_requested_files(plain_repo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, counts = plain_repo
    files = _peers_module().yaml_files(out)
    assert counts["files"] == len(files) == 400
    assert counts["objects"] >= 400 and counts["kinds"]["Deployment"] and counts["kinds"]["Service"]
    # A size that ends inside an app's set of files is still exact.
    tiny = tmp_path / "tiny"
    assert _peers_module().generate(tiny, files=7)["files"] == len(list(tiny.rglob("*.yaml"))) == 7


def test_plain_repo_is_valid_yaml_in_shapes_kube_score_reads(plain_repo: tuple[Path, dict[str, Any]]) -> None:
    out, _ = plain_repo
    kinds: Counter[tuple[str, str]] = Counter()
    for path in _peers_module().yaml_files(out):
        text = path.read_text(encoding="utf-8")
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
        assert docs, path
        # kube-score splits files on "\n---\n" bytes, not with a YAML parser: both must see the same documents.
        assert len([c for c in text.split("\n---\n") if c.strip()]) == len(docs), path
        assert "&id" not in text and "*id" not in text, path  # no YAML anchors/aliases from shared dicts
        for doc in docs:
            key = (doc["apiVersion"], doc["kind"])
            assert key in KUBE_SCORE_SCORES | KUBE_SCORE_SKIPS, (path, key)
            assert doc["metadata"]["name"] and doc["metadata"]["namespace"], path
            kinds[key] += 1
    assert set(KUBE_SCORE_SCORES) <= set(kinds), set(KUBE_SCORE_SCORES) - set(kinds)


def test_plain_repo_gives_lint_a_few_findings_of_several_rules(plain_repo: tuple[Path, dict[str, Any]]) -> None:
    out, counts = plain_repo
    repo = load_repo([out], out)
    assert not repo.errors and len(repo.yaml_files) == counts["files"]
    _, result = analyse(Inventory(repo=repo), Config(), command="lint")
    rules = Counter(f.rule for f in result.findings)
    for planted in ("KS101", "KS102", "KS103", "KS201", "KS601", "KS604", "KS701"):
        assert rules[planted], sorted(rules)
    assert sum(rules.values()) < 3 * counts["files"]  # a few per file, not a flood


def test_plain_repo_generation_is_deterministic(plain_repo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, _ = plain_repo
    _peers_module().generate(tmp_path / "again", files=400, seed=1)
    mine = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.yaml")}
    again = {p.relative_to(tmp_path / "again"): p.read_bytes() for p in (tmp_path / "again").rglob("*.yaml")}
    assert mine == again
