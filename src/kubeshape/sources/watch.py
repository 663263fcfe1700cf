"""A watch-fed cache of a few kinds of the live cluster: the context admission decisions need.

Each kind is LISTed once (paginated), then WATCHed from that list's resourceVersion; a watch that ends is resumed
from the last version seen, one the apiserver expired (410 Gone) starts over with a LIST. Objects are checked
against the shape rules rely on and kept reduced to what rules read (metadata, and a Service's spec), so a large
cluster costs little memory. ``snapshot()`` hands rules a :class:`ClusterSource` whose ``listed_kinds`` holds only
kinds whose LIST succeeded: a kind the cache could not read is never claimed absent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx2 as httpx
import orjson

from kubeshape.inventory import ClusterSource, K8sObject
from kubeshape.sources import shapes
from kubeshape.sources.live import ApiClient, ApiError, KindSpec, _list_kind
from kubeshape.sources.validate import compiled

log = logging.getLogger("kubeshape.watch")

WATCHED: tuple[KindSpec, ...] = (
    KindSpec("Deployment", "deployments", "apps"),
    KindSpec("StatefulSet", "statefulsets", "apps"),
    KindSpec("Service", "services"),
)
WATCH_SECONDS = 300  # the apiserver ends a watch after this; it is resumed at once
MAX_BACKOFF = 30.0


def reduce(kind: str, item: dict[str, Any]) -> dict[str, Any]:
    """The parts of ``item`` rules read: identity and labels; a Service keeps its spec too."""
    meta = item.get("metadata") or {}
    keep = {k: meta[k] for k in ("name", "namespace", "uid", "labels", "resourceVersion") if k in meta}
    out: dict[str, Any] = {"apiVersion": item.get("apiVersion"), "kind": kind, "metadata": keep}
    if kind == "Service":
        spec = item.get("spec") or {}
        out["spec"] = {k: spec[k] for k in ("type", "selector", "ports", "clusterIP", "externalName") if k in spec}
    return out


class ClusterCache:
    """Objects of :data:`WATCHED` kinds, kept current by watches running on background threads."""

    def __init__(self, api: ApiClient, kinds: tuple[KindSpec, ...] = WATCHED,
                 on_change: Callable[[], None] | None = None) -> None:
        self.api = api
        self.kinds = kinds
        self._objects: dict[str, dict[tuple[str, str], K8sObject]] = {k.kind: {} for k in kinds}
        self._listed: set[str] = set()
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()
        self._version = 0
        self._snapshot: tuple[int, ClusterSource] | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._on_change = on_change

    # -- what handlers read ----------------------------------------------------------
    @property
    def ready(self) -> bool:
        """True once every kind has been listed (or found unreadable: then it is reported, not waited for)."""
        with self._lock:
            return all(k.kind in self._listed or k.kind in self._errors for k in self.kinds)

    def problems(self) -> dict[str, str]:
        """Kinds the cache cannot read, and why."""
        with self._lock:
            return dict(self._errors)

    def snapshot(self) -> ClusterSource:
        """The cached objects as a ClusterSource (rebuilt only after a change)."""
        with self._lock:
            if self._snapshot is not None and self._snapshot[0] == self._version:
                return self._snapshot[1]
            src = ClusterSource(name="cache", listed_kinds=set(self._listed),
                                objects={k: list(v.values()) for k, v in self._objects.items()})
            self._snapshot = (self._version, src)
            return src

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        for spec in self.kinds:
            t = threading.Thread(target=self._run, args=(spec,), name=f"watch-{spec.plural}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()

    def wait_ready(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end and not self._stop.is_set():
            if self.ready:
                return True
            time.sleep(0.05)
        return self.ready

    # -- list and watch ---------------------------------------------------------------
    def _run(self, spec: KindSpec) -> None:
        backoff = 0.5
        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    version = self._list(spec)
                version = self._watch(spec, version)
                backoff = 0.5
            except ApiError as exc:
                if exc.status in (401, 403, 404):
                    self._fail(spec, f"cannot list/watch {spec.file_stem} ({exc.status}: {exc})")
                    self._stop.wait(MAX_BACKOFF)
                else:
                    self._stop.wait(backoff)
                version = ""
            except (httpx.HTTPError, orjson.JSONDecodeError, OSError, ValueError) as exc:
                log.debug("watch %s: %s", spec.plural, exc)
                self._stop.wait(backoff)  # resume from the last version seen
            except Exception as exc:  # keep serving admission requests whatever a watch meets
                self._fail(spec, f"watch of {spec.file_stem} failed: {type(exc).__name__}: {exc}")
                self._stop.wait(MAX_BACKOFF)
                version = ""
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _list(self, spec: KindSpec) -> str:
        doc = _list_kind(self.api, spec, None, None)
        ok = compiled(shapes.item_shape(spec.kind))
        fresh = {}
        for item in doc["items"]:
            if isinstance(item, dict) and ok(item):
                obj = K8sObject.from_raw(reduce(spec.kind, item), "cluster", kind=spec.kind)
                fresh[(obj.namespace, obj.name)] = obj
        with self._lock:
            self._objects[spec.kind] = fresh
            self._listed.add(spec.kind)
            self._errors.pop(spec.kind, None)
            self._version += 1
        self._changed()
        return str(doc["metadata"].get("resourceVersion") or "")

    def _watch(self, spec: KindSpec, version: str) -> str:
        """Follow one watch until the apiserver ends it; return the version to resume from ("" to re-list)."""
        params = {"watch": "1", "resourceVersion": version, "allowWatchBookmarks": "true",
                  "timeoutSeconds": str(WATCH_SECONDS)}
        ok = compiled(shapes.item_shape(spec.kind))
        timeout = httpx.Timeout(10.0, read=WATCH_SECONDS + 30.0)
        with self.api.http.stream("GET", spec.path(None), params=params, timeout=timeout) as resp:
            if resp.status_code == 410:
                return ""
            if resp.status_code >= 400:
                resp.read()
                raise ApiError(resp.status_code, resp.text[:200])
            for line in resp.iter_lines():
                if self._stop.is_set():
                    return version
                if not line.strip():
                    continue
                event = orjson.loads(line)
                kind, obj = event.get("type"), event.get("object")
                if not isinstance(obj, dict):
                    continue
                if kind == "ERROR":
                    return "" if obj.get("code") == 410 else version
                meta = obj.get("metadata")
                if isinstance(meta, dict):
                    version = str(meta.get("resourceVersion") or version)
                if kind == "BOOKMARK" or not ok(obj):
                    continue
                self._apply(spec.kind, str(kind), obj)
        return version

    def _apply(self, kind: str, event: str, item: dict[str, Any]) -> None:
        obj = K8sObject.from_raw(reduce(kind, item), "cluster", kind=kind)
        with self._lock:
            bucket = self._objects[kind]
            if event == "DELETED":
                bucket.pop((obj.namespace, obj.name), None)
            elif event in ("ADDED", "MODIFIED"):
                bucket[(obj.namespace, obj.name)] = obj
            else:
                return
            self._version += 1
        self._changed()

    def _fail(self, spec: KindSpec, reason: str) -> None:
        with self._lock:
            self._errors[spec.kind] = reason
            self._listed.discard(spec.kind)
            self._objects[spec.kind] = {}
            self._version += 1
        log.warning("%s", reason)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()
