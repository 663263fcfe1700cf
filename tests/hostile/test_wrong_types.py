"""Wrongly typed bundle content ends with exit 2 and one line naming the file and the JSON path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.hostile._bundles import MANIFEST, assert_one_line_error, doctor, pod, pods_list, write_bundle

TAG = {"tag": "1", "digest": "sha256:aa", "size": 1}
REGISTRY = {"registries": [{"host": "r.io", "repositories": [{"name": "a", "tags": [TAG]}]}]}

CASES: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("pod status a string", {"resources": {"pods.json": pods_list(pod(), pod(status="Running"))}},
     ("pods.json", "items[1].status: expected an object, got a string")),
    ("metadata a list", {"resources": {"pods.json": pods_list(pod(metadata=["p"]))}},
     ("pods.json", "items[0].metadata: expected an object, got a list")),
    ("containerStatuses a string",
     {"resources": {"pods.json": pods_list(pod(**{"status.containerStatuses": "c"}))}},
     ("pods.json", "items[0].status.containerStatuses: expected a list, got a string")),
    ("event involvedObject a string",
     {"resources": {"events.json": {"kind": "EventList", "items": [{"involvedObject": "Pod/p", "reason": "x"}]}}},
     ("events.json", "items[0].involvedObject: expected an object, got a string")),
    ("node status.images a dict",
     {"resources": {"nodes.json": {"kind": "NodeList", "items": [
         {"metadata": {"name": "n"}, "status": {"images": {"names": ["a"], "sizeBytes": 1}}}]}}},
     ("nodes.json", "items[0].status.images: expected a list, got an object")),
    ("HPA scaleTargetRef a string",
     {"resources": {"horizontalpodautoscalers.autoscaling.json": {"kind": "HorizontalPodAutoscalerList", "items": [
         {"metadata": {"name": "h", "namespace": "d"}, "spec": {"scaleTargetRef": "Deployment/web"}}]}}},
     ("horizontalpodautoscalers.autoscaling.json", "items[0].spec.scaleTargetRef: expected an object, got a string")),
    ("manifest formatVersion a string", {"manifest": {**MANIFEST, "formatVersion": "1"}},
     ("kubeshape-bundle.json", "formatVersion: expected an integer, got a string")),
    ("manifest collectedAt a number", {"manifest": {**MANIFEST, "collectedAt": 1767225600}},
     ("kubeshape-bundle.json", "collectedAt: expected a string, got an integer")),
    ("registry registries a dict", {"extra": {"registry.json": b'{"registries": {"r.io": []}}'}},
     ("registry.json", "registries: expected a list, got an object")),
    ("registry tag digest a number",
     {"extra": {"registry.json": json.dumps(REGISTRY).replace('"sha256:aa"', "7").encode()}},
     ("registry.json", "registries[0].repositories[0].tags[0].digest: expected a string, got an integer")),
    ("items not a list", {"resources": {"pods.json": {"kind": "List", "items": {"a": 1}}}},
     ("pods.json", "items: expected a list, got an object")),
    ("an item that is a string", {"resources": {"pods.json": pods_list(pod(), "pod/p")}},
     ("pods.json", "items[1]: expected an object, got a string")),
    ("containers a mapping",
     {"resources": {"pods.json": pods_list(pod(**{"spec.containers": {"c": {"image": "x"}}}))}},
     ("pods.json", "items[0].spec.containers: expected a list, got an object")),
    ("container image a number",
     {"resources": {"deployments.apps.json": {"kind": "DeploymentList", "items": [
         {"metadata": {"name": "w", "namespace": "d"},
          "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "image": 3}]}}}}]}}},
     ("deployments.apps.json", "items[0].spec.template.spec.containers[0].image: expected a string, got an integer")),
    ("restartCount a huge integer (read as a float)",
     {"resources": {"pods.json": pods_list(pod(**{"status.containerStatuses": [
         {"name": "c", "restartCount": 10**30}]}))}},
     ("pods.json", "items[0].status.containerStatuses[0].restartCount: expected an integer, got a number")),
    ("a label value a number", {"resources": {"pods.json": pods_list(pod(**{"metadata.labels": {"app.k8s/x": 1}}))}},
     ("pods.json", 'items[0].metadata.labels["app.k8s/x"]: expected a string, got an integer')),
    ("replicas a string",
     {"resources": {"replicasets.apps.json": {"kind": "ReplicaSetList", "items": [
         {"metadata": {"name": "rs", "namespace": "d"}, "spec": {"replicas": "3"}}]}}},
     ("replicasets.apps.json", "items[0].spec.replicas: expected an integer, got a string")),
    ("service selector a list",
     {"resources": {"services.json": {"kind": "ServiceList", "items": [
         {"metadata": {"name": "s", "namespace": "d"}, "spec": {"selector": ["app=x"]}}]}}},
     ("services.json", "items[0].spec.selector: expected an object, got a list")),
]


@pytest.mark.parametrize(("case", "bundle", "needles"), CASES, ids=[c[0] for c in CASES])
def test_wrong_type_is_one_line_with_file_and_path(tmp_path: Path, case: str, bundle: dict[str, Any],
                                                   needles: tuple[str, ...]) -> None:
    root = write_bundle(tmp_path / "b", **bundle)
    line = assert_one_line_error(doctor(root, tmp_path), *needles)
    assert "kubeshape snapshot" in line  # says what to do


def test_well_typed_bundle_passes(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b", {"pods.json": pods_list(pod())})
    run = doctor(root, tmp_path)
    assert run.code in (0, 1), run.stderr
