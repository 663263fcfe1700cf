"""Who applies a live object (a Flux Kustomization, a Flux HelmRelease, or nothing that reads git), and fix steps
that change or delete it the way that lasts: under Flux, in the repository's copy, committed and pushed (Flux
reverts a kubectl change at its next reconcile); otherwise the caller's kubectl command stands."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kubeshape.inventory import Container, Inventory, K8sObject
from kubeshape.rules.manifests import _flux as fx
from kubeshape.timeutil import human_duration

HELM_NAME = "helm.toolkit.fluxcd.io/name"
HELM_NAMESPACE = "helm.toolkit.fluxcd.io/namespace"
_ROOT = "Flux Kustomization "


@dataclass(frozen=True, slots=True)
class Applier:
    """The Flux object that applies an object: its kind (Kustomization or HelmRelease), namespace and name, and
    the Flux object itself when it was read (live, else the repository's definition)."""

    kind: str
    namespace: str
    name: str
    obj: K8sObject | None = field(default=None, compare=False)

    @property
    def title(self) -> str:
        """``Kustomization flux-system/apps``."""
        return f"{self.kind} {self.namespace}/{self.name}"

    @property
    def spec(self) -> dict[str, Any]:
        return self.obj.spec if self.obj is not None else {}

    @property
    def reconcile(self) -> str:
        """The command that makes Flux apply the latest commit now."""
        return f"flux reconcile {self.kind.lower()} {self.name} -n {self.namespace} --with-source"

    @property
    def next_run(self) -> str:
        """``≤ 10m`` (its interval), or ``its interval`` when that is not known."""
        period = fx.parse_duration(self.spec.get("interval"))
        return f"≤ {human_duration(period)}" if period else "its interval"

    @property
    def prune(self) -> bool | None:
        """Whether Flux deletes what leaves the repository; None when the Kustomization was not read."""
        return bool(self.spec.get("prune")) if self.obj is not None else None

    @property
    def source(self) -> str:
        """``path ./apps of GitRepository flux-system/homelab`` (as far as it is known)."""
        if self.obj is None:
            return ""
        key = fx.source_key(self.obj)
        src = f" of {key[0].split('.')[0]} {key[1]}/{key[2]}" if key else ""
        path = self.spec.get("path") or "./"
        return f"path {path}{src}" if self.kind == "Kustomization" else src.removeprefix(" of ")


def applier(inv: Inventory, obj: K8sObject) -> Applier | None:
    """The Flux Kustomization or HelmRelease that applies ``obj`` (a live object, or a repository object whose live
    counterpart Flux applies or that a Flux Kustomization of the repository renders); None when nothing is known
    to apply it from git."""
    idx = fx.flux_index(inv)
    live = obj if obj.source == "cluster" else inv.live_by_key.get(obj.key)
    if live is not None:
        owner = fx.managing_kustomization(inv, live)
        if owner is not None:
            ns, name, ks = owner
            return Applier("Kustomization", ns, name, ks or _repo_flux(inv, fx.KUSTOMIZATION, ns, name))
        hr_name, hr_ns = live.labels.get(HELM_NAME), live.labels.get(HELM_NAMESPACE)
        if hr_name and hr_ns:
            hr = idx.objects.get((fx.HELMRELEASE, hr_ns, hr_name)) or _repo_flux(inv, fx.HELMRELEASE, hr_ns, hr_name)
            return Applier("HelmRelease", hr_ns, hr_name, hr)
    if obj.source == "repo" and obj.root.startswith(_ROOT):
        ns, _, name = obj.root.removeprefix(_ROOT).partition("/")
        ks = idx.objects.get((fx.KUSTOMIZATION, ns, name)) or _repo_flux(inv, fx.KUSTOMIZATION, ns, name)
        return Applier("Kustomization", ns, name, ks)
    return None


def _repo_flux(inv: Inventory, key: str, ns: str, name: str) -> K8sObject | None:
    found = inv.repo_by_key.get((key, ns, name), [])
    return found[0] if found else None


def repo_copy(inv: Inventory, obj: K8sObject, app: Applier) -> K8sObject | None:
    """The repository's definition of ``obj`` that ``app`` applies (``obj`` itself when it came from a file)."""
    if obj.source == "repo" and obj.file:
        return obj
    if app.kind != "Kustomization":
        return None
    return fx.repo_definition(inv, obj, app.obj, (app.namespace, app.name))


# -- field paths -------------------------------------------------------------------------------------------------
def container_path(c: Container, name: str = "") -> str:
    """The compact path of a container (or of its field ``name``) by the container's name, so that it finds the
    same container in the repository's copy: ``spec.template.spec.containers[{"name":"app"}].image``."""
    base = re.sub(r"\[\d+\]$", "", c.path)
    path = f"{base}[{json.dumps({'name': c.name}, separators=(',', ':'))}]"
    return f"{path}.{name}" if name else path


def _join(segments: Sequence[fx.Segment]) -> str:
    out = ""
    for seg in segments:
        if isinstance(seg, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", seg):
            out += f".{seg}" if out else seg
        elif seg is None:
            out += "[*]"
        else:
            out += f"[{json.dumps(seg, separators=(',', ':'))}]"
    return out


@dataclass(frozen=True, slots=True)
class Spot:
    """Where a field is, or would go, in a file: ``present`` when the file sets it, else ``parent`` holds it
    (``item`` when what is missing starts with a list item: a container or env var the file does not have)."""

    file: str
    line: int | None
    present: bool
    parent: str
    item: bool = False

    @property
    def at(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


def locate(copy: K8sObject, path: str) -> Spot | None:
    """The file and line of field ``path`` in ``copy``, or of the nearest field that holds it."""
    segments = fx.parse_path(path)
    for cut in range(len(segments), -1, -1):
        hit = fx.resolve(copy.raw, _join(segments[:cut])) if cut else ("", copy.raw)
        if hit is None:
            continue
        file, line = copy.where(hit[0]) if hit[0] else (copy.file, copy.line)
        if file is None:
            return None
        item = cut < len(segments) and isinstance(segments[cut], dict | int)
        return Spot(file, line, cut == len(segments), fx.pretty(_join(segments[:cut])) or "the document", item)
    return None


# -- the steps ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Edit:
    """Set the field at ``path`` (compact form, see ``container_path``) to ``value`` (YAML text); ``shown``
    describes it instead of ``key: value``, with ``verb`` (``add`` an item to a list, ``remove`` one)."""

    path: str
    value: str
    shown: str = ""
    verb: str = "set"
    label: str = ""  # for the commit message; ``key value`` by default
    new_item: bool = False  # the list item the path names may be added (an env var), not only found

    @property
    def summary(self) -> str:
        return self.label or (f"{self.key} {self.value}" if self.value and "\n" not in self.value else self.key)

    @property
    def key(self) -> str:
        names = [s for s in fx.parse_path(self.path) if isinstance(s, str)]
        return names[-1] if names else self.path

    @property
    def text(self) -> str:
        return self.shown or f"`{self.key}: {self.value}`"


def env_edit(c: Container, var: str, value: str | None) -> Edit:
    """Set env var ``var`` of container ``c`` to ``value`` (add it when the copy lacks it; None removes it)."""
    item = container_path(c, f"env[{json.dumps({'name': var}, separators=(',', ':'))}]")
    if value is None:
        return Edit(item, "", shown=f"`- name: {var}` from `env`", verb="remove", label=f"unset {var}")
    return Edit(f"{item}.value", json.dumps(value), shown=f"`- {{name: {var}, value: {json.dumps(value)}}}`",
                label=f"{var}={value}", new_item=True)


def _what(obj: K8sObject) -> str:
    return f"{obj.kind} {obj.namespace}/{obj.name}"


def _code(lines: list[str]) -> str:
    return "```bash\n" + "\n".join(lines) + "\n```"


def _commit(obj: K8sObject, edits: Sequence[Edit], files: list[str]) -> str:
    said = "; ".join(e.summary for e in edits)
    return f"git commit -m {shlex.quote(f'{obj.name}: {said}')} {' '.join(shlex.quote(f) for f in files)} && git push"


def change(inv: Inventory, obj: K8sObject, edits: Sequence[Edit]) -> str | None:
    """How to make ``edits`` to ``obj`` when Flux applies it: in the repository's copy (file:line), committed and
    pushed, applied at the next reconcile or now with ``flux reconcile``. None when Flux does not apply ``obj``."""
    app = applier(inv, obj)
    if app is None or not edits:
        return None
    if app.kind == "HelmRelease":
        return _helm_change(inv, obj, app, edits)
    copy = repo_copy(inv, obj, app)
    spots = [(e, locate(copy, e.path)) for e in edits] if copy is not None else []
    if copy is None or any(s is None or (s.item and not e.new_item) for e, s in spots):
        return _change_elsewhere(inv, obj, app, edits, copy)
    parts = []
    for e, s in spots:
        assert s is not None
        parts.append(f"in {s.at} {e.verb} {e.text}" if s.present or e.verb == "remove"
                     else f"under `{s.parent}` at {s.at} add {e.text}")
    files = sorted({s.file for _, s in spots if s is not None})
    steps = "; ".join(parts)
    head = "" if obj.source == "repo" else \
        f"{_what(obj)} is applied by Flux ({app.title}): a kubectl change would be reverted at its next reconcile. "
    return (f"{head}{steps[0].upper()}{steps[1:]}, commit and push; Flux ({app.title}) applies it at its next "
            f"reconcile ({app.next_run}), or now:\n" + _code([_commit(obj, edits, files), app.reconcile]))


def _fields(edits: Sequence[Edit]) -> str:
    return ", ".join(f"{e.text} ({fx.pretty(e.path)})" if not e.shown else e.text for e in edits)


def _change_elsewhere(inv: Inventory, obj: K8sObject, app: Applier, edits: Sequence[Edit],
                      copy: K8sObject | None = None) -> str:
    where = f", {app.source}" if app.source else ""
    if inv.repo is None:
        missing = "the repository was not loaded (--repo names the file and line)"
    elif copy is not None:
        missing = f"its copy in {copy.file}:{copy.line} does not hold the container or item to change"
    else:
        missing = "the loaded repository holds no copy of it"
    return (f"{_what(obj)} is applied by Flux ({app.title}{where}): a kubectl change would be reverted at its next "
            f"reconcile, and {missing}. Set {_fields(edits)} in the file it applies, commit and push; Flux applies "
            f"it at its next reconcile ({app.next_run}), or now:\n" + _code([app.reconcile]))


def _helm_change(inv: Inventory, obj: K8sObject, app: Applier, edits: Sequence[Edit]) -> str:
    hr = app.obj
    drift = hr is not None and ((hr.spec.get("driftDetection") or {}).get("mode") == "enabled")
    lost = ("reverted at its next reconcile (drift detection is on)" if drift else
            "lost at the next Helm upgrade")
    values = ""
    if hr is not None and hr.source == "repo" and hr.file:
        file, line = hr.where("spec.values") if "values" in hr.spec else (hr.file, hr.line)
        values = f" at {file}:{line}"
    return (f"{_what(obj)} is installed by Flux ({app.title}): a kubectl change is {lost}. Set {_fields(edits)} "
            f"through the chart's values (the HelmRelease's spec.values{values}), commit and push; Flux upgrades the "
            f"release at its next reconcile ({app.next_run}), or now:\n" + _code([app.reconcile]))


def delete(inv: Inventory, obj: K8sObject, kubectl: str) -> str | None:
    """How to delete ``obj`` when Flux applies it: remove it from the repository and let Flux prune it (or, with
    prune off, delete it once the commit is applied). None when Flux does not apply ``obj``."""
    return remove(inv, [(obj, kubectl)])


def remove(inv: Inventory, items: Sequence[tuple[K8sObject, str]]) -> str | None:
    """``delete`` for several objects at once (each with the kubectl command that deletes it); the objects Flux
    does not apply are left out, None when it applies none of them."""
    found = [(o, cmd, a) for o, cmd in items if (a := applier(inv, o)) is not None]
    if not found:
        return None
    helm = [(o, a) for o, _, a in found if a.kind == "HelmRelease"]
    kust = [(o, cmd, a) for o, cmd, a in found if a.kind != "HelmRelease"]
    out = [_helm_delete(o, a) for o, a in helm]
    if kust:
        out.append(_kustomize_delete(inv, kust))
    return "\n\n".join(out)


def _helm_delete(obj: K8sObject, app: Applier) -> str:
    return (f"{_what(obj)} is installed by Flux ({app.title}): deleted with kubectl, it comes back at the next Helm "
            f"upgrade. Turn it off in the chart's values (the HelmRelease's spec.values), commit and push; Flux "
            f"upgrades the release at its next reconcile ({app.next_run}), or now:\n" + _code([app.reconcile]))


def _kustomize_delete(inv: Inventory, found: Sequence[tuple[K8sObject, str, Applier]]) -> str:
    apps = list(dict.fromkeys(a for _, _, a in found))
    places: list[tuple[str, bool]] = []  # (where it is defined, a copy was found)
    for obj, _, app in found:
        copy = repo_copy(inv, obj, app)
        if copy is not None and copy.file:
            places.append((f"{copy.file}:{copy.line}" if copy.line else copy.file, True))
        else:
            missing = "the repository was not loaded" if inv.repo is None else \
                "the loaded repository holds no copy of it"
            places.append((f"the files {app.title} applies{f' ({app.source})' if app.source else ''}; {missing}",
                           False))
    one = len(found) == 1
    what = _what(found[0][0]) if one else ", ".join(f"{o.kind} {o.name}" for o, _, _ in found)
    titles = ", ".join(a.title for a in apps)
    head = (f"{what} {'is' if one else 'are'} applied by Flux ({titles}): deleted with kubectl, "
            f"{'it is' if one else 'they are'} re-created at its next reconcile. ")
    if one:
        at, copied = places[0]
        remove_text = (f"Remove its document from {at} (or the file and its entry in the kustomization.yaml that "
                       "lists it)") if copied else f"Remove it from {at}"
    else:
        remove_text = (f"Remove their documents ({'; '.join(at for at, _ in places)}), or the files and their "
                       "entries in the kustomization.yaml that lists them,")
    reconcile = [a.reconcile for a in apps]
    kept = [cmd for _, cmd, a in found if a.prune is not True]
    them = "it" if one else "them"
    if not kept:
        return (f"{head}{remove_text}, commit and push; Flux prunes {them} (prune: true) at its next reconcile "
                f"({apps[0].next_run}), or now:\n" + _code(reconcile))
    off = [a.title for a in apps if a.prune is False]
    unread = [a.title for a in apps if a.prune is None]
    why = []
    if off:
        why.append(f"{', '.join(off)} has prune off, so Flux leaves {them} in the cluster")
    if unread:
        why.append(f"whether {', '.join(unread)} prunes was not checked (it was not read)")
    return (f"{head}{remove_text}, commit and push; {'; '.join(why)}: once the commit is applied, delete what is "
            f"still there:\n" + _code([*reconcile, *kept]))


def publish(inv: Inventory, objs: Sequence[K8sObject]) -> str | None:
    """What follows an edit of the repository files of ``objs`` when Flux applies them: commit and push, and the
    reconcile that applies it now. None when Flux applies none of them."""
    apps = [a for a in dict.fromkeys(applier(inv, o) for o in objs) if a is not None]
    if not apps:
        return None
    names = ", ".join(a.title for a in apps)
    return (f"Commit and push; Flux ({names}) applies it at its next reconcile ({apps[0].next_run}), or now:\n"
            + _code([a.reconcile for a in apps]))
