//! Criterion benchmarks of the citybrain data path live in `benches/`; see BENCHMARKS.md.
