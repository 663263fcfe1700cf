"""Build an image with whatever the machine has (docker buildx, podman, buildah) into an OCI image layout.

The layout is then pushed by kubeshape itself, so every builder goes through the same push and tag check.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubeshape.errors import InputError

BUILD_TIMEOUT = 3600


class BuildError(InputError):
    """No usable builder, or the build failed."""


@dataclass(frozen=True, slots=True)
class Builder:
    name: str  # "docker buildx" | "podman" | "buildah"
    executable: str


def _works(*argv: str) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=20, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def detect(which: Callable[[str], str | None] = shutil.which) -> Builder | None:
    """The first builder that answers: docker buildx (with a reachable daemon), podman, buildah."""
    docker = which("docker")
    if docker and _works(docker, "buildx", "version") and _works(docker, "info"):
        return Builder("docker buildx", docker)
    for name in ("podman", "buildah"):
        exe = which(name)
        if exe and _works(exe, "version"):
            return Builder(name, exe)
    return None


def build(builder: Builder, context: Path, labels: dict[str, str], out: Path, tag: str) -> Path:
    """Build ``context`` (its Dockerfile) with ``labels`` into the OCI layout ``out``; returns ``out``."""
    label_args = [arg for k, v in sorted(labels.items()) for arg in ("--label", f"{k}={v}")]
    out.mkdir(parents=True, exist_ok=True)
    local = f"localhost/kubeshape-release:{tag}"
    if builder.name == "docker buildx":
        archive = out.with_suffix(".tar")
        _run([builder.executable, "buildx", "build", *label_args, "--output", f"type=oci,dest={archive}",
              str(context)], builder)
        with tarfile.open(archive) as tar:
            tar.extractall(out, filter="data")
        archive.unlink()
    else:
        verb = "build" if builder.name == "podman" else "bud"
        _run([builder.executable, verb, *label_args, "-t", local, str(context)], builder)
        _run([builder.executable, "push", local, f"oci:{out}"], builder)
    return out


def _run(argv: list[str], builder: Builder) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError(f"{builder.name}: {exc}") from None
    if proc.returncode != 0:
        tail = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()][-1:] or ["no output"]
        raise BuildError(f"{builder.name} build failed: {tail[0].strip()}")
