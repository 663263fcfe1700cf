"""AdmissionReview v1 in and out: validate the envelope at the edge, build the answer the apiserver expects.

Whatever arrives, the answer is a well-formed ``admission.k8s.io/v1`` AdmissionReview carrying the request's uid
(an empty one when the body had none): the apiserver rejects any other answer and applies its failurePolicy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubeshape.sources import shapes
from kubeshape.sources.validate import ShapeMismatch, check, compiled

API_VERSION = "admission.k8s.io/v1"
OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})
MAX_UID = 256


class BadReview(Exception):
    """The body is JSON but not an AdmissionReview request this webhook can read."""

    def __init__(self, uid: str, reason: str) -> None:
        super().__init__(reason)
        self.uid = uid
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Request:
    """The parts of ``AdmissionReview.request`` the webhook reads, checked."""

    uid: str
    group: str
    version: str
    kind: str
    namespace: str
    name: str
    operation: str
    dry_run: bool
    object: dict[str, Any] | None
    old_object: dict[str, Any] | None

    @property
    def subject(self) -> str:
        """``Deployment homelab/api`` for messages and logs."""
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name or '(generated name)'}"


def request_uid(body: Any) -> str:
    """The request's uid if the body carries a usable one, else ``""``."""
    req = body.get("request") if isinstance(body, dict) else None
    uid = req.get("uid") if isinstance(req, dict) else None
    return uid if isinstance(uid, str) and len(uid) <= MAX_UID else ""


def parse_request(body: Any) -> Request:
    """The checked request of an AdmissionReview; :class:`BadReview` names what is wrong."""
    uid = request_uid(body)
    if not isinstance(body, dict):
        raise BadReview(uid, f"expected an AdmissionReview object, got {_type(body)}")
    if body.get("kind") != "AdmissionReview" or body.get("apiVersion") != API_VERSION:
        raise BadReview(uid, f"expected kind AdmissionReview of {API_VERSION}")
    req = body.get("request")
    if not isinstance(req, dict):
        raise BadReview(uid, f"request: expected an object, got {_type(req)}")
    if not uid:
        raise BadReview(uid, "request.uid: expected a string of at most 256 characters")
    gvk = req.get("kind")
    if not isinstance(gvk, dict) or not all(isinstance(gvk.get(k), str) for k in ("group", "version", "kind")):
        raise BadReview(uid, "request.kind: expected {group, version, kind} strings")
    operation = req.get("operation")
    if not isinstance(operation, str) or operation not in OPERATIONS:
        raise BadReview(uid, f"request.operation: expected one of {', '.join(sorted(OPERATIONS))}")
    for key in ("namespace", "name"):
        if req.get(key) is not None and not isinstance(req.get(key), str):
            raise BadReview(uid, f"request.{key}: expected a string, got {_type(req.get(key))}")
    dry_run = req.get("dryRun")
    if dry_run is not None and not isinstance(dry_run, bool):
        raise BadReview(uid, f"request.dryRun: expected a boolean, got {_type(dry_run)}")
    return Request(uid=uid, group=gvk["group"], version=gvk["version"], kind=gvk["kind"],
                   namespace=req.get("namespace") or "", name=req.get("name") or "", operation=operation,
                   dry_run=bool(dry_run), object=_mapping(req, "object", uid),
                   old_object=_mapping(req, "oldObject", uid))


def _mapping(req: dict[str, Any], key: str, uid: str) -> dict[str, Any] | None:
    obj = req.get(key)
    if obj is not None and not isinstance(obj, dict):
        raise BadReview(uid, f"request.{key}: expected an object, got {_type(obj)}")
    return obj


def checked_objects(req: Request) -> None:
    """Check that ``object`` and ``oldObject`` are of the request's kind and have the shape the rules read."""
    # The old object is read only for a Deployment's rollout (KS205): other kinds' need no check.
    old = req.old_object if req.kind == "Deployment" else None
    for key, obj in (("object", req.object), ("oldObject", old)):
        if obj is None:
            continue
        api_version = obj.get("apiVersion")
        want = f"{req.group}/{req.version}" if req.group else req.version
        if obj.get("kind") != req.kind or api_version != want:
            raise BadReview(req.uid, f"request.{key}: expected a {req.kind} of {want}")
        shape = shapes.item_shape(req.kind)
        if compiled(shape)(obj):
            continue
        try:
            check(obj, shape)
        except ShapeMismatch as err:
            raise BadReview(req.uid, f"request.{key}: {err.where()}: {err.describe()}") from None


def response(uid: str, *, allowed: bool, message: str = "", code: int = 403,
             warnings: list[str] | None = None) -> dict[str, Any]:
    """The AdmissionReview answer."""
    resp: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed:
        resp["status"] = {"code": code, "message": message,
                          "reason": "Forbidden" if code == 403 else "BadRequest"}
    if warnings:
        resp["warnings"] = warnings
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": resp}


def _type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)
