# Shared settings for infra/kube/*.sh (sourced, not run). Everything heavy lives outside the
# checkout so a second `make kube-up` on the same machine reuses it.
set -euo pipefail

KUBE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
HELM_VERSION="${HELM_VERSION:-v3.21.4}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.15.0}"
KNP_VERSION="${KNP_VERSION:-v0.8.0}"           # sigs.k8s.io/kube-network-policies
KUBE_ROUTER_VERSION="${KUBE_ROUTER_VERSION:-v2.1.0}" # github.com/cloudnativelabs/kube-router/v2
KUBE_CACHE="${KUBE_CACHE:-/var/cache/lienthong-kube}"   # binaries, Go caches, jars, rootfs tarballs
KUBE_STATE="${KUBE_STATE:-/var/lib/lienthong-kube}"     # the running cluster: etcd, pki, pids, logs
KUBE_BIN="$KUBE_CACHE/bin"
KUBE_LOGS="$KUBE_STATE/logs"
KUBE_RUN="${KUBE_RUN:-/run/lienthong-kube}"            # sockets, pid files
CONTAINERD_SOCK="$KUBE_RUN/containerd/containerd.sock"
PKI="$KUBE_STATE/pki"
KUBE_DATA="$KUBE_ROOT/.data/kube"                      # what a user needs: kubeconfig, credentials

# Network: pods on a local bridge, services routed onto it (the machine's network-safety rule).
BRIDGE="${KUBE_BRIDGE:-k8sbr0}"
POD_CIDR="${KUBE_POD_CIDR:-10.244.0.0/24}"
BRIDGE_IP="${KUBE_BRIDGE_IP:-10.244.0.1}"
SERVICE_CIDR="${KUBE_SERVICE_CIDR:-10.96.0.0/16}"
DNS_IP="$BRIDGE_IP"                                    # CoreDNS runs on the host, on the bridge
CNI_NET="lienthong-kube"
NODE_NAME="lienthong-node"
GATEWAY_NODEPORT="${KUBE_GATEWAY_PORT:-30880}"        # on 127.0.0.1 only (kube-proxy nodePortAddresses)
PRIVATE_RANGES=(10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 100.64.0.0/10 169.254.0.0/16)
GUARD_CHAIN="LIENTHONG-KUBE-GUARD"
APISERVER_PORT="${KUBE_APISERVER_PORT:-16443}"
NAMESPACE="${KUBE_NAMESPACE:-lienthong}"
RELEASE="${KUBE_RELEASE:-lienthong}"
EGRESS_IF="${KUBE_EGRESS_IF:-eth0}"
IMAGE_TAG="${KUBE_IMAGE_TAG:-kube-local}"
BASE_IMAGE="localhost/lienthong-base:bookworm"
PAUSE_IMAGE="localhost/pause:3.10"

# Builds are polite on a shared 2-core machine.
export GOMAXPROCS="${GOMAXPROCS:-1}"
# Go's own build and module caches (outside the checkout, shared with any other Go build here).
export GOFLAGS="-buildvcs=false"
export PATH="$KUBE_BIN:/usr/local/go/bin:/usr/sbin:/sbin:$PATH"
NICE=(nice -n 19)

export KUBECONFIG="$KUBE_DATA/kubeconfig"

say() { printf '==> [%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'kube: FAIL: %s\n' "$*" >&2; exit 1; }
need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root (containers, bridge, iptables)"; }
kctl() { "$KUBE_BIN/kubectl" --kubeconfig "$KUBECONFIG" "$@"; }

# A host CA bundle is mounted into build containers only where egress TLS is intercepted,
# i.e. where the host configures a custom bundle for pip or OpenSSL.
host_ca_bundle() {
  local f="${PIP_CERT:-${SSL_CERT_FILE:-}}"
  [[ -z "$f" ]] && f="$(pip3 config get global.cert 2>/dev/null || true)"
  [[ -n "$f" && -f "$f" ]] && printf '%s\n' "$f"
  return 0
}
