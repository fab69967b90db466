//! The rule front end: rule text (header and SQL, Flink window syntax) to a planned rule over
//! the city's feeds. Any text is planned or rejected with problems naming the file; nothing
//! panics (a panic here is what issue 11 saw stop every rule).
#![no_main]

use std::sync::LazyLock;

use citybrain_rules::{Catalog, RuleSource, compile_all};
use libfuzzer_sys::fuzz_target;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
});
static CATALOG: LazyLock<Catalog> = LazyLock::new(citybrain_engine::city_catalog);

fuzz_target!(|text: &str| {
    // Deeply nested text is refused by the front end's depth limit; keep inputs a rule's size.
    if text.len() > 4096 {
        return;
    }
    let sources = [RuleSource::inline("fuzz/rule", text)];
    match RUNTIME.block_on(compile_all(&sources, &CATALOG)) {
        Ok(rules) => assert_eq!(rules.len(), 1),
        Err(citybrain_rules::Error::Invalid(problems)) => {
            assert!(!problems.is_empty(), "an invalid rule lists its problems");
        }
        Err(_) => {}
    }
});
