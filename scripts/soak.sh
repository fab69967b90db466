#!/usr/bin/env bash
# Soak (a benchmark, not CI; issue 11's acceptance): the rule library through Kafka under an
# offered load above what the engine sustains, for a long time, with the faults of a real city:
#
#   - a poisoned clock: a sensor whose records are an hour ahead, one every 1,000 traffic
#     records of the middle third of the input;
#   - a hot key: a third of the traffic records of the middle third on one road and sensor;
#   - a failing rule (integer division by zero at run time) dropped into the watched rules
#     folder halfway through.
#
# It records the engine's memory (RSS every second), then compares the other rules' alerts
# with a clean replay of the same input (hot key in, poisoned records out) and checks that the
# poisoned records, and only they, became `future` dead letters.
#
#   scripts/soak.sh [-d SECONDS] [-r RATE] [-p PORT] [--sim-rate R] [--keep]
#
#   -d SECONDS   how long the input is published (default 600)
#   -r RATE      events per second offered (default 1000000: twice the engine's sustained rate
#                through Kafka in BENCHMARKS.md). RATE x SECONDS events are generated and held
#                by the broker (tansu, memory storage, ~0.4 KB an event): lower RATE on a small
#                machine, it stays a soak as long as RATE exceeds what the engine sustains
#   -p PORT      the soak's own broker (default 19292)
#   --sim-rate R simulator events per simulated second (default 200)
#   --keep       keep the work folder (inputs, logs, rss.csv, alerts) and print its path
#   --no-failing-rule  leave the failing rule out (until rules fail alone, one that fails at run
#                time stops the engine, and the soak says so)
#
# CITYBRAIN_BIN / CITYBRAIN_BENCH_BIN: the binaries (default the release build in
# $CARGO_TARGET_DIR, built if missing); a debug build is fine for a short try:
#   CITYBRAIN_BIN=$CARGO_TARGET_DIR/debug/citybrain scripts/soak.sh -d 60 -r 3000
# Prints a report (also $work/report.md); exits 1 when alerts differ, a poisoned record got
# through, a valid record was lost, or the engine died.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=600
rate=1000000
port=19292
sim_rate=200
keep=0
failing_rule=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        -d) duration="$2"; shift 2 ;;
        -r) rate="$2"; shift 2 ;;
        -p) port="$2"; shift 2 ;;
        --sim-rate) sim_rate="$2"; shift 2 ;;
        --keep) keep=1; shift ;;
        --no-failing-rule) failing_rule=0; shift ;;
        -h|--help) sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

target="${CARGO_TARGET_DIR:-$PWD/target}"
bin="${CITYBRAIN_BIN:-$target/release/citybrain}"
bench="${CITYBRAIN_BENCH_BIN:-$(dirname "$bin")/citybrain-bench}"
for b in "$bin" "$bench"; do
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

brokers="127.0.0.1:$port"
work=$(mktemp -d "${TMPDIR:-/tmp}/soak.XXXXXX")
dev() { KAFKA_DEV_PORT="$port" KAFKA_DEV_DIR="$work/broker" KAFKA_DEV_STORAGE="memory://tansu/" scripts/kafka-dev.sh "$@"; }
pids=()
broker_up=0
cleanup() {
    local code=$?
    trap - EXIT INT TERM
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [[ $broker_up == 1 ]]; then dev stop >&2 || true; fi
    if [[ $keep == 1 ]]; then echo "work folder kept: $work" >&2; else rm -rf "$work"; fi
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say() { echo "soak: $*" >&2; }

events=$(( rate * duration ))
say "generating $events events (sim-rate $sim_rate) in $work ..."
"$bin" simulate --out "$work/base" --events "$events" --sim-rate "$sim_rate" --seed 11 >/dev/null

# The two inputs: `clean` (hot key in) is the reference; `soak` adds the poisoned clock.
python3 - "$work" <<'EOF'
import json, os, sys
from datetime import datetime, timedelta, timezone
work = sys.argv[1]
os.makedirs(f"{work}/clean"); os.makedirs(f"{work}/soak")
def ts(v):
    if isinstance(v, str):
        return datetime.fromisoformat(v.replace("Z", "+00:00"))
    return datetime.fromtimestamp(v / 1000, timezone.utc)
poisoned = 0
for feed in ("traffic", "police", "emergency", "market"):
    src = f"{work}/base/{feed}.jsonl"
    if not os.path.exists(src):
        continue
    lines = open(src).read().splitlines()
    n = len(lines)
    with open(f"{work}/clean/{feed}.jsonl", "w") as clean, open(f"{work}/soak/{feed}.jsonl", "w") as soak:
        for i, line in enumerate(lines):
            middle = n // 3 <= i < 2 * n // 3
            if feed == "traffic" and middle and i % 3 == 0:
                r = json.loads(line)
                r["road_id"], r["sensor_id"] = "R-HOT", "S-HOT"
                line = json.dumps(r, ensure_ascii=False, separators=(",", ":"))
            clean.write(line + "\n"); soak.write(line + "\n")
            if feed == "traffic" and middle and i % 1000 == 0:
                r = json.loads(line)
                r["event_id"], r["sensor_id"] = f"clock-{i}", "S-CLOCK"
                r["ts"] = (ts(r["ts"]) + timedelta(hours=1)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
                soak.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n")
                poisoned += 1
open(f"{work}/poisoned", "w").write(str(poisoned))
EOF
poisoned=$(cat "$work/poisoned")
(umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/key")

say "reference: citybrain replay of the clean input ..."
"$bin" replay --input "$work/clean" --rules rules/library --out "$work/reference.jsonl" \
    --dlq "$work/reference-dead.jsonl" --pseudonym-key-file "$work/key" >"$work/replay.out" 2>"$work/replay.err"

say "broker on $brokers (tansu, memory) ..."
dev up >&2
broker_up=1
cp -r rules/library "$work/rules"
metrics_port=$((port + 1))
cat >"$work/citybrain.toml" <<EOF
[kafka]
brokers = "$brokers"
group_id = "soak"
[kafka.consumer_properties]
"fetch.wait.max.ms" = "10"
[checkpoint]
store = "$work/checkpoints"
[metrics]
listen = "127.0.0.1:$metrics_port"
EOF
run_engine() {
    "$bin" run --config "$work/citybrain.toml" --rules "$work/rules" \
        --pseudonym-key-file "$work/key" "$@"
}
say "engine (live) ..."
"$bin" run --config "$work/citybrain.toml" --rules "$work/rules" \
    --pseudonym-key-file "$work/key" >/dev/null 2>"$work/engine.log" &
engine=$!
pids+=("$engine")
say "publishing at $rate events/s for ${duration}s ..."
"$bench" publish --brokers "$brokers" --input "$work/soak" --rate "$rate" \
    >"$work/publish.out" 2>"$work/publish.err" &
publisher=$!
pids+=("$publisher")

metric() { # metric NAME: the sum of a metric's samples on /metrics
    python3 - "$metrics_port" "$1" <<'EOF' 2>/dev/null || echo 0
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
print(int(sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
              if l.startswith(sys.argv[2] + "{") or l.startswith(sys.argv[2] + " "))))
EOF
}
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
echo "seconds,rss_kb,events_in" >"$work/rss.csv"
started=$(date +%s)
# The engine is up (and handles SIGTERM) once it serves its metrics.
until metric citybrain_batch_records >/dev/null && grep -q 'serving Prometheus' "$work/engine.log"; do
    kill -0 "$engine" 2>/dev/null || { say "the engine did not start: $(tail -3 "$work/engine.log")"; exit 1; }
    sleep 1
done
failing_added=0
while kill -0 "$publisher" 2>/dev/null; do
    now=$(( $(date +%s) - started ))
    kill -0 "$engine" 2>/dev/null || { say "the engine died at ${now}s"; break; }
    echo "$now,$(rss "$engine"),$(metric citybrain_events_in_total)" >>"$work/rss.csv"
    if [[ $failing_rule == 1 && $failing_added == 0 && $now -ge $(( duration / 2 )) ]]; then
        mkdir -p "$work/rules/soak"
        cat >"$work/rules/soak/failing.sql" <<'EOF'
-- title: A rule that fails at run time (integer division by zero)
-- severity: info
SELECT road_id, window_start, window_end, COUNT(*) / (COUNT(*) - COUNT(*)) AS boom
FROM TABLE(TUMBLE(TABLE traffic, DESCRIPTOR(ts), INTERVAL '1' MINUTES))
GROUP BY road_id, window_start, window_end
EOF
        failing_added=$now
        say "failing rule added at ${now}s"
    fi
    sleep 1
done
wait "$publisher" || say "the publisher failed: $(tail -3 "$work/publish.err")"
published=$(sed -n 's/^RESULT //p' "$work/publish.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"])' 2>/dev/null || echo 0)
say "published $published events; waiting for the engine to read them all ..."
total() { echo $(( $(metric citybrain_events_in_total) + $(metric citybrain_malformed_total) + $(metric citybrain_future_total) )); }
while kill -0 "$engine" 2>/dev/null && (( $(total) < published )); do
    echo "$(( $(date +%s) - started )),$(rss "$engine"),$(metric citybrain_events_in_total)" >>"$work/rss.csv"
    sleep 1
done
engine_status="alive"
if kill -0 "$engine" 2>/dev/null; then
    kill -TERM "$engine"
    wait "$engine" && engine_status="stopped with SIGTERM, exit 0" || engine_status="exit $? after SIGTERM"
else
    wait "$engine" && engine_status="ended by itself, exit 0" || engine_status="DIED, exit $?"
fi
say "engine: $engine_status; emitting open windows (run --exit-at-end, same group) ..."
run_engine --exit-at-end >/dev/null 2>"$work/engine-final.log" || say "the final run failed: $(tail -3 "$work/engine-final.log")"
"$bench" drain --brokers "$brokers" --topics citybrain.alerts --out "$work/alerts.jsonl" >/dev/null 2>&1
"$bench" drain --brokers "$brokers" --topics citybrain.dlq --out "$work/dead.jsonl" >/dev/null 2>&1

python3 - "$work" "$duration" "$rate" "$published" "$poisoned" "$engine_status" "$failing_added" <<'EOF' | tee "$work/report.md"
import json, sys
work, duration, rate, published, poisoned, engine_status, failing_added = sys.argv[1:]
def lines(path):
    try:
        return [json.loads(l) for l in open(path) if l.strip()]
    except FileNotFoundError:
        return []
def latest(alerts):
    out = {}
    for a in alerts:
        if a["rule"].startswith("soak/"):
            continue
        a = {k: v for k, v in a.items() if k != "emitted_at"}
        if a["alert_id"] not in out or a["revision"] >= out[a["alert_id"]]["revision"]:
            out[a["alert_id"]] = a
    return out
ref, got = latest(lines(f"{work}/reference.jsonl")), latest(lines(f"{work}/alerts.jsonl"))
missing = [i for i in ref if i not in got]
extra = [i for i in got if i not in ref]
differ = [i for i in ref if i in got and ref[i] != got[i]]
dead = lines(f"{work}/dead.jsonl")
reasons = {}
for d in dead:
    reasons[d["reason"]] = reasons.get(d["reason"], 0) + 1
future_ids = {json.loads(d["record"])["event_id"] for d in dead if d["reason"] == "future"}
clock_future = sum(1 for i in future_ids if i.startswith("clock-"))
ref_late = sum(1 for d in lines(f"{work}/reference-dead.jsonl") if d["reason"] == "late")
rss = [tuple(map(int, l.split(","))) for l in open(f"{work}/rss.csv").read().splitlines()[1:]]
peak = max((r[1] for r in rss), default=0) / 1024
minutes = {}
for s, kb, _ in rss:
    minutes.setdefault(s // 60, []).append(kb / 1024)
failing = [l for l in open(f"{work}/engine.log") if "soak/failing" in l]
print(f"# Soak: {duration} s at {rate} events/s offered\n")
print(f"- published: {published} events ({poisoned} of them poisoned, an hour ahead)")
print(f"- engine: {engine_status}; failing rule added at {failing_added} s; "
      f"log lines naming it: {len(failing)}" + (f" (first: {failing[0].strip()[:200]})" if failing else ""))
print(f"- peak RSS {peak:.0f} MB; per minute (max MB): " +
      ", ".join(f"{m}: {max(v):.0f}" for m, v in sorted(minutes.items())))
print(f"- alerts of the other rules: reference {len(ref)}, Kafka {len(got)}; missing {len(missing)}, "
      f"extra {len(extra)}, different {len(differ)}")
print(f"- dead letters (re-read input is dead-lettered again: at least once): {reasons}; "
      f"distinct records set aside as future: {len(future_ids)}, of them poisoned: "
      f"{clock_future} of {poisoned}; late in the reference: {ref_late}")
ok = not missing and not extra and not differ and clock_future == int(poisoned) \
    and len(future_ids) == int(poisoned) and "DIED" not in engine_status
print(f"\n**{'PASS' if ok else 'FAIL'}**")
for name, ids in (("missing", missing), ("extra", extra), ("different", differ)):
    for i in ids[:5]:
        print(f"  {name}: {json.dumps(ref.get(i) or got.get(i))[:300]}")
sys.exit(0 if ok else 1)
EOF
