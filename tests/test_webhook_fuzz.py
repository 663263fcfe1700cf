"""Malformed and odd AdmissionReviews never break the webhook: 100,000 of them, in-process, through the real ASGI
app. Every answer is a valid AdmissionReview with the request's uid (400 for a body that is not JSON), never a 500
and never an exception."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import random
from typing import Any

import orjson

from kubeshape.admission.app import INTERNAL_WARNING, Settings, create_app
from kubeshape.config import parse_config
from tests.asgi import call

N = int(os.environ.get("KUBESHAPE_FUZZ_N", 100_000))
SEED = 20261202
CFG = parse_config({"registries": {"private": ["100.81.76.55:30500"], "allowed": ["100.81.76.55:30500", "ghcr.io"]},
                    "suppressions": [{"rule": "KS103", "object": "kube-*/*", "reason": "system"}]}, "test")
KINDS = [("apps", "v1", "Deployment"), ("apps", "v1", "StatefulSet"), ("apps", "v1", "DaemonSet"),
         ("apps", "v1", "ReplicaSet"), ("batch", "v1", "Job"), ("batch", "v1", "CronJob"), ("", "v1", "Pod"),
         ("autoscaling", "v2", "HorizontalPodAutoscaler"), ("", "v1", "ConfigMap"),
         ("example.com", "v1", "Deployment"), ("widgets.io", "v1alpha1", "Widget")]
ODD = [None, True, False, 0, -1, 2**63, 1.5, float("1e308"), "", "x" * 300, "\x00\ud7ff", [], {}, [None], {"": None},
       "family-assistant:tag", "Bad/Image::", "100.81.76.55:30500/fa@sha256:" + "a" * 64]


def deployment(images: list[str], kind: str = "Deployment") -> dict[str, Any]:
    pod = {"containers": [{"name": f"c{i}", "image": img, "env": [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT",
                                                                    "value": "http://otel-collector.homelab:4317"}]}
                          for i, img in enumerate(images)]}
    template = {"metadata": {"labels": {"app": "x"}}, "spec": pod}
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": "x"}}, "template": template}
    if kind == "Pod":
        spec = pod
    elif kind == "CronJob":
        spec = {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}
    elif kind == "HorizontalPodAutoscaler":
        spec = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gone"},
                "maxReplicas": 3}
    return {"metadata": {"name": "x", "namespace": "homelab", "annotations": {"kubernetes.io/change-cause": "r"}},
            "spec": spec}


def review(rng: random.Random, uid: str) -> dict[str, Any]:
    group, version, kind = rng.choice(KINDS)
    images = [rng.choice(["family-assistant:phase2", "100.81.76.55:30500/family-assistant:1.4.2", "nginx",
                          "ghcr.io/a/b:latest", "quay.io/x/y:1", "UPPER:case"]) for _ in range(rng.randint(0, 4))]
    obj = deployment(images, kind)
    obj["apiVersion"] = f"{group}/{version}" if group else version
    obj["kind"] = kind
    op = rng.choice(["CREATE", "UPDATE", "DELETE", "CONNECT"])
    old = copy.deepcopy(obj) if op == "UPDATE" else None
    if old is not None and rng.random() < 0.5:
        old["spec"] = {**old["spec"], "template": {"spec": {"containers": [{"name": "c0", "image": "old:1"}]}}}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uid, "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": kind.lower() + "s"},
        "namespace": "homelab", "name": "x", "operation": op, "userInfo": {"username": "fuzz"},
        "object": None if op == "DELETE" else obj, "oldObject": old, "dryRun": rng.random() < 0.2}}


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if len(prefix) > 30:  # below a nested bomb: damage its top, not each level
        return out
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths(v, (*prefix, i))
    return out


def mutate(rng: random.Random, doc: dict[str, Any]) -> Any:
    """One to three random damages: a value of a wrong type, a dropped field, a nested bomb, a stray key."""
    for _ in range(rng.randint(1, 3)):
        where = rng.choice(paths(doc))
        if not where:
            return copy.deepcopy(rng.choice(ODD))
        parent: Any = doc
        for part in where[:-1]:
            parent = parent[part]
        last = where[-1]
        action = rng.random()
        if action < 0.45:
            parent[last] = copy.deepcopy(rng.choice(ODD))
        elif action < 0.7 and isinstance(parent, dict):
            del parent[last]
        elif action < 0.8:
            nested: Any = copy.deepcopy(rng.choice(ODD))
            for _ in range(rng.randint(10, 200)):
                nested = [nested] if rng.random() < 0.5 else {"a": nested}
            parent[last] = nested
        elif isinstance(parent, dict):
            key = rng.choice(["kind", "apiVersion", "spec", "status", "\u2603", "metadata"])
            parent[key] = copy.deepcopy(rng.choice(ODD))
    return doc


def _check(status: int, body: bytes, sent_uid: str, raw: bytes) -> None:
    assert status != 500
    doc = orjson.loads(body)
    assert doc["apiVersion"] == "admission.k8s.io/v1" and doc["kind"] == "AdmissionReview", raw[:200]
    resp = doc["response"]
    assert isinstance(resp["allowed"], bool)
    assert INTERNAL_WARNING not in resp.get("warnings", []), raw[:300]
    assert resp["uid"] == sent_uid, (raw[:300], resp)
    if not resp["allowed"]:
        assert resp["status"]["message"], raw[:300]
    if status == 400:
        assert resp["uid"] == ""


def _uid_of(doc: Any) -> str:
    req = doc.get("request") if isinstance(doc, dict) else None
    uid = req.get("uid") if isinstance(req, dict) else None
    return uid if isinstance(uid, str) and len(uid) <= 256 else ""


def test_100k_malformed_reviews_always_get_a_valid_answer() -> None:
    app = create_app(Settings(cfg=CFG))
    rng = random.Random(SEED)
    counts = {"allowed": 0, "denied": 0, "not_json": 0}

    async def run() -> None:
        for n in range(N):
            doc: Any = review(rng, f"uid-{n}")
            if rng.random() < 0.85:
                doc = mutate(rng, doc)
            if rng.random() < 0.01:
                raw = rng.choice([b"", b"{", b"\xff\xfe", b"null", b"[1,2", b"{" * 5000, b'"\\ud800"'])
            else:
                raw = json.dumps(doc).encode()  # orjson refuses to write past 254 levels
            status, body = await call(app, raw)
            is_json = True
            try:
                sent = orjson.loads(raw)
            except orjson.JSONDecodeError:
                is_json = False
            if not is_json:
                assert status == 400, raw[:100]
                counts["not_json"] += 1
            _check(status, body, _uid_of(sent) if is_json else "", raw)
            counts["allowed" if orjson.loads(body)["response"]["allowed"] else "denied"] += 1

    asyncio.run(run())
    # The corpus reaches both verdicts and the non-JSON path, so every branch above was exercised.
    assert counts["allowed"] > 1000 and counts["denied"] > 1000 and counts["not_json"] > 100, counts


def test_three_megabyte_objects_and_deep_nesting_are_answered() -> None:
    app = create_app(Settings(cfg=CFG))
    rng = random.Random(SEED + 1)
    big = review(rng, "big")
    big["request"].update(operation="CREATE", oldObject=None)
    big["request"]["kind"] = {"group": "apps", "version": "v1", "kind": "Deployment"}
    obj = deployment(["family-assistant:phase2"] * 2000)
    obj.update(apiVersion="apps/v1", kind="Deployment")
    obj["metadata"]["annotations"]["blob"] = "x" * (3 * 1024 * 1024)
    big["request"]["object"] = obj
    raw = orjson.dumps(big)
    assert len(raw) >= 3 * 1024 * 1024
    status, body = asyncio.run(call(app, raw, chunk=65536))
    _check(status, body, "big", raw)
    resp = orjson.loads(body)["response"]
    assert resp["allowed"] is False and "KS101" in resp["status"]["message"]
    assert len(resp["status"]["message"]) < 2000  # 2000 findings are counted, not spelled out

    nested = orjson.dumps({"a": 1})[:-1] + b',"b":' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    status, body = asyncio.run(call(app, nested))
    assert status == 400 and orjson.loads(body)["response"]["uid"] == ""

    oversized = b'{"pad":"' + b"x" * (9 * 1024 * 1024) + b'"}'
    status, body = asyncio.run(call(app, oversized))
    assert status == 413 and orjson.loads(body)["response"]["allowed"] is False


def test_delete_with_null_object_and_unknown_kinds_are_allowed() -> None:
    app = create_app(Settings(cfg=CFG))
    rng = random.Random(SEED + 2)
    doc = review(rng, "del")
    doc["request"].update(operation="DELETE", object=None,
                          kind={"group": "apps", "version": "v1", "kind": "Deployment"})
    status, body = asyncio.run(call(app, orjson.dumps(doc)))
    assert status == 200 and orjson.loads(body)["response"] == {"uid": "del", "allowed": True}
    doc = review(rng, "widget")
    doc["request"].update(operation="CREATE", kind={"group": "widgets.io", "version": "v1", "kind": "Widget"},
                          object={"apiVersion": "widgets.io/v1", "kind": "Widget", "spec": {"image": "x"}})
    status, body = asyncio.run(call(app, orjson.dumps(doc)))
    assert orjson.loads(body)["response"] == {"uid": "widget", "allowed": True}
