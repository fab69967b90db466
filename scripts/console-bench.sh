#!/usr/bin/env bash
# The console's live latency (BENCHMARKS.md): on a scene of at least 500 open incidents, the
# time from an action sent to the API to the page showing its effect on the map and the list,
# p50/p95/max over 100 actions. Debug build, like the tests; headless Chromium.
#
#   scripts/console-bench.sh
#
# CITYBRAIN_CONSOLE_URL=http://HOST:PORT/ measures a console already running instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/console-browser.sh install
cargo test -p citybrain-engine --test console --locked -- --ignored --exact \
  live_latency_over_a_500_incident_scene --nocapture 2>&1 | grep -E "console live latency|page's work|panicked|test result"
