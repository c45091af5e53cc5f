#!/usr/bin/env bash
# Images for the kube-local cluster, built with podman into its own storage (outside the checkout)
# and imported into the node's containerd:
#   localhost/lienthong-base:bookworm  debootstrap (minbase + python3) -> podman import; the six
#                                      service Dockerfiles build on it via --build-arg PYTHON_IMAGE
#                                      (their production default base stays as it is)
#   localhost/lienthong-<svc>:kube-local   the six services, from services/<svc>/Dockerfile
#   localhost/lienthong-kafka:kube-local   Kafka (Maven Central jars) on Debian's Java 17
#   localhost/lienthong-postgres:kube-local PostgreSQL 15 from Debian
#   localhost/pause:3.10               the sandbox image (a static Go program, FROM scratch)
#
#   infra/kube/images.sh [build|import]...   (default: build import)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
SERVICES=(gateway directory docstore sigverify routing statistics)
CTX="$KUBE_CACHE/build-context"
mkdir -p "$CTX" "$KUBE_LOGS"

image_exists() { podman image exists "$1"; }

build_base() {
  if image_exists "$BASE_IMAGE"; then say "$BASE_IMAGE present"; return; fi
  local root="$KUBE_CACHE/rootfs/bookworm" tarball="$KUBE_CACHE/rootfs/bookworm.tar"
  if [[ ! -f "$tarball" ]]; then
    say "debootstrap bookworm (minbase + python3) into $root (~80 s)"
    rm -rf "$root"; mkdir -p "$root"
    "${NICE[@]}" debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3 \
      bookworm "$root" http://deb.debian.org/debian >"$KUBE_LOGS/debootstrap.log" 2>&1 \
      || { tail -20 "$KUBE_LOGS/debootstrap.log" >&2; die "debootstrap failed"; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
  fi
  say "podman import $BASE_IMAGE"
  podman import --change 'CMD ["/bin/bash"]' "$tarball" "$BASE_IMAGE" >/dev/null
}

# Build args and mounts common to every build. The host CA bundle goes in only where egress TLS
# is intercepted (the host configures a custom bundle), so pip and apt in the build trust it.
build_flags() {
  # Host networking: no podman bridge, NAT or firewall chains are left on the machine by a build.
  local flags=(--layers --network host --build-arg "PYTHON_IMAGE=$BASE_IMAGE" --build-arg "BASE_IMAGE=$BASE_IMAGE")
  local ca; ca="$(host_ca_bundle)"
  [[ -n "$ca" ]] && flags+=(-v "$ca:/etc/ssl/certs/ca-certificates.crt:ro")
  printf '%s\n' "${flags[@]}"
}

build_services() {
  local flags; mapfile -t flags < <(build_flags)
  for svc in "${SERVICES[@]}"; do
    say "image localhost/lienthong-$svc:$IMAGE_TAG"
    "${NICE[@]}" podman build "${flags[@]}" -f "services/$svc/Dockerfile" \
      -t "localhost/lienthong-$svc:$IMAGE_TAG" "$KUBE_ROOT" >"$KUBE_LOGS/image-$svc.log" 2>&1 \
      || { tail -30 "$KUBE_LOGS/image-$svc.log" >&2; die "podman build of $svc failed (log: $KUBE_LOGS/image-$svc.log)"; }
  done
}

build_kafka() {
  local d="$CTX/kafka" cache="$KUBE_CACHE/maven"
  say "Kafka jars (infra/kafka.sh fetch, cached in $cache)"
  LIENTHONG_CACHE_DIR="$cache" bash "$KUBE_ROOT/infra/kafka.sh" fetch >&2
  rm -rf "$d"; mkdir -p "$d"
  cp -a "$cache"/kafka-*/libs "$d/libs"
  cp "$KUBE_ROOT/infra/kube/images/kafka/"* "$d/"
  local flags; mapfile -t flags < <(build_flags)
  say "image localhost/lienthong-kafka:$IMAGE_TAG"
  "${NICE[@]}" podman build "${flags[@]}" -t "localhost/lienthong-kafka:$IMAGE_TAG" "$d" >"$KUBE_LOGS/image-kafka.log" 2>&1 \
    || { tail -30 "$KUBE_LOGS/image-kafka.log" >&2; die "podman build of kafka failed"; }
}

build_postgres() {
  local flags; mapfile -t flags < <(build_flags)
  say "image localhost/lienthong-postgres:$IMAGE_TAG"
  "${NICE[@]}" podman build "${flags[@]}" -t "localhost/lienthong-postgres:$IMAGE_TAG" \
    "$KUBE_ROOT/infra/kube/images/postgres" >"$KUBE_LOGS/image-postgres.log" 2>&1 \
    || { tail -30 "$KUBE_LOGS/image-postgres.log" >&2; die "podman build of postgres failed"; }
}

build_pause() {
  if image_exists "$PAUSE_IMAGE"; then return; fi
  [[ -x "$KUBE_BIN/pause" ]] || bash "$KUBE_ROOT/infra/kube/build-bin.sh" pause
  local d="$CTX/pause"; rm -rf "$d"; mkdir -p "$d"; cp "$KUBE_BIN/pause" "$d/pause"
  printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$d/Containerfile"
  podman build -q -t "$PAUSE_IMAGE" "$d" >/dev/null
}

all_images() {
  printf '%s\n' "$PAUSE_IMAGE" "localhost/lienthong-kafka:$IMAGE_TAG" "localhost/lienthong-postgres:$IMAGE_TAG"
  for svc in "${SERVICES[@]}"; do printf '%s\n' "localhost/lienthong-$svc:$IMAGE_TAG"; done
}

# podman save | ctr import, skipping images whose id containerd already has.
import_images() {
  local sock="$CONTAINERD_SOCK"
  [[ -S "$sock" ]] || die "containerd is not running ($sock); infra/kube/up.sh starts it"
  local img id have
  have="$(ctr --address "$sock" -n k8s.io images ls -q 2>/dev/null || true)"
  while read -r img; do
    id="$(podman image inspect --format '{{.Id}}' "$img")"
    if [[ -f "$KUBE_CACHE/imported/${img//[\/:]/_}" && "$(cat "$KUBE_CACHE/imported/${img//[\/:]/_}")" == "$id" ]] \
        && grep -qx "$img" <<<"$have"; then
      continue
    fi
    say "import $img into containerd"
    podman save "$img" 2>/dev/null | ctr --address "$sock" -n k8s.io images import - >/dev/null \
      || die "ctr import of $img failed"
    mkdir -p "$KUBE_CACHE/imported"; echo "$id" >"$KUBE_CACHE/imported/${img//[\/:]/_}"
  done < <(all_images)
}

cd "$KUBE_ROOT"
steps=("$@"); [[ ${#steps[@]} -eq 0 ]] && steps=(build import)
for s in "${steps[@]}"; do
  case "$s" in
    base) build_base ;;
    build) build_base; build_pause; build_kafka; build_postgres; build_services ;;
    services) build_services ;;
    kafka) build_kafka ;;
    postgres) build_postgres ;;
    pause) build_pause ;;
    import) import_images ;;
    *) die "unknown step $s" ;;
  esac
done
