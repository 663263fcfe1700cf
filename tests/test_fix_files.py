"""``kubeshape fix`` on repositories shaped like real homelab / GitOps repos: the plan's file edits, applying them.

Each test writes a small git repository, loads it with kubeshape's own readers (as ``kubeshape fix --repo`` does,
with a registry snapshot where images are checked), plans the fixes of the findings ``analyse`` gives, and checks
the diff a user reviews. Plans that only change files are applied: the files change exactly as shown, one commit
names the rules and the findings, and analysing and planning again finds nothing left to fix for them.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from kubeshape.actions.fix.apply import apply_plan
from kubeshape.actions.fix.build import build_plan
from kubeshape.actions.fix.context import Options
from kubeshape.actions.fix.plan import Plan, Step
from kubeshape.analysis import analyse
from kubeshape.cli.app import load_sources
from kubeshape.config import Config
from kubeshape.errors import InputError
from kubeshape.findings import Finding, ObjectRef, Severity, finding_id
from kubeshape.inventory import Inventory

REGISTRY = "registry.lan:5000"
CONFIG = f'# kubeshape settings of the homelab repo\nregistries:\n  private: ["{REGISTRY}"]\n'


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True,
                          timeout=60).stdout


def make_repo(root: Path, files: dict[str, str]) -> Path:
    """A git work tree holding ``files``, committed."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Homelab Owner")
    git(root, "config", "user.email", "owner@homelab.example")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "manifests as they are")
    return root


def registry_snapshot(path: Path, tags: dict[str, list[str]]) -> Path:
    """A registry.json (the format ``kubeshape snapshot`` writes) of REGISTRY with these repositories and tags."""
    repos = [{"name": name, "tags": [{"tag": t, "digest": "sha256:" + f"{i:02x}{j:02x}" * 16,
                                      "created": "2026-01-05T10:00:00Z"} for j, t in enumerate(ts)]}
             for i, (name, ts) in enumerate(sorted(tags.items()))]
    path.write_bytes(orjson.dumps({"collectedAt": "2026-01-10T10:00:00Z",
                                   "registries": [{"host": REGISTRY, "repositories": repos}]}))
    return path


@dataclass
class Run:
    inv: Inventory
    cfg: Config
    findings: list[Finding]
    plan: Plan

    def by_rule(self, rule: str) -> list[Finding]:
        return [f for f in self.findings if f.rule == rule]

    def step_for(self, f: Finding) -> Step:
        (step,) = [s for s in self.plan.steps if finding_id(f) in s.findings]
        return step

    def skipped(self, f: Finding) -> str:
        (reason,) = [s.reason for s in self.plan.skipped if s.finding == finding_id(f)]
        return reason


def plan_repo(root: Path, snapshot: Path | None = None, options: Options | None = None) -> Run:
    """What ``kubeshape fix --repo root [--registry-snapshot snapshot]`` plans (no cluster)."""
    src = load_sources(root, None, snapshot, None)
    inv = src.inventories[0]
    report, _ = analyse(inv, src.cfg, command="fix")
    return Run(inv, src.cfg, report.findings, build_plan(inv, src.cfg, report.findings, root, options))


def identity(f: Finding) -> tuple[str, str, str, str]:
    """Rule, object, file and what in the object (the container and variable), without line numbers."""
    return f.rule, str(f.object), f.file or "", f.dedupe or f.message


def apply_and_check(root: Path, plan: Plan) -> str:
    """Apply a file-only plan; check the files are as the plan shows and one commit names its rules and findings.
    Returns the commit message."""
    head = git(root, "rev-parse", "HEAD").strip()
    outcome = apply_plan(plan, root, None)
    assert outcome.stopped is None
    assert outcome.applied == [s.id for s in plan.steps]
    changed = {fc.path: fc for s in plan.steps for fc in s.files}
    for path, fc in changed.items():
        if fc.after is None:
            assert not (root / path).exists(), path
        else:
            assert (root / path).read_bytes().decode() == fc.after, path
    assert git(root, "rev-list", "--count", f"{head}..HEAD").strip() == "1"
    assert outcome.commit == git(root, "rev-parse", "HEAD").strip()
    assert git(root, "status", "--porcelain") == ""
    assert set(git(root, "show", "--name-only", "--format=", "HEAD").split()) == set(changed)
    message = git(root, "log", "-1", "--format=%B")
    subject = message.splitlines()[0]
    for step in plan.steps:
        assert all(rule in subject for rule in step.rules), (subject, step.rules)
        assert all(fid in message for fid in step.findings), (message, step.findings)
    return message


def assert_fixed(root: Path, before: Run, fixed: list[Finding], snapshot: Path | None = None,
                 options: Options | None = None) -> Run:
    """Analyse and plan again: the fixed findings are gone, nothing new appeared, and no step changes a file."""
    after = plan_repo(root, snapshot, options)
    gone = {identity(f) for f in fixed}
    assert not gone & {identity(f) for f in after.findings}
    # KS403 (a registry tag nothing deploys any more) is the expected echo of deleting the copy that ran it
    new = {(f.rule, str(f.object)) for f in after.findings if f.rule != "KS403"} - \
        {(f.rule, str(f.object)) for f in before.findings}
    assert not new, new
    assert not [s for s in after.plan.steps if s.files], after.plan.steps
    return after


def deployment(name: str, namespace: str, container: str, image: str, extra: str = "") -> str:
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {namespace}
spec:
  replicas: 2
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
        - name: {container}
          image: {image}
{extra}"""


# -- KS201: one workload, several files ------------------------------------------------------------------------

BACKEND_SERVICE = """\
---
# the Service the dashboard talks to
apiVersion: v1
kind: Service
metadata:
  name: family-assistant-backend
  namespace: homelab
spec:
  selector:
    app: family-assistant-backend
  ports:
    - port: 8001
"""
BACKEND_COPY = ("# Build on pesubuntu:  docker build -t family-assistant:fixed services/family-assistant\n"
                "# then:               kubectl apply -f infrastructure/kubernetes/family-assistant-backend.yaml\n"
                + deployment("family-assistant-backend", "homelab", "family-assistant", "family-assistant:fixed",
                             "          imagePullPolicy: Never   # imported straight into k3s containerd\n"))
DASHBOARD = deployment("homelab-dashboard", "homelab", "dashboard", f"{REGISTRY}/homelab-dashboard:v3")
DASHBOARD_CONFIG = """\
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: dashboard-links
  namespace: homelab
data:
  links.yaml: |
    - title: Photos
      url: http://photos.homelab.lan
"""


@pytest.fixture
def duplicated(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "homelab", {
        "kubeshape.yaml": CONFIG,
        # applied since the move to the registry: the source of truth
        "family-assistant-backend.yaml": deployment(
            "family-assistant-backend", "homelab", "family-assistant", f"{REGISTRY}/family-assistant:fixed-final",
            "          imagePullPolicy: IfNotPresent\n"),
        # the old copy, alone in its file
        "infrastructure/kubernetes/family-assistant-backend.yaml": BACKEND_COPY + BACKEND_SERVICE,
        "apps/dashboard/deployment.yaml": DASHBOARD,
        # an old copy of the dashboard next to the ConfigMap it needs
        "infrastructure/kubernetes/homelab-dashboard.yaml": DASHBOARD.replace("replicas: 2", "replicas: 1")
        + DASHBOARD_CONFIG,
    })


def test_duplicate_definitions_lose_their_copies_and_emptied_files_are_deleted(duplicated: Path,
                                                                              tmp_path: Path) -> None:
    snap = registry_snapshot(tmp_path / "registry.json", {"family-assistant": ["fixed", "fixed-final"],
                                                          "homelab-dashboard": ["v3"]})
    run = plan_repo(duplicated, snap)
    dups = {f.object.name: f for f in run.by_rule("KS201") if f.object}
    assert set(dups) == {"family-assistant-backend", "homelab-dashboard"}

    backend = run.step_for(dups["family-assistant-backend"])
    (fc,) = backend.files
    assert fc.path == "infrastructure/kubernetes/family-assistant-backend.yaml"
    # the Service stays: only the Deployment's document (with its build comment) goes
    assert fc.after == BACKEND_SERVICE
    assert "-          imagePullPolicy: Never   # imported straight into k3s containerd" in fc.diff
    # the copy's own KS101/KS102 are resolved by deleting it, not by editing it
    copy_findings = [f for f in run.findings if f.rule in ("KS101", "KS102")
                     and f.file == "infrastructure/kubernetes/family-assistant-backend.yaml"]
    assert {f.rule for f in copy_findings} == {"KS101", "KS102"}
    assert all(finding_id(f) in backend.findings for f in copy_findings)

    dashboard = run.step_for(dups["homelab-dashboard"])
    assert dups["homelab-dashboard"].data["keep"] == "apps/dashboard/deployment.yaml"
    (fc,) = dashboard.files
    assert fc.path == "infrastructure/kubernetes/homelab-dashboard.yaml" and fc.after == DASHBOARD_CONFIG

    message = apply_and_check(duplicated, run.plan)
    assert message.splitlines()[0] == "kubeshape fix: KS101, KS102, KS201"
    assert (duplicated / "apps/dashboard/deployment.yaml").read_text() == DASHBOARD  # the kept file is untouched
    assert_fixed(duplicated, run, [*dups.values(), *copy_findings], snap)


def test_a_copy_alone_in_its_file_takes_the_file_with_it(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "homelab", {
        "kubeshape.yaml": CONFIG,
        "family-assistant-backend.yaml": deployment(
            "family-assistant-backend", "homelab", "family-assistant", f"{REGISTRY}/family-assistant:fixed-final"),
        "infrastructure/kubernetes/family-assistant-backend.yaml": BACKEND_COPY,
    })
    run = plan_repo(root)
    (dup,) = run.by_rule("KS201")
    assert dup.data["keep"] == "family-assistant-backend.yaml"
    (fc,) = run.step_for(dup).files
    assert fc.path == "infrastructure/kubernetes/family-assistant-backend.yaml" and fc.deletes
    assert fc.diff.startswith("--- a/infrastructure/kubernetes/family-assistant-backend.yaml\n+++ /dev/null\n")
    apply_and_check(root, run.plan)
    assert not (root / "infrastructure/kubernetes/family-assistant-backend.yaml").exists()
    assert_fixed(root, run, [dup])


# -- KS101 / KS102: images a node cannot pull ------------------------------------------------------------------

PHOTOS = """\
# photo library, built on the NAS: docker build -t photos:2.1.0 .
apiVersion: apps/v1
kind: Deployment
metadata:
  name: photos
  namespace: media
spec:
  replicas: 1
  selector:
    matchLabels:
      app: photos
  template:
    metadata:
      labels:
        app: photos
    spec:
      containers:
        - name: photos
          image: photos:2.1.0 # {"$imagepolicy": "flux-system:photos"}
          imagePullPolicy: Never   # imported with k3s ctr
          ports:
            - containerPort: 2342
        - name: thumbnails
          image: "recipes:0.9.3"
"""


def test_unqualified_image_gets_the_registry_name_and_never_becomes_if_not_present(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "homelab", {"kubeshape.yaml": CONFIG, "apps/photos.yaml": PHOTOS})
    snap = registry_snapshot(tmp_path / "registry.json", {"photos": ["2.0.0", "2.1.0"], "recipes": ["0.9.2"]})
    run = plan_repo(root, snap)
    ks101 = {f.data["container"]: f for f in run.by_rule("KS101")}
    (ks102,) = run.by_rule("KS102")
    step = run.step_for(ks101["photos"])
    assert finding_id(ks102) in step.findings and step.rules == ["KS101", "KS102"]
    (fc,) = step.files
    assert fc.after == PHOTOS.replace(
        'image: photos:2.1.0 # {"$imagepolicy": "flux-system:photos"}',
        f'image: {REGISTRY}/photos:2.1.0 # {{"$imagepolicy": "flux-system:photos"}}').replace(
        "imagePullPolicy: Never   # imported", "imagePullPolicy: IfNotPresent   # imported")
    # the tag the other container runs is not in the registry: refused, with what to do
    reason = run.skipped(ks101["thumbnails"])
    assert reason.startswith(f"{REGISTRY}/recipes has no tag 0.9.3: push it first (docker tag recipes:0.9.3 "
                             f"{REGISTRY}/recipes:0.9.3 && docker push {REGISTRY}/recipes:0.9.3)")
    assert not [s for s in run.plan.steps if finding_id(ks101["thumbnails"]) in s.findings]

    apply_and_check(root, run.plan)
    after = assert_fixed(root, run, [ks101["photos"], ks102], snap)
    # the refused one is still reported, with the same reason, and its line untouched
    (left,) = after.by_rule("KS101")
    assert left.data["container"] == "thumbnails" and after.skipped(left) == reason
    assert '          image: "recipes:0.9.3"\n' in (root / "apps/photos.yaml").read_text()


def test_an_image_without_a_registry_snapshot_is_not_guessed(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "homelab", {"kubeshape.yaml": CONFIG, "apps/photos.yaml": PHOTOS})
    run = plan_repo(root)
    for f in run.by_rule("KS101"):
        assert run.skipped(f) == (f"registry {REGISTRY} was not read, so the tag is not checked: pass --registry "
                                  f"{REGISTRY}")
    assert not run.plan.steps


def test_an_image_set_by_an_overlays_images_entry_is_qualified_in_that_entry(tmp_path: Path) -> None:
    base = deployment("web", "default", "web", "web:1.0.0")
    overlay = ("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: web-prod\n"
               "resources:\n  - ../../base\nimages:\n  - name: web\n    newTag: \"1.4.2\"  # prod pins its release\n")
    root = make_repo(tmp_path / "web", {
        "kubeshape.yaml": CONFIG,
        "kustomize/base/kustomization.yaml": "resources:\n  - deployment.yaml\n",
        "kustomize/base/deployment.yaml": base.replace("  namespace: default\n", ""),
        "kustomize/overlays/prod/kustomization.yaml": overlay,
    })
    snap = registry_snapshot(tmp_path / "registry.json", {"web": ["1.0.0", "1.4.2"]})
    run = plan_repo(root, snap)
    (f,) = run.by_rule("KS101")
    assert f.object == ObjectRef("Deployment", "web-prod", "web") and f.data["image"] == "web:1.4.2"
    step = run.step_for(f)
    # The overlay's entry gets the registry; the base, which other overlays may share, is not touched.
    assert [fc.path for fc in step.files] == ["kustomize/overlays/prod/kustomization.yaml"]
    assert step.files[0].after == overlay.replace("  - name: web\n", f"  - name: web\n    newName: {REGISTRY}/web\n")
    apply_and_check(root, run.plan)
    again = plan_repo(root, snap)
    assert not again.by_rule("KS101") and not again.plan.steps


def test_an_image_in_helmrelease_values_is_qualified_in_the_values(tmp_path: Path) -> None:
    release = """\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: paperless
  namespace: documents
spec:
  interval: 30m
  chart:
    spec:
      chart: app-template
      version: 3.5.1
      sourceRef: {kind: HelmRepository, name: bjw-s, namespace: flux-system}
  values:
    controllers:
      paperless:
        containers:
          app:
            image:
              repository: paperless-ngx   # our fork, built on the NAS
              tag: 2.13.5
              pullPolicy: Never
"""
    root = make_repo(tmp_path / "docs", {"kubeshape.yaml": CONFIG, "apps/paperless/helmrelease.yaml": release})
    snap = registry_snapshot(tmp_path / "registry.json", {"paperless-ngx": ["2.13.5"]})
    run = plan_repo(root, snap)
    (f,) = [f for f in run.by_rule("KS101") if f.file == "apps/paperless/helmrelease.yaml"]
    step = run.step_for(f)
    expected = release.replace("repository: paperless-ngx", f"repository: {REGISTRY}/paperless-ngx")
    assert step.files[0].after == expected.replace("pullPolicy: Never", "pullPolicy: IfNotPresent")
    apply_and_check(root, run.plan)
    assert not [f for f in plan_repo(root, snap).by_rule("KS101") if f.file == "apps/paperless/helmrelease.yaml"]


def test_an_image_written_with_a_flux_variable_is_refused_not_overwritten(tmp_path: Path) -> None:
    flux_ks = """\
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
spec:
  interval: 10m
  path: ./apps
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
  postBuild:
    substitute:
      WEB_TAG: "1.4.2"
"""
    root = make_repo(tmp_path / "gitops", {
        "kubeshape.yaml": CONFIG,
        "clusters/home/apps.yaml": flux_ks,
        "apps/web.yaml": deployment("web", "homelab", "web", "web:${WEB_TAG}  # tag set in clusters/home/apps.yaml"),
    })
    snap = registry_snapshot(tmp_path / "registry.json", {"web": ["1.4.2"]})
    run = plan_repo(root, snap)
    (f,) = run.by_rule("KS101")
    assert f.data["image"] == "web:1.4.2"
    assert run.skipped(f) == ("apps/web.yaml: the file sets 'web:${WEB_TAG}' here, not 'web:1.4.2' (substituted or "
                              "patched elsewhere): edit it by hand")
    assert not run.plan.steps


# -- KS601: an HPA whose target does not exist -----------------------------------------------------------------

HPA = """\
# autoscaler for the enhanced variant (load testing, Nov)
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {name}
  namespace: homelab
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {target}
  minReplicas: 1
  maxReplicas: 3
"""


def test_an_orphaned_hpa_is_deleted_from_its_file(tmp_path: Path) -> None:
    whisper = deployment("whisper-api", "homelab", "whisper", f"{REGISTRY}/whisper:1.2.0")
    root = make_repo(tmp_path / "homelab", {
        "kubeshape.yaml": CONFIG,
        "infrastructure/kubernetes/family-assistant-hpa.yaml": HPA.format(name="family-assistant-enhanced-hpa",
                                                                          target="family-assistant-enhanced"),
        "apps/whisper.yaml": whisper + "---\n" + HPA.format(name="whisper-hpa", target="whisper"),
    })
    run = plan_repo(root)
    hpas = {f.object.name: f for f in run.by_rule("KS601") if f.object}
    assert set(hpas) == {"family-assistant-enhanced-hpa", "whisper-hpa"}
    (alone,) = run.step_for(hpas["family-assistant-enhanced-hpa"]).files
    assert alone.path == "infrastructure/kubernetes/family-assistant-hpa.yaml" and alone.deletes
    (shared,) = run.step_for(hpas["whisper-hpa"]).files
    assert shared.path == "apps/whisper.yaml" and shared.after == whisper
    assert all(not s.cluster for s in run.plan.steps)  # repo only: nothing to delete in a cluster
    apply_and_check(root, run.plan)
    after = assert_fixed(root, run, list(hpas.values()))
    assert {o.name for o in after.inv.repo_objects} == {"whisper-api"}


# -- KS701: telemetry exported to a Service that does not exist ------------------------------------------------

DASHBOARD_OTEL = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: homelab-dashboard
  namespace: homelab
spec:
  selector:
    matchLabels:
      app: homelab-dashboard
  template:
    metadata:
      labels:
        app: homelab-dashboard
    spec:
      containers:
        - name: dashboard
          image: registry.lan:5000/homelab-dashboard:v3
          env:
            - name: OTEL_EXPORTER_OTLP_ENDPOINT
              value: http://otel-collector.homelab.svc.cluster.local:4317
            - name: DATABASE_HOST
              value: postgres.homelab.svc.cluster.local
            # - name: DEBUG
            #   value: "1"
          resources:
            limits:
              memory: 256Mi
"""
NOTES_OTEL = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: notes, namespace: homelab}
spec:
  selector: {matchLabels: {app: notes}}
  template:
    metadata:
      labels: {app: notes}
    spec:
      containers:
      - name: notes
        image: registry.lan:5000/notes:1.2.0
        env:
        - {name: OTEL_EXPORTER_OTLP_ENDPOINT, value: "http://otel-collector.homelab:4317"}
        - {name: OTEL_SERVICE_NAME, value: notes}
"""
COLLECTOR = """\
apiVersion: v1
kind: Service
metadata:
  name: collector
  namespace: monitoring
spec:
  selector:
    app: collector
  ports:
    - port: 4317
"""


@pytest.fixture
def exporting(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "homelab", {"apps/dashboard.yaml": DASHBOARD_OTEL, "apps/notes.yaml": NOTES_OTEL,
                                            "monitoring/collector.yaml": COLLECTOR})


def _otel(run: Run) -> dict[str, Finding]:
    return {f"{f.object.name}/{f.data['variable']}": f for f in run.by_rule("KS701") if f.object}


def test_telemetry_to_a_missing_collector_is_switched_off_in_block_and_flow_env_lists(exporting: Path) -> None:
    run = plan_repo(exporting)
    found = _otel(run)
    assert set(found) == {"homelab-dashboard/OTEL_EXPORTER_OTLP_ENDPOINT", "notes/OTEL_EXPORTER_OTLP_ENDPOINT",
                          "homelab-dashboard/DATABASE_HOST"}
    (block,) = run.step_for(found["homelab-dashboard/OTEL_EXPORTER_OTLP_ENDPOINT"]).files
    assert block.after == DASHBOARD_OTEL.replace(
        "              value: postgres.homelab.svc.cluster.local\n",
        "              value: postgres.homelab.svc.cluster.local\n"
        "            - name: OTEL_SDK_DISABLED\n"
        "              value: \"true\"\n")
    (flow,) = run.step_for(found["notes/OTEL_EXPORTER_OTLP_ENDPOINT"]).files
    assert flow.after == NOTES_OTEL + '        - {name: OTEL_SDK_DISABLED, value: "true"}\n'
    # a database host is no telemetry: switching the SDK off would not fix it
    assert run.skipped(found["homelab-dashboard/DATABASE_HOST"]).startswith(
        "OTEL_SDK_DISABLED only stops the OpenTelemetry SDK, and DATABASE_HOST is not one of its settings")

    apply_and_check(exporting, run.plan)
    after = assert_fixed(exporting, run, [found["homelab-dashboard/OTEL_EXPORTER_OTLP_ENDPOINT"],
                                          found["notes/OTEL_EXPORTER_OTLP_ENDPOINT"]])
    assert set(_otel(after)) == {"homelab-dashboard/DATABASE_HOST"}


def test_otel_endpoint_naming_a_service_nobody_has_is_refused(exporting: Path) -> None:
    run = plan_repo(exporting, options=Options(otel_endpoint="http://tempo.monitoring.svc:4317"))
    found = _otel(run)
    for key in ("homelab-dashboard/OTEL_EXPORTER_OTLP_ENDPOINT", "notes/OTEL_EXPORTER_OTLP_ENDPOINT"):
        assert run.skipped(found[key]) == ("--otel-endpoint names Service monitoring/tempo, which the repository "
                                           "does not have")
    assert not run.plan.steps


def test_otel_endpoint_naming_an_existing_collector_repoints_the_exporter(exporting: Path) -> None:
    endpoint = "http://collector.monitoring.svc.cluster.local:4317"
    options = Options(otel_endpoint=endpoint)
    run = plan_repo(exporting, options=options)
    found = _otel(run)
    (block,) = run.step_for(found["homelab-dashboard/OTEL_EXPORTER_OTLP_ENDPOINT"]).files
    assert block.after == DASHBOARD_OTEL.replace("value: http://otel-collector.homelab.svc.cluster.local:4317",
                                                 f"value: {endpoint}")
    (flow,) = run.step_for(found["notes/OTEL_EXPORTER_OTLP_ENDPOINT"]).files
    assert flow.after == NOTES_OTEL.replace('"http://otel-collector.homelab:4317"', f'"{endpoint}"')
    apply_and_check(exporting, run.plan)
    assert_fixed(exporting, run, [found["homelab-dashboard/OTEL_EXPORTER_OTLP_ENDPOINT"],
                                  found["notes/OTEL_EXPORTER_OTLP_ENDPOINT"]], options=options)


# -- KS502: probes on a rate-limited endpoint (a cluster finding; the fix is in the file only) -----------------

DASHBOARD_PROBES = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: homelab-dashboard
  namespace: homelab
spec:
  replicas: 1
  selector:
    matchLabels:
      app: homelab-dashboard
  template:
    metadata:
      labels:
        app: homelab-dashboard
    spec:
      containers:
        - name: homelab-dashboard
          image: registry.lan:5000/homelab-dashboard:v3
          ports:
            - containerPort: 8080
          # /api/status checks every service (and GitHub) on each call
          livenessProbe:
            httpGet:
              path: /api/status
              port: 8080
            initialDelaySeconds: 30
            periodSeconds: 10
            timeoutSeconds: 5
          readinessProbe:
            httpGet:
              path: "/api/status"
              port: 8080
            initialDelaySeconds: 10
            periodSeconds: 5
            timeoutSeconds: 3
---
apiVersion: v1
kind: Service
metadata:
  name: homelab-dashboard
  namespace: homelab
spec:
  selector:
    app: homelab-dashboard
  ports:
    - port: 80
      targetPort: 8080
"""
PROBE_FIX = """\
Give liveness a cheap endpoint (/healthz) and readiness its own (/readyz), on port 8080 as today. Save as \
homelab-dashboard-probes.yaml:
```yaml
spec:
  template:
    spec:
      containers:
      - name: homelab-dashboard
        livenessProbe:
          httpGet:
            path: /healthz
            port: 8080
          periodSeconds: 20
          timeoutSeconds: 5
          failureThreshold: 3
        readinessProbe:
          httpGet:
            path: /readyz
            port: 8080
          periodSeconds: 10
          timeoutSeconds: 3
          failureThreshold: 3
```
Apply it:
```bash
kubectl patch deployment/homelab-dashboard -n homelab --patch-file homelab-dashboard-probes.yaml
```
In the app: serve /healthz from memory (no upstream calls, no auth) and exempt it from the rate limiter; serve \
/readyz from an upstream status cached in the background (e.g. for 60 s), never calling upstreams per probe."""


def probe_finding() -> Finding:
    """KS502 as the rule reports it from the cluster's events (see ``kubeshape doctor --demo -o json``)."""
    return Finding(
        rule="KS502", severity=Severity.ERROR, family=5,
        object=ObjectRef("Deployment", "homelab", "homelab-dashboard"),
        message="Deployment homelab-dashboard: liveness and readiness probe rejected with HTTP 429 (rate limited) "
                "3588 times",
        evidence=["container homelab-dashboard: liveness probe failed 1794 times with HTTP 429 on 1 pod(s)",
                  "sample event: Liveness probe failed: HTTP probe failed with statuscode: 429",
                  "container homelab-dashboard livenessProbe: GET /api/status on port 8080, periodSeconds 10, "
                  "failureThreshold 3 (default)",
                  "598 container restarts on these pods"],
        root_cause="The kubelet's liveness and readiness probe on /api/status gets HTTP 429.",
        fix=PROBE_FIX, source="cluster",
        data={"probes": ["liveness", "readiness"], "failures": 3588, "pods": ["homelab-dashboard-644f5cf5d9-2ff64"]})


def plan_with(root: Path, findings: list[Finding]) -> Plan:
    src = load_sources(root, None, None, None)
    return build_plan(src.inventories[0], src.cfg, findings, root)


def test_rate_limited_probes_are_separated_in_the_file(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "homelab", {"apps/homelab-dashboard.yaml": DASHBOARD_PROBES})
    f = probe_finding()
    plan = plan_with(root, [f])
    (step,) = plan.steps
    assert step.findings == [finding_id(f)] and not step.cluster
    assert step.notes == ["the application must serve the new probe paths before this file is deployed"]
    (fc,) = step.files
    assert fc.after == DASHBOARD_PROBES.replace("""\
          livenessProbe:
            httpGet:
              path: /api/status
              port: 8080
            initialDelaySeconds: 30
            periodSeconds: 10
            timeoutSeconds: 5
          readinessProbe:
            httpGet:
              path: "/api/status"
              port: 8080
            initialDelaySeconds: 10
            periodSeconds: 5
            timeoutSeconds: 3
""", """\
          livenessProbe:
            httpGet:
              path: /healthz
              port: 8080
            initialDelaySeconds: 30
            periodSeconds: 20
            timeoutSeconds: 5
            failureThreshold: 3
          readinessProbe:
            httpGet:
              path: "/readyz"
              port: 8080
            initialDelaySeconds: 10
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
""")
    assert "# /api/status checks every service" in fc.after  # the user's comment stays
    apply_and_check(root, plan)
    again = plan_with(root, [probe_finding()])
    assert not [s for s in again.steps if s.files]


def test_probes_with_another_action_in_the_file_are_refused(tmp_path: Path) -> None:
    text = DASHBOARD_PROBES.replace("""\
          readinessProbe:
            httpGet:
              path: "/api/status"
              port: 8080
""", """\
          readinessProbe:
            tcpSocket:
              port: 8080
""")
    root = make_repo(tmp_path / "homelab", {"apps/homelab-dashboard.yaml": text})
    plan = plan_with(root, [probe_finding()])
    assert not plan.steps
    (skipped,) = plan.skipped
    assert skipped.reason == ("apps/homelab-dashboard.yaml: readinessProbe of container homelab-dashboard uses "
                              "tcpSocket, the fix httpGet: change it by hand")


def test_probes_of_a_workload_no_file_defines_are_left_to_kubectl(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "homelab", {"apps/other.yaml": deployment("other", "homelab", "o", "o:1")})
    plan = plan_with(root, [probe_finding()])
    assert not plan.steps
    assert plan.skipped[0].reason.startswith("no file in the repository defines it: apply the fix's patch with "
                                             "kubectl")


# -- applying a plan whose files changed since ---------------------------------------------------------------

def test_a_file_changed_after_the_plan_stops_apply_at_that_step(duplicated: Path, tmp_path: Path) -> None:
    snap = registry_snapshot(tmp_path / "registry.json", {"family-assistant": ["fixed", "fixed-final"],
                                                          "homelab-dashboard": ["v3"]})
    run = plan_repo(duplicated, snap)
    first, second = run.plan.steps[0], run.plan.steps[1]
    (changed,) = second.files
    assert {fc.path for fc in first.files}.isdisjoint({changed.path})
    # someone edits (and commits) the second step's file after the plan was reviewed
    user_text = (duplicated / changed.path).read_text().replace("replicas: 1", "replicas: 3  # more for the party")
    (duplicated / changed.path).write_text(user_text)
    git(duplicated, "commit", "-q", "-am", "scale the dashboard")
    head = git(duplicated, "rev-parse", "HEAD").strip()

    outcome = apply_plan(run.plan, duplicated, None)
    assert outcome.applied == [first.id]
    assert outcome.stopped == f"step {second.id}: {changed.path} changed since the plan was made: make a new plan"
    assert outcome.stopped_exit == 2
    # the step before it is written and committed; the changed file keeps the user's change
    (done,) = first.files
    assert done.after is not None and (duplicated / done.path).read_text() == done.after
    assert (duplicated / changed.path).read_text() == user_text
    assert git(duplicated, "rev-list", "--count", f"{head}..HEAD").strip() == "1"
    assert git(duplicated, "show", "--name-only", "--format=", "HEAD").split() == [done.path]
    assert all(fid in git(duplicated, "log", "-1", "--format=%B") for fid in first.findings)
    assert git(duplicated, "status", "--porcelain") == ""


def test_uncommitted_edits_in_a_planned_file_stop_apply_before_anything_is_written(duplicated: Path) -> None:
    run = plan_repo(duplicated)
    path = run.plan.steps[-1].files[0].path
    (duplicated / path).write_text((duplicated / path).read_text() + "# work in progress\n")
    before = {p: p.read_bytes() for p in duplicated.rglob("*.yaml")}
    with pytest.raises(InputError, match=f"{path}: uncommitted changes"):
        apply_plan(run.plan, duplicated, None)
    assert {p: p.read_bytes() for p in duplicated.rglob("*.yaml")} == before
    assert git(duplicated, "rev-list", "--count", "HEAD").strip() == "1"
