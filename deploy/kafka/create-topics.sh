#!/usr/bin/env bash
# One-shot topic init: create textroute's topics, or grow their partitions, then exit 0.
#
# Reads the same TEXTROUTE_* variables as the worker, so names and partition counts cannot
# drift between them. Safe to re-run: existing topics are kept, and a topic with fewer
# partitions than configured is grown (Kafka can add partitions, never remove them).
set -euo pipefail

bootstrap="${TEXTROUTE_BROKER_BOOTSTRAP_SERVERS:-kafka:9092}"
partitions="${TEXTROUTE_TOPIC_PARTITIONS:-6}"
replication="${TEXTROUTE_TOPIC_REPLICATION:-1}"
min_isr="${TEXTROUTE_TOPIC_MIN_INSYNC_REPLICAS:-1}"
# max.message.bytes as the worker sizes it (stream.topics.topic_limits): inbound records up to
# what it routes, outputs up to what its producer sends, each plus 16 KiB of record framing.
overhead=16384
inbound_bytes=$(( ${TEXTROUTE_WORKER_MAX_MESSAGE_BYTES:-1000000} + overhead ))
output_bytes=$(( ${TEXTROUTE_WORKER_MAX_OUTPUT_BYTES:-1000000} + overhead ))
attempts="${TOPIC_INIT_ATTEMPTS:-30}"
delay="${TOPIC_INIT_DELAY_SECONDS:-2}"
kafka_topics="${KAFKA_TOPICS_BIN:-/opt/kafka/bin/kafka-topics.sh}"
# Only for a cluster whose clients need SASL/TLS: a client .properties file for the admin tool.
command_config="${TOPIC_INIT_COMMAND_CONFIG:-}"

inbound_topics=(
  "${TEXTROUTE_TOPIC_EMAIL:-textroute.email}"
  "${TEXTROUTE_TOPIC_TICKET:-textroute.ticket}"
  "${TEXTROUTE_TOPIC_ARTICLE:-textroute.article}"
)
output_topics=(
  "${TEXTROUTE_TOPIC_ROUTED:-textroute.routed}"
  "${TEXTROUTE_TOPIC_DEAD_LETTER:-textroute.dead-letter}"
  "${TEXTROUTE_TOPIC_SHADOW:-textroute.shadow}"
  "${TEXTROUTE_TOPIC_FEEDBACK:-textroute.feedback}"
)
# Routed messages with their model text, keyed by message id: compaction keeps the newest.
archive_topic="${TEXTROUTE_TOPIC_ARCHIVE:-textroute.archive}"

log() { echo "topic-init: $*" >&2; }

topics_cmd() {
  if [[ -n "$command_config" ]]; then
    "$kafka_topics" --bootstrap-server "$bootstrap" --command-config "$command_config" "$@"
  else
    "$kafka_topics" --bootstrap-server "$bootstrap" "$@"
  fi
}

current_partitions() {
  topics_cmd --describe --topic "$1" 2>/dev/null \
    | grep -o 'PartitionCount: *[0-9]*' | head -n 1 | grep -o '[0-9]*$' || true
}

ensure_topic() {
  local name="$1" wanted="$2" max_bytes="$3" extra=("${@:4}") try have
  for ((try = 1; try <= attempts; try++)); do
    # Fails until `replication` brokers are up, so a cluster that is still starting is waited for.
    if topics_cmd --create --if-not-exists --topic "$name" --partitions "$wanted" \
      --replication-factor "$replication" --config "min.insync.replicas=$min_isr" \
      --config "max.message.bytes=$max_bytes" "${extra[@]}"; then
      have="$(current_partitions "$name")"
      if [[ -n "$have" && "$have" -lt "$wanted" ]]; then
        log "$name has $have partitions, growing it to $wanted"
        topics_cmd --alter --topic "$name" --partitions "$wanted"
      fi
      log "$name ready ($wanted partitions, replication factor $replication, min ISR $min_isr)"
      return 0
    fi
    log "$name not created yet (attempt $try/$attempts); retrying in ${delay}s"
    sleep "$delay"
  done
  log "giving up on $name after $attempts attempts: check that $replication broker(s) are up at $bootstrap"
  return 1
}

for topic in "${inbound_topics[@]}"; do
  ensure_topic "$topic" "$partitions" "$inbound_bytes"
done
for topic in "${output_topics[@]}"; do
  ensure_topic "$topic" "$partitions" "$output_bytes"
done
ensure_topic "$archive_topic" "$partitions" "$output_bytes" --config "cleanup.policy=compact"
log "all topics ready"
