#!/usr/bin/env bash
# A Kafka-protocol broker for development and the integration tests: tansu 0.6.0 with its
# sqlite storage, on 127.0.0.1:$KAFKA_DEV_PORT (default 19092), state and log in $KAFKA_DEV_DIR
# (default .kafka-dev/ in the clone). $KAFKA_DEV_STORAGE picks another storage engine (default
# sqlite://tansu.db; scripts/bench-kafka.sh runs memory://, fit for throughput runs only:
# tansu 0.6.0's memory engine mis-serves fetches that start inside a record batch).
#
#   scripts/kafka-dev.sh up      install tansu if missing, start it, create the default topics
#   scripts/kafka-dev.sh stop    stop it, keeping its folder (log, data)
#   scripts/kafka-dev.sh down    stop it and delete its folder
#   scripts/kafka-dev.sh status  say whether it runs
#   scripts/kafka-dev.sh install install tansu if missing
#
# The tests read the broker address from CITYBRAIN_TEST_BROKERS (default 127.0.0.1:19092).
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${KAFKA_DEV_PORT:-19092}"
DIR="${KAFKA_DEV_DIR:-$PWD/.kafka-dev}"
PIDFILE="$DIR/tansu.pid"
STORAGE="${KAFKA_DEV_STORAGE:-sqlite://tansu.db}"
URL="tcp://127.0.0.1:$PORT"
TOPICS="city.traffic city.police city.emergency city.market citybrain.alerts citybrain.dlq citybrain.incident-events citybrain.incident-actions"
# Compacted: the latest record per key is what counts.
COMPACTED_TOPICS="citybrain.incidents"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
running() { [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

install() {
  if ! command -v tansu >/dev/null; then
    echo "kafka-dev: installing tansu 0.6.0 (once; a few minutes)"
    cargo install tansu --version 0.6.0 --locked --features libsql,dynostore
  fi
}

up() {
  install
  if running && listening; then
    echo "kafka-dev: already running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
    return
  fi
  if listening; then
    echo "kafka-dev: port $PORT is taken by another process; set KAFKA_DEV_PORT" >&2
    exit 1
  fi
  mkdir -p "$DIR"
  (cd "$DIR" && exec nohup tansu broker --listener-url "$URL" --advertised-listener-url "$URL" \
      --storage-engine "$STORAGE" >tansu.log 2>&1) &
  echo $! >"$PIDFILE"
  local deadline=$((SECONDS + 60))
  until listening; do
    if ! running; then
      echo "kafka-dev: tansu exited; its log:" >&2
      tail -20 "$DIR/tansu.log" >&2
      exit 1
    fi
    if ((SECONDS > deadline)); then
      echo "kafka-dev: tansu did not listen on $PORT within 60 s" >&2
      exit 1
    fi
    sleep 0.2
  done
  for t in $TOPICS; do
    tansu topic create "$t" --partitions 1 --broker "$URL" >/dev/null 2>&1 || true
  done
  for t in $COMPACTED_TOPICS; do
    tansu topic create "$t" --partitions 1 --config cleanup.policy=compact --broker "$URL" >/dev/null 2>&1 || true
  done
  echo "kafka-dev: tansu on 127.0.0.1:$PORT (pid $(cat "$PIDFILE")); CITYBRAIN_TEST_BROKERS=127.0.0.1:$PORT"
}

stop() {
  if running; then
    local pid
    pid="$(cat "$PIDFILE")"
    kill "$pid"
    local deadline=$((SECONDS + 20))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    echo "kafka-dev: stopped"
  fi
}

down() {
  stop
  rm -rf "$DIR"
}

case "${1:-}" in
  up) up ;;
  install) install ;;
  stop) stop ;;
  down) down ;;
  status) if running && listening; then echo "running on 127.0.0.1:$PORT"; else echo "not running"; exit 1; fi ;;
  *) echo "usage: $0 up|stop|down|status|install" >&2; exit 2 ;;
esac
