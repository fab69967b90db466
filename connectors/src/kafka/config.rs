//! Kafka settings: the `[kafka]` table of the service's TOML file, validated as a whole.
//!
//! ```toml
//! [kafka]
//! brokers = "127.0.0.1:9092"          # --brokers overrides
//! group_id = "citybrain"              # --group overrides
//! alert_topic = "citybrain.alerts"
//! dlq_topic = "citybrain.dlq"
//!
//! [kafka.topics]                      # table -> topic, over the catalog's 'topic'
//! traffic = "city.traffic"
//!
//! [kafka.properties]                  # librdkafka properties for both clients (SASL, TLS, ...)
//! "security.protocol" = "SASL_SSL"
//! ```

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use serde::Deserialize;

use crate::catalog::{Catalog, suggest};
use crate::feed::Feed;

/// Properties citybrain sets itself because the delivery guarantee depends on them; setting
/// them in a config file is an error.
pub const RESERVED_PROPERTIES: [&str; 6] = [
    "bootstrap.servers",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.idempotence",
    "acks",
];

/// The `[kafka]` table. Every field has a default, so an empty table (or none) is valid once
/// brokers are given on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, `HOST:PORT[,HOST:PORT...]`. No default: `--brokers` or this field.
    pub brokers: String,
    /// Consumer group id. Default `citybrain`.
    pub group_id: String,
    /// Topics of catalog tables, over the `'topic'` their `CREATE TABLE` declares (the city's
    /// feeds declare `city.<feed>`). Default: none, every table read from its declared topic;
    /// a table with no topic either way (a `filesystem` table) is not read.
    pub topics: BTreeMap<String, String>,
    /// Where alerts go. Default `citybrain.alerts`.
    pub alert_topic: String,
    /// Where malformed and late records go. Default `citybrain.dlq`.
    pub dlq_topic: String,
    /// The one-partition topic on which the instances of the group keep the lease that makes
    /// one of them active (the others stand by; `leader.rs`). Created when missing (one partition,
    /// replication 1: create it yourself on a cluster that needs more). Default
    /// `citybrain.control`.
    pub control_topic: String,
    /// librdkafka properties for the consumer and the producer alike: security (`security.protocol`,
    /// `sasl.*`, `ssl.*`), timeouts, `client.id`, ... Passed through as given.
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties for the consumer only (e.g. `fetch.wait.max.ms`).
    pub consumer_properties: BTreeMap<String, String>,
    /// librdkafka properties for the producer only (e.g. `linger.ms`, `compression.type`).
    pub producer_properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: String::new(),
            group_id: "citybrain".to_string(),
            topics: BTreeMap::new(),
            alert_topic: "citybrain.alerts".to_string(),
            dlq_topic: "citybrain.dlq".to_string(),
            control_topic: "citybrain.control".to_string(),
            properties: BTreeMap::new(),
            consumer_properties: BTreeMap::new(),
            producer_properties: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// Every problem of the configuration, each as one line naming the field; empty when valid.
    /// librdkafka property names and values are checked by librdkafka itself.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.brokers.trim().is_empty() {
            out.push("kafka.brokers: no brokers (use --brokers HOST:PORT)".to_string());
        }
        for b in self.brokers.split(',').filter(|b| !b.trim().is_empty()) {
            let b = b.trim();
            let port = b.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
            if !matches!(port, Some(Ok(p)) if p > 0) {
                out.push(format!("kafka.brokers: `{b}` is not HOST:PORT"));
            }
        }
        if self.group_id.trim().is_empty() {
            out.push("kafka.group_id: must not be empty".to_string());
        }
        for (table, topic) in &self.topics {
            check_topic(&format!("kafka.topics.{table}"), topic, &mut out);
        }
        check_topic("kafka.alert_topic", &self.alert_topic, &mut out);
        check_topic("kafka.dlq_topic", &self.dlq_topic, &mut out);
        check_topic("kafka.control_topic", &self.control_topic, &mut out);
        if self.alert_topic == self.dlq_topic && !self.alert_topic.is_empty() {
            out.push("kafka.dlq_topic: must differ from kafka.alert_topic".to_string());
        }
        if [&self.alert_topic, &self.dlq_topic].contains(&&self.control_topic) {
            out.push(
                "kafka.control_topic: must differ from kafka.alert_topic and kafka.dlq_topic"
                    .to_string(),
            );
        }
        for (table, props) in [
            ("properties", &self.properties),
            ("consumer_properties", &self.consumer_properties),
            ("producer_properties", &self.producer_properties),
        ] {
            for (k, v) in props {
                if RESERVED_PROPERTIES.contains(&k.as_str()) {
                    out.push(format!(
                        "kafka.{table}.\"{k}\": set by citybrain (delivery guarantee); remove it"
                    ));
                    continue;
                }
                // librdkafka rejects unknown names and bad values on `set` of a fresh config.
                if let Err(e) = ClientConfig::new().set(k, v).create_native_config() {
                    out.push(format!("kafka.{table}.\"{k}\": {e}"));
                }
            }
        }
        out
    }

    /// The feed read from each topic: every table of `catalog` with a topic, its declared
    /// `'topic'` or the one `topics` gives it.
    ///
    /// # Errors
    /// Every problem, one line each: a table in `topics` the catalog does not have, two tables
    /// on one topic, the alert or dead-letter topic among the feeds' (citybrain would read its
    /// own output), no table with a topic at all.
    pub fn feed_topics(&self, catalog: &Catalog) -> Result<Vec<(Feed, String)>, Vec<String>> {
        let mut out = Vec::new();
        for table in self.topics.keys() {
            if catalog.table(table).is_none() {
                let hint = suggest(table, catalog.tables().iter().map(|t| t.name()))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                out.push(format!(
                    "kafka.topics.{table}: no such table in the catalog{hint}"
                ));
            }
        }
        let mut topics = Vec::new();
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for feed in catalog.tables() {
            let topic = match (self.topics.get(feed.name()), feed.topic()) {
                (Some(t), _) => t.clone(),
                (None, Some(t)) => t.to_string(),
                (None, None) => continue,
            };
            if let Some(other) = seen.insert(topic.clone(), feed.name()) {
                out.push(format!(
                    "kafka.topics.{}: topic `{topic}` is also the topic of feed {other}",
                    feed.name()
                ));
            }
            topics.push((feed.clone(), topic));
        }
        for (name, topic) in [
            ("alert_topic", &self.alert_topic),
            ("dlq_topic", &self.dlq_topic),
            ("control_topic", &self.control_topic),
        ] {
            if let Some(feed) = seen.get(topic.as_str()) {
                out.push(format!(
                    "kafka.{name}: `{topic}` is also the topic of feed {feed}: citybrain would read its own output"
                ));
            }
        }
        if topics.is_empty() {
            out.push(
                "kafka.topics: no table of the catalog has a topic to read (declare \
                 'connector' = 'kafka' with a 'topic', or name one here)"
                    .to_string(),
            );
        }
        if out.is_empty() { Ok(topics) } else { Err(out) }
    }

    /// The consumer's librdkafka configuration: group, no automatic commits (citybrain commits
    /// only durable progress), reading from the start of a partition the group never committed.
    ///
    /// The consumer prefetches up to a million messages (`queued.min.messages`, still bounded
    /// by librdkafka's 64 MB `queued.max.messages.kbytes`): with the default 100,000 it stops
    /// fetching whenever the engine has that many waiting, and reading a backlog through a
    /// broker that answers fetches late ran at half the speed (BENCHMARKS.md, "Through
    /// Kafka"). `consumer_properties` override it.
    pub fn consumer_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("statistics.interval.ms", "1000")
            .set("queued.min.messages", "1000000");
        for (k, v) in self.properties.iter().chain(&self.consumer_properties) {
            c.set(k, v);
        }
        c
    }

    /// The producer's librdkafka configuration: idempotent (no duplicates or reordering from
    /// retries), every in-sync replica acknowledges.
    pub fn producer_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "100000");
        for (k, v) in self.properties.iter().chain(&self.producer_properties) {
            c.set(k, v);
        }
        c
    }
}

/// Kafka's rule for topic names: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
fn check_topic(field: &str, topic: &str, out: &mut Vec<String>) {
    let ok_chars = topic
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if topic.is_empty() || topic.len() > 249 || !ok_chars || topic == "." || topic == ".." {
        out.push(format!(
            "{field}: `{topic}` is not a Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_only_brokers() {
        let mut c = KafkaConfig::default();
        assert_eq!(c.problems().len(), 1, "{:?}", c.problems());
        c.brokers = "127.0.0.1:9092".into();
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        let topics = c.feed_topics(&Catalog::city()).expect("the city's topics");
        let names: Vec<(&str, &str)> = topics.iter().map(|(f, t)| (f.name(), t.as_str())).collect();
        assert_eq!(
            names,
            [
                ("traffic", "city.traffic"),
                ("police", "city.police"),
                ("emergency", "city.emergency"),
                ("market", "city.market")
            ]
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let text = r#"
            brokers = "localhost"
            group_id = ""
            alert_topic = "city.police"
            dlq_topic = "bad topic"
            [topics]
            police = "city.police"
            weather = "city.weather"
            [properties]
            "enable.auto.commit" = "true"
            "no.such.property" = "1"
            [consumer_properties]
            "fetch.wait.max.ms" = "not a number"
        "#;
        let c: KafkaConfig = toml::from_str(text).expect("parses");
        let mut p = c.problems();
        p.extend(c.feed_topics(&Catalog::city()).expect_err("invalid"));
        let expect = [
            "kafka.brokers: `localhost` is not HOST:PORT",
            "kafka.group_id",
            "kafka.topics.weather: no such table in the catalog",
            "kafka.alert_topic: `city.police` is also the topic of feed police",
            "kafka.dlq_topic: `bad topic` is not a Kafka topic name",
            "kafka.properties.\"enable.auto.commit\": set by citybrain",
            "kafka.properties.\"no.such.property\"",
            "kafka.consumer_properties.\"fetch.wait.max.ms\"",
        ];
        for e in expect {
            assert!(
                p.iter().any(|x| x.starts_with(e)),
                "missing {e:?} in {p:#?}"
            );
        }
        assert_eq!(p.len(), expect.len(), "{p:#?}");
    }
}
