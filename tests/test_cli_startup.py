"""Start-up: each command imports only what it uses, and the root help lists every command without loading it.

The modules a command loaded are read from ``sys.modules`` when its process exits, so imports done through
``importlib`` (the rule families) count too. No timings here: benchmarks/bench_startup.py measures them.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

import kubeshape.rules
from kubeshape import __version__
from kubeshape.cli.app import _Root, app
from kubeshape.cli.catalog import rule_markdown
from kubeshape.findings import FAMILIES
from kubeshape.rules import FAMILY_MODULES
from kubeshape.rules.base import all_rules, get_rule
from testbed.cluster import Cluster

HEAVY = ("pydantic", "lightkube", "httpx", "httpx2", "httpcore", "httpcore2", "rich.markdown", "jinja2", "ruamel",
         "starlette", "uvicorn", "cryptography")
SUB_MODULES = ("kubeshape.cli.registry_cmd", "kubeshape.cli.webhook_cmd", "kubeshape.cli.webhook_serve",
               "kubeshape.cli.policy_cmd", "kubeshape.cli.init_cmd", "kubeshape.cli.release_cmd")
KUBERNETES_CLIENT = ("lightkube", "httpx2", "httpcore2", "kubeshape.sources.live")
REPO_SIDE = ("kubeshape.sources.repo", "kubeshape.sources.kustomize", "kubeshape.sources.helmchart",
             "kubeshape.sources.render", "kubeshape.sources.git", "ruamel")
HTML = ("kubeshape.report.html", "jinja2")
FAMILY_PACKAGES = tuple(f"kubeshape.rules.{m}" for m in FAMILY_MODULES.values())

# Runs kubeshape's entry point as the console script does and writes sys.modules to a file when it exits.
_RUN = """\
import atexit, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write("\\n".join(sorted(sys.modules))))
sys.argv = ["kubeshape", *sys.argv[2:]]
from kubeshape.cli.app import main
main()
"""
_IMPORT = """\
import importlib, sys
importlib.import_module(sys.argv[2])
open(sys.argv[1], "w").write("\\n".join(sorted(sys.modules)))
"""

TINY_REPO = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: web:latest
"""


def _run(tmp_path: Path, *args: str, env: dict[str, str] | None = None
         ) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``kubeshape ARGS`` in a real process (output piped); its result and the modules it had loaded."""
    out = tmp_path / "modules.txt"
    out.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-c", _RUN, str(out), *args], capture_output=True, text=True,
                          timeout=300, check=False, env={**os.environ, "COLUMNS": "80", **(env or {})})
    return proc, set(out.read_text().split())


def _alone(tmp_path: Path, module: str) -> set[str]:
    """The modules loaded by importing ``module`` into a fresh interpreter."""
    out = tmp_path / "alone.txt"
    subprocess.run([sys.executable, "-c", _IMPORT, str(out), module], check=True, timeout=120)
    return set(out.read_text().split())


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(f"{n}.") for n in names))


def test_version_imports_no_heavy_library(tmp_path: Path) -> None:
    proc, modules = _run(tmp_path, "version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"kubeshape {__version__}\n"
    assert "typer" in modules  # the measurement sees imports at all
    assert not _loaded(modules, (*HEAVY, "rich", "kubeshape.rules", "kubeshape.config")), _loaded(modules, HEAVY)


def test_root_help_lists_every_command_without_loading_the_sub_apps(tmp_path: Path) -> None:
    proc, modules = _run(tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr
    listed = [line.split()[0] for line in proc.stdout.split("Commands:")[1].splitlines() if line.strip()]
    assert listed == ["lint", "doctor", "explain", "snapshot", "rules", "rule", "rbac", "fix", "release", "history",
                      "version", "registry", "webhook", "policy", "init"]
    assert not [m for m in SUB_MODULES if m in modules]
    assert not _loaded(modules, (*HEAVY, "rich")), _loaded(modules, HEAVY)


@pytest.mark.parametrize("name", sorted(_Root.lazy))
def test_listed_summary_is_the_commands_own(name: str) -> None:
    """The summary kept beside a lazily loaded command is the first sentence of that command's real help."""
    root = typer.main.get_command(app)
    ctx = root.make_context("kubeshape", [], resilient_parsing=True)
    real = root.get_command(ctx, name)  # type: ignore[attr-defined]
    assert real.params or getattr(real, "commands", None), f"{name} is still its stand-in"
    assert real.get_short_help_str(limit=500) == _Root.lazy[name].summary


def test_a_lazy_sub_app_runs_through_the_root() -> None:
    """``kubeshape webhook`` loads the sub-app with the ``serve`` command the root adds to it."""
    proc = subprocess.run([sys.executable, "-m", "kubeshape", "webhook", "--help"], capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, "COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    commands = [line.split()[0] for line in proc.stdout.split("Commands:")[1].splitlines() if line.strip()]
    assert commands == ["certs", "manifests", "serve"]


def test_the_family_index_names_the_module_of_every_rule() -> None:
    """``FAMILY_MODULES`` (what ``kubeshape rule`` imports) agrees with the registry that importing every rule
    module builds: one module per family, every module listed, every rule registered by its family's module."""
    found = {m.name for m in pkgutil.iter_modules(kubeshape.rules.__path__)
             if not m.name.startswith("_") and m.name != "base"}
    assert sorted(FAMILY_MODULES.values()) == sorted(found)
    assert sorted(FAMILY_MODULES) == sorted(FAMILIES)
    rules = all_rules()
    assert {r.family for r in rules} == set(FAMILY_MODULES)
    for r in rules:
        home = f"kubeshape.rules.{FAMILY_MODULES[r.family]}"
        assert r.func.__module__ == home or r.func.__module__.startswith(f"{home}."), \
            f"{r.id} is registered by {r.func.__module__}, not by {home}: list its module in FAMILY_MODULES"


@pytest.mark.parametrize("rule_id", sorted({min(r.id for r in all_rules() if r.family == f) for f in FAMILIES}))
def test_rule_loads_only_its_familys_module(rule_id: str, tmp_path: Path) -> None:
    """``kubeshape rule KSxxx`` prints the rule's documentation having imported the rule modules its family's
    module imports itself, and no other family, no Pydantic, no Rich (output piped)."""
    proc, modules = _run(tmp_path, "rule", rule_id.lower())
    assert proc.returncode == 0, proc.stderr
    rule = get_rule(rule_id)
    assert rule is not None
    assert proc.stdout == rule_markdown(rule)
    family = f"kubeshape.rules.{FAMILY_MODULES[rule.family]}"
    with_family = _alone(tmp_path, family)
    assert family in modules
    assert _loaded(modules, FAMILY_PACKAGES) == _loaded(with_family, FAMILY_PACKAGES)
    assert len(_loaded(modules, FAMILY_PACKAGES)) < len(_loaded(set(sys.modules), FAMILY_PACKAGES))
    assert not _loaded(modules, (*HEAVY, "rich", "kubeshape.config")), _loaded(modules, (*HEAVY, "rich"))


def test_an_unknown_rule_is_looked_for_in_every_family_first(tmp_path: Path) -> None:
    """A rule ID of the right shape that its family's module does not register: every module is read before
    kubeshape says it does not exist."""
    proc, modules = _run(tmp_path, "rule", "KS199")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "kubeshape: error: unknown rule 'KS199' -- see 'kubeshape rules'"
    assert set(FAMILY_PACKAGES) <= modules


def test_rule_in_a_terminal_is_rendered_by_rich(tmp_path: Path) -> None:
    """Output forced to be a terminal (Rich's TTY_COMPATIBLE) is still rendered Markdown, not the plain text."""
    proc, modules = _run(tmp_path, "rule", "KS101", env={"TTY_COMPATIBLE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "\x1b[" in proc.stdout and "## What it does" not in proc.stdout
    assert "What it does" in proc.stdout
    assert "rich.markdown" in modules


def test_rules_lists_the_catalogue_without_pydantic(tmp_path: Path) -> None:
    proc, modules = _run(tmp_path, "rules", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    assert [r["id"] for r in json.loads(proc.stdout)] == [r.id for r in all_rules()]
    assert set(FAMILY_PACKAGES) <= modules
    assert not _loaded(modules, (*HEAVY, "rich", "kubeshape.config")), _loaded(modules, HEAVY)


def test_lint_loads_no_kubernetes_client_and_no_html(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "web.yaml").write_text(TINY_REPO)
    proc, modules = _run(tmp_path, "lint", str(repo), "-o", "json")
    assert proc.returncode == 1, proc.stderr
    assert "KS101" in {f["rule"] for f in json.loads(proc.stdout)["findings"]}
    assert "kubeshape.sources.repo" in modules
    assert not _loaded(modules, (*KUBERNETES_CLIENT, "httpx", *HTML, "kubeshape.sources.bundle"))


def test_demo_json_loads_no_kubernetes_client_and_no_html(tmp_path: Path) -> None:
    proc, modules = _run(tmp_path, "doctor", "--demo", "-o", "json")
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["findings"]
    assert {"kubeshape.sources.bundle", "kubeshape.sources.repo"} <= modules
    assert not _loaded(modules, (*KUBERNETES_CLIENT, "httpx", *HTML, "rich.markdown"))
    html, modules = _run(tmp_path, "doctor", "--demo", "-o", "html")
    assert html.returncode == 1 and html.stdout.startswith("<!DOCTYPE html>"), html.stderr
    assert set(HTML) <= modules  # the HTML renderer and Jinja come with -o html


def test_live_doctor_json_loads_no_repository_or_html_code(cluster: Cluster, tmp_path: Path) -> None:
    """doctor on a live cluster without --repo reads no manifests, git, Kustomize or Helm charts, and renders JSON
    without the HTML templates."""
    proc, modules = _run(tmp_path, "doctor", "--kubeconfig", str(cluster.kubeconfig), "-o", "json")
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    assert "cluster" in report["sources"] and "repo" not in report["sources"]
    assert {"lightkube", "kubeshape.sources.live"} <= modules
    assert not _loaded(modules, (*REPO_SIDE, *HTML, "rich.markdown")), _loaded(modules, (*REPO_SIDE, *HTML))
