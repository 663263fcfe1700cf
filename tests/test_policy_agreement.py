"""The exported ValidatingAdmissionPolicy decides as kubeshape decides: the real API server of the test bed judges
hundreds of Deployments (image references drawn from the distribution grammar, and near misses), and each answer
is compared with ``evaluate_object`` -- allowed or denied, the rule that denies, the rules that warn -- under four
kubeshape.yaml files: none, registries, and registries with ignored rules, suppressions and (honoured or not)
``kubeshape.io/ignore`` annotations on the objects.

What is compared: KS101, KS102, KS103, KS107 and KS108 (the rules the policy carries). kubeshape also warns about
KS301 (a tag that names no commit); the policy does not check it, so those warnings are left out of the
comparison. No request is rejected by the API server's own validation before the policy sees it (such a 422 has
no policy message): the test asserts that, and would list them apart.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from kubeshape.admission.evaluate import evaluate_object
from kubeshape.config import Config, parse_config
from kubeshape.findings import Severity
from kubeshape.imageref import parse
from testbed.cluster import Cluster
from tests.test_policy import (
    HAND_PICKED_CASES,
    POLICY_RULES,
    Answer,
    container,
    deployment,
    gated,
    kubeshape_yaml,
    param_anchor,
    workload,
)

REGISTRIES = kubeshape_yaml(["127.0.0.1:30500"], ["127.0.0.1:30500", "ghcr.io", "*.example.com", "docker.io"])
SUPPRESSED = {**REGISTRIES, "ignore": ["KS102"], "suppressions": [
    {"rule": "KS1xx", "object": "*/Deployment/ref-1?", "reason": "migrating"},
    {"rule": "KS108", "object": "ref-2*", "reason": "known"},
    {"rule": "*", "object": "*/Deployment/ref-3", "reason": "all of it"},
    {"rule": "KS103", "object": "ref-[4-5]?", "reason": "pinned elsewhere"},
]}
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "registries": REGISTRIES,
    "suppressions": SUPPRESSED,
    "annotations-off": {**SUPPRESSED, "annotation_ignores": False},
}
# kubeshape.io/ignore values put on every 4th object of the last two configs
ANNOTATIONS = ["KS103", "ks1xx", " KS101 , KS108 ", "KS1", "*", "KS7xx", "all", "KS10XX", "KS108,KS107", ""]


@pytest.fixture(scope="session")
def anchored(cluster: Cluster) -> Iterator[Cluster]:
    with param_anchor(cluster):
        yield cluster


@functools.cache
def corpus() -> list[tuple[str, str | None]]:
    """The hand-picked cases and 320 drawn ones (160 valid references and 160 invalid ones, from 960 draws), each
    (image, imagePullPolicy) once.

    Drawn in a fresh interpreter: Hypothesis mixes constants of the modules already imported into what it
    draws, so drawing in this process would give another corpus depending on which tests ran before. Which
    modules the product imports changes what is drawn too; taking as many valid as invalid references keeps
    both sides of the grammar covered whatever the mix."""
    code = "import json; from tests.test_policy import drawn_cases; print(json.dumps(drawn_cases(960)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300,
                          cwd=Path(__file__).resolve().parent.parent)
    drawn = list(dict.fromkeys((image, pull) for image, pull in json.loads(proc.stdout)))
    valid = [case for case in drawn if _valid(case[0])][:160]
    invalid = [case for case in drawn if not _valid(case[0])][:160]
    return list(dict.fromkeys(HAND_PICKED_CASES + valid + invalid))


def _ours(obj: dict[str, Any], cfg: Config) -> tuple[bool, set[str], set[str]]:
    """kubeshape's verdict: allowed, the rules that deny, the policy's rules among those that warn."""
    verdict = evaluate_object(obj, cfg)
    denying = {f.rule for f in verdict.findings if f.severity >= Severity.ERROR}
    warned = {w.split(" ", 1)[0] for w in verdict.warnings} & POLICY_RULES
    return verdict.allowed, denying, warned


def _disagreement(image: str, pull: str | None, answer: Answer, ours: tuple[bool, set[str], set[str]]) -> str | None:
    allowed, denying, warned = ours
    problems = []
    if answer.allowed != allowed:
        problems.append(f"API server {'admits' if answer.allowed else 'denies'}, kubeshape "
                        f"{'admits' if allowed else 'denies (' + ', '.join(sorted(denying)) + ')'}")
    elif not answer.allowed and answer.deny_rule not in denying:
        problems.append(f"denied for {answer.deny_rule or answer.message!r}, kubeshape for {sorted(denying)}")
    if answer.warned_rules != warned:
        problems.append(f"warned {sorted(answer.warned_rules)}, kubeshape {sorted(warned)}")
    if not problems:
        return None
    return f"{image!r} (imagePullPolicy {pull}): " + "; ".join(problems)


def _objects(namespace: str, cases: list[tuple[str, str | None]], annotate: bool) -> list[dict[str, Any]]:
    objects = [deployment(f"ref-{i}", namespace, image, pull) for i, (image, pull) in enumerate(cases)]
    if annotate:
        for n, obj in enumerate(objects[::4]):
            obj["metadata"]["annotations"] = {"kubeshape.io/ignore": ANNOTATIONS[n % len(ANNOTATIONS)]}
    return objects


@pytest.mark.parametrize("config", list(CONFIGS))
def test_the_policy_admits_denies_and_warns_exactly_as_kubeshape(anchored: Cluster, tmp_path: Path,
                                                                 config: str) -> None:
    data = CONFIGS[config]
    cfg = parse_config(data, config)
    cases = corpus()
    assert len(cases) >= 300
    assert sum(1 for image, _ in cases if _valid(image)) >= 150  # both sides of the grammar are well covered
    assert sum(1 for image, _ in cases if not _valid(image)) >= 120
    registries = data.get("registries", {})
    more = {k: v for k, v in data.items() if k != "registries"}
    with gated(anchored, tmp_path, private=registries.get("private", []), allowed=registries.get("allowed", []),
               **more) as gate:
        objects = _objects(gate.namespace, cases, annotate="suppressions" in data)
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(gate.api.dry_run, objects))

    rejected = [f"{image!r}: {a.status} {a.message}" for (image, _), a in zip(cases, answers, strict=True)
                if not a.allowed and not a.denied_by_policy]
    assert rejected == [], "rejected before the policy judged them:\n" + "\n".join(rejected)
    found = [_disagreement(image, pull, answer, _ours(obj, cfg))
             for (image, pull), obj, answer in zip(cases, objects, answers, strict=True)]
    disagreements = [d for d in found if d]
    assert disagreements == [], (f"{len(disagreements)} of {len(cases)} references, config {config}:\n"
                                 + "\n".join(disagreements))
    rules_seen = {a.deny_rule for a in answers if a.deny_rule} | {r for a in answers for r in a.warned_rules}
    expected = {"KS101", "KS103", "KS108"} | ({"KS107"} if cfg.registries.allowed else set()) | (
        set() if cfg.ignore else {"KS102"})
    assert rules_seen >= expected, rules_seen  # every check was exercised
    if cfg.suppressions:  # and the suppressions let something through that would have been denied
        unsuppressed = Config(registries=cfg.registries)
        assert any(a.allowed and not evaluate_object(obj, unsuppressed).allowed
                   for obj, a in zip(objects, answers, strict=True))


def _valid(image: str) -> bool:
    try:
        parse(image)
    except ValueError:
        return False
    return True


# -- every workload kind, and large objects --------------------------------------------------------------------


def _wait_for_service_account(cluster: Cluster, namespace: str) -> None:
    """Pods are admitted only once the namespace's default ServiceAccount exists."""
    cluster.kubectl("wait", "--for=jsonpath={.metadata.name}=default", "serviceaccount/default", "-n", namespace,
                    "--timeout=60s")


@pytest.mark.parametrize("kind", ["Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"])
def test_every_workload_kind_is_judged_by_its_init_and_app_containers(anchored: Cluster, tmp_path: Path,
                                                                      kind: str) -> None:
    cfg = parse_config(REGISTRIES, "registries")
    good = "127.0.0.1:30500/app:1.0"
    with gated(anchored, tmp_path, private=cfg.registries.private, allowed=cfg.registries.allowed) as gate:
        if kind == "Pod":
            _wait_for_service_account(anchored, gate.namespace)
        cases = {
            "clean": ([container("app", good)], [container("init", good)]),
            "bad init": ([container("app", good)], [container("init", "family-assistant:fixed")]),
            "bad app": ([container("app", "quay.io/app:1")], [container("init", good)]),
            "mutable": ([container("app", "ghcr.io/app")], []),
        }
        for what, (app, init) in cases.items():
            obj = workload(kind, f"w-{kind.lower()}", gate.namespace, app, init)
            answer = gate.api.dry_run(obj)
            allowed, denying, warned = _ours(obj, cfg)
            assert (answer.allowed, answer.warned_rules) == (allowed, warned), (what, answer)
            assert answer.allowed or answer.deny_rule in denying, (what, answer)
        bad_init = gate.api.dry_run(workload(kind, "w", gate.namespace, *cases["bad init"]))
        assert "KS101 unqualified-image: container init uses family-assistant:fixed" in bad_init.message


def _longest_valid(i: int) -> str:
    """A 520-character reference: a 255-character name, a 128-character tag and a sha512 digest."""
    host = "127.0.0.1:30500/"
    image = f"{host}{'a' * (255 - len(host) - 4)}/c{i:02d}:{'t' * 128}@sha512:{'b' * 128}"
    parse(image)
    return image


def test_a_deployment_with_30_containers_of_the_longest_references_stays_within_the_cost_limit(
        anchored: Cluster, tmp_path: Path) -> None:
    cfg = parse_config(REGISTRIES, "registries")
    with gated(anchored, tmp_path, private=cfg.registries.private, allowed=cfg.registries.allowed) as gate:
        apps = [container(f"app-{i}", _longest_valid(i)) for i in range(30)]
        inits = [container(f"init-{i}", _longest_valid(30 + i)) for i in range(30)]

        def judge(app: list[dict[str, Any]], init: list[dict[str, Any]]) -> Answer:
            obj = workload("Deployment", "big", gate.namespace, app, init)
            answer = gate.api.dry_run(obj)
            allowed, denying, warned = _ours(obj, cfg)
            assert (answer.allowed, answer.warned_rules) == (allowed, warned), answer
            assert answer.allowed or answer.deny_rule in denying, answer
            assert "cost" not in answer.message and "resulted in error" not in answer.message, answer
            return answer

        assert judge(apps, inits).allowed
        last_bad = judge([*apps[:-1], container("app-29", "Bad/Image")], inits)
        assert "KS108 invalid-image-reference: container app-29 uses Bad/Image" in last_bad.message
        untagged = [container(f"app-{i}", f"127.0.0.1:30500/{'a' * 200}/c{i:02d}") for i in range(30)]
        mutable = judge(untagged, inits)
        assert mutable.allowed and any("(and 29 more containers)" in w for w in mutable.warnings), mutable
