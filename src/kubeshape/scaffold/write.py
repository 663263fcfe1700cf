"""Write generated files idempotently: equal content is left alone, a file with other content only with force."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from kubeshape.errors import InputError


class State(StrEnum):
    missing = "missing"
    same = "same"
    differs = "differs"


@dataclass(frozen=True, slots=True)
class Planned:
    """A file to write, and how it compares with what is on disk."""

    path: Path
    text: str
    state: State


def plan(files: dict[Path, str]) -> list[Planned]:
    """Compare each path's wanted text with the file on disk."""
    out = []
    for path, text in files.items():
        if path.is_dir():
            raise InputError(f"{path} is a directory -- move it away to let kubeshape write this file")
        if not path.exists():
            out.append(Planned(path, text, State.missing))
            continue
        try:
            current = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            current = None
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror}) -- check its permissions") from None
        out.append(Planned(path, text, State.same if current == text else State.differs))
    return out


def apply(planned: list[Planned], force: bool) -> list[tuple[Path, str]]:
    """Write what is missing or (with ``force``) differs; returns each path with what happened to it.

    Nothing is written when a file differs and ``force`` is off.
    """
    differing = [p.path for p in planned if p.state is State.differs]
    if differing and not force:
        names = ", ".join(str(p) for p in differing)
        verb = "exists" if len(differing) == 1 else "exist"
        raise InputError(f"{names} {verb} with other content -- compare, then pass --force to overwrite "
                         f"(nothing was written)")
    done = []
    for p in planned:
        if p.state is State.same:
            done.append((p.path, "unchanged"))
            continue
        try:
            p.path.parent.mkdir(parents=True, exist_ok=True)
            p.path.write_text(p.text, encoding="utf-8", newline="\n")
        except OSError as exc:
            raise InputError(f"{p.path}: cannot write ({exc.strerror}) -- check the directory's permissions") \
                from None
        done.append((p.path, "overwritten (--force)" if p.state is State.differs else "created"))
    return done
