"""``-o sarif`` against the OASIS SARIF 2.1.0 schema, and what a GitHub code scanning user would notice."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft4Validator
from jsonschema.validators import validator_for
from typer.testing import CliRunner

from kubeshape.cli.app import app
from kubeshape.findings import Finding, ObjectRef, Severity
from kubeshape.report.model import Report
from kubeshape.report.sarif import render_sarif
from kubeshape.rules.base import Rule, RuleDoc

SCHEMA_PATH = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
# RFC 3986 characters: a percent-encoded URI reference has nothing else.
URI_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")


def _validator() -> Draft4Validator:
    cls = validator_for(SCHEMA)
    cls.check_schema(SCHEMA)
    validator: Draft4Validator = cls(SCHEMA, format_checker=cls.FORMAT_CHECKER)
    return validator


def schema_errors(log: Any) -> list[str]:
    errors = sorted(_validator().iter_errors(log), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message}" for e in errors]


def demo_sarif() -> dict[str, Any]:
    result = CliRunner().invoke(app, ["doctor", "--demo", "-o", "sarif"])
    assert result.exit_code == 1, result.output  # the demo has findings
    log: dict[str, Any] = json.loads(result.stdout)
    return log


def demo_sarif_in_a_process(hash_seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    proc = subprocess.run([sys.executable, "-m", "kubeshape", "doctor", "--demo", "-o", "sarif"],
                          capture_output=True, text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 1, proc.stderr
    return proc.stdout


# --- a small synthetic report: every shape of location a finding can have ----------------------------------------

def _noop(ctx: Any) -> Any:
    return iter(())


def _rule(rule_id: str, name: str, severity: Severity) -> Rule:
    doc = RuleDoc(what=f"{name} what", why=f"{name} why", example="```yaml\nimage: app:latest\n```", fix=f"{name} fix")
    return Rule(rule_id, name, int(rule_id[2]), severity, f"{name} summary", doc, (), _noop)


RULES = [_rule("KS101", "unqualified-image", Severity.ERROR), _rule("KS202", "missing-change-cause", Severity.WARNING),
         _rule("KS302", "unpinned-base-image", Severity.WARNING), _rule("KS601", "orphaned-hpa", Severity.WARNING),
         _rule("KS703", "no-metrics-server", Severity.INFO)]
BACKEND = ObjectRef("Deployment", "homelab", "backend")
OUTSIDE = "/srv/elsewhere/values.yaml"  # a file outside the repository: an absolute URI is the truth for it


def synthetic_findings() -> list[Finding]:
    return [
        Finding("KS101", Severity.ERROR, 1, BACKEND, "Image backend:v1 has no registry host",
                fix="kubectl -n homelab set image deployment/backend backend=registry.local/backend:v1",
                file="deploy/backend.yaml", line=21, source="repo+cluster", dedupe="backend"),
        Finding("KS202", Severity.WARNING, 2, BACKEND, "Rollout history shows <none> for change-cause",
                file="./deploy/my app/bäckend.yaml", line=4),  # leading ./, a space and a non-ASCII letter
        Finding("KS202", Severity.WARNING, 2, BACKEND, "Rollout history shows <none> for change-cause",
                file=r"deploy\windows\backend.yaml"),  # a Windows separator, no line
        Finding("KS302", Severity.WARNING, 3, None, "FROM python:3 is not pinned to a digest",
                file="services/backend/Dockerfile", line=1),  # a file, no object
        Finding("KS101", Severity.ERROR, 1, ObjectRef("HelmRelease", "homelab", "backend"),
                "Image from values has no registry host", file=OUTSIDE, line=3),
        Finding("KS601", Severity.WARNING, 6, ObjectRef("HorizontalPodAutoscaler", "homelab", "whisper-hpa"),
                "HPA scales Deployment/whisper, which does not exist", source="cluster"),  # an object, no file
        Finding("KS703", Severity.INFO, 7, None, "No metrics-server: HPAs cannot scale",
                source="cluster"),  # cluster-wide: neither file nor object
        Finding("KS999", Severity.WARNING, 4, None, "A rule the catalog does not list", source="registry"),
    ]


def synthetic_report() -> Report:
    return Report(synthetic_findings(), [], sources={"repo": ".", "cluster": "kind-homelab"},
                  blind_spots=["registry not reachable: tag sprawl not checked"], notes=["context kind-homelab"],
                  generated_at=datetime(2025, 11, 17, 9, 30, tzinfo=UTC), tool_version="0.1.0")


def synthetic_sarif() -> dict[str, Any]:
    log: dict[str, Any] = json.loads(render_sarif(synthetic_report(), RULES))
    return log


def _results(log: dict[str, Any]) -> list[dict[str, Any]]:
    return [res for run in log["runs"] for res in run["results"]]


def _artifacts(log: dict[str, Any]) -> list[dict[str, Any]]:
    return [loc["physicalLocation"]["artifactLocation"] for res in _results(log) for loc in res["locations"]
            if "physicalLocation" in loc]


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


# --- the schema ----------------------------------------------------------------------------------------------------

def test_vendored_schema_is_the_oasis_sarif_2_1_0_schema() -> None:
    assert SCHEMA["id"] == "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert validator_for(SCHEMA) is Draft4Validator
    assert SCHEMA["properties"]["version"]["enum"] == ["2.1.0"]


def test_the_validator_is_not_vacuous() -> None:
    log = synthetic_sarif()
    assert schema_errors(log) == []
    log["runs"][0]["results"][0]["level"] = "fatal"
    del log["runs"][0]["tool"]["driver"]["name"]
    log["runs"][0]["results"][1]["locations"][0]["physicalLocation"]["region"]["startLine"] = 0
    errors = schema_errors(log)
    assert len(errors) == 3, errors


@pytest.mark.parametrize("make", [demo_sarif, synthetic_sarif], ids=["demo", "synthetic"])
def test_sarif_is_valid_against_the_sarif_2_1_0_schema(make: Any) -> None:
    log = make()
    assert schema_errors(log) == []
    assert log["version"] == "2.1.0"
    assert _results(log), "nothing to validate"


# --- what a code scanning user notices -----------------------------------------------------------------------------

@pytest.mark.parametrize("make", [demo_sarif, synthetic_sarif], ids=["demo", "synthetic"])
def test_every_result_has_a_location(make: Any) -> None:
    for res in _results(make()):
        assert res["locations"], res["ruleId"]
        for loc in res["locations"]:
            assert "physicalLocation" in loc or loc.get("logicalLocations"), res
            for logical in loc.get("logicalLocations", []):
                assert logical["name"] and logical["kind"], res
                assert logical.get("fullyQualifiedName", logical["name"]) == logical["name"]  # top level: §3.33.5


@pytest.mark.parametrize("make", [demo_sarif, synthetic_sarif], ids=["demo", "synthetic"])
def test_repo_files_are_relative_uris_under_srcroot(make: Any) -> None:
    log = make()
    for run in log["runs"]:
        base = run["originalUriBaseIds"]["%SRCROOT%"]
        assert "uri" not in base and base["description"]["text"]  # declared, with no machine's absolute path
    artifacts = _artifacts(log)
    assert artifacts
    for art in artifacts:
        uri = art["uri"]
        assert URI_CHARS.fullmatch(uri), uri
        if "uriBaseId" in art:
            assert art["uriBaseId"] == "%SRCROOT%"
            assert not urlsplit(uri).scheme and not uri.startswith(("/", "./")) and "\\" not in uri, uri
        else:
            assert urlsplit(uri).scheme == "file", uri  # only a file outside the repository is absolute


def test_synthetic_locations() -> None:
    results = _results(synthetic_sarif())
    locs = [res["locations"][0] for res in results]
    assert [loc.get("physicalLocation", {}).get("artifactLocation") for loc in locs[:5]] == [
        {"uri": "deploy/backend.yaml", "uriBaseId": "%SRCROOT%"},
        {"uri": "deploy/my%20app/b%C3%A4ckend.yaml", "uriBaseId": "%SRCROOT%"},
        {"uri": "deploy/windows/backend.yaml", "uriBaseId": "%SRCROOT%"},
        {"uri": "services/backend/Dockerfile", "uriBaseId": "%SRCROOT%"},
        {"uri": "file:///srv/elsewhere/values.yaml"},
    ]
    assert locs[0]["physicalLocation"]["region"] == {"startLine": 21}
    assert "region" not in locs[2]["physicalLocation"]
    # a file and an object: both; a file alone: the file; an object alone: the object; neither: the source
    assert locs[0]["logicalLocations"] == [{"name": "homelab/Deployment/backend", "kind": "resource"}]
    assert "logicalLocations" not in locs[3]
    assert locs[5] == {"logicalLocations": [{"name": "homelab/HorizontalPodAutoscaler/whisper-hpa",
                                             "kind": "resource"}]}
    assert locs[6] == {"logicalLocations": [{"name": "cluster", "kind": "source"}]}
    assert locs[7] == {"logicalLocations": [{"name": "registry", "kind": "source"}]}


def test_no_absolute_path_leaks_for_files_inside_the_repo() -> None:
    with resources.as_file(resources.files("kubeshape") / "demo") as demo:
        roots = {str(demo), str(Path(demo).resolve()), Path(demo).resolve().as_uri(), str(Path.cwd())}
    log = demo_sarif()
    assert all("uriBaseId" in art for art in _artifacts(log))  # every demo file is inside the demo repository
    assert not [(r, s) for s in _strings(log) for r in roots if r in s]
    assert "file://" not in json.dumps(log)
    synthetic = json.dumps(synthetic_sarif())
    assert synthetic.count("file://") == 1 and OUTSIDE in synthetic  # the one file outside the repository


def test_demo_fingerprints_are_equal_across_two_runs() -> None:
    first, second = (json.loads(demo_sarif_in_a_process(seed)) for seed in ("1", "2"))
    prints = [(r["ruleId"], r["partialFingerprints"]) for r in _results(first)]
    assert prints == [(r["ruleId"], r["partialFingerprints"]) for r in _results(second)]
    values = [p["kubeshape/v1"] for _, p in prints]
    assert len(set(values)) == len(values) == len(_results(first))
    assert all(re.fullmatch(r"[0-9a-f]{64}:\d+", v) for v in values)
