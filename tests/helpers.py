"""Build inventories from small YAML/JSON snippets for rule tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kubeshape.config import Config, parse_config
from kubeshape.engine import run
from kubeshape.findings import Finding
from kubeshape.inventory import ClusterSource, Inventory, K8sObject
from kubeshape.rules.base import Context, get_rule
from kubeshape.sources.bundle import parse_registry_snapshot
from kubeshape.sources.repo import load_repo
from kubeshape.timeutil import parse_time

NOW = "2025-11-17T10:00:00Z"


def write_repo(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (relative path → text) under ``root``."""
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def cluster(objects: list[dict[str, Any]], events: list[dict[str, Any]] | None = None,
            logs: dict[tuple[str, str, str], list[str]] | None = None,
            listed: list[str] | None = None, now: str = NOW) -> ClusterSource:
    """A cluster source from full objects (each with ``kind``); every kind in ``listed`` counts as listed."""
    src = ClusterSource(name="test", collected_at=parse_time(now))
    for raw in objects:
        kind = raw["kind"]
        src.objects.setdefault(kind, []).append(K8sObject.from_raw(raw, "cluster"))
        src.listed_kinds.add(kind)
    src.events = list(events or [])
    src.listed_kinds.add("Event")
    src.logs = dict(logs or {})
    for kind in listed or []:
        src.listed_kinds.add(kind)
    return src


def inventory(tmp_path: Path | None = None, files: dict[str, str] | None = None,
              objects: list[dict[str, Any]] | None = None, events: list[dict[str, Any]] | None = None,
              logs: dict[tuple[str, str, str], list[str]] | None = None, listed: list[str] | None = None,
              registry: dict[str, Any] | None = None, now: str = NOW) -> Inventory:
    """An inventory with a repo (when ``files``), a cluster (when ``objects``/``events``) and a registry."""
    repo = None
    if files is not None:
        assert tmp_path is not None, "repo files need tmp_path"
        write_repo(tmp_path, files)
        repo = load_repo([Path(".")], tmp_path)
    clus = cluster(objects or [], events, logs, listed, now) if objects is not None or events is not None else None
    reg = parse_registry_snapshot(registry, "test") if registry is not None else None
    return Inventory(repo=repo, cluster=clus, registry=reg, now=parse_time(now))


def config(text: str = "") -> Config:
    return parse_config(yaml.safe_load(text) if text else None, "kubeshape.yaml")


def check(rule_id: str, inv: Inventory, cfg: Config | None = None) -> list[Finding]:
    """Run one rule directly (no suppression, no de-duplication)."""
    rule = get_rule(rule_id)
    assert rule is not None, f"no rule {rule_id}"
    return list(rule.func(Context(inv, cfg or Config(), rule)))


def doctor(inv: Inventory, cfg: Config | None = None) -> list[Finding]:
    """All rules through the engine, as the CLI runs them."""
    return run(inv, cfg or Config()).findings


def deployment(name: str, image: str, ns: str = "homelab", replicas: int = 1, **extra: Any) -> dict[str, Any]:
    """A minimal Deployment manifest."""
    container: dict[str, Any] = {"name": name, "image": image, **extra}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{ns}-{name}"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}},
    }
