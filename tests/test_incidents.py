"""Incidents, the phased plan and the one-screen report, on the demo and on small made-up reports."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from kubeshape.findings import Finding, ObjectRef, Severity
from kubeshape.report.incidents import build_incidents
from kubeshape.report.plan import build_plan

DASH = ObjectRef("Deployment", "homelab", "dashboard")
API = ObjectRef("Deployment", "homelab", "api")


def _ks(*args: str, columns: int = 100) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "kubeshape", *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)


def _demo_json() -> dict[str, object]:
    return json.loads(_ks("doctor", "--demo", "-o", "json").stdout)  # type: ignore[no-any-return]


# --- the demo --------------------------------------------------------------------------------------------


def test_demo_fits_one_screen_with_the_seven_problems_in_order() -> None:
    proc = _ks("doctor", "--demo")
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert len(lines) <= 60, "\n".join(lines)
    assert max(len(ln) for ln in lines if not ln.lstrip().startswith(("docker ", "kubectl "))) <= 100
    summary = [ln for ln in lines if re.match(r"^ \d [A-Z]", ln)]
    assert [ln.split()[1] for ln in summary] == ["Images", "Manifests", "Pipeline", "Registry", "Stability",
                                                  "Orphans", "Observability"]
    out = proc.stdout
    # the seed's key evidence stays visible: node names and counts
    for evidence in ("asuna", "pesubuntu", "45 tags", "598", "429", "otel-collector", "HPAs", "3 variants",
                     "12 revisions"):
        assert evidence in out, evidence
    # one plan, commands once, in phases
    assert out.index("Stop the bleeding") < out.index("Foundation") < out.index("Excellence")
    assert out.count("docker push 100.81.76.55:30500/family-assistant:phase2-mcp-logging-fix") == 1
    assert "kubectl delete hpa whisper-hpa -n homelab" in out


def test_demo_incidents_group_by_cause() -> None:
    doc = _demo_json()
    findings = doc["findings"]
    incidents = doc["incidents"]
    assert isinstance(findings, list) and isinstance(incidents, list)
    rules_of = [{findings[i]["rule"] for i in inc["findingIndexes"]} for inc in incidents]
    # ImagePullBackOff on asuna ← only on pesubuntu / never pushed ← unqualified name: one incident
    pull = next(inc for inc, rules in zip(incidents, rules_of, strict=True) if "KS105" in rules)
    assert {"KS105", "KS106", "KS404", "KS101"} <= rules_of[incidents.index(pull)]
    assert pull["chain"][0].startswith("ImagePullBackOff on asuna")
    assert "pesubuntu" in " ".join(pull["chain"]) and "unqualified" in pull["chain"][-1]
    # 598 restarts ← probes answered 429 ← the app returns 429 while its upstream rate-limits it
    storm = next(inc for inc, rules in zip(incidents, rules_of, strict=True) if "KS501" in rules)
    assert [c.split(" (")[0] for c in storm["chain"]][:2] == ["598 restarts", "probes answered HTTP 429 3588 times"]
    # the log flood of failed exports sits with the missing collector, not with the restart storm
    otel = next(inc for inc, rules in zip(incidents, rules_of, strict=True) if "KS701" in rules)
    flood_workloads = {findings[i]["object"]["name"] for i in otel["findingIndexes"] if findings[i]["rule"] == "KS504"}
    assert flood_workloads == {"family-assistant-backend"}
    # every finding is in exactly one incident
    every = sorted(i for inc in incidents for i in inc["findingIndexes"])
    assert every == list(range(len(findings)))
    # each plan step closes incidents that exist
    ids = {inc["id"] for inc in incidents}
    assert all(set(step["closes"]) <= ids for step in doc["plan"])


def test_demo_verbose_shows_every_finding() -> None:
    doc = _demo_json()
    full = _ks("doctor", "--demo", "-v").stdout
    for f in doc["findings"]:
        assert f["id"] in full, f["id"]


def test_piped_output_never_splits_a_command_at_80_columns() -> None:
    doc = _demo_json()
    commands = {ln.strip() for step in doc["plan"] for ln in step["commands"]}
    for args in (("doctor", "--demo"), ("doctor", "--demo", "-v")):
        lines = {ln.strip() for ln in _ks(*args, columns=80).stdout.splitlines()}
        whole = commands & lines
        assert any(len(c) > 80 for c in whole), args  # long commands are shown, on one line
        cut = [ln for ln in lines - commands if len(ln) > 20 and any(c.startswith(ln) for c in commands)]
        assert not cut, cut[:3]  # no shown line is the first part of a command


def test_explain_an_incident_and_a_finding() -> None:
    proc = _ks("explain", "1", "--demo")
    assert proc.returncode == 0
    assert proc.stdout.startswith("### #1 ")
    assert "## Fix — step 1" in proc.stdout and "docker push" in proc.stdout
    assert "## Findings (" in proc.stdout
    finding = _ks("explain", "KS601", "--demo", "-o", "json")
    assert {f["rule"] for f in json.loads(finding.stdout)["findings"]} == {"KS601"}
    missing = _ks("explain", "99", "--demo")
    assert missing.returncode == 2 and "no such incident" in missing.stderr and "Traceback" not in missing.stderr


def test_markdown_reads_as_an_rca() -> None:
    md = _ks("doctor", "--demo", "-o", "markdown").stdout
    order = ["## Executive summary", "## Incidents", "## Action plan", "### Phase 1: Stop the bleeding",
             "### Phase 2: Foundation", "### Phase 3: Excellence", "## Metrics: now vs target"]
    positions = [md.index(h) for h in order]
    assert positions == sorted(positions)
    assert md.count("docker push 100.81.76.55:30500/family-assistant:phase2-mcp-logging-fix\n") >= 1
    plan = md[md.index("## Action plan"):md.index("## Metrics")]
    assert plan.count("docker push 100.81.76.55:30500/family-assistant:phase2-mcp-logging-fix") == 1


# --- grouping rules --------------------------------------------------------------------------------------


def _f(rule: str, obj: ObjectRef | None, severity: Severity = Severity.WARNING, **data: object) -> Finding:
    return Finding(rule, severity, int(rule[2]), obj, f"{rule} on {obj.name if obj else 'cluster'}",
                   evidence=[f"{rule} evidence"], fix=f"kubectl fix-{rule.lower()} {obj.name if obj else ''}",
                   root_cause=f"{rule} cause", source="cluster", data=dict(data))


def test_two_unrelated_problems_on_one_workload_stay_two_incidents() -> None:
    findings = [_f("KS701", API, Severity.ERROR, service="otel", namespace="homelab"),
                _f("KS103", API), _f("KS602", API, Severity.INFO, idle=5)]
    incidents = build_incidents(findings)
    assert len(incidents) == 3
    assert [i.family for i in incidents] == [1, 6, 7]


def test_a_log_flood_joins_the_missing_service_it_names_only() -> None:
    flood_otel = _f("KS504", API, services=["homelab/otel"], http_statuses=[])
    flood_other = _f("KS504", DASH, services=[], http_statuses=[])
    missing = _f("KS701", API, Severity.ERROR, service="otel", namespace="homelab")
    incidents = build_incidents([flood_otel, flood_other, missing])
    grouped = [sorted(f.rule + ":" + (f.object.name if f.object else "") for f in i.findings) for i in incidents]
    assert ["KS504:api", "KS701:api"] in grouped
    assert ["KS504:dashboard"] in grouped


def test_restarts_join_the_probe_failures_of_the_same_workload_only() -> None:
    storm_dash = _f("KS501", DASH, restarts=598)
    storm_api = _f("KS501", API, restarts=40)
    probes = _f("KS502", DASH, Severity.ERROR, failures=10)
    incidents = build_incidents([storm_dash, storm_api, probes])
    dash = next(i for i in incidents if probes in i.findings)
    assert storm_dash in dash.findings and storm_api not in dash.findings
    assert dash.chain[0].startswith("598 restarts") and dash.roots == [probes]


def test_standalone_findings_of_one_rule_become_one_incident() -> None:
    hpas = [_f("KS601", ObjectRef("HorizontalPodAutoscaler", "homelab", n), Severity.ERROR) for n in ("a", "b")]
    incidents = build_incidents(hpas)
    assert len(incidents) == 1
    assert incidents[0].title == "2 HPAs scale workloads that do not exist (a, b)"


def test_plan_prints_each_command_once_and_orders_phases() -> None:
    same_fix = "kubectl delete hpa a -n homelab"
    findings = [_f("KS703", None), _f("KS601", ObjectRef("HorizontalPodAutoscaler", "homelab", "a"), Severity.ERROR)]
    findings[1].fix = same_fix
    findings.append(_f("KS601", ObjectRef("HorizontalPodAutoscaler", "homelab", "a2"), Severity.ERROR))
    findings[2].fix = same_fix
    plan = build_plan(build_incidents(findings))
    assert [s.phase for s in plan] == ["stop", "excellence"]
    assert sum(c == same_fix for s in plan for c in s.commands) == 1


def test_no_findings_no_incidents() -> None:
    assert build_incidents([]) == []
    assert build_plan([]) == []
