#!/bin/bash
# Formats the KRaft storage on first start, then runs the broker in the foreground.
# KAFKA_ADVERTISED (host:port the clients are told), KAFKA_DATA (the volume), KAFKA_HEAP.
set -euo pipefail
data="${KAFKA_DATA:-/var/lib/kafka}"
advertised="${KAFKA_ADVERTISED:-kafka:9092}"
conf=/tmp/kafka-config
mkdir -p "$conf" "$data/logs"
cat >"$conf/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:9093
listeners=PLAINTEXT://0.0.0.0:9092,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://$advertised
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data/logs
num.partitions=3
offsets.topic.num.partitions=1
auto.create.topics.enable=true
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
if [[ ! -f "$data/logs/meta.properties" ]]; then
  cid="$("${java[@]}" kafka.tools.StorageTool random-uuid | tail -n1)"
  "${java[@]}" kafka.tools.StorageTool format -t "$cid" -c "$conf/server.properties" --ignore-formatted
fi
exec "${java[@]}" kafka.Kafka "$conf/server.properties"
