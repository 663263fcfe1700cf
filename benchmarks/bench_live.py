"""API requests and wall time of live ``doctor`` on two cluster sizes, beside ``kubectl get`` of the same kinds.

Starts the real test bed (etcd, kube-apiserver, controller-manager, scheduler, kwok) on loopback, fills it
with N namespaces × M Deployments (kwok runs their pods), and measures in this process:

* doctor's API requests (one paginated LIST per kind, plus /version and bounded log tails),
* doctor's wall time (collect + analyse) against ``kubectl get <same kinds> -A -o json``.

    python benchmarks/bench_live.py [--small 4x5] [--large 20x25]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubeshape.analysis import analyse  # noqa: E402
from kubeshape.config import Config  # noqa: E402
from kubeshape.inventory import Inventory  # noqa: E402
from kubeshape.sources.live import KINDS, collect, connect, to_cluster  # noqa: E402
from testbed.cluster import Cluster, NodeSpec, start_cluster  # noqa: E402


def fill(cluster: Cluster, namespaces: int, deployments: int) -> None:
    """Create namespaces and Deployments (2 replicas each) and wait until every pod is Running."""
    docs = []
    for n in range(namespaces):
        ns = f"bench-{n:03d}"
        docs.append(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n")
        for d in range(deployments):
            docs.append(f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: app-{d:03d}, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: app-{d:03d}}}}}
  template:
    metadata: {{labels: {{app: app-{d:03d}}}}}
    spec:
      containers: [{{name: app, image: "registry.bench.internal:5000/app:1.{d}.0"}}]
""")
    for i in range(0, len(docs), 200):
        cluster.kubectl("apply", "-f", "-", input="---\n".join(docs[i:i + 200]), timeout=300)
    want = namespaces * deployments * 2
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        out = cluster.kubectl("get", "pods", "-A", "--field-selector=status.phase=Running", "--no-headers",
                              check=False).stdout
        if len([line for line in out.splitlines() if line.startswith("bench-")]) >= want:
            return
        time.sleep(2)
    raise SystemExit(f"only some of {want} pods ran after 600s")


def measure(cluster: Cluster, label: str) -> dict[str, float]:
    api, _ = connect(cluster.kubeconfig, None, qps=0)
    with api.http:
        t0 = time.perf_counter()
        col = collect(api)
        report, _ = analyse(Inventory(cluster=to_cluster(col)), Config())
        doctor_s = time.perf_counter() - t0
    resources = ",".join(k.file_stem for k in KINDS if not k.optional)
    t0 = time.perf_counter()
    cluster.kubectl("get", resources, "-A", "-o", "json", timeout=600)
    kubectl_s = time.perf_counter() - t0
    objects = sum(len(d["items"]) for d in col.lists.values())
    print(f"  {label:<28} objects {objects:>6}  API requests {col.requests:>3}  doctor {doctor_s:6.2f} s  "
          f"kubectl get {kubectl_s:6.2f} s  ratio {doctor_s / kubectl_s:5.2f}  findings {len(report.findings)}")
    return {"objects": objects, "requests": col.requests, "doctor": doctor_s, "kubectl": kubectl_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", default="4x5", help="NAMESPACESxDEPLOYMENTS (default 4x5)")
    ap.add_argument("--large", default="20x25", help="NAMESPACESxDEPLOYMENTS (default 20x25)")
    args = ap.parse_args()
    sizes = [tuple(int(x) for x in s.split("x")) for s in (args.small, args.large)]
    with tempfile.TemporaryDirectory() as tmp:
        cluster = start_cluster(Path(tmp), nodes=[NodeSpec(f"node-{i}", pods="1000") for i in range(4)])
        try:
            print(f"test bed {cluster.version} up in {sum(cluster.timings.values()):.1f} s (component sum)")
            results = []
            for ns, deps in sizes:
                fill(cluster, ns, deps)  # grows the same cluster: applying the smaller set again changes nothing
                results.append(measure(cluster, f"{ns} namespaces x {deps} deployments"))
            small, large = results
            print(f"requests: {int(small['requests'])} vs {int(large['requests'])} for "
                  f"{int(small['objects'])} vs {int(large['objects'])} objects "
                  f"({large['objects'] / small['objects']:.1f}x objects; extra requests are LIST pages of 500)")
        finally:
            cluster.stop()


if __name__ == "__main__":
    subprocess.run(["bash", str(ROOT / "testbed" / "build.sh")], check=True, capture_output=True)
    main()
