#!/usr/bin/env bash
# Debian packages and host configuration the kube-local cluster needs (idempotent).
#   podman, buildah, runc, containerd, CNI plugins, iptables, etcd-server, debootstrap, conntrack,
#   socat (kubectl port-forward), ipset (kube-router's NetworkPolicy firewall), Java and Maven (the Kafka jars, as infra/kafka.sh fetches them).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
pkgs=(podman buildah runc containerd containernetworking-plugins iptables etcd-server debootstrap
      conntrack socat ethtool ipset ca-certificates maven openjdk-17-jre-headless)
missing=()
for p in "${pkgs[@]}"; do
  [[ "$(dpkg-query -W -f '${Status}' "$p" 2>/dev/null)" == "install ok installed" ]] || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  say "apt-get install ${missing[*]}"
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive "${NICE[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

# podman on this VM: crun refuses hybrid cgroups (runc), no systemd (cgroupfs), and no
# CAP_SYS_RESOURCE to raise rlimits past what the host has.
mkdir -p /etc/containers
conf=/etc/containers/containers.conf
if ! grep -q 'lienthong-kube' "$conf" 2>/dev/null; then
  [[ -f "$conf" ]] && cp "$conf" "$conf.lienthong-kube.bak"
  cat >"$conf" <<'CONF'
# Written by lienthong infra/kube/install.sh (the previous file, if any: *.lienthong-kube.bak).
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
fi
say "host packages and podman configuration in place"
