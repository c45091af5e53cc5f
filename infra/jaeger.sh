#!/usr/bin/env bash
# Local trace viewer: Jaeger v2 (an OpenTelemetry Collector distribution with the Jaeger UI and
# in-memory storage), built from source with `go install` and cached. No Docker, no download of a
# prebuilt binary.
#
#   infra/jaeger.sh build|start|stop|status|endpoint
#
#   build     build github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION with the Go toolchain
#             into the cache (each step time-boxed by JAEGER_BUILD_TIMEOUT seconds; exit 1 when Go
#             is missing or the build fails)
#   start     build if needed, then run it: UI on 127.0.0.1:$JAEGER_UI_PORT, OTLP/gRPC on
#             127.0.0.1:$JAEGER_OTLP_GRPC_PORT, OTLP/HTTP on 127.0.0.1:$JAEGER_OTLP_HTTP_PORT;
#             prints the OTLP endpoint (http://127.0.0.1:4317) on stdout
#   stop      SIGTERM, SIGKILL after 10 s
#   status    exit 0 when it is running
#   built     exit 0 when the binary is in the cache
#   endpoint  print the OTLP endpoint when running (exit 1 otherwise)
#
# Messages go to stderr; machine-readable output (the endpoint) to stdout, so
# `OTEL_EXPORTER_OTLP_ENDPOINT=$(infra/jaeger.sh start)` works.
set -euo pipefail

JAEGER_VERSION="${JAEGER_VERSION:-v1.76.0}"  # the module's v1 tags carry the v2 binary in cmd/jaeger
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_ROOT="${LIENTHONG_CACHE_DIR:-$REPO_ROOT/.cache}"
JAEGER_HOME="$CACHE_ROOT/jaeger-$JAEGER_VERSION"
JAEGER_BIN="$JAEGER_HOME/bin/jaeger"
JAEGER_BUILD_TIMEOUT="${JAEGER_BUILD_TIMEOUT:-1200}"
JAEGER_UI_PORT="${JAEGER_UI_PORT:-16686}"
JAEGER_OTLP_GRPC_PORT="${JAEGER_OTLP_GRPC_PORT:-4317}"
JAEGER_OTLP_HTTP_PORT="${JAEGER_OTLP_HTTP_PORT:-4318}"
JAEGER_DATA_DIR="${JAEGER_DATA_DIR:-$REPO_ROOT/.data/jaeger-$JAEGER_UI_PORT}"
PID_FILE="$JAEGER_DATA_DIR/jaeger.pid"
CONFIG="$JAEGER_DATA_DIR/config.yaml"
LOG_FILE="$JAEGER_DATA_DIR/jaeger.log"
HOST=127.0.0.1

log() { echo "jaeger.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
    sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

build() {
    if [[ -x "$JAEGER_BIN" ]]; then
        return 0
    fi
    command -v go >/dev/null 2>&1 || die "Go is not installed; see docs/observability.md for another OTLP endpoint"
    mkdir -p "$JAEGER_HOME"
    log "building Jaeger $JAEGER_VERSION from the Go module proxy (once; 20+ minutes on 2 cores) ..."
    # `go install module/cmd/jaeger@version` refuses modules whose go.mod has replace directives,
    # as Jaeger's does; a throwaway module that requires it as a tool builds the same binary.
    local src="$JAEGER_HOME/src"
    mkdir -p "$src" "$JAEGER_HOME/bin"
    if ! (
        cd "$src"
        [[ -f go.mod ]] || go mod init lienthong.local/jaeger-build
        timeout "$JAEGER_BUILD_TIMEOUT" nice -n 19 go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION"
        CGO_ENABLED=0 timeout "$JAEGER_BUILD_TIMEOUT" nice -n 19 \
            go build -trimpath -o "$JAEGER_BIN.tmp" github.com/jaegertracing/jaeger/cmd/jaeger
        mv "$JAEGER_BIN.tmp" "$JAEGER_BIN"
    ) >"$JAEGER_HOME/build.log" 2>&1; then
        tail -n 20 "$JAEGER_HOME/build.log" >&2 || true
        die "building Jaeger failed or took longer than ${JAEGER_BUILD_TIMEOUT}s (log: $JAEGER_HOME/build.log)"
    fi
    log "built $JAEGER_BIN"
}

running() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "jaeger"; then
        return 0
    fi
    rm -f "$PID_FILE"
    return 1
}

write_config() {
    # Jaeger v2's all-in-one shape, bound to the loopback only, with in-memory storage.
    cat >"$CONFIG" <<EOF
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: $HOST:$((JAEGER_UI_PORT + 1))
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: $HOST:$JAEGER_UI_PORT
    grpc:
      endpoint: $HOST:$((JAEGER_UI_PORT - 1))
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: $HOST:$JAEGER_OTLP_GRPC_PORT
      http:
        endpoint: $HOST:$JAEGER_OTLP_HTTP_PORT
processors:
  batch: {}
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
EOF
}

port_open() {
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

start() {
    if running; then
        echo "http://$HOST:$JAEGER_OTLP_GRPC_PORT"
        return 0
    fi
    build
    port_open "$JAEGER_OTLP_GRPC_PORT" && die "port $JAEGER_OTLP_GRPC_PORT is held by another process"
    mkdir -p "$JAEGER_DATA_DIR"
    write_config
    [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.prev"
    setsid "$JAEGER_BIN" --config "file:$CONFIG" >"$LOG_FILE" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    for _ in $(seq 1 60); do
        if port_open "$JAEGER_OTLP_GRPC_PORT" && port_open "$JAEGER_UI_PORT"; then
            log "Jaeger UI on http://$HOST:$JAEGER_UI_PORT, OTLP on $HOST:$JAEGER_OTLP_GRPC_PORT"
            echo "http://$HOST:$JAEGER_OTLP_GRPC_PORT"
            return 0
        fi
        running || break
        sleep 0.5
    done
    tail -n 30 "$LOG_FILE" >&2 || true
    stop
    die "Jaeger did not start (log: $LOG_FILE)"
}

stop() {
    running || return 0
    local pid
    pid="$(cat "$PID_FILE")"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$PID_FILE"
    log "stopped"
}

case "${1:-}" in
    build) build ;;
    built) [[ -x "$JAEGER_BIN" ]] ;;
    start) start ;;
    stop) stop ;;
    status) running ;;
    endpoint) running && echo "http://$HOST:$JAEGER_OTLP_GRPC_PORT" ;;
    *) usage ;;
esac
