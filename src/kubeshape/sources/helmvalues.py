"""Container images inside a Flux HelmRelease's ``spec.values``, found by the value shapes charts use.

Recognised, conservatively (a chart's templates are not read, so anything else is left alone):

* an image mapping: a key ending in ``image`` (``image``, ``coreImage``) whose value has a string
  ``repository`` and optionally ``registry``, ``tag``, ``digest`` and ``pullPolicy`` -- the common chart
  convention, and the bjw-s app-template's ``controllers.<c>.containers.<name>.image``;
* a plain string ``image`` only in a container-shaped mapping: an item of a list with a string ``name``
  (``sidecars: [{name, image}]``), or an entry of a ``containers``-like mapping keyed by container name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

GROUP = "helm.toolkit.fluxcd.io"
PIECES = ("registry", "repository", "tag", "digest", "pullPolicy")

_IMAGE_KEY = re.compile(r"image$", re.IGNORECASE)
# Mappings keyed by container name (app-template and charts with ``additionalContainers: {name: {...}}``).
_CONTAINER_MAPS = {"containers", "initcontainers", "sidecars", "additionalcontainers", "extracontainers",
                   "extrainitcontainers"}


@dataclass(frozen=True, slots=True)
class ValuesImage:
    """One image found in the values.

    ``path`` is the field path of the image mapping (``spec.values.controllers.main.containers.app.image``),
    or of the container mapping when the image is a plain string; ``pieces`` holds the image mapping's
    fields as strings (empty for a plain string image).
    """

    path: str
    name: str
    image: str
    init: bool
    pieces: dict[str, str] = field(default_factory=dict)
    pull_policy: str | None = None


def is_helmrelease(raw: dict[str, Any]) -> bool:
    """A Flux HelmRelease of any API version (v2, v2beta1, v2beta2)."""
    return raw.get("kind") == "HelmRelease" and str(raw.get("apiVersion") or "").partition("/")[0] == GROUP


def values_images(raw: dict[str, Any]) -> Iterator[ValuesImage]:
    """Images in a HelmRelease's ``spec.values``; nothing for other objects."""
    if not is_helmrelease(raw):
        return
    values = (raw.get("spec") or {}).get("values")
    if isinstance(values, dict):
        release = str((raw.get("metadata") or {}).get("name") or "")
        yield from _walk(values, "spec.values", release, False)


def _scalar(value: Any) -> str | None:
    """A value as YAML text: strings and numbers (``tag: 1.2`` → ``1.2``), else None."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    # A float tag is already lossy here (``tag: 1.10`` loaded as 1.1); only quoting in the file avoids it.
    text = str(value).strip()
    return text or None


def _unresolved(text: str) -> bool:
    """Flux post-build substitutions (``${VAR}``) and templates are only known at deploy time."""
    return "${" in text or "{{" in text


def _walk(node: Any, path: str, owner: str, init: bool) -> Iterator[ValuesImage]:
    """Search ``node``; ``owner`` is the nearest enclosing key (the container name for app-template)."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            name = item.get("name") if isinstance(item, dict) else None
            name = name if isinstance(name, str) and name else None  # a list item named like a container
            found = _string_image(item, f"{path}[{i}]", name, init) if name else None
            if found is not None:
                yield found
            else:
                yield from _walk(item, f"{path}[{i}]", name or owner, init)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        key_path, lower = f"{path}.{key}", str(key).lower()
        if _IMAGE_KEY.search(lower) and isinstance(value, dict):
            found = _image_mapping(value, key_path, owner if lower == "image" else str(key), init)
            if found is not None:
                yield found
                continue
        in_init = init or "initcontainers" in lower
        if lower in _CONTAINER_MAPS and isinstance(value, dict):
            for name, spec in value.items():
                if (found := _string_image(spec, f"{key_path}.{name}", str(name), in_init)) is not None:
                    yield found
        yield from _walk(value, key_path, str(key), in_init)


def _image_mapping(value: dict[str, Any], path: str, name: str, init: bool) -> ValuesImage | None:
    repository = value.get("repository")
    if not isinstance(repository, str) or not repository.strip():
        return None
    pieces = {k: text for k in PIECES if (text := _scalar(value.get(k))) is not None}
    if any(_unresolved(t) for t in pieces.values()):
        return None
    image = "/".join(p for p in (pieces.get("registry", "").rstrip("/"), pieces["repository"]) if p)
    image += f":{pieces['tag']}" if "tag" in pieces else ""
    image += f"@{pieces['digest']}" if "digest" in pieces else ""
    return ValuesImage(path, name, image, init, pieces, pieces.get("pullPolicy"))


def _string_image(spec: Any, path: str, name: str, init: bool) -> ValuesImage | None:
    image = spec.get("image") if isinstance(spec, dict) else None
    if not isinstance(image, str) or not image.strip() or _unresolved(image):
        return None
    policy = spec.get("imagePullPolicy")
    return ValuesImage(path, name, image.strip(), init, pull_policy=str(policy) if policy else None)
