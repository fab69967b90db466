#!/usr/bin/env bash
# The console's live latency (BENCHMARKS.md), on a scene of at least 500 open incidents, both
# p50/p95/max: (1) alert to page: each incident the city opens in the next 60 s (up to 100),
# from the engine's emission of the alert that opened it (`emitted_at` of the alert on stdout)
# to the page's first render of it on the map and the list; (2) action to page: 100
# acknowledgements sent to the API, to the page showing their effect. Debug build, like the
# tests; headless Chromium.
#
#   scripts/console-bench.sh
#
# CITYBRAIN_CONSOLE_URL=http://HOST:PORT/ measures a console already running instead (the
# action half only: its alerts are not readable from here).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/console-browser.sh install
cargo test -p citybrain-engine --test console --locked -- --ignored --exact \
  live_latency_over_a_500_incident_scene --nocapture 2>&1 | grep -E "console .*latency|page.s work|panicked|test result"
