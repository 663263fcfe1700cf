"""Tests for the report renderers: what a reader or a consuming tool sees in each format."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console

from kubeshape.findings import Finding, ObjectRef, Severity
from kubeshape.report.html import render_html
from kubeshape.report.json_ import render_json
from kubeshape.report.markdown import render_markdown
from kubeshape.report.model import Metric, Report
from kubeshape.report.render import FORMATS, render
from kubeshape.report.sarif import render_sarif
from kubeshape.report.text import render_text, split_fix
from kubeshape.rules.base import Context, Rule, RuleDoc

BACKEND = ObjectRef("Deployment", "homelab", "family-assistant-backend")
DIFF_FIX = """Record why each rollout happened:

--- a/deploy/backend.yaml
+++ b/deploy/backend.yaml
@@ -4,2 +4,2 @@
   annotations:
-    kubernetes.io/change-cause: <none>
+    kubernetes.io/change-cause: "[bold]deploy v1.2.3[/bold] (abc1234)"
"""


def _noop(ctx: Context) -> Iterator[Finding]:
    return iter(())


def _rule(rule_id: str, name: str, severity: Severity) -> Rule:
    doc = RuleDoc(what=f"{name} what", why=f"{name} why", example="```yaml\nimage: app:latest\n```",
                  fix=f"{name} fix")
    return Rule(rule_id, name, int(rule_id[2]), severity, f"{name} summary", doc, (), _noop)


RULES = [_rule("KS101", "unqualified-image", Severity.ERROR), _rule("KS202", "missing-change-cause",
         Severity.WARNING), _rule("KS501", "crash-loop", Severity.ERROR), _rule("KS601", "orphaned-hpa",
         Severity.WARNING)]


def _findings() -> list[Finding]:
    """Four findings, already in the engine's order (worst family first)."""
    return [
        Finding("KS101", Severity.ERROR, 1, BACKEND,
                "Image family-assistant:phase2-mcp-logging-fix has no registry host",
                evidence=[f"pod family-assistant-backend-7fccb9956b-{i:02d}: ImagePullBackOff on asuna"
                          for i in range(13)],
                root_cause="No enforced image naming convention: the image exists only where it was built.",
                fix="kubectl -n homelab set image deployment/family-assistant-backend "
                    "backend=100.81.76.55:30500/family-assistant:phase2-mcp-logging-fix",
                file="deploy/backend.yaml", line=21, source="repo+cluster", dedupe="backend"),
        Finding("KS501", Severity.ERROR, 5, ObjectRef("Deployment", "homelab", "homelab-dashboard"),
                "Container dashboard restarted 598 times in 5 days <script>alert(1)</script>",
                evidence=["Liveness probe failed: HTTP probe failed with statuscode: 429"],
                root_cause="The dashboard is rate limited by the APIs it polls.",
                fix="Cache upstream responses and relax the liveness probe.", source="cluster"),
        Finding("KS202", Severity.WARNING, 2, BACKEND, "Rollout history shows <none> for change-cause",
                evidence=["revisions 44-62: change-cause <none>"],
                root_cause="Changes are applied imperatively.", fix=DIFF_FIX,
                file="deploy/backend.yaml", line=4),
        Finding("KS601", Severity.WARNING, 6, ObjectRef("HorizontalPodAutoscaler", "homelab", "whisper-hpa"),
                "HPA scales Deployment/whisper, which does not exist",
                evidence=['FailedGetScale: deployments.apps "whisper" not found'],
                fix="kubectl delete hpa whisper-hpa -n homelab", source="cluster"),
    ]


def _report(findings: list[Finding] | None = None) -> Report:
    metrics = [
        Metric("deployment_success_rate", "Deployment success rate", 50.0, "%", "≥ 95%", False,
               "1 of 2 latest rollouts available"),
        Metric("orphans", "Orphaned | resources", 0.0, "", "0", True),
    ]
    return Report(_findings() if findings is None else findings, metrics,
                  sources={"repo": "./deploy", "cluster": "kind-homelab"},
                  blind_spots=["registry not reachable: tag sprawl not checked"],
                  notes=["context kind-homelab"],
                  suppressed=2, generated_at=datetime(2025, 11, 17, 9, 30, tzinfo=UTC), tool_version="0.1.0")


def _text(report: Report, *, verbose: bool = False, **console: Any) -> str:
    out = io.StringIO()
    render_text(report, Console(file=out, **({"no_color": True, "width": 120} | console)), verbose=verbose)
    return out.getvalue()


# --- text ----------------------------------------------------------------------------------------------


def test_text_reads_like_the_rca() -> None:
    out = _text(_report())
    lines = out.splitlines()
    assert lines[0] == "kubeshape doctor · repo ./deploy · cluster kind-homelab"
    assert "4 findings (2 errors, 2 warnings, 0 info), 2 suppressed in 4 incidents" in lines[1]
    # the executive summary: the seven families in order, one line each
    summary = [ln for ln in lines if re.match(r"^ \d [A-Z]", ln)]
    assert [ln.split()[1] for ln in summary] == ["Images", "Manifests", "Pipeline", "Registry", "Stability",
                                                  "Orphans", "Observability"]
    assert "#1 family-assistant-backend: Image family-assistant:phase2-mcp-logging-fix" in summary[0]
    assert "no findings" in summary[2]
    # incidents in family order, then the phased plan with the exact command once
    assert out.index("Incidents") < out.index("#1  ERROR") < out.index("#4  WARNING") < out.index("Plan")
    assert "Stop the bleeding" in out and "Foundation" in out
    assert out.count("kubectl delete hpa whisper-hpa -n homelab") == 0  # a warning: not a stop-the-bleeding step
    assert "kubectl -n homelab set image deployment/family-assistant-backend" in out
    assert "Now vs target: 1 of 2 off target" in out
    assert "\x1b[" not in out


def test_text_does_not_eat_brackets_or_angle_brackets() -> None:
    out = _text(_report(), verbose=True)
    assert '+    kubernetes.io/change-cause: "[bold]deploy v1.2.3[/bold] (abc1234)"' in out
    assert "-    kubernetes.io/change-cause: <none>" in out
    assert "<script>alert(1)</script>" in out


def test_text_blind_spots_always_notes_with_verbose() -> None:
    out = _text(_report())
    assert "registry not reachable: tag sprawl not checked" in out  # what was not checked is always said
    assert "context kind-homelab" not in out and "1 note about the sources: -v shows it" in out
    full = _text(_report(), verbose=True)
    assert "context kind-homelab" in full
    row = next(line for line in full.splitlines() if "Deployment success rate" in line)
    assert "50%" in row and "≥ 95%" in row and "✗" in row
    assert "✓" in next(line for line in full.splitlines() if "Orphaned | resources" in line)


def test_text_verbose_shows_every_finding_in_full() -> None:
    short = _text(_report())
    assert "7fccb9956b-05" not in short and "Evidence:" not in short
    full = _text(_report(), verbose=True)
    assert "7fccb9956b-12" in full  # every evidence line of every finding
    for f in _findings():
        assert f.message in full and f.root_cause in full
    assert "deploy/backend.yaml:21" in full and "from cluster" in full


def test_text_piped_output_has_no_ansi() -> None:
    out = io.StringIO()
    render_text(_report(), Console(file=out, width=100))  # colours allowed, but not a terminal
    assert "\x1b[" not in out.getvalue()
    assert "Incidents" in out.getvalue()


def test_text_commands_are_never_split_when_piped_at_80_columns() -> None:
    long_cmd = ("kubectl -n homelab set image deployment/family-assistant-backend "
                "backend=100.81.76.55:30500/family-assistant:phase2-mcp-logging-fix")
    for verbose in (False, True):
        out = _text(_report(), verbose=verbose, width=80)
        assert long_cmd in out.splitlines() or any(ln.strip() == long_cmd for ln in out.splitlines()), verbose
    full = _text(_report(), verbose=True, width=80)
    diff_line = '+    kubernetes.io/change-cause: "[bold]deploy v1.2.3[/bold] (abc1234)"'
    assert any(ln.strip() == diff_line.strip() for ln in full.splitlines())


def test_text_no_findings() -> None:
    out = _text(_report([]))
    # the report has a blind spot: "no problems" only covers what was read, and it says so
    assert "✓ No problems found in what was analysed (2 suppressed) — 1 item(s) not analysed" in out
    assert "Incidents" not in out and "Plan" not in out
    assert "Now vs target" in out


# --- fix language detection ------------------------------------------------------------------------------


@pytest.mark.parametrize(("fix", "expected"), [
    (DIFF_FIX, [(False, ""), (True, "diff")]),
    ("kubectl delete hpa whisper-hpa -n homelab", [(True, "bash")]),
    ("# drop old tags\n$ regctl tag delete reg/app:fixed-v2", [(True, "bash")]),
    ("Add this to the pod spec:\nresources:\n  limits:\n    memory: 512Mi", [(False, ""), (True, "yaml")]),
    ("Pin the image:\n\n```yaml\nimage: reg/app:v1\n```\n\nThen re-apply.", [(False, ""), (True, "yaml"),
                                                                              (False, "")]),
    ("Delete the HPA together with its Deployment.", [(False, "")]),
    ("- Delete the HPA\n- Re-apply the manifest", [(False, "")]),
])
def test_split_fix_detects_language(fix: str, expected: list[tuple[bool, str]]) -> None:
    assert [(b.code, b.lang) for b in split_fix(fix)] == expected


def test_split_fix_keeps_blank_lines_inside_code() -> None:
    diff = "--- a/x.yaml\n+++ b/x.yaml\n@@ -1,4 +1,4 @@\n a: 1\n\n-b: 2\n+b: 3"
    assert split_fix(diff) == [(True, "diff", diff)]
    yaml = "Set limits:\n  resources:\n    limits:\n\n      memory: 512Mi"
    assert split_fix(yaml) == [(False, "", "Set limits:"),
                               (True, "yaml", "resources:\n  limits:\n\n    memory: 512Mi")]


# --- markdown --------------------------------------------------------------------------------------------


def test_markdown_structure() -> None:
    md = render_markdown(_report())
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert headings == ["## Executive summary", "## Incidents", "## Action plan", "## Metrics: now vs target",
                        "## Blind spots (not checked in this run)", "## Notes"]
    assert "| 1 | Image registry chaos | 1 🔴 | [#1](#incident-1)" in md
    assert "### Phase 1: Stop the bleeding" in md and "### Phase 2: Foundation" in md
    assert "```diff\n--- a/deploy/backend.yaml" in md
    assert '+    kubernetes.io/change-cause: "[bold]deploy v1.2.3[/bold] (abc1234)"\n```' in md
    assert md.count("```bash\nkubectl delete hpa whisper-hpa -n homelab\n```") == 2  # plan step + the finding
    assert "| Deployment success rate | 50% | ≥ 95% | ❌ | 1 of 2 latest rollouts available |" in md
    assert "| Orphaned \\| resources |" in md
    assert "<details><summary>… and 3 more</summary>" in md
    assert md.endswith("\n")


def test_markdown_escapes_html_in_prose() -> None:
    md = render_markdown(_report())
    assert "Rollout history shows \\<none\\> for change-cause" in md
    assert "<script>" not in md


# --- json ------------------------------------------------------------------------------------------------


def test_json_contract() -> None:
    raw = render_json(_report())
    assert raw.endswith("}\n")
    doc = json.loads(raw)
    assert list(doc) == ["version", "tool", "command", "generatedAt", "sources", "summary", "findings",
                         "incidents", "plan", "metrics", "blindSpots", "notes"]
    assert doc["version"] == 1
    assert doc["tool"] == {"name": "kubeshape", "version": "0.1.0"}
    assert doc["generatedAt"] == "2025-11-17T09:30:00Z"
    summary = {k: v for k, v in doc["summary"].items() if k not in ("incidents", "families")}
    assert summary == {"total": 4, "error": 2, "warning": 2, "info": 0, "suppressed": 2,
                       "byFamily": {"1": 1, "2": 1, "3": 0, "4": 0, "5": 1, "6": 1, "7": 0}}
    # the existing contract stays: every key of a finding as before, plus its ID
    assert [{k: v for k, v in f.items() if k != "id"} for f in doc["findings"]] == [
        json.loads(json.dumps(f.as_dict())) for f in _findings()]
    assert [f["id"][:5] for f in doc["findings"]] == ["KS101", "KS501", "KS202", "KS601"]
    assert [i["title"][:24] for i in doc["incidents"]] == ["family-assistant-backend", "family-assistant-backend",
                                                            "homelab-dashboard: Conta", "whisper-hpa: HPA scales "]
    assert doc["incidents"][0]["findingIndexes"] == [0]
    assert [(s["phase"], s["closes"]) for s in doc["plan"]] == [("stop", ["1"]), ("stop", ["3"]),
                                                                  ("foundation", ["2"]), ("foundation", ["4"])]
    assert doc["metrics"]["orphans"] == {"title": "Orphaned | resources", "value": 0.0, "unit": "",
                                         "target": "0",
                                         "ok": True, "detail": ""}
    assert doc["blindSpots"] == ["registry not reachable: tag sprawl not checked"]


def test_json_serialises_sets_in_data_and_null_time() -> None:
    finding = _findings()[0]
    finding.data = {"tags": {"b", "a"}}
    report = _report([finding])
    report.generated_at = None
    doc = json.loads(render_json(report))
    assert doc["findings"][0]["data"] == {"tags": ["a", "b"]}
    assert doc["generatedAt"] is None


# --- sarif -----------------------------------------------------------------------------------------------


def _need(obj: Any, key: str, kind: type, where: str) -> Any:
    assert isinstance(obj, dict), f"{where} is not an object"
    assert isinstance(obj.get(key), kind), f"{where}.{key} missing or not {kind.__name__}"
    return obj[key]


def _check_sarif(log: Any) -> None:
    """The parts of the SARIF 2.1.0 schema (and GitHub's subset) that we rely on."""
    assert _need(log, "version", str, "$") == "2.1.0"
    assert _need(log, "$schema", str, "$").startswith("https://")
    for r, run in enumerate(_need(log, "runs", list, "$")):
        driver = _need(_need(run, "tool", dict, f"runs[{r}]"), "driver", dict, "tool")
        _need(driver, "name", str, "driver")
        rules = _need(driver, "rules", list, "driver")
        for i, rule in enumerate(rules):
            _need(rule, "id", str, f"rules[{i}]")
            for key in ("shortDescription", "fullDescription"):
                if key in rule:
                    _need(rule[key], "text", str, f"rules[{i}].{key}")
        for i, res in enumerate(_need(run, "results", list, f"runs[{r}]")):
            where = f"results[{i}]"
            _need(_need(res, "message", dict, where), "text", str, f"{where}.message")
            assert res["level"] in {"none", "note", "warning", "error"}
            assert rules[_need(res, "ruleIndex", int, where)]["id"] == _need(res, "ruleId", str, where)
            for loc in res.get("locations", []):
                if "physicalLocation" in loc:
                    physical = loc["physicalLocation"]
                    art = _need(physical, "artifactLocation", dict, f"{where}.physicalLocation")
                    _need(art, "uri", str, f"{where}.artifactLocation")
                    if "region" in physical:
                        assert _need(physical["region"], "startLine", int, where) >= 1
                for logical in loc.get("logicalLocations", []):
                    _need(logical, "name", str, f"{where}.logicalLocations")
            for value in _need(res, "partialFingerprints", dict, where).values():
                assert isinstance(value, str)


def test_sarif_log() -> None:
    log = json.loads(render_sarif(_report(), RULES))
    _check_sarif(log)
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("kubeshape", "0.1.0")
    assert [r["id"] for r in driver["rules"]] == ["KS101", "KS202", "KS501", "KS601"]
    ks202 = driver["rules"][1]
    assert ks202["shortDescription"]["text"] == "missing-change-cause summary"
    assert ks202["defaultConfiguration"]["level"] == "warning"
    assert ks202["properties"]["tags"] == ["Manifests"]
    assert "## Why is this bad?" in ks202["help"]["markdown"]

    results = {r["ruleId"]: r for r in run["results"]}
    assert [r["level"] for r in run["results"]] == ["error", "error", "warning", "warning"]
    assert all(driver["rules"][r["ruleIndex"]]["id"] == rid for rid, r in results.items())
    file_loc = results["KS101"]["locations"][0]
    assert file_loc["physicalLocation"] == {"artifactLocation": {"uri": "deploy/backend.yaml",
                                                                 "uriBaseId": "%SRCROOT%"},
                                            "region": {"startLine": 21}}
    live_loc = results["KS601"]["locations"][0]
    assert "physicalLocation" not in live_loc
    assert live_loc["logicalLocations"] == [{"name": "homelab/HorizontalPodAutoscaler/whisper-hpa",
                                             "kind": "resource"}]
    text = results["KS101"]["message"]["text"]
    assert "has no registry host" in text and "Root cause:" in text and "Fix: kubectl -n homelab" in text
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert notes[0]["message"]["text"] == "registry not reachable: tag sprawl not checked"


def test_sarif_fingerprints_are_stable_and_unique() -> None:
    first = json.loads(render_sarif(_report(), RULES))["runs"][0]["results"]
    moved = _findings()
    moved[1].message = moved[1].message.replace("598", "611")  # restart count grew
    moved[0].line = 30  # the file was edited above the finding
    second = json.loads(render_sarif(_report(moved), RULES))["runs"][0]["results"]
    prints = [r["partialFingerprints"]["kubeshape/v1"] for r in first]
    assert prints == [r["partialFingerprints"]["kubeshape/v1"] for r in second]
    assert len(set(prints)) == len(prints)


def test_sarif_result_for_unregistered_rule_still_has_a_rule() -> None:
    log = json.loads(render_sarif(_report(), RULES[:1]))
    _check_sarif(log)
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == ["KS101", "KS501", "KS202", "KS601"]


# --- html ------------------------------------------------------------------------------------------------


def test_html_is_self_contained_and_escaped() -> None:
    page = render_html(_report())
    assert page.startswith("<!DOCTYPE html>")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script") == 1 and "<script>(function" in page  # the inline filter script only
    assert "<link" not in page and " src=" not in page
    assert "change-cause: &lt;none&gt;" in page
    assert "<td class=\"fam-name\">Images<span class=\"fam-title\">Image registry chaos</span></td>" in page
    assert [x[0] for x in page.split('data-family="')[1:]] == ["1", "2", "5", "6"]  # incidents in family order
    assert '<span class="badge error">ERROR</span>' in page
    assert "<pre class=\"diff\">" in page and "<pre class=\"bash\">kubectl delete hpa whisper-hpa" in page
    assert "<td>Orphaned | resources</td>" in page
    assert "registry not reachable" in page


def test_html_no_findings() -> None:
    assert "No problems found" in render_html(_report([]))


# --- render ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_render_writes_every_format(fmt: str) -> None:
    out = io.StringIO()
    render(_report(), fmt, RULES, Console(file=out, width=40, force_terminal=True))
    text = out.getvalue()
    assert "Image registry chaos" in text or "has no registry host" in text or "Images" in text
    if fmt != "text":
        assert "\x1b[" not in text  # neither colour nor wrapping for machine formats
    if fmt == "json":
        assert text == render_json(_report())
    if fmt == "sarif":
        assert text == render_sarif(_report(), RULES)


def test_render_rejects_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        render(_report(), "xml", RULES, Console(file=io.StringIO()))
