"""The plan ``kubeshape fix`` shows, writes as JSON (``-o json``) and applies (``--apply [--plan plan.json]``).

A plan is a list of steps, one per fix, grouped by incident. Each step carries its own guards: the SHA-256 of
every file as the step expects to find it, and the resourceVersion of every cluster object it changes. Applying
a step whose guard no longer holds stops there, so a plan reviewed yesterday cannot overwrite today's change.
"""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from kubeshape.errors import InputError

PLAN_VERSION = 1
MAX_PLAN_BYTES = 64 * 1024 * 1024


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class Hunk(_Model):
    """Replace ``count`` lines from line ``start`` (0-based) of the file with ``lines`` (line endings included)."""

    start: int = Field(ge=0)
    count: int = Field(ge=0)
    lines: list[str] = Field(default_factory=list)


class FileChange(_Model):
    """One file as the step finds it (``before``: the SHA-256 of its text) and what the step does to it: delete
    it, or replace line ranges (``hunks``). Only the new lines are kept, never the text they replace, so a plan
    carries no more of a file than the fix writes; ``diff`` shows the change with secret-looking values masked."""

    path: str = Field(min_length=1, max_length=4096)  # relative to the repository root, POSIX separators
    before: str = Field(pattern=r"^[0-9a-f]{64}$")
    deletes: bool = False
    hunks: list[Hunk] = Field(default_factory=list)
    diff: str = ""
    _after: str | None = PrivateAttr(default=None)

    @classmethod
    def between(cls, path: str, before: str, after: str | None, diff: str) -> FileChange:
        """The change that turns ``before`` into ``after`` (None: delete the file)."""
        hunks: list[Hunk] = []
        if after is not None:
            old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
            for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
                if tag != "equal":
                    hunks.append(Hunk(start=i1, count=i2 - i1, lines=new[j1:j2]))
        fc = cls(path=path, before=sha256(before), deletes=after is None, hunks=hunks, diff=diff)
        fc._after = after
        return fc

    @property
    def after(self) -> str | None:
        """The new text, as planned in this process (None for a deletion, or for a plan read from JSON)."""
        return self._after

    def apply_to(self, text: str) -> str | None:
        """The file's new text from its current ``text`` (which must hash to ``before``); None deletes it."""
        if self.deletes:
            return None
        lines = text.splitlines(keepends=True)
        for h in sorted(self.hunks, key=lambda h: h.start, reverse=True):
            if h.start + h.count > len(lines):
                raise ValueError(f"{self.path}: the change runs past the end of the file")
            lines[h.start:h.start + h.count] = h.lines
        return "".join(lines)


class ObjectId(_Model):
    """A cluster object by API version, kind, namespace and name."""

    api_version: str = Field(min_length=1, max_length=253)
    kind: str = Field(min_length=1, max_length=253)
    namespace: str = Field(default="", max_length=253)
    name: str = Field(min_length=1, max_length=253)

    def __str__(self) -> str:
        ns = f" -n {self.namespace}" if self.namespace else ""
        return f"{self.kind.lower()}/{self.name}{ns}"


class ClusterChange(_Model):
    """A server-side apply (``body``: only the fields kubeshape owns) or a delete.

    Guards: the object's uid, and its ``generation`` as the plan saw it (the spec has not changed since: status
    updates by controllers do not count); the request itself carries the resourceVersion just read, so a change
    between that read and the write is refused by the API server too."""

    action: Literal["apply", "delete"]
    object: ObjectId
    uid: str | None = Field(default=None, max_length=64)
    generation: int | None = Field(default=None, ge=0)
    spec: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")  # SHA-256 of the spec, for kinds without
    # a generation (HorizontalPodAutoscalers): their status changes all the time, their spec must not
    resource_version: str | None = Field(default=None, max_length=64)  # as the plan saw it (for the record)
    body: dict[str, Any] | None = None
    if_exists: bool = False  # an apply that is moot once the object is gone (an old ReplicaSet pruned meanwhile)
    field_manager: str = Field(default="kubeshape-fix", pattern=r"^kubeshape-fix[a-z0-9-]{0,40}$")
    summary: str = Field(max_length=4096)


class RegistryPush(_Model):
    """Copy ``source`` (``host/repository:tag``) to ``target`` before the step's edits name it; ``*_reach`` is
    where kubeshape connects (a port-forward), when that differs from the name in images."""

    source: str = Field(min_length=1, max_length=1024)
    source_reach: str = Field(min_length=1, max_length=255)
    target: str = Field(min_length=1, max_length=1024)
    target_reach: str = Field(min_length=1, max_length=255)
    insecure: bool = False


class Step(_Model):
    """One fix: the findings it resolves, its file changes and its cluster changes."""

    id: int = Field(ge=1)
    incident: str = Field(default="", max_length=4096)  # the incident's title, for grouping
    title: str = Field(max_length=4096)
    rules: list[str]
    findings: list[str]  # finding IDs (KS105-3f9a2c)
    files: list[FileChange] = Field(default_factory=list)
    cluster: list[ClusterChange] = Field(default_factory=list)
    pushes: list[RegistryPush] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class Skipped(_Model):
    """A finding whose rule has a machine fix that this run could not plan, and why."""

    finding: str
    rule: str
    reason: str


class Plan(_Model):
    version: int = PLAN_VERSION
    repo: str | None = None  # absolute path of the repository the file paths are relative to
    context: str | None = None  # kubeconfig context of the cluster changes
    gitops: bool = False  # the repository is applied by Flux: its commit is the change
    steps: list[Step] = Field(default_factory=list)
    skipped: list[Skipped] = Field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(s.files or s.cluster or s.pushes for s in self.steps)

    def commit_message(self) -> str:
        """The fix commit's message: the rule IDs in the subject, one line per step and finding in the body."""
        rules = sorted({r for s in self.steps if s.files for r in s.rules})
        body = []
        for s in self.steps:
            if s.files:
                body.append(f"- {s.title} ({', '.join(s.findings)})")
        return f"kubeshape fix: {', '.join(rules)}\n\n" + "\n".join(body) + "\n"

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


def load_plan(path: Path) -> Plan:
    """Read a plan written by ``fix -o json``; InputError naming the file and the first problem otherwise."""
    try:
        if path.stat().st_size > MAX_PLAN_BYTES:
            raise InputError(f"{path}: larger than {MAX_PLAN_BYTES // 2**20} MiB -- not a kubeshape plan")
        data = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise InputError(f"{path}: cannot read the plan ({exc.strerror or exc})") from None
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{path}: not JSON ({exc}) -- write a plan with 'kubeshape fix -o json'") from None
    if isinstance(data, dict) and "plan" in data and isinstance(data["plan"], dict):
        data = data["plan"]
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "the top level"
        raise InputError(f"{path}: not a kubeshape plan ({where}: {err.get('msg')}) -- write one with "
                         "'kubeshape fix -o json'") from None
    if plan.version != PLAN_VERSION:
        raise InputError(f"{path}: plan version {plan.version}; this kubeshape reads version {PLAN_VERSION}")
    for step in plan.steps:
        for fc in step.files:
            p = Path(fc.path)
            if p.is_absolute() or ".." in p.parts:
                raise InputError(f"{path}: step {step.id} names a file outside the repository ({fc.path})")
    return plan
