#!/usr/bin/env bash
# Removes everything infra/kube/cluster.sh and up.sh made, in reverse: the pods (so the kubelet
# tears down their sandboxes and CNI state), the processes (by recorded pid), leftover containers
# of our containerd, the kubelet's mounts and iptables chains, kube-proxy's rules, the bridge and
# its routes, the guard chain, the sysctls. Caches in $KUBE_CACHE (binaries, images) stay, so the
# next kube-up is quick; KUBE_DOWN_PURGE=1 also deletes them.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
PIDS="$KUBE_RUN/pids"

alive() { local f="$PIDS/$1.pid"; [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null; }

stop_pid() {  # stop_pid NAME: SIGTERM, up to 20 s, then SIGKILL
  local name="$1" f="$PIDS/$1.pid" pid
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    say "stop $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# 1. Workloads first, while the kubelet can still tear sandboxes down properly.
if alive kube-apiserver && alive kubelet && [[ -f "$KUBECONFIG" ]]; then
  say "delete the workloads (namespace $NAMESPACE) and wait for their pods to go"
  stop_pid port-forward
  kctl delete namespace "$NAMESPACE" --wait=false --ignore-not-found >/dev/null 2>&1 || true
  for _ in $(seq 1 90); do
    [[ -z "$(kctl get pods -A --no-headers 2>/dev/null)" ]] && break
    sleep 1
  done
  kctl delete pods -A --all --grace-period=0 --force >/dev/null 2>&1 || true
  sleep 3
fi

# 2. Processes, node side first.
for n in port-forward kube-router coredns kube-proxy kubelet; do stop_pid "$n"; done

# 3. Whatever our containerd still runs (pods the kubelet did not finish with).
if alive containerd && [[ -S "$CONTAINERD_SOCK" ]]; then
  for ns in k8s.io; do
    for t in $(ctr --address "$CONTAINERD_SOCK" -n "$ns" tasks ls -q 2>/dev/null); do
      ctr --address "$CONTAINERD_SOCK" -n "$ns" tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
    done
    sleep 1
    for t in $(ctr --address "$CONTAINERD_SOCK" -n "$ns" tasks ls -q 2>/dev/null); do
      ctr --address "$CONTAINERD_SOCK" -n "$ns" tasks delete -f "$t" >/dev/null 2>&1 || true
    done
    for c in $(ctr --address "$CONTAINERD_SOCK" -n "$ns" containers ls -q 2>/dev/null); do
      ctr --address "$CONTAINERD_SOCK" -n "$ns" containers delete "$c" >/dev/null 2>&1 || true
    done
  done
fi
stop_pid containerd
# Shims of our containerd (they outlive it by design); found by our socket in their command line.
for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" 2>/dev/null || true); do
  say "stop containerd shim (pid $p)"; kill -KILL "$p" 2>/dev/null || true
done
for n in kube-scheduler kube-controller-manager kube-apiserver etcd; do stop_pid "$n"; done

# 4. Network namespaces of our sandboxes (named cni-*, made by our containerd), mounts.
if [[ -d "$KUBE_STATE/kubelet" ]]; then
  { grep " $KUBE_STATE/kubelet" /proc/self/mounts || true; } | awk '{print $2}' | sort -r | while read -r m; do
    umount -l "$(printf '%b' "$m")" 2>/dev/null || true
  done
fi
for m in $({ grep " $KUBE_RUN" /proc/self/mounts || true; } | awk '{print $2}' | sort -r); do umount -l "$m" 2>/dev/null || true; done
# A sandbox netns the kubelet did not get to delete is ours when it holds an address of POD_CIDR.
for ns in $(ip netns list 2>/dev/null | awk '/^cni-/{print $1}'); do
  if grep -q " ${POD_CIDR%.*}\." <<<"$(ip netns exec "$ns" ip -4 -o addr show 2>/dev/null)"; then
    say "remove leftover netns $ns"; ip netns delete "$ns" 2>/dev/null || true
  fi
done

# 5. iptables: kube-proxy's own cleanup, then the kubelet's chains and our guard.
if [[ -x "$KUBE_BIN/kube-proxy" ]]; then
  "$KUBE_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
fi
if [[ -x "$KUBE_BIN/kube-router" && -f "$KUBE_STATE/kube-router.ran" ]]; then
  "$KUBE_BIN/kube-router" --cleanup-config >/dev/null 2>&1 || true
fi
for tool in iptables ip6tables; do
  command -v "$tool" >/dev/null || continue
  for table in filter nat mangle; do
    # Jumps into KUBE-* chains from the built-in chains, then the chains themselves.
    { "$tool" -w -t "$table" -S 2>/dev/null || true; } | { grep -E '^-A [A-Z]+ .*-j KUBE-' || true; } | while read -r rule; do
      eval "$tool -w -t $table ${rule/-A/-D}" 2>/dev/null || true
    done
    for chain in $("$tool" -w -t "$table" -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do
      "$tool" -w -t "$table" -F "$chain" 2>/dev/null || true
    done
    for chain in $("$tool" -w -t "$table" -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do
      "$tool" -w -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
done

# kube-router's ipsets (the rules that used them are gone now).
if command -v ipset >/dev/null; then
  for set in $(ipset list -n 2>/dev/null | grep -E '^(KUBE-|kube-router-)' || true); do
    ipset destroy "$set" 2>/dev/null || true
  done
fi

# 6. CNI state, the bridge, its routes; the guard goes last (nothing can send any more).
rm -rf "/var/lib/cni/networks/$CNI_NET" "/var/lib/cni/results/$CNI_NET"-* 2>/dev/null || true
if ip link show "$BRIDGE" >/dev/null 2>&1; then
  # veths still attached (their netns gone with the pods) go with their peer; remove stragglers.
  for v in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link delete "$v" 2>/dev/null || true
  done
  say "remove bridge $BRIDGE and the route of $SERVICE_CIDR"
  ip route del "$SERVICE_CIDR" dev "$BRIDGE" 2>/dev/null || true
  ip link delete "$BRIDGE" 2>/dev/null || true
fi
for f in "$KUBE_STATE"/sysctl/*; do
  [[ -e "$f" ]] || continue
  key="$(basename "$f" | tr . /)"
  cat "$f" >"/proc/sys/$key" 2>/dev/null || true
done
for tool in iptables ip6tables; do
  command -v "$tool" >/dev/null || continue
  for chain in OUTPUT FORWARD; do
    while "$tool" -w -C "$chain" -j "$GUARD_CHAIN" 2>/dev/null; do "$tool" -w -D "$chain" -j "$GUARD_CHAIN"; done
  done
  "$tool" -w -F "$GUARD_CHAIN" 2>/dev/null || true
  "$tool" -w -X "$GUARD_CHAIN" 2>/dev/null || true
done

# 7. The kubelet's cgroups (empty once every container is gone).
for h in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods /sys/fs/cgroup/unified/kubepods; do
  [[ -d "$h" ]] && find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null || true
done

rm -rf "$KUBE_STATE" "$KUBE_RUN"
[[ "${KUBE_DOWN_PURGE:-0}" == 1 ]] && { say "purge $KUBE_CACHE"; rm -rf "$KUBE_CACHE"; }
rm -f "$KUBE_DATA/kubeconfig" "$KUBE_DATA/env"
say "kube-down: done"
