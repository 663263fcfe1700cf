#!/usr/bin/env bash
# Build the Go binaries of kubeshape's test bed from Go modules, cached by version.
#
#   testbed/build.sh [COMPONENT...]     COMPONENT: etcd kubernetes kwok registry helm actionlint vegeta
#                                       flux-source flux-kustomize flux-helm kube-score k8sgpt
#                                       (default: all but vegeta, kube-score and k8sgpt, which only the
#                                       benchmarks need, and the Flux controllers, which only the Flux tests need)
#
# Each component is built from its own Go module under testbed/go/<name>/ into
#   ${KUBESHAPE_TESTBED_CACHE:-~/.cache/kubeshape-testbed}/<component>-<version>/
# A component whose binaries for that version already exist is skipped. Builds run with
# `nice -n 19` and `go build -p 2` (2-core machine, shared with other test runs).
# Versions can be overridden by environment (KUBESHAPE_ETCD_VERSION, ...); a changed version
# rewrites that component's go.mod/go.sum (kubernetes: through gen-gomod.py).
set -euo pipefail

ETCD_VERSION=${KUBESHAPE_ETCD_VERSION:-v3.6.16}
KUBERNETES_VERSION=${KUBESHAPE_KUBERNETES_VERSION:-v1.34.12}
KWOK_VERSION=${KUBESHAPE_KWOK_VERSION:-v0.8.0}
REGISTRY_VERSION=${KUBESHAPE_REGISTRY_VERSION:-v3.1.2}
HELM_VERSION=${KUBESHAPE_HELM_VERSION:-v3.17.3}
ACTIONLINT_VERSION=${KUBESHAPE_ACTIONLINT_VERSION:-v1.7.12}
VEGETA_VERSION=${KUBESHAPE_VEGETA_VERSION:-v12.13.0}
# Flux v1.10.x needs go 1.27.0; v1.9.6 is the newest release that builds with Go 1.26.
FLUX_SOURCE_VERSION=${KUBESHAPE_FLUX_SOURCE_VERSION:-v1.9.6}
FLUX_KUSTOMIZE_VERSION=${KUBESHAPE_FLUX_KUSTOMIZE_VERSION:-v1.9.6}
# helm-controller of the same Flux release (source-controller/api v1.9.0); the proxy refuses its version list,
# not this version.
FLUX_HELM_VERSION=${KUBESHAPE_FLUX_HELM_VERSION:-v1.6.2}
# Peers that benchmarks/peers.py compares kubeshape with (k8sgpt: the newest version the proxy serves here).
KUBE_SCORE_VERSION=${KUBESHAPE_KUBE_SCORE_VERSION:-v1.20.0}
K8SGPT_VERSION=${KUBESHAPE_K8SGPT_VERSION:-v0.4.17}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${KUBESHAPE_TESTBED_CACHE:-$HOME/.cache/kubeshape-testbed}
if [[ -n ${GO:-} ]]; then :
elif [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go
else GO=$(command -v go || true)
fi
[[ -n $GO && -x $GO ]] || { echo "build.sh: ERROR: no Go toolchain found (set GO=/path/to/go)" >&2; exit 2; }
export GO
export GOTOOLCHAIN=local      # use the installed Go, never download another toolchain
export CGO_ENABLED=0          # static binaries, no C compiler needed
export GOCACHE=${KUBESHAPE_GOCACHE:-$CACHE/go-build}
GOFLAGS_BUILD=(-p 2 -trimpath)
NICE=(nice -n 19)

log() { echo "build.sh: $*"; }
die() { echo "build.sh: ERROR: $*" >&2; exit 1; }

# ensure_version DIR MODULE VERSION: pin MODULE@VERSION in DIR's go.mod (no-op if already so).
ensure_version() {
  local dir=$1 mod=$2 ver=$3 cur
  cur=$(cd "$dir" && "$GO" mod edit -json | python3 -c \
        "import json,sys; print(next((r['Version'] for r in json.load(sys.stdin).get('Require') or [] if r['Path']=='$mod'),''))")
  [[ $cur == "$ver" ]] && return 0
  log "$(basename "$dir"): go.mod has $mod ${cur:-<none>}, switching to $ver"
  cp "$dir/go.mod" "$dir/go.mod.bak"; cp "$dir/go.sum" "$dir/go.sum.bak"
  if [[ $mod == k8s.io/kubernetes ]]; then
    (cd "$dir" && "${NICE[@]}" python3 gen-gomod.py "$ver")
  elif [[ $mod == github.com/fluxcd/* ]]; then
    # `go get`, not `go mod tidy`: tidy also resolves the test imports of Flux's dependencies, some of
    # which the module proxy does not serve (e.g. fluxcd/pkg/helmtestserver); the build needs none of them.
    (cd "$dir" && "${NICE[@]}" "$GO" get "$mod@$ver")
  else
    (cd "$dir" && "$GO" mod edit -require="$mod@$ver" && "${NICE[@]}" "$GO" mod tidy)
  fi || {
    mv -f "$dir/go.mod.bak" "$dir/go.mod"; mv -f "$dir/go.sum.bak" "$dir/go.sum"
    die "could not pin $mod@$ver in $dir (is that version on the Go module proxy?); go.mod left unchanged"
  }
  rm -f "$dir/go.mod.bak" "$dir/go.sum.bak"
}

# build NAME VERSION MODULE LDFLAGS "out1=pkg1 out2=pkg2 ..."
build() {
  local name=$1 ver=$2 mod=$3 ldflags=$4 targets=$5
  local dir=$HERE/go/$name out=$CACHE/$name-$ver t missing=()
  for t in $targets; do [[ -x $out/${t%%=*} ]] || missing+=("${t%%=*}"); done
  if [[ ${#missing[@]} -eq 0 ]]; then
    log "$name $ver: cached in $out, skipped"
    return 0
  fi
  [[ -f $dir/go.mod ]] || die "$name: missing $dir/go.mod"
  ensure_version "$dir" "$mod" "$ver"
  local tmp=$out.tmp.$$ start=$SECONDS
  rm -rf "$tmp"; mkdir -p "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  log "$name $ver: building ${missing[*]} (GOCACHE=$GOCACHE) ..."
  for t in $targets; do
    local bin=${t%%=*} pkg=${t#*=}
    local cmd=("${NICE[@]}" "$GO" build "${GOFLAGS_BUILD[@]}" -ldflags "$ldflags" -o "$tmp/$bin" "$pkg")
    log "  (cd $dir && ${cmd[*]})"
    (cd "$dir" && "${cmd[@]}") || die "$name $ver: 'go build $pkg' failed (dir $dir); see the go output above"
    "$tmp/$bin" --version >/dev/null 2>&1 || "$tmp/$bin" --help >/dev/null 2>&1 \
      || "$tmp/$bin" version >/dev/null 2>&1 || die "$name $ver: built $bin does not run"
  done
  mkdir -p "$out"
  for t in $targets; do mv -f "$tmp/${t%%=*}" "$out/"; done
  rm -rf "$tmp"; trap - EXIT
  log "$name $ver: built in $((SECONDS - start))s -> $out"
}

build_etcd() {
  build etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3 "-s -w" \
    "etcd=go.etcd.io/etcd/server/v3"
}

build_kubernetes() {
  local v=$KUBERNETES_VERSION minor
  minor=$(echo "$v" | sed -E 's/^v1\.([0-9]+)\..*/\1/')
  build kubernetes "$v" k8s.io/kubernetes \
    "-s -w -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$v -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor" \
    "kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler"
}

build_kwok() {
  build kwok "$KWOK_VERSION" sigs.k8s.io/kwok \
    "-s -w" \
    "kwok=sigs.k8s.io/kwok/cmd/kwok"
}

build_registry() {
  build registry "$REGISTRY_VERSION" github.com/distribution/distribution/v3 \
    "-s -w -X github.com/distribution/distribution/v3/version.version=$REGISTRY_VERSION" \
    "registry=github.com/distribution/distribution/v3/cmd/registry"
}

build_helm() {
  build helm "$HELM_VERSION" helm.sh/helm/v3 \
    "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm=helm.sh/helm/v3/cmd/helm"
}

build_actionlint() {
  build actionlint "$ACTIONLINT_VERSION" github.com/rhysd/actionlint \
    "-s -w -X github.com/rhysd/actionlint.version=${ACTIONLINT_VERSION#v}" \
    "actionlint=github.com/rhysd/actionlint/cmd/actionlint"
}

build_vegeta() {
  build vegeta "$VEGETA_VERSION" github.com/tsenart/vegeta/v12 \
    "-s -w -X main.Version=$VEGETA_VERSION" \
    "vegeta=github.com/tsenart/vegeta/v12"
}

build_flux-source() {
  build flux-source "$FLUX_SOURCE_VERSION" github.com/fluxcd/source-controller \
    "-s -w" \
    "source-controller=github.com/fluxcd/source-controller"
}

build_flux-kustomize() {
  build flux-kustomize "$FLUX_KUSTOMIZE_VERSION" github.com/fluxcd/kustomize-controller \
    "-s -w" \
    "kustomize-controller=github.com/fluxcd/kustomize-controller"
}

build_flux-helm() {
  build flux-helm "$FLUX_HELM_VERSION" github.com/fluxcd/helm-controller \
    "-s -w" \
    "helm-controller=github.com/fluxcd/helm-controller"
}

build_kube-score() {
  build kube-score "$KUBE_SCORE_VERSION" github.com/zegl/kube-score \
    "-s -w -X main.version=${KUBE_SCORE_VERSION#v} -X main.commit=$KUBE_SCORE_VERSION" \
    "kube-score=github.com/zegl/kube-score/cmd/kube-score"
}

build_k8sgpt() {
  # k8sgpt needs modules generated by buf.build (buf.build/gen/go/k8sgpt-ai/...), which the checksum database
  # does not know: without GONOSUMDB, `go get`/`go mod tidy` fail with "verifying module: ... 404 Not Found".
  # Their hashes are then pinned by testbed/go/k8sgpt/go.sum alone. Only this build sets it.
  GONOSUMDB=buf.build/gen/go build k8sgpt "$K8SGPT_VERSION" github.com/k8sgpt-ai/k8sgpt \
    "-s -w -X main.version=$K8SGPT_VERSION -X main.commit=$K8SGPT_VERSION" \
    "k8sgpt=github.com/k8sgpt-ai/k8sgpt"
}

ALL=(etcd kubernetes kwok registry helm actionlint vegeta flux-source flux-kustomize flux-helm kube-score k8sgpt)
components=("$@")
[[ ${#components[@]} -gt 0 ]] || components=(etcd kubernetes kwok registry helm actionlint)
total=$SECONDS
for c in "${components[@]}"; do
  case $c in
    etcd|kubernetes|kwok|registry|helm|actionlint|vegeta|flux-source|flux-kustomize|flux-helm|kube-score|k8sgpt)
      "build_$c" ;;
    *) die "unknown component '$c' (want: ${ALL[*]})" ;;
  esac
done
log "done in $((SECONDS - total))s: ${components[*]} (cache $CACHE)"
