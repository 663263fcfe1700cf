"""KS502: liveness and readiness probes on one rate-limited endpoint -- separate them, in the file only.

The new settings are the ones the finding's fix shows (its YAML block); the application must serve the new paths,
so the cluster is not changed: the next deploy of the file carries them together with the code.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from kubeshape.actions.fix import yamledit as ye
from kubeshape.actions.fix.context import FixContext, Refuse
from kubeshape.actions.fix.fixers._where import container, container_keys, locate
from kubeshape.findings import Finding
from kubeshape.inventory import K8sObject
from kubeshape.report.fixblocks import split_fix

PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
HANDLERS = ("httpGet", "tcpSocket", "exec", "grpc")


def _wanted(f: Finding) -> dict[str, dict[str, Any]]:
    """container name -> probe name -> settings, from the YAML blocks of the finding's fix (one per container)."""
    out: dict[str, dict[str, Any]] = {}
    for block in split_fix(f.fix):
        if not block.code or block.lang != "yaml":
            continue
        try:
            doc = YAML(typ="safe", pure=True).load(block.text)
        except YAMLError:
            continue
        for item in _containers_in(doc):
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                probes = {k: v for k, v in item.items() if k in PROBES and isinstance(v, dict)}
                if probes:
                    out.setdefault(item["name"], {}).update(probes)
    return out


def _containers_in(node: Any) -> list[Any]:
    """The ``containers`` list of a patch for any pod-template path (Deployment, CronJob, Pod)."""
    while isinstance(node, dict):
        if isinstance(node.get("containers"), list):
            return list(node["containers"])
        node = node.get("spec") or node.get("template") or node.get("jobTemplate")
    return []


def _handler(probe: Any) -> str | None:
    """The probe's action (httpGet, tcpSocket, exec, grpc); None when it has none."""
    if not isinstance(probe, dict):
        return None
    return next((h for h in HANDLERS if h in probe), None)


def _leaves(value: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out: list[tuple[tuple[str, ...], Any]] = []
    for k, v in value.items():
        if isinstance(v, dict):
            out += _leaves(v, (*prefix, str(k)))
        else:
            out.append(((*prefix, str(k)), v))
    return out


def _set(text: str, *, file: str, doc: int, path: ye.Path_, value: Any) -> str:
    return ye.set_value(text, file, doc, path, value)


def fix_probes(ctx: FixContext, findings: list[Finding]) -> None:
    """Write the probe settings of the finding's fix into every file that defines the workload (never an overlay's
    field, never a probe that uses another action): the application's new endpoints ship with the next deploy."""
    for f in findings:
        if f.object is None:
            ctx.refuse([f], "the finding names no workload")
            continue
        wanted = _wanted(f)
        if not wanted:
            ctx.refuse([f], "the fix gives no probe settings to write (an exec or TCP probe): change them by hand")
            continue
        key = (f.object.kind, f.object.namespace, f.object.name)
        with ctx.step(f"Separate the probes of {f.object.kind} {f.object.namespace}/{f.object.name} (in the file; "
                      "deploy it with the app's new endpoints)", [f]):
            copies = [o for o in ctx.inv.repo_by_key.get(key, []) if locate(ctx, o) is not None]
            if not copies:
                raise Refuse("no file in the repository defines it: apply the fix's patch with kubectl once the "
                             "app serves the new endpoints")
            for o in copies:
                _edit_copy(ctx, o, wanted)
            ctx.note("the application must serve the new probe paths before this file is deployed")


def _edit_copy(ctx: FixContext, o: K8sObject, wanted: dict[str, dict[str, Any]]) -> None:
    spot = locate(ctx, o)
    assert spot is not None
    for name, probes in wanted.items():
        c = container(o, name)
        if c is None:
            raise Refuse(f"{o.file}: {o.kind} {o.name} has no container {name}")
        for probe, settings in probes.items():
            have, want = _handler(c.spec.get(probe)), _handler(settings)
            if have is not None and want is not None and have != want:
                raise Refuse(f"{o.file}: {probe} of container {name} uses {have}, the fix {want}: change it by hand")
            for path, _ in _leaves(settings):
                overlay = o.origin(".".join((c.path, probe, *path)))
                if overlay is not None:
                    raise Refuse(f"{probe} of container {name} is set by {overlay[0]}:{overlay[1]}: change it there")
            for path, value in _leaves(settings):
                ctx.edit(spot.file, partial(_set, file=spot.file, doc=spot.doc,
                                            path=(*container_keys(c), probe, *path), value=value))
