#!/usr/bin/env bash
# Throughput of the ingest tier (`citybrain ingest`) with 1, 2, ... instances in one consumer
# group: a dedicated tansu broker (memory storage), the simulator publishing EVENTS events to
# the city's raw topics (PARTITIONS partitions each), then for each instance count a fresh
# group reading everything with `--exit-at-end` (decode, pseudonymise, standard records to
# <topic>.std, acknowledged, committed). Prints a markdown table, one row per instance count.
#
#   scripts/bench-ingest.sh [-n EVENTS] [-i "1 2 4"] [-P PARTITIONS] [-p PORT] [--keep]
#
#   -n EVENTS      simulator events to publish (default 300000)
#   -i COUNTS      instance counts to run, in order (default "1 2")
#   -P PARTITIONS  partitions of every raw and standard topic (default 4)
#   -p PORT        port of the dedicated broker (default 19117)
#   --keep         keep the work folder (config, logs) and print its path
#
# Wall time is from starting the instances to the last one exiting (group join and the
# end-of-input check included: use a large EVENTS for rates); CPU is the instances' user +
# system time from /usr/bin/time, summed; broker CPU is tansu's during the run.
#
# CITYBRAIN_BIN=path runs that citybrain (default $CARGO_TARGET_DIR/release/citybrain, else
# the debug one; say which in BENCHMARKS.md). The broker is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

events=300000
counts="1 2"
partitions=4
port=19117
keep=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        -n) events="$2"; shift 2 ;;
        -i) counts="$2"; shift 2 ;;
        -P) partitions="$2"; shift 2 ;;
        -p) port="$2"; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

target="${CARGO_TARGET_DIR:-$PWD/target}"
bin="${CITYBRAIN_BIN:-}"
if [[ -z "$bin" ]]; then
    bin="$target/release/citybrain"
    [[ -x "$bin" ]] || bin="$target/debug/citybrain"
fi
[[ -x "$bin" ]] || { echo "no citybrain binary at $bin (set CITYBRAIN_BIN)" >&2; exit 1; }
export PATH="$HOME/.cargo/bin:$PATH"
command -v tansu >/dev/null || scripts/kafka-dev.sh install

url="tcp://127.0.0.1:$port"
brokers="127.0.0.1:$port"
clk=$(getconf CLK_TCK)
cpu_of() { awk -v clk="$clk" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / clk }' "/proc/$1/stat"; }
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is taken (another broker?); pick another with -p" >&2
    exit 1
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-ingest.XXXXXX")
dev() {
    KAFKA_DEV_PORT="$port" KAFKA_DEV_DIR="$work/broker" KAFKA_DEV_STORAGE="memory://tansu/" \
        scripts/kafka-dev.sh "$@"
}
broker=""
pids=()
cleanup() {
    local code=$?
    trap - EXIT INT TERM
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [[ -n "$broker" ]] && { dev stop >&2 || true; }
    if [[ $keep == 1 ]]; then echo "work folder kept: $work" >&2; else rm -rf "$work"; fi
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "starting tansu on $url (memory storage) ..." >&2
dev up >&2
broker=$(cat "$work/broker/tansu.pid")
for t in traffic police emergency market; do
    for topic in "city.$t" "city.$t.std"; do
        tansu topic delete "$topic" --broker "$url" >/dev/null 2>&1 || true
        tansu topic create "$topic" --partitions "$partitions" --broker "$url" >/dev/null
    done
done

cat >"$work/ingest.toml" <<EOF
[kafka]
brokers = "$brokers"
[kafka.consumer_properties]
"fetch.wait.max.ms" = "10"
EOF

echo "publishing $events events ..." >&2
"$bin" simulate --brokers "$brokers" --events "$events" >"$work/produce.out" 2>"$work/produce.err"
cat "$work/produce.out" >&2

echo "machine: $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg); citybrain: $bin" >&2
echo "| instances | events | wall s | events/s | instances' CPU s | events/CPU-s | broker CPU s |"
echo "|---|---|---|---|---|---|---|"
for n in $counts; do
    group="bench-ingest-$n-$$"
    before=$(cpu_of "$broker")
    start=$(date +%s.%N)
    pids=()
    for i in $(seq 1 "$n"); do
        CITYBRAIN_PSEUDONYM_KEY=bench-ingest-key /usr/bin/time -f "%e %U %S %M" \
            -o "$work/$n-$i.time" "$bin" ingest --config "$work/ingest.toml" --group "$group" \
            --exit-at-end >"$work/$n-$i.out" 2>"$work/$n-$i.err" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do
        wait "$p" || { echo "an instance failed; see $work (--keep)" >&2; tail -20 "$work"/$n-*.err >&2; exit 1; }
    done
    pids=()
    end=$(date +%s.%N)
    after=$(cpu_of "$broker")
    read_total=$(cat "$work"/$n-*.err | sed -n 's/^ingest: read \([0-9]*\) records.*/\1/p' | awk '{ s += $1 } END { print s }')
    cpu=$(cat "$work"/$n-*.time | awk '{ s += $2 + $3 } END { printf "%.2f", s }')
    python3 - "$n" "$read_total" "$start" "$end" "$cpu" "$before" "$after" <<'PY'
import sys
n, read, start, end, cpu, before, after = sys.argv[1:]
wall = float(end) - float(start)
read, cpu = int(read), float(cpu)
print(f"| {n} | {read} | {wall:.2f} | {read / wall:.0f} | {cpu:.2f} | {read / cpu:.0f} | "
      f"{float(after) - float(before):.2f} |")
PY
done
