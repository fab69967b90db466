//! The service's TOML configuration file (`citybrain run --config FILE.toml`), validated as a
//! whole before anything starts: every problem is reported, one per line.
//!
//! ```toml
//! [kafka]                       # see connectors::kafka::config
//! brokers = "127.0.0.1:9092"
//! [kafka.properties]
//! "security.protocol" = "SASL_SSL"
//!
//! [engine]
//! out_of_orderness_ms = 5000
//! batch_size = 8192
//!
//! [metrics]
//! listen = "127.0.0.1:9464"
//!
//! [http]                        # limits of the HTTP server (crate::http::HttpLimits)
//! max_head_bytes = 16384
//! ```
//!
//! Command-line flags (`--brokers`, `--group`, `--rules`) override the file.

use std::path::{Path, PathBuf};

use citybrain_connectors::kafka::KafkaConfig;
use serde::Deserialize;

use crate::checkpoint::CheckpointConfig;
use crate::error::{Error, Result};
use crate::http::HttpLimits;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Brokers, topics, group and librdkafka passthrough properties.
    pub kafka: KafkaConfig,
    /// Event time, batching, commits and backpressure.
    pub engine: EngineSection,
    /// The Prometheus endpoint.
    pub metrics: MetricsSection,
    /// Limits of the HTTP server(s): request sizes, timeouts, connections.
    pub http: HttpLimits,
    /// The incident desk: its topics, files and clock.
    pub incidents: crate::incidents::IncidentsSection,
    /// Where checkpoints go and how often.
    pub checkpoint: CheckpointConfig,
}

/// The `[engine]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSection {
    /// The rules folder. Default: the built-in library. `--rules` overrides.
    pub rules: Option<PathBuf>,
    /// Bounded out-of-orderness of every feed, milliseconds. Default 5,000 (the rules' default).
    pub out_of_orderness_ms: i64,
    /// Most records per batch taken from one poll. Default 8,192: large enough to amortise
    /// planning overhead, small enough to keep a batch's latency low.
    pub batch_size: usize,
    /// A partition read to its end (its read position reached the broker's high watermark)
    /// that delivered nothing for this long stops holding its feed's watermark back, and a
    /// feed whose partitions all did stops holding back the rules reading several feeds,
    /// milliseconds. Default 30,000.
    pub idle_timeout_ms: u64,
    /// Watermark alignment: pause a partition whose event time runs more than
    /// `max_watermark_drift_ms` ahead of the slowest partition that still has records to read,
    /// so that catching up after a restart keeps state small. Default false: with it on,
    /// records of a resumed partition were lost in scripts/bench-kafka.sh (docs/delivery.md).
    pub watermark_alignment: bool,
    /// How far ahead (event time, milliseconds) a partition may run before alignment pauses
    /// it; it resumes within half of it. Default 60,000: a minute of city time, a fraction of
    /// the library's windows.
    pub max_watermark_drift_ms: u64,
    /// Alerts and dead letters produced but not yet acknowledged before consumption pauses.
    /// Default 50,000: a few seconds of a busy city, bounded memory when the broker slows.
    pub max_in_flight: u64,
    /// How often the service looks at its partitions (idleness, read to the end) and
    /// refreshes its metrics, milliseconds. Default 1,000. (Offsets are committed with each
    /// checkpoint, `[checkpoint] interval_ms`; `commit_interval_ms` is the old name.)
    #[serde(alias = "commit_interval_ms")]
    pub tick_ms: u64,
    /// A record whose event time is further ahead than this of the wall clock, or of its
    /// partition's time, is set aside as `future` instead of reaching a watermark,
    /// milliseconds. Default 600,000 (10 minutes; docs/rules.md, event time).
    pub max_future_ms: i64,
}

const fn default_batch_size() -> usize {
    8192
}

impl Default for EngineSection {
    fn default() -> Self {
        Self {
            rules: None,
            out_of_orderness_ms: citybrain_rules::DEFAULT_OUT_OF_ORDERNESS_MS,
            batch_size: default_batch_size(),
            idle_timeout_ms: 30_000,
            watermark_alignment: false,
            max_watermark_drift_ms: 60_000,
            max_in_flight: 50_000,
            tick_ms: 1_000,
            max_future_ms: citybrain_connectors::decode::guard::DEFAULT_MAX_FUTURE_MS,
        }
    }
}

/// The `[metrics]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Address of the HTTP endpoint serving `/metrics` in Prometheus text format; empty turns
    /// it off; `--metrics-listen` overrides. Default `127.0.0.1:9464`: the port conventionally
    /// used by exporters of this kind, on this host only (a container publishing it, or a
    /// Prometheus elsewhere, needs `0.0.0.0:9464` said on purpose).
    pub listen: String,
}

/// Default `[metrics] listen`.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            listen: DEFAULT_METRICS_LISTEN.to_string(),
        }
    }
}

impl ServiceConfig {
    /// Reads `path`.
    ///
    /// # Errors
    /// When the file cannot be read or is not valid TOML of this shape (the error names the
    /// line and the key).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadConfig {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| Error::Config {
            problems: vec![format!("{}: {}", path.display(), e.to_string().trim_end())],
        })
    }

    /// Every problem of the configuration; empty when it can run.
    pub fn problems(&self) -> Vec<String> {
        let mut out = self.kafka.problems();
        out.extend(self.incidents.problems());
        out.extend(self.checkpoint.problems());
        let e = &self.engine;
        if e.out_of_orderness_ms < 0 {
            out.push("engine.out_of_orderness_ms: must not be negative".into());
        }
        if e.batch_size == 0 {
            out.push("engine.batch_size: must be at least 1".into());
        }
        if e.idle_timeout_ms == 0 {
            out.push("engine.idle_timeout_ms: must be at least 1".into());
        }
        if e.watermark_alignment && e.max_watermark_drift_ms == 0 {
            out.push(
                "engine.max_watermark_drift_ms: must be at least 1 (or set watermark_alignment = false)"
                    .into(),
            );
        }
        if e.max_in_flight == 0 {
            out.push("engine.max_in_flight: must be at least 1".into());
        }
        if e.tick_ms == 0 {
            out.push("engine.tick_ms: must be at least 1".into());
        }
        if e.max_future_ms <= 0 {
            out.push("engine.max_future_ms: must be at least 1".into());
        }
        if let Some(dir) = &e.rules
            && !dir.is_dir()
        {
            out.push(format!("engine.rules: {} is not a folder", dir.display()));
        }
        if !self.metrics.listen.is_empty()
            && self.metrics.listen.parse::<std::net::SocketAddr>().is_err()
        {
            out.push(format!(
                "metrics.listen: `{}` is not IP:PORT",
                self.metrics.listen
            ));
        }
        out.extend(self.http.problems());
        out
    }

    /// `Ok(self)` when [`ServiceConfig::problems`] is empty.
    ///
    /// # Errors
    /// [`Error::Config`] listing every problem.
    pub fn validated(self) -> Result<Self> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(Error::Config { problems })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kafka/citybrain.toml");
        let c = ServiceConfig::load(&path).expect("example config loads");
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        assert_eq!(c.kafka.alert_topic, "citybrain.alerts");
    }

    #[test]
    fn security_example_passes_through() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kafka/sasl-ssl.toml");
        let c = ServiceConfig::load(&path).expect("example config loads");
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        assert_eq!(
            c.kafka.consumer_config().get("security.protocol"),
            Some("SASL_SSL")
        );
        assert_eq!(
            c.kafka.producer_config().get("sasl.mechanism"),
            Some("SCRAM-SHA-512")
        );
    }

    #[test]
    fn all_problems_at_once() {
        let c: ServiceConfig = toml::from_str(
            r#"
            [kafka]
            brokers = "nohost"
            [engine]
            batch_size = 0
            commit_interval_ms = 0
            [metrics]
            listen = "everywhere"
            "#,
        )
        .expect("parses");
        let p = c.problems();
        assert_eq!(p.len(), 4, "{p:#?}");
        assert!(matches!(c.validated(), Err(Error::Config { problems }) if problems.len() == 4));
    }

    /// Issue 11: the endpoint bound 0.0.0.0 by default.
    #[test]
    fn metrics_are_served_on_this_host_only_by_default() {
        let c = ServiceConfig::default();
        assert_eq!(c.metrics.listen, "127.0.0.1:9464");
        assert_eq!(c.http, HttpLimits::default());
        let c: ServiceConfig = toml::from_str(
            "[kafka]\nbrokers = \"h:1\"\n[http]\nmax_head_bytes = 10\nmax_connections = 0\n",
        )
        .expect("parses");
        assert_eq!(c.problems().len(), 2, "{:?}", c.problems());
    }

    #[test]
    fn unknown_keys_are_named() {
        let e =
            toml::from_str::<ServiceConfig>("[engine]\nbatch_sise = 3\n").expect_err("unknown key");
        assert!(e.to_string().contains("batch_sise"), "{e}");
    }
}
