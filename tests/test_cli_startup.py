"""Start-up: quick commands import only what they use, and the root help lists every command without loading it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import typer

from kubeshape import __version__
from kubeshape.cli.app import _Root, app

HEAVY = ("pydantic", "lightkube", "httpx", "httpx2", "rich.markdown", "jinja2", "ruamel", "starlette", "uvicorn",
         "cryptography")
SUB_MODULES = ("kubeshape.cli.registry_cmd", "kubeshape.cli.webhook_cmd", "kubeshape.cli.webhook_serve",
               "kubeshape.cli.policy_cmd", "kubeshape.cli.init_cmd", "kubeshape.cli.release_cmd")


def _imported(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``kubeshape ARGS`` in a real process; its result and the modules it imported."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "kubeshape", *args], capture_output=True,
                          text=True, timeout=120, check=False, env={**os.environ, "COLUMNS": "80"})
    modules = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
               if line.startswith("import time:") and "|" in line}
    return proc, modules


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(f"{h}.") for h in HEAVY))


def test_version_imports_no_heavy_library() -> None:
    proc, modules = _imported("version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"kubeshape {__version__}\n"
    assert "typer" in modules  # the measurement sees imports at all
    assert not _heavy(modules), _heavy(modules)


def test_root_help_lists_every_command_without_loading_the_sub_apps() -> None:
    proc, modules = _imported("--help")
    assert proc.returncode == 0, proc.stderr
    listed = [line.split()[0] for line in proc.stdout.split("Commands:")[1].splitlines() if line.strip()]
    assert listed == ["lint", "doctor", "explain", "snapshot", "rules", "rule", "rbac", "release", "history",
                      "version", "registry", "webhook", "policy", "init"]
    assert not [m for m in SUB_MODULES if m in modules]
    assert not _heavy(modules), _heavy(modules)


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
