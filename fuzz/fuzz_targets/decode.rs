//! The decoder on arbitrary bytes, one record per line, for every feed: it never panics, every
//! line becomes a row or a dead letter, the fast scanner never disagrees with serde_json, rows
//! keep the declared coordinate ranges, and the event-time guard takes whatever decoding gives.
#![no_main]

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, Float64Array};
use bytes::Bytes;
use citybrain_connectors::decode::fast_path_disagreement;
use citybrain_connectors::{
    Catalog, Decoder, EventTimeGuard, GuardConfig, Origin, Pseudonymizer, RawBatch, RawRecord,
};
use libfuzzer_sys::fuzz_target;

static KEY: LazyLock<Arc<Pseudonymizer>> =
    LazyLock::new(|| Arc::new(Pseudonymizer::new(b"fuzz-key-0123456789abcdef")));

fuzz_target!(|data: &[u8]| {
    let records: Vec<RawRecord> = data
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, line)| RawRecord {
            payload: Bytes::copy_from_slice(line),
            origin: Origin::File {
                path: "fuzz.jsonl".into(),
                line: i as u64 + 1,
            },
        })
        .collect();
    for feed in Catalog::city().tables() {
        for record in &records {
            if let Some(problem) = fast_path_disagreement(feed, &record.payload) {
                panic!(
                    "{feed}: {problem}: {:?}",
                    String::from_utf8_lossy(&record.payload)
                );
            }
        }
        let mut raw = RawBatch {
            feed: feed.clone(),
            records: records.clone(),
        };
        let mut decoded = Decoder::new(feed.clone(), Arc::clone(&KEY)).decode(&raw);
        assert_eq!(
            decoded.batch.num_rows() + decoded.dead.len(),
            raw.records.len()
        );
        for (name, bound) in [("lat", 90.0), ("lon", 180.0)] {
            let column = decoded
                .batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<Float64Array>())
                .expect("coordinates are doubles");
            assert!(
                column
                    .iter()
                    .flatten()
                    .all(|v| (-bound..=bound).contains(&v))
            );
        }
        for letter in &decoded.dead {
            let _ = letter.to_json();
        }
        for live in [false, true] {
            let mut guard = EventTimeGuard::new(GuardConfig {
                live,
                ..GuardConfig::default()
            });
            let rows = decoded.batch.num_rows();
            let dead = decoded.dead.len();
            guard.screen(&mut raw, &mut decoded, 1_772_431_200_000);
            let released: usize = guard
                .release(1_772_431_200_000)
                .iter()
                .map(|(_, d)| d.batch.num_rows() + d.dead.len())
                .sum();
            assert_eq!(
                decoded.batch.num_rows() + decoded.dead.len() - dead + released,
                rows,
                "the guard keeps, holds or sets aside every row"
            );
            raw.records = records.clone();
            decoded = Decoder::new(feed.clone(), Arc::clone(&KEY)).decode(&raw);
        }
    }
});
