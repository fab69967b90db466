//! The service's TOML file: any text is read, rejected with a message, or validated into a
//! list of problems; nothing panics.
#![no_main]

use citybrain_engine::ServiceConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(config) = toml::from_str::<ServiceConfig>(text) {
        let problems = config.problems();
        assert_eq!(problems.is_empty(), config.clone().validated().is_ok());
        let _ = config.kafka.consumer_config();
        let _ = config.kafka.producer_config();
    }
});
