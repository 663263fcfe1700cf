"""What a fixer sees (the inventory, the findings, the files as earlier steps left them) and how it records a step.

A fixer opens ``ctx.step(...)``, edits files and adds cluster changes through the step; when the block ends
without error the step joins the plan and its edits become the text later steps see. ``Refuse`` (or an
``EditError`` from an edit) drops the step and records why, so the plan never holds half a fix.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from kubeshape.actions.fix.plan import ClusterChange, FileChange, ObjectId, RegistryPush, Skipped, Step
from kubeshape.config import Config
from kubeshape.errors import KubeshapeError
from kubeshape.findings import Finding, finding_id
from kubeshape.inventory import Inventory, K8sObject
from kubeshape.redact import redact_text
from kubeshape.rules import _gitops

RECONCILE = "reconcile.fluxcd.io/requestedAt"


class Refuse(Exception):
    """The fix cannot be planned here; the message says why and what to do instead."""


@dataclass
class Options:
    """Choices the user makes on the command line."""

    push_missing: bool = False
    push_from: str = "docker.io"  # where an unqualified name resolves (a mirror may stand in)
    registry_reach: dict[str, str] = field(default_factory=dict)  # name in images -> where to connect
    insecure: bool = False
    otel_endpoint: str | None = None
    use_git: bool = True  # read commit messages from the repository (off for the bundled demo)


@dataclass
class StepDraft:
    title: str
    findings: list[Finding]
    incident: str = ""
    texts: dict[str, str | None] = field(default_factory=dict)  # path -> new text (None: delete the file)
    cluster: list[ClusterChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pushes: list[RegistryPush] = field(default_factory=list)


class FixContext:
    """The inputs of one plan and the plan being built."""

    def __init__(self, inv: Inventory, cfg: Config, findings: list[Finding], repo_root: Path | None,
                 options: Options | None = None, incidents: dict[int, str] | None = None) -> None:
        self.inv = inv
        self.cfg = cfg
        self.findings = findings
        self.root = repo_root
        self.options = options or Options()
        self._incident_of = incidents or {}
        self._original: dict[str, str | None] = {}
        self._current: dict[str, str | None] = {}
        self.steps: list[Step] = []
        self.skipped: list[Skipped] = []
        self._fixed: set[int] = set()  # id() of findings a step resolves
        self._draft: StepDraft | None = None
        self.pushed: set[str] = set()  # host/repository:tag that a step of this plan pushes
        self.now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # -- files -------------------------------------------------------------------------------------------------
    def read(self, path: str) -> str | None:
        """The text of repository file ``path`` as the steps so far leave it (None: absent or deleted)."""
        if self._draft is not None and path in self._draft.texts:
            return self._draft.texts[path]
        if path in self._current:
            return self._current[path]
        text = self._load(path)
        self._original[path] = self._current[path] = text
        return text

    def _load(self, path: str) -> str | None:
        if self.root is None:
            return None
        full = (self.root / path).resolve()
        if not full.is_relative_to(self.root.resolve()) or not full.is_file():
            return None
        try:
            raw = full.read_bytes()
        except OSError:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return None

    def edit(self, path: str, change: Callable[[str], str]) -> None:
        """Apply ``change`` to the current text of ``path`` within the open step."""
        assert self._draft is not None, "edit() outside a step"
        text = self.read(path)
        if text is None:
            raise Refuse(f"{path}: not found in the repository")
        new = change(text)
        if new != text:
            self._draft.texts[path] = new

    def delete_file(self, path: str) -> None:
        assert self._draft is not None
        if self.read(path) is None:
            raise Refuse(f"{path}: not found in the repository")
        self._draft.texts[path] = None

    # -- cluster -----------------------------------------------------------------------------------------------
    def live(self, kind: str, namespace: str, name: str) -> K8sObject | None:
        """The live object (None without a cluster source, or when the cluster has none)."""
        return self.inv.live_by_key.get((kind, namespace, name))

    def flux_owner(self, obj: K8sObject) -> str | None:
        """The Flux object that applies ``obj`` (``Kustomization flux-system/apps``), or None."""
        app = _gitops.applier(self.inv, obj)
        return app.title if app is not None else None

    def apply(self, obj: K8sObject, body: dict[str, Any], summary: str, *, if_exists: bool = False,
              restores: bool = False) -> None:
        """A server-side apply of ``body`` (the fields to own) onto live ``obj``, guarded by its uid and generation.
        With ``if_exists`` (metadata of an object its controller manages, e.g. a ReplicaSet's annotation): the
        uid alone, and nothing to do once the object is gone. When Flux applies ``obj`` nothing is changed behind
        it: the commit is the change, and when ``restores`` (the change brings back what the repository says) a
        reconcile of the Flux object is requested instead."""
        assert self._draft is not None
        app = _gitops.applier(self.inv, obj)
        if app is not None:
            if restores and app.obj is not None:
                self._request_reconcile(app.obj)
                return
            self._draft.notes.append(f"{obj.kind} {obj.namespace}/{obj.name} is applied by Flux ({app.title}): "
                                     "the commit changes it at the next reconcile, not a kubectl change")
            return
        self._draft.cluster.append(ClusterChange(
            action="apply", object=object_id(obj), **_guards(obj, generation=not if_exists), summary=summary,
            field_manager=field_manager(object_id(obj), body), if_exists=if_exists,
            body={**body, "apiVersion": api_version(obj), "kind": obj.kind,
                  "metadata": {**(body.get("metadata") or {}), "name": obj.name,
                               **({"namespace": obj.namespace} if obj.namespace else {})}}))

    def _request_reconcile(self, flux_obj: K8sObject) -> None:
        """Ask Flux to apply the repository again now (``flux reconcile``: the requestedAt annotation). The Flux
        object may be known from the repository only (its namespace was not read): then no guard but its name."""
        assert self._draft is not None
        oid = object_id(flux_obj)
        if any(c.object == oid for s in self.steps for c in s.cluster) or \
                any(c.object == oid for c in self._draft.cluster):
            return
        body = {"metadata": {"annotations": {RECONCILE: self.now}}}
        self._draft.cluster.append(ClusterChange(
            action="apply", object=oid, **(_guards(flux_obj) if flux_obj.source == "cluster" else {}),
            summary=f"request a reconcile ({RECONCILE})",
            field_manager=field_manager(oid, body),
            body={"apiVersion": api_version(flux_obj), "kind": flux_obj.kind,
                  "metadata": {"name": flux_obj.name, "namespace": flux_obj.namespace, **body["metadata"]}}))

    def delete(self, obj: K8sObject, summary: str, *, through_flux: bool = True) -> None:
        """Delete live ``obj`` (guarded by its resourceVersion); when Flux applies it, the commit that removes it
        from the repository deletes it (Flux prunes) and no API call is planned."""
        assert self._draft is not None
        owner = self.flux_owner(obj) if through_flux else None
        if owner is not None:
            self._draft.notes.append(f"{obj.kind} {obj.namespace}/{obj.name} is applied by Flux ({owner}): it "
                                     "goes when Flux prunes it after the commit")
            return
        self._draft.cluster.append(ClusterChange(action="delete", object=object_id(obj), **_guards(obj),
                                                 summary=summary))

    def rolls_out(self, obj: K8sObject) -> bool:
        """True when a step of this plan changes ``obj``'s pod template in the cluster."""
        return bool(self.rollout_rules(obj))

    def rollout_rules(self, obj: K8sObject) -> list[str]:
        """Rule IDs of the steps that change ``obj``'s pod template in the cluster (a new revision each)."""
        oid = object_id(obj)
        return sorted({r for s in self.steps if any(_rolls(c, oid) for c in s.cluster) for r in s.rules})

    def annotate_first_rollout(self, obj: K8sObject, annotations: dict[str, str]) -> str | None:
        """Add ``annotations`` to the first change of this plan that rolls ``obj`` out, so that every revision the
        plan creates is born with them; the title of that step, or None when no step rolls it out."""
        oid = object_id(obj)
        for step in self.steps:
            for c in step.cluster:
                if _rolls(c, oid):
                    body = dict(c.body or {})
                    meta = dict(body.get("metadata") or {})
                    meta["annotations"] = {**(meta.get("annotations") or {}), **annotations}
                    body["metadata"] = meta
                    c.body = body
                    c.field_manager = field_manager(oid, body)
                    c.summary += "; " + ", ".join(f"annotate {k}={v!r}" for k, v in annotations.items())
                    return step.title
        return None

    def deletes(self, obj: K8sObject) -> bool:
        """True when an earlier step of this plan deletes ``obj``."""
        oid = object_id(obj)
        return any(c.action == "delete" and c.object == oid for s in self.steps for c in s.cluster)

    def attach(self, findings: list[Finding], path: str) -> bool:
        """Count ``findings`` as fixed by the last step that changed ``path`` (it removed what they are about);
        False when no step did."""
        for step in reversed(self.steps):
            if any(fc.path == path for fc in step.files):
                step.findings += [finding_id(f) for f in findings if finding_id(f) not in step.findings]
                step.rules = sorted({*step.rules, *(f.rule for f in findings)})
                for f in findings:
                    self._fixed.add(id(f))
                return True
        return False

    def push(self, source: str, target: str) -> None:
        """Copy image ``source`` to ``target`` (both ``host/repository:tag``) before the step's edits."""
        assert self._draft is not None
        reach = self.options.registry_reach
        src_host, dst_host = source.partition("/")[0], target.partition("/")[0]
        self._draft.pushes.append(RegistryPush(source=source, source_reach=reach.get(src_host, src_host),
                                               target=target, target_reach=reach.get(dst_host, dst_host),
                                               insecure=self.options.insecure))

    def note(self, text: str) -> None:
        assert self._draft is not None
        self._draft.notes.append(text)

    # -- steps -------------------------------------------------------------------------------------------------
    def fixed(self, f: Finding) -> bool:
        return id(f) in self._fixed

    @contextlib.contextmanager
    def step(self, title: str, findings: list[Finding]) -> Iterator[StepDraft]:
        """Record one fix; dropped (and each finding listed as skipped) if it raises Refuse or an input error."""
        assert self._draft is None, "steps do not nest"
        draft = self._draft = StepDraft(title, findings)
        try:
            yield draft
        except (Refuse, KubeshapeError) as exc:
            self._draft = None
            for f in findings:
                self.skipped.append(Skipped(finding=finding_id(f), rule=f.rule, reason=str(exc)))
            return
        self._draft = None
        if not draft.texts and not draft.cluster and not draft.pushes:
            for f in findings:
                self._fixed.add(id(f))
            if draft.notes:
                for f in findings:
                    self.skipped.append(Skipped(finding=finding_id(f), rule=f.rule, reason="; ".join(draft.notes)))
            return
        files = []
        for path, after in draft.texts.items():
            before = self.read(path)
            assert before is not None
            files.append(FileChange.between(path, before, after, redact_text(unified(path, before, after))))
            self._current[path] = after
        for f in findings:
            self._fixed.add(id(f))
        self.pushed.update(p.target for p in draft.pushes)
        incident = next((self._incident_of[id(f)] for f in findings if id(f) in self._incident_of), "")
        self.steps.append(Step(id=len(self.steps) + 1, incident=incident, title=title,
                               rules=sorted({f.rule for f in findings}),
                               findings=[finding_id(f) for f in findings], files=files, cluster=draft.cluster,
                               pushes=draft.pushes, notes=draft.notes))

    def refuse(self, findings: list[Finding], reason: str) -> None:
        """Record that these findings get no machine fix in this run, and why."""
        for f in findings:
            self.skipped.append(Skipped(finding=finding_id(f), rule=f.rule, reason=reason))


def _rolls(c: ClusterChange, oid: ObjectId) -> bool:
    return c.action == "apply" and c.object == oid and "template" in ((c.body or {}).get("spec") or {})


def unified(path: str, before: str, after: str | None) -> str:
    """A unified diff with three lines of context (a deleted file diffs against nothing)."""
    return "".join(difflib.unified_diff(before.splitlines(keepends=True),
                                        (after or "").splitlines(keepends=True),
                                        f"a/{path}", "/dev/null" if after is None else f"b/{path}"))


def spec_digest(raw: dict[str, Any]) -> str:
    """SHA-256 of an object's spec as kubeshape reads it (env values redacted, keys sorted)."""
    return hashlib.sha256(orjson.dumps(raw.get("spec"), option=orjson.OPT_SORT_KEYS)).hexdigest()


def _shape(value: Any) -> Any:
    """The field paths of an apply body without its values (list items by their name)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [{"name": i.get("name"), **_shape({k: v for k, v in i.items() if k != "name"})}
                if isinstance(i, dict) else None for i in value]
    return None


def field_manager(oid: ObjectId, body: dict[str, Any]) -> str:
    """One server-side-apply field manager per object and set of fields: each fix owns exactly the fields it sets,
    so a later fix of other fields (which applies only those) never drops them, and setting the same fields again
    replaces the earlier value."""
    fields = {k: v for k, v in body.items() if k not in ("apiVersion", "kind")}
    meta = {k: v for k, v in (fields.get("metadata") or {}).items() if k not in ("name", "namespace")}
    fields = {**{k: v for k, v in fields.items() if k != "metadata"}, **({"metadata": meta} if meta else {})}
    key = orjson.dumps([oid.kind, oid.namespace, oid.name, _shape(fields)], option=orjson.OPT_SORT_KEYS)
    return f"kubeshape-fix-{hashlib.sha256(key).hexdigest()[:10]}"


def api_version(obj: K8sObject) -> str:
    """The object's apiVersion; items of a LIST carry none, so the version kubeshape lists the kind at."""
    if obj.raw.get("apiVersion"):
        return str(obj.raw["apiVersion"])
    from kubeshape.sources.live import kind_spec

    spec = kind_spec(obj.kind, obj.group or None)
    if spec is None:
        raise Refuse(f"{obj.kind} {obj.namespace}/{obj.name}: its API version is not known")
    return f"{spec.group}/{spec.version}" if spec.group else spec.version


def object_id(obj: K8sObject) -> ObjectId:
    return ObjectId(api_version=api_version(obj), kind=obj.kind, namespace=obj.namespace, name=obj.name)


def _guards(obj: K8sObject, generation: bool = True) -> dict[str, Any]:
    meta = obj.metadata
    gen = meta.get("generation")
    has_gen = isinstance(gen, int) and not isinstance(gen, bool)
    return {"uid": str(meta["uid"]) if meta.get("uid") else None,
            "generation": gen if generation and has_gen else None,
            "spec": spec_digest(obj.raw) if generation and not has_gen and "spec" in obj.raw else None,
            "resource_version": str(meta["resourceVersion"]) if meta.get("resourceVersion") else None}
