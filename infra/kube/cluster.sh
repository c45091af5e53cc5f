#!/usr/bin/env bash
# The single-node cluster itself: network guard, PKI, etcd, control plane, containerd, kubelet,
# kube-proxy, CoreDNS. Every process is started in its own session with its pid recorded under
# $KUBE_RUN/pids, so infra/kube/down.sh stops exactly what was started here.
#
#   infra/kube/cluster.sh start | status
#
# Network safety (a rule of these machines): before any component starts, the service CIDR is
# routed onto the pod bridge (a ClusterIP packet sent before kube-proxy's rules exist never
# leaves on eth0) and the $GUARD_CHAIN chain drops anything for a private range leaving through
# eth0, and everything from the bridge to eth0. Pods reach nothing but each other and the host.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
ETCD_PORT=12379
ETCD_PEER_PORT=12380
CM_PORT=10357
SCHED_PORT=10359
CFG="$KUBE_STATE/config"
PIDS="$KUBE_RUN/pids"

alive() { local f="$PIDS/$1.pid"; [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null; }

# start NAME CMD...: run in its own session, log to $KUBE_LOGS/NAME.log, pid to $PIDS/NAME.pid.
start() {
  local name="$1"; shift
  if alive "$name"; then say "$name already running (pid $(cat "$PIDS/$name.pid"))"; return; fi
  say "start $name"
  setsid "$@" >>"$KUBE_LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.pid"
}

# put FILE: stdin into FILE only when it differs, so a re-run never touches the config of a
# running component (kube-proxy exits when its configuration file changes).
put() {
  local tmp; tmp="$(mktemp)"; cat >"$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; chmod 644 "$1"; fi
}

wait_for() {  # wait_for WHAT SECONDS CMD...
  local what="$1" secs="$2"; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || die "$what not ready after ${secs}s (logs: $KUBE_LOGS)"
    sleep 1
  done
}

# --- network ---------------------------------------------------------------------------------
network_up() {
  mkdir -p "$KUBE_STATE/sysctl"
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    say "bridge $BRIDGE $BRIDGE_IP/${POD_CIDR#*/}"
    ip link add "$BRIDGE" type bridge
  fi
  # (grep reads captured output: `cmd | grep -q` fails under pipefail when grep exits first)
  grep -q " $BRIDGE_IP/" <<<"$(ip addr show dev "$BRIDGE")" || ip addr add "$BRIDGE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  grep -q "dev $BRIDGE" <<<"$(ip route show "$SERVICE_CIDR")" || ip route replace "$SERVICE_CIDR" dev "$BRIDGE"
  # The guard chain, first in OUTPUT and FORWARD.
  # Pods and anything sourced from the bridge never leave; the machine's own resolver (how the
  # registries are found, for everyone on the machine) stays reachable; every other private
  # destination is dropped on eth0.
  iptables -w -N "$GUARD_CHAIN" 2>/dev/null || iptables -w -F "$GUARD_CHAIN"
  iptables -w -A "$GUARD_CHAIN" -i "$BRIDGE" -o "$EGRESS_IF" -j DROP
  iptables -w -A "$GUARD_CHAIN" -s "$POD_CIDR" -o "$EGRESS_IF" -j DROP
  for ns in $(awk '/^nameserver/{print $2}' /etc/resolv.conf | grep -E '^[0-9.]+$'); do
    for proto in udp tcp; do
      iptables -w -A "$GUARD_CHAIN" -o "$EGRESS_IF" -d "$ns/32" -p "$proto" --dport 53 -j RETURN
    done
  done
  for r in "${PRIVATE_RANGES[@]}" "$SERVICE_CIDR"; do
    iptables -w -A "$GUARD_CHAIN" -o "$EGRESS_IF" -d "$r" -j DROP
  done
  for chain in OUTPUT FORWARD; do
    iptables -w -C "$chain" -j "$GUARD_CHAIN" 2>/dev/null || iptables -w -I "$chain" 1 -j "$GUARD_CHAIN"
  done
  if command -v ip6tables >/dev/null; then
    ip6tables -w -N "$GUARD_CHAIN" 2>/dev/null || ip6tables -w -F "$GUARD_CHAIN"
    ip6tables -w -A "$GUARD_CHAIN" -i "$BRIDGE" -o "$EGRESS_IF" -j DROP
    ip6tables -w -A "$GUARD_CHAIN" -o "$EGRESS_IF" -d fc00::/7 -j DROP
    for chain in OUTPUT FORWARD; do
      ip6tables -w -C "$chain" -j "$GUARD_CHAIN" 2>/dev/null || ip6tables -w -I "$chain" 1 -j "$GUARD_CHAIN"
    done
  fi
  # Routed pod-to-service traffic and bridged replies through netfilter; originals kept for down.
  for key in net/ipv4/ip_forward net/bridge/bridge-nf-call-iptables net/ipv4/conf/all/route_localnet; do
    local saved="$KUBE_STATE/sysctl/${key//\//.}"
    [[ -f "$saved" ]] || cat "/proc/sys/$key" >"$saved"
  done
  echo 1 >/proc/sys/net/ipv4/ip_forward
  echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
}

# --- PKI (one CA; the admin identity is shared by the control-plane components) --------------
pki() {
  mkdir -p "$PKI"; cd "$PKI"
  [[ -f ca.crt ]] || {
    say "PKI in $PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=lienthong-kube-ca" 2>/dev/null
  }
  if [[ ! -f apiserver.crt ]]; then
    cat >apiserver.ext <<EXT
subjectAltName=IP:127.0.0.1,IP:${SERVICE_CIDR%.0/*}.1,IP:$BRIDGE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage=serverAuth
EXT
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile apiserver.ext -out apiserver.crt 2>/dev/null
  fi
  if [[ ! -f admin.crt ]]; then
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=lienthong-kube-admin" 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile client.ext -out admin.crt 2>/dev/null
  fi
  [[ -f sa.key ]] || { openssl genrsa -out sa.key 2048 2>/dev/null; openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null; }
  chmod 600 ./*.key
  cd - >/dev/null
  mkdir -p "$KUBE_DATA"
  # One kubeconfig for people and components, the certificates embedded (it is copied around).
  local kc="$KUBE_DATA/kubeconfig"
  if [[ ! -f "$kc" ]] || ! grep -q "127.0.0.1:$APISERVER_PORT" "$kc" || ! cmp -s <(grep certificate-authority-data "$kc" | awk '{print $2}') <(base64 -w0 "$PKI/ca.crt"; echo); then
    cat >"$kc" <<KC
apiVersion: v1
kind: Config
clusters:
- name: lienthong-kube
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(base64 -w0 "$PKI/admin.crt")
    client-key-data: $(base64 -w0 "$PKI/admin.key")
contexts:
- name: lienthong-kube
  context: {cluster: lienthong-kube, user: admin, namespace: $NAMESPACE}
current-context: lienthong-kube
KC
    chmod 600 "$kc"
  fi
}

# --- control plane ---------------------------------------------------------------------------
control_plane() {
  start etcd etcd --name lienthong-kube --data-dir "$KUBE_STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "lienthong-kube=http://127.0.0.1:$ETCD_PEER_PORT" --listen-metrics-urls "http://127.0.0.1:12381" \
    --quota-backend-bytes 2147483648 --snapshot-count 10000
  wait_for etcd 30 curl -fsS "http://127.0.0.1:12381/health"
  start kube-apiserver "$KUBE_BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
    --endpoint-reconciler-type none \
    --service-cluster-ip-range "$SERVICE_CIDR" --service-node-port-range 30000-32767 \
    --client-ca-file "$PKI/ca.crt" --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --kubelet-client-certificate "$PKI/admin.crt" --kubelet-client-key "$PKI/admin.key" \
    --kubelet-preferred-address-types InternalIP \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --authorization-mode Node,RBAC --anonymous-auth=false --profiling=false
  wait_for kube-apiserver 120 kctl get --raw /readyz
  start kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
    --kubeconfig "$KUBECONFIG" --authentication-kubeconfig "$KUBECONFIG" --authorization-kubeconfig "$KUBECONFIG" \
    --bind-address 127.0.0.1 --secure-port "$CM_PORT" --leader-elect=false \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --cluster-cidr "$POD_CIDR" --service-cluster-ip-range "$SERVICE_CIDR" \
    --allocate-node-cidrs=true --node-cidr-mask-size "${POD_CIDR#*/}"
  start kube-scheduler "$KUBE_BIN/kube-scheduler" \
    --kubeconfig "$KUBECONFIG" --authentication-kubeconfig "$KUBECONFIG" --authorization-kubeconfig "$KUBECONFIG" \
    --bind-address 127.0.0.1 --secure-port "$SCHED_PORT" --leader-elect=false
}

# --- node ------------------------------------------------------------------------------------
containerd_up() {
  mkdir -p "$CFG" "$KUBE_STATE/cni/net.d" "$KUBE_RUN/containerd" "$KUBE_CACHE/containerd"
  put "$CFG/containerd.toml" <<TOML
# containerd 1.6 for the lienthong kube-local node (infra/kube/cluster.sh).
version = 2
root = "$KUBE_CACHE/containerd"
state = "$KUBE_RUN/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$KUBE_STATE/cni/net.d"
    max_conf_num = 1
TOML
  put "$KUBE_STATE/cni/net.d/10-$CNI_NET.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "$CNI_NET",
  "plugins": [
    {
      "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$BRIDGE_IP", "rangeStart": "${BRIDGE_IP%.*}.10"}]],
               "routes": [{"dst": "0.0.0.0/0"}]}
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
  start containerd containerd --config "$CFG/containerd.toml"
  wait_for containerd 30 ctr --address "$CONTAINERD_SOCK" version
  bash "$KUBE_ROOT/infra/kube/images.sh" import
}

node() {
  containerd_up
  : >"$CFG/resolv.conf"   # pods resolve through the cluster DNS only; no upstream
  put "$CFG/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $BRIDGE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
resolvConf: $CFG/resolv.conf
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
podCIDR: $POD_CIDR
maxPods: 80
serializeImagePulls: false
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
evictionHard: {memory.available: 200Mi, nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}
YAML
  start kubelet "$KUBE_BIN/kubelet" --config "$CFG/kubelet.yaml" --kubeconfig "$KUBECONFIG" \
    --root-dir "$KUBE_STATE/kubelet" --cert-dir "$KUBE_STATE/kubelet-pki" \
    --hostname-override "$NODE_NAME" --node-ip "$BRIDGE_IP"
  put "$CFG/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $KUBECONFIG}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["127.0.0.1/32"]
iptables: {localhostNodePorts: true, masqueradeAll: false}
conntrack: {maxPerCore: 0, min: 0}
YAML
  start kube-proxy "$KUBE_BIN/kube-proxy" --config "$CFG/kube-proxy.yaml"
  if [[ -x "$KUBE_BIN/coredns" ]]; then
    put "$CFG/Corefile" <<COREFILE
.:53 {
    bind $DNS_IP
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $KUBECONFIG lienthong-kube
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 10
}
COREFILE
    start coredns "$KUBE_BIN/coredns" -conf "$CFG/Corefile"
  fi
  wait_for "node $NODE_NAME Ready" 180 bash -c "'$KUBE_BIN/kubectl' --kubeconfig '$KUBECONFIG' get node '$NODE_NAME' -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
  # NetworkPolicies enforced on the node: kube-router's firewall (iptables and ipset) only, no
  # routing and no service proxy. KUBE_NETWORK_POLICIES=0 leaves them unenforced.
  if [[ -x "$KUBE_BIN/kube-router" && "${KUBE_NETWORK_POLICIES:-1}" == 1 ]]; then
    touch "$KUBE_STATE/kube-router.ran"
    start kube-router "$KUBE_BIN/kube-router" --kubeconfig "$KUBECONFIG" --hostname-override "$NODE_NAME" \
      --run-firewall=true --run-router=false --run-service-proxy=false --run-loadbalancer=false \
      --service-cluster-ip-range "$SERVICE_CIDR" --enable-ipv6=false --health-port 0 --metrics-port 0 \
      --iptables-sync-period 1m --v 1
  fi
}

status() {
  for f in "$PIDS"/*.pid; do
    [[ -e "$f" ]] || continue
    n="$(basename "$f" .pid)"
    if alive "$n"; then echo "$n running (pid $(cat "$f"))"; else echo "$n NOT running"; fi
  done
}

case "${1:-start}" in
  start)
    mkdir -p "$KUBE_STATE" "$KUBE_LOGS" "$PIDS"
    [[ -x "$KUBE_BIN/kube-apiserver" ]] || die "no Kubernetes binaries; run infra/kube/build-bin.sh"
    network_up
    pki
    control_plane
    node
    say "cluster up: KUBECONFIG=$KUBECONFIG"
    ;;
  network) mkdir -p "$KUBE_STATE" "$KUBE_LOGS" "$PIDS"; network_up ;;
  containerd) mkdir -p "$KUBE_STATE" "$KUBE_LOGS" "$PIDS"; network_up; containerd_up ;;
  status) status ;;
  *) die "usage: $0 start|network|containerd|status" ;;
esac
