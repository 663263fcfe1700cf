"""Server-side apply of the exported objects (``kubeshape policy install``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx2 as httpx  # lightkube's HTTP stack, as kubeshape.sources.live uses it
import orjson

from kubeshape.errors import InputError, SourceUnreachable
from kubeshape.sources.live import ApiClient

FIELD_MANAGER = "kubeshape"
_VAP_GROUP = "/apis/admissionregistration.k8s.io/v1"
# kind → (API prefix, plural, namespaced)
RESOURCES: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("/api/v1", "namespaces", False),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "ValidatingAdmissionPolicy": (_VAP_GROUP, "validatingadmissionpolicies", False),
    "ValidatingAdmissionPolicyBinding": (_VAP_GROUP, "validatingadmissionpolicybindings", False),
}
# Fields the server sets or bumps on every write: not part of what was applied.
_BOOKKEEPING = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid")


@dataclass(frozen=True, slots=True)
class Applied:
    """One object and what applying it did: ``created``, ``configured`` or ``unchanged``."""

    kind: str
    name: str
    namespace: str | None
    outcome: str
    object: dict[str, Any]

    @property
    def title(self) -> str:
        return describe(self.object)


def object_path(obj: dict[str, Any]) -> str:
    prefix, plural, namespaced = RESOURCES[obj["kind"]]
    meta = obj["metadata"]
    ns = f"/namespaces/{meta['namespace']}" if namespaced else ""
    return f"{prefix}{ns}/{plural}/{meta['name']}"


def apply_all(api: ApiClient, objects: list[dict[str, Any]], *, dry_run: bool) -> list[Applied]:
    """Apply ``objects`` in order (``dryRun=All`` when ``dry_run``). In a dry run, objects in a namespace that does
    not exist yet are not sent: the server would refuse them, since the namespace is only pretended."""
    done: list[Applied] = []
    pretended: set[str] = set()
    for obj in objects:
        meta = obj["metadata"]
        namespace = meta.get("namespace")
        if namespace in pretended:
            done.append(Applied(obj["kind"], meta["name"], namespace, "created", obj))
            continue
        current = _get(api, obj)
        applied = _patch(api, obj, dry_run)
        outcome = "created" if current is None else \
            "unchanged" if _comparable(current) == _comparable(applied) else "configured"
        if dry_run and obj["kind"] == "Namespace" and current is None:
            pretended.add(meta["name"])
        done.append(Applied(obj["kind"], meta["name"], namespace, outcome, applied))
    return done


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _BOOKKEEPING}
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}


def describe(obj: dict[str, Any]) -> str:
    """``ConfigMap kubeshape-policy in namespace kubeshape``."""
    meta = obj["metadata"]
    where = f" in namespace {meta['namespace']}" if meta.get("namespace") else ""
    return f"{obj['kind']} {meta['name']}{where}"


def _get(api: ApiClient, obj: dict[str, Any]) -> dict[str, Any] | None:
    resp = api.fetch(object_path(obj))
    if resp.status_code == 404 and _names_object(resp):
        return None
    if resp.status_code != 200:
        raise _refused(obj, resp, "read")
    return _json(obj, resp)


def _patch(api: ApiClient, obj: dict[str, Any], dry_run: bool) -> dict[str, Any]:
    params = {"fieldManager": FIELD_MANAGER, "force": "true"}
    if dry_run:
        params["dryRun"] = "All"
    try:
        resp = api.http.request("PATCH", object_path(obj), params=params, content=orjson.dumps(obj),
                                headers={"Content-Type": "application/apply-patch+yaml"},
                                timeout=httpx.Timeout(api.timeout))
    except httpx.TimeoutException:
        raise SourceUnreachable(f"the API server of context '{api.context}' at {api.server} did not answer "
                                f"the apply of {describe(obj)} in time (--request-timeout)") from None
    except httpx.TransportError as exc:
        reason = (str(exc) or type(exc).__name__).splitlines()[0]
        raise SourceUnreachable(f"cannot reach the API server of context '{api.context}' at {api.server}: "
                                f"{reason}") from None
    if resp.status_code not in (200, 201):
        raise _refused(obj, resp, "apply")
    return _json(obj, resp)


def _json(obj: dict[str, Any], resp: httpx.Response) -> dict[str, Any]:
    try:
        doc = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        raise SourceUnreachable(f"{describe(obj)}: the API server answered {resp.status_code} without a JSON object")
    return doc


def _names_object(resp: httpx.Response) -> bool:
    """A 404 about the object (its name in the Status details), not about its kind being unknown to the server."""
    try:
        doc = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return False
    details = doc.get("details") if isinstance(doc, dict) and doc.get("kind") == "Status" else None
    return isinstance(details, dict) and bool(details.get("name"))


def _message(resp: httpx.Response) -> str:
    try:
        doc = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        doc = None
    text = str(doc.get("message") or "") if isinstance(doc, dict) else ""
    return " ".join(text.split()) or f"{resp.status_code} {resp.reason_phrase}"


def _refused(obj: dict[str, Any], resp: httpx.Response, verb: str) -> Exception:
    """The error for a refused request: exit 2 when the object or the cluster's API does not fit, else exit 3."""
    status, what = resp.status_code, describe(obj)
    if status == 401:
        return SourceUnreachable("the API server rejected the credentials (401 Unauthorized) -- refresh them "
                                 "(e.g. re-login) and try again")
    if status == 403:
        return SourceUnreachable(f"cannot {verb} {what}: {_message(resp)} -- installing needs the right to apply "
                                 "ValidatingAdmissionPolicies, their bindings, Namespaces and ConfigMaps")
    if status == 404 and obj["kind"].startswith("ValidatingAdmissionPolicy") and not _names_object(resp):
        return InputError(f"the API server does not serve {obj['kind']} of {obj['apiVersion']}: it needs "
                          "Kubernetes 1.30 or later -- use the webhook ('kubeshape webhook manifests') instead")
    if status in (400, 404, 409, 422):
        return InputError(f"the API server refused {what} ({status}): {_message(resp)}")
    return SourceUnreachable(f"the API server could not {verb} {what} ({status}): {_message(resp)}")
