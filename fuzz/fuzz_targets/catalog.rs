//! The feed catalog's Flink DDL: any text parses into a catalog or a list of problems with
//! positions; nothing panics.
#![no_main]

use citybrain_connectors::catalog::Catalog;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match Catalog::parse("fuzz.sql", text) {
        Ok(catalog) => {
            let _ = format!("{catalog:?}");
        }
        Err(problems) => assert!(!problems.is_empty(), "an error lists its problems"),
    }
});
