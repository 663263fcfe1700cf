"""``kubeshape.yaml``: validated configuration with errors that name the offending key."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kubeshape.errors import InputError
from kubeshape.findings import ObjectRef

CONFIG_NAMES = ("kubeshape.yaml", "kubeshape.yml", ".kubeshape.yaml")

# Default tag scheme (docs/tag-scheme.md; ``kubeshape release`` computes it): a SemVer release ``X.Y.Z`` (an
# optional ``v`` and SemVer pre-release accepted), ``<branch-slug>-<sha7>-<unix commit time>`` for every other
# commit, plus ``sha-<hex>`` and a bare commit SHA. Tags of dirty work trees (``-dirty``) never match: they are
# not traceable.
DEFAULT_TAG_SCHEME = (
    r"^(?!.*-dirty$)(?:"
    r"v?(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)"
    r"(?:-(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*)?"
    r"|[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?-[0-9a-f]{7,40}-\d{10}"
    r"|sha-[0-9a-f]{7,40}"
    r"|(?=[0-9]*[a-f])[0-9a-f]{7,40}"
    r")$"
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Registries(_Strict):
    """Registries this team owns (``private``) and may pull from (``allowed``; empty = any)."""

    private: list[str] = Field(default_factory=list)
    allowed: list[str] = Field(default_factory=list)


class Thresholds(_Strict):
    max_tags_per_repository: int = Field(10, ge=1)
    restarts_per_day: float = Field(5.0, ge=0)
    restart_storm_min_restarts: int = Field(10, ge=1)
    log_flood_repeats: int = Field(20, ge=2)
    keep_replicasets: int = Field(3, ge=0)
    max_revisions_without_cause: int = Field(0, ge=0)
    recent_rollout_days: int = Field(30, ge=1)


class Suppression(_Strict):
    """Silence ``rule`` for objects matching ``object`` (``namespace/Kind/name`` glob)."""

    rule: str
    object: str = "*"
    reason: str

    @field_validator("rule")
    @classmethod
    def _rule_id(cls, v: str) -> str:
        if not re.fullmatch(r"KS\d{3}|KS\dxx|\*", v):
            raise ValueError(f"rule must look like KS101, KS1xx or *, got {v!r}")
        return v

    def matches(self, rule: str, obj: ObjectRef | None) -> bool:
        if self.rule != "*" and self.rule != rule and not (
            self.rule.endswith("xx") and rule.startswith(self.rule[:3])
        ):
            return False
        if self.object == "*":
            return True
        if obj is None:
            return False
        return fnmatch.fnmatchcase(str(obj), self.object) or fnmatch.fnmatchcase(obj.name, self.object)


class Retention(_Strict):
    """How many tags a repository keeps; tags in use and each workload's last known good are always kept."""

    repository: str = "*"  # glob over ``host/name`` or ``name``
    keep_last: int = Field(10, ge=0)  # newest images (distinct digests); every tag of a kept image stays
    keep_tags: list[str] = Field(default_factory=list)  # regexes of tags never pruned (releases, ...)
    keep_days: int = Field(0, ge=0)  # keep anything younger than this

    @field_validator("keep_tags")
    @classmethod
    def _regexes(cls, v: list[str]) -> list[str]:
        for pattern in v:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None
        return v

    def matches(self, host: str, name: str) -> bool:
        return fnmatch.fnmatchcase(f"{host}/{name}", self.repository) or fnmatch.fnmatchcase(name, self.repository)


class InputLimits(_Strict):
    """Bounds on reading a bundle (sizes take K, M or G); ``KUBESHAPE_BUNDLE_*`` variables override them."""

    bundle_max_bytes: str | None = None  # decompressed bytes of all members (default 4G)
    bundle_max_members: int | None = Field(None, ge=1)  # default 200,000
    bundle_max_log_bytes: str | None = None  # per log tail (default 1M)
    bundle_max_json_depth: int | None = Field(None, ge=1, le=1023)  # default 512
    bundle_max_ratio: int | None = Field(None, ge=1)  # decompressed ÷ compressed past 64M (default 200)

    def configured(self) -> dict[str, str]:
        """The limits set here, keyed like :class:`kubeshape.sources.limits.Limits` fields."""
        return {k.removeprefix("bundle_"): str(v) for k, v in self.model_dump().items() if v is not None}


class Config(_Strict):
    """The whole ``kubeshape.yaml``."""

    registries: Registries = Field(default_factory=Registries)
    tag_scheme: str = DEFAULT_TAG_SCHEME
    manifest_roots: list[str] = Field(default_factory=lambda: ["."])
    exclude: list[str] = Field(default_factory=list)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    suppressions: list[Suppression] = Field(default_factory=list)
    retention: list[Retention] = Field(default_factory=list)
    ignore: list[str] = Field(default_factory=list)
    annotation_ignores: bool = True
    limits: InputLimits = Field(default_factory=InputLimits)

    @field_validator("tag_scheme")
    @classmethod
    def _regex(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return v

    def retention_for(self, host: str, name: str) -> Retention:
        """The first retention entry matching the repository, else the default policy."""
        return next((r for r in self.retention if r.matches(host, name)), Retention())

    @property
    def tag_pattern(self) -> re.Pattern[str]:
        return re.compile(self.tag_scheme)


def _describe(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"unknown key '{loc}'"
    return f"'{loc}': {err['msg']}"


def parse_config(data: Any, source: str) -> Config:
    """Validate already-loaded YAML; raise InputError naming the key."""
    if data is None:
        return Config()
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise InputError(f"{source}: {_describe(dict(first))}{more} -- see 'kubeshape config --help'") from None


def load_config(path: Path | None, search_dir: Path | None = None,
                stop: Path | None = None) -> tuple[Config, Path | None]:
    """Load ``path`` (must exist) or the first ``kubeshape.yaml`` found in ``search_dir`` or, up to ``stop``
    (the repository root), in its parents."""
    from kubeshape.sources.yamlio import YamlSyntaxError, load_yaml_file

    if path is None and search_dir is not None:
        here = search_dir.resolve()
        dirs = [here]
        if stop is not None and here.is_relative_to(stop.resolve()):
            dirs += [d for d in here.parents if d.is_relative_to(stop.resolve())]
        path = next((d / n for d in dirs for n in CONFIG_NAMES if (d / n).is_file()), None)
    if path is None:
        return Config(), None
    if not path.is_file():
        raise InputError(f"{path}: config file not found")
    try:
        docs = load_yaml_file(path)
    except YamlSyntaxError as exc:
        raise InputError(str(exc)) from None
    cfg = parse_config(docs[0].data if docs else None, str(path))
    _check_rule_ids(cfg, str(path))
    return cfg, path


def _check_rule_ids(cfg: Config, source: str) -> None:
    """A suppression or ignore naming a rule that does not exist silences nothing: say so instead."""
    from kubeshape.rules.base import get_rule

    named = [(f"suppressions[{i}].rule", s.rule) for i, s in enumerate(cfg.suppressions)]
    named += [(f"ignore[{i}]", r) for i, r in enumerate(cfg.ignore)]
    for where, rule_id in named:
        rid = rule_id.upper()
        if rid in ("*", "ALL") or re.fullmatch(r"KS[1-7](XX)?", rid) or get_rule(rid) is not None:
            continue
        raise InputError(f"{source}: '{where}': unknown rule {rule_id!r} -- see 'kubeshape rules'")
