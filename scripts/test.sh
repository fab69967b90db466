#!/usr/bin/env bash
# Runs the whole test suite: every crate's unit tests, the integration tests (which drive the
# real `citybrain` binary over generated feeds) and the benches' compile check.
# Needs only the Rust toolchain. Builds into the same target folder as `cargo run` (CI points
# CARGO_TARGET_DIR at a folder outside the clone so its runs reuse one build).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
cargo test --workspace --all-targets --locked
