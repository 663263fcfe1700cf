"""Images in Flux HelmRelease values: the shapes found, the references assembled, the lines located."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubeshape.inventory import K8sObject, containers
from kubeshape.sources.helmvalues import values_images
from tests.helpers import inventory

APP_TEMPLATE = """\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: sonarr
  namespace: media
spec:
  chart:
    spec: {chart: app-template, version: 3.5.1, sourceRef: {kind: HelmRepository, name: bjw-s}}
  values:
    controllers:
      sonarr:
        initContainers:
          init-db:
            image:
              repository: ghcr.io/onedr0p/postgres-init
              tag: 16
        containers:
          app:
            image:
              repository: ghcr.io/onedr0p/sonarr
              tag: 4.0.0.745
              pullPolicy: IfNotPresent
    persistence:
      config: {existingClaim: sonarr}
"""


def release(values: dict[str, Any], api: str = "helm.toolkit.fluxcd.io/v2") -> dict[str, Any]:
    return {"apiVersion": api, "kind": "HelmRelease", "metadata": {"name": "redis", "namespace": "db"},
            "spec": {"values": values}}


def test_app_template_containers_and_init_containers(tmp_path: Path) -> None:
    [hr] = inventory(tmp_path, files={"hr.yaml": APP_TEMPLATE}).repo_objects
    found = {v.name: v for v in values_images(hr.raw)}
    assert set(found) == {"init-db", "app"}
    app, init = found["app"], found["init-db"]
    assert app.path == "spec.values.controllers.sonarr.containers.app.image"
    assert app.image == "ghcr.io/onedr0p/sonarr:4.0.0.745"
    assert app.pieces == {"repository": "ghcr.io/onedr0p/sonarr", "tag": "4.0.0.745", "pullPolicy": "IfNotPresent"}
    assert (app.init, init.init) == (False, True)
    assert init.image == "ghcr.io/onedr0p/postgres-init:16"  # a YAML number becomes the tag text
    [c_init, c_app] = containers(hr)
    assert c_app.spec == {"name": "app", "image": app.image, "imagePullPolicy": "IfNotPresent"}
    assert c_init.spec == {"name": "init-db", "image": init.image}
    assert (hr.line_of(c_app.image_path), hr.line_of(c_init.image_path)) == (20, 15)


def test_registry_digest_and_numeric_tags() -> None:
    [v] = values_images(release({"image": {"registry": "docker.io", "repository": "bitnami/redis", "tag": 7.2}}))
    assert (v.name, v.image, v.path) == ("redis", "docker.io/bitnami/redis:7.2", "spec.values.image")
    digest = "sha256:" + "a" * 64
    [v] = values_images(release({"metrics": {"image": {"repository": "bitnami/redis-exporter", "digest": digest}}}))
    assert (v.name, v.image) == ("metrics", f"bitnami/redis-exporter@{digest}")
    [v] = values_images(release({"coreImage": {"repository": "goharbor/harbor-core", "tag": "v2.11.0"}},
                                api="helm.toolkit.fluxcd.io/v2beta1"))
    assert (v.name, v.image) == ("coreImage", "goharbor/harbor-core:v2.11.0")


def test_string_images_only_in_container_shaped_mappings() -> None:
    values = {
        "sidecars": [{"name": "exporter", "image": "ghcr.io/x/exporter:1.0", "imagePullPolicy": "Always"}],
        "additionalContainers": {"backup": {"image": "ghcr.io/x/backup:2.0"}},
        "image": "nginx:1.27",  # a bare string: what it means depends on the chart's templates
        "ui": {"image": "ghcr.io/x/ui:3.0"},
    }
    found = {v.name: v for v in values_images(release(values))}
    assert set(found) == {"exporter", "backup"}
    assert found["exporter"].path == "spec.values.sidecars[0]" and found["exporter"].pull_policy == "Always"
    assert found["backup"].path == "spec.values.additionalContainers.backup" and not found["backup"].pieces


def test_nothing_without_image_shapes_or_outside_flux_helmreleases() -> None:
    values = {"persistence": {"repository": {"enabled": True}}, "repository": "https://charts.example.com",
              "image": {"tag": "1.0"}, "service": {"port": 80}}
    assert list(values_images(release(values))) == []
    assert list(values_images(release({"image": {"repository": "${REGISTRY}/app", "tag": "1"}}))) == []
    other = release({"image": {"repository": "ghcr.io/x/y", "tag": "1"}}, api="example.com/v1")
    assert list(values_images(other)) == []
    assert list(containers(K8sObject.from_raw(other, "repo"))) == []
