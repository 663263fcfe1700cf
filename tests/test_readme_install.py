"""The README's first set-up command, run exactly as written, in a fresh copy of the checkout, under Debian's
``/usr/bin/python3`` (which refuses ``pip install`` outside a virtual environment, PEP 668).

It downloads kubeshape's dependencies from PyPI (``pip install .`` in a new virtual environment): about 15-30 s
with a warm pip cache, more on a cold one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kubeshape.sources.repofiles import collect

ROOT = Path(__file__).resolve().parents[1]
DEBIAN_PYTHON = "/usr/bin/python3"
INSTALL_TIMEOUT = 15 * 60  # seconds: venv + dependencies from PyPI + the demo
# Paths kubeshape prints are relative to the repository root: a report naming one of these read install debris.
DEBRIS = re.compile(r"(?<![\w./-])(?:\.venv|build)/|\.egg-info/")


def readme_setup_command() -> str:
    """The first ```bash block under "## Set up" in README.md: one command line."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Set up\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, 'README.md has no "## Set up" section'
    block = re.search(r"^```bash\n(.*?)^```", section.group(1), re.M | re.S)
    assert block, 'no ```bash block under "## Set up" in README.md'
    lines = [ln for ln in block.group(1).splitlines() if ln.strip()]
    assert len(lines) == 1 and not lines[0].rstrip().endswith("\\"), \
        f"the first set-up command must be one line a user copies, got: {lines}"
    return lines[0]


def require_debian_python() -> None:
    """Fail (never skip) unless /usr/bin/python3 is Debian's (or Ubuntu's) packaged Python ≥ 3.11."""
    if not os.path.isfile(DEBIAN_PYTHON):
        pytest.fail(f"{DEBIAN_PYTHON} is absent: this test needs Debian's or Ubuntu's python3 package "
                    "(apt install python3 python3-venv)")
    probe = subprocess.run(
        [DEBIAN_PYTHON, "-I", "-c",
         "import sys; print(sys.version_info >= (3, 11), '/usr/lib/python3/dist-packages' in sys.path, "
         "sys.version.split()[0])"],
        capture_output=True, text=True, timeout=60)
    owner = subprocess.run(["dpkg-query", "-S", DEBIAN_PYTHON], capture_output=True, text=True, timeout=60) \
        if shutil.which("dpkg-query") else None
    fields = probe.stdout.split()
    debian = (probe.returncode == 0 and len(fields) == 3 and fields[1] == "True"
              and owner is not None and owner.returncode == 0)
    if not debian:
        pytest.fail(f"{DEBIAN_PYTHON} is not Debian's packaged Python (no /usr/lib/python3/dist-packages on its "
                    f"sys.path, or not owned by a dpkg package): probe {probe.stdout.strip()!r} "
                    f"{probe.stderr.strip()!r}, dpkg-query {owner.stdout.strip() if owner else 'missing'!r}")
    if fields[0] != "True":
        pytest.fail(f"{DEBIAN_PYTHON} is Python {fields[2]}; kubeshape needs ≥ 3.11 (Debian 12, Ubuntu 23.04 or later)")


def copy_checkout(dest: Path) -> None:
    """The working tree as a new user would clone it, with uncommitted changes: tracked files and new files
    git does not ignore, copied from disk (no build/, .venv/, egg-info or caches)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True, timeout=120).stdout
    for rel in sorted({r for r in listed.decode().split("\0") if r}):
        src = ROOT / rel
        if not (src.exists() or src.is_symlink()):  # deleted in the working tree
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel, follow_symlinks=False)


def tree(root: Path) -> set[str]:
    """Every path under root, except inside .venv/ (the command's own, expected output)."""
    out: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == root:
            dirnames[:] = [d for d in dirnames if d != ".venv"]
        out.update((here / n).relative_to(root).as_posix() for n in [*dirnames, *filenames])
    return out


def test_readme_setup_command_on_debian_python(tmp_path: Path) -> None:
    command = readme_setup_command()
    require_debian_python()
    checkout = tmp_path / "kubeshape"
    copy_checkout(checkout)
    assert (checkout / "pyproject.toml").is_file()
    before = tree(checkout)

    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE", "PIP_USER", "PIP_PREFIX",
                        "PIP_TARGET", "PIP_BREAK_SYSTEM_PACKAGES", "PIP_REQUIRE_VIRTUALENV")}
    env["PATH"] = os.pathsep.join(["/usr/bin", "/bin", env.get("PATH", "")])
    assert shutil.which("python3", path=env["PATH"]) == DEBIAN_PYTHON
    run = subprocess.run(["bash", "-c", command], cwd=checkout, env=env, capture_output=True, text=True,
                         timeout=INSTALL_TIMEOUT)
    output = run.stdout + run.stderr
    # 1 = findings at or above --fail-on: the demo has them (README, "Exit codes").
    assert run.returncode == 1, f"`{command}` exited {run.returncode}:\n{output[-6000:]}"
    assert "kubeshape doctor" in output and "family-assistant" in output, output[-6000:]
    assert "Traceback" not in output, output[-6000:]

    new = sorted(tree(checkout) - before)
    assert not (checkout / "build").exists(), f"`pip install .` left build/ in the checkout: {new[:20]}"
    assert not new, f"the install left files in the checkout outside .venv/: {new[:20]}"

    kubeshape = checkout / ".venv" / "bin" / "kubeshape"
    assert kubeshape.is_file(), "no .venv/bin/kubeshape: the command did not install into .venv/"
    installed = list((checkout / ".venv").glob("lib/python3*/site-packages/kubeshape"))
    assert len(installed) == 1, f"kubeshape is not installed in .venv/ as a package: {installed}"
    # The wheel holds every file of the package: code, py.typed, templates, deploy/, the demo repo and bundle.
    package = checkout / "src" / "kubeshape"
    missing = sorted(rel for p in package.rglob("*") if p.is_file()
                     and not (installed[0] / (rel := p.relative_to(package).as_posix())).is_file())
    assert not missing, f"files of src/kubeshape missing from the installed package: {missing[:20]}"
    # The virtual environment holds kubeshape's own demo manifests (site-packages/kubeshape/demo/repo): read, they
    # would show up as findings under .venv/.
    assert list(installed[0].glob("demo/repo/*.yaml"))
    lint = subprocess.run([str(kubeshape), "lint", ".", "-o", "json"], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=300)
    assert lint.returncode in (0, 1), f"kubeshape lint . exited {lint.returncode}:\n{lint.stderr[-4000:]}"
    report = json.loads(lint.stdout)
    assert "src/kubeshape/demo/repo/" in lint.stdout, "lint . did not read the checkout's own manifests"
    debris = sorted({m.group(0) for m in DEBRIS.finditer(lint.stdout)})
    assert not debris, f"kubeshape lint . read install debris {debris}: {report['sources']}"


def test_walker_skips_any_virtualenv_and_egg_info(tmp_path: Path) -> None:
    """Virtualenvs are found by their pyvenv.cfg whatever their name; setuptools' *.egg-info is never read."""
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\n"
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "cm.yaml").write_text(manifest.format("real"))
    shared = tmp_path / "py311" / "share" / "pkg"  # not under site-packages: only pyvenv.cfg marks it
    shared.mkdir(parents=True)
    (tmp_path / "py311" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (shared / "cm.yaml").write_text(manifest.format("junk"))
    (tmp_path / "src" / "kubeshape.egg-info").mkdir(parents=True)
    (tmp_path / "src" / "kubeshape.egg-info" / "cm.yaml").write_text(manifest.format("junk"))
    files = collect([tmp_path], tmp_path, [])
    assert sorted(f.rel for f in files.yaml.values()) == ["k8s/cm.yaml"]
