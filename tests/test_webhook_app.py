"""The webhook's answers, in-process: verdicts, messages kubectl prints, time budgets and health endpoints."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from kubeshape.actions.registries import Target
from kubeshape.admission.app import Settings, budget_of, create_app
from kubeshape.admission.evaluate import evaluate_object, one_line_fix
from kubeshape.admission.registry_lookup import RegistryLookup
from kubeshape.config import Config, parse_config
from kubeshape.registry.client import RegistryClient
from kubeshape.registry.image import build_image, push_image
from testbed.registry import Registry
from tests.asgi import call
from tests.servers import silent_server

PRIVATE = parse_config({"registries": {"private": ["100.81.76.55:30500"]}}, "test")


def deployment(*images: str, policy: str | None = None, name: str = "family-assistant-backend") -> dict[str, Any]:
    containers: list[dict[str, Any]] = [{"name": f"c{i}", "image": img} for i, img in enumerate(images)]
    if policy:
        containers[0]["imagePullPolicy"] = policy
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "homelab"},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": containers}}}}


def review(obj: dict[str, Any] | None, *, op: str = "CREATE", old: dict[str, Any] | None = None,
           uid: str = "u-1", kind: tuple[str, str, str] = ("apps", "v1", "Deployment")) -> bytes:
    group, version, k = kind
    return orjson.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uid, "kind": {"group": group, "version": version, "kind": k}, "namespace": "homelab",
        "name": "family-assistant-backend", "operation": op, "object": obj, "oldObject": old, "dryRun": False}})


def answer(app: Any, body: bytes, query: bytes = b"") -> dict[str, Any]:
    status, raw = asyncio.run(call(app, body, query=query))
    assert status == 200
    return dict(orjson.loads(raw)["response"])


def test_seed_image_is_denied_with_rule_problem_and_fix() -> None:
    resp = answer(create_app(Settings(cfg=PRIVATE)), review(deployment("family-assistant:phase2-mcp-logging-fix")))
    assert resp["allowed"] is False and resp["uid"] == "u-1"
    msg = resp["status"]["message"]
    assert msg.startswith("KS101 unqualified-image: container c0 uses unqualified image "
                          "family-assistant:phase2-mcp-logging-fix. Fix: ")
    assert "docker push 100.81.76.55:30500/family-assistant:phase2-mcp-logging-fix" in msg
    assert "```" not in msg and "\n" not in msg  # one line per finding, no markdown


def test_warnings_are_returned_and_kubectl_sized() -> None:
    resp = answer(create_app(Settings(cfg=Config())), review(deployment("ghcr.io/pesuga/homelab-dashboard:latest")))
    assert resp["allowed"] is True
    assert [w.split(" ", 1)[0] for w in resp["warnings"]] == ["KS103"]
    assert all(len(w) <= 250 for w in resp["warnings"])


def test_each_denying_rule_is_named() -> None:
    cfg = parse_config({"registries": {"allowed": ["ghcr.io"]}}, "test")
    verdict = evaluate_object(deployment("quay.io/a/b:1.0", "Bad:x", "ghcr.io/a/b:1", policy="Never"), cfg)
    assert not verdict.allowed
    assert {line.split(" ", 1)[0] for line in verdict.message.splitlines()} == {"KS102", "KS107", "KS108"}


def test_update_without_a_new_change_cause_warns_but_a_scale_does_not() -> None:
    old = deployment("100.81.76.55:30500/family-assistant:1.4.2")
    old["metadata"]["annotations"] = {"kubernetes.io/change-cause": "release 1.4.2"}
    new = deployment("100.81.76.55:30500/family-assistant:1.4.3")
    new["metadata"]["annotations"] = {"kubernetes.io/change-cause": "release 1.4.2"}
    verdict = evaluate_object(new, PRIVATE, operation="UPDATE", old=old)
    assert verdict.allowed and any(w.startswith("KS205") and "still says 'release 1.4.2'" in w
                                   for w in verdict.warnings)
    new["metadata"]["annotations"]["kubernetes.io/change-cause"] = "release 1.4.3"
    assert not [w for w in evaluate_object(new, PRIVATE, operation="UPDATE", old=old).warnings if "KS205" in w]
    scaled = deployment("100.81.76.55:30500/family-assistant:1.4.2")
    scaled["spec"]["replicas"] = 5
    assert not evaluate_object(scaled, PRIVATE, operation="UPDATE", old=old).warnings


def test_suppression_in_config_and_annotation_apply_at_the_gate() -> None:
    cfg = parse_config({"registries": {"private": ["100.81.76.55:30500"]},
                        "suppressions": [{"rule": "KS101", "object": "homelab/*", "reason": "migrating"}]}, "t")
    assert evaluate_object(deployment("family-assistant:x"), cfg).allowed
    obj = deployment("family-assistant:x")
    obj["metadata"]["annotations"] = {"kubeshape.io/ignore": "KS101"}
    assert evaluate_object(obj, PRIVATE).allowed


def test_one_line_fix_keeps_commands_and_added_lines() -> None:
    fix = ("Push it:\n```bash\ndocker push a/b:1\n```\n"
           "In k8s/app.yaml:12:\n```diff\n-   image: b:1\n+   image: a/b:1\n```")
    assert one_line_fix(fix) == "Push it; docker push a/b:1; set image: a/b:1"


def test_kinds_not_gated_deletes_and_dry_runs() -> None:
    app = create_app(Settings(cfg=PRIVATE))
    assert answer(app, review(None, op="DELETE")) == {"uid": "u-1", "allowed": True}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"image": "bad:x"}}
    assert answer(app, review(cm, kind=("", "v1", "ConfigMap")))["allowed"] is True
    crd = deployment("family-assistant:x")
    crd["apiVersion"] = "example.com/v1"
    assert answer(app, review(crd, kind=("example.com", "v1", "Deployment")))["allowed"] is True


def test_malformed_object_is_rejected_with_the_place() -> None:
    obj = deployment("a/b:1")
    obj["spec"]["template"]["spec"]["containers"] = "nope"
    resp = answer(create_app(Settings(cfg=PRIVATE)), review(obj))
    assert resp["allowed"] is False and resp["status"]["code"] == 400
    assert "spec.template.spec.containers" in resp["status"]["message"]


def test_budget_follows_the_apiservers_timeout() -> None:
    assert budget_of("10s", 10) == 9.5
    assert budget_of("2s", 10) == 1.5
    assert budget_of("500ms", 10) == pytest.approx(0.1)
    assert budget_of("1m", 10) == 9.5  # never longer than configured
    assert budget_of("garbage", 10) == 9.5


@pytest.fixture()
def silent_registry() -> Iterator[str]:
    """A registry host that accepts connections and never answers (a hung registry on loopback)."""
    with silent_server() as host:
        yield host


def test_a_hung_registry_is_skipped_with_a_warning_inside_the_budget(silent_registry: str) -> None:
    cfg = parse_config({"registries": {"private": [silent_registry]}}, "test")
    lookup = RegistryLookup([Target(silent_registry, silent_registry)], insecure=True, timeout=30)
    app = create_app(Settings(cfg=cfg, registry=lookup))
    try:
        t0 = time.monotonic()
        resp = answer(app, review(deployment(f"{silent_registry}/family-assistant:1.4.2")), query=b"timeout=2s")
        took = time.monotonic() - t0
    finally:
        lookup.close()
    assert resp["allowed"] is True
    assert any("did not answer in time" in w and "not checked" in w for w in resp["warnings"])
    assert took < 2.0  # inside the apiserver's timeout, with the margin kept back


def test_registry_lookup_denies_a_missing_tag_and_caches(registry: Registry) -> None:
    host = registry.host
    with RegistryClient(host, insecure=True) as client:
        push_image(client, "webhook-app/api", "1.0.0", build_image({"v": b"1"}, created=datetime.now(UTC)))
    cfg = parse_config({"registries": {"private": [host]}}, "test")
    lookup = RegistryLookup([Target(host, host)], insecure=True)
    app = create_app(Settings(cfg=cfg, registry=lookup))
    try:
        assert answer(app, review(deployment(f"{host}/webhook-app/api:1.0.0")))["allowed"] is True
        resp = answer(app, review(deployment(f"{host}/webhook-app/api:2.0.0")))
        assert resp["allowed"] is False and resp["status"]["message"].startswith("KS104")
        resp = answer(app, review(deployment(f"{host}/webhook-app/nothing:1")))
        assert resp["allowed"] is False and "webhook-app/nothing" in resp["status"]["message"]
        assert "does not exist" in resp["status"]["message"]
        assert lookup.lookups == 2  # the second image of webhook-app/api came from the cache
        # a digest is not looked up (only tags are listed): no false "missing" for a pinned image
        pinned = f"{host}/webhook-app/api@sha256:" + "a" * 64
        assert answer(app, review(deployment(pinned)))["allowed"] is True
    finally:
        lookup.close()


def test_health_ready_and_metrics_endpoints() -> None:
    app = create_app(Settings(cfg=PRIVATE))
    assert asyncio.run(call(app, b"", path="/healthz", method="GET")) == (200, b"ok\n")
    assert asyncio.run(call(app, b"", path="/readyz", method="GET"))[0] == 200
    answer(app, review(deployment("family-assistant:x")))
    status, text = asyncio.run(call(app, b"", path="/metrics", method="GET"))
    assert status == 200
    assert b'kubeshape_admission_reviews_total{dry_run="false",verdict="denied"} 1.0' in text
    assert b'kubeshape_admission_findings_total{rule="KS101",severity="error"} 1.0' in text
