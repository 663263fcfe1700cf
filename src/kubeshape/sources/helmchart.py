"""Local Helm charts that a Flux HelmRelease installs from the repository, rendered with ``helm template``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from kubeshape.sources.flux import mapping
from kubeshape.sources.kustomize import Rendered
from kubeshape.sources.repofiles import is_manifest
from kubeshape.sources.yamlio import YamlSyntaxError, load_yaml_text

HELM_TIMEOUT = 120
_SOURCE = re.compile(r"^# Source: (\S+)", re.M)


def local_chart(release: dict[str, Any], base: Path) -> Path | None:
    """The chart directory in the repository that a HelmRelease installs (``spec.chart.spec.chart: ./charts/x``
    from a GitRepository), or None for charts from Helm or OCI repositories."""
    spec = mapping(mapping(mapping(release.get("spec")).get("chart")).get("spec"))
    chart, source = spec.get("chart"), mapping(spec.get("sourceRef"))
    if not isinstance(chart, str) or source.get("kind") != "GitRepository" or "${" in chart:
        return None
    path = (base / chart.lstrip("/")).resolve()
    if path.is_relative_to(base) and (path / "Chart.yaml").is_file():
        return path
    return None


def release_name(release: dict[str, Any]) -> tuple[str, str]:
    """(release name, namespace) as Flux installs it: ``spec.releaseName``, else ``<targetNamespace>-<name>``."""
    meta, spec = mapping(release.get("metadata")), mapping(release.get("spec"))
    name, ns = str(meta.get("name") or "release"), str(meta.get("namespace") or "default")
    target = spec.get("targetNamespace")
    rel = spec.get("releaseName") or (f"{target}-{name}" if target else name)
    return str(rel)[:53], str(target or ns)


def helm() -> str | None:
    return shutil.which("helm")


def template(chart: Path, release: dict[str, Any], base: Path) -> tuple[list[Rendered], str]:
    """``helm template`` of ``chart`` with the HelmRelease's values: (objects, error)."""
    exe = helm()
    if exe is None:
        return [], "helm is not installed, so the chart's templates are not rendered"
    name, namespace = release_name(release)
    values = mapping(mapping(release.get("spec")).get("values"))
    with tempfile.TemporaryDirectory(prefix="kubeshape-helm-") as tmp:
        vals = Path(tmp) / "values.json"
        vals.write_text(json.dumps(values), encoding="utf-8")
        # Helm keeps caches and repositories under these: never in the user's home.
        env = {**os.environ, "HELM_CACHE_HOME": tmp, "HELM_CONFIG_HOME": tmp, "HELM_DATA_HOME": tmp}
        cmd = [exe, "template", name, str(chart), "--namespace", namespace, "--values", str(vals)]
        if not mapping(mapping(release.get("spec")).get("test")).get("enable"):
            cmd.append("--skip-tests")  # Flux runs chart tests only when spec.test.enable is set
        try:
            proc = subprocess.run(cmd,
                                  capture_output=True, text=True, timeout=HELM_TIMEOUT, check=False, env=env)
        except subprocess.TimeoutExpired:
            return [], f"helm template timed out after {HELM_TIMEOUT}s"
        except OSError as exc:
            return [], f"could not run helm: {exc.strerror}"
    if proc.returncode != 0:
        return [], (proc.stderr.strip().splitlines() or ["helm template failed"])[-1].replace(f"{base}/", "")
    return _parse(proc.stdout, chart, base), ""


def _parse(text: str, chart: Path, base: Path) -> list[Rendered]:
    """Objects of helm's output, each located at the template it came from (``# Source: chart/templates/x``)."""
    out: list[Rendered] = []
    chart_rel = chart.relative_to(base).as_posix()
    for chunk in re.split(r"^---[ \t]*$", text, flags=re.M):
        m = _SOURCE.search(chunk)
        rel = f"{chart_rel}/{m.group(1).split('/', 1)[1]}" if m and "/" in m.group(1) else f"{chart_rel}/Chart.yaml"
        try:
            docs = load_yaml_text(chunk, rel, with_lines=False)
        except YamlSyntaxError:
            continue  # helm validated its output; a chunk it printed that we cannot read is not a manifest
        out.extend(Rendered(data=d.data, file=rel, line=1, lines={}) for d in docs if is_manifest(d.data))
    return out
