"""Issue point 5 with the ValidatingAdmissionPolicy (no webhook): the seed's incident is stopped by the API server
itself, as kubectl users see it -- the unqualified Deployment and the `kubectl set image` that broke the homelab are
denied with KS101 and the fix, qualified images go through, a mutable tag is let through with a warning, and a
policy that cannot be evaluated fails as its failurePolicy says."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeshape.policy import vap
from testbed.cluster import Cluster
from testbed.registry import Registry
from testbed.scenarios.loader import Scenario
from tests.test_policy import Answer, Gate, deployment, gated, param_anchor, write_config

DEPLOYMENT = "family-assistant-backend"
CONTAINER = "family-assistant"


@pytest.fixture(scope="session")
def anchored(cluster: Cluster) -> Iterator[Cluster]:
    with param_anchor(cluster):
        yield cluster


def seed_deployment(namespace: str, image: str) -> dict[str, Any]:
    """The seed's family-assistant-backend (testbed/scenarios/homelab.yaml) in ``namespace`` with ``image``."""
    scenario = Scenario.load("homelab")
    obj = next(o for o in scenario.objects if o["kind"] == "Deployment" and o["metadata"]["name"] == DEPLOYMENT)
    obj = copy.deepcopy(obj)
    obj["metadata"]["namespace"] = namespace
    [c] = obj["spec"]["template"]["spec"]["containers"]
    c["image"] = image
    return obj


def kubectl(gate: Gate, *args: str, manifest: dict[str, Any] | None = None) -> tuple[int, str, str]:
    proc = gate.cluster.kubectl(*args, "-n", gate.namespace, input=yaml.safe_dump(manifest) if manifest else None,
                                check=False)
    return proc.returncode, proc.stdout, proc.stderr


def running_image(gate: Gate) -> str | None:
    code, out, _ = kubectl(gate, "get", "deployment", DEPLOYMENT, "-o", "json", "--ignore-not-found")
    if code != 0 or not out.strip():
        return None
    return str(json.loads(out)["spec"]["template"]["spec"]["containers"][0]["image"])


def kubeshape_warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Warning:") and f"'{vap.WARN}'" in line]


def test_the_seed_incident_is_denied_with_the_fix_and_good_deploys_go_through(anchored: Cluster, registry: Registry,
                                                                              tmp_path: Path) -> None:
    broken = Scenario.load("homelab").spec["rollout"]["broken"]
    assert broken == "family-assistant:phase2-mcp-logging-fix"
    host = registry.host
    with gated(anchored, tmp_path, private=[host]) as gate:
        code, _, err = kubectl(gate, "apply", "-f", "-", manifest=seed_deployment(gate.namespace, broken))
        assert code != 0
        assert f"ValidatingAdmissionPolicy '{vap.DENY}'" in err and "denied request: KS101 unqualified-image: " \
            f"container {CONTAINER} uses {broken}, which only nodes that built it can pull." in err, err
        assert f"Fix: push it to {host} and deploy {host}/{broken}" in err, err
        assert running_image(gate) is None  # nothing was created

        qualified = f"{host}/family-assistant:fixed"
        code, out, err = kubectl(gate, "apply", "-f", "-", manifest=seed_deployment(gate.namespace, qualified))
        assert code == 0, err
        assert "created" in out and kubeshape_warnings(err) == []
        assert running_image(gate) == qualified

        # the imperative change that broke the homelab
        code, _, err = kubectl(gate, "set", "image", f"deploy/{DEPLOYMENT}", f"{CONTAINER}=family-assistant:foo")
        assert code != 0
        assert "KS101 unqualified-image" in err and f"deploy {host}/family-assistant:foo" in err, err
        assert running_image(gate) == qualified

        release = f"{host}/family-assistant:1.4.2-20251117T100000Z.gabc1234"
        code, _, err = kubectl(gate, "set", "image", f"deploy/{DEPLOYMENT}", f"{CONTAINER}={release}")
        assert code == 0 and kubeshape_warnings(err) == [], err
        assert running_image(gate) == release

        latest = f"{host}/family-assistant:latest"
        code, _, err = kubectl(gate, "set", "image", f"deploy/{DEPLOYMENT}", f"{CONTAINER}={latest}")
        assert code == 0, err
        [warning] = kubeshape_warnings(err)
        assert f"KS103 mutable-tag: container {CONTAINER} uses {latest}" in warning
        assert f"{host}/family-assistant:<version>" in warning
        assert running_image(gate) == latest

        code, _, err = kubectl(gate, "set", "image", f"deploy/{DEPLOYMENT}", f"{CONTAINER}=Family-Assistant:fixed")
        assert code != 0 and "KS108 invalid-image-reference" in err, err


def _qualified_probe(gate: Gate, host: str) -> dict[str, Any]:
    return deployment("probe", gate.namespace, f"{host}/family-assistant:1.4.2")


def _policy_error(answer: Answer) -> bool:
    return not answer.allowed and f"'{vap.DENY}'" in answer.message and answer.deny_rule is None


def test_missing_parameters_deny_and_a_failing_check_follows_the_failure_policy(anchored: Cluster,
                                                                                 registry: Registry,
                                                                                 tmp_path: Path) -> None:
    host = registry.host
    with gated(anchored, tmp_path, private=[host], allowed=[host]) as gate:
        probe = _qualified_probe(gate, host)
        assert gate.api.dry_run(probe).allowed

        # parameterNotFoundAction: Deny -- without its registries the policy denies rather than guess
        anchored.kubectl("delete", "configmap", vap.PARAMS, "-n", gate.params_namespace)
        denied = gate.wait_for(probe, lambda a: not a.allowed, "denied without the parameter ConfigMap")
        assert "no params found" in denied.message, denied
        code, _, err = kubectl(gate, "apply", "-f", "-", manifest=probe)
        assert code != 0 and "no params found" in err, err

        # a check that fails at run time (a hand-edited allowedRegistries that is no regex) under Fail: denied
        config = write_config(tmp_path / "again.yaml", [host], [host])
        assert gate.install(config).code == 0
        gate.wait_for(probe, lambda a: a.allowed, "admitted with the parameters back")
        broken = {"data": {"allowedRegistries": "^(unclosed"}}
        anchored.kubectl("patch", "configmap", vap.PARAMS, "-n", gate.params_namespace, "--type=merge",
                         "-p", json.dumps(broken))
        failed = gate.wait_for(probe, _policy_error, "denied by the failing check")
        assert "error parsing regexp" in failed.message, failed

        # the same failure under Ignore: admitted, and so is a deploy without parameters
        assert gate.install(config, "--failure-policy", "Ignore").code == 0
        anchored.kubectl("patch", "configmap", vap.PARAMS, "-n", gate.params_namespace, "--type=merge",
                         "-p", json.dumps(broken))
        ignored = gate.wait_for(probe, lambda a: a.allowed, "admitted under Ignore despite the failing check")
        assert ignored.warned_rules == set()
        anchored.kubectl("delete", "configmap", vap.PARAMS, "-n", gate.params_namespace)
        gate.wait_for(probe, lambda a: a.allowed, "admitted under Ignore without the parameter ConfigMap")
