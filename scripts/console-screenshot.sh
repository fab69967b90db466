#!/usr/bin/env bash
# Regenerates docs/console.png (README's picture of the console): runs the demo city through the
# built-in library, logs in as the city in headless Chromium, waits for rush hour (08:00
# simulated) and takes a 1600x1000 screenshot with one incident's panel open.
#
#   scripts/console-screenshot.sh [OUT.png]
#
# CITYBRAIN_CONSOLE_URL=http://HOST:PORT/ photographs a console already running instead;
# CITYBRAIN_CONSOLE_TOKEN overrides the demo city token; CITYBRAIN_SCREENSHOT_AT=T17:30 picks
# another simulated time of day.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/console-browser.sh install
export CITYBRAIN_SCREENSHOT="$(realpath -m "${1:-docs/console.png}")"
cargo test -p citybrain-engine --test console --locked -- --ignored --exact \
  screenshot_of_the_demo_city_at_rush_hour --nocapture
