#!/usr/bin/env python3
"""Generate a Flux GitOps repository shaped like the public homelab repositories our users keep.

    python benchmarks/gen_gitops.py OUT [--namespaces 12] [--apps-per-namespace 9] [--seed 1]

Layout (the cluster-template style): ``kubernetes/flux/cluster/ks.yaml`` holds the top Flux Kustomizations
(``cluster-meta``, ``cluster-apps`` with ``postBuild.substituteFrom`` the ``cluster-settings`` ConfigMap);
``kubernetes/apps/<ns>/kustomization.yaml`` lists one ``<app>/ks.yaml`` per app, each a Flux Kustomization
with ``targetNamespace``, ``postBuild.substitute`` (``APP``) and, for some, the shared ``volsync`` component;
``<app>/app/`` holds a kustomization, a HelmRelease of the app-template chart (images in
``controllers.*.containers.*.image``), and sometimes an OCIRepository, an ExternalSecret, a PVC or a
``configMapGenerator`` with a config file. Two apps are plain Deployments with a kustomize base and
``staging``/``production`` overlays. Same seed, same bytes.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

IMAGES = [
    ("ghcr.io/home-operations/sonarr", "4.0.14.2938"), ("ghcr.io/home-operations/radarr", "5.21.1.9799"),
    ("ghcr.io/home-operations/prowlarr", "1.33.3.5008"), ("ghcr.io/home-operations/qbittorrent", "5.0.4"),
    ("ghcr.io/jellyfin/jellyfin", "10.10.7"), ("docker.io/grafana/grafana", "11.6.0"),
    ("ghcr.io/gethomepage/homepage", "v1.1.1"), ("docker.io/library/redis", "7.4.2-alpine"),
    ("ghcr.io/cloudnative-pg/postgresql", "16.8"), ("ghcr.io/home-assistant/home-assistant", "2025.4.1"),
    ("docker.io/eclipse-mosquitto", "2.0.21"), ("ghcr.io/onedr0p/exportarr", "v2.0.1"),
    ("quay.io/prometheus/node-exporter", "v1.9.1"), ("ghcr.io/esphome/esphome", "2025.3.3"),
]
NAMESPACES = ["default", "media", "home", "downloads", "observability", "database", "network", "security",
              "tools", "games", "ai", "storage", "flux-system", "kube-system"]


def _w(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")


def _ks(app: str, ns: str, volsync: bool, depends: str | None) -> str:
    comps = "  components:\n    - ../../../../components/volsync\n" if volsync else ""
    dep = f"  dependsOn:\n    - name: {depends}\n      namespace: flux-system\n" if depends else ""
    extra = "      VOLSYNC_CAPACITY: 5Gi\n" if volsync else ""
    return f"""---
# yaml-language-server: $schema=https://kubernetes-schemas.example/kustomize.toolkit.fluxcd.io/kustomization_v1.json
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: &app {app}
  namespace: flux-system
spec:
  targetNamespace: &namespace {ns}
  commonMetadata:
    labels:
      app.kubernetes.io/name: *app
{comps}{dep}  path: ./kubernetes/apps/{ns}/{app}/app
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
    namespace: flux-system
  wait: false
  interval: 30m
  timeout: 5m
  postBuild:
    substitute:
      APP: *app
{extra}"""


def _helmrelease(app: str, image: tuple[str, str], rng: random.Random, oci: bool) -> str:
    repo, tag = image
    source = (f"  chartRef:\n    kind: OCIRepository\n    name: {app}\n" if oci else
              "  chart:\n    spec:\n      chart: app-template\n      version: 3.7.3\n      sourceRef:\n"
              "        kind: HelmRepository\n        name: bjw-s\n        namespace: flux-system\n")
    port = rng.choice([80, 3000, 8080, 8989, 7878, 9696])
    return f"""---
# yaml-language-server: $schema=https://kubernetes-schemas.example/helm.toolkit.fluxcd.io/helmrelease_v2.json
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: &app {app}
spec:
  interval: 30m
{source}  install:
    remediation:
      retries: 3
  upgrade:
    cleanupOnFail: true
    remediation:
      strategy: rollback
      retries: 3
  values:
    controllers:
      {app}:
        annotations:
          reloader.stakater.com/auto: "true"
        containers:
          app:
            image:
              repository: {repo}
              tag: {tag}
            env:
              TZ: ${{TIMEZONE}}
            probes:
              liveness: &probes
                enabled: true
                custom: true
                spec:
                  httpGet:
                    path: /ping
                    port: &port {port}
                  initialDelaySeconds: 0
                  periodSeconds: 10
                  timeoutSeconds: 1
                  failureThreshold: 3
              readiness: *probes
            securityContext:
              allowPrivilegeEscalation: false
              readOnlyRootFilesystem: true
              capabilities: {{drop: ["ALL"]}}
            resources:
              requests:
                cpu: 10m
              limits:
                memory: 1Gi
    defaultPodOptions:
      securityContext:
        runAsNonRoot: true
        runAsUser: 1000
        runAsGroup: 1000
        fsGroup: 1000
        fsGroupChangePolicy: OnRootMismatch
    service:
      app:
        controller: {app}
        ports:
          http:
            port: *port
    ingress:
      app:
        className: internal
        hosts:
          - host: "{{{{ .Release.Name }}}}.${{SECRET_DOMAIN}}"
            paths:
              - path: /
                service:
                  identifier: app
                  port: http
    persistence:
      config:
        existingClaim: {app}
      tmp:
        type: emptyDir
"""


def generate(out: Path, namespaces: int = 12, apps_per_namespace: int = 9, seed: int = 1) -> dict[str, int]:
    """Write the repository under ``out``; return counts (files, flux_kustomizations, helmreleases)."""
    rng = random.Random(seed)
    counts = {"flux_kustomizations": 0, "helmreleases": 0}
    _w(out, "kubernetes/flux/cluster/ks.yaml", """---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: cluster-meta
  namespace: flux-system
spec:
  interval: 30m
  path: ./kubernetes/flux/meta
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: cluster-apps
  namespace: flux-system
spec:
  interval: 30m
  path: ./kubernetes/apps
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
  postBuild:
    substituteFrom:
      - kind: ConfigMap
        name: cluster-settings
      - kind: Secret
        name: cluster-secrets
        optional: true
  patches:
    - patch: |-
        apiVersion: kustomize.toolkit.fluxcd.io/v1
        kind: Kustomization
        metadata:
          name: not-used
        spec:
          postBuild:
            substituteFrom:
              - kind: ConfigMap
                name: cluster-settings
      target:
        group: kustomize.toolkit.fluxcd.io
        kind: Kustomization
""")
    counts["flux_kustomizations"] += 2
    _w(out, "kubernetes/flux/meta/kustomization.yaml", "---\napiVersion: kustomize.config.k8s.io/v1beta1\n"
       "kind: Kustomization\nresources:\n  - ./repos\n  - ./settings\n")
    repos = []
    for name, url in [("bjw-s", "oci://ghcr.io/bjw-s/helm"), ("prometheus-community",
                      "oci://ghcr.io/prometheus-community/charts"), ("grafana", "https://grafana.github.io/helm-charts"),
                      ("jetstack", "https://charts.jetstack.io"), ("ingress-nginx",
                      "https://kubernetes.github.io/ingress-nginx"), ("cilium", "https://helm.cilium.io")]:
        rel = f"kubernetes/flux/meta/repos/{name}.yaml"
        kind = "oci" if url.startswith("oci") else "default"
        _w(out, rel, f"---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n"
           f"  name: {name}\n  namespace: flux-system\nspec:\n  type: {kind}\n  interval: 1h\n  url: {url}\n")
        repos.append(f"  - ./{name}.yaml\n")
    _w(out, "kubernetes/flux/meta/repos/kustomization.yaml", "---\napiVersion: kustomize.config.k8s.io/v1beta1\n"
       "kind: Kustomization\nresources:\n" + "".join(repos))
    _w(out, "kubernetes/flux/meta/settings/cluster-settings.yaml", "---\napiVersion: v1\nkind: ConfigMap\n"
       "metadata:\n  name: cluster-settings\n  namespace: flux-system\ndata:\n  TIMEZONE: Europe/Madrid\n"
       "  SECRET_DOMAIN: example.home\n  CLUSTER_CIDR: 10.42.0.0/16\n")
    _w(out, "kubernetes/flux/meta/settings/kustomization.yaml", "---\napiVersion: kustomize.config.k8s.io/v1beta1"
       "\nkind: Kustomization\nresources:\n  - ./cluster-settings.yaml\n")
    _w(out, "kubernetes/components/volsync/kustomization.yaml", "---\napiVersion: kustomize.config.k8s.io/v1alpha1"
       "\nkind: Component\nresources:\n  - ./pvc.yaml\n  - ./replicationsource.yaml\n")
    _w(out, "kubernetes/components/volsync/pvc.yaml", "---\napiVersion: v1\nkind: PersistentVolumeClaim\n"
       "metadata:\n  name: ${APP}\nspec:\n  accessModes: [\"${VOLSYNC_ACCESSMODES:=ReadWriteOnce}\"]\n"
       "  resources:\n    requests:\n      storage: ${VOLSYNC_CAPACITY:=5Gi}\n"
       "  storageClassName: ${VOLSYNC_STORAGECLASS:=ceph-block}\n")
    _w(out, "kubernetes/components/volsync/replicationsource.yaml", "---\napiVersion: volsync.backube/v1alpha1\n"
       "kind: ReplicationSource\nmetadata:\n  name: ${APP}\nspec:\n  sourcePVC: ${APP}\n  trigger:\n"
       "    schedule: \"15 */8 * * *\"\n  restic:\n    copyMethod: Snapshot\n    repository: ${APP}-volsync\n"
       "    pruneIntervalDays: 14\n    retain:\n      daily: 7\n")
    _w(out, "kubernetes/components/common/kustomization.yaml", "---\napiVersion: kustomize.config.k8s.io/v1alpha1"
       "\nkind: Component\nresources:\n  - ./namespace.yaml\n")
    _w(out, "kubernetes/components/common/namespace.yaml", "---\napiVersion: v1\nkind: Namespace\nmetadata:\n"
       "  name: _\n  annotations:\n    kustomize.toolkit.fluxcd.io/prune: disabled\n")
    for n in range(namespaces):
        ns = NAMESPACES[n % len(NAMESPACES)] + ("" if n < len(NAMESPACES) else f"-{n}")
        entries = []
        for a in range(apps_per_namespace):
            app = f"{ns.split('-')[0][:6]}-app{a}"
            image = IMAGES[rng.randrange(len(IMAGES))]
            volsync = rng.random() < 0.4
            depends = "rook-ceph-cluster" if volsync else None
            d = f"kubernetes/apps/{ns}/{app}"
            _w(out, f"{d}/ks.yaml", _ks(app, ns, volsync, depends))
            counts["flux_kustomizations"] += 1
            entries.append(f"  - ./{app}/ks.yaml\n")
            resources = ["./helmrelease.yaml"]
            oci = rng.random() < 0.25
            if oci:
                _w(out, f"{d}/app/ocirepository.yaml", "---\napiVersion: source.toolkit.fluxcd.io/v1beta2\n"
                   f"kind: OCIRepository\nmetadata:\n  name: {app}\nspec:\n  interval: 15m\n"
                   "  layerSelector:\n    mediaType: application/vnd.cncf.helm.chart.content.v1.tar+gzip\n"
                   "    operation: copy\n  ref:\n    tag: 3.7.3\n  url: oci://ghcr.io/bjw-s/helm/app-template\n")
                resources.insert(0, "./ocirepository.yaml")
            if rng.random() < 0.3:
                _w(out, f"{d}/app/externalsecret.yaml", f"---\napiVersion: external-secrets.io/v1beta1\n"
                   f"kind: ExternalSecret\nmetadata:\n  name: {app}\nspec:\n  secretStoreRef:\n"
                   f"    kind: ClusterSecretStore\n    name: onepassword\n  target:\n    name: {app}-secret\n"
                   f"    template:\n      data:\n        API_KEY: \"{{{{ .API_KEY }}}}\"\n  dataFrom:\n"
                   f"    - extract:\n        key: {app}\n")
                resources.append("./externalsecret.yaml")
            gen = ""
            if rng.random() < 0.2:
                _w(out, f"{d}/app/resources/config.yaml", f"# {app} configuration\nlog_level: info\nport: 8080\n")
                gen = ("configMapGenerator:\n  - name: " + app + "-configmap\n    files:\n"
                       "      - config.yaml=./resources/config.yaml\ngeneratorOptions:\n"
                       "  disableNameSuffixHash: true\n")
            _w(out, f"{d}/app/helmrelease.yaml", _helmrelease(app, image, rng, oci))
            counts["helmreleases"] += 1
            _w(out, f"{d}/app/kustomization.yaml", "---\n# yaml-language-server: $schema=https://json.schemastore."
               "example/kustomization\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
               "resources:\n" + "".join(f"  - {r}\n" for r in resources) + gen)
        _w(out, f"kubernetes/apps/{ns}/kustomization.yaml", "---\napiVersion: kustomize.config.k8s.io/v1beta1\n"
           f"kind: Kustomization\nnamespace: {ns}\ncomponents:\n  - ../../components/common\nresources:\n"
           + "".join(entries))
    for svc in ("echo", "whoami"):
        base = f"deploy/{svc}"
        _w(out, f"{base}/base/deployment.yaml", f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {svc}\n"
           f"spec:\n  selector:\n    matchLabels: {{app: {svc}}}\n  template:\n    metadata:\n"
           f"      labels: {{app: {svc}}}\n    spec:\n      containers:\n        - name: {svc}\n"
           f"          image: ghcr.io/mendhak/http-https-echo:36\n          ports:\n"
           f"            - containerPort: 8080\n")
        _w(out, f"{base}/base/service.yaml", f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {svc}\nspec:\n"
           f"  selector: {{app: {svc}}}\n  ports:\n    - port: 80\n      targetPort: 8080\n")
        _w(out, f"{base}/base/kustomization.yaml", "resources:\n  - deployment.yaml\n  - service.yaml\n")
        for env, reps in (("staging", 1), ("production", 3)):
            _w(out, f"{base}/overlays/{env}/kustomization.yaml", f"namespace: {svc}-{env}\nresources:\n"
               f"  - ../../base\nreplicas:\n  - name: {svc}\n    count: {reps}\nimages:\n"
               f"  - name: ghcr.io/mendhak/http-https-echo\n    newTag: \"37\"\n")
    counts["files"] = sum(1 for p in out.rglob("*") if p.is_file())
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--namespaces", type=int, default=12)
    ap.add_argument("--apps-per-namespace", type=int, default=9)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print(generate(args.out, args.namespaces, args.apps_per_namespace, args.seed))


if __name__ == "__main__":
    main()
