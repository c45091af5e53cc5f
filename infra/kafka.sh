#!/usr/bin/env bash
# Local single-node Apache Kafka broker (KRaft mode, broker+controller in one JVM),
# run straight from Maven Central jars. No Docker, no Kafka tarball.
#
#   infra/kafka.sh fetch|start|stop|restart|status|reset
#
# `start` prints the bootstrap address (e.g. 127.0.0.1:9092) on stdout; all other
# messages go to stderr, so `BOOTSTRAP=$(infra/kafka.sh start)` works.
# See infra/README.md for the environment variables.
set -euo pipefail

KAFKA_VERSION=3.9.1
SCALA_VERSION=2.13
SLF4J_VERSION=1.7.36

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_ROOT="${LIENTHONG_CACHE_DIR:-$REPO_ROOT/.cache}"
KAFKA_HOME="$CACHE_ROOT/kafka-$KAFKA_VERSION"
LIBS_DIR="$KAFKA_HOME/libs"
FETCH_MARKER="$KAFKA_HOME/.fetch-complete"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_DATA_DIR="${KAFKA_DATA_DIR:-$REPO_ROOT/.data/kafka-$KAFKA_PORT}"
KAFKA_HEAP="${KAFKA_HEAP:-512m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
HOST=127.0.0.1

CONFIG_DIR="$KAFKA_DATA_DIR/config"
SERVER_PROPS="$CONFIG_DIR/server.properties"
LOG4J_PROPS="$CONFIG_DIR/log4j.properties"
LOG_DIRS="$KAFKA_DATA_DIR/logs"
PID_FILE="$KAFKA_DATA_DIR/kafka.pid"
SERVER_LOG="$KAFKA_DATA_DIR/server.log"
CONSOLE_LOG="$KAFKA_DATA_DIR/console.log"
CLUSTER_ID_FILE="$KAFKA_DATA_DIR/cluster.id"
# SASL/SCRAM (docs/adr/0070): one password file per principal (admin + each service), 0600.
CREDENTIALS_DIR="$KAFKA_DATA_DIR/credentials"
SCRAM_MARKER="$LOG_DIRS/.formatted-with-scram"
KAFKA_TOPIC_PARTITIONS="${KAFKA_TOPIC_PARTITIONS:-${LIENTHONG_KAFKA__TOPIC_PARTITIONS:-3}}"
# The principals, ACLs and topics come from lienthong_common.kafka_access (one table, in code).
PYTHON="${LIENTHONG_PYTHON:-$REPO_ROOT/.venv/bin/python}"

log() { echo "kafka.sh[$KAFKA_PORT]: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

require_python() {
    [[ -x "$PYTHON" ]] && "$PYTHON" -c 'import lienthong_common.kafka_access' 2>/dev/null ||
        die "'$PYTHON' cannot import lienthong_common (run 'make setup', or set LIENTHONG_PYTHON)"
}

access() { "$PYTHON" -m lienthong_common.kafka_access "$@"; }

usage() {
    cat >&2 <<EOF
usage: $0 fetch|start|stop|restart|status|reset
  fetch    download the Kafka $KAFKA_VERSION jars from Maven Central (cached)
  start    fetch if needed, format storage if needed, start, wait until ready, then
           create the services' SCRAM users, the topics and the ACLs (idempotent);
           passwords in $CREDENTIALS_DIR/<user>.password
  stop     graceful stop (SIGTERM, SIGKILL after ${KAFKA_STOP_TIMEOUT}s)
  restart  stop + start
  status   exit 0 if the broker is running
  reset    stop and delete the data dir ($KAFKA_DATA_DIR)
EOF
    exit 2
}

validate_env() {
    [[ "$KAFKA_PORT" =~ ^[0-9]+$ ]] || die "KAFKA_PORT must be a number, got '$KAFKA_PORT'"
    [[ "$KAFKA_CONTROLLER_PORT" =~ ^[0-9]+$ ]] || die "KAFKA_CONTROLLER_PORT must be a number, got '$KAFKA_CONTROLLER_PORT'"
    [[ "$KAFKA_PORT" != "$KAFKA_CONTROLLER_PORT" ]] || die "KAFKA_PORT and KAFKA_CONTROLLER_PORT must differ"
}

require_java() {
    command -v java >/dev/null 2>&1 ||
        die "'java' not found on PATH. Kafka $KAFKA_VERSION needs Java 17 (e.g. apt-get install openjdk-17-jre-headless)."
    local ver major
    ver="$(java -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
    major="${ver%%.*}"
    [[ "$major" == 1 ]] && major="$(echo "$ver" | cut -d. -f2)"
    if [[ "$major" =~ ^[0-9]+$ ]] && ((major < 17)); then
        die "found Java $ver ('$(command -v java)'); Java 17 or newer is needed."
    fi
}

require_mvn() {
    command -v mvn >/dev/null 2>&1 ||
        die "'mvn' (Maven) not found on PATH; it is needed to fetch the Kafka jars from Maven Central (e.g. apt-get install maven). Java 17 is needed as well."
}

# ---------------------------------------------------------------------------- fetch

fetched() { [[ -f "$FETCH_MARKER" ]] && compgen -G "$LIBS_DIR/kafka_${SCALA_VERSION}-${KAFKA_VERSION}.jar" >/dev/null; }

do_fetch() {
    if fetched; then
        log "jars already cached in $LIBS_DIR"
        return 0
    fi
    require_java
    require_mvn
    mkdir -p "$KAFKA_HOME"
    # Serialise concurrent fetches (e.g. several test processes starting brokers at once).
    exec 8>"$KAFKA_HOME/.fetch.lock"
    flock 8
    if fetched; then
        flock -u 8
        log "jars already cached in $LIBS_DIR"
        return 0
    fi
    cat >"$KAFKA_HOME/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 http://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>lienthong.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_${SCALA_VERSION}</artifactId>
      <version>${KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>${SLF4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
EOF
    log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS_DIR ..."
    local start=$SECONDS
    rm -rf "$LIBS_DIR"
    if ! (cd "$KAFKA_HOME" && mvn -q -B -Dstyle.color=never -f "$KAFKA_HOME/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$LIBS_DIR" -DincludeScope=runtime >"$KAFKA_HOME/fetch.log" 2>&1); then
        tail -n 40 "$KAFKA_HOME/fetch.log" >&2
        rm -rf "$LIBS_DIR"
        die "Maven failed to fetch the Kafka jars (is Maven Central reachable? full output: $KAFKA_HOME/fetch.log)"
    fi
    compgen -G "$LIBS_DIR/kafka_${SCALA_VERSION}-${KAFKA_VERSION}.jar" >/dev/null ||
        die "fetch finished but kafka_${SCALA_VERSION}-${KAFKA_VERSION}.jar is missing in $LIBS_DIR"
    date -u +%Y-%m-%dT%H:%M:%SZ >"$FETCH_MARKER"
    flock -u 8
    log "fetched $(ls "$LIBS_DIR" | wc -l) jars in $((SECONDS - start))s"
}

# ---------------------------------------------------------------------------- process helpers

read_pid() { [[ -f "$PID_FILE" ]] && tr -dc '0-9' <"$PID_FILE" || true; }

# Running = PID file points at a live kafka.Kafka JVM using *this* data dir's config.
is_running() {
    local pid
    pid="$(read_pid)"
    [[ -n "$pid" ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    local cmdline
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ "$cmdline" == *kafka.Kafka* && "$cmdline" == *"$SERVER_PROPS"* ]]
}

clear_stale_pid() {
    if [[ -f "$PID_FILE" ]] && ! is_running; then
        log "removing stale PID file $PID_FILE (pid $(read_pid) is gone or is not this broker)"
        rm -f "$PID_FILE"
    fi
}

# SIGTERM, wait up to $2 seconds, then SIGKILL.
terminate_pid() {
    local pid=$1 grace=$2
    kill -TERM "$pid" 2>/dev/null || return 0
    local deadline=$((SECONDS + grace))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.3
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid still alive after ${grace}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    fi
    return 0
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null; }

classpath() { echo "$LIBS_DIR/*"; }

write_config() {
    mkdir -p "$CONFIG_DIR" "$LOG_DIRS"
    chmod 700 "$KAFKA_DATA_DIR" "$CONFIG_DIR"
    local admin
    admin="$(tr -d '\n' <"$CREDENTIALS_DIR/admin.password")"
    # umask: the file holds the admin's password.
    (umask 077 && cat >"$SERVER_PROPS") <<EOF
# Generated by infra/kafka.sh on every start; edits are overwritten. Holds the admin's password.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
# Clients authenticate with SASL/SCRAM-SHA-512 (users in the metadata log); the controller
# listener with SASL/PLAIN (SCRAM cannot serve it in KRaft), its only user the admin.
listeners=CLIENT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=CLIENT://$HOST:$KAFKA_PORT
inter.broker.listener.name=CLIENT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,CLIENT:SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin";
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$admin" user_admin="$admin";
# Deny unless an ACL allows (lienthong_common.kafka_access); the admin alone is a super user.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin
log.dirs=$LOG_DIRS
num.partitions=3
offsets.topic.num.partitions=1
# Topics are made by the admin (kafka_access apply), never by a client's metadata request.
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.ms=-1
EOF
    cat >"$LOG4J_PROPS" <<EOF
# Generated by infra/kafka.sh. INFO and above to $SERVER_LOG, WARN and above to console.
log4j.rootLogger=INFO, file, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.Threshold=WARN
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$SERVER_LOG
log4j.appender.file.Append=true
log4j.appender.file.MaxFileSize=50MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.zookeeper=WARN
EOF
}

java_base() {
    echo java -Xmx"$KAFKA_HEAP" -Xms"$KAFKA_HEAP" -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j.configuration="file:$LOG4J_PROPS"
}

format_storage() {
    if [[ -f "$LOG_DIRS/meta.properties" && -f "$SCRAM_MARKER" ]]; then
        return 0
    fi
    if [[ -f "$LOG_DIRS/meta.properties" ]]; then
        # Formatted before authentication existed: no admin in its metadata, and SCRAM users
        # can only be seeded by a format. Keep the old logs aside (nothing deleted) and start afresh.
        local aside
        aside="$KAFKA_DATA_DIR/logs.before-auth-$(date -u +%Y%m%dT%H%M%SZ)"
        log "storage was formatted without SCRAM users; moving it to $aside and formatting afresh"
        mv "$LOG_DIRS" "$aside"
        rm -f "$CLUSTER_ID_FILE"
        mkdir -p "$LOG_DIRS"
    fi
    local cid
    if [[ -s "$CLUSTER_ID_FILE" ]]; then
        cid="$(cat "$CLUSTER_ID_FILE")"
    else
        cid="$($(java_base) -cp "$(classpath)" kafka.tools.StorageTool random-uuid 2>>"$CONSOLE_LOG" | tail -n1)"
        [[ -n "$cid" ]] || die "kafka.tools.StorageTool random-uuid printed nothing (see $CONSOLE_LOG)"
        echo "$cid" >"$CLUSTER_ID_FILE"
    fi
    log "formatting storage in $LOG_DIRS (cluster id $cid)"
    local scram
    scram="$(access format-argument "$CREDENTIALS_DIR")" || die "cannot make the admin's SCRAM credential"
    $(java_base) -cp "$(classpath)" kafka.tools.StorageTool format -t "$cid" -c "$SERVER_PROPS" \
        --add-scram "$scram" >>"$CONSOLE_LOG" 2>&1 || { tail -n 20 "$CONSOLE_LOG" >&2; die "storage format failed"; }
    : >"$SCRAM_MARKER"
}

# As the admin: the services' SCRAM users, the topics and the ACLs (kafka_access apply).
apply_access() {
    access apply "$CREDENTIALS_DIR" --bootstrap "$HOST:$KAFKA_PORT" --partitions "$KAFKA_TOPIC_PARTITIONS" ||
        die "creating the Kafka users, topics and ACLs failed (see above)"
}

show_log_tail() {
    log "---- last lines of $SERVER_LOG ----"
    tail -n 30 "$SERVER_LOG" >&2 2>/dev/null || true
    if [[ -s "$CONSOLE_LOG" ]]; then
        log "---- last lines of $CONSOLE_LOG ----"
        tail -n 15 "$CONSOLE_LOG" >&2 || true
    fi
}

# ---------------------------------------------------------------------------- verbs

do_start() {
    mkdir -p "$KAFKA_DATA_DIR"
    # Serialise concurrent start/stop on the same data dir (fd 9; fd 8 is the fetch lock).
    # Both are closed for the JVM below, else the broker would hold the locks forever.
    exec 9>"$KAFKA_DATA_DIR/.lock"
    flock 9
    if is_running; then
        log "already running (pid $(read_pid)) at $HOST:$KAFKA_PORT"
        echo "$HOST:$KAFKA_PORT"
        return 0
    fi
    clear_stale_pid
    require_java
    require_python
    do_fetch
    local p
    for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
        if port_open "$p"; then
            die "port $HOST:$p is already in use by another process (not the broker of $KAFKA_DATA_DIR); choose another KAFKA_PORT / KAFKA_CONTROLLER_PORT"
        fi
    done
    access passwords "$CREDENTIALS_DIR"
    write_config
    format_storage

    # Keep the previous run's log for post-mortems; readiness is detected on a fresh log.
    [[ -f "$SERVER_LOG" ]] && mv -f "$SERVER_LOG" "$SERVER_LOG.prev"
    : >"$SERVER_LOG"
    echo "==== start $(date -u +%Y-%m-%dT%H:%M:%SZ) ====" >>"$CONSOLE_LOG"

    local t0=$SECONDS
    # setsid: own session, so the broker survives the calling shell / Ctrl-C of a make run.
    # The inner shell writes its own PID and then execs java, so the PID is the JVM's.
    # shellcheck disable=SC2046
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' kafka-launch "$PID_FILE" \
        $(java_base) -cp "$(classpath)" kafka.Kafka "$SERVER_PROPS" \
        </dev/null >>"$CONSOLE_LOG" 2>&1 8>&- 9>&- &
    local launcher=$!
    log "starting broker (data dir $KAFKA_DATA_DIR) ..."

    local deadline=$((SECONDS + KAFKA_START_TIMEOUT)) pid=""
    while ((SECONDS < deadline)); do
        pid="$(read_pid)"
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            show_log_tail
            rm -f "$PID_FILE"
            die "broker process $pid exited during startup"
        fi
        if [[ -z "$pid" ]] && ! kill -0 "$launcher" 2>/dev/null; then
            show_log_tail
            die "broker launcher exited during startup"
        fi
        if grep -q "Kafka Server started" "$SERVER_LOG" 2>/dev/null && port_open "$KAFKA_PORT"; then
            apply_access
            log "ready in $((SECONDS - t0))s (pid $pid); bootstrap servers: $HOST:$KAFKA_PORT"
            echo "$HOST:$KAFKA_PORT"
            return 0
        fi
        sleep 0.5
    done
    show_log_tail
    # Do not leave a half-started broker behind.
    [[ -n "$pid" ]] && terminate_pid "$pid" 10
    rm -f "$PID_FILE"
    die "broker not ready after ${KAFKA_START_TIMEOUT}s (set KAFKA_START_TIMEOUT to wait longer); it was stopped"
}

do_stop() {
    [[ -d "$KAFKA_DATA_DIR" ]] || { log "not running (no data dir $KAFKA_DATA_DIR)"; return 0; }
    exec 9>"$KAFKA_DATA_DIR/.lock"
    flock 9
    if ! is_running; then
        clear_stale_pid
        log "not running"
        return 0
    fi
    local pid
    pid="$(read_pid)"
    log "stopping broker pid $pid (SIGTERM, up to ${KAFKA_STOP_TIMEOUT}s) ..."
    terminate_pid "$pid" "$KAFKA_STOP_TIMEOUT"
    rm -f "$PID_FILE"
    log "stopped"
}

do_status() {
    if is_running; then
        log "running (pid $(read_pid)) at $HOST:$KAFKA_PORT, data dir $KAFKA_DATA_DIR"
        return 0
    fi
    if [[ -f "$PID_FILE" ]]; then
        log "not running (stale PID file $PID_FILE)"
    else
        log "not running"
    fi
    return 1
}

do_reset() {
    do_stop
    case "$KAFKA_DATA_DIR" in
        "" | "/" | "$HOME" | "$REPO_ROOT" | "$REPO_ROOT/.data") die "refusing to delete '$KAFKA_DATA_DIR'" ;;
    esac
    rm -rf "$KAFKA_DATA_DIR"
    log "wiped $KAFKA_DATA_DIR"
}

main() {
    [[ $# -eq 1 ]] || usage
    validate_env
    case "$1" in
        fetch) do_fetch ;;
        start) do_start ;;
        stop) do_stop ;;
        restart) do_stop && do_start ;;
        status) do_status ;;
        reset) do_reset ;;
        -h | --help | help) usage ;;
        *) usage ;;
    esac
}

main "$@"
