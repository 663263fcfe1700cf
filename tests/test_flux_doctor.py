"""doctor reads Flux: snapshots and bundles carry Flux's objects with their status, the family-2 Flux rules
(KS206-KS211) on objects shaped like the real controllers' (fast), and against real Flux controllers
reconciling a loopback git server into the test bed's cluster (live)."""

from __future__ import annotations

import copy
import json
import secrets
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from kubeshape.config import Config
from kubeshape.engine import run
from kubeshape.inventory import ClusterSource, GitSource, Inventory, RepoSource, api_group
from kubeshape.sources.bundle import add_list, load_bundle
from kubeshape.sources.bundle_writer import bundle_members, write_bundle
from kubeshape.sources.live import KINDS, Collection, to_cluster
from kubeshape.timeutil import parse_time

NOW = "2025-11-17T10:00:00Z"
SHA1 = "fcc9b14d17e811063eda046825938572b4a06575"
SHA2 = "9a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
URL = "https://github.com/pesuga/homelab.git"
SOURCE_V1 = "source.toolkit.fluxcd.io/v1"
KUSTOMIZE_V1 = "kustomize.toolkit.fluxcd.io/v1"
HELM_V2 = "helm.toolkit.fluxcd.io/v2"
PLURALS = {"GitRepository": "gitrepositories", "OCIRepository": "ocirepositories", "HelmRepository": "helmrepositories",
           "Kustomization": "kustomizations", "HelmRelease": "helmreleases", "Deployment": "deployments",
           "ConfigMap": "configmaps", "Service": "services", "Pod": "pods", "ReplicaSet": "replicasets",
           "Secret": "secrets"}
FLUX_RULES = {"KS206", "KS207", "KS208", "KS210", "KS211"}


# -- objects shaped like Flux v2.x (source-controller / kustomize-controller v1.x) writes them ---------------------
def cond(kind: str, status: str, reason: str, message: str, since: str = "2025-11-17T09:00:00Z") -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": since,
            "observedGeneration": 1}


def rev(sha: str = SHA1, branch: str = "main") -> str:
    return f"{branch}@sha1:{sha}"


def mf(manager: str, operation: str, when: str, fields: dict[str, Any] | None = None,
       subresource: str | None = None) -> dict[str, Any]:
    """A managedFields entry as the API server writes it."""
    entry: dict[str, Any] = {"manager": manager, "operation": operation, "apiVersion": "v1", "time": when,
                             "fieldsType": "FieldsV1", "fieldsV1": fields or {}}
    if subresource:
        entry["subresource"] = subresource
    return entry


def meta(name: str, ns: str, created: str = "2025-11-10T08:00:00Z", **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": ns, "uid": f"uid-{ns}-{name}", "generation": 1, "resourceVersion": "1",
            "creationTimestamp": created, **extra}


def git_repository(name: str = "homelab", ns: str = "flux-system", *, url: str = URL, branch: str = "main",
                   sha: str | None = SHA1, ready: bool = True, reason: str = "Succeeded", message: str = "",
                   since: str = "2025-11-17T09:00:00Z", interval: str = "1m0s", suspend: bool = False,
                   fetched: str = "2025-11-17T09:00:00Z",
                   managed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"observedGeneration": 1 if ready else -1, "conditions": []}
    if sha is not None:
        status["artifact"] = {"revision": rev(sha, branch), "lastUpdateTime": fetched, "digest": "sha256:cbad",
                              "path": f"gitrepository/{ns}/{name}/{sha}.tar.gz", "size": 383,
                              "url": f"http://source-controller.flux-system.svc.cluster.local./gitrepository/{ns}/"
                                     f"{name}/{sha}.tar.gz"}
    if ready:
        msg = message or f"stored artifact for revision '{rev(sha or SHA1, branch)}'"
        status["conditions"] = [cond("Ready", "True", reason, msg, since),
                                cond("ArtifactInStorage", "True", reason, msg, since)]
    else:
        status["conditions"] = [cond("Reconciling", "True", "ProgressingWithRetry", "building artifact", since),
                                cond("Ready", "False", reason, message, since),
                                cond("FetchFailed", "True", reason, message, since)]
    spec: dict[str, Any] = {"interval": interval, "ref": {"branch": branch}, "timeout": "60s", "url": url}
    if suspend:
        spec["suspend"] = True
    return {"apiVersion": SOURCE_V1, "kind": "GitRepository",
            "metadata": meta(name, ns, finalizers=["finalizers.fluxcd.io"], managedFields=managed or []),
            "spec": spec, "status": status}


def kustomization(name: str = "apps", ns: str = "flux-system", *, source: str = "homelab", path: str = "./apps",
                  target: str | None = "homelab", applied: str | None = rev(), attempted: str | None = None,
                  ready: str = "True", reason: str = "ReconciliationSucceeded", message: str | None = None,
                  since: str = "2025-11-17T09:00:00Z", interval: str = "10m0s", inventory: list[str] | None = None,
                  suspend: bool = False, depends_on: list[str] | None = None, labels: dict[str, str] | None = None,
                  managed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"interval": interval, "path": path, "prune": True, "force": False,
                            "sourceRef": {"kind": "GitRepository", "name": source}}
    if target:
        spec["targetNamespace"] = target
    if suspend:
        spec["suspend"] = True
    if depends_on:
        spec["dependsOn"] = [{"name": d} for d in depends_on]
    text = message if message is not None else f"Applied revision: {applied}"
    status: dict[str, Any] = {"observedGeneration": 1 if ready == "True" else -1,
                              "conditions": [cond("Ready", ready, reason, text, since)]}
    if ready != "True":
        status["conditions"].insert(0, cond("Reconciling", "True", "ProgressingWithRetry", "Building manifests",
                                            since))
    if applied:
        status["lastAppliedRevision"] = applied
    if attempted or applied:
        status["lastAttemptedRevision"] = attempted or applied
    if inventory is not None:
        status["inventory"] = {"entries": [{"id": i, "v": "v1"} for i in inventory]}
    return {"apiVersion": KUSTOMIZE_V1, "kind": "Kustomization",
            "metadata": meta(name, ns, labels=labels or {}, finalizers=["finalizers.fluxcd.io"],
                             managedFields=managed or []),
            "spec": spec, "status": status}


def helm_repository(name: str = "bitnami", ns: str = "flux-system", *, ready: bool = True, reason: str = "Succeeded",
                    message: str = "stored artifact: revision 'sha256:1d2c'") -> dict[str, Any]:
    status: dict[str, Any] = {"observedGeneration": 1, "conditions": [
        cond("Ready", "True" if ready else "False", reason, message)]}
    if ready:
        status["artifact"] = {"revision": "sha256:1d2c", "lastUpdateTime": "2025-11-17T09:00:00Z", "url": "http://x"}
    return {"apiVersion": SOURCE_V1, "kind": "HelmRepository", "metadata": meta(name, ns),
            "spec": {"interval": "1h0m0s", "url": "https://charts.bitnami.com/bitnami"}, "status": status}


def helm_release(name: str = "redis", ns: str = "homelab", *, repo: str = "bitnami", ready: bool = True,
                 reason: str = "UpgradeSucceeded", message: str = "Helm upgrade succeeded") -> dict[str, Any]:
    return {"apiVersion": HELM_V2, "kind": "HelmRelease", "metadata": meta(name, ns),
            "spec": {"interval": "10m0s", "releaseName": name,
                     "chart": {"spec": {"chart": "redis", "version": "18.x",
                                        "sourceRef": {"kind": "HelmRepository", "name": repo,
                                                      "namespace": "flux-system"}}},
                     "values": {"auth": {"password": "S3CR3T-CANARY-helm-value"}, "replica": {"replicaCount": 1}}},
            "status": {"observedGeneration": 1, "lastAttemptedRevision": "18.1.0",
                       "conditions": [cond("Ready", "True" if ready else "False", reason, message)]}}


def flux_labels(ks: str = "apps", ns: str = "flux-system") -> dict[str, str]:
    return {"kustomize.toolkit.fluxcd.io/name": ks, "kustomize.toolkit.fluxcd.io/namespace": ns}


def web_deployment(ns: str = "homelab", image: str = "registry.example/web:1", *, labels: dict[str, str] | None = None,
                   managed: list[dict[str, Any]] | None = None, name: str = "web") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": meta(name, ns, labels=labels or {}, annotations={"deployment.kubernetes.io/revision": "2"},
                             managedFields=managed or []),
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": image}]}}},
            "status": {"replicas": 1, "readyReplicas": 1, "observedGeneration": 1}}


IMAGE_FIELDS: dict[str, Any] = {
    "f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"app"}': {"f:image": {}}}}}}}
FLUX_APPLY = mf("kustomize-controller", "Apply", "2025-11-17T09:00:00Z", {
    "f:metadata": {"f:labels": {"f:kustomize.toolkit.fluxcd.io/name": {},
                                "f:kustomize.toolkit.fluxcd.io/namespace": {}}},
    "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {'k:{"name":"app"}': {
        ".": {}, "f:image": {}, "f:name": {}}}}}}})
KCM_STATUS = mf("kube-controller-manager", "Update", "2025-11-17T09:00:05Z",
                {"f:metadata": {"f:annotations": {"f:deployment.kubernetes.io/revision": {}}},
                 "f:status": {"f:replicas": {}}}, subresource="status")


def configmap(name: str, ns: str = "homelab", *, labels: dict[str, str] | None = None,
              annotations: dict[str, str] | None = None, managed: list[dict[str, Any]] | None = None,
              owners: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    m = meta(name, ns, labels=labels or {}, annotations=annotations or {}, managedFields=managed or [])
    if owners:
        m["ownerReferences"] = owners
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": m, "data": {"greeting": "hello"}}


def healthy_world() -> list[dict[str, Any]]:
    """A Flux tree that works: one GitRepository, one Kustomization applying a Deployment into homelab."""
    return [git_repository(), kustomization(inventory=["homelab_web_apps_Deployment", "_homelab__Namespace"]),
            web_deployment(labels=flux_labels(), managed=[FLUX_APPLY, KCM_STATUS]),
            configmap("kube-root-ca.crt", managed=[mf("kube-controller-manager", "Update", "2025-11-10T08:00:00Z",
                                                      {"f:data": {".": {}, "f:ca.crt": {}}})])]


# -- building sources the way collection does ---------------------------------------------------------------------
def _spec_for(kind: str, group: str) -> Any:
    return next((s for s in KINDS if s.kind == kind and s.group == group), None)


def lists_of(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Kubernetes List bodies per (kind, group): typed, with the items of Kubernetes' own kinds stripped of
    kind/apiVersion as the API server sends them."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in objects:
        raw = copy.deepcopy(raw)
        kind, api = raw["kind"], raw["apiVersion"]
        group = api_group(api)
        doc = out.setdefault((kind, group), {"kind": f"{kind}List", "apiVersion": api,
                                             "metadata": {"resourceVersion": "7"}, "items": []})
        if "fluxcd.io" not in group:
            raw.pop("kind")
            raw.pop("apiVersion")
        doc["items"].append(raw)
    return out


def cluster_of(objects: list[dict[str, Any]], now: str = NOW,
               listed: tuple[tuple[str, str], ...] = ()) -> ClusterSource:
    """A ClusterSource built through ``add_list``, the path a live collection and a bundle take."""
    src = ClusterSource(name="lab", collected_at=parse_time(now))
    for (kind, group), doc in lists_of(objects).items():
        add_list(src, kind, doc["items"], group=group)
    for kind, group in listed:
        add_list(src, kind, [], group=group)
    return src


FLUX_LISTED = (("GitRepository", "source.toolkit.fluxcd.io"), ("Kustomization", "kustomize.toolkit.fluxcd.io"),
               ("HelmRelease", "helm.toolkit.fluxcd.io"), ("HelmRepository", "source.toolkit.fluxcd.io"))


def inv_of(objects: list[dict[str, Any]], *, repo: RepoSource | None = None, git: GitSource | None = None,
           now: str = NOW, listed: tuple[tuple[str, str], ...] = FLUX_LISTED) -> Inventory:
    return Inventory(cluster=cluster_of(objects, now, listed), repo=repo, git=git, now=parse_time(now))


def by_rule(findings: list[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = defaultdict(list)
    for f in findings:
        out[f.rule].append(f)
    return out


# == fast: the rules through the engine =============================================================================
def test_healthy_flux_gives_no_flux_finding() -> None:
    findings = run(inv_of(healthy_world()), Config()).findings
    assert [f for f in findings if f.family == 2] == []


def test_kustomization_blocked_by_its_failing_gitrepository_is_one_finding_on_the_source() -> None:
    broken = git_repository(ready=False, sha=None, reason="GitOperationFailed",
                            message="failed to checkout and determine revision: unable to clone "
                                    f"'{URL}': couldn't find remote ref \"refs/heads/main\"")
    waiting = kustomization(applied=None, ready="False", reason="ArtifactFailed",
                            message="Source artifact not found, retrying in 30s")
    found = by_rule(run(inv_of([broken, waiting]), Config()).findings)
    [f] = found["KS206"]
    assert f.object is not None and (f.object.kind, f.object.name) == ("GitRepository.source.toolkit.fluxcd.io",
                                                                       "homelab")
    text = "\n".join(f.evidence)
    assert "GitOperationFailed" in f.message and "couldn't find remote ref" in text
    assert "blocks Kustomization flux-system/apps: Ready=False ArtifactFailed: Source artifact not found" in text
    assert f"git ls-remote {URL} main" in f.fix
    assert "KS208" not in found  # the lag is this failure's consequence, not a second problem


def test_dependency_chain_points_at_the_first_failure() -> None:
    infra = kustomization("infra", path="./infra", ready="False", reason="BuildFailed",
                          message="kustomize build failed: accumulating resources: 'infra/missing.yaml': no such file",
                          attempted=rev(SHA2))
    apps = kustomization("apps", ready="False", reason="DependencyNotReady",
                         message="dependency 'flux-system/infra' is not ready", depends_on=["infra"])
    monitoring = kustomization("monitoring", path="./monitoring", ready="False", reason="DependencyNotReady",
                               message="dependency 'flux-system/apps' is not ready", depends_on=["apps"])
    [f] = by_rule(run(inv_of([git_repository(), infra, apps, monitoring]), Config()).findings)["KS206"]
    assert f.object is not None and f.object.name == "infra"
    text = "\n".join(f.evidence)
    assert "blocks Kustomization flux-system/apps" in text and "blocks Kustomization flux-system/monitoring" in text
    assert f"lastAttemptedRevision: {rev(SHA2)}" in text and "path: ./infra" in text
    assert "kustomize build ./infra" in f.fix and f"git checkout {SHA2[:12]}" in f.fix


def test_managed_fields_keep_field_paths_of_updates_and_nothing_of_secrets() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "data": {"token": "UzNDUjNU"},
              "metadata": meta("creds", "homelab", managedFields=[mf("kubectl-edit", "Update", NOW,
                                                                     {"f:data": {"f:token": {}}})])}
    many: dict[str, Any] = {f"f:k{i}": {} for i in range(40)}
    dep = web_deployment(labels=flux_labels(), managed=[
        FLUX_APPLY, KCM_STATUS, mf("kubectl-set", "Update", "2025-11-17T09:30:00Z", IMAGE_FIELDS),
        mf("kubectl-scale", "Update", "2025-11-17T09:31:00Z", {"f:spec": {"f:replicas": {}}}, subresource="scale"),
        mf("kubectl-annotate", "Update", "2025-11-17T09:32:00Z", {"f:metadata": {"f:annotations": many}})])
    src = cluster_of([secret, dep])
    [live_secret] = src.objects["Secret"]
    assert "managedFields" not in live_secret.metadata and "UzNDUjNU" not in json.dumps(live_secret.raw)
    [d] = src.objects["Deployment"]
    entries = {m["manager"]: m for m in d.metadata["managedFields"]}
    assert entries["kubectl-set"]["fields"] == ['spec.template.spec.containers[{"name":"app"}].image']
    assert "fields" not in entries["kustomize-controller"]  # an Apply: Flux's own field set is not evidence
    assert "fields" not in entries["kubectl-scale"] and entries["kubectl-scale"]["subresource"] == "scale"
    assert len(entries["kubectl-annotate"]["fields"]) == 32 and entries["kubectl-annotate"]["fieldsTruncated"] == 8
    assert all("fieldsV1" not in m for m in d.metadata["managedFields"])


def test_flux_kinds_are_keyed_by_group_and_helm_values_are_redacted() -> None:
    other = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
             "metadata": meta("not-flux", "homelab")}
    src = cluster_of([kustomization(), other, helm_release()])
    assert [o.name for o in src.objects["Kustomization.kustomize.toolkit.fluxcd.io"]] == ["apps"]
    assert [o.name for o in src.objects["Kustomization"]] == ["not-flux"]
    [hr] = src.objects["HelmRelease.helm.toolkit.fluxcd.io"]
    assert hr.spec["values"]["auth"]["password"] == "<redacted>" and hr.spec["values"]["replica"]["replicaCount"] == 1
    inv = Inventory(cluster=src)
    assert inv.live("HelmRelease") == []  # image rules keep reading HelmReleases from the repository only


def test_existing_rules_leave_flux_managed_objects_to_the_flux_rules(tmp_path: Path) -> None:
    from kubeshape.sources.repo import load_repo

    (tmp_path / "apps").mkdir()
    (tmp_path / "apps/web.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: homelab\nspec:\n  replicas: 1\n"
        "  template:\n    spec:\n      containers:\n      - name: app\n        image: registry.example/web:1\n")
    repo = load_repo([Path(".")], tmp_path)
    changed = web_deployment(image="registry.example/web:debug", labels=flux_labels(), managed=[
        FLUX_APPLY, KCM_STATUS, mf("kubectl-set", "Update", "2025-11-17T09:30:00Z", IMAGE_FIELDS)])
    by_hand = web_deployment(name="scratch", managed=[mf("kubectl-create", "Update", "2025-11-17T09:40:00Z",
                                                         {"f:spec": {"f:replicas": {}}})])
    objects = [git_repository(), kustomization(inventory=["homelab_web_apps_Deployment"]), changed, by_hand]
    found = by_rule(run(inv_of(objects, repo=repo), Config()).findings)
    assert "KS203" not in found and "KS204" not in found  # said better below
    [drift] = found["KS211"]
    assert drift.file == "apps/web.yaml" and drift.line == 12
    [snowflake] = found["KS210"]
    assert snowflake.object is not None and snowflake.object.name == "scratch"


# == bundles: snapshot shape → doctor --bundle =====================================================================
def _collection(objects: list[dict[str, Any]], notes: list[str] | None = None) -> Collection:
    col = Collection(context="lab", server="https://127.0.0.1:6443", server_version="v1.34.0",
                     collected_at=parse_time(NOW) or None)  # type: ignore[arg-type]
    for (kind, group), doc in lists_of(objects).items():
        spec = _spec_for(kind, group)
        assert spec is not None, (kind, group)
        col.lists[spec] = doc
    col.notes = list(notes or [])
    return col


def _raw(src: ClusterSource) -> dict[str, list[dict[str, Any]]]:
    return {k: [o.raw for o in sorted(v, key=lambda o: o.key)] for k, v in sorted(src.objects.items())}


def test_bundle_round_trip_keeps_flux_objects_and_their_status(tmp_path: Path) -> None:
    blocked = kustomization("apps", ready="False", reason="ArtifactFailed", applied=rev(),
                            message="Source artifact not found, retrying in 30s",
                            inventory=["homelab_web_apps_Deployment"])
    objects = [git_repository(ready=False, reason="GitOperationFailed", message="authentication required"),
               blocked, kustomization("infra", path="./infra", suspend=True, inventory=[]),
               helm_repository(), helm_release(), web_deployment(labels=flux_labels(), managed=[
                   FLUX_APPLY, mf("kubectl-set", "Update", "2025-11-17T09:30:00Z", IMAGE_FIELDS)])]
    live = to_cluster(_collection(objects))
    col = _collection(objects)
    members = bundle_members(col)
    assert "resources/kustomizations.kustomize.toolkit.fluxcd.io.json" in members
    assert b"S3CR3T-CANARY-helm-value" not in b"".join(members.values())
    written = json.loads(members["resources/kustomizations.kustomize.toolkit.fluxcd.io.json"])
    apps = next(i for i in written["items"] if i["metadata"]["name"] == "apps")
    assert apps["status"]["inventory"]["entries"] == [{"id": "homelab_web_apps_Deployment", "v": "v1"}]
    assert apps["status"]["lastAppliedRevision"] == rev()
    bundle = write_bundle(tmp_path / "lab.tar.gz", members)

    loaded, _ = load_bundle(bundle)
    assert _raw(loaded) == _raw(live)
    assert {"GitRepository.source.toolkit.fluxcd.io", "Kustomization.kustomize.toolkit.fluxcd.io",
            "HelmRelease.helm.toolkit.fluxcd.io"} <= loaded.listed_kinds

    report = _doctor("doctor", "--bundle", str(bundle), "-o", "json")
    rules = {f["rule"] for f in report["findings"]}
    assert {"KS206", "KS207", "KS211"} <= rules
    [ks206] = [f for f in report["findings"] if f["rule"] == "KS206"]
    assert ks206["object"] == {"kind": "GitRepository.source.toolkit.fluxcd.io", "namespace": "flux-system",
                               "name": "homelab"}
    assert "authentication required" in ks206["message"]


def test_bundle_with_a_mistyped_flux_status_is_a_one_line_input_error(tmp_path: Path) -> None:
    col = _collection([kustomization()])
    members = bundle_members(col)
    doc = json.loads(members["resources/kustomizations.kustomize.toolkit.fluxcd.io.json"])
    doc["items"][0]["status"]["inventory"] = {"entries": "homelab_web_apps_Deployment"}
    members["resources/kustomizations.kustomize.toolkit.fluxcd.io.json"] = orjson.dumps(doc)
    bundle = write_bundle(tmp_path / "bad", members)
    proc = _ks("doctor", "--bundle", str(bundle), "-o", "json")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "kustomizations.kustomize.toolkit.fluxcd.io.json: items[0].status.inventory.entries: expected a list" \
        in lines[0]


def _ks(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubeshape", *args], capture_output=True, text=True, timeout=300,
                          check=False, cwd=cwd)


def _doctor(*args: str, cwd: Path | None = None) -> dict[str, Any]:
    proc = _ks(*args, cwd=cwd)
    assert proc.returncode in (0, 1), proc.stderr
    return dict(json.loads(proc.stdout))


# == live: real Flux controllers, a real git server, the real apiserver ===========================================
# (the fixtures `cluster`, `flux` and `git_server` start the real systems once, see tests/conftest.py)
LIVE_WAIT = 180.0  # seconds: an upper bound for a reconcile on a loaded 2-core machine
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: app
          image: homelab-dashboard:v3
"""
IMAGE_LINE = next(n for n, text in enumerate(DEPLOYMENT.splitlines(), 1) if "image:" in text)
SETTINGS = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  greeting: {greeting}
"""
BROKEN = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - web.yaml
  - missing.yaml
"""


@pytest.fixture
def flux_ns(cluster: Any) -> Iterator[str]:
    """A namespace of its own for the test's Flux objects and what they apply; Flux's objects are deleted while
    the controllers run (their finalizers prune), then the namespace."""
    name = f"x-{secrets.token_hex(3)}"
    yield name
    for kind in ("kustomizations.kustomize.toolkit.fluxcd.io", "gitrepositories.source.toolkit.fluxcd.io"):
        cluster.kubectl("delete", kind, "--all", "-n", name, "--timeout=60s", check=False, timeout=90)
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _live(cluster: Any, ns: str, *extra: str) -> dict[str, Any]:
    return _doctor("doctor", "--kubeconfig", str(cluster.kubeconfig), "-n", ns, "-o", "json", "--fail-on", "never",
                   *extra)


def _of(report: dict[str, Any], rule: str) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["rule"] == rule]


def _patch(cluster: Any, path: str, body: dict[str, Any], manager: str, kind: str = "merge") -> None:
    cluster.api("PATCH", f"{path}?fieldManager={manager}", body, content_type=f"application/{kind}-patch+json")


def test_live_build_failure_and_suspension(cluster: Any, flux: Any, git_server: Any, flux_ns: str,
                                           tmp_path: Path) -> None:
    from testbed.gitops import KUSTOMIZE_API, GitOpsSource, condition, wait_for

    src = GitOpsSource.create(cluster, git_server, tmp_path / "checkout", name="homelab", namespace=flux_ns,
                              files={"apps/web.yaml": DEPLOYMENT, "broken/web.yaml": DEPLOYMENT,
                                     "broken/kustomization.yaml": BROKEN,
                                     "paused/settings.yaml": SETTINGS.format(greeting="hello")})
    sha = src.repo.head()
    for name in ("apps", "broken", "paused"):
        src.add_kustomization(name, path=f"./{name}", target_namespace=flux_ns)
    src.wait_applied("apps", sha, flux, LIVE_WAIT)
    src.wait_applied("paused", sha, flux, LIVE_WAIT)
    wait_for(lambda: (condition(src.kustomization("broken")) or {}).get("reason") == "BuildFailed", LIVE_WAIT,
             "Kustomization broken fails to build", flux, lambda: src.kustomization("broken"))
    _patch(cluster, f"{KUSTOMIZE_API}/namespaces/{flux_ns}/kustomizations/paused", {"spec": {"suspend": True}},
           "kubectl-patch")
    flux_message = (condition(src.kustomization("broken")) or {})["message"]

    report = _live(cluster, flux_ns)
    [failed] = _of(report, "KS206")
    assert failed["object"] == {"kind": "Kustomization.kustomize.toolkit.fluxcd.io", "namespace": flux_ns,
                                "name": "broken"}
    assert failed["severity"] == "error" and "BuildFailed" in failed["message"]
    assert f"message: {flux_message.splitlines()[0]}" in failed["evidence"]  # Flux's own words
    assert "missing.yaml" in flux_message and "path: ./broken" in failed["evidence"]
    assert f"lastAttemptedRevision: main@sha1:{sha}" in failed["evidence"]
    assert "kustomize build ./broken" in failed["fix"]
    [paused] = _of(report, "KS207")
    assert paused["object"]["name"] == "paused"
    assert any(e.startswith("spec.suspend: true, set by kubectl-patch at ") for e in paused["evidence"])
    assert f"flux resume kustomization paused -n {flux_ns}" in paused["fix"]
    assert _of(report, "KS208") == []  # nothing was pushed since: suspended, but not behind


def test_live_applied_by_hand_and_changed_behind_flux(cluster: Any, flux: Any, git_server: Any, flux_ns: str,
                                                      tmp_path: Path) -> None:
    from testbed.gitops import GitOpsSource

    checkout = tmp_path / "checkout"
    src = GitOpsSource.create(cluster, git_server, checkout, name="homelab", namespace=flux_ns,
                              files={"apps/web.yaml": DEPLOYMENT,
                                     "apps/settings.yaml": SETTINGS.format(greeting="hello")})
    sha = src.repo.head()
    src.add_kustomization("apps", path="./apps", target_namespace=flux_ns, interval="10m")
    src.wait_applied("apps", sha, flux, LIVE_WAIT)
    cluster.api("POST", f"/api/v1/namespaces/{flux_ns}/configmaps?fieldManager=kubectl-client-side-apply",
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "debug-flags"},
                 "data": {"verbose": "true"}})
    time.sleep(1.1)  # managedFields keep whole seconds: the edit must be visibly newer than Flux's apply
    _patch(cluster, f"/apis/apps/v1/namespaces/{flux_ns}/deployments/web",
           {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "homelab-dashboard:debug"}]}}}},
           "kubectl-set", kind="strategic-merge")

    report = _live(cluster, flux_ns, "--repo", str(checkout))
    [by_hand] = _of(report, "KS210")
    assert by_hand["object"] == {"kind": "ConfigMap", "namespace": flux_ns, "name": "debug-flags"}
    assert by_hand["severity"] == "warning"
    assert any(e.startswith("written by kubectl-client-side-apply (Update at ") for e in by_hand["evidence"])
    assert f"namespace {flux_ns} is managed by Flux: Kustomization {flux_ns}/apps (path ./apps)" in by_hand["evidence"]
    [changed] = _of(report, "KS211")
    assert changed["object"] == {"kind": "Deployment", "namespace": flux_ns, "name": "web"}
    assert "kubectl-set" in changed["message"] and "spec.template.spec.containers[name=app].image" in changed["message"]
    assert (changed["file"], changed["line"]) == ("apps/web.yaml", IMAGE_LINE)
    assert changed["fix"].startswith(f"commit this change to apps/web.yaml:{IMAGE_LINE} "
                                     "(spec.template.spec.containers[name=app].image), or Flux reverts it at the next "
                                     "reconcile in ≤ 10m")
    assert any("= homelab-dashboard:debug" in e and "sets it: homelab-dashboard:v3" in e for e in changed["evidence"])
    assert not [f for f in report["findings"] if f["rule"] in ("KS203", "KS204")]  # said by KS210/KS211

    without_repo = _of(_live(cluster, flux_ns), "KS211")
    assert [f["file"] for f in without_repo] == [None]
    assert "Flux reverts the fields the repository sets at the next reconcile in ≤ 10m" in without_repo[0]["fix"]


def test_live_kustomization_behind_the_pushed_head(cluster: Any, flux: Any, git_server: Any, flux_ns: str,
                                                   tmp_path: Path) -> None:
    from testbed.gitops import KUSTOMIZE_API, GitOpsSource, wait_for

    checkout = tmp_path / "checkout"
    src = GitOpsSource.create(cluster, git_server, checkout, name="homelab", namespace=flux_ns, interval="5s",
                              files={"apps/settings.yaml": SETTINGS.format(greeting="hello")})
    first = src.repo.head()
    src.add_kustomization("apps", path="./apps", target_namespace=flux_ns)
    src.wait_applied("apps", first, flux, LIVE_WAIT)
    _patch(cluster, f"{KUSTOMIZE_API}/namespaces/{flux_ns}/kustomizations/apps", {"spec": {"suspend": True}},
           "kubectl-patch")
    second = src.commit_and_push({"apps/settings.yaml": SETTINGS.format(greeting="bonjour")}, "bonjour")
    wait_for(lambda: ((src.git_repository() or {}).get("status") or {}).get("artifact", {}).get("revision")
             == f"main@sha1:{second}", LIVE_WAIT, "the GitRepository fetched the second commit", flux,
             src.git_repository)

    report = _live(cluster, flux_ns, "--repo", str(checkout))
    [behind] = _of(report, "KS208")
    assert behind["object"]["name"] == "apps"
    assert behind["message"] == (f"Kustomization {flux_ns}/apps is behind the head of origin/main: it runs "
                                 f"main@sha1:{first[:7]}")
    text = "\n".join(behind["evidence"])
    assert f"origin/main in the checkout ({checkout}) is at {second[:12]}" in text
    assert f"the cluster runs {first[:12]}" in text
    assert behind["fix"].startswith(f"flux resume kustomization apps -n {flux_ns}")
    # without the checkout only the source's revision is compared; no claim about a head nobody showed
    [plain] = _of(_live(cluster, flux_ns), "KS208")
    assert "checkout" not in "\n".join(plain["evidence"]) and "its source's revision" in plain["message"]


def test_live_older_crd_versions_are_listed_and_an_absent_product_is_one_note(cluster: Any) -> None:
    from kubeshape.sources.live import KindSpec, collect, connect
    from testbed.gitops import wait_for

    group = f"g{secrets.token_hex(3)}.kubeshape.test"
    crd = f"widgets.{group}"
    cluster.api("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": crd},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                 "versions": [{"name": "v1beta2", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}})
    try:
        def established() -> bool:
            obj = cluster.api("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}")
            return any(c["type"] == "Established" and c["status"] == "True"
                       for c in (obj.get("status") or {}).get("conditions") or [])

        wait_for(established, 60, f"CRD {crd} established")
        wait_for(lambda: _post_widget(cluster, group), 30, "a Widget created")
        kinds = (KindSpec("Widget", "widgets", group, optional=True, older=("v1beta2",)),
                 KindSpec("Gadget", "gadgets", f"a.{group}", optional=True, product="Gizmo"),
                 KindSpec("Doohickey", "doohickeys", f"b.{group}", optional=True, product="Gizmo"))
        api, _ = connect(cluster.kubeconfig, None)
        with api.http:
            col = collect(api, kinds=kinds, max_logs=0)
        [widgets] = [doc for spec, doc in col.lists.items() if spec.kind == "Widget"]
        assert widgets["apiVersion"] == f"{group}/v1beta2"
        assert [i["metadata"]["name"] for i in widgets["items"]] == ["w1"]
        assert col.notes == [f"Gizmo: not installed (no API of a.{group}, b.{group} is served)"]
        assert col.blind_spots == []
    finally:
        cluster.kubectl("delete", "crd", crd, "--wait=false", check=False)


def _post_widget(cluster: Any, group: str) -> bool:
    import urllib.error

    try:
        cluster.api("POST", f"/apis/{group}/v1beta2/namespaces/default/widgets",
                    {"apiVersion": f"{group}/v1beta2", "kind": "Widget", "metadata": {"name": "w1"}})
    except urllib.error.HTTPError as e:
        return e.code == 409  # created by an earlier attempt
    return True
