"""Read bundle members from a directory or an archive, within ``Limits``, without trusting the input.

Only regular files are read: symlinks, hard links, devices, FIFOs, sparse files and members with absolute or
``..`` paths are skipped with a note, and nothing is ever extracted to disk. Archives are decompressed as one
stream whose every byte is counted, so a gzip bomb stops after ``ratio_floor`` bytes whether or not the
member it hides in would be read. Log files are read as tails of at most ``max_log_bytes``.
"""

from __future__ import annotations

import abc
import bz2
import gzip
import io
import lzma
import os
import stat
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal, cast

from kubeshape.errors import InputError
from kubeshape.sources.limits import Limits, human_bytes

CHUNK = 1024 * 1024
MAX_NOTES = 10
MemberKind = Literal["json", "log"]
_CORRUPT = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError)


def member_kind(name: str) -> MemberKind | None:
    """What the loader may want of a member, from its name alone: JSON, a log tail, or nothing."""
    if name.endswith(".json"):
        return "json"
    if name.endswith((".log", "/logs.txt")):
        return "log"
    return None


def _file_type(mode: int) -> str:
    for test, what in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return what
    return "not a regular file"


def read_padded(fh: IO[bytes], size: int, pad: int) -> bytearray:
    """Read ``size`` bytes into the middle of ``pad`` ``[`` and ``pad`` ``]`` without a second copy."""
    buf = bytearray(size + 2 * pad)
    buf[:pad] = b"[" * pad
    view = memoryview(buf)[pad:pad + size]
    got = 0
    while got < size and (n := fh.readinto(view[got:])):  # type: ignore[attr-defined]
        got += n
    view.release()
    if got < size:  # the file shrank while being read
        del buf[pad + got:]
        buf += b"]" * pad
    else:
        buf[pad + size:] = b"]" * pad
    return buf


def _drop_partial_line(data: bytes) -> bytes:
    cut = data.find(b"\n")
    return data[cut + 1:] if cut >= 0 else data


class BundleReader(abc.ABC):
    """Yields ``(posix path inside the bundle, data)`` for the members the loader may want.

    JSON members come padded for the depth check: ``limits.json_pad`` ``[`` before and ``]`` after.
    """

    def __init__(self, path: Path, limits: Limits) -> None:
        self.path = path
        self.limits = limits
        self.notes: list[str] = []
        self._skipped = 0
        self._members = 0

    @abc.abstractmethod
    def members(self) -> Iterator[tuple[str, bytes | bytearray]]:
        """Every wanted regular file, in a stable order."""

    def skipped(self, name: str, why: str) -> None:
        """Remember a member that was not read (the first few are listed in the report's notes)."""
        self._skipped += 1
        if self._skipped <= MAX_NOTES:
            self.notes.append(f"bundle member {name}: {why}; skipped")
        elif self._skipped == MAX_NOTES + 1:
            self.notes.append("further bundle members were skipped for the same reasons")

    def _count_member(self) -> None:
        self._members += 1
        if self._members > self.limits.max_members:
            raise InputError(f"{self.path}: more than {self.limits.max_members:,} files -- not a bundle kubeshape "
                             "writes; remove unrelated files or raise KUBESHAPE_BUNDLE_MAX_MEMBERS (or "
                             "limits.bundle_max_members in kubeshape.yaml)")

    def _too_big(self) -> InputError:
        return InputError(f"{self.path}: holds more than {human_bytes(self.limits.max_bytes)} of data -- remove "
                          "unrelated files or raise KUBESHAPE_BUNDLE_MAX_BYTES (or limits.bundle_max_bytes in "
                          "kubeshape.yaml)")


class DirReader(BundleReader):
    """A bundle directory; special files are noted, never opened (opening a FIFO blocks)."""

    def members(self) -> Iterator[tuple[str, bytes | bytearray]]:
        total = 0
        for dirpath, dirnames, filenames in os.walk(self.path):  # does not descend into symlinked directories
            dirnames.sort()
            for fn in sorted(filenames):
                self._count_member()
                full = os.path.join(dirpath, fn)
                name = Path(full).relative_to(self.path).as_posix()
                kind = member_kind(name)
                if kind is None:
                    continue
                data = self._read(full, name, kind, self.limits.max_bytes - total)
                if data is not None:
                    total += len(data)
                    yield name, data

    def _read(self, full: str, name: str, kind: MemberKind, budget: int) -> bytes | bytearray | None:
        try:
            st = os.stat(full)
            if not stat.S_ISREG(st.st_mode):
                self.skipped(name, _file_type(st.st_mode))
                return None
            want = min(st.st_size, self.limits.max_log_bytes) if kind == "log" else st.st_size
            if want > budget:
                raise self._too_big()
            fd = os.open(full, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            with os.fdopen(fd, "rb") as fh:
                if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced since the stat
                    self.skipped(name, "not a regular file")
                    return None
                if kind == "json":
                    return read_padded(fh, want, self.limits.json_pad)
                if st.st_size > want:
                    fh.seek(st.st_size - want)
                    return _drop_partial_line(fh.read(want))
                return fh.read(want)
        except OSError as exc:
            self.skipped(name, f"cannot be read ({exc.strerror or exc})")
            return None


class _Counted(io.RawIOBase):
    """The decompressed archive stream; every byte counts against the size and compression-ratio limits."""

    def __init__(self, inner: IO[bytes], raw: IO[bytes], compressed: bool, reader: TarReader) -> None:
        super().__init__()
        self.inner, self.raw, self.compressed, self.reader = inner, raw, compressed, reader
        self.produced = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self.inner.read(CHUNK if size is None or size < 0 else size)
        self.produced += len(data)
        limits = self.reader.limits
        if self.produced > limits.max_bytes:
            raise self.reader._too_big()
        if self.compressed and self.produced > limits.ratio_floor:
            packed = max(self.raw.tell(), 1)
            if self.produced > limits.max_ratio * packed:
                raise InputError(
                    f"{self.reader.path}: decompresses to more than {limits.max_ratio}x its compressed size "
                    f"({human_bytes(self.produced)} from {human_bytes(packed)} so far) -- a compression bomb or "
                    "padded data, not a bundle kubeshape writes; if it is genuine, unpack it and pass the "
                    "directory, or raise KUBESHAPE_BUNDLE_MAX_RATIO (or limits.bundle_max_ratio in kubeshape.yaml)")
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _decompressor(raw: IO[bytes]) -> tuple[IO[bytes], bool]:
    magic = raw.read(6)
    raw.seek(0)
    if magic.startswith(b"\x1f\x8b"):
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb")), True
    if magic.startswith(b"BZh"):
        return cast(IO[bytes], bz2.BZ2File(raw, "rb")), True
    if magic.startswith(b"\xfd7zXZ\x00"):
        return cast(IO[bytes], lzma.LZMAFile(raw, "rb")), True
    return raw, False


class TarReader(BundleReader):
    """A tar archive (plain, gzip, bzip2 or xz), read as a stream: members are never extracted."""

    def members(self) -> Iterator[tuple[str, bytes | bytearray]]:
        try:
            with open(self.path, "rb") as raw:
                inner, compressed = _decompressor(raw)
                stream = _Counted(inner, raw, compressed, self)
                with tarfile.open(fileobj=stream, mode="r|") as tar:
                    for m in tar:
                        self._count_member()
                        if stream.produced + m.size > self.limits.max_bytes:
                            raise self._too_big()
                        name = self._name(m)
                        kind = member_kind(name) if name else None
                        if name is None or kind is None:
                            continue
                        f = tar.extractfile(m)
                        if f is not None:
                            yield name, self._read(f, kind)
        except _CORRUPT as exc:
            raise InputError(f"{self.path}: truncated or corrupt bundle archive ({exc}) -- "
                             "re-create it with 'kubeshape snapshot'") from None

    def _name(self, m: tarfile.TarInfo) -> str | None:
        """The member's path inside the bundle, or None (with a note) when it must not be read."""
        if m.isdir():
            return None
        parts = [p for p in m.name.split("/") if p not in ("", ".")]
        why = ("an absolute path" if m.name.startswith("/") else "a path that leaves the bundle ('..')"
               if ".." in parts else "a symbolic link" if m.issym() else "a hard link" if m.islnk()
               else "a device or FIFO" if m.isdev() else "a sparse file" if m.issparse()
               else "not a regular file" if not m.isreg() else "")
        if why:
            self.skipped(m.name, why)
            return None
        return "/".join(parts)

    def _read(self, f: IO[bytes], kind: MemberKind) -> bytes | bytearray:
        if kind == "json":  # grown as data arrives: a header's size is a claim, not a fact
            pad = self.limits.json_pad
            buf = bytearray(b"[" * pad)
            while chunk := f.read(CHUNK):
                buf += chunk
            buf += b"]" * pad
            return buf
        keep, tail, total = self.limits.max_log_bytes, b"", 0
        while chunk := f.read(CHUNK):
            total += len(chunk)
            tail = (tail + chunk)[-keep:]
        return _drop_partial_line(tail) if total > keep else tail
