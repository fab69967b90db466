#!/usr/bin/env bash
# Runs the whole test suite: every crate's unit tests, the integration tests (which drive the
# real `citybrain` binary over generated feeds and a real Kafka-protocol broker) and the
# benches' compile check. Needs only the Rust toolchain: the broker (tansu) is installed and
# started by scripts/kafka-dev.sh when it is not already running, and stopped afterwards. Builds into the same target folder as `cargo run` (CI points
# CARGO_TARGET_DIR at a folder outside the clone so its runs reuse one build).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
if ! scripts/kafka-dev.sh status >/dev/null 2>&1; then
  scripts/kafka-dev.sh up
  trap 'scripts/kafka-dev.sh down' EXIT
fi
# The console's browser tests drive Debian's headless Chromium (installed once, as root); without
# it they are skipped loudly.
scripts/console-browser.sh install || echo "test.sh: chromium could not be installed: the console's browser tests will be skipped" >&2
export CITYBRAIN_TEST_BROKERS="${CITYBRAIN_TEST_BROKERS:-127.0.0.1:${KAFKA_DEV_PORT:-19092}}"
# The CAP 1.2 tests validate incident messages with xmllint against OASIS's schema (installed
# and fetched, pinned, by the script).
CITYBRAIN_CAP_XSD="$(scripts/cap-schema.sh)"
export CITYBRAIN_CAP_XSD
# --all-targets builds the criterion benches too and runs each benchmark once (criterion's
# test mode), so a broken bench fails here.
cargo test --workspace --all-targets --locked
# `cargo bench --no-run` as the issue asks, in the test profile: it reuses the executables the
# line above built (about a second). The release-profile build (LTO over DataFusion, 30+ min
# cold) belongs to scripts/bench.sh, not CI; BENCHMARKS.md explains the choice.
cargo bench --workspace --no-run --profile test --locked
