#!/usr/bin/env bash
# End-to-end benchmark through Kafka: a dedicated tansu broker (memory storage), the simulator
# publishing EVENTS events to the feed topics, then a consume-only baseline and the engine
# reading them back. Prints a markdown table (one row per stage) and a bottleneck guess.
#
#   scripts/bench-kafka.sh [-n EVENTS] [-r RULES] [-p PORT] [-s STORAGE] [--sim-rate R] [--keep]
#
#   -n EVENTS      simulator events to publish (default 1000000)
#   -r RULES       the engine's rules folder (default rules/library)
#   -p PORT        port of the dedicated broker (default $BENCH_KAFKA_PORT, else 19192; the
#                  dev broker of scripts/kafka-dev.sh is on 19092)
#   -s STORAGE     tansu storage engine (default memory://tansu/)
#   --sim-rate R   simulator events per simulated second (default 200, the simulator's)
#   --keep         keep the work folder (config, logs, each stage's output) and print its path
#   --checkpoint-ms MS  the engine's checkpoint interval (default 10000, the engine's); the
#                  engine's summary (engine.err) says how many it took and their share of the run
#   -P KEY=VALUE   a librdkafka consumer property for the engine (repeatable), e.g.
#                  -P queued.min.messages=1000000 (see BENCHMARKS.md, "Through Kafka")
#
# Stages, one process each, one after the other, against the same broker:
#   produce       `citybrain simulate --brokers`: EVENTS events, unpaced (as fast as the broker
#                 acknowledges them), idempotent producer
#   consume-only  `citybrain-bench drain`: a plain librdkafka consumer reads every feed message
#                 and nothing else; the practical limit of any engine reading this broker
#   engine        `citybrain run --brokers --exit-at-end` with a fresh consumer group: consume,
#                 decode, pseudonymise, every rule, alerts and dead letters produced back
# Wall, CPU (user + system) and peak RSS are the whole process's, from /usr/bin/time (start-up,
# group join and the end-of-input check included: use a large EVENTS for rates); broker CPU
# is tansu's utime + stime from /proc/PID/stat before and after the stage.
#
# CITYBRAIN_BIN=path runs that citybrain (default $CARGO_TARGET_DIR/release/citybrain, built
# if missing); CITYBRAIN_BENCH_BIN=path that citybrain-bench (default: beside citybrain). The
# broker is stopped on exit, whatever happens.
# Examples:
#   scripts/bench-kafka.sh -n 1000000
#   scripts/bench-kafka.sh -n 1000000 -P queued.min.messages=1000000
#   CITYBRAIN_BIN=/work/target/debug/citybrain scripts/bench-kafka.sh -n 20000
set -euo pipefail
cd "$(dirname "$0")/.."

events=1000000
rules=rules/library
port="${BENCH_KAFKA_PORT:-19192}"
storage="memory://tansu/"
sim_rate=200
engine_props=()
keep=0
checkpoint_ms=10000
while [[ $# -gt 0 ]]; do
    case "$1" in
        -n) events="$2"; shift 2 ;;
        -r) rules="$2"; shift 2 ;;
        -p) port="$2"; shift 2 ;;
        -s) storage="$2"; shift 2 ;;
        --sim-rate) sim_rate="$2"; shift 2 ;;
        -P) engine_props+=("$2"); shift 2 ;;
        --keep) keep=1; shift ;;
        --checkpoint-ms) checkpoint_ms="$2"; shift 2 ;;
        -h|--help) sed -n '2,37p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

# The binaries: citybrain and citybrain-bench (its `drain` command is the consume-only
# baseline), from one release build of the workspace's binaries (the build scripts/bench.sh
# makes, so neither script compiles DataFusion again for the other).
target="${CARGO_TARGET_DIR:-$PWD/target}"
bin="${CITYBRAIN_BIN:-$target/release/citybrain}"
drain="${CITYBRAIN_BENCH_BIN:-$(dirname "$bin")/citybrain-bench}"
for b in "$bin" "$drain"; do
    if [[ ! -x "$b" ]]; then
        if [[ -n "${CITYBRAIN_BIN:-}${CITYBRAIN_BENCH_BIN:-}" ]]; then
            echo "$b is not an executable (CITYBRAIN_BIN / CITYBRAIN_BENCH_BIN)" >&2
            exit 1
        fi
        echo "building citybrain and citybrain-bench (release) ..." >&2
        nice -n 10 cargo build --release --locked --workspace --bins -q
    fi
done
export PATH="$HOME/.cargo/bin:$PATH"
command -v tansu >/dev/null || scripts/kafka-dev.sh install

url="tcp://127.0.0.1:$port"
brokers="127.0.0.1:$port"
clk=$(getconf CLK_TCK)
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
# json_field NAME: field NAME of the JSON object on stdin.
json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
# CPU seconds (user + system) of process $1 so far: fields 14 and 15 of /proc/PID/stat, counted
# after the command name (which may hold spaces).
cpu_of() { awk -v clk="$clk" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / clk }' "/proc/$1/stat"; }

if listening; then
    echo "port $port is taken (another broker?); pick another with -p" >&2
    exit 1
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-kafka.XXXXXX")
# The broker: scripts/kafka-dev.sh with this port, storage and a folder in the work folder.
dev() {
    KAFKA_DEV_PORT="$port" KAFKA_DEV_DIR="$work/broker" KAFKA_DEV_STORAGE="$storage" \
        scripts/kafka-dev.sh "$@"
}
broker=""
stage=""
cleanup() {
    local code=$?
    trap - EXIT INT TERM
    if [[ -n "$stage" ]]; then
        # /usr/bin/time and the stage it runs (its only child).
        local kids
        kids=$(ps -o pid= --ppid "$stage" 2>/dev/null || true)
        kill $kids "$stage" 2>/dev/null || true
        wait "$stage" 2>/dev/null || true
    fi
    if [[ -n "$broker" ]]; then
        dev stop >&2 || true
    fi
    if [[ $keep == 1 ]]; then
        echo "work folder kept: $work" >&2
    else
        rm -rf "$work"
    fi
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "starting tansu on $url, storage $storage ..." >&2
dev up >&2
broker=$(cat "$work/broker/tansu.pid")

cat >"$work/citybrain.toml" <<EOF
[kafka]
brokers = "$brokers"
[kafka.consumer_properties]
"fetch.wait.max.ms" = "10"
$(for kv in "${engine_props[@]}"; do printf '"%s" = "%s"\n' "${kv%%=*}" "${kv#*=}"; done)
[checkpoint]
store = "$work/checkpoints"
interval_ms = $checkpoint_ms
[metrics]
listen = ""
EOF

# run_stage NAME COMMAND...: runs COMMAND under /usr/bin/time and leaves NAME.out, NAME.err,
# NAME.time ("wall user sys maxrss_kb") and NAME.broker (tansu's CPU seconds during it).
run_stage() {
    local name=$1
    shift
    local before after rc=0
    before=$(cpu_of "$broker")
    /usr/bin/time -f "%e %U %S %M" -o "$work/$name.time" "$@" \
        >"$work/$name.out" 2>"$work/$name.err" &
    stage=$!
    wait "$stage" || rc=$?
    stage=""
    if ! kill -0 "$broker" 2>/dev/null; then
        echo "tansu died during $name; its log:" >&2
        tail -20 "$work/broker/tansu.log" >&2
        exit 1
    fi
    after=$(cpu_of "$broker")
    echo "$before $after" >"$work/$name.broker"
    if ((rc != 0)); then
        echo "$name failed (exit $rc); its stderr:" >&2
        tail -30 "$work/$name.err" >&2
        exit 1
    fi
}

echo "machine: $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg); citybrain: $bin" >&2
echo "produce: publishing $events events ..." >&2
run_stage produce "$bin" simulate --config "$work/citybrain.toml" --brokers "$brokers" \
    --events "$events" --sim-rate "$sim_rate"
published=$(sed -n 's/^published \([0-9]*\) events.*/\1/p' "$work/produce.out")
published="${published:-$events}"
echo "  $(cat "$work/produce.out")" >&2

echo "consume-only: reading $published messages with citybrain-bench drain ..." >&2
run_stage consume "$drain" drain --brokers "$brokers" --events "$published"
drained=$(sed -n 's/^RESULT //p' "$work/consume.out" | json_field messages)
cat "$work/consume.err" >&2

echo "engine: citybrain run --exit-at-end over $rules ..." >&2
# --insecure-dev-key: the broker is a throwaway one of this script (pseudonyms are never kept).
run_stage engine "$bin" run --config "$work/citybrain.toml" --brokers "$brokers" \
    --group "bench-kafka-$$-$(date +%s)" --rules "$rules" --exit-at-end --insecure-dev-key
read_by_engine=$(sed -n 's/^read \([0-9]*\) records.*/\1/p' "$work/engine.err" | tail -1)
grep -A100 '^read [0-9]* records' "$work/engine.err" | sed 's/^/  /' >&2 || true

# What the engine wrote back, counted on the broker (not part of the table).
run_stage alerts "$drain" drain --brokers "$brokers" --topics citybrain.alerts
alerts=$(sed -n 's/^RESULT //p' "$work/alerts.out" | json_field messages)
run_stage dlq "$drain" drain --brokers "$brokers" --topics citybrain.dlq
dead=$(sed -n 's/^RESULT //p' "$work/dlq.out" | json_field messages)
broker_rss=$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$broker/status")

python3 - "$work" "$published" "$drained" "${read_by_engine:-$published}" "$alerts" "$dead" \
    "$broker_rss" "$events" <<'EOF'
import sys
work, published, drained, engine_read, alerts, dead, broker_rss, asked = sys.argv[1:]
def stage(name, events):
    wall, user, sys_, rss = open(f"{work}/{name}.time").read().split()[-4:]
    before, after = map(float, open(f"{work}/{name}.broker").read().split())
    return dict(events=int(events), wall=float(wall), cpu=float(user) + float(sys_),
                rss=int(rss) / 1024, broker=after - before)
rows = [("produce", stage("produce", published)),
        ("consume-only", stage("consume", drained)),
        ("engine end to end", stage("engine", engine_read))]
print("| stage | events | wall s | events/s | CPU s | events/CPU-s | broker CPU s | peak RSS MB |")
print("|---|---|---|---|---|---|---|---|")
for name, r in rows:
    rate = r["events"] / max(r["wall"], 1e-9)
    per_cpu = "%.0f" % (r["events"] / r["cpu"]) if r["cpu"] > 0 else "-"
    print("| %s | %d | %.2f | %.0f | %.2f | %s | %.2f | %.0f |" % (
        name, r["events"], r["wall"], rate, r["cpu"], per_cpu, r["broker"], r["rss"]))
print()
print(f"alerts produced: {alerts} (citybrain.alerts), dead letters: {dead}; "
      f"broker peak RSS {broker_rss} MB")
if int(published) != int(asked) or int(drained) != int(published) or int(engine_read) != int(published):
    print(f"warning: asked {asked}, published {published}, consume-only read {drained}, "
          f"engine read {engine_read}")
con, eng = rows[1][1], rows[2][1]
con_rate = con["events"] / max(con["wall"], 1e-9)
eng_rate = eng["events"] / max(eng["wall"], 1e-9)
share = eng_rate / con_rate if con_rate > 0 else 0.0
us = lambda cpu: 1e6 * cpu / max(eng["events"], 1)
busy = (eng["cpu"] + eng["broker"]) / max(eng["wall"], 1e-9)
if busy < 0.5:
    guess = (f"waiting, not CPU: engine and broker together kept {busy:.2f} cores busy over the "
             f"engine's {eng['wall']:.1f} s (start-up, group join and the end-of-input check "
             f"dominate a run this short; use a larger -n)")
elif eng["broker"] > eng["cpu"]:
    guess = (f"the broker: tansu used {us(eng['broker']):.1f} µs CPU per event against the "
             f"engine's {us(eng['cpu']):.1f} µs; the engine ran at {share:.0%} of the "
             f"consume-only rate")
elif share >= 0.8:
    guess = (f"the Kafka read path: the engine ran at {share:.0%} of the consume-only rate "
             f"(engine {us(eng['cpu']):.1f} µs CPU per event, broker {us(eng['broker']):.1f} µs)")
else:
    guess = (f"the engine (decode, rules, alert output): {share:.0%} of the consume-only rate, "
             f"{us(eng['cpu']):.1f} µs CPU per event against the broker's "
             f"{us(eng['broker']):.1f} µs; the engine kept "
             f"{eng['cpu'] / max(eng['wall'], 1e-9):.2f} cores busy")
print(f"bottleneck: {guess}")
EOF
