"""Point a manifest's container, or a kustomization's ``images:`` entry, at the released image.

Only the values that change are rewritten (see ``yamltext``): a manifest edit is a one-line diff, a
kustomization edit touches ``newTag`` (and ``newName``/``digest`` when they exist or must change). Flux setter
markers (``# {"$imagepolicy": "ns:name"}``, ``:tag``, ``:name``) stay on their lines and are reported.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeshape.release import yamltext as yt
from kubeshape.release.targets import (
    POD_SPEC,
    Workload,
    containers_of,
    image_name,
    kustomization_image_names,
    kustomization_workloads,
    workload,
)
from kubeshape.release.yamltext import EditError, Insert, Op, Replace

FLUX_MARKER = re.compile(r'\{\s*"\$imagepolicy"\s*:\s*"([^"]+)"\s*\}')
_Found = tuple[int, int, Any, Any]  # doc index, container index, document, container mapping


@dataclass
class Edit:
    """A planned change of one file; ``write``/``restore`` put the new or old text on disk."""

    path: Path
    kind: str  # "manifest" | "kustomization"
    before: str
    after: str
    image_before: str  # the image the workloads ran before, as the file renders it
    image_after: str
    markers: list[str] = field(default_factory=list)  # Flux setter markers on edited lines
    workloads: list[Workload] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        """Unified diff without context lines (empty when nothing changes)."""
        name = self.path.name
        return "".join(difflib.unified_diff(self.before.splitlines(keepends=True),
                                            self.after.splitlines(keepends=True), f"a/{name}", f"b/{name}", n=0))

    def write(self) -> None:
        self.path.write_bytes(self.after.encode("utf-8"))

    def restore(self) -> None:
        self.path.write_bytes(self.before.encode("utf-8"))


def read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise EditError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise EditError(f"{path}: not UTF-8 text") from None


def _last(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def marker(line: str) -> str | None:
    """The Flux setter marker in ``line``'s comment (``ns:policy``, ``ns:policy:tag``…), if any."""
    hash_at = line.find("#")
    m = FLUX_MARKER.search(line[hash_at:]) if hash_at != -1 else None
    return m.group(1) if m else None


# -- manifests --------------------------------------------------------------------------------------------


def plan_manifest(path: Path, image: str, new_image: str, container: str | None = None) -> Edit:
    """Set the ``image:`` of the container that runs ``image`` (or is named ``container``) to ``new_image``."""
    where = str(path)
    text = read_text(path)
    docs = yt.load_roundtrip(text, where)
    found: list[_Found] = [(d, i, doc, c) for d, doc in enumerate(docs) for i, c in enumerate(containers_of(doc))
                           if isinstance(c.get("image"), str)]
    if not found:
        raise EditError(f"{where}: no workload with containers found")
    d, i, doc, cmap = _pick_container(found, image, container, where)
    old = str(cmap["image"])
    line, col = cmap.lc.value("image")
    after = text
    if old != new_image:
        after = yt.apply(text, [Replace(line, col, new_image, yt.is_flow(cmap))], where)
        path_: tuple[str | int, ...] = (*POD_SPEC[str(doc["kind"])], "containers", i, "image")
        yt.verify(text, after, [(d, path_, new_image)], where)
    found_marker = marker(after.splitlines()[line])
    return Edit(path, "manifest", text, after, old, new_image, [found_marker] if found_marker else [],
                [workload(doc, [str(cmap.get("name"))])])


def _label(f: _Found) -> str:
    meta = f[2].get("metadata") or {}
    return f"{f[2].get('kind')}/{meta.get('name', '?')} container {f[3].get('name')}"


def _pick_container(found: list[_Found], image: str, container: str | None, where: str) -> _Found:
    if container is not None:
        candidates = [f for f in found if f[3].get("name") == container]
        if not candidates:
            names = sorted({str(f[3].get("name")) for f in found})
            raise EditError(f"{where}: no container named {container!r} (containers: {', '.join(names)})")
    else:
        candidates = [f for f in found if image_name(str(f[3]["image"])) == image]
        if not candidates:
            candidates = [f for f in found if _last(image_name(str(f[3]["image"])) or "") == _last(image)]
        if not candidates:
            used = "; ".join(f"{_label(f)}: {f[3]['image']}" for f in found[:4])
            raise EditError(f"{where}: no container runs {image} ({used}) -- pass --container NAME to point one "
                            "at it")
    if len(candidates) > 1:
        raise EditError(f"{where}: several containers match ({', '.join(_label(f) for f in candidates)}) -- pass "
                        "--container NAME")
    return candidates[0]


# -- kustomizations ---------------------------------------------------------------------------------------


def plan_kustomization(path: Path, image: str, tag: str, digest: str | None) -> Edit:
    """Point the ``images:`` entry of ``image`` at ``tag`` (and ``digest`` if the entry pins one)."""
    where = str(path)
    text = read_text(path)
    docs = yt.load_roundtrip(text, where)
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise EditError(f"{where}: expected one kustomization document (a mapping)")
    doc: Any = docs[0]
    lines = text.splitlines(keepends=True)
    images: Any = doc.get("images")
    if images is not None and (not isinstance(images, list) or yt.is_flow(images) or not images):
        raise EditError(f"{where}:{doc.lc.key('images')[0] + 1}: images: must be a non-empty block sequence to be "
                        "edited in place (or absent)")
    entry = _pick_entry([e for e in images or [] if isinstance(e, dict)], image, where)
    if entry is None:
        return _add_entry(path, text, doc, lines, image, tag)
    idx = next(i for i, e in enumerate(images or []) if e is entry)
    name = str(entry.get("name"))
    old_name, old_tag, old_digest = str(entry.get("newName") or name), entry.get("newTag"), entry.get("digest")
    before_image = old_name + (f":{old_tag}" if old_tag is not None else "") + (f"@{old_digest}" if old_digest
                                                                                else "")
    wanted: dict[str, str] = {}
    if image != name or "newName" in entry:
        wanted["newName"] = image
    wanted["newTag"] = tag
    if "digest" in entry:
        if digest is None:
            raise EditError(f"{where}: the images entry for {name} pins a digest, but the new digest is unknown "
                            "(release from a registry kubeshape can reach)")
        wanted["digest"] = digest
    ops: list[Op] = []
    touched: list[int] = []
    for key, value in wanted.items():
        if key in entry:
            if str(entry[key]) != value:
                line, col = entry.lc.value(key)
                ops.append(Replace(line, col, value, yt.is_flow(entry)))
                touched.append(line)
        else:
            ops.append(_new_key(entry, key, value, where))
    after = yt.apply(text, ops, where)
    yt.verify(text, after, [(0, ("images", idx, k), v) for k, v in wanted.items()], where)
    after_lines = after.splitlines()
    markers = [m for ln in touched if (m := marker(after_lines[ln]))]
    image_after = f"{image}:{tag}" + (f"@{digest}" if "digest" in entry else "")
    return Edit(path, "kustomization", text, after, before_image, image_after, markers,
                kustomization_workloads(path, doc, name))


def _pick_entry(entries: list[Any], image: str, where: str) -> Any:
    strong = [e for e in entries if image in (e.get("name"), e.get("newName"))]
    weak = [e for e in entries if _last(str(e.get("name") or "")) == _last(image)
            or _last(str(e.get("newName") or "")) == _last(image)]
    for group in (strong, weak):
        if len(group) == 1:
            return group[0]
        if len(group) > 1:
            names = ", ".join(str(e.get("name")) for e in group)
            raise EditError(f"{where}: several images entries match {image} ({names}): keep one per image")
    return None


def _new_key(entry: Any, key: str, value: str, where: str) -> Insert:
    if yt.is_flow(entry):
        raise EditError(f"{where}:{entry.lc.line + 1}: cannot add {key} to a flow-style images entry: write it in "
                        "block style or edit it by hand")
    first = next(iter(entry))
    line, col = entry.lc.key(first)
    return Insert(yt.last_line(entry, line), (" " * col + f"{key}: {yt.render(value, '')}",))


def _add_entry(path: Path, text: str, doc: Any, lines: list[str], image: str, tag: str) -> Edit:
    """A new ``images:`` entry (and the ``images:`` key when absent), indented like the file."""
    where = str(path)
    used = kustomization_image_names(path, doc)
    name = image if image in used else next((n for n in used if _last(n) == _last(image)), image)
    if used and name not in used:
        raise EditError(f"{where}: none of its resources runs {image} (they run {', '.join(used[:5])}): "
                        "check --image")
    entry = {"name": name, **({"newName": image} if name != image else {}), "newTag": tag}
    body = [f"{k}: {yt.render(v, '')}" for k, v in entry.items()]
    images = doc.get("images")
    if images:  # copy the last entry's dash and key columns
        line, col = images.lc.item(len(images) - 1)
        dash = lines[line].rfind("-", 0, col)
        new = (" " * dash + "-" + " " * (col - dash - 1) + body[0], *(" " * col + b for b in body[1:]))
        op = Insert(yt.last_line(images, line), new)
    else:
        dash, item = yt.sequence_style([doc], lines)
        op = Insert(len(lines) - 1, ("images:", " " * dash + "-" + " " * (item - 1) + body[0],
                                     *(" " * (dash + item) + b for b in body[1:])))
    after = yt.apply(text, [op], where)
    old = yt.load_plain(text)[0]
    expected = {**old, "images": [*(old.get("images") or []), entry]}
    if yt.load_plain(after) != [expected]:
        raise EditError(f"{where}: the new images entry did not read back as intended; the file was not changed")
    return Edit(path, "kustomization", text, after, name, f"{image}:{tag}", [],
                kustomization_workloads(path, doc, name))
