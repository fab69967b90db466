//! The `WITH (...)` options of a catalog table, checked as Flink's connector and format
//! factories check them: every option must be one the connector (or its format) knows, and the
//! required ones must be there.

/// Options of Flink's `kafka` connector (flink-connector-kafka 4.x, `KafkaConnectorOptions`),
/// besides the `properties.*` passed to the client.
const KAFKA: &[&str] = &[
    "connector",
    "topic",
    "topic-pattern",
    "properties.bootstrap.servers",
    "properties.group.id",
    "format",
    "key.format",
    "key.fields",
    "key.fields-prefix",
    "value.format",
    "value.fields-include",
    "scan.startup.mode",
    "scan.startup.specific-offsets",
    "scan.startup.timestamp-millis",
    "scan.bounded.mode",
    "scan.bounded.specific-offsets",
    "scan.bounded.timestamp-millis",
    "scan.topic-partition-discovery.interval",
    "scan.parallelism",
    "sink.partitioner",
    "sink.parallelism",
    "sink.delivery-guarantee",
    "sink.transactional-id-prefix",
];

/// Options of Flink's `filesystem` connector (`FileSystemConnectorOptions`).
const FILESYSTEM: &[&str] = &[
    "connector",
    "path",
    "format",
    "source.monitor-interval",
    "source.path.regex-pattern",
    "source.report-statistics",
    "partition.default-name",
    "sink.rolling-policy.file-size",
    "sink.rolling-policy.rollover-interval",
    "sink.rolling-policy.check-interval",
    "sink.rolling-policy.inactivity-interval",
    "sink.parallelism",
    "sink.shuffle-by-partition.enable",
    "sink.partition-commit.trigger",
    "sink.partition-commit.delay",
    "sink.partition-commit.watermark-time-zone",
    "sink.partition-commit.policy.kind",
    "sink.partition-commit.policy.class",
    "sink.partition-commit.success-file.name",
    "partition.time-extractor.kind",
    "partition.time-extractor.class",
    "partition.time-extractor.timestamp-pattern",
    "partition.time-extractor.timestamp-formatter",
    "auto-compaction",
    "compaction.file-size",
];

/// Options of Flink's `blackhole` and `print` sinks.
const BLACKHOLE: &[&str] = &["connector"];
const PRINT: &[&str] = &[
    "connector",
    "print-identifier",
    "standard-error",
    "sink.parallelism",
];

/// Options of Flink's `json` format (`JsonFormatOptions`), without the `json.` prefix.
const JSON: &[&str] = &[
    "fail-on-missing-field",
    "ignore-parse-errors",
    "timestamp-format.standard",
    "map-null-key.mode",
    "map-null-key.literal",
    "encode.decimal-as-plain-number",
    "encode.ignore-null-fields",
    "decode.json-parser.enabled",
];

/// Where a table's rows come from, from its `WITH` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connector {
    /// `'connector' = 'kafka'`: one topic.
    Kafka {
        topic: String,
        /// `properties.bootstrap.servers` as declared (the service's `--brokers` wins).
        bootstrap_servers: String,
        /// Every other `properties.*` option, without the prefix.
        properties: Vec<(String, String)>,
    },
    /// `'connector' = 'filesystem'`: JSON lines at `path`.
    Filesystem { path: String },
    /// `'connector' = 'blackhole'` or `'print'`: a table only written to (an alert table of a
    /// Flink script), never read.
    Sink { connector: String },
}

/// How the `json` format reads a table, from its `json.*` options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JsonOptions {
    /// `json.fail-on-missing-field` (default false): every column must be present (a nullable
    /// one may be `null`).
    pub fail_on_missing_field: bool,
}

/// The checked options of one table.
#[derive(Debug, Clone)]
pub struct Options {
    pub connector: Connector,
    pub json: JsonOptions,
}

/// Checks `options` (key, value, index into `options` for positions) as Flink would, plus
/// what citybrain needs (format `json`). Every problem is reported, by option index (`None`:
/// the table as a whole).
pub fn check(options: &[(String, String)]) -> Result<Options, Vec<(Option<usize>, String)>> {
    let mut problems = Vec::new();
    let get = |key: &str| options.iter().position(|(k, _)| k == key);
    let value = |key: &str| get(key).map(|i| options[i].1.as_str());
    for (i, (key, _)) in options.iter().enumerate() {
        if options[..i].iter().any(|(k, _)| k == key) {
            problems.push((Some(i), format!("option '{key}' is given twice")));
        }
    }
    let Some(connector) = value("connector") else {
        problems.push((
            None,
            "the WITH clause needs 'connector' ('kafka' or 'filesystem' for a feed)".into(),
        ));
        return Err(problems);
    };
    let known: &[&str] = match connector {
        "kafka" => KAFKA,
        "filesystem" => FILESYSTEM,
        "blackhole" => BLACKHOLE,
        "print" => PRINT,
        other => {
            problems.push((
                get("connector"),
                format!(
                    "connector '{other}' is not supported: feeds are read with 'kafka' or \
                     'filesystem'; results may go to 'blackhole' or 'print'"
                ),
            ));
            return Err(problems);
        }
    };
    let source = matches!(connector, "kafka" | "filesystem");
    // The formats in use and the prefixes their options take.
    let mut format_prefixes = Vec::new();
    for (key, prefix) in [
        ("format", ""),
        ("value.format", "value."),
        ("key.format", "key."),
    ] {
        if let Some(f) = value(key).filter(|_| known.contains(&key)) {
            format_prefixes.push((f.to_string(), prefix));
            let wanted = key != "key.format";
            if f != "json" && (wanted || f != "raw") {
                problems.push((
                    get(key),
                    format!("format '{f}' is not supported: citybrain reads 'json'"),
                ));
            }
        }
    }
    for (i, (key, _)) in options.iter().enumerate() {
        if known.contains(&key.as_str()) || (connector == "kafka" && key.starts_with("properties."))
        {
            continue;
        }
        let format_option = format_prefixes.iter().any(|(format, prefix)| {
            key.strip_prefix(prefix)
                .and_then(|k| k.strip_prefix(format.as_str()))
                .and_then(|k| k.strip_prefix('.'))
                .is_some_and(|k| format == "json" && JSON.contains(&k))
        });
        if format_option {
            continue;
        }
        let all: Vec<String> = known
            .iter()
            .map(|k| (*k).to_string())
            .chain(
                format_prefixes
                    .iter()
                    .flat_map(|(f, p)| JSON.iter().map(move |o| format!("{p}{f}.{o}"))),
            )
            .collect();
        let hint = crate::catalog::suggest(key, all.iter().map(String::as_str))
            .map(|s| format!(" (did you mean '{s}'?)"))
            .unwrap_or_default();
        problems.push((
            Some(i),
            format!("unsupported option '{key}' for connector '{connector}'{hint}"),
        ));
    }
    let require = |key: &str, why: &str, problems: &mut Vec<(Option<usize>, String)>| {
        if value(key).is_none() {
            problems.push((
                None,
                format!("connector '{connector}' needs '{key}' ({why})"),
            ));
        }
    };
    match connector {
        "kafka" => {
            if value("topic-pattern").is_some() {
                problems.push((
                    get("topic-pattern"),
                    "'topic-pattern' is not supported: name one 'topic'".into(),
                ));
            } else {
                require("topic", "the topic the feed is read from", &mut problems);
            }
            require(
                "properties.bootstrap.servers",
                "Flink requires it; `citybrain run --brokers` overrides it",
                &mut problems,
            );
            if value("format").is_none() && value("value.format").is_none() {
                problems.push((None, "connector 'kafka' needs 'format' = 'json'".into()));
            }
        }
        "filesystem" => {
            require("path", "the file the feed is read from", &mut problems);
            require("format", "'json': JSON lines", &mut problems);
        }
        _ => {}
    }
    let json_flag = |name: &str, problems: &mut Vec<(Option<usize>, String)>| {
        let keys = [format!("json.{name}"), format!("value.json.{name}")];
        let found = keys.iter().find_map(|k| get(k));
        match found.map(|i| options[i].1.to_ascii_lowercase()) {
            None => false,
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            Some(v) => {
                problems.push((
                    found,
                    format!("'{}' must be 'true' or 'false', not '{v}'", keys[0]),
                ));
                false
            }
        }
    };
    let json = JsonOptions {
        fail_on_missing_field: json_flag("fail-on-missing-field", &mut problems),
    };
    json_flag("ignore-parse-errors", &mut problems);
    if let Some(i) = get("json.timestamp-format.standard") {
        let v = &options[i].1;
        if v != "SQL" && v != "ISO-8601" {
            problems.push((
                Some(i),
                format!("'json.timestamp-format.standard' is 'SQL' or 'ISO-8601', not '{v}'"),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let connector = match connector {
        "kafka" => Connector::Kafka {
            topic: value("topic").unwrap_or_default().to_string(),
            bootstrap_servers: value("properties.bootstrap.servers")
                .unwrap_or_default()
                .to_string(),
            properties: options
                .iter()
                .filter_map(|(k, v)| {
                    let k = k.strip_prefix("properties.")?;
                    (k != "bootstrap.servers").then(|| (k.to_string(), v.clone()))
                })
                .collect(),
        },
        "filesystem" => Connector::Filesystem {
            path: value("path").unwrap_or_default().to_string(),
        },
        other => Connector::Sink {
            connector: other.to_string(),
        },
    };
    debug_assert_eq!(source, !matches!(connector, Connector::Sink { .. }));
    Ok(Options { connector, json })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn flinks_kafka_and_filesystem_tables_are_accepted() {
        let kafka = check(&opts(&[
            ("connector", "kafka"),
            ("topic", "city.traffic"),
            ("properties.bootstrap.servers", "localhost:9092"),
            ("properties.group.id", "g"),
            ("scan.startup.mode", "earliest-offset"),
            ("format", "json"),
            ("json.fail-on-missing-field", "true"),
            ("json.timestamp-format.standard", "ISO-8601"),
        ]))
        .expect("valid");
        assert_eq!(
            kafka.connector,
            Connector::Kafka {
                topic: "city.traffic".into(),
                bootstrap_servers: "localhost:9092".into(),
                properties: vec![("group.id".into(), "g".into())],
            }
        );
        assert!(kafka.json.fail_on_missing_field);
        let file = check(&opts(&[
            ("connector", "filesystem"),
            ("path", "bid.jsonl"),
            ("format", "json"),
        ]))
        .expect("valid");
        assert_eq!(
            file.connector,
            Connector::Filesystem {
                path: "bid.jsonl".into()
            }
        );
        let value_format = check(&opts(&[
            ("connector", "kafka"),
            ("topic", "t"),
            ("properties.bootstrap.servers", "b:9092"),
            ("key.format", "raw"),
            ("value.format", "json"),
            ("value.json.ignore-parse-errors", "false"),
        ]));
        assert!(value_format.is_ok(), "{value_format:?}");
    }

    #[test]
    fn unknown_and_missing_options_are_reported_like_flink() {
        let problems = check(&opts(&[
            ("connector", "kafka"),
            ("topc", "city.traffic"),
            ("format", "json"),
            ("json.fail-on-missing-feld", "true"),
        ]))
        .expect_err("invalid");
        let text: Vec<String> = problems.iter().map(|(_, m)| m.clone()).collect();
        assert!(
            text.iter()
                .any(|m| m.contains("unsupported option 'topc'")
                    && m.contains("did you mean 'topic'")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|m| m.contains("'json.fail-on-missing-feld'")
                    && m.contains("'json.fail-on-missing-field'")),
            "{text:?}"
        );
        assert!(text.iter().any(|m| m.contains("needs 'topic'")), "{text:?}");
        assert!(
            text.iter()
                .any(|m| m.contains("needs 'properties.bootstrap.servers'")),
            "{text:?}"
        );
        assert_eq!(problems[0].0, Some(1));

        let csv = check(&opts(&[
            ("connector", "filesystem"),
            ("path", "x"),
            ("format", "csv"),
        ]))
        .expect_err("csv");
        assert!(
            csv[0].1.contains("format 'csv' is not supported"),
            "{csv:?}"
        );
        let datagen = check(&opts(&[("connector", "datagen")])).expect_err("datagen");
        assert!(
            datagen[0]
                .1
                .contains("connector 'datagen' is not supported")
        );
        let none = check(&opts(&[("path", "x")])).expect_err("no connector");
        assert!(none[0].1.contains("needs 'connector'"));
    }
}
