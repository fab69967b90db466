#!/usr/bin/env bash
# End-to-end benchmark: simulator feed files -> file source -> decode -> pseudonymise -> rules
# -> alert file, beside two baselines (read + split lines only; read + decode + pseudonymise).
# Prints one markdown table row per run (see BENCHMARKS.md for what each column means).
#
#   scripts/bench.sh [-n EVENTS] [-r RULES] [-i INPUT_DIR] [-c "1 2"] [-k REPEATS]
#                    [-b BATCH] [--traffic-only] [--latency] [--modes "read decode pipeline"]
#
#   -n EVENTS       simulator events to generate (default 1000000); ignored with -i
#   -r RULES        a rules folder or one .sql file (default rules/library)
#   -i INPUT_DIR    read this folder's feed files instead of generating
#   -c CORES        core counts to run on, pinned with taskset (default "1 2")
#   -k REPEATS      runs of each configuration (default 3; the table shows each run)
#   -b BATCH        records per batch (default 8192)
#   --traffic-only  generate only traffic.jsonl (the Flink comparison input)
#   --latency       also measure the pipeline's maximum rate with batches of 1024, then run
#                   it paced at 80% of that rate (the latency target of issue 5)
#   --modes LIST    which of read, decode, pipeline to run (default all three)
#
# Generated input is kept in $BENCH_DATA (default /tmp/citybrain-bench) and reused.
# CITYBRAIN_BENCH_BIN=path uses an already built citybrain-bench instead of building.
# Examples (BENCHMARKS.md has the full list):
#   scripts/bench.sh --traffic-only -n 1000000 -r benches/rules/tumble_1min_per_road.sql
#   scripts/bench.sh -n 10000000 -r rules/library
set -euo pipefail
cd "$(dirname "$0")/.."

events=1000000
rules=rules/library
input=""
cores="1 2"
repeats=3
batch=8192
traffic_only=0
latency=0
modes="read decode pipeline"
while [[ $# -gt 0 ]]; do
    case "$1" in
        -n) events="$2"; shift 2 ;;
        -r) rules="$2"; shift 2 ;;
        -i) input="$2"; shift 2 ;;
        -c) cores="$2"; shift 2 ;;
        -k) repeats="$2"; shift 2 ;;
        -b) batch="$2"; shift 2 ;;
        --traffic-only) traffic_only=1; shift ;;
        --latency) latency=1; shift ;;
        --modes) modes="$2"; shift 2 ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

if [[ -n "${CITYBRAIN_BENCH_BIN:-}" ]]; then
    bench="$CITYBRAIN_BENCH_BIN"   # a binary built before (skips the build)
else
    target="${CARGO_TARGET_DIR:-target}"
    # --workspace --bins: the build scripts/bench-kafka.sh uses too (adding --benches or
    # --examples turns on dev-dependency features and compiles DataFusion a second time).
    echo "building (release) ..." >&2
    nice -n 10 cargo build --release --locked --workspace --bins -q
    bench="$target/release/citybrain-bench"
fi

if [[ -z "$input" ]]; then
    data="${BENCH_DATA:-/tmp/citybrain-bench}"
    if [[ $traffic_only == 1 ]]; then
        input="$data/traffic-$events"
        flag=--traffic-only
    else
        input="$data/city-$events"
        flag=""
    fi
    if [[ ! -f "$input/traffic.jsonl" ]]; then
        echo "generating $events events into $input ..." >&2
        "$bench" generate --out "$input" --events "$events" $flag >&2
    fi
fi

echo "input: $input ($(du -sh "$input" | cut -f1)), rules: $rules, batch $batch" >&2
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

row() {
    # $1 cores, $2 label, rest: the RESULT json on stdin
    python3 -c '
import json, sys
cores, label = sys.argv[1], sys.argv[2]
r = json.loads(sys.stdin.read())
lat = lambda k: "%.2f" % r[k] if k in r else "-"
print("| %s | %s | %d | %.0f | %.0f | %.1f | %.2f | %.2f | %.2f | %.0f | %s | %s | %s |" % (
    label, cores, r["events"], r["events_per_s"], r["events_per_cpu_s"], r["mb_per_s"],
    r["wall_s"], r["cpu_s"], r["total_s"], r["peak_rss_mb"], lat("p50_ms"), lat("p99_ms"),
    lat("p999_ms")))
' "$@"
}

cpus_for() { if [[ "$1" == 1 ]]; then echo 0; else echo "0-$(( $1 - 1 ))"; fi; }

echo "| run | cores | events | events/s | events/CPU-s | MB/s | wall s | CPU s | process s | peak RSS MB | p50 ms | p99 ms | p99.9 ms |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for n in $cores; do
    cpus=$(cpus_for "$n")
    for mode in $modes; do
        for _ in $(seq "$repeats"); do
            out=$(taskset -c "$cpus" "$bench" run --mode "$mode" --input "$input" \
                  --rules "$rules" --batch-size "$batch")
            echo "$out" | grep -v '^RESULT' >&2
            echo "$out" | sed -n 's/^RESULT //p' | row "$n" "$mode"
        done
    done
    if [[ $latency == 1 ]]; then
        # The maximum sustained rate at the latency runs' batch size, then 80 % of it.
        out=$(taskset -c "$cpus" "$bench" run --mode pipeline --input "$input" \
              --rules "$rules" --batch-size 1024)
        echo "$out" | grep -v '^RESULT' >&2
        echo "$out" | sed -n 's/^RESULT //p' | row "$n" "pipeline, batch 1024 (max rate)"
        max_rate=$(echo "$out" | sed -n 's/^RESULT //p' \
                   | python3 -c 'import json, sys; print(json.load(sys.stdin)["events_per_s"])')
        rate=$(python3 -c "print(int(float('$max_rate') * 0.8))")
        for _ in $(seq "$repeats"); do
            out=$(taskset -c "$cpus" "$bench" run --mode pipeline --input "$input" \
                  --rules "$rules" --batch-size 1024 --rate "$rate")
            echo "$out" | grep -v '^RESULT' >&2
            echo "$out" | sed -n 's/^RESULT //p' | row "$n" "pipeline paced at $rate/s, batch 1024"
        done
    fi
done
