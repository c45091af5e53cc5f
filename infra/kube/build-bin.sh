#!/usr/bin/env bash
# Builds the cluster's binaries into $KUBE_CACHE/bin, each skipped when already at its version:
#   kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl  (k8s.io/kubernetes)
#   helm (helm.sh/helm/v3)   coredns (optional, cluster DNS)   pause (a static Go program)
#   kube-router (NetworkPolicy enforcement: its iptables/ipset firewall only)
#   kube-network-policies (optional; needs nftables' queue, which this VM's kernel lacks)
# All from the Go module proxy. k8s.io/kubernetes points its staging modules at ./staging/..., so
# it is built from a small wrapper module whose go.mod is kubernetes' own with each staging
# replace rewritten to the published k8s.io/X v0.MINOR.PATCH, plus a require of k8s.io/kubernetes.
#
#   infra/kube/build-bin.sh [all|kubernetes|helm|coredns|pause|kube-router|knp]...
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v go >/dev/null || die "go is needed to build the Kubernetes binaries"
mkdir -p "$KUBE_BIN" "$KUBE_CACHE/src"

stamp_ok() { [[ -f "$KUBE_BIN/.$1.version" && "$(cat "$KUBE_BIN/.$1.version")" == "$2" ]]; }
stamp() { printf '%s\n' "$2" >"$KUBE_BIN/.$1.version"; }

build_kubernetes() {
  local v="$KUBE_VERSION" k8s_bins=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
  if stamp_ok kubernetes "$v"; then say "kubernetes $v binaries present"; return; fi
  local minor="${v#v1.}"; minor="${minor%%.*}"
  local staging="v0.${v#v1.}"                       # v1.37.2 -> v0.37.2
  local wrap="$KUBE_CACHE/src/kubernetes-$v"
  mkdir -p "$wrap"
  say "kubernetes $v: wrapper module in $wrap"
  local info; info="$(cd "$wrap" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$v")"
  local gomod; gomod="$(printf '%s' "$info" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  [[ -f "$gomod" ]] || die "no go.mod for k8s.io/kubernetes@$v from the module proxy"
  sed -e 's#^module k8s.io/kubernetes$#module lienthong.local/kubebuild#' \
      -e "s#=> ./staging/src/\(k8s.io/[a-z-]*\)#=> \1 $staging#" "$gomod" >"$wrap/go.mod"
  printf '\nrequire k8s.io/kubernetes %s\n' "$v" >>"$wrap/go.mod"
  {
    echo '//go:build tools'
    echo
    echo '// Package kubebuild only pins the Kubernetes commands this cluster runs.'
    echo 'package kubebuild'
    echo
    echo 'import ('
    for b in "${k8s_bins[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$b\""; done
    echo ')'
  } >"$wrap/tools.go"
  if [[ ! -f "$wrap/go.sum.done" ]]; then
    say "kubernetes $v: go mod tidy (about a minute, ~1.5 GB module cache the first time)"
    (cd "$wrap" && "${NICE[@]}" go mod tidy) && touch "$wrap/go.sum.done"
  fi
  local date; date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  local ld=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date -X $pkg.gitCommit=module-proxy-$v"
  done
  say "kubernetes $v: go build ${k8s_bins[*]} (cold: ~25 min on 2 busy cores; warm: seconds)"
  local pkgs=(); for b in "${k8s_bins[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  (cd "$wrap" && CGO_ENABLED=0 "${NICE[@]}" go build -trimpath -ldflags "-s -w$ld" -o "$KUBE_BIN/" "${pkgs[@]}")
  [[ "$("$KUBE_BIN/kube-apiserver" --version)" == *"$v"* ]] || die "kube-apiserver does not report $v"
  stamp kubernetes "$v"
}

build_helm() {
  if stamp_ok helm "$HELM_VERSION+ld"; then say "helm $HELM_VERSION present"; return; fi
  say "helm $HELM_VERSION: go install (cold: ~8 min)"
  GOBIN="$KUBE_BIN" CGO_ENABLED=0 "${NICE[@]}" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  stamp helm "$HELM_VERSION+ld"
}

build_coredns() {
  if stamp_ok coredns "$COREDNS_VERSION"; then say "coredns $COREDNS_VERSION present"; return; fi
  say "coredns $COREDNS_VERSION: go install"
  GOBIN="$KUBE_BIN" CGO_ENABLED=0 "${NICE[@]}" go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
  stamp coredns "$COREDNS_VERSION"
}

build_knp() {
  if stamp_ok kube-network-policies "$KNP_VERSION"; then say "kube-network-policies $KNP_VERSION present"; return; fi
  say "kube-network-policies $KNP_VERSION: go install"
  GOBIN="$KUBE_CACHE/src/knp-bin" CGO_ENABLED=0 "${NICE[@]}" go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/kube-network-policies/cmd@$KNP_VERSION"
  mv "$KUBE_CACHE/src/knp-bin/cmd" "$KUBE_BIN/kube-network-policies"
  stamp kube-network-policies "$KNP_VERSION"
}

# NetworkPolicy enforcement with iptables and ipset (kube-router's firewall only, no routing or
# service proxy): this kernel lacks nftables' queue expression that kube-network-policies needs.
build_kube_router() {
  if stamp_ok kube-router "$KUBE_ROUTER_VERSION"; then say "kube-router $KUBE_ROUTER_VERSION present"; return; fi
  say "kube-router $KUBE_ROUTER_VERSION: go install (cold: ~10 min)"
  GOBIN="$KUBE_BIN" CGO_ENABLED=0 "${NICE[@]}" go install -trimpath -ldflags "-s -w" \
    "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION"
  stamp kube-router "$KUBE_ROUTER_VERSION"
}

# The sandbox ("pause") container: sleeps until signalled, reaps nothing (it is PID 1 of an
# otherwise empty container). No registry to pull registry.k8s.io/pause from.
build_pause() {
  if stamp_ok pause 1; then say "pause binary present"; return; fi
  local d="$KUBE_CACHE/src/pause"; mkdir -p "$d"
  cat >"$d/go.mod" <<'GOMOD'
module lienthong.local/pause

go 1.22
GOMOD
  cat >"$d/main.go" <<'GO'
// Command pause holds a pod's namespaces open until it is told to stop.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
}
GO
  (cd "$d" && CGO_ENABLED=0 "${NICE[@]}" go build -trimpath -ldflags "-s -w" -o "$KUBE_BIN/pause" .)
  stamp pause 1
}

targets=("$@"); [[ ${#targets[@]} -eq 0 ]] && targets=(all)
for t in "${targets[@]}"; do
  case "$t" in
    all) build_pause; build_kubernetes; build_helm; build_coredns; build_kube_router ;;
    kubernetes) build_kubernetes ;;
    helm) build_helm ;;
    coredns) build_coredns ;;
    pause) build_pause ;;
    knp) build_knp ;;
    kube-router) build_kube_router ;;
    *) die "unknown target $t" ;;
  esac
done
