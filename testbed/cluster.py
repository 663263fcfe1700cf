"""A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (simulated nodes and pods, stages from testbed/kwok/).

    cluster = start_cluster(tmp_path, nodes=[NodeSpec("node-a", images=("homelab-dashboard:v3",))])
    cluster.kubectl("get", "pods", "-A")
    cluster.stop()

Pods are driven by kwok stages, selected by annotations (see testbed/kwok/scenarios.yaml):
``testbed.kubeshape.io/chaos: probe-429 | crashloop`` and ``testbed.kubeshape.io/image-pull: ok | backoff``.
The image-pull annotation is set by this module's image check (it plays the kubelet's part: kwok's
stage selectors see only the pod, not its node's images) unless a scenario sets it itself. Images of a
registry registered with ``cluster.check_registry("127.0.0.1:PORT")`` are checked there too (HEAD of the
manifest): a tag that was never pushed, or was deleted, ends in ImagePullBackOff as on a real kubelet.

Every process runs in its own process group, is recorded in ``<workdir>/pids`` and is killed by
``Cluster.stop()``, by an atexit hook, by ``python -m testbed down --dir <workdir>``, and by a reaper
process that notices when the Python process that started the cluster dies (even by SIGKILL).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import http.client
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from testbed.binaries import binary, versions
from testbed.procs import Proc, free_port, start

HERE = Path(__file__).resolve().parent
KWOK_STAGES = HERE / "kwok"
ANNOTATION = "testbed.kubeshape.io"
IMAGE_PULL = f"{ANNOTATION}/image-pull"  # "ok" | "backoff"
MISSING_IMAGES = f"{ANNOTATION}/missing-images"  # comma-separated, set with image-pull=backoff
CHAOS = f"{ANNOTATION}/chaos"  # "probe-429" | "crashloop"
CHAOS_CONTAINER = f"{ANNOTATION}/chaos-container"  # default: the first container
CHAOS_INTERVAL = f"{ANNOTATION}/chaos-interval"  # Go duration between restarts, default 3s
CHAOS_MAX_RESTARTS = f"{ANNOTATION}/chaos-max-restarts"  # stop at this restartCount, default never
POD_CIDR = "10.244.0.0/16"  # kwok hands out pod IPs from it
SERVICE_CIDR = "10.0.0.0/24"
# Controllers that need a cloud provider (they would only log errors without one).
CONTROLLERS = "*,-cloud-node-lifecycle-controller,-service-lb-controller,-node-route-controller"
PIDFILE = "pids"
NOT_READY_TAINTS = {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}
BOUND = "spec.nodeName%21%3D"  # field selector "spec.nodeName!=": pods bound to a node


@dataclass(frozen=True)
class NodeSpec:
    """A kwok-managed Node: ``images`` end up in ``status.images`` (normalized like containerd does)."""

    name: str
    images: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    cpu: str = "16"
    memory: str = "64Gi"
    pods: str = "110"


@dataclass
class Cluster:
    workdir: Path
    server: str  # "https://127.0.0.1:PORT"
    token: str  # admin bearer token (group system:masters)
    ca_file: Path  # the apiserver's self-signed CA (+ serving cert); verifies 127.0.0.1
    kubeconfig: Path
    version: str  # pinned Kubernetes version, e.g. "v1.34.12"
    procs: dict[str, Proc]
    timings: dict[str, float] = field(default_factory=dict)  # seconds from start until ready
    # registries ("127.0.0.1:PORT") whose images pods pull for real (a missing manifest is ImagePullBackOff);
    # change it through check_registry/uncheck_registry, which also (un)register the admission webhook
    check_registries: set[str] = field(default_factory=set)
    _image_check: ImageCheck | None = None
    _reaper: subprocess.Popen[bytes] | None = None

    @property
    def pids(self) -> dict[str, int]:
        return {name: p.popen.pid for name, p in self.procs.items()}

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def api(self, method: str, path: str, body: Any = None, *,
            content_type: str = "application/json", timeout: float = 30) -> Any:
        """One JSON request to the apiserver as admin; raises ``urllib.error.HTTPError`` on 4xx/5xx."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": content_type, "Accept": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout, context=self.ssl_context()) as resp:
            return json.loads(resp.read() or b"null")

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run the system ``kubectl`` against this cluster (text output)."""
        return subprocess.run(["kubectl", f"--kubeconfig={self.kubeconfig}", *args], input=input,
                              capture_output=True, text=True, check=check, timeout=timeout)

    def create_node(self, name: str, images: Iterable[str] = (), *, labels: Mapping[str, str] | None = None,
                    cpu: str = "16", memory: str = "64Gi", pods: str = "110", wait: float = 30) -> dict[str, Any]:
        """Create a kwok-managed Node and wait until kwok reports it Ready (``wait=0``: don't wait)."""
        return self.create_nodes([NodeSpec(name, tuple(images), labels or {}, cpu, memory, pods)], wait=wait)[0]

    def create_nodes(self, specs: Iterable[NodeSpec], *, wait: float = 30) -> list[dict[str, Any]]:
        specs = list(specs)
        for spec in specs:
            # The apiserver keeps status (allocatable, images) given at create time; kwok's
            # node-initialize stage patches conditions/addresses and leaves status.images alone.
            self.api("POST", "/api/v1/nodes", node_manifest(spec))
        deadline = time.monotonic() + wait
        return [self._node(s.name, deadline) if wait else self.api("GET", f"/api/v1/nodes/{s.name}") for s in specs]

    def _node(self, name: str, deadline: float) -> dict[str, Any]:
        """The Node once kwok reports it Ready."""
        node: dict[str, Any] = {}

        def ready() -> bool:
            node.update(self.api("GET", f"/api/v1/nodes/{name}"))
            return _node_ready(node)

        _poll(ready, deadline - time.monotonic(), f"node {name} Ready")
        return node

    def alive(self) -> dict[str, bool]:
        return {name: p.alive() for name, p in self.procs.items()}

    def check_registry(self, host: str) -> None:
        """From now on, pods whose image names registry ``host`` ("127.0.0.1:PORT") and whose manifest is not
        there get ``image-pull: backoff`` (decided when the pod is created, before kwok can start it)."""
        loopback_port(host)
        self.check_registries.add(host)
        if self._image_check is not None:
            self._image_check.registries_changed()

    def uncheck_registry(self, host: str) -> None:
        """Undo ``check_registry``: images of ``host`` run again whether they exist or not."""
        self.check_registries.discard(host)
        if self._image_check is not None:
            self._image_check.registries_changed()

    def stop(self) -> None:
        """Stop every process (clients first, etcd last); idempotent."""
        if self._image_check:
            self._image_check.stop()
        clients = [p for n, p in self.procs.items() if n not in ("kube-apiserver", "etcd")]
        with ThreadPoolExecutor(len(clients) or 1) as pool:
            list(pool.map(lambda p: p.stop(), clients))
        for name in ("kube-apiserver", "etcd"):
            if name in self.procs:
                self.procs[name].stop()
        if self._reaper and self._reaper.stdin:
            self._reaper.stdin.close()  # nothing left for it to kill; it exits
            self._reaper.wait(10)
            self._reaper = None
        atexit.unregister(self.stop)

    def track(self, proc: Proc) -> None:
        """Record another process (e.g. the registry) so that ``stop``/``down``/the reaper kill it too."""
        self.procs[proc.name] = proc
        record_pid(self.workdir, proc.name, proc.popen.pid)


def node_manifest(spec: NodeSpec) -> dict[str, Any]:
    resources = {"cpu": spec.cpu, "memory": spec.memory, "pods": spec.pods}
    images = [{"names": [normalize_image(i)], "sizeBytes": 50_000_000} for i in spec.images]
    labels = {"type": "kwok", "kubernetes.io/hostname": spec.name, "kubernetes.io/os": "linux",
              "kubernetes.io/arch": "amd64", **spec.labels}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": spec.name, "labels": labels, "annotations": {"kwok.x-k8s.io/node": "fake"}},
            "status": {"allocatable": resources, "capacity": resources, "images": images}}


# --- image references, as the container runtime resolves them

def _split_domain(image: str) -> tuple[str, str]:
    first, sep, rest = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return "", image


def is_unqualified(image: str) -> bool:
    """No registry domain: the runtime pulls it from docker.io (or finds it on the node)."""
    return _split_domain(image)[0] == ""


def normalize_image(image: str) -> str:
    """``app:v1`` → ``docker.io/library/app:v1``; adds ``:latest`` when there is neither tag nor digest."""
    domain, path = _split_domain(image)
    if not domain:
        domain = "docker.io"
        if "/" not in path:
            path = f"library/{path}"
    name, at, digest = path.partition("@")
    if not at and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return f"{domain}/{name}{at}{digest}"


def missing_images(pod: Mapping[str, Any], node: Mapping[str, Any], checked: Collection[str] = (),
                   exists: Callable[[str], bool] | None = None) -> list[str] | None:
    """Container images of ``pod`` that cannot be pulled: unqualified ones ``node`` does not have and, given
    ``exists``, those of a ``checked`` registry whose manifest is not there. None if no image is of either sort
    (the pod's images are not checked)."""
    images = [c["image"] for c in pod["spec"]["containers"]]
    remote = {i for i in images if exists is not None and _split_domain(i)[0] in checked}
    if not remote and not any(is_unqualified(i) for i in images):
        return None
    present = {normalize_image(n) for i in node.get("status", {}).get("images") or [] for n in i.get("names", [])}
    out = []
    for image in images:
        if is_unqualified(image):
            if normalize_image(image) not in present:
                out.append(image)
        elif image in remote and exists is not None and not exists(image):
            out.append(image)
    return out


def loopback_port(host: str) -> int:
    """The port of a registry on this machine ("127.0.0.1:PORT" or "localhost:PORT"); refuses any other host."""
    name, _, port = host.rpartition(":")
    if name not in ("127.0.0.1", "localhost") or not port.isdigit():
        raise ValueError(f"{host}: only registries on 127.0.0.1:PORT are checked")
    return int(port)


MANIFEST_TYPES = ", ".join(("application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
                            "application/vnd.docker.distribution.manifest.list.v2+json",
                            "application/vnd.docker.distribution.manifest.v2+json"))


def manifest_exists(image: str) -> bool:
    """HEAD /v2/<repo>/manifests/<tag|digest> on the image's loopback registry: what a kubelet's pull resolves
    first. Any answer but 200 (or no answer) means the pull would fail."""
    domain, path = _split_domain(image)
    name, at, digest = path.partition("@")
    repo, colon, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "")
    ref = digest if at else (tag if colon else "latest")
    req = urllib.request.Request(f"http://127.0.0.1:{loopback_port(domain)}/v2/{repo}/manifests/{ref}",
                                 method="HEAD", headers={"Accept": MANIFEST_TYPES})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return bool(resp.status == 200)
    except (OSError, ValueError):
        return False


WEBHOOK = "testbed-image-check"


class _Admission(BaseHTTPRequestHandler):
    """Answers the apiserver's AdmissionReview for a new pod with the image-pull verdict as a JSONPatch."""

    server: _AdmissionServer

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        request = review["request"]
        answer: dict[str, Any] = {"uid": request["uid"], "allowed": True}
        patch = self.server.check.admission_patch(request.get("object") or {})
        if patch:
            answer.update(patchType="JSONPatch", patch=base64.b64encode(json.dumps(patch).encode()).decode())
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                           "response": answer}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _AdmissionServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, check: ImageCheck, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Admission)
        self.check = check
        self.socket = context.wrap_socket(self.socket, server_side=True)


class ImageCheck:
    """Annotates each bound pod with unqualified images: ``image-pull: ok`` if its node has them all,
    else ``image-pull: backoff`` and ``missing-images``. kwok's stages act on that annotation.

    Images of the cluster's ``check_registries`` are decided when the pod is created (a mutating admission
    webhook on 127.0.0.1, registered only while some registry is checked): kwok starts a pod whose images all
    name a registry as soon as it is bound, so a verdict given after binding would come too late."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._stopped = threading.Event()
        self._conn: http.client.HTTPSConnection | None = None
        self._rv: str | None = None
        self._thread = threading.Thread(target=self._run, name="testbed-image-check", daemon=True)
        self._admission: _AdmissionServer | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def registries_changed(self) -> None:
        """Register (or update, or remove) the admission webhook for the cluster's ``check_registries``; wait
        until the apiserver calls it."""
        with self._lock:
            hosts = sorted(self.cluster.check_registries)
            path = f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{WEBHOOK}"
            if not hosts:
                with contextlib.suppress(urllib.error.HTTPError):
                    self.cluster.api("DELETE", path)
                return
            ca = self._serve()
            config = _webhook_config(f"https://127.0.0.1:{self._admission.server_address[1]}/admit",  # type: ignore[union-attr]
                                     ca, hosts)
            try:
                config["metadata"]["resourceVersion"] = self.cluster.api("GET", path)["metadata"]["resourceVersion"]
                self.cluster.api("PUT", path, config)
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
                self.cluster.api("POST", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
                                 config)
            for host in hosts:
                _poll(lambda h=host: self._probe(h), 30, f"image check webhook for {host}")  # type: ignore[misc]

    def _serve(self) -> bytes:
        """Start the webhook's HTTPS server once (a self-signed certificate for 127.0.0.1); its CA bundle."""
        cert, key = self.cluster.workdir / "image-check.crt", self.cluster.workdir / "image-check.key"
        if self._admission is None:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                            "-subj", "/CN=testbed-image-check", "-addext", "subjectAltName=IP:127.0.0.1",
                            "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self._admission = _AdmissionServer(self, context)
            threading.Thread(target=self._admission.serve_forever, name="testbed-image-check-webhook",
                             daemon=True).start()
        return cert.read_bytes()

    def _probe(self, host: str) -> bool:
        """A server-side dry-run pod with an image ``host`` lacks comes back with the backoff verdict."""
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "image-check-probe-"},
               "spec": {"containers": [{"name": "probe", "image": f"{host}/testbed-image-check/absent:none"}]}}
        made = self.cluster.api("POST", "/api/v1/namespaces/default/pods?dryRun=All", pod)
        return bool((made["metadata"].get("annotations") or {}).get(IMAGE_PULL) == "backoff")

    def admission_patch(self, pod: dict[str, Any]) -> list[dict[str, Any]]:
        """JSONPatch operations adding the image-pull verdict to a new pod whose images all name a registry and
        some a checked one (a pod with an unqualified image is decided once bound: that needs its node)."""
        containers = (pod.get("spec") or {}).get("containers") or []
        annotations = (pod.get("metadata") or {}).get("annotations")
        if not containers or any(is_unqualified(str(c.get("image", ""))) for c in containers) \
                or IMAGE_PULL in (annotations or {}):  # decided once bound, or by a scenario
            return []
        missing = missing_images(pod, {}, set(self.cluster.check_registries), manifest_exists)
        if missing is None:
            return []
        ann = {IMAGE_PULL: "backoff", MISSING_IMAGES: ",".join(missing)} if missing else {IMAGE_PULL: "ok"}
        if annotations is None:
            return [{"op": "add", "path": "/metadata/annotations", "value": ann}]
        return [{"op": "add", "path": "/metadata/annotations/" + k.replace("~", "~0").replace("/", "~1"), "value": v}
                for k, v in ann.items()]

    def stop(self) -> None:
        self._stopped.set()
        if self._admission is not None:
            self._admission.shutdown()
            self._admission.server_close()
        conn = self._conn
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)  # wakes the watch read at once
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                if self._rv is None:
                    self._rv = self._sync()
                self._watch()
            except TimeoutError:
                pass  # a second without events: watch again from the last resourceVersion seen
            except Exception:  # apiserver restarting or stopping: relist
                self._rv = None
                self._stopped.wait(0.5)

    def _sync(self) -> str:
        pods = self.cluster.api("GET", f"/api/v1/pods?fieldSelector={BOUND}")
        for pod in pods["items"]:
            self._check(pod)
        return str(pods["metadata"]["resourceVersion"])

    def _watch(self) -> None:
        """Handle pod events until the watch ends. Raises TimeoutError after a second without events
        (so that ``stop`` is noticed even if it came before the socket existed)."""
        host, port = self.cluster.server.removeprefix("https://").split(":")
        self._conn = conn = http.client.HTTPSConnection(host, int(port), context=self.cluster.ssl_context(),
                                                        timeout=1)
        try:
            conn.request("GET", f"/api/v1/pods?watch=1&allowWatchBookmarks=true&fieldSelector={BOUND}"
                         f"&resourceVersion={self._rv}", headers={"Authorization": f"Bearer {self.cluster.token}"})
            for line in conn.getresponse():
                event = json.loads(line)
                if event["type"] == "ERROR":  # e.g. 410 Gone: relist
                    self._rv = None
                    return
                self._rv = event["object"]["metadata"]["resourceVersion"]
                if event["type"] in ("ADDED", "MODIFIED"):
                    self._check(event["object"])
        finally:
            conn.close()

    def _check(self, pod: dict[str, Any]) -> None:
        with contextlib.suppress(urllib.error.HTTPError):  # pod or node gone, or a pod on no real node
            self._annotate(pod)

    def _annotate(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        if IMAGE_PULL in (meta.get("annotations") or {}) or meta.get("deletionTimestamp"):
            return
        node = self.cluster.api("GET", f"/api/v1/nodes/{pod['spec']['nodeName']}")
        missing = missing_images(pod, node, set(self.cluster.check_registries), manifest_exists)
        if missing is None:
            return
        ann = {IMAGE_PULL: "backoff", MISSING_IMAGES: ",".join(missing)} if missing else {IMAGE_PULL: "ok"}
        self.cluster.api("PATCH", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                         {"metadata": {"annotations": ann}}, content_type="application/merge-patch+json")


def _webhook_config(url: str, ca: bytes, hosts: list[str]) -> dict[str, Any]:
    """The MutatingWebhookConfiguration sending the creation of pods with an image of ``hosts`` to ``url``."""
    names = " || ".join(f"c.image.startsWith({json.dumps(h + '/')})" for h in hosts)
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": WEBHOOK},
            "webhooks": [{"name": "image-check.testbed.kubeshape.io",
                          "clientConfig": {"url": url, "caBundle": base64.b64encode(ca).decode()},
                          "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                                     "resources": ["pods"], "scope": "Namespaced"}],
                          "matchConditions": [{"name": "checked-registry",
                                               "expression": f"object.spec.containers.exists(c, {names})"}],
                          "failurePolicy": "Ignore", "sideEffects": "None", "timeoutSeconds": 10,
                          "admissionReviewVersions": ["v1"], "reinvocationPolicy": "Never"}]}


# --- process bookkeeping: <workdir>/pids holds "name pid starttime" lines

def process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (None if gone or a zombie): guards against recycled pids."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]


def record_pid(workdir: Path, name: str, pid: int) -> None:
    with (workdir / PIDFILE).open("a") as fh:
        fh.write(f"{name} {pid} {process_start_time(pid)}\n")


def recorded_pids(workdir: Path) -> list[tuple[str, int, str]]:
    path = workdir / PIDFILE
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines()]
    return [(r[0], int(r[1]), r[2]) for r in rows if len(r) == 3]


def kill_recorded(workdir: Path, timeout: float = 10) -> list[str]:
    """Kill the process groups recorded in ``workdir`` that still run (newest first); their names."""
    killed = []
    for name, pid, started in reversed(recorded_pids(workdir)):
        if process_start_time(pid) != started:
            continue
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + timeout
            while process_start_time(pid) == started and time.monotonic() < deadline:
                time.sleep(0.05)
            if process_start_time(pid) != started:
                break
        killed.append(name)
    return killed


def _start_reaper(workdir: Path) -> subprocess.Popen[bytes]:
    """A process that waits for EOF on its stdin (our end closes when we exit or die) and then kills
    whatever is recorded in ``workdir``."""
    return subprocess.Popen([sys.executable, "-m", "testbed", "down", "--dir", str(workdir), "--after-stdin-eof"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=HERE.parent, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(HERE.parent)})


# --- readiness

def _poll(check: Callable[[], bool], timeout: float, what: str, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited while waiting for {what}:\n{proc.tail()}")
        try:
            if check():
                return
        except Exception:  # any error means "not ready yet"
            pass
        time.sleep(0.1)
    tail = f":\n{proc.tail()}" if proc else ""
    raise RuntimeError(f"{what} not ready after {timeout:.0f}s{tail}")


def _get(url: str, *, context: ssl.SSLContext | None = None, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(req, timeout=2, context=context) as resp:
        return str(resp.read().decode())


def _insecure() -> ssl.SSLContext:
    """For the self-signed health endpoints of controller-manager and scheduler (loopback only)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _node_ready(node: Mapping[str, Any]) -> bool:
    """Ready, and schedulable: the TaintNodesByCondition admission plugin adds a not-ready taint
    at create time, which the node-lifecycle controller removes up to 5s after kwok marks the node Ready."""
    conds = node.get("status", {}).get("conditions") or []
    taints = {t["key"] for t in node.get("spec", {}).get("taints") or []}
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds) and not taints & NOT_READY_TAINTS


# --- start

@dataclass
class _Ports:
    etcd: int = field(default_factory=free_port)
    etcd_peer: int = field(default_factory=free_port)
    apiserver: int = field(default_factory=free_port)
    kcm: int = field(default_factory=free_port)
    scheduler: int = field(default_factory=free_port)
    kwok: int = field(default_factory=free_port)


def _etcd_argv(w: Path, p: _Ports) -> list[str]:
    client, peer = f"http://127.0.0.1:{p.etcd}", f"http://127.0.0.1:{p.etcd_peer}"
    return [str(binary("etcd")), "--name=testbed", f"--data-dir={w / 'etcd-data'}",
            f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=testbed={peer}", "--unsafe-no-fsync", "--log-level=warn",
            "--listen-metrics-urls=", "--quota-backend-bytes=1073741824"]


def _apiserver_argv(w: Path, p: _Ports) -> list[str]:
    return [str(binary("kubernetes", "kube-apiserver")), f"--etcd-servers=http://127.0.0.1:{p.etcd}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={p.apiserver}",
            f"--cert-dir={w / 'certs'}", f"--token-auth-file={w / 'tokens.csv'}",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={w / 'sa.key'}", f"--service-account-signing-key-file={w / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--allow-privileged=true",
            "--endpoint-reconciler-type=none"]


def _kcm_argv(w: Path, p: _Ports, ca_file: Path) -> list[str]:
    return [str(binary("kubernetes", "kube-controller-manager")), f"--kubeconfig={w / 'kubeconfig'}",
            "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={p.kcm}",
            f"--service-account-private-key-file={w / 'sa.key'}", f"--root-ca-file={ca_file}",
            "--use-service-account-credentials=false", "--horizontal-pod-autoscaler-sync-period=5s",
            f"--controllers={CONTROLLERS}"]


def _scheduler_argv(w: Path, p: _Ports) -> list[str]:
    return [str(binary("kubernetes", "kube-scheduler")), f"--kubeconfig={w / 'kubeconfig'}",
            "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={p.scheduler}"]


def _kwok_argv(w: Path, p: _Ports) -> list[str]:
    stages = [f"--config={f}" for f in sorted(KWOK_STAGES.glob("*.yaml"))]
    # Without --node-lease-duration-seconds kwok keeps no Leases and its heartbeat stage runs every ~10
    # minutes: the node-lifecycle controller turns the nodes Unknown (and taints them) every ~50s.
    return [str(binary("kwok")), f"--kubeconfig={w / 'kubeconfig'}", "--manage-all-nodes=true", *stages,
            f"--cidr={POD_CIDR}", "--node-ip=127.0.0.1", f"--server-address=127.0.0.1:{p.kwok}",
            "--node-lease-duration-seconds=40"]


def _write_credentials(w: Path) -> str:
    token = secrets.token_hex(16)
    (w / "tokens.csv").write_text(f'{token},kubeshape-admin,kubeshape-admin,"system:masters"\n')
    subprocess.run(["openssl", "genrsa", "-out", str(w / "sa.key"), "2048"], check=True, capture_output=True)
    return token


def _write_kubeconfig(path: Path, server: str, token: str, ca_file: Path) -> None:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "testbed",
        "clusters": [{"name": "testbed", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "testbed", "context": {"cluster": "testbed", "user": "admin"}}],
    }, indent=2))


class _Starter:
    """Starts processes, records their pids and start times, stops them all if startup fails."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: dict[str, Proc] = {}
        self.started: dict[str, float] = {}
        self.timings: dict[str, float] = {}

    def start(self, name: str, argv: list[str]) -> Proc:
        proc = start(name, argv, self.workdir)
        self.procs[name], self.started[name] = proc, time.monotonic()
        record_pid(self.workdir, name, proc.popen.pid)
        return proc

    def wait(self, name: str, check: Callable[[], bool], timeout: float = 120) -> None:
        _poll(check, timeout, f"{name} readiness", self.procs[name])
        self.timings[name] = round(time.monotonic() - self.started[name], 3)

    def abort(self) -> None:
        for proc in reversed(self.procs.values()):
            proc.stop()


def start_cluster(workdir: Path, *, nodes: list[NodeSpec] | None = None, timeout: float = 120) -> Cluster:
    """Start the control plane in ``workdir`` (logs, certs, kubeconfig, pids), wait until every component
    is ready (default ServiceAccount present, nodes Ready) and return it. Call from a long-lived thread."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / PIDFILE).unlink(missing_ok=True)
    t0 = time.monotonic()
    ports, run = _Ports(), _Starter(workdir)
    reaper = _start_reaper(workdir)
    try:
        cluster = _start(workdir, ports, run, timeout)
    except BaseException:
        run.abort()
        reaper.stdin.close()  # type: ignore[union-attr]
        raise
    cluster._reaper = reaper
    atexit.register(cluster.stop)
    cluster.timings["control-plane"] = round(time.monotonic() - t0, 3)
    if nodes:
        t1 = time.monotonic()
        try:
            cluster.create_nodes(nodes)
        except BaseException:
            cluster.stop()
            raise
        cluster.timings["nodes"] = round(time.monotonic() - t1, 3)
    return cluster


def _start(w: Path, ports: _Ports, run: _Starter, timeout: float) -> Cluster:
    run.start("etcd", _etcd_argv(w, ports))
    token = _write_credentials(w)  # overlaps etcd's startup
    server, ca_file = f"https://127.0.0.1:{ports.apiserver}", w / "certs" / "apiserver.crt"
    # The apiserver retries etcd while it sets itself up: no need to wait for etcd first.
    run.start("kube-apiserver", _apiserver_argv(w, ports))
    run.wait("etcd", lambda: '"health":"true"' in _get(f"http://127.0.0.1:{ports.etcd}/health"), timeout)
    run.wait("kube-apiserver", lambda: _get(f"{server}/readyz", token=token, context=_ca_context(ca_file)) == "ok",
             timeout)
    _write_kubeconfig(w / "kubeconfig", server, token, ca_file)
    cluster = Cluster(w, server, token, ca_file, w / "kubeconfig", versions()["kubernetes"], run.procs, run.timings)

    run.start("kube-controller-manager", _kcm_argv(w, ports, ca_file))
    run.start("kube-scheduler", _scheduler_argv(w, ports))
    run.start("kwok", _kwok_argv(w, ports))
    checks: dict[str, Callable[[], bool]] = {
        # healthz answers before the controllers run; pods can be created once the default SA exists
        "kube-controller-manager": lambda: _get(f"https://127.0.0.1:{ports.kcm}/healthz", context=_insecure())
        == "ok" and bool(cluster.api("GET", "/api/v1/namespaces/default/serviceaccounts/default")),
        "kube-scheduler": lambda: _get(f"https://127.0.0.1:{ports.scheduler}/readyz", context=_insecure()) == "ok",
        "kwok": lambda: _get(f"http://127.0.0.1:{ports.kwok}/healthz") == "ok",
    }
    with ThreadPoolExecutor(len(checks)) as pool:
        for f in [pool.submit(run.wait, name, check, timeout) for name, check in checks.items()]:
            f.result()
    cluster._image_check = ImageCheck(cluster)
    cluster._image_check.start()
    return cluster


def _ca_context(ca_file: Path) -> ssl.SSLContext:
    # The serving cert appears in cert-dir a moment after the apiserver starts; until then this raises.
    return ssl.create_default_context(cafile=str(ca_file))


