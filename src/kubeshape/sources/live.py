"""Read a live cluster: one paginated LIST per kind, kinds in parallel, client-side QPS, 429 Retry-After.

The raw List JSON is kept exactly as the API returns it (after redaction), so ``kubeshape snapshot`` writes
the same bytes a bundle holds and ``doctor --bundle`` on it sees what ``doctor`` saw live.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx  # lightkube's HTTP stack: its auth flows (token, exec, certs) plug in here
import orjson

from kubeshape.errors import InputError, SourceUnreachable
from kubeshape.inventory import FLUX_HELM_GROUP, FLUX_KUSTOMIZE_GROUP, FLUX_SOURCE_GROUP, ClusterSource, cluster_key
from kubeshape.redact import LAST_APPLIED, redact_object, redact_text
from kubeshape.sources import shapes
from kubeshape.sources._gc import paused
from kubeshape.sources.bundle import add_list, compact_managed_fields, redact_item, strip_secret
from kubeshape.sources.validate import ShapeMismatch, check, compiled

PAGE_SIZE = 500
MAX_RETRIES = 5
DEFAULT_REQUEST_TIMEOUT = 30.0  # seconds a request may take, retries included (--request-timeout)
LOG_TIMEOUT = 5.0  # seconds per log tail; the apiserver proxies each one to a kubelet
LOG_GIVE_UP = 2  # tails tried first; when all of them fail and none is read, the others are not tried
MAX_WORKERS = 16  # requests in flight at once: every kind's first page, then the log tails
# Client-side rate limit: kubectl's for discovery (50/s, bursts of 300), not client-go's per-client 5/s and 10.
# A run reads like discovery does, one burst of requests across all kinds (~30 LISTs and up to --max-logs log
# tails), which this burst lets out at once; 50/s only paces the pages of a very large cluster. The API server's
# own flow control answers 429 with Retry-After when it is busy, and that is honoured.
DEFAULT_QPS = 50.0
DEFAULT_BURST = 300


@dataclass(frozen=True, slots=True)
class KindSpec:
    """Where a kind lives in the API."""

    kind: str
    plural: str
    group: str = ""
    version: str = "v1"
    namespaced: bool = True
    optional: bool = False  # a CRD that may not be installed
    older: tuple[str, ...] = ()  # versions to list when ``version`` is not served (older releases of a CRD)
    product: str = ""  # what installs the CRD, for one note when none of its kinds is served

    @property
    def file_stem(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def key(self) -> str:
        """The kind as ``ClusterSource`` keys it (``Kustomization.kustomize.toolkit.fluxcd.io`` for Flux's)."""
        return cluster_key(self.kind, self.group)

    def path(self, namespace: str | None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"


# What the rules read. Secrets are deliberately absent: no rule needs their contents. ConfigMaps are listed
# for the Prometheus rule files some hold (KS703); every other ConfigMap keeps its metadata only
# (``keep_rule_files``). Flux's objects keep their status (conditions, revisions, artifact, inventory).
KINDS: tuple[KindSpec, ...] = (
    KindSpec("Node", "nodes", namespaced=False),
    KindSpec("Namespace", "namespaces", namespaced=False),
    KindSpec("Pod", "pods"),
    KindSpec("Service", "services"),
    KindSpec("ConfigMap", "configmaps"),
    KindSpec("Event", "events"),
    KindSpec("Deployment", "deployments", "apps"),
    KindSpec("ReplicaSet", "replicasets", "apps"),
    KindSpec("StatefulSet", "statefulsets", "apps"),
    KindSpec("DaemonSet", "daemonsets", "apps"),
    KindSpec("Job", "jobs", "batch"),
    KindSpec("CronJob", "cronjobs", "batch"),
    KindSpec("HorizontalPodAutoscaler", "horizontalpodautoscalers", "autoscaling", "v2"),
    KindSpec("PodDisruptionBudget", "poddisruptionbudgets", "policy"),
    KindSpec("ServiceMonitor", "servicemonitors", "monitoring.coreos.com", optional=True),
    KindSpec("PodMonitor", "podmonitors", "monitoring.coreos.com", optional=True),
    KindSpec("PrometheusRule", "prometheusrules", "monitoring.coreos.com", optional=True),
    KindSpec("GitRepository", "gitrepositories", FLUX_SOURCE_GROUP, optional=True, product="Flux"),
    KindSpec("OCIRepository", "ocirepositories", FLUX_SOURCE_GROUP, optional=True, older=("v1beta2",),
             product="Flux"),
    KindSpec("HelmRepository", "helmrepositories", FLUX_SOURCE_GROUP, optional=True, product="Flux"),
    KindSpec("Kustomization", "kustomizations", FLUX_KUSTOMIZE_GROUP, optional=True, product="Flux"),
    KindSpec("HelmRelease", "helmreleases", FLUX_HELM_GROUP, "v2", optional=True, older=("v2beta2",),
             product="Flux"),
)


def kind_spec(kind: str, group: str | None = None) -> KindSpec | None:
    """Where kubeshape reads ``kind`` (of API ``group`` when given); None for a kind it does not read."""
    return next((s for s in KINDS if s.kind == kind and (group is None or s.group == group)), None)


RULE_FILE_SUFFIXES = (".yml", ".yaml", ".rules", ".json")


def is_rule_file(key: str, value: object) -> bool:
    """True when ConfigMap key ``key`` holds a Prometheus rule file (YAML or JSON with groups and expressions)."""
    return (isinstance(value, str) and key.endswith(RULE_FILE_SUFFIXES)
            and ("groups:" in value or '"groups"' in value) and ("expr:" in value or '"expr"' in value))


def keep_rule_files(item: dict[str, Any]) -> dict[str, Any]:
    """Reduce a ConfigMap, in place, to what the rules read: its metadata, plus the Prometheus rule files it
    holds (redacted). Every other key, ``binaryData`` and the last-applied-configuration annotation (a copy of
    all the data) are dropped, so no config value is kept and lists of ConfigMaps stay small."""
    data = item.get("data")
    rules = ({str(k): v for k, v in data.items() if is_rule_file(str(k), v)} if isinstance(data, dict) else {})
    item.pop("binaryData", None)
    if rules:
        item["data"] = rules
    else:
        item.pop("data", None)
    meta = item.get("metadata")
    if isinstance(meta, dict):
        ann = meta.get("annotations")
        if isinstance(ann, dict):
            ann.pop(LAST_APPLIED, None)
        if "managedFields" in meta:
            meta["managedFields"] = compact_managed_fields(meta["managedFields"])
    return redact_object(item)


class RateLimiter:
    """Token bucket shared by all threads: at most ``qps`` requests per second, bursts of ``burst``."""

    def __init__(self, qps: float, burst: int) -> None:
        self.qps, self.burst = qps, max(1, burst)
        self.tokens = float(self.burst)
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def acquire(self) -> None:
        if self.qps <= 0:
            return
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.qps)
                self.stamp = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                wait = (1 - self.tokens) / self.qps
            time.sleep(wait)


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ApiClient:
    """A thin, counted, rate-limited JSON client over an httpx.Client configured from a kubeconfig."""

    http: httpx.Client
    server: str
    context: str
    limiter: RateLimiter
    timeout: float | None = DEFAULT_REQUEST_TIMEOUT  # seconds per request, retries included; None: no limit
    requests: int = 0
    retries_429: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, path: str, params: dict[str, Any] | None = None, *, raw: bool = False,
            timeout: float | None = None, retries: int = MAX_RETRIES, retry_5xx: bool = True) -> Any:
        """GET ``path``; retry 429 (honouring Retry-After) and 5xx with back-off; raise ApiError otherwise."""
        resp = self.fetch(path, params, timeout=timeout, retries=retries, retry_5xx=retry_5xx)
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, _status_message(resp))
        if raw:
            return resp.content
        try:
            return orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            raise ApiError(502, f"{path}: the API server answered {_body_kind(resp)}, not JSON") from None

    def fetch(self, path: str, params: dict[str, Any] | None = None, *, timeout: float | None = None,
              retries: int = MAX_RETRIES, retry_5xx: bool = True) -> httpx.Response:
        """GET ``path`` and return the final response (any status but 401), retrying 429, 5xx (unless
        ``retry_5xx`` is false) and dropped connections with back-off. Attempts and back-off share one deadline:
        ``self.timeout`` (--request-timeout) or the smaller ``timeout`` (the caller's own budget: running out of
        it is ApiError 504, not exit 3)."""
        budget = self.timeout if timeout is None else timeout if self.timeout is None else min(timeout, self.timeout)
        end = None if budget is None else time.monotonic() + budget
        delay = 0.5
        for attempt in range(retries + 1):
            self.limiter.acquire()
            with self._lock:
                self.requests += 1
            try:
                resp = self._send(path, params, end)
            except httpx.ConnectTimeout:
                if timeout is not None:
                    raise ApiError(504, f"timed out after {budget:g}s") from None
                raise SourceUnreachable(f"{self._where()}: no connection within {_seconds(budget)} "
                                        "(--request-timeout)") from None
            except httpx.ConnectError as exc:
                raise SourceUnreachable(f"cannot reach {self._where()}: {_reason(exc)}") from None
            except httpx.TimeoutException:
                if timeout is not None:
                    raise ApiError(504, f"timed out after {budget:g}s") from None  # the caller's own budget
                raise SourceUnreachable(f"{self._where()} did not answer GET {path} within {_seconds(budget)} "
                                        "(--request-timeout)") from None
            except httpx.TransportError as exc:
                if attempt == retries or not _time_left(end, delay):
                    raise SourceUnreachable(f"{self._where()} stopped answering: {_reason(exc)}") from None
                time.sleep(delay)
                delay *= 2
                continue
            if resp.status_code == 401:
                raise SourceUnreachable(f"the API server of context '{self.context}' rejected the credentials "
                                        "(401 Unauthorized) -- refresh them (e.g. re-login) and try again")
            if resp.status_code == 429 or (resp.status_code >= 500 and retry_5xx):
                wait = _retry_after(resp, delay)
                if attempt == retries or not _time_left(end, wait):
                    return resp
                if resp.status_code == 429:
                    with self._lock:
                        self.retries_429 += 1
                time.sleep(wait)
                delay = min(delay * 2, 30)
                continue
            return resp
        raise AssertionError("unreachable")

    def _send(self, path: str, params: dict[str, Any] | None, end: float | None) -> httpx.Response:
        """One GET whose connect, every read and the whole body stay within ``end`` (a monotonic time)."""
        left = None if end is None else max(end - time.monotonic(), 0.001)
        with self.http.stream("GET", path, params=params, timeout=httpx.Timeout(left)) as resp:
            if resp.is_stream_consumed:  # read already (by an auth flow, or a test transport)
                return resp
            body = bytearray()
            for chunk in resp.iter_raw():  # a server trickling bytes must not stretch the deadline
                body += chunk
                if end is not None and time.monotonic() > end:
                    raise httpx.ReadTimeout("the answer took longer than the deadline", request=resp.request)
            return httpx.Response(resp.status_code, headers=resp.headers, content=bytes(body), request=resp.request)

    def _where(self) -> str:
        return f"the API server of context '{self.context}' at {self.server}"


def _time_left(end: float | None, wait: float) -> bool:
    """True when sleeping ``wait`` seconds still leaves time for another attempt before ``end``."""
    return end is None or time.monotonic() + wait < end


def _seconds(value: float | None) -> str:
    return "ever" if value is None else f"{value:g}s"


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]


def _retry_after(resp: httpx.Response, default: float) -> float:
    value = resp.headers.get("Retry-After", "")
    try:
        return min(max(float(value), 0.0), 60.0)
    except ValueError:
        return default


def _body_kind(resp: httpx.Response) -> str:
    """What a response body is, for messages: "HTML", "an empty body", "JSON" or "text"."""
    head = resp.content[:512].lstrip().lower()
    if "html" in resp.headers.get("Content-Type", "").lower() or head.startswith(b"<"):
        return "HTML"
    if not head:
        return "an empty body"
    try:
        orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return "text"
    return "JSON"


def _json_object(resp: httpx.Response) -> dict[str, Any] | None:
    try:
        doc = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _is_status(resp: httpx.Response) -> bool:
    """A Kubernetes ``Status`` object (what an API server answers with when it refuses, e.g. 403 by RBAC)."""
    doc = _json_object(resp)
    return doc is not None and doc.get("kind") == "Status" and doc.get("apiVersion") == "v1"


DISCOVERY = (("/api", "APIVersions"), ("/apis", "APIGroupList"))


def check_server(api: ApiClient) -> str:
    """Make sure ``api`` talks to a Kubernetes API server and return its version (empty when RBAC hides it).

    ``/version`` must be JSON with a ``gitVersion``, and discovery must answer (``/api`` with ``APIVersions`` or
    ``/apis`` with ``APIGroupList``); a Kubernetes ``Status`` refusal (403) counts as an API server too. Anything
    else (a web server's 404, an HTML page, a proxy's 502) is ``SourceUnreachable`` (exit 3): listing every kind
    of such a server would otherwise report an empty cluster.
    """
    resp = api.fetch("/version")
    version = ""
    if resp.status_code == 200:
        doc = _json_object(resp)
        if doc is None:
            raise _not_kubernetes(api, "/version", resp)
        git_version = doc.get("gitVersion")
        if not isinstance(git_version, str) or not git_version:
            raise SourceUnreachable(f"{api.server} answered /version with JSON that has no gitVersion: not a "
                                    f"Kubernetes API server (kubeconfig context '{api.context}')")
        version = git_version
    elif not (resp.status_code == 403 and _is_status(resp)):
        raise _not_kubernetes(api, "/version", resp)
    first: httpx.Response | None = None
    for path, kind in DISCOVERY:
        resp = api.fetch(path)
        doc = _json_object(resp) if resp.status_code == 200 else None
        if (doc is not None and doc.get("kind") == kind) or (resp.status_code == 403 and _is_status(resp)):
            return version
        first = first or resp
    assert first is not None
    raise _not_kubernetes(api, "/api", first)


def _not_kubernetes(api: ApiClient, path: str, resp: httpx.Response) -> SourceUnreachable:
    status, verdict = resp.status_code, "not a Kubernetes API server"
    if status == 200:
        kind = _body_kind(resp)
        what = f"answered {path} with {kind}" + (", not JSON" if kind != "JSON" else " that is not Kubernetes'")
    else:
        what = f"answered {status} to {path}"
        if status == 429 or status >= 500:
            verdict = "an API server that is not serving, or not a Kubernetes API server"
    return SourceUnreachable(f"{api.server} {what}: {verdict} (kubeconfig context '{api.context}')")


def _status_message(resp: httpx.Response) -> str:
    try:
        body = orjson.loads(resp.content)
        return str(body.get("message") or resp.reason_phrase)
    except (orjson.JSONDecodeError, AttributeError):
        return f"{resp.status_code} {resp.reason_phrase}"


def kubeconfig_path(explicit: Path | None) -> Path:
    """The kubeconfig to read: --kubeconfig, else the first existing file of $KUBECONFIG, else ~/.kube/config."""
    if explicit is not None:
        if not explicit.is_file():
            raise InputError(f"{explicit}: kubeconfig not found")
        return explicit
    for part in os.environ.get("KUBECONFIG", "").split(os.pathsep):
        if part and Path(part).is_file():
            return Path(part)
    default = Path.home() / ".kube" / "config"
    if default.is_file():
        return default
    raise InputError("no kubeconfig found ($KUBECONFIG or ~/.kube/config) -- pass --kubeconfig or --bundle")


def contexts(kubeconfig: Path) -> tuple[list[str], str | None]:
    from lightkube.config.kubeconfig import KubeConfig

    try:
        config = KubeConfig.from_file(kubeconfig)
    except Exception as exc:  # lightkube raises several types for malformed files
        raise InputError(f"{kubeconfig}: cannot read kubeconfig ({_reason(exc)})") from None
    return sorted(config.contexts), config.current_context


SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def in_cluster() -> bool:
    """True inside a pod: the apiserver's address is in the environment and a service account is mounted, and
    no kubeconfig was pointed at."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and not os.environ.get("KUBECONFIG") \
        and Path(SERVICE_ACCOUNT, "token").is_file()


def connect(kubeconfig: Path | None, context: str | None, qps: float = DEFAULT_QPS, burst: int = DEFAULT_BURST,
            timeout: float | None = DEFAULT_REQUEST_TIMEOUT) -> tuple[ApiClient, str]:
    """An ApiClient for ``context`` (default: current) and that context's default namespace; ``timeout`` bounds
    each request, retries included (None: no limit). Inside a pod with no kubeconfig given, the pod's service
    account.

    HTTP/1.1, one keep-alive connection per request in flight: httpx's HTTP/2 is not safe to share between
    threads (concurrent requests on one connection corrupt its HPACK and stream state)."""
    from lightkube.config.client_adapter import Client, ConnectionParams
    from lightkube.config.kubeconfig import KubeConfig

    if kubeconfig is None and context is None and in_cluster():
        path = Path(SERVICE_ACCOUNT)
        try:
            config = KubeConfig.from_service_account(SERVICE_ACCOUNT).get()
        except Exception as exc:
            raise InputError(f"{SERVICE_ACCOUNT}: in-cluster credentials: {_reason(exc)}") from None
    else:
        path = kubeconfig_path(kubeconfig)
        try:
            config = KubeConfig.from_file(path).get(context_name=context)
        except Exception as exc:
            raise InputError(f"{path}: {_reason(exc)}") from None
    if config is None:
        raise InputError(f"{path}: no current context -- pass --context")
    try:
        http = Client(config, ConnectionParams(timeout=httpx.Timeout(timeout), trust_env=False))
    except Exception as exc:
        raise InputError(f"{path}: context '{config.context_name}': {_reason(exc)}") from None
    http.headers.update({"Accept": "application/json", "User-Agent": "kubeshape"})
    return (ApiClient(http, config.cluster.server, config.context_name, RateLimiter(qps, burst), timeout),
            config.namespace)


ProgressFn = Callable[[str, int, bool], None]


@dataclass
class Collection:
    """Everything read from one cluster, as List JSON per kind plus log tails."""

    context: str
    server: str
    lists: dict[KindSpec, dict[str, Any]] = field(default_factory=dict)
    logs: dict[tuple[str, str, str], str] = field(default_factory=dict)
    blind_spots: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    server_version: str = ""
    collected_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    namespaces: list[str] | None = None
    requests: int = 0


def _list_kind(api: ApiClient, spec: KindSpec, namespace: str | None,
               progress: ProgressFn | None) -> dict[str, Any]:
    items: list[Any] = []
    params: dict[str, Any] = {"limit": PAGE_SIZE}
    restarted = False
    head: dict[str, Any] = {}
    while True:
        try:
            page = api.get(spec.path(namespace), params)
        except ApiError as exc:
            if exc.status == 410 and not restarted:  # continue token expired: start over once
                items, params, restarted = [], {"limit": PAGE_SIZE}, True
                continue
            raise
        head = page
        items.extend(page.get("items") or [])
        if progress:
            progress(spec.kind, len(items), False)
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            break
        params = {"limit": PAGE_SIZE, "continue": token}
    for item in items:
        if isinstance(item, dict):
            if spec.kind == "Secret":
                item.update(strip_secret(item))
            elif spec.kind == "ConfigMap":
                keep_rule_files(item)
            else:
                redact_item(item)
    return {"kind": head.get("kind") or f"{spec.kind}List", "apiVersion": head.get("apiVersion") or
            (f"{spec.group}/{spec.version}" if spec.group else spec.version),
            "metadata": {"resourceVersion": (head.get("metadata") or {}).get("resourceVersion", "")},
            "items": items}


def collect(api: ApiClient, namespaces: list[str] | None = None, kinds: tuple[KindSpec, ...] = KINDS,
            max_logs: int = 30, progress: ProgressFn | None = None, workers: int = MAX_WORKERS) -> Collection:
    """LIST every kind (cluster-wide, or per namespace given), then fetch a bounded number of log tails.

    Up to ``workers`` requests are in flight at once (each kind's pages follow one another), so every kind's
    first page goes out together; the client-side rate limit still applies to each."""
    out = Collection(context=api.context, server=api.server, namespaces=namespaces)
    out.server_version = check_server(api)
    jobs: list[tuple[KindSpec, str | None]] = []
    for spec in kinds:
        if spec.namespaced and namespaces:
            jobs += [(spec, ns) for ns in namespaces]
        elif spec.kind == "Namespace" and namespaces:
            jobs.append((spec, None))
        else:
            jobs.append((spec, None))

    def run(job: tuple[KindSpec, str | None]) -> tuple[KindSpec, str | None, dict[str, Any] | ApiError]:
        spec, ns = job
        for version in (spec.version, *spec.older):
            try:
                return spec, ns, _list_kind(api, dataclasses.replace(spec, version=version), ns, progress)
            except ApiError as exc:
                if exc.status != 404 or version == (spec.older or (spec.version,))[-1]:
                    return spec, ns, exc
        raise AssertionError("unreachable")

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as pool:
        results = list(pool.map(run, jobs))
    missing: dict[KindSpec, None] = {}
    for spec, ns, result in results:
        where = f" in namespace {ns}" if ns else ""
        if isinstance(result, ApiError):
            if result.status == 404 and spec.optional:
                missing[spec] = None
            elif result.status == 403:
                out.blind_spots.append((spec.key, f"forbidden: cannot list {spec.file_stem}{where} (RBAC)"))
            else:
                out.blind_spots.append((spec.key, f"{result.status}: {result}{where}"))
            continue
        if progress:
            progress(spec.kind, len(result["items"]), True)
        if spec in out.lists:
            out.lists[spec]["items"].extend(result["items"])
        else:
            out.lists[spec] = result
    out.notes += _not_installed(list(missing), kinds)
    if namespaces and (ns_list := out.lists.get(KINDS[1])):
        ns_list["items"] = [n for n in ns_list["items"] if (n.get("metadata") or {}).get("name") in namespaces]
    _collect_logs(api, out, max_logs, workers)
    out.requests = api.requests
    out.collected_at = datetime.now(UTC).replace(microsecond=0)  # as the bundle manifest records it
    return out


def _not_installed(missing: list[KindSpec], kinds: tuple[KindSpec, ...]) -> list[str]:
    """Notes on the optional APIs that are not served: one per kind, or one for a product none of whose kinds
    is served (``Flux: not installed``)."""
    notes: list[str] = []
    done: set[str] = set()
    for spec in missing:
        family = [k for k in kinds if spec.product and k.product == spec.product]
        if family and all(k in missing for k in family):
            if spec.product not in done:
                done.add(spec.product)
                groups = ", ".join(sorted({k.group for k in family}))
                notes.append(f"{spec.product}: not installed (no API of {groups} is served)")
            continue
        versions = " or ".join((spec.version, *spec.older))
        notes.append(f"{spec.kind}: API {spec.group}/{versions} not installed")
    return notes


def _log_candidates(pods: list[dict[str, Any]], limit: int) -> list[tuple[str, str, str]]:
    """The pods most worth reading: restarting or unready first, then one per owner; at most ``limit``."""
    scored: list[tuple[int, str, str, str]] = []
    owners: set[str] = set()
    for pod in pods:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        owner = next((r.get("name", "") for r in meta.get("ownerReferences") or []), meta.get("name", ""))
        for cs in status.get("containerStatuses") or []:
            if not cs.get("started") and not (cs.get("state") or {}).get("running"):
                continue
            score = int(cs.get("restartCount") or 0) * 10 + (0 if cs.get("ready") else 5)
            key = f"{meta.get('namespace')}/{owner}"
            if score == 0 and key in owners:
                continue
            owners.add(key)
            scored.append((score, str(meta.get("namespace", "")), str(meta.get("name", "")), str(cs.get("name"))))
    scored.sort(key=lambda t: (-t[0], t[1], t[2], t[3]))
    return [(ns, pod, c) for _, ns, pod, c in scored[:limit]]


LogKey = tuple[str, str, str]  # namespace, pod, container


def _collect_logs(api: ApiClient, out: Collection, limit: int, workers: int = MAX_WORKERS) -> None:
    """Read the tails of the pods most worth reading, concurrently. The first ``LOG_GIVE_UP`` go out together
    ahead of the others: when every one of them fails, the API server cannot fetch logs (kubelets unreachable,
    or no access to pods/log) and the others are not tried, so a run does not wait on every pod."""
    pods: list[dict[str, Any]] = next((v["items"] for k, v in out.lists.items() if k.kind == "Pod"), [])
    candidates = _log_candidates(pods, limit)
    if not candidates:
        return
    failures: dict[LogKey, int] = {}

    def read(key: LogKey) -> None:
        ns, pod, container = key
        try:
            # A 5xx here is the kubelet's path failing, not the API server asking to come back: no retry.
            data = api.get(f"/api/v1/namespaces/{ns}/pods/{pod}/log", {"container": container, "tailLines": 500},
                           raw=True, timeout=LOG_TIMEOUT, retries=1, retry_5xx=False)
        except ApiError as exc:
            failures[key] = exc.status
            return
        out.logs[key] = redact_text(data.decode("utf-8", errors="replace"))

    probe, rest = candidates[:LOG_GIVE_UP], candidates[LOG_GIVE_UP:]
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(candidates)))) as pool:
        list(pool.map(read, probe))
        if out.logs:
            list(pool.map(read, rest))
        else:
            rest = []  # every probe failed: do not wait on the others
    out.logs = {k: out.logs[k] for k in candidates if k in out.logs}  # in the order they were chosen
    if failures:
        untried = len(candidates) - len(probe) - len(rest)
        out.notes.append(f"logs: {len(out.logs)} of {len(candidates)} log tails read; the API server could not "
                         f"fetch {len(failures)} ({_log_failure(sorted(set(failures.values())))})"
                         + (f", so the other {untried} were not tried" if untried else ""))


def _log_failure(statuses: list[int]) -> str:
    """Why log tails could not be read, from the HTTP statuses the API server answered with."""
    why = []
    if 403 in statuses:
        why.append("403: no access to pods/log")
    if any(s >= 500 for s in statuses):
        why.append("kubelet unreachable, or too slow")
    why += [f"HTTP {s}" for s in statuses if s != 403 and s < 500]
    return "; ".join(why)


def _well_formed(kind: str, items: list[Any]) -> tuple[list[Any], list[str]]:
    """Items of ``kind`` that have the shape rules rely on, and where the others differ (same check as bundles)."""
    shape = shapes.item_shape(kind)
    ok = compiled(shape)
    good: list[Any] = []
    bad: list[str] = []
    for n, item in enumerate(items):
        if ok(item):
            good.append(item)
            continue
        try:
            check(item, shape)
        except ShapeMismatch as err:
            meta = item.get("metadata") if isinstance(item, dict) else None
            name = meta.get("name") if isinstance(meta, dict) else None
            bad.append(f"{name or f'items[{n}]'}: {err.where()}: {err.describe()}")
        else:
            good.append(item)
    return good, bad


def to_cluster(col: Collection) -> ClusterSource:
    """The ClusterSource rules analyse, built from a collection (same path a bundle takes)."""
    from kubeshape.sources.bundle import LOG_TAIL_LINES

    cluster = ClusterSource(name=col.context, collected_at=col.collected_at, server_version=col.server_version)
    with paused():
        for spec, doc in col.lists.items():
            items = orjson.loads(orjson.dumps(doc["items"]))
            good, skipped = _well_formed(spec.key, items)
            if skipped:
                cluster.notes.append(f"{spec.key}: skipped {len(skipped)} object(s) the API server returned in an "
                                     f"unexpected shape (first: {skipped[0]})")
            add_list(cluster, spec.kind, good, group=spec.group)
    for key, text in col.logs.items():
        cluster.logs[key] = text.splitlines()[-LOG_TAIL_LINES:]
    cluster.blind_spots = list(col.blind_spots)
    cluster.notes = [*col.notes, *cluster.notes]
    return cluster
