"""SARIF 2.1.0 for GitHub code scanning and other SARIF viewers."""

from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import quote

import orjson

from kubeshape.findings import FAMILIES, Finding, Severity
from kubeshape.findings import fingerprint as finding_fingerprint
from kubeshape.redact import redact_report
from kubeshape.report.fixblocks import split_fix
from kubeshape.report.model import Report
from kubeshape.rules.base import Rule

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/kubeshape/kubeshape"
LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
SRCROOT = "%SRCROOT%"
# SARIF 2.1.0 §3.14.14: the base that relative artifact URIs resolve against. Its absolute ``uri`` is left out (the
# spec allows that when it would be absolute) so that the log is the same on every machine and names no local
# directory; GitHub code scanning resolves relative URIs against the repository root anyway.
ORIGINAL_URI_BASE_IDS = {SRCROOT: {"description": {
    "text": "The root of the repository that kubeshape analysed (its git top level): relative artifact URIs "
            "are paths from there."}}}
_DIFF_HEADER = ("--- ", "+++ ", "@@", "diff ", "index ")


def _rule_descriptor(r: Rule) -> dict[str, Any]:
    d = r.doc
    text = f"What it does:\n{d.what}\n\nWhy is this bad?\n{d.why}\n\nExample:\n{d.example}\n\nFix:\n{d.fix}"
    markdown = (f"## What it does\n\n{d.what}\n\n## Why is this bad?\n\n{d.why}\n\n## Example\n\n{d.example}"
                f"\n\n## Fix\n\n{d.fix}")
    return {
        "id": r.id,
        "name": r.name,
        "shortDescription": {"text": r.summary},
        "fullDescription": {"text": d.what},
        "help": {"text": text, "markdown": markdown},
        "defaultConfiguration": {"level": LEVEL[r.severity]},
        "properties": {"tags": [FAMILIES.get(r.family, str(r.family))]},
    }


def _stub_descriptor(f: Finding) -> dict[str, Any]:
    """For a finding whose rule was not passed in, so that every result has a ``ruleIndex``."""
    return {"id": f.rule, "properties": {"tags": [FAMILIES.get(f.family, str(f.family))]}}


def _fix_summary(fix: str) -> str:
    """The first meaningful line of a fix, with `` …`` when there is more."""
    blocks = split_fix(fix)
    if not blocks:
        return ""
    lines = [ln.strip() for ln in blocks[0].text.splitlines()
             if ln.strip() and not ln.startswith(_DIFF_HEADER)]
    more = len(lines) > 1 or len(blocks) > 1
    return (lines[0] if lines else "") + (" …" if more else "")


def _uri(file: str) -> tuple[str, bool]:
    """A percent-encoded URI for ``file`` and whether it is relative to the source root."""
    for flavour in (PurePosixPath, PureWindowsPath):
        if flavour(file).is_absolute():
            return flavour(file).as_uri(), False
    return quote(file.replace("\\", "/").removeprefix("./"), safe="/"), True


def _logical_location(f: Finding) -> dict[str, str]:
    """The object a finding is about, else the source it was seen in (``cluster``, ``registry``...).

    These are top-level logical locations (no ``parentIndex``), so ``fullyQualifiedName`` is left out: SARIF 2.1.0
    §3.33.5 says it then defaults to ``name``, which already holds the whole reference (``ns/Kind/name``)."""
    if f.object:
        return {"name": str(f.object), "kind": "resource"}
    return {"name": f.source or "cluster", "kind": "source"}


def _location(f: Finding) -> dict[str, Any]:
    """A file and line when the finding has them, the object too when it has one; a finding with neither file nor
    object is located at its source, so that every result has a location."""
    loc: dict[str, Any] = {}
    if f.file:
        uri, relative = _uri(f.file)
        artifact = {"uri": uri, "uriBaseId": SRCROOT} if relative else {"uri": uri}
        physical: dict[str, Any] = {"artifactLocation": artifact}
        if f.line:
            physical["region"] = {"startLine": f.line}
        loc["physicalLocation"] = physical
    if f.object or not f.file:
        loc["logicalLocations"] = [_logical_location(f)]
    return loc


def _result(f: Finding, index: int, seen: dict[str, int]) -> dict[str, Any]:
    text = f.message
    if f.root_cause:
        text += f"\nRoot cause: {f.root_cause}"
    if f.fix:
        text += f"\nFix: {_fix_summary(f.fix)}"
    fingerprint = finding_fingerprint(f)
    seen[fingerprint] = seen.get(fingerprint, 0) + 1
    result: dict[str, Any] = {
        "ruleId": f.rule,
        "ruleIndex": index,
        "level": LEVEL[f.severity],
        "message": {"text": text},
    }
    result["locations"] = [_location(f)]
    result["partialFingerprints"] = {"kubeshape/v1": f"{fingerprint}:{seen[fingerprint]}"}
    result["properties"] = {"evidence": f.evidence, "rootCause": f.root_cause, "fix": f.fix,
                            "source": f.source}
    return result


def render_sarif(report: Report, rules: list[Rule]) -> str:
    """One SARIF run with the full rule catalog in ``rules`` and a result per finding."""
    report = redact_report(report)  # the final pass: nothing a rule copied can leak
    descriptors = [_rule_descriptor(r) for r in rules]
    index = {r.id: i for i, r in enumerate(rules)}
    for f in report.findings:
        if f.rule not in index:
            index[f.rule] = len(descriptors)
            descriptors.append(_stub_descriptor(f))
    driver: dict[str, Any] = {"name": "kubeshape", **({"version": report.tool_version} if report.tool_version
                                                       else {}),
                              "informationUri": INFORMATION_URI, "rules": descriptors}
    seen: dict[str, int] = {}
    notifications = [{"level": "warning", "message": {"text": s}} for s in report.blind_spots]
    notifications += [{"level": "note", "message": {"text": n}} for n in report.notes]
    run = {
        "tool": {"driver": driver},
        "originalUriBaseIds": ORIGINAL_URI_BASE_IDS,
        "invocations": [{"executionSuccessful": True, "toolExecutionNotifications": notifications}],
        "results": [_result(f, index[f.rule], seen) for f in report.findings],
    }
    doc = {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
