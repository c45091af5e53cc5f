#!/bin/bash
# Formats the KRaft storage on first start, then runs the broker in the foreground.
# KAFKA_ADVERTISED (host:port the clients are told), KAFKA_DATA (the volume), KAFKA_HEAP,
# KAFKA_CREDENTIALS (a directory holding admin.password: SASL/SCRAM-SHA-512 on the client listener,
# StandardAuthorizer, the admin the only super user, as infra/kafka.sh does; docs/adr/0070. The
# services' users, the topics and the ACLs are then made by a Job running
# `python -m lienthong_common.kafka_access apply`, infra/kube/manifests/deps.yaml).
set -euo pipefail
data="${KAFKA_DATA:-/var/lib/kafka}"
advertised="${KAFKA_ADVERTISED:-kafka:9092}"
credentials="${KAFKA_CREDENTIALS:-/etc/kafka-credentials}"
conf=/tmp/kafka-config
mkdir -p "$conf" "$data/logs"
admin=""
[[ -s "$credentials/admin.password" ]] && admin="$(tr -d '\n' <"$credentials/admin.password")"
umask 077  # server.properties holds the admin's password
if [[ -n "$admin" ]]; then
  cat >"$conf/server.properties" <<PROPS
listeners=CLIENT://0.0.0.0:9092,CONTROLLER://127.0.0.1:9093
advertised.listeners=CLIENT://$advertised
inter.broker.listener.name=CLIENT
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,CLIENT:SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin";
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$admin" user_admin="$admin";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin
auto.create.topics.enable=false
PROPS
else
  cat >"$conf/server.properties" <<PROPS
listeners=PLAINTEXT://0.0.0.0:9092,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://$advertised
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
auto.create.topics.enable=true
PROPS
fi
cat >>"$conf/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:9093
controller.listener.names=CONTROLLER
log.dirs=$data/logs
num.partitions=3
offsets.topic.num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.ms=-1
PROPS
cat >"$conf/log4j.properties" <<'PROPS'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
PROPS
java=(java "-Xmx${KAFKA_HEAP:-512m}" "-Xms${KAFKA_HEAP:-512m}" -XX:+UseG1GC -Djava.awt.headless=true
      "-Dlog4j.configuration=file:$conf/log4j.properties" -cp '/opt/kafka/libs/*')
marker="$data/logs/.formatted-with-scram"
if [[ -n "$admin" && -f "$data/logs/meta.properties" && ! -f "$marker" ]]; then
  # Formatted without the admin (SCRAM users are seeded only by a format): keep it aside, start afresh.
  aside="$data/logs.before-auth-$(date -u +%Y%m%dT%H%M%SZ)"
  echo "kafka-start: storage has no SCRAM users; moving it to $aside and formatting afresh" >&2
  mv "$data/logs" "$aside" && mkdir -p "$data/logs"
fi
if [[ ! -f "$data/logs/meta.properties" ]]; then
  cid="$("${java[@]}" kafka.tools.StorageTool random-uuid | tail -n1)"
  scram=()
  [[ -n "$admin" ]] && scram=(--add-scram "SCRAM-SHA-512=[name=admin,password=$admin]")
  "${java[@]}" kafka.tools.StorageTool format -t "$cid" -c "$conf/server.properties" --ignore-formatted "${scram[@]}"
  [[ -n "$admin" ]] && : >"$marker"
fi
exec "${java[@]}" kafka.Kafka "$conf/server.properties"
