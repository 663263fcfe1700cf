"""Build hostile bundles at test time and run the real CLI on them in a bounded subprocess."""

from __future__ import annotations

import copy
import io
import json
import os
import signal
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AS_LIMIT = int(1.5 * 1024**3)  # address space of the CLI subprocess
MANIFEST: dict[str, Any] = {"apiVersion": "kubeshape.io/v1", "kind": "Bundle", "formatVersion": 1,
                            "collectedAt": "2026-01-01T00:00:00Z", "cluster": {"name": "t"}}
POD: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "p", "namespace": "d", "labels": {"app": "p"}},
    "spec": {"containers": [{"name": "c", "image": "x:1"}]},
    "status": {"containerStatuses": [{"name": "c", "restartCount": 0, "state": {"running": {}}}]},
}


def pod(**changes: Any) -> dict[str, Any]:
    """A copy of POD with dotted-path replacements, e.g. ``pod(**{"status": "Running"})``."""
    out = copy.deepcopy(POD)
    for path, value in changes.items():
        node = out
        *parents, last = path.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    return out


def write_bundle(root: Path, resources: dict[str, Any] | None = None, manifest: Any = None,
                 extra: dict[str, bytes] | None = None) -> Path:
    """A bundle directory: manifest, ``resources/<name>`` lists (dicts are dumped, bytes written) and extra files."""
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {"kubeshape-bundle.json": _dump(MANIFEST if manifest is None else manifest)}
    files.update({f"resources/{n}": _dump(v) for n, v in (resources or {}).items()})
    files.update(extra or {})
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def pods_list(*items: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": list(items)}


def _dump(v: Any) -> bytes:
    return v if isinstance(v, bytes) else json.dumps(v).encode()  # json: integers beyond 64 bits too


def tar_member(tar: tarfile.TarFile, name: str, data: bytes = b"", **fields: Any) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for k, v in fields.items():
        setattr(info, k, v)
    tar.addfile(info, io.BytesIO(data) if data else None)


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mib: float

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


# A small launcher runs the CLI as its own child and reports that child's peak RSS. Measured from the test
# process, a child's peak would include the test process's own pages (Linux carries the parent's RSS high-water
# mark across fork and exec), and the test process can be large after the fuzz tests.
_LAUNCH = """
import os, resource, sys
limit, report, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
pid = os.fork()
if pid == 0:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.execv(argv[0], argv)
_, status, usage = os.wait4(pid, 0)
with open(report, "w") as fh:
    fh.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def doctor(bundle: Path, cwd: Path, timeout: float = 60, env: dict[str, str] | None = None) -> Run:
    """``python -m kubeshape doctor --bundle BUNDLE -o json`` under the limits of :func:`kubeshape`."""
    return kubeshape("doctor", "--bundle", str(bundle), "-o", "json", cwd=cwd, timeout=timeout, env=env)


def kubeshape(*args: str, cwd: Path, timeout: float = 60, env: dict[str, str] | None = None) -> Run:
    """``python -m kubeshape ARGS`` with a 1.5 GiB address space, killed (with its launcher) after ``timeout``
    seconds; reports the CLI process's own peak RSS."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        cmd = [sys.executable, "-c", _LAUNCH, str(AS_LIMIT), rss.name, sys.executable, "-m", "kubeshape", *args]
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=cwd, start_new_session=True,
                                env={**os.environ, **(env or {})})
        timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            code = proc.wait()
        finally:
            timer.cancel()
        seconds = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        peak_kib = int(rss.read() or 0)
        return Run(code, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                   seconds, peak_kib / 1024)


def assert_sane(run: Run, seconds: float = 60) -> None:
    """Any documented exit code, no traceback, bounded time."""
    assert run.code in (0, 1, 2, 3), run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert run.seconds < seconds


def assert_one_line_error(run: Run, *needles: str) -> str:
    """Exit 2 with exactly one stderr line that contains every needle."""
    assert_sane(run)
    assert run.code == 2, (run.code, run.stderr)
    assert len(run.lines) == 1, run.stderr
    for needle in needles:
        assert needle in run.lines[0], run.lines[0]
    return run.lines[0]


def gzip_tar(path: Path, members: list[tuple[str, bytes | tuple[int, bytes]]]) -> Path:
    """A .tar.gz whose members are bytes or ``(size, fill byte)``; filled members are written as repeated
    independently deflated 1 MiB blocks, so a 2 GiB member costs a second, not a minute, to build."""
    block = 1 << 20
    crc, total = 0, 0
    with path.open("wb") as fh:
        fh.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03")

        def deflate(data: bytes, times: int = 1, last: bool = False) -> None:
            nonlocal crc, total
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            chunk = c.compress(data) + c.flush(zlib.Z_FINISH if last else zlib.Z_FULL_FLUSH)
            for _ in range(times):
                fh.write(chunk)
                crc = zlib.crc32(data, crc)
            total += len(data) * times

        for name, content in members:
            size = len(content) if isinstance(content, bytes) else content[0]
            info = tarfile.TarInfo(name)
            info.size = size
            deflate(info.tobuf(format=tarfile.GNU_FORMAT))
            if isinstance(content, bytes):
                deflate(content)
            else:
                full, rest = divmod(size, block)
                if full:
                    deflate(content[1] * block, full)
                if rest:
                    deflate(content[1] * rest)
            if size % 512:
                deflate(bytes(512 - size % 512))
        deflate(bytes(1024), last=True)
        fh.write(struct.pack("<II", crc, total & 0xFFFFFFFF))
    return path
