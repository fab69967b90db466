#!/usr/bin/env bash
# Fuzzes the decoder, the config loaders (service TOML, feed catalog DDL) and the rule front end
# (rule text to a plan) for a bounded time each: scripts/fuzz.sh [SECONDS] (default 60).
#
# Installs cargo-fuzz once (cargo install) and uses the nightly toolchain when there is one;
# otherwise the stable compiler with RUSTC_BOOTSTRAP=1 (cargo fuzz needs -Z flags for the
# sanitizer). Builds into $CARGO_TARGET_DIR (default fuzz/target): the first build compiles
# every dependency, DataFusion and librdkafka included, with sanitizer instrumentation (see
# BENCHMARKS.md for how long that takes). Seeds are fuzz/corpus/<target>/ (in git); what the
# fuzzer adds goes to a scratch copy, so the repository's corpus stays small. A crash fails the
# script and leaves its input under fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
targets=(decode service_config catalog rule_sql)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz (once)" >&2
  cargo install cargo-fuzz --locked
fi
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
fi
cd fuzz
build_started=$(date +%s)
cargo "${toolchain[@]}" fuzz build --release
echo "fuzz: build took $(( $(date +%s) - build_started )) s" >&2
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
status=0
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t"
  echo "fuzz: $t for ${seconds}s" >&2
  if ! cargo "${toolchain[@]}" fuzz run --release "$t" "$scratch/$t" "corpus/$t" -- \
      -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=4096 -timeout=20 \
      -print_final_stats=1 2>"$scratch/$t.log"; then
    echo "fuzz: $t FAILED; its log:" >&2
    tail -n 60 "$scratch/$t.log" >&2
    status=1
  else
    grep -E 'stat::number_of_executed_units|stat::new_units_added' "$scratch/$t.log" | sed "s/^/fuzz: $t: /" >&2 || true
  fi
done
exit "$status"
