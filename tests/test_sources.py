"""Sources: repo manifests (multi-doc, Lists, kustomize), bundles (kubeshape and cluster-info dump), config."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from kubeshape.config import load_config
from kubeshape.errors import InputError
from kubeshape.sources.bundle import load_bundle
from kubeshape.sources.repo import load_repo
from tests.fixtures.clean import write_bundle
from tests.helpers import write_repo

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  template:
    spec:
      containers:
      - name: api
        image: registry.local:5000/api:1.0.0
"""


def test_multi_document_and_list_kinds_keep_file_and_line(tmp_path: Path) -> None:
    write_repo(tmp_path, {
        "a.yaml": "# comment\n" + DEPLOY + "---\napiVersion: v1\nkind: Service\nmetadata: {name: api}\n",
        "list.yml": "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n"
                    "  metadata: {name: cfg, namespace: x}\n",
        "notk8s.yaml": "just: data\n",
    })
    repo = load_repo([Path(".")], tmp_path)
    found = {(o.kind, o.namespace, o.name): (o.file, o.line) for o in repo.objects}
    assert found == {("Deployment", "default", "api"): ("a.yaml", 2), ("Service", "default", "api"): ("a.yaml", 13),
                     ("ConfigMap", "x", "cfg"): ("list.yml", 4)}
    dep = next(o for o in repo.objects if o.kind == "Deployment")
    assert dep.line_of("spec.template.spec.containers[0].image") == 11


def test_helm_templates_are_not_parsed_as_yaml(tmp_path: Path) -> None:
    write_repo(tmp_path, {"chart/Chart.yaml": "apiVersion: v2\nname: c\nversion: 1.0.0\n",
                          "chart/templates/dep.yaml": "{{- if .Values.x }}\nkind: {{ .Values.kind }}\n"})
    repo = load_repo([Path(".")], tmp_path)
    assert repo.errors == []


@pytest.mark.skipif(shutil.which("kubectl") is None and shutil.which("kustomize") is None,
                    reason="needs kubectl or kustomize")
def test_kustomize_overlay_is_rendered_with_provenance(tmp_path: Path) -> None:
    write_repo(tmp_path, {
        "base/deployment.yaml": DEPLOY,
        "base/kustomization.yaml": "resources: [deployment.yaml]\n",
        "overlays/prod/kustomization.yaml": "resources: [../../base]\nnamespace: prod\nimages:\n"
                                            "- name: registry.local:5000/api\n  newTag: 1.2.0\n",
    })
    repo = load_repo([Path(".")], tmp_path)
    [dep] = repo.objects  # the base is not counted twice
    assert (dep.namespace, dep.file, dep.line) == ("prod", "base/deployment.yaml", 1)
    assert dep.raw["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local:5000/api:1.2.0"


def test_missing_root_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or directory"):
        load_repo([Path("nope")], tmp_path)


def test_bundle_strips_secret_values_and_keeps_managers(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "b")
    secrets = orjson.loads((bundle / "resources/secrets.json").read_bytes())
    secrets["items"][0]["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": '{"data":{"password":"Q0FOQVJZLWNsZWFu"}}'}
    (bundle / "resources/secrets.json").write_bytes(orjson.dumps(secrets))
    cluster, registry = load_bundle(bundle)
    [secret] = cluster.objects["Secret"]
    assert "Q0FOQVJZ" not in repr(secret.raw)
    assert secret.raw["dataKeys"] == ["password"]
    assert registry is not None and len(registry.repos) == 3
    assert cluster.name == "shop" and "HorizontalPodAutoscaler" in cluster.listed_kinds
    assert len(cluster.logs) == 1


def test_cluster_info_dump_directory(tmp_path: Path) -> None:
    dump = tmp_path / "dump"
    (dump / "shop" / "api-0").mkdir(parents=True)
    (dump / "nodes.json").write_bytes(orjson.dumps({"kind": "NodeList", "items": [{"metadata": {"name": "n1"}}]}))
    (dump / "shop" / "pods.json").write_bytes(orjson.dumps(
        {"kind": "PodList", "items": [{"metadata": {"name": "api-0", "namespace": "shop"}}]}))
    (dump / "shop" / "events.json").write_bytes(orjson.dumps({"kind": "EventList", "items": [
        {"involvedObject": {"kind": "Pod", "namespace": "shop", "name": "api-0"}, "reason": "BackOff",
         "lastTimestamp": "2025-11-17T09:59:00Z"}]}))
    (dump / "shop" / "api-0" / "logs.txt").write_text("line 1\nline 2\n")
    cluster, registry = load_bundle(dump)
    assert [p.name for p in cluster.objects["Pod"]] == ["api-0"]
    assert cluster.logs[("shop", "api-0", "")] == ["line 1", "line 2"]
    assert cluster.collected_at is not None and cluster.collected_at.minute == 59
    assert registry is None


def test_bundle_errors_name_the_problem(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "b")
    manifest = orjson.loads((bundle / "kubeshape-bundle.json").read_bytes())
    (bundle / "kubeshape-bundle.json").write_bytes(orjson.dumps({**manifest, "formatVersion": 99}))
    with pytest.raises(InputError, match="newer than this kubeshape"):
        load_bundle(bundle)
    (bundle / "kubeshape-bundle.json").write_bytes(orjson.dumps(manifest))
    (bundle / "resources/pods.json").write_text('{"kind": "PodList", "items": [')
    with pytest.raises(InputError, match=r"resources/pods.json: invalid JSON"):
        load_bundle(bundle)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a kubeshape bundle"):
        load_bundle(tmp_path / "empty")


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    (tmp_path / "kubeshape.yaml").write_text("registries:\n  privat: [x]\n")
    with pytest.raises(InputError, match=r"unknown key 'registries.privat'"):
        load_config(None, tmp_path)
    (tmp_path / "kubeshape.yaml").write_text("tag_scheme: '(['\n")
    with pytest.raises(InputError, match="tag_scheme"):
        load_config(None, tmp_path)
    (tmp_path / "kubeshape.yaml").write_text("thresholds: {restarts_per_day: -1}\n")
    with pytest.raises(InputError, match="restarts_per_day"):
        load_config(None, tmp_path)
    (tmp_path / "kubeshape.yaml").write_text("registries: {private: ['r:5000']}\n")
    cfg, path = load_config(None, tmp_path)
    assert cfg.registries.private == ["r:5000"] and path == tmp_path / "kubeshape.yaml"
