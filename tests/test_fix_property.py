"""A fix never widens what is applied: over every corpus repository (and the fix fixtures), planning and applying
the file fixes leaves the set of rendered objects as it was, minus the objects whose documents the plan deletes.

Each repository is copied to a temporary git work tree and loaded lint-only (no cluster; the fix fixtures bring a
registry snapshot so that image fixes are planned too). After ``apply_plan``:

* the rendered objects (kind, namespace, name) are the ones before, minus those every defining document of which
  a step deleted -- and each of those is an orphan (KS601) a step deletes: a duplicate keeps one definition;
* an object no step's findings name (through the document that defines it) renders exactly as before;
* no finding appears that was not there before (rule, object, file), but for a registry tag the deleted copy
  was the last to run (KS403, information);
* planning again changes no file: the fix is idempotent.
"""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from pathlib import Path

import orjson
import pytest
from ruamel.yaml import YAML

from kubeshape.actions.fix.apply import apply_plan
from kubeshape.actions.fix.plan import Plan
from kubeshape.findings import Finding, finding_id
from kubeshape.inventory import K8sObject
from testbed.binaries import binary
from tests.test_fix_files import Run, git, plan_repo

TESTS = Path(__file__).parent
CORPUS = TESTS / "corpus"
FIXTURES = TESTS / "fixtures" / "fix"
REPOS = [*(p for p in sorted(CORPUS.iterdir()) if p.is_dir()), *(p for p in sorted(FIXTURES.iterdir()) if p.is_dir())]
_VAR = re.compile(r"\$\{[^}]*\}")


@pytest.fixture(autouse=True)
def helm_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Local charts are rendered with ``helm template``: the test bed's helm first on PATH."""
    monkeypatch.setenv("PATH", f"{binary('helm').parent}{os.pathsep}{os.environ.get('PATH', '')}")


def copy_repo(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "config", "user.name", "Homelab Owner")
    git(dest, "config", "user.email", "owner@homelab.example")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "as cloned")
    return dest


def snapshot_for(src: Path) -> Path | None:
    path = src.parent / f"{src.name}.registry.json"
    return path if path.is_file() else None


def _written_names(text: str | None, kind: str) -> list[str]:
    """``metadata.name`` of every document of ``kind`` in ``text``, as written (with any ``${VARS}``)."""
    if text is None:
        return []
    out = []
    for doc in YAML(typ="safe", pure=True).load_all(text):
        if isinstance(doc, dict) and doc.get("kind") == kind and isinstance(doc.get("metadata"), dict):
            out.append(str(doc["metadata"].get("name")))
    return out


def _defines(text: str | None, kind: str, name: str) -> bool:
    for written in _written_names(text, kind):
        pattern = "".join(".+" if _VAR.fullmatch(p) else re.escape(p) for p in re.split(r"(\$\{[^}]*\})", written))
        if re.fullmatch(pattern, name):
            return True
    return False


def planned_deletions(run: Run, before_texts: dict[str, str]) -> set[tuple[str, str, str]]:
    """Objects every defining document of which the plan deletes (read from the plan's after-texts)."""
    after_texts: dict[str, str | None] = {}
    for step in run.plan.steps:
        for fc in step.files:
            after_texts[fc.path] = fc.after
    gone = set()
    for key, copies in run.inv.repo_by_key.items():
        if all(o.file in after_texts and _defines(before_texts[str(o.file)], o.kind, o.name)
               and not _defines(after_texts[str(o.file)], o.kind, o.name) for o in copies):
            gone.add(key)
    return gone


def named_documents(run: Run) -> set[tuple[str, str, str]]:
    """(file, kind, name) of the documents that define the objects the plan's steps fix."""
    fixed = {fid for s in run.plan.steps for fid in s.findings}
    out = set()
    for f in run.findings:
        if finding_id(f) in fixed and f.object is not None:
            for o in run.inv.repo_by_key.get((f.object.kind, f.object.namespace, f.object.name), []):
                out.add((str(o.file), o.kind, o.name))
    return out


def deleted_orphans(run: Run) -> set[tuple[str, str, str]]:
    fixed = {fid for s in run.plan.steps for fid in s.findings}
    return {(f.object.kind, f.object.namespace, f.object.name) for f in run.findings
            if f.rule == "KS601" and f.object is not None and finding_id(f) in fixed}


def renders(objects: list[K8sObject]) -> dict[tuple[str, str, str], Counter[bytes]]:
    out: dict[tuple[str, str, str], Counter[bytes]] = {}
    for o in objects:
        out.setdefault(o.key, Counter())[orjson.dumps(o.raw, option=orjson.OPT_SORT_KEYS)] += 1
    return out


def finding_keys(findings: list[Finding]) -> set[tuple[str, str, str]]:
    return {(f.rule, str(f.object), f.file or "") for f in findings}


def files_changed(plan: Plan) -> set[str]:
    return {fc.path for s in plan.steps for fc in s.files}


@pytest.mark.parametrize("src", REPOS, ids=[f"{p.parent.name}/{p.name}" for p in REPOS])
def test_fixes_change_only_what_they_fix_and_are_idempotent(src: Path, tmp_path: Path) -> None:
    root = copy_repo(src, tmp_path / src.name)
    snapshot = snapshot_for(src)
    before = plan_repo(root, snapshot)
    assert not [c for s in before.plan.steps for c in s.cluster], "a lint-only plan changes no cluster"
    texts = {p: (root / p).read_text() for p in files_changed(before.plan)}
    gone = planned_deletions(before, texts)
    # only an orphan (KS601) goes as a whole; a duplicate (KS201) loses its copies, never its last definition
    assert gone <= deleted_orphans(before), gone
    named = named_documents(before)

    outcome = apply_plan(before.plan, root, None)
    assert outcome.stopped is None and outcome.applied == [s.id for s in before.plan.steps]
    assert git(root, "status", "--porcelain") == ""
    assert (outcome.commit is not None) == bool(texts)

    after = plan_repo(root, snapshot)
    assert set(after.inv.repo_by_key) == set(before.inv.repo_by_key) - gone
    old, new = renders(before.inv.repo_objects), renders(after.inv.repo_objects)
    for key in set(new):
        if old[key] != new[key]:
            copies = before.inv.repo_by_key[key]
            assert any((str(o.file), o.kind, o.name) in named for o in copies), f"{key} changed, but no step fixes it"
    # KS403 (a registry tag nothing deploys any more) is the expected echo of deleting a copy that ran it
    assert finding_keys([f for f in after.findings if f.rule != "KS403"]) <= finding_keys(before.findings)
    assert not files_changed(after.plan), "planning again after --apply changes no file"
    # every finding a step fixed is gone
    fixed = {fid for s in before.plan.steps for fid in s.findings}
    left = {(f.rule, str(f.object), f.file or "", f.dedupe) for f in after.findings}
    assert not [f for f in before.findings if finding_id(f) in fixed
                and (f.rule, str(f.object), f.file or "", f.dedupe) in left]


def test_the_property_runs_on_plans_that_edit_and_delete(tmp_path: Path) -> None:
    """The fixtures make the property meaningful: across them the plans edit files, delete documents and delete
    whole files (a corpus of clean repositories alone would prove nothing)."""
    kinds: Counter[str] = Counter()
    for src in REPOS:
        root = copy_repo(src, tmp_path / src.parent.name / src.name)
        run = plan_repo(root, snapshot_for(src))
        for s in run.plan.steps:
            kinds.update(s.rules)
            for fc in s.files:
                kinds["file deleted" if fc.after is None else "file edited"] += 1
                before = (root / fc.path).read_text()
                if fc.after is not None and before.count("\n---") > fc.after.count("\n---"):
                    kinds["document deleted"] += 1
    assert {"KS101", "KS102", "KS201", "KS601", "KS701", "file deleted", "file edited", "document deleted"} <= \
        set(kinds), kinds
