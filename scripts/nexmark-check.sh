#!/usr/bin/env bash
# Nexmark on a million events: citybrain's rows for every query in rules/tests/nexmark/ against
# Flink 2.3's, by row count and canonical checksum (rules/tests/nexmark/checksums-1m.txt).
#
#   scripts/nexmark-check.sh            # citybrain against the committed checksums (no Flink)
#   scripts/nexmark-check.sh --flink    # first rewrite the checksums with Flink (PyFlink, ~1 h)
#
# The set: `citybrain simulate --nexmark --events 1000000 --seed 42` (Nexmark's 10,000 events a
# second: 100 s of event time; 20,000 persons, 60,000 auctions, 920,000 bids, 281 MB).
# NEXMARK_DIR (default ~/.cache/citybrain/nexmark-1m) keeps the set between runs; CITYBRAIN
# names the binary (default: a release build of this checkout). Exit 1 when any query differs.
# checksums-1m.txt is not committed yet: run --flink once (about an hour) to write it.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=1000000
SEED=42
DIR=${NEXMARK_DIR:-$HOME/.cache/citybrain/nexmark-1m}
SUMS=rules/tests/nexmark/checksums-1m.txt
if [ -z "${CITYBRAIN:-}" ]; then
    cargo build --release --bin citybrain >&2
    CITYBRAIN=${CARGO_TARGET_DIR:-target}/release/citybrain
fi
PY=$(scripts/flink/setup.sh)

if [ ! -f "$DIR/.done-$EVENTS-$SEED" ]; then
    rm -rf "$DIR"
    "$CITYBRAIN" simulate --nexmark --out "$DIR" --events "$EVENTS" --seed "$SEED" >&2
    touch "$DIR/.done-$EVENTS-$SEED"
fi

if [ "${1:-}" = "--flink" ]; then
    {
        echo "# Flink 2.3's rows for each Nexmark query on \`citybrain simulate --nexmark --events $EVENTS --seed $SEED\`:"
        echo "# query, row count, SHA-256 of the rows in engine/tests/flink.rs's canonical form."
        echo "# Written by scripts/nexmark-check.sh --flink."
        "$PY" scripts/flink/nexmark.py golden "$DIR" --out "$DIR/flink" --all | sed 's/ rows / /; s/ canonical-sha256 / /'
    } > "$SUMS.tmp"
    mv "$SUMS.tmp" "$SUMS"
fi

failed=0
while read -r query rows sum; do
    case "$query" in '#'*|'') continue ;; esac
    out="$DIR/citybrain-$query.jsonl"
    "$CITYBRAIN" replay --feeds feeds/nexmark.sql --input "$DIR" \
        --rules "rules/tests/nexmark/$query/query.sql" --out "$out" --dlq "$DIR/dead-$query.jsonl" >&2
    got=$("$PY" scripts/flink/nexmark.py canon "$out" --field data)
    if [ "$got" = "rows $rows canonical-sha256 $sum" ]; then
        echo "$query: $rows rows, equal to Flink's"
    else
        echo "$query: DIFFERS: Flink rows $rows sha256 $sum; citybrain $got"
        failed=1
    fi
done < "$SUMS"
exit $failed
