"""The few API calls a release makes: read a Deployment and its ReplicaSets and pods, patch its image and
change-cause, annotate a ReplicaSet with the rollout's result, look for Flux image automation; for a GitOps
release read Flux objects and ask them to reconcile (an annotation)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2 as httpx
import orjson

from kubeshape.errors import InputError, SourceUnreachable
from kubeshape.sources.live import ApiClient, ApiError, connect

CHANGE_CAUSE = "kubernetes.io/change-cause"
REVISION = "deployment.kubernetes.io/revision"
RESULT = "kubeshape.io/rollout-result"  # "<available|failed> <replicaset> <time>" on a ReplicaSet
DIGEST = "kubeshape.io/digest"  # the digest a ReplicaSet's image resolved to when kubeshape released it
FIELD_MANAGER = "kubeshape-release"
FLUX_IMAGE_GROUP = "image.toolkit.fluxcd.io"


class KubeError(InputError):
    """The API server refused a request (the message names the object)."""


def selector_string(dep: dict[str, Any]) -> str:
    """``matchLabels`` of a Deployment as a label selector (``a=b,c=d``)."""
    labels = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


@dataclass
class Kube:
    """An API client for one kubeconfig context."""

    api: ApiClient
    default_namespace: str

    @classmethod
    def connect(cls, kubeconfig: Path | None, context: str | None) -> Kube:
        api, namespace = connect(kubeconfig, context)
        return cls(api, namespace or "default")

    @property
    def context(self) -> str:
        return self.api.context

    def close(self) -> None:
        self.api.http.close()

    def _get(self, path: str, what: str, params: dict[str, Any] | None = None) -> Any:
        try:
            return self.api.get(path, params)
        except ApiError as exc:
            if exc.status == 404:
                raise KubeError(f"{what} not found in context '{self.context}'") from None
            raise KubeError(f"cannot read {what} ({exc.status}: {exc})") from None

    def get(self, path: str, what: str, params: dict[str, Any] | None = None) -> Any:
        """GET ``path`` (``what`` names it in errors: not found, refused)."""
        return self._get(path, what, params)

    def deployment(self, namespace: str, name: str) -> dict[str, Any]:
        return dict(self._get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
                              f"Deployment {namespace}/{name}"))

    def replicasets(self, dep: dict[str, Any]) -> list[dict[str, Any]]:
        """The ReplicaSets this Deployment owns."""
        meta = dep["metadata"]
        doc = self._get(f"/apis/apps/v1/namespaces/{meta['namespace']}/replicasets", "ReplicaSets",
                        {"labelSelector": selector_string(dep)})
        uid = meta.get("uid")
        return [rs for rs in doc.get("items") or []
                if any(o.get("uid") == uid for o in (rs.get("metadata") or {}).get("ownerReferences") or [])]

    def pods(self, dep: dict[str, Any]) -> list[dict[str, Any]]:
        meta = dep["metadata"]
        doc = self._get(f"/api/v1/namespaces/{meta['namespace']}/pods", "pods",
                        {"labelSelector": selector_string(dep)})
        return list(doc.get("items") or [])

    def _patch(self, path: str, body: dict[str, Any], what: str,
               content_type: str = "application/strategic-merge-patch+json") -> dict[str, Any]:
        try:
            resp = self.api.http.patch(f"{path}?fieldManager={quote(FIELD_MANAGER)}", content=orjson.dumps(body),
                                       headers={"Content-Type": content_type})
        except httpx.TransportError as exc:
            raise SourceUnreachable(f"the API server of context '{self.context}' did not answer while patching "
                                    f"{what}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        if resp.status_code >= 400:
            try:
                message = str(orjson.loads(resp.content).get("message") or resp.reason_phrase)
            except (orjson.JSONDecodeError, AttributeError):
                message = f"{resp.status_code} {resp.reason_phrase}"
            raise KubeError(f"cannot patch {what} in context '{self.context}' ({resp.status_code}: {message})")
        return dict(orjson.loads(resp.content))

    def set_images(self, namespace: str, name: str, images: dict[str, str], cause: str) -> dict[str, Any]:
        """One patch: the containers' images and ``kubernetes.io/change-cause`` on the Deployment's metadata
        (the controller copies it onto the new ReplicaSet, so the revision records why it exists)."""
        body = {"metadata": {"annotations": {CHANGE_CAUSE: cause}},
                "spec": {"template": {"spec": {"containers": [{"name": c, "image": i} for c, i in images.items()]}}}}
        return self._patch(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}", body,
                           f"Deployment {namespace}/{name}")

    def record_result(self, rs: dict[str, Any], result: str, when: str, digest: str | None = None) -> None:
        """Annotate a ReplicaSet with the watched rollout's result and its image's digest (``history`` reads
        them back; the controller keeps annotations it does not copy from the Deployment when it reuses the
        ReplicaSet on a rollback)."""
        meta = rs["metadata"]
        notes = {RESULT: f"{result} {meta['name']} {when}"}
        if digest:
            notes[DIGEST] = digest
        self._patch(f"/apis/apps/v1/namespaces/{meta['namespace']}/replicasets/{meta['name']}",
                    {"metadata": {"annotations": notes}}, f"ReplicaSet {meta['namespace']}/{meta['name']}")

    def annotate(self, path: str, annotations: dict[str, str], what: str) -> dict[str, Any]:
        """Merge ``annotations`` into the object at ``path`` (a JSON merge patch: custom resources too)."""
        return self._patch(path, {"metadata": {"annotations": annotations}}, what, "application/merge-patch+json")

    def allowed(self, verb: str, group: str, resource: str, namespace: str, name: str | None = None) -> bool:
        """SelfSubjectAccessReview: may these credentials ``verb`` the ``resource``?"""
        attrs: dict[str, str] = {"verb": verb, "group": group, "resource": resource, "namespace": namespace}
        if name:
            attrs["name"] = name
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attrs}}
        try:
            resp = self.api.http.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                                      content=orjson.dumps(body), headers={"Content-Type": "application/json"})
        except httpx.TransportError as exc:
            raise SourceUnreachable(f"the API server of context '{self.context}' did not answer an access review: "
                                    f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        if resp.status_code >= 400:
            raise KubeError(f"context '{self.context}': the access review was refused ({resp.status_code}): cannot "
                            "check the release's permissions")
        return bool((orjson.loads(resp.content).get("status") or {}).get("allowed"))

    def flux_image_automation(self) -> list[str]:
        """``Kind namespace/name`` of Flux ImageUpdateAutomations and ImagePolicies (empty without Flux image
        automation, or without permission to list them)."""
        found = []
        for plural, kind in (("imageupdateautomations", "ImageUpdateAutomation"), ("imagepolicies", "ImagePolicy")):
            for version in ("v1", "v1beta2", "v1beta1"):
                try:
                    doc = self.api.get(f"/apis/{FLUX_IMAGE_GROUP}/{version}/{plural}")
                except (ApiError, SourceUnreachable):
                    continue
                found += [f"{kind} {(i.get('metadata') or {}).get('namespace')}/{(i.get('metadata') or {}).get('name')}"
                          for i in doc.get("items") or []]
                break
        return found
