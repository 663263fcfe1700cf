"""The image rules KS101, KS102, KS103, KS107 and KS108 as CEL, for policies the API server evaluates itself,
with kubeshape.yaml's ignored rules and suppressions and the ``kubeshape.io/ignore`` annotation, as the engine
applies them.

The regexes are generated here, and only here, from the reference grammar of :mod:`kubeshape.imageref`, and run
under CEL's ``matches()`` (RE2: no look-around, no back-references). What the grammar says with a parser is said
with several regexes instead: one for the shape of a reference, one per rule that the shape cannot express.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kubeshape import imageref
from kubeshape.config import Config

# The grammar's fragments, as imageref compiles them: classes, (?:...), alternation and bounded repeats read the
# same in Python and in RE2.
_DOMAIN = imageref._DOMAIN_RE.pattern
_PATH = imageref._PATH_RE.pattern
_TAG = imageref._TAG_RE.pattern
_DIGEST = imageref._DIGEST_RE.pattern
_IDENTIFIER = imageref._IDENTIFIER_RE.pattern

# A reference shaped as ``[domain/]path[:tag][@digest]``.
REFERENCE = rf"^(?:{_DOMAIN}/)?{_PATH}(?::{_TAG})?(?:@{_DIGEST})?$"
# A first component with a dot is a registry domain, so it must be a valid one (``a_b.c/x`` is not a path).
DOTTED_FIRST = r"^[^/]*\.[^/]*/"
DOMAIN_FIRST = rf"^{_DOMAIN}/"
# 64 hex characters are an image ID, never a repository name.
IDENTIFIER = rf"^{_IDENTIFIER}$"
# The name (everything before the tag and the digest) is at most MAX_NAME_LENGTH characters.
NAME_LENGTH = rf"^[^@]{{0,{imageref.MAX_NAME_LENGTH}}}(?::{_TAG})?(?:@.*)?$"
# A registered digest algorithm must carry exactly its number of lowercase hex characters.
REGISTERED_ALGORITHM = "@(?:" + "|".join(imageref._DIGEST_HEX_LENGTHS) + "):"
REGISTERED_DIGEST = "@(?:" + "|".join(
    f"{alg}:[a-f0-9]{{{n}}}" for alg, n in imageref._DIGEST_HEX_LENGTHS.items()) + ")$"
# Of a valid reference: the first component names a registry (``splitDockerDomain``).
QUALIFIED = r"^(?:localhost|[^/]*[.:A-Z][^/]*)/"
# Of a valid reference without a digest: a tag follows the last ``/``.
TAGGED = r":[^/]*$"

WORKLOAD_RESOURCES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("", "v1", ("pods",)),
    ("apps", "v1", ("deployments", "statefulsets", "daemonsets", "replicasets")),
    ("batch", "v1", ("jobs", "cronjobs")),
)
WORKLOAD_KINDS = ("Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")


def cel_string(text: str) -> str:
    """``text`` as a CEL string literal: raw when it can be, so regexes read as written."""
    if "'" not in text and "\n" not in text and "\r" not in text:
        return f"r'{text}'"
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{escaped}'"


def valid_reference(image: str) -> str:
    """CEL: the image expression ``image`` parses as a reference (what :func:`kubeshape.imageref.parse` accepts)."""
    return " && ".join([
        f"{image} != ''",
        f"{image}.matches({cel_string(REFERENCE)})",
        f"(!{image}.matches({cel_string(DOTTED_FIRST)}) || {image}.matches({cel_string(DOMAIN_FIRST)}))",
        f"!{image}.matches({cel_string(IDENTIFIER)})",
        f"{image}.matches({cel_string(NAME_LENGTH)})",
        f"(!{image}.matches({cel_string(REGISTERED_ALGORITHM)}) || "
        f"{image}.matches({cel_string(REGISTERED_DIGEST)}))",
    ])


def valid_in_python(image: str) -> bool:
    """The same test as :func:`valid_reference`, run by Python's ``re`` (``$`` as RE2 reads it: end of text)."""
    def m(pattern: str) -> bool:
        return re.search(pattern.replace("$", r"\Z"), image) is not None

    return (image != "" and m(REFERENCE) and (not m(DOTTED_FIRST) or m(DOMAIN_FIRST)) and not m(IDENTIFIER)
            and m(NAME_LENGTH) and (not m(REGISTERED_ALGORITHM) or m(REGISTERED_DIGEST)))


# -- registries.allowed globs -----------------------------------------------------------------------------------

# Matches nothing, in Python as in RE2 (a glob class with no characters, such as ``[z-a]``).
_NOTHING = r"\b\B"


def _literal(char: str) -> str:
    return "\\" + char if char.isascii() and not char.isalnum() else char


def _glob_class(body: str) -> str:
    """A ``[...]`` body of fnmatch (``!`` negates, ``a-z`` ranges, a range running backwards is empty)."""
    negate = body.startswith("!")
    if negate:
        body = body[1:]
    items: list[str] = []
    k = 0
    while k < len(body):
        if k + 2 < len(body) and body[k + 1] == "-":
            low, high = body[k], body[k + 2]
            if low <= high:
                items.append(f"{_literal(low)}-{_literal(high)}")
            k += 3
        else:
            items.append(_literal(body[k]))
            k += 1
    if not items:
        return "." if negate else _NOTHING
    return ("[^" if negate else "[") + "".join(items) + "]"


def _glob(pattern: str) -> str:
    """One fnmatch glob as an RE2 fragment: ``*``, ``?``, ``[seq]`` and ``[!seq]``; everything else literal."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        i += 1
        if char == "*":
            if not out or out[-1] != ".*":
                out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append(r"\[")
                continue
            out.append(_glob_class(pattern[i:j]))
            i = j + 1
        else:
            out.append(_literal(char))
    return "".join(out)


def glob_regex(globs: Iterable[str]) -> str:
    """An RE2 regex that matches exactly what ``fnmatch.fnmatchcase`` matches with any of ``globs``; empty when
    there are none."""
    parts = [_glob(g) for g in globs]
    return f"^(?s:{'|'.join(parts)})$" if parts else ""


# -- variables and validations ---------------------------------------------------------------------------------

_POD_SPEC = (
    "object.kind == 'Pod' ? (has(object.spec) ? object.spec : {}) : "
    "object.kind == 'CronJob' ? "
    "(has(object.spec.jobTemplate) && has(object.spec.jobTemplate.spec) && "
    "has(object.spec.jobTemplate.spec.template) && has(object.spec.jobTemplate.spec.template.spec) ? "
    "object.spec.jobTemplate.spec.template.spec : {}) : "
    "(has(object.spec) && has(object.spec.template) && has(object.spec.template.spec) ? "
    "object.spec.template.spec : {})"
)
_NEVER = "(has(c.imagePullPolicy) && c.imagePullPolicy == 'Never')"


@dataclass(frozen=True, slots=True)
class Variable:
    name: str
    expression: str


@dataclass(frozen=True, slots=True)
class Check:
    """One rule as a validation: it fails when the list ``variables.<offenders>`` is not empty."""

    rule: str
    deny: bool
    offenders: str
    message_expression: str
    message: str

    @property
    def expression(self) -> str:
        return f"size(variables.{self.offenders}) == 0 || {skipped(self.rule)}"


def skipped(rule: str) -> str:
    """CEL: ``rule`` is ignored (kubeshape.yaml ``ignore``, the object's ``kubeshape.io/ignore`` annotation) or
    suppressed for this object (kubeshape.yaml ``suppressions``), as the engine decides."""
    family = rule[:3]  # KS1: "KS1" and "KS1xx" name the family, as the engine reads them
    return (f"variables.ignoredRules.exists(p, p in ['*', 'ALL', '{rule}', '{family}'] || "
            f"(p.endsWith('XX') && size(p) >= 3 && p.substring(0, 3) == '{family}')) || "
            "(variables.suppressions != '' && "
            f"(('{rule}|' + variables.objectRef).matches(variables.suppressions) || "
            f"('{rule}|' + variables.objectName).matches(variables.suppressions)))")


@dataclass(frozen=True, slots=True)
class Settings:
    """CEL expressions for the parts of kubeshape.yaml the checks read: the first private registry (``''``:
    none), the allowed-registry regex (``''``: any) and the allowed list as people read it, the ignored rule
    patterns (a list), the suppressions as one regex over ``RULE|namespace/Kind/name`` and ``RULE|name`` (``''``:
    none), and whether the ``kubeshape.io/ignore`` annotation counts (a bool)."""

    private: str
    allowed_regex: str
    allowed_list: str
    ignored: str
    suppressions: str
    annotation_ignores: str


def _rule_regex(rule: str) -> str:
    """A suppression's ``rule`` (``KS101``, ``KS1xx`` or ``*``) as a regex."""
    if rule == "*":
        return "KS[0-9]{3}"
    return re.escape(rule[:3]) + "[0-9]{2}" if rule.endswith("xx") else re.escape(rule)


def suppression_regex(cfg: Config) -> str:
    """The suppressions of kubeshape.yaml as one RE2 regex over ``RULE|namespace/Kind/name`` and ``RULE|name``
    (what :meth:`kubeshape.config.Suppression.matches` compares); empty when there are none."""
    parts = [f"{_rule_regex(s.rule)}\\|{_glob(s.object)}" for s in cfg.suppressions]
    return f"^(?s:{'|'.join(parts)})$" if parts else ""


def literal_settings(cfg: Config) -> Settings:
    """The settings written into the expressions (for engines without parameters)."""
    regs = cfg.registries
    ignored = "[" + ", ".join(cel_string(p.strip().upper()) for p in cfg.ignore) + "]"
    return Settings(cel_string(regs.private[0] if regs.private else ""), cel_string(glob_regex(regs.allowed)),
                    cel_string(", ".join(regs.allowed)), ignored, cel_string(suppression_regex(cfg)),
                    "true" if cfg.annotation_ignores else "false")


IGNORE_ANNOTATION = "kubeshape.io/ignore"
_ANNOTATIONS = "object.metadata.annotations"


def variables(settings: Settings) -> list[Variable]:
    """Every variable the checks use, in the order they may refer to each other."""
    image_ok = valid_reference("c.image")
    annotation = (f"{settings.annotation_ignores} && has({_ANNOTATIONS}) && '{IGNORE_ANNOTATION}' in {_ANNOTATIONS} "
                  f"? {_ANNOTATIONS}['{IGNORE_ANNOTATION}'].split(',') : []")
    return [
        Variable("ignoredRules", f"(({settings.ignored}) + ({annotation})).map(p, p.trim().upperAscii())"),
        Variable("suppressions", settings.suppressions),
        Variable("objectName", "has(object.metadata.name) && object.metadata.name != '' ? object.metadata.name : "
                               "has(object.metadata.generateName) ? object.metadata.generateName : ''"),
        Variable("objectRef", "(has(object.metadata.namespace) && object.metadata.namespace != '' ? "
                              "object.metadata.namespace + '/' : '') + object.kind + '/' + variables.objectName"),
        Variable("podSpec", _POD_SPEC),
        Variable("containers", "(has(variables.podSpec.initContainers) ? variables.podSpec.initContainers : []) + "
                               "(has(variables.podSpec.containers) ? variables.podSpec.containers : [])"),
        Variable("invalidImages", f"variables.containers.filter(c, !(has(c.image) && {image_ok}))"),
        Variable("invalidNames", "variables.invalidImages.map(c, c.name)"),
        Variable("validImages", "variables.containers.filter(c, !(c.name in variables.invalidNames))"),
        Variable("privateRegistry", settings.private),
        Variable("allowedRegistries", settings.allowed_regex),
        Variable("allowedList", settings.allowed_list),
        Variable("unqualified", f"variables.validImages.filter(c, !c.image.matches({cel_string(QUALIFIED)}))"),
        Variable("unqualifiedDeny", f"variables.unqualified.filter(c, variables.privateRegistry != '' || {_NEVER})"),
        Variable("unqualifiedWarn",
                 f"variables.unqualified.filter(c, !(variables.privateRegistry != '' || {_NEVER}))"),
        Variable("neverPulled", f"variables.containers.filter(c, {_NEVER})"),
        Variable("mutable", "variables.validImages.filter(c, !c.image.contains('@') && "
                            f"(c.image.endsWith(':latest') || !c.image.matches({cel_string(TAGGED)})))"),
        Variable("notAllowed", "variables.allowedRegistries == '' ? [] : variables.validImages.filter(c, "
                               f"!{_registry('c.image')}.matches(variables.allowedRegistries))"),
    ]


def _registry(image: str) -> str:
    """CEL: the registry of a valid reference, ``docker.io`` when it names none."""
    return f"({image}.matches({cel_string(QUALIFIED)}) ? {image}.split('/')[0] : 'docker.io')"


def _first(offenders: str, text: str) -> str:
    """``text`` (CEL, with ``C`` for the first offending container) and how many more containers offend."""
    first = f"variables.{offenders}[0]"
    more = (f" + (size(variables.{offenders}) > 1 ? ' (and ' + string(size(variables.{offenders}) - 1) + "
            "' more containers)' : '')")
    return text.replace("C.", f"{first}.") + more


def checks() -> list[Check]:
    """The rules, deny checks first in the order their messages help most."""
    private = "variables.privateRegistry"
    to_deploy = "(C.image.contains(':') || C.image.contains('@') ? C.image : C.image + ':<version>')"
    return [
        Check("KS108", True, "invalidImages", _first("invalidImages", (
            "'KS108 invalid-image-reference: container ' + C.name + "
            "(has(C.image) && C.image != '' ? ' uses ' + C.image + ', which is not a valid image reference' "
            ": ' has no image') + "
            "'. Fix: write the image as registry[:port]/path:tag or registry[:port]/path@sha256:<64 hex> "
            "with a lowercase path'")),
            "KS108 invalid-image-reference: an image is missing or is not a valid reference. Fix: write it as "
            "registry[:port]/path:tag with a lowercase path"),
        Check("KS102", True, "neverPulled", _first("neverPulled", (
            "'KS102 pull-policy-never: container ' + C.name + ' never pulls its image ' + "
            "(has(C.image) ? C.image : '') + ', so it only starts on nodes that already have it. "
            "Fix: push the image to a registry, deploy it by its full name and set imagePullPolicy: "
            "IfNotPresent'")),
            "KS102 pull-policy-never: a container has imagePullPolicy: Never. Fix: push the image to a registry "
            "and set imagePullPolicy: IfNotPresent"),
        Check("KS101", True, "unqualifiedDeny", _first("unqualifiedDeny", (
            "'KS101 unqualified-image: container ' + C.name + ' uses ' + C.image + "
            "', which only nodes that built it can pull. Fix: ' + "
            f"({private} != '' ? 'push it to ' + {private} + ' and deploy ' + {private} + '/' + {to_deploy} "
            f": 'push it to your registry and deploy it by its full name, <your-registry>/' + {to_deploy}) + "
            "(has(C.imagePullPolicy) && C.imagePullPolicy == 'Never' ? ' with imagePullPolicy: IfNotPresent' "
            ": '')")),
            "KS101 unqualified-image: an image names no registry, so only nodes that built it can pull it. "
            "Fix: push it to your registry and deploy it by its full name"),
        Check("KS107", True, "notAllowed", _first("notAllowed", (
            f"'KS107 registry-not-allowed: container ' + C.name + ' pulls ' + C.image + ' from ' + "
            f"{_registry('C.image')} + ', which is not in registries.allowed (' + variables.allowedList + "
            "'). Fix: mirror the image into an allowed registry and deploy it from there, or add ' + "
            f"{_registry('C.image')} + ' to registries.allowed'")),
            "KS107 registry-not-allowed: an image comes from a registry that is not in registries.allowed. "
            "Fix: mirror it into an allowed registry"),
        Check("KS101", False, "unqualifiedWarn", _first("unqualifiedWarn", (
            "'KS101 unqualified-image: container ' + C.name + ' uses ' + C.image + "
            "', which names no registry and relies on the implicit docker.io. Fix: name the registry, e.g. "
            "docker.io/' + (C.image.contains('/') ? '' : 'library/') + C.image + "
            "' for a Docker Hub image, or push it to your registry and deploy it from there'")),
            "KS101 unqualified-image: an image names no registry. Fix: write the registry out, e.g. "
            "docker.io/library/<name>:<version>"),
        Check("KS103", False, "mutable", _first("mutable", (
            "'KS103 mutable-tag: container ' + C.name + ' uses ' + C.image + "
            "(C.image.endsWith(':latest') ? ', whose tag latest' : ', which has no tag, so it') + "
            "' moves with every push. Fix: deploy a tag that names one build (a release version or a commit): ' "
            "+ (C.image.endsWith(':latest') ? C.image.substring(0, size(C.image) - 7) : C.image) + ':<version>'")),
            "KS103 mutable-tag: an image has no tag or the tag latest. Fix: deploy a tag that names one build"),
    ]


def used_variables(all_vars: Sequence[Variable], expressions: Iterable[str]) -> list[Variable]:
    """The variables ``expressions`` refer to, directly or through other variables, in their original order."""
    wanted = " ".join(expressions)
    keep: set[str] = set()
    for var in reversed(all_vars):
        if re.search(rf"\bvariables\.{var.name}\b", wanted):
            keep.add(var.name)
            wanted += " " + var.expression
    return [v for v in all_vars if v.name in keep]
