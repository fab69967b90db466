#!/usr/bin/env bash
# Checks that README's two commands share one build: every crate that `cargo run --bin citybrain`
# compiles must be resolved with the same features by `cargo test --workspace --all-targets`.
# A feature only the tests ask for (a dev-dependency's, say tokio's "test-util") would otherwise
# rebuild that crate and everything above it (DataFusion, rdkafka) for the tests. Fix a failure
# by naming the feature in [workspace.dependencies] of Cargo.toml. Reads Cargo.lock only (offline).
set -euo pipefail
cd "$(dirname "$0")/.."
features() { cargo tree --locked --offline --prefix none -f '{p} {f}' "$@" | sed 's/ (\*)$//' | sort -u; }
run="$(features -e no-dev)"
test="$(features --workspace)"
# Lines of the run build that the test build does not have: a crate compiled with other features.
differ="$(comm -23 <(echo "$run") <(echo "$test"))"
if [[ -n "$differ" ]]; then
  echo "check-features: the test command would rebuild these crates with other features:" >&2
  while read -r line; do
    pkg="${line%% *} ${line#* }"; pkg="${pkg%% (*}"
    name="$(echo "$line" | cut -d' ' -f1,2)"
    echo "  run:  $line" >&2
    echo "  test: $(echo "$test" | grep -F "$name " | head -1)" >&2
  done <<<"$differ"
  exit 1
fi
echo "check-features: \`cargo run\` and \`cargo test --workspace --all-targets\` resolve the same features"
