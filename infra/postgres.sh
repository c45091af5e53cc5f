#!/usr/bin/env bash
# Throwaway local PostgreSQL from Debian's packages (installed on demand), for tests and `make run`.
#
#   infra/postgres.sh start|stop|restart|status|reset
#   infra/postgres.sh url DBNAME          # prints postgresql+psycopg://lienthong:lienthong@127.0.0.1:$PGPORT/DBNAME
#   infra/postgres.sh createdb NAME...    # idempotent
#
# Machine-readable output (url, start's DSN) goes to stdout; messages go to stderr.
# See infra/README.md for the environment variables.
set -euo pipefail

PGPORT="${PGPORT:-55432}"
PG_DATA_DIR="${PG_DATA_DIR:-/tmp/lienthong-pg-$PGPORT}"
PG_DATABASES="${PG_DATABASES:-directory docstore sigverify routing statistics}"
PG_START_TIMEOUT="${PG_START_TIMEOUT:-30}"
PG_USER=lienthong
PG_PASSWORD=lienthong
HOST=127.0.0.1

CLUSTER_DIR="$PG_DATA_DIR/pgdata"     # the initdb'd cluster
SOCKET_DIR="$PG_DATA_DIR/run"         # unix socket (not /var/run/postgresql)
SERVER_LOG="$PG_DATA_DIR/postgres.log"

log() { echo "postgres.sh[$PGPORT]: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
    cat >&2 <<EOF
usage: $0 start|stop|restart|status|reset|url DBNAME|createdb NAME...
  start            install PostgreSQL if needed, initdb if needed, start, wait, create \$PG_DATABASES
  stop             pg_ctl stop -m fast
  restart          stop + start
  status           exit 0 if running
  reset            stop and delete $PG_DATA_DIR
  url DBNAME       print the SQLAlchemy/psycopg URL for DBNAME
  createdb NAME... create databases that do not exist yet (server must be running)
EOF
    exit 2
}

[[ "$PGPORT" =~ ^[0-9]+$ ]] || die "PGPORT must be a number, got '$PGPORT'"

IS_ROOT=0
[[ "$(id -u)" == 0 ]] && IS_ROOT=1
# PostgreSQL refuses to run as root: as root, server-side commands run as the `postgres` user.
RUN_AS_USER="$( ((IS_ROOT)) && echo postgres || id -un)"

as_pg() {
    if ((IS_ROOT)); then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

# ---------------------------------------------------------------------------- install / binaries

find_bindir() {
    # Highest installed major version.
    local initdb
    initdb="$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -t/ -k5,5n | tail -n1 || true)"
    [[ -n "$initdb" ]] && dirname "$initdb" || true
}

ensure_installed() {
    PG_BIN="$(find_bindir)"
    if [[ -z "$PG_BIN" ]]; then
        ((IS_ROOT)) || die "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb) and not root; install them with: sudo apt-get install -y postgresql"
        command -v apt-get >/dev/null || die "PostgreSQL is not installed and apt-get is not available; install PostgreSQL server binaries under /usr/lib/postgresql/<major>/bin"
        log "PostgreSQL not installed; installing Debian package 'postgresql' (apt-get) ..."
        apt-get update >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2
        PG_BIN="$(find_bindir)"
        [[ -n "$PG_BIN" ]] || die "apt-get install postgresql finished but no /usr/lib/postgresql/*/bin/initdb found"
    fi
    if ((IS_ROOT)) && ! id -u postgres >/dev/null 2>&1; then
        log "creating system user 'postgres'"
        useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
}

# Client binaries only (no install) for status/createdb.
client_bindir() {
    PG_BIN="$(find_bindir)"
    [[ -n "$PG_BIN" ]] || die "PostgreSQL is not installed (run '$0 start' to install it)"
}

# ---------------------------------------------------------------------------- helpers

is_running() {
    [[ -f "$CLUSTER_DIR/PG_VERSION" ]] || return 1
    as_pg "$PG_BIN/pg_ctl" status -D "$CLUSTER_DIR" >/dev/null 2>&1
}

psql_admin() {
    # Superuser `lienthong` over the unix socket (trust auth); works for root and the postgres user.
    PGPASSWORD="$PG_PASSWORD" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCKET_DIR" -p "$PGPORT" \
        -U "$PG_USER" -d postgres "$@"
}

prepare_data_dir() {
    if [[ ! -d "$PG_DATA_DIR" ]]; then
        mkdir -p "$PG_DATA_DIR"
        chmod 700 "$PG_DATA_DIR"
    fi
    if ((IS_ROOT)); then
        chown postgres:postgres "$PG_DATA_DIR"
        as_pg test -w "$PG_DATA_DIR" -a -x "$PG_DATA_DIR" ||
            die "user postgres cannot write to $PG_DATA_DIR (a parent directory is probably not traversable by it); set PG_DATA_DIR to a path such as /tmp/lienthong-pg-$PGPORT"
    fi
    as_pg mkdir -p "$SOCKET_DIR"
}

init_cluster() {
    [[ -f "$CLUSTER_DIR/PG_VERSION" ]] && return 0
    log "initdb in $CLUSTER_DIR ($("$PG_BIN/postgres" --version), run as $RUN_AS_USER)"
    local pwfile="$PG_DATA_DIR/.pwfile"
    as_pg bash -c 'umask 077; printf "%s\n" "$1" >"$2"' _ "$PG_PASSWORD" "$pwfile"
    # Bootstrap superuser is `lienthong` itself (password lienthong): SUPERUSER implies CREATEDB.
    if ! as_pg "$PG_BIN/initdb" -D "$CLUSTER_DIR" -U "$PG_USER" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 \
        >"$PG_DATA_DIR/initdb.log" 2>&1; then
        tail -n 30 "$PG_DATA_DIR/initdb.log" >&2
        as_pg rm -rf "$CLUSTER_DIR"
        rm -f "$pwfile"
        die "initdb failed (full output: $PG_DATA_DIR/initdb.log)"
    fi
    rm -f "$pwfile"
    # initdb's pg_hba.conf already has: local trust; host 127.0.0.1/32 and ::1/128 scram-sha-256.
    as_pg bash -c 'printf "\n# lienthong: settings managed by infra/postgres.sh\ninclude_if_exists = '"'"'lienthong.conf'"'"'\n" >>"$1/postgresql.conf"' _ "$CLUSTER_DIR"
}

write_conf() {
    # Rewritten on every start so PGPORT / PG_DATA_DIR changes are honoured.
    as_pg bash -c 'cat >"$1/lienthong.conf"' _ "$CLUSTER_DIR" <<EOF
# Generated by infra/postgres.sh on every start; edits are overwritten.
listen_addresses = '$HOST'
port = $PGPORT
unix_socket_directories = '$SOCKET_DIR'
max_connections = 200
password_encryption = 'scram-sha-256'
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
EOF
}

wait_ready() {
    local deadline=$((SECONDS + PG_START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PGPORT" -d postgres -U "$PG_USER" -t 2; then
            return 0
        fi
        sleep 0.3
    done
    log "---- last lines of $SERVER_LOG ----"
    tail -n 30 "$SERVER_LOG" >&2 || true
    die "PostgreSQL not ready on $HOST:$PGPORT after ${PG_START_TIMEOUT}s"
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null; }

create_databases() {
    local name exists
    for name in "$@"; do
        [[ -n "$name" ]] || continue
        exists="$(printf "SELECT 1 FROM pg_database WHERE datname = :'dbname';\n" |
            psql_admin -tA -v dbname="$name")"
        if [[ "$exists" == 1 ]]; then
            log "database '$name' exists"
        else
            PGPASSWORD="$PG_PASSWORD" "$PG_BIN/createdb" -h "$SOCKET_DIR" -p "$PGPORT" -U "$PG_USER" "$name"
            log "created database '$name'"
        fi
    done
}

url() { echo "postgresql+psycopg://$PG_USER:$PG_PASSWORD@$HOST:$PGPORT/$1"; }

# ---------------------------------------------------------------------------- verbs

do_start() {
    ensure_installed
    if is_running; then
        log "already running on $HOST:$PGPORT (data dir $PG_DATA_DIR)"
        wait_ready
    else
        if port_open "$PGPORT"; then
            die "port $HOST:$PGPORT is already in use by another process; choose another PGPORT"
        fi
        prepare_data_dir
        init_cluster
        write_conf
        as_pg mkdir -p "$SOCKET_DIR"
        local t0=$SECONDS
        log "starting PostgreSQL (data dir $PG_DATA_DIR) ..."
        # -W: do not let pg_ctl wait; we wait with pg_isready below (bounded by PG_START_TIMEOUT).
        # A stale postmaster.pid is handled by PostgreSQL itself (it checks whether that PID lives).
        if ! as_pg "$PG_BIN/pg_ctl" start -W -D "$CLUSTER_DIR" -l "$SERVER_LOG" -s >&2; then
            tail -n 30 "$SERVER_LOG" >&2 || true
            die "pg_ctl start failed"
        fi
        wait_ready
        log "ready in $((SECONDS - t0))s"
    fi
    # shellcheck disable=SC2086
    create_databases $PG_DATABASES
    log "URL: $(url '<dbname>')"
}

do_stop() {
    client_bindir
    if ! is_running; then
        log "not running"
        return 0
    fi
    log "stopping (pg_ctl stop -m fast) ..."
    as_pg "$PG_BIN/pg_ctl" stop -D "$CLUSTER_DIR" -m fast -w -t 60 -s >&2
    log "stopped"
}

do_status() {
    client_bindir
    if is_running; then
        log "running on $HOST:$PGPORT (data dir $PG_DATA_DIR, $(head -n1 "$CLUSTER_DIR/postmaster.pid" 2>/dev/null | sed 's/^/pid /'))"
        return 0
    fi
    log "not running"
    return 1
}

do_reset() {
    if [[ -n "$(find_bindir)" ]]; then
        do_stop
    fi
    case "$PG_DATA_DIR" in
        "" | "/" | "/tmp" | "/var" | "$HOME") die "refusing to delete '$PG_DATA_DIR'" ;;
    esac
    rm -rf "$PG_DATA_DIR"
    log "wiped $PG_DATA_DIR"
}

do_createdb() {
    [[ $# -ge 1 ]] || usage
    client_bindir
    is_running || die "not running; '$0 start' first"
    create_databases "$@"
}

main() {
    [[ $# -ge 1 ]] || usage
    local verb=$1
    shift
    case "$verb" in
        start) [[ $# -eq 0 ]] || usage; do_start ;;
        stop) [[ $# -eq 0 ]] || usage; do_stop ;;
        restart) [[ $# -eq 0 ]] || usage; do_stop; do_start ;;
        status) [[ $# -eq 0 ]] || usage; do_status ;;
        reset) [[ $# -eq 0 ]] || usage; do_reset ;;
        url) [[ $# -eq 1 ]] || usage; url "$1" ;;
        createdb) do_createdb "$@" ;;
        *) usage ;;
    esac
}

main "$@"
