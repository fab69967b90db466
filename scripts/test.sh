#!/usr/bin/env bash
# Runs the whole test suite: every crate's unit tests, the integration tests (which drive the
# real `citybrain` binary over generated feeds) and the benches' compile check.
# Needs only the Rust toolchain. CARGO_TARGET_DIR defaults to one shared folder outside the
# clone so repeated runs (and CI) reuse the build.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/citybrain/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
cargo test --workspace --all-targets --locked
