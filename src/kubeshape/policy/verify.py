"""After an install: see the API server enforce the policies, with a dry-run request they must judge.

The probe is a Deployment that is never stored (``dryRun=All``) with an invalid image (KS108), an untagged one
(KS101, KS103) and one that is never pulled (KS102): ``kubeshape-deny`` rejects it for one of them (unless
kubeshape.yaml ignores them all), ``kubeshape-warn`` warns about the untagged image unless KS103 is ignored. An
API server that cannot read the parameter ConfigMap rejects every gated write instead; that is not left in place.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx2 as httpx  # lightkube's HTTP stack, as kubeshape.sources.live uses it
import orjson

from kubeshape.errors import SourceUnreachable
from kubeshape.policy import vap
from kubeshape.sources.live import ApiClient, ApiError

PROBE = "kubeshape-policy-probe"
WAIT = 30.0  # seconds for the API server to pick the policies up (it looks for new ones every second)
STUCK_AFTER = 5.0  # seconds "no params found" must last to be more than the parameter cache catching up
NO_PARAMS = "no params found"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    message: str
    warnings: list[str]

    @property
    def enforced(self) -> bool:
        """Denied by kubeshape-deny for a rule."""
        return self.status == 403 and f"'{vap.DENY}'" in self.message and \
            re.search(r"denied request: KS\d{3} ", self.message) is not None

    @property
    def warned(self) -> bool:
        """Warned about by kubeshape-warn."""
        return any(f"'{vap.WARN}'" in w and re.search(r"KS\d{3} ", w) for w in self.warnings)

    @property
    def ours(self) -> bool:
        """Refused by one of the policies (for a check that failed, or for parameters it cannot read)."""
        return self.status >= 300 and (f"'{vap.DENY}'" in self.message or f"'{vap.WARN}'" in self.message)

    @property
    def pending(self) -> bool:
        """Not judged yet: admitted (the API server picks new policies up within a second or so), or refused for
        parameters not read (yet)."""
        return self.status < 300 or (self.ours and NO_PARAMS in self.message)


def probe_object(namespace: str) -> dict[str, object]:
    labels = {"app": PROBE}
    containers = [{"name": "invalid", "image": "Kubeshape/Policy-Probe"}, {"name": "untagged", "image": PROBE},
                  {"name": "never-pulled", "image": f"registry.invalid/{PROBE}:1", "imagePullPolicy": "Never"}]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": PROBE, "namespace": namespace},
            "spec": {"selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}}}}


def probe_namespace(api: ApiClient, opts: vap.Options) -> str | None:
    """A namespace the bindings gate: one with the selector's labels, else the parameters' own."""
    params: dict[str, str] = {}
    if opts.match_labels:
        params["labelSelector"] = ",".join(f"{k}={v}" for k, v in sorted(opts.match_labels.items()))
    else:
        params["fieldSelector"] = f"metadata.name={opts.namespace}"
    try:
        items = api.get("/api/v1/namespaces", params).get("items") or []
    except ApiError:  # not allowed to list namespaces: nothing to probe in
        return None
    for ns in items:
        meta = ns.get("metadata") or {}
        labels = meta.get("labels") or {}
        if meta.get("name") != "kube-system" and labels.get(vap.OPT_OUT_LABEL) != "disabled" and \
                not meta.get("deletionTimestamp"):
            return str(meta["name"])
    return None


def ask(api: ApiClient, namespace: str) -> Answer:
    """What the API server answers to creating the probe (nothing is stored)."""
    try:
        resp = api.http.request("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments",
                                params={"dryRun": "All"}, content=orjson.dumps(probe_object(namespace)),
                                headers={"Content-Type": "application/json"}, timeout=httpx.Timeout(api.timeout))
    except httpx.TransportError as exc:
        reason = (str(exc) or type(exc).__name__).splitlines()[0]
        raise SourceUnreachable(f"cannot reach the API server of context '{api.context}' at {api.server}: "
                                f"{reason}") from None
    try:
        doc = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        doc = None
    message = str(doc.get("message") or "") if isinstance(doc, dict) else ""
    return Answer(resp.status_code, message, resp.headers.get_list("warning"))


def verify(api: ApiClient, opts: vap.Options, *, wait: float = WAIT,
           sleep: Callable[[float], None] = time.sleep) -> tuple[str | None, Answer | None]:
    """Wait until the API server enforces the policies in a gated namespace: (that namespace, the last answer).
    The namespace is None when no namespace is gated yet; the answer shows enforcement or why there is none.
    An API server that cannot read the parameters keeps denying every gated write: then the bindings are
    removed and SourceUnreachable raised."""
    namespace = probe_namespace(api, opts)
    if namespace is None:
        return None, None
    end = time.monotonic() + wait
    stuck_since: float | None = None
    answer = ask(api, namespace)
    while answer.pending and time.monotonic() < end:
        now = time.monotonic()
        stuck_since = (stuck_since or now) if NO_PARAMS in answer.message else None
        if stuck_since is not None and now - stuck_since >= STUCK_AFTER:
            _unbind(api, namespace, time.monotonic() + wait, sleep)
            raise SourceUnreachable(
                f"the API server of context '{api.context}' cannot read the parameters {opts.namespace}/"
                f"{vap.PARAMS} and denied every gated write ('{NO_PARAMS}': a Kubernetes bug after these "
                "policies were removed once, kubernetes/kubernetes#133827), so the bindings were removed again "
                "-- restart kube-apiserver, then run 'kubeshape policy install' again")
        sleep(0.5)
        answer = ask(api, namespace)
    return namespace, answer


def _unbind(api: ApiClient, namespace: str, end: float, sleep: Callable[[float], None]) -> None:
    """Delete both bindings and wait until the API server no longer applies them."""
    for name in (vap.DENY, vap.WARN):
        try:
            api.http.request("DELETE",
                             f"/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings/{name}")
        except httpx.TransportError:
            return  # the error raised next says what to do
    while ask(api, namespace).ours and time.monotonic() < end:
        sleep(0.5)
