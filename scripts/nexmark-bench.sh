#!/usr/bin/env bash
# citybrain's events per CPU-second on each Nexmark query (BENCHMARKS.md, beside Flink's from
# `scripts/flink/nexmark.py bench`): `citybrain replay --feeds feeds/nexmark.sql` of the same
# million-event set, one query at a time, on one core (taskset -c 0), user + system CPU seconds
# of the process from /usr/bin/time. Events per CPU-second count every event of the set
# (Nexmark's measure, as the Flink side does), whatever tables the query reads.
#
#   scripts/nexmark-bench.sh [QUERY ...]     # default: every query in rules/tests/nexmark/
#
# NEXMARK_EVENTS (default 1000000) sizes the set; NEXMARK_DIR (default
# ~/.cache/citybrain/nexmark-1m, shared with scripts/nexmark-check.sh)
# keeps the set; CITYBRAIN names the binary (default: a release build of this checkout; debug
# numbers mean nothing). Prints one markdown row per query.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${NEXMARK_EVENTS:-1000000}
SEED=42
DIR=${NEXMARK_DIR:-$HOME/.cache/citybrain/nexmark-1m}
if [ -z "${CITYBRAIN:-}" ]; then
    cargo build --release --locked --bin citybrain >&2
    CITYBRAIN=${CARGO_TARGET_DIR:-target}/release/citybrain
fi
if [ ! -f "$DIR/.done-$EVENTS-$SEED" ]; then
    rm -rf "$DIR"
    "$CITYBRAIN" simulate --nexmark --out "$DIR" --events "$EVENTS" --seed "$SEED" >&2
    touch "$DIR/.done-$EVENTS-$SEED"
fi
events=$(cat "$DIR/person.jsonl" "$DIR/auction.jsonl" "$DIR/bid.jsonl" | wc -l)
queries=("$@")
if [ ${#queries[@]} -eq 0 ]; then
    for q in rules/tests/nexmark/*/query.sql; do queries+=("$(basename "$(dirname "$q")")"); done
fi
echo "| query | citybrain wall s | citybrain CPU s | citybrain events/CPU-s |"
echo "|---|---:|---:|---:|"
for q in "${queries[@]}"; do
    stats=$(mktemp)
    /usr/bin/time -f "%e %U %S" -o "$stats" taskset -c 0 "$CITYBRAIN" replay \
        --feeds feeds/nexmark.sql --input "$DIR" --rules "rules/tests/nexmark/$q/query.sql" \
        --out "$DIR/bench-$q.jsonl" --dlq "$DIR/bench-dead-$q.jsonl" >/dev/null 2>&1
    read -r wall user sys < "$stats"
    rm -f "$stats"
    awk -v q="$q" -v w="$wall" -v u="$user" -v s="$sys" -v n="$events" \
        'BEGIN { cpu = u + s; printf "| %s | %.1f | %.2f | %d |\n", q, w, cpu, (cpu > 0 ? n / cpu : 0) }'
done
