#!/usr/bin/env bash
# Smoke test of the test bed binaries built by testbed/build.sh (run that first).
#
#   testbed/smoke.sh            start etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
#                               kwok and the registry on 127.0.0.1 (free ports), check each is ready,
#                               run a Deployment onto a kwok node, then stop everything.
#   KEEP=1 testbed/smoke.sh     keep the temp dir (logs) afterwards.
#
# Every process it starts is stopped on exit (by PID). Nothing listens on anything but 127.0.0.1,
# and nothing dials anything but 127.0.0.1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
eval "$(grep -E '^[A-Z]+_VERSION=' "$HERE/build.sh")"   # same versions as build.sh
CACHE=${KUBESHAPE_TESTBED_CACHE:-$HOME/.cache/kubeshape-testbed}
ETCD=$CACHE/etcd-$ETCD_VERSION/etcd
K8S=$CACHE/kubernetes-$KUBERNETES_VERSION
KWOK=$CACHE/kwok-$KWOK_VERSION/kwok
REGISTRY=$CACHE/registry-$REGISTRY_VERSION/registry
KUBECTL=${KUBECTL:-kubectl}
for b in "$ETCD" "$K8S/kube-apiserver" "$K8S/kube-controller-manager" "$K8S/kube-scheduler" "$KWOK" "$REGISTRY"; do
  [[ -x $b ]] || { echo "smoke.sh: ERROR: $b missing; run testbed/build.sh first" >&2; exit 2; }
done

W=$(mktemp -d /tmp/kubeshape-smoke.XXXXXX)
PIDS=()
cleanup() {
  local rc=$? i p
  # stop in reverse start order (clients before the apiserver, the apiserver before etcd)
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    p=${PIDS[i]}
    local t0 how=TERM
    t0=$(now)
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && { how=KILL; kill -KILL "$p" 2>/dev/null || true; }
    wait "$p" 2>/dev/null || true
    echo "smoke.sh: stopped $(cat "$W/pid-$p" 2>/dev/null) (pid $p, SIG$how) in $(ms_since "$t0") ms"
  done
  if [[ $rc -ne 0 ]]; then
    echo "smoke.sh: FAILED (exit $rc); last log lines:" >&2
    for f in "$W"/*.log; do echo "--- $f" >&2; tail -n 15 "$f" >&2; done
  fi
  if [[ ${KEEP:-} == 1 || $rc -ne 0 ]]; then echo "smoke.sh: logs kept in $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT

now() { date +%s.%N; }
ms_since() { python3 -c "import sys; print(round((float(sys.argv[2]) - float(sys.argv[1])) * 1000))" "$1" "$(now)"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# start NAME CMD...: run in background, log to $W/NAME.log, remember pid and start time
start() {
  local name=$1; shift
  printf '%q ' "$@" > "$W/$name.cmd"; echo >> "$W/$name.cmd"
  echo "smoke.sh: start $name: $*"
  "$@" > "$W/$name.log" 2>&1 &
  PIDS+=($!)
  echo "$name" > "$W/pid-$!"
  eval "T0_${name//-/_}=\$(now)"
  eval "PID_${name//-/_}=\$!"
}
# wait_ready NAME TIMEOUT_S CHECK...: poll CHECK every 0.1 s until it succeeds
wait_ready() {
  local name=$1 timeout=$2; shift 2
  local t0v="T0_${name//-/_}" pidv="PID_${name//-/_}" deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    kill -0 "${!pidv}" 2>/dev/null || { echo "smoke.sh: ERROR: $name exited; see $W/$name.log" >&2; return 1; }
    ((SECONDS < deadline)) || { echo "smoke.sh: ERROR: $name not ready after ${timeout}s" >&2; return 1; }
    sleep 0.1
  done
  echo "smoke.sh: READY $name after $(ms_since "${!t0v}") ms"
}

ETCD_PORT=$(free_port); ETCD_PEER_PORT=$(free_port); API_PORT=$(free_port); KCM_PORT=$(free_port)
SCHED_PORT=$(free_port); KWOK_PORT=$(free_port); REG_PORT=$(free_port)
TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(16))')

# --- etcd
start etcd "$ETCD" --name=kubeshape --data-dir="$W/etcd-data" \
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster="kubeshape=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync --log-level=warn
wait_ready etcd 60 sh -c "curl -sf http://127.0.0.1:$ETCD_PORT/health | grep -q '\"health\":\"true\"'"

# --- kube-apiserver
openssl genrsa -out "$W/sa.key" 2048 2>/dev/null
echo "$TOKEN,kubeshape-admin,kubeshape-admin,\"system:masters\"" > "$W/tokens.csv"
cat > "$W/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster: {server: "https://127.0.0.1:$API_PORT", insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: "$TOKEN"}
contexts:
- name: testbed
  context: {cluster: testbed, user: admin}
current-context: testbed
EOF
start kube-apiserver "$K8S/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
  --cert-dir="$W/apiserver-certs" --token-auth-file="$W/tokens.csv" --authorization-mode=RBAC \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$W/sa.key" --service-account-signing-key-file="$W/sa.key" \
  --service-cluster-ip-range=10.0.0.0/24 --allow-privileged=true --endpoint-reconciler-type=none
wait_ready kube-apiserver 120 sh -c \
  "curl -skf -H 'Authorization: Bearer $TOKEN' https://127.0.0.1:$API_PORT/readyz | grep -qx ok"
curl -sk -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:$API_PORT/version" | tee "$W/version.json"
"$KUBECTL" --server="https://127.0.0.1:$API_PORT" --token="$TOKEN" --insecure-skip-tls-verify get ns

# --- kube-controller-manager, kube-scheduler, kwok (all started together)
start kube-controller-manager "$K8S/kube-controller-manager" --kubeconfig="$W/kubeconfig" --leader-elect=false \
  --bind-address=127.0.0.1 --secure-port="$KCM_PORT" \
  --service-account-private-key-file="$W/sa.key" --root-ca-file="$W/apiserver-certs/apiserver.crt" \
  --use-service-account-credentials=true --horizontal-pod-autoscaler-sync-period=5s
start kube-scheduler "$K8S/kube-scheduler" --kubeconfig="$W/kubeconfig" --leader-elect=false \
  --bind-address=127.0.0.1 --secure-port="$SCHED_PORT"
start kwok "$KWOK" --kubeconfig="$W/kubeconfig" --manage-all-nodes=true -c "$HERE/kwok/stages.yaml" \
  --cidr=10.0.1.0/24 --node-ip=127.0.0.1 --server-address="127.0.0.1:$KWOK_PORT"
wait_ready kube-controller-manager 120 curl -skf "https://127.0.0.1:$KCM_PORT/healthz"
wait_ready kube-scheduler 120 curl -skf "https://127.0.0.1:$SCHED_PORT/readyz"
wait_ready kwok 120 curl -sf "http://127.0.0.1:$KWOK_PORT/healthz"

# --- registry
mkdir -p "$W/registry-data"
cat > "$W/registry.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $W/registry-data
http:
  addr: 127.0.0.1:$REG_PORT
EOF
start registry env REGISTRY_STORAGE_DELETE_ENABLED=true OTEL_TRACES_EXPORTER=none \
  "$REGISTRY" serve "$W/registry.yml"
wait_ready registry 60 sh -c "test \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$REG_PORT/v2/)\" = 200"

# --- end to end: a kwok node, a Deployment whose pods get scheduled and run
K=("$KUBECTL" --kubeconfig="$W/kubeconfig")
t0=$(now)
"${K[@]}" apply -f - <<'EOF'
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  labels: {type: kwok, kubernetes.io/hostname: kwok-node-0}
  annotations: {kwok.x-k8s.io/node: fake}
spec:
  taints: []
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
EOF
"${K[@]}" wait --for=condition=Ready node/kwok-node-0 --timeout=60s
echo "smoke.sh: READY node kwok-node-0 after $(ms_since "$t0") ms"
t0=$(now)
"${K[@]}" create deployment smoke --image=registry.invalid/smoke:1 --replicas=2
"${K[@]}" rollout status deployment/smoke --timeout=120s
echo "smoke.sh: READY deployment smoke (2/2 available) after $(ms_since "$t0") ms"
"${K[@]}" get nodes,pods -o wide
"${K[@]}" get sa default -n default >/dev/null && "${K[@]}" get cm kube-root-ca.crt -n default >/dev/null
"${K[@]}" get events -A --sort-by=.lastTimestamp > "$W/events.txt" 2>&1 || true
echo "smoke.sh: OK"
