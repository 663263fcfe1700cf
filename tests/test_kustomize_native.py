"""The native kustomize renderer, cross-checked object by object against the real ``kubectl kustomize``."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
import yaml

from kubeshape.sources import kustomize
from kubeshape.sources.kustomize import KustomizeError, Unsupported, render
from kubeshape.sources.yamlio import load_yaml_text

# --------------------------------------------------------------------------- helpers


def write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text).lstrip("\n"), encoding="utf-8")


def kubectl_build(kdir: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("kubectl")
    if exe is None:
        pytest.fail("kubectl is not installed: the native renderer is cross-checked against `kubectl kustomize`")
    return subprocess.run([exe, "kustomize", str(kdir)], capture_output=True, text=True, timeout=60, check=False)


def kubectl_objects(kdir: Path) -> list[Any]:
    proc = kubectl_build(kdir)
    assert proc.returncode == 0, f"kubectl kustomize {kdir} failed: {proc.stderr}"
    return [d.data for d in load_yaml_text(proc.stdout, "kubectl output", with_lines=False) if d.data is not None]


def native_objects(kdir: Path, base: Path, **kwargs: Any) -> list[Any]:
    return [r.data for r in render(kdir, base, **kwargs)]


def assert_same(native: list[Any], expected: list[Any]) -> None:
    assert [_ident(o) for o in native] == [_ident(o) for o in expected], "different objects or order"
    for got, want in zip(native, expected, strict=True):
        assert got == want, f"{_ident(want)} differs"


def _ident(obj: Any) -> str:
    md = obj.get("metadata") or {}
    return f"{obj.get('kind')}/{md.get('namespace', '')}/{md.get('name')}"


DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: ghcr.io/example/web:1.0.0
        ports:
        - containerPort: 8080
          name: http
        env:
        - name: LOG_LEVEL
          value: info
        envFrom:
        - configMapRef: {name: web-config}
        volumeMounts:
        - {name: data, mountPath: /data}
      volumes:
      - name: data
        persistentVolumeClaim: {claimName: web-data}
"""
SERVICE = """
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: http
"""

# --------------------------------------------------------------------------- cross-check cases
# Each case: files of a tree, and the directory (relative to the tree) to build.

CASES: dict[str, tuple[dict[str, str], str]] = {
    "base_and_overlay": ({
        "apps/web/base/kustomization.yaml": """
            resources: [deployment.yaml, service.yaml, pvc.yaml, config.yaml]
        """,
        "apps/web/base/deployment.yaml": DEPLOY,
        "apps/web/base/service.yaml": SERVICE,
        "apps/web/base/pvc.yaml": """
            apiVersion: v1
            kind: PersistentVolumeClaim
            metadata: {name: web-data}
            spec:
              accessModes: [ReadWriteOnce]
              resources: {requests: {storage: 1Gi}}
        """,
        "apps/web/base/config.yaml": """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: web-config}
            data: {MODE: base}
        """,
        "apps/web/prod/kustomization.yaml": """
            apiVersion: kustomize.config.k8s.io/v1beta1
            kind: Kustomization
            namespace: web-prod
            namePrefix: prod-
            nameSuffix: -v1
            commonLabels: {env: prod}
            commonAnnotations: {owner: team-web}
            resources: [../base, namespace.yaml]
            images:
            - name: ghcr.io/example/web
              newTag: 1.2.3
            replicas:
            - name: web
              count: 3
            patches:
            - path: resources.yaml
        """,
        "apps/web/prod/namespace.yaml": """
            apiVersion: v1
            kind: Namespace
            metadata: {name: whatever}
        """,
        "apps/web/prod/resources.yaml": """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web}
            spec:
              template:
                spec:
                  containers:
                  - name: web
                    resources:
                      limits: {memory: 512Mi}
                    env:
                    - name: LOG_LEVEL
                      value: warn
                    - name: FEATURE
                      value: "on"
        """,
    }, "apps/web/prod"),
    "components": ({
        "base/kustomization.yaml": "resources: [deployment.yaml, service.yaml]\n",
        "base/deployment.yaml": DEPLOY,
        "base/service.yaml": SERVICE,
        "components/metrics/kustomization.yaml": """
            apiVersion: kustomize.config.k8s.io/v1alpha1
            kind: Component
            resources: [servicemonitor.yaml]
            commonAnnotations: {metrics: enabled}
            configMapGenerator:
            - name: metrics-config
              literals: [PORT=9090]
            patches:
            - target: {kind: Deployment}
              patch: |-
                - op: add
                  path: /spec/template/spec/containers/0/ports/-
                  value: {containerPort: 9090, name: metrics}
        """,
        "components/metrics/servicemonitor.yaml": """
            apiVersion: monitoring.coreos.com/v1
            kind: ServiceMonitor
            metadata: {name: web}
            spec:
              selector: {matchLabels: {app: web}}
              endpoints: [{port: metrics}]
        """,
        "components/debug/kustomization.yaml": """
            apiVersion: kustomize.config.k8s.io/v1alpha1
            kind: Component
            patches:
            - target: {kind: Deployment, name: web}
              patch: |-
                apiVersion: apps/v1
                kind: Deployment
                metadata: {name: web}
                spec:
                  template:
                    spec:
                      containers:
                      - name: web
                        args: [--debug]
        """,
        "overlay/kustomization.yaml": """
            resources: [../base]
            components: [../components/metrics, ../components/debug]
            namespace: staging
            configMapGenerator:
            - name: overlay-config
              literals: [A=1]
        """,
    }, "overlay"),
    "generators_and_references": ({
        "app/kustomization.yaml": """
            namespace: media
            resources: [deployment.yaml]
            generatorOptions:
              labels: {generated: "true"}
            configMapGenerator:
            - name: web-config
              literals:
              - MODE=prod
              - QUOTED="a b"
              files: [nginx.conf, custom-key=extra.txt]
              envs: [app.env]
            - name: no-hash
              literals: [X=1]
              options:
                disableNameSuffixHash: true
                annotations: {note: static}
            secretGenerator:
            - name: web-secret
              envs: [secret.env]
            - name: registry
              type: kubernetes.io/dockerconfigjson
              files: [.dockerconfigjson=docker.json]
            - name: empty-secret
            - name: odd-characters
              literals:
              - "HTML=<a href='x'>&amp;</a>"
              - "UNICODE=héllo wörld € \\u2028 ✓"
              - "TAB=a\\tb"
              - 'QUOTES="kept" ''too'''
        """,
        "app/deployment.yaml": DEPLOY + """
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: backup}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          imagePullSecrets: [{name: registry}]
          containers:
          - name: backup
            image: restic/restic:0.16.0
            env:
            - name: PASSWORD
              valueFrom: {secretKeyRef: {name: web-secret, key: PASSWORD}}
            - name: MODE
              valueFrom: {configMapKeyRef: {name: web-config, key: MODE}}
          volumes:
          - name: cfg
            projected:
              sources:
              - configMap: {name: web-config}
              - secret: {name: web-secret}
          - name: plain
            configMap: {name: no-hash}
""",
        "app/nginx.conf": "server {\n  listen 80;\n}\n",
        "app/extra.txt": "<b>&amp;</b>\n",
        "app/app.env": "# comment\nTZ=Europe/Berlin\n\nEMPTY=\nWITH_EQ=a=b\n",
        "app/secret.env": "PASSWORD=s3cr3t\nTOKEN=abc\n",
        "app/docker.json": '{"auths": {"ghcr.io": {"auth": "eDp5"}}}\n',
    }, "app"),
    "generator_merge_and_replace": ({
        "base/kustomization.yaml": """
            namespace: apps
            resources: [deployment.yaml, plain.yaml]
            configMapGenerator:
            - name: web-config
              literals: [A=1, B=2]
            - name: static
              literals: [S=1]
              options: {disableNameSuffixHash: true, labels: {kind: static}}
            secretGenerator:
            - name: tls
              type: kubernetes.io/tls
              literals: [tls.crt=cert, tls.key=key]
        """,
        "base/deployment.yaml": DEPLOY,
        "base/plain.yaml": """
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: plain
              labels: {origin: plain}
            data: {X: "1", N: 5}
        """,
        "overlay/kustomization.yaml": """
            resources: [../base]
            namePrefix: o-
            configMapGenerator:
            - name: web-config
              behavior: merge
              literals: [B=3, C=4]
              options: {labels: {merged: "yes"}}
            - name: static
              behavior: merge
              literals: [T=2]
            - name: plain
              behavior: replace
              literals: [Y=2]
            secretGenerator:
            - name: tls
              behavior: merge
              literals: [ca.crt=ca]
        """,
    }, "overlay"),
    "json6902": ({
        "base/kustomization.yaml": "resources: [deployment.yaml, service.yaml, ingress.yaml]\n",
        "base/deployment.yaml": DEPLOY,
        "base/service.yaml": SERVICE,
        "base/ingress.yaml": """
            apiVersion: networking.k8s.io/v1
            kind: Ingress
            metadata: {name: web}
            spec:
              ingressClassName: nginx
              rules:
              - host: web.example.com
                http:
                  paths:
                  - path: /
                    pathType: Prefix
                    backend: {service: {name: web, port: {number: 80}}}
        """,
        "overlay/kustomization.yaml": """
            resources: [../base]
            namePrefix: x-
            patches:
            - target: {group: networking.k8s.io, kind: Ingress, name: web}
              patch: |-
                - op: replace
                  path: /spec/rules/0/host
                  value: web.home.arpa
                - op: add
                  path: /metadata/annotations/cert-manager.io~1cluster-issuer
                  value: letsencrypt
                - op: add
                  path: /spec/tls
                  value: [{hosts: [web.home.arpa], secretName: web-tls}]
            - target: {kind: Deployment}
              patch: '[{"op": "remove", "path": "/spec/replicas"},
                {"op": "test", "path": "/metadata/name", "value": "web"}]'
            - target: {kind: Service}
              path: service-ops.yaml
            patchesJson6902:
            - target: {group: apps, version: v1, kind: Deployment, name: web}
              path: deploy-ops.yaml
        """,
        "overlay/service-ops.yaml": """
            - op: copy
              from: /spec/ports/0
              path: /spec/ports/-
            - op: replace
              path: /spec/ports/1/port
              value: 443
            - op: move
              from: /spec/selector
              path: /metadata/labels
        """,
        "overlay/deploy-ops.yaml": """
            - op: add
              path: /spec/template/spec/containers/0/args
              value: ["--port", "8080"]
            - op: replace
              path: /spec/template/spec/containers/0/env/0
              value: {name: LOG_LEVEL, value: debug}
        """,
    }, "overlay"),
    "labels_and_annotations": ({
        "kustomization.yaml": """
            resources: [workloads.yaml]
            labels:
            - pairs: {app.kubernetes.io/part-of: media}
              includeSelectors: true
            - pairs: {app.kubernetes.io/version: "2"}
              includeTemplates: true
            - pairs: {team: media}
            commonAnnotations: {contact: "ops@example.com"}
        """,
        "workloads.yaml": DEPLOY + """
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: db}}
            topologyKey: kubernetes.io/hostname
      containers: [{name: db, image: postgres:16}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 5Gi}}}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: job}
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: j, image: busybox}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: db}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: db}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
---
apiVersion: v1
kind: Service
metadata: {name: external}
spec: {type: ExternalName, externalName: example.com}
""",
    }, "."),
    "flux_app_dir": ({
        "clusters/home/apps/kustomization.yaml": "resources: [../../../apps/jellyfin]\n",
        "apps/jellyfin/kustomization.yaml": """
            apiVersion: kustomize.config.k8s.io/v1beta1
            kind: Kustomization
            namespace: media
            resources: [namespace.yaml, ocirepository.yaml, helmrelease.yaml]
            configMapGenerator:
            - name: jellyfin-values
              files: [values.yaml]
            configurations: []
        """,
        "apps/jellyfin/namespace.yaml": """
            apiVersion: v1
            kind: Namespace
            metadata: {name: media}
        """,
        "apps/jellyfin/ocirepository.yaml": """
            apiVersion: source.toolkit.fluxcd.io/v1beta2
            kind: OCIRepository
            metadata: {name: jellyfin}
            spec:
              interval: 1h
              url: oci://ghcr.io/example/charts/jellyfin
              ref: {tag: 2.1.0}
        """,
        "apps/jellyfin/helmrelease.yaml": """
            apiVersion: helm.toolkit.fluxcd.io/v2
            kind: HelmRelease
            metadata: {name: jellyfin}
            spec:
              interval: 30m
              chartRef: {kind: OCIRepository, name: jellyfin}
              valuesFrom:
              - kind: ConfigMap
                name: jellyfin-values
              values:
                image: {repository: jellyfin/jellyfin, tag: 10.9.0}
                persistence: {config: {enabled: true, size: 10Gi}}
        """,
        "apps/jellyfin/values.yaml": "replicaCount: 1\n",
    }, "clusters/home/apps"),
    "strategic_merge_lists": ({
        "kustomization.yaml": """
            resources: [pod.yaml, service.yaml]
            patches:
            - path: patch.yaml
            - target: {kind: Service}
              patch: |-
                apiVersion: v1
                kind: Service
                metadata: {name: any}
                spec:
                  ports:
                  - {port: 53, protocol: UDP, name: dns-udp}
        """,
        "pod.yaml": """
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: app
              creationTimestamp: null
              finalizers: [a, b]
            spec:
              template:
                metadata: {annotations: null}
                spec:
                  tolerations: [{key: a, operator: Exists}]
                  volumes:
                  - {name: v1, emptyDir: {}}
                  - {name: v2, configMap: {name: x}}
                  initContainers:
                  - {name: init, image: busybox}
                  containers:
                  - name: a
                    image: nginx
                    args: [x, y]
                    env: [{name: E1, value: "1"}, {name: E2, value: "2"}]
                    ports: [{containerPort: 80, protocol: TCP}, {containerPort: 443}]
                  - {name: b, image: busybox}
                  - {name: c, image: alpine}
        """,
        "service.yaml": """
            apiVersion: v1
            kind: Service
            metadata: {name: dns}
            spec:
              ports:
              - {port: 53, protocol: TCP, name: dns-tcp}
        """,
        "patch.yaml": """
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: app
              finalizers: [c, a]
            spec:
              template:
                spec:
                  tolerations: [{key: b, operator: Exists}]
                  volumes: [{name: v3, emptyDir: {}}]
                  initContainers:
                  - name: init
                    $patch: delete
                  containers:
                  - name: b
                    image: busybox:2
                    env: [{name: E3, value: "3"}]
                  - name: a
                    args: [z]
                    env:
                    - {name: E2, value: two}
                    - {name: E1, $patch: delete}
                    ports: [{containerPort: 80, name: http}, {containerPort: 8080}]
                    resources: {limits: {cpu: 100m}, requests: null}
                  - name: c
                    $patch: delete
                  - name: d
                    image: new
                    env: [{name: X, value: null}]
                  securityContext:
                    $patch: replace
                    runAsUser: 1000
        """,
    }, "."),
    "namespace_and_rbac": ({
        "base/kustomization.yaml": """
            namespace: monitoring
            namePrefix: mon-
            resources: [rbac.yaml, crd.yaml]
        """,
        "base/rbac.yaml": """
            apiVersion: v1
            kind: ServiceAccount
            metadata: {name: agent}
            ---
            apiVersion: v1
            kind: ServiceAccount
            metadata: {name: default}
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: ClusterRole
            metadata: {name: reader}
            rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: Role
            metadata: {name: reader}
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: ClusterRoleBinding
            metadata: {name: agent}
            roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader}
            subjects:
            - {kind: ServiceAccount, name: agent, namespace: monitoring}
            - {kind: ServiceAccount, name: agent}
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: RoleBinding
            metadata: {name: agent}
            roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
            subjects:
            - {kind: ServiceAccount, name: agent}
            - {kind: ServiceAccount, name: default}
            - {kind: ServiceAccount, name: other, namespace: kube-system}
            - {kind: User, name: admin}
        """,
        "base/crd.yaml": """
            apiVersion: apiextensions.k8s.io/v1
            kind: CustomResourceDefinition
            metadata: {name: widgets.example.com}
            spec:
              group: example.com
              names: {kind: Widget, plural: widgets}
              scope: Namespaced
              versions: [{name: v1, served: true, storage: true}]
            ---
            apiVersion: cert-manager.io/v1
            kind: ClusterIssuer
            metadata: {name: letsencrypt}
            ---
            apiVersion: v1
            kind: Namespace
            metadata: {name: monitoring}
            ---
            apiVersion: admissionregistration.k8s.io/v1
            kind: ValidatingWebhookConfiguration
            metadata: {name: hook}
            webhooks:
            - name: hook.example.com
              clientConfig: {service: {name: hook, namespace: monitoring}}
        """,
        "overlay/kustomization.yaml": """
            namespace: observability
            nameSuffix: -x
            resources: [../base]
        """,
    }, "overlay"),
    "name_references": ({
        "kustomization.yaml": """
            namePrefix: p-
            resources: [all.yaml]
        """,
        "all.yaml": """
            apiVersion: apps/v1
            kind: StatefulSet
            metadata: {name: db}
            spec:
              serviceName: db
              template:
                spec:
                  serviceAccountName: db
                  priorityClassName: important
                  containers: [{name: db, image: postgres}]
              volumeClaimTemplates:
              - metadata: {name: data}
                spec: {storageClassName: fast}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: db}
            ---
            apiVersion: v1
            kind: ServiceAccount
            metadata: {name: db}
            ---
            apiVersion: scheduling.k8s.io/v1
            kind: PriorityClass
            metadata: {name: important}
            value: 1000
            ---
            apiVersion: storage.k8s.io/v1
            kind: StorageClass
            metadata: {name: fast}
            provisioner: rancher.io/local-path
            ---
            apiVersion: autoscaling/v2
            kind: HorizontalPodAutoscaler
            metadata: {name: db}
            spec:
              scaleTargetRef: {apiVersion: apps/v1, kind: StatefulSet, name: db}
              minReplicas: 1
              maxReplicas: 3
            ---
            apiVersion: networking.k8s.io/v1
            kind: Ingress
            metadata:
              name: db
              annotations: {nginx.ingress.kubernetes.io/auth-secret: basic-auth}
            spec:
              ingressClassName: nginx
              tls: [{secretName: tls}]
              defaultBackend: {service: {name: db, port: {number: 5432}}}
            ---
            apiVersion: v1
            kind: Secret
            metadata: {name: basic-auth}
            ---
            apiVersion: v1
            kind: Secret
            metadata: {name: tls}
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: db}
            spec:
              rules: [{backendRefs: [{name: db, port: 5432}]}]
        """,
    }, "."),
    "diamond_base_reuse": ({
        "base/kustomization.yaml": "resources: [app.yaml]\nconfigMapGenerator:\n- name: cfg\n  literals: [A=1]\n",
        "base/app.yaml": """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: app}
            spec:
              template:
                spec:
                  containers:
                  - name: app
                    image: app:1
                    envFrom: [{configMapRef: {name: cfg}}]
        """,
        "blue/kustomization.yaml": "namePrefix: blue-\nresources: [../base]\n",
        "green/kustomization.yaml": "namePrefix: green-\nresources: [../base]\ncommonLabels: {slot: green}\n",
        "top/kustomization.yaml": "resources: [../blue, ../green]\nnamespace: apps\n",
    }, "top"),
    "legacy_fields": ({
        "base/kustomization.yml": """
            resources: [deployment.yaml]
            configMapGenerator:
            - name: env-config
              env: config.env
        """,
        "base/deployment.yaml": DEPLOY,
        "base/config.env": "A=1\n",
        "overlay/Kustomization": """
            bases: [../base]
            imageTags:
            - name: ghcr.io/example/web
              newName: registry.home.arpa/web
            patchesStrategicMerge:
            - replicas.yaml
            - |-
              apiVersion: apps/v1
              kind: Deployment
              metadata:
                name: web
              spec:
                template:
                  metadata:
                    annotations: {inline: "true"}
        """,
        "overlay/replicas.yaml": """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web}
            spec: {replicas: 5}
        """,
    }, "overlay"),
    "sort_options_fifo": ({
        "kustomization.yaml": """
            resources: [a.yaml]
            sortOptions: {order: fifo}
            configMapGenerator: [{name: gen, literals: [a=b]}]
        """,
        "a.yaml": DEPLOY + "---\n" + dedent(SERVICE) + """
---
apiVersion: v1
kind: Namespace
metadata: {name: last}
""",
    }, "."),
    "sort_options_legacy_custom": ({
        "kustomization.yaml": """
            resources: [a.yaml]
            sortOptions:
              order: legacy
              legacySortOptions:
                orderFirst: [Service, Deployment]
                orderLast: [Namespace]
        """,
        "a.yaml": DEPLOY + "---\n" + dedent(SERVICE) + """
---
apiVersion: v1
kind: Namespace
metadata: {name: ns}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: b, namespace: z}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: a, namespace: z-a}
""",
    }, "."),
    "patch_targets": ({
        "kustomization.yaml": """
            resources: [objs.yaml]
            patches:
            - target: {kind: Deployment, name: "api-.*", labelSelector: "tier in (backend),!legacy"}
              patch: |-
                - op: add
                  path: /metadata/labels/patched
                  value: "yes"
            - target: {annotationSelector: "backup=true"}
              patch: |-
                - op: add
                  path: /metadata/annotations/checked
                  value: "1"
            - target: {kind: ConfigMap, name: old-name}
              options: {allowNameChange: true}
              patch: |-
                apiVersion: v1
                kind: ConfigMap
                metadata: {name: new-name}
            - path: delete.yaml
            - target: {kind: Nothing}
              patch: |-
                - op: add
                  path: /x
                  value: 1
        """,
        "delete.yaml": """
            apiVersion: v1
            kind: Secret
            metadata: {name: unwanted}
            $patch: delete
        """,
        "objs.yaml": """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: api-a, labels: {tier: backend}, annotations: {backup: "true"}}
            ---
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: api-b, labels: {tier: backend, legacy: "1"}}
            ---
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web, labels: {tier: backend}}
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: old-name}
            ---
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: user}
            spec:
              template:
                spec:
                  volumes: [{name: c, configMap: {name: old-name}}]
            ---
            apiVersion: v1
            kind: Secret
            metadata: {name: unwanted}
        """,
    }, "."),
    "documents_lists_local_config": ({
        "kustomization.yaml": "resources: [multi.yaml, list.yaml]\nnamespace: docs\n",
        "multi.yaml": """
            # leading comment
            ---
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: local
              annotations: {config.kubernetes.io/local-config: "true"}
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: kept
              annotations: {config.kubernetes.io/local-config: "false", port: 8080}
              labels: {}
            data: {when: "2024-01-01"}
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: empty-annotations
              annotations: {}
        """,
        "list.yaml": """
            apiVersion: v1
            kind: List
            items:
            - apiVersion: v1
              kind: ConfigMap
              metadata: {name: from-list}
            - apiVersion: v1
              kind: Secret
              metadata: {name: from-list}
        """,
    }, "."),
    "images": ({
        "kustomization.yaml": """
            resources: [w.yaml]
            images:
            - name: nginx
              newTag: "1.27"
            - name: ghcr.io/org/app
              newName: registry.home.arpa/app
              digest: sha256:0123456789abcdef
            - name: busybox
              newName: docker.io/library/busybox
            - name: localhost:5000/tool
              newTag: v2
            - name: postgres
              newTag: "16"
              digest: sha256:feedface
        """,
        "w.yaml": """
            apiVersion: apps/v1
            kind: DaemonSet
            metadata: {name: d}
            spec:
              template:
                spec:
                  initContainers: [{name: i, image: busybox}]
                  containers:
                  - {name: a, image: nginx}
                  - {name: b, image: "ghcr.io/org/app:1.0@sha256:abc"}
                  - {name: c, image: "nginx@sha256:123"}
                  - {name: e, image: "localhost:5000/tool:1"}
                  - {name: f, image: "nginxx:1"}
                  - {name: g, image: "docker.io/nginx:1"}
                  - {name: h, image: "postgres:15"}
                  - {name: no-image}
            ---
            apiVersion: example.com/v1
            kind: Widget
            metadata: {name: w}
            spec:
              podTemplate:
                containers: [{name: z, image: nginx}]
        """,
    }, "."),
    "homelab_cluster": ({
        "infrastructure/controllers/kustomization.yaml": """
            resources: [cert-manager, ingress-nginx]
        """,
        "infrastructure/controllers/cert-manager/kustomization.yaml": """
            namespace: cert-manager
            resources: [namespace.yaml, repository.yaml, release.yaml]
        """,
        "infrastructure/controllers/cert-manager/namespace.yaml": """
            apiVersion: v1
            kind: Namespace
            metadata: {name: cert-manager}
        """,
        "infrastructure/controllers/cert-manager/repository.yaml": """
            apiVersion: source.toolkit.fluxcd.io/v1
            kind: HelmRepository
            metadata: {name: jetstack}
            spec: {interval: 24h, url: https://charts.jetstack.io}
        """,
        "infrastructure/controllers/cert-manager/release.yaml": """
            apiVersion: helm.toolkit.fluxcd.io/v2
            kind: HelmRelease
            metadata: {name: cert-manager}
            spec:
              interval: 30m
              chart:
                spec:
                  chart: cert-manager
                  version: "1.15.x"
                  sourceRef: {kind: HelmRepository, name: jetstack}
              values: {crds: {enabled: true}}
        """,
        "infrastructure/controllers/ingress-nginx/kustomization.yaml": """
            namespace: ingress-nginx
            resources: [release.yaml]
            patches:
            - target: {kind: HelmRelease}
              patch: |-
                apiVersion: helm.toolkit.fluxcd.io/v2
                kind: HelmRelease
                metadata: {name: x}
                spec:
                  values:
                    controller:
                      replicaCount: 2
                      extraArgs: {enable-ssl-passthrough: "true"}
        """,
        "infrastructure/controllers/ingress-nginx/release.yaml": """
            apiVersion: helm.toolkit.fluxcd.io/v2
            kind: HelmRelease
            metadata: {name: ingress-nginx}
            spec:
              interval: 30m
              chart:
                spec:
                  chart: ingress-nginx
                  sourceRef: {kind: HelmRepository, name: ingress-nginx, namespace: flux-system}
              values:
                controller:
                  replicaCount: 1
                  service: {type: LoadBalancer}
                  tolerations: [{key: a, operator: Exists}]
        """,
    }, "infrastructure/controllers"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_kubectl_kustomize(case: str, tmp_path: Path) -> None:
    files, target = CASES[case]
    write_tree(tmp_path, files)
    kdir = tmp_path / target
    assert_same(native_objects(kdir, tmp_path), kubectl_objects(kdir))


def test_flux_extra_fields_match_a_wrapping_kustomization(tmp_path: Path) -> None:
    files, _ = CASES["base_and_overlay"]
    write_tree(tmp_path, {**files, "apps/web/extra-component/kustomization.yaml": """
        apiVersion: kustomize.config.k8s.io/v1alpha1
        kind: Component
        commonAnnotations: {from: component}
    """})
    extra = {
        "namespace": "flux-target",
        "labels": [{"pairs": {"toolkit.fluxcd.io/tenant": "web"}}],
        "commonAnnotations": {"flux": "yes"},
        "images": [{"name": "ghcr.io/example/web", "newTag": "9.9.9"}],
        "components": ["../extra-component"],
        "patches": [{"target": {"kind": "Service"}, "patch": "- op: add\n  path: /spec/type\n  value: NodePort\n"}],
    }
    wrapper = dict(extra, resources=["../prod"], components=["../extra-component"])
    write_tree(tmp_path, {"apps/web/wrapper/kustomization.yaml": _json(wrapper)})
    native = native_objects(tmp_path / "apps/web/prod", tmp_path, extra=extra)
    assert_same(native, kubectl_objects(tmp_path / "apps/web/wrapper"))


def test_flux_generated_kustomization_matches_one_listing_the_files(tmp_path: Path) -> None:
    files = {
        "plain/app.yaml": DEPLOY,
        "plain/svc.yaml": SERVICE,
        "plain/sub/kustomization.yaml": "resources: [cm.yaml]\n",
        "plain/sub/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-config}\n",
    }
    write_tree(tmp_path, files)
    listed = ["app.yaml", "sub", "svc.yaml"]
    native = native_objects(tmp_path / "plain", tmp_path, extra={"namespace": "gen"}, generate=lambda _: listed)
    write_tree(tmp_path, {**{k.replace("plain/", "listed/"): v for k, v in files.items()},
                          "listed/kustomization.yaml": _json({"resources": listed, "namespace": "gen"})})
    assert_same(native, kubectl_objects(tmp_path / "listed"))


# Pairs of (object ports, patch ports) probed against kubectl: merges on several keys
# (containerPort + protocol) drop, keep or fold items depending on which keys are present.
PORT_MERGES = [
    ("[{containerPort: 80, protocol: TCP}]", "[{containerPort: 80, name: x}]"),
    ("[{containerPort: 80}]", "[{containerPort: 80, name: x}]"),
    ("[{containerPort: 80}]", "[{containerPort: 80, protocol: TCP, name: x}]"),
    ("[{containerPort: 80, protocol: TCP}]", "[{containerPort: 8080}]"),
    ("[{containerPort: 80, protocol: TCP}, {containerPort: 443}]",
     "[{containerPort: 8080}, {containerPort: 80, name: y}]"),
    ("[{containerPort: 80, protocol: UDP}]", "[{containerPort: 80, protocol: TCP}]"),
    ("[{containerPort: 53, protocol: UDP}]",
     "[{containerPort: 53}, {containerPort: 80}, {containerPort: 53, protocol: TCP}]"),
    ("[{containerPort: 443}, {containerPort: 80, protocol: TCP}]",
     "[{containerPort: 8080}, {containerPort: 80, $patch: delete}]"),
]


def test_multi_key_list_merges_match_kubectl(tmp_path: Path) -> None:
    docs, patches = [], []
    for i, (ports, patch) in enumerate(PORT_MERGES):
        docs.append(f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d{i}}}\nspec:\n  template:\n"
                    f"    spec:\n      containers:\n      - name: c\n        ports: {ports}\n")
        patches.append(docs[-1].replace(ports, patch))
        svc = "apiVersion: v1\nkind: Service\nmetadata: {name: s%d}\nspec:\n  ports: %s\n"
        docs.append(svc % (i, ports.replace("containerPort", "port")))
        patches.append(svc % (i, patch.replace("containerPort", "port")))
    write_tree(tmp_path, {"r.yaml": "---\n".join(docs), "p.yaml": "---\n".join(patches),
                          "kustomization.yaml": "resources: [r.yaml]\npatchesStrategicMerge: [p.yaml]\n"})
    assert_same(native_objects(tmp_path, tmp_path), kubectl_objects(tmp_path))


def _random_container(rng: random.Random, tag: str, name: str) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name}
    if rng.random() < 0.7:
        container["image"] = f"{tag}:{rng.randint(0, 9)}"
    if rng.random() < 0.5:
        container["env"] = []
        for var in rng.sample(["X", "Y", "Z"], rng.randint(0, 3)):
            choice = rng.random()
            value: dict[str, Any] = {"name": var}
            if choice < 0.6:
                value["value"] = f"{tag}{rng.randint(0, 9)}"
            elif choice < 0.75:
                value["value"] = None
            elif choice < 0.85 and tag == "patch":
                value["$patch"] = "delete"
            else:
                value["valueFrom"] = {"fieldRef": {"fieldPath": "metadata.name"}}
            container["env"].append(value)
    if rng.random() < 0.3:
        container["ports"] = [{"containerPort": rng.choice([80, 443]), **({"protocol": "UDP"} if rng.random() < 0.3
                                                                           else {})}]
    if rng.random() < 0.3:
        container["args"] = [f"--{tag}"]
    if rng.random() < 0.3:
        container["resources"] = {"limits": {"cpu": rng.choice(["1", None]) if tag == "patch" else "2"}}
    if tag == "patch" and rng.random() < 0.1:
        container["$patch"] = rng.choice(["delete", "replace"])
    return container


def _random_pod_spec(rng: random.Random, tag: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [_random_container(rng, tag, n) for n in
                                           rng.sample(["a", "b", "c"], rng.randint(0 if tag == "patch" else 1, 3))]}
    if rng.random() < 0.3:
        spec["volumes"] = [{"name": n, "emptyDir": {}} for n in rng.sample(["v1", "v2", "v3"], rng.randint(0, 2))]
    if rng.random() < 0.3:
        spec["tolerations"] = [{"key": tag, "operator": "Exists"}]
    if rng.random() < 0.2:
        spec["nodeSelector"] = None if tag == "patch" and rng.random() < 0.5 else {"disk": tag}
    return spec


def test_random_strategic_merge_patches_match_kubectl(tmp_path: Path) -> None:
    rng = random.Random(20241201)
    docs, patches = [], []
    for i in range(120):
        meta: dict[str, Any] = {"name": f"d{i}"}
        if rng.random() < 0.3:
            meta["finalizers"] = rng.sample(["f1", "f2", "f3"], rng.randint(1, 3))
        docs.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                     "spec": {"template": {"spec": _random_pod_spec(rng, "object")}}})
        patch_meta: dict[str, Any] = {"name": f"d{i}"}
        if rng.random() < 0.3:
            patch_meta["finalizers"] = rng.sample(["f1", "f4"], rng.randint(1, 2))
        patches.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": patch_meta,
                        "spec": {"template": {"spec": _random_pod_spec(rng, "patch")}}})
    write_tree(tmp_path, {"r.yaml": yaml.safe_dump_all(docs), "p.yaml": yaml.safe_dump_all(patches),
                          "kustomization.yaml": "resources: [r.yaml]\npatchesStrategicMerge: [p.yaml]\n"})
    assert_same(native_objects(tmp_path, tmp_path), kubectl_objects(tmp_path))


def _json(data: Any) -> str:
    import json

    return json.dumps(data)


# --------------------------------------------------------------------------- unsupported input


@pytest.mark.parametrize(("kustomization", "reason"), [
    ("helmCharts:\n- name: podinfo\n  repo: https://stefanprodan.github.io/podinfo\n", "helmCharts"),
    ("resources:\n- https://github.com/example/repo//deploy?ref=v1.0.0\n", "remote resource"),
    ("resources:\n- github.com/example/repo/deploy?ref=main\n", "remote resource"),
    ("resources: [app.yaml]\nreplacements:\n- source: {kind: ConfigMap, name: x}\n  targets: []\n", "replacements"),
    ("resources: [app.yaml]\ntransformers: [t.yaml]\n", "transformers"),
    ("resources: [app.yaml]\nvars:\n- name: X\n  objref: {kind: Service, name: web, apiVersion: v1}\n", "vars"),
    ("resources: [../../outside]\n", "outside the repository"),
    ("resources: [app.yaml]\nbuildMetadata: [originAnnotations]\n", "buildMetadata"),
])
def test_unsupported_features_name_the_reason(tmp_path: Path, kustomization: str, reason: str) -> None:
    write_tree(tmp_path, {"repo/app/kustomization.yaml": kustomization, "repo/app/app.yaml": SERVICE,
                          "outside/kustomization.yaml": "resources: []\n"})
    with pytest.raises(Unsupported, match=reason):
        render(tmp_path / "repo/app", tmp_path / "repo")


# --------------------------------------------------------------------------- broken kustomizations


@pytest.mark.parametrize(("files", "message"), [
    ({"app/kustomization.yaml": "resources: [missing.yaml]\n"}, r"app/kustomization.yaml: resource 'missing.yaml'"),
    ({"app/kustomization.yaml": "resources: [../loop]\n", "loop/kustomization.yaml": "resources: [../app]\n"},
     "cycle detected"),
    ({"app/kustomization.yaml": "resources: [bad.yaml]\n", "app/bad.yaml": "kind: [unclosed\n"},
     r"app/bad.yaml:\d+:\d+: invalid YAML"),
    ({"app/kustomization.yaml": "resources: [../nokust]\n", "nokust/x.yaml": SERVICE}, "nokust: unable to find"),
    ({"app/kustomization.yaml": "resources: [a.yaml, b.yaml]\n", "app/a.yaml": SERVICE, "app/b.yaml": SERVICE},
     "already registered id: Service web"),
    ({"app/kustomization.yaml": "resources: [a.yaml]\n", "app/a.yaml": "apiVersion: v1\nkind: ConfigMap\n"},
     r"app/a.yaml:1: missing metadata.name"),
    ({"app/kustomization.yaml": "patches: [{path: p.yaml}]\nresources: [a.yaml]\n", "app/a.yaml": SERVICE,
      "app/p.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: other}\n"}, "no matches for patch target"),
    ({"app/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"},
     "kustomization is empty"),
    # the legacy field, unlike `patches`, leaves an object without annotations without the map
    ({"app/kustomization.yaml": "resources: [a.yaml]\npatchesJson6902:\n- target: {version: v1, kind: Service, "
                                "name: web}\n  patch: '[{\"op\": \"add\", \"path\": \"/metadata/annotations/x\", "
                                "\"value\": \"1\"}]'\n", "app/a.yaml": SERVICE}, "doc is missing path"),
])
def test_broken_kustomizations_raise_like_kubectl(tmp_path: Path, files: dict[str, str], message: str) -> None:
    write_tree(tmp_path, files)
    with pytest.raises(KustomizeError, match=message):
        render(tmp_path / "app", tmp_path)
    assert kubectl_build(tmp_path / "app").returncode != 0, "kubectl accepted what the native renderer rejects"


# --------------------------------------------------------------------------- provenance and cache


def _line_of(text: str, needle: str) -> int:
    return dedent(text).lstrip("\n").splitlines().index(needle) + 1


def test_objects_from_a_base_point_at_the_base_file_and_line(tmp_path: Path) -> None:
    files, target = CASES["base_and_overlay"]
    two_docs = "# the service\n" + dedent(SERVICE).lstrip() + "---\n" + dedent(DEPLOY).lstrip().replace(
        "name: web\n", "name: web2\n", 1)
    write_tree(tmp_path, {**files, "apps/web/base/service.yaml": two_docs})
    out = {(r.data["kind"], r.data["metadata"]["name"]): r for r in render(tmp_path / target, tmp_path)}

    svc = out[("Service", "prod-web-v1")]
    assert (svc.file, svc.line) == ("apps/web/base/service.yaml", 2)
    second = out[("Deployment", "prod-web2-v1")]
    start = _line_of(two_docs, "---") + 1
    assert (second.file, second.line) == ("apps/web/base/service.yaml", start)
    assert second.lines["spec.template.spec.containers[0].image"] == _line_of(
        two_docs, "        image: ghcr.io/example/web:1.0.0")
    # patched and transformed, but still attributed to the base document
    assert second.data["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/example/web:1.2.3"
    assert out[("Namespace", "web-prod")].file == "apps/web/prod/namespace.yaml"


def test_generated_objects_point_at_their_generator(tmp_path: Path) -> None:
    files, target = CASES["generators_and_references"]
    write_tree(tmp_path, files)
    by_name = {r.data["metadata"]["name"].rsplit("-", 1)[0]: r for r in render(tmp_path / target, tmp_path)}
    kustomization = files["app/kustomization.yaml"]
    assert (by_name["web-secret"].file, by_name["web-secret"].line) == (
        "app/kustomization.yaml", _line_of(kustomization, "- name: web-secret"))
    assert by_name["web-config"].line == _line_of(kustomization, "- name: web-config")


def test_shared_base_is_read_once_per_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_tree(tmp_path, {
        "base/kustomization.yaml": "resources: [deployment.yaml, service.yaml]\n",
        "base/deployment.yaml": DEPLOY,
        "base/service.yaml": SERVICE,
        **{f"{env}/kustomization.yaml": f"resources: [../base]\nnamespace: {env}\n" for env in ("dev", "qa", "prod")},
    })
    reads: list[str] = []
    original = kustomize.load_yaml_file

    def counting(path: Path, display: str | None = None) -> Any:
        reads.append(Path(path).relative_to(tmp_path).as_posix())
        return original(path, display)

    monkeypatch.setattr(kustomize, "load_yaml_file", counting)
    cache: dict[Any, Any] = {}
    namespaces = []
    for env in ("dev", "qa", "prod"):
        namespaces.append({r.data["metadata"]["namespace"] for r in render(tmp_path / env, tmp_path, cache=cache)})
    assert namespaces == [{"dev"}, {"qa"}, {"prod"}]
    assert sorted(reads) == sorted(["base/kustomization.yaml", "base/deployment.yaml", "base/service.yaml",
                                    "dev/kustomization.yaml", "qa/kustomization.yaml", "prod/kustomization.yaml"])

    # An edited file is read again, even with the same cache.
    reads.clear()
    path = tmp_path / "base/service.yaml"
    path.write_text(dedent(SERVICE).replace("port: 80", "port: 8080"), encoding="utf-8")
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9,) * 2)
    out = render(tmp_path / "dev", tmp_path, cache=cache)
    assert reads == ["base/service.yaml"]
    assert [r.data["spec"]["ports"][0]["port"] for r in out if r.data["kind"] == "Service"] == [8080]


def test_render_does_not_mutate_cached_documents(tmp_path: Path) -> None:
    files, target = CASES["base_and_overlay"]
    write_tree(tmp_path, files)
    cache: dict[Any, Any] = {}
    first = native_objects(tmp_path / target, tmp_path, cache=cache)
    second = native_objects(tmp_path / target, tmp_path, cache=cache)
    assert first == second
    assert native_objects(tmp_path / "apps/web/base", tmp_path, cache=cache) == kubectl_objects(
        tmp_path / "apps/web/base")
