//! `docker-compose.yml` is valid against the Compose specification's JSON schema
//! (`deploy/compose-spec.json`, draft-07) and consistent with the code: topic names, the
//! metrics port, environment variables, the mounted config and the Grafana dashboard's metrics.
//!
//! Docker cannot run here, so this is what keeps the stack honest. The schema uses a small
//! set of draft-07 keywords; the validator below implements exactly those and fails on any
//! other, so a new schema version cannot be half-checked silently.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use citybrain_connectors::kafka::KafkaConfig;
use citybrain_engine::ServiceConfig;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).expect("compose file");
    serde_yaml::from_str(&text).expect("compose file is YAML")
}

/// Validates `v` against `schema` (draft-07 subset); pushes "path: problem" lines.
fn validate(root: &Value, schema: &Value, v: &Value, path: &str, out: &mut Vec<String>) {
    let Value::Object(s) = schema else {
        if schema == &Value::Bool(false) {
            out.push(format!("{path}: not allowed"));
        }
        return;
    };
    for (k, rule) in s {
        match k.as_str() {
            "$ref" => {
                let target = rule
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/definitions/"))
                    .and_then(|name| root["definitions"].get(name))
                    .unwrap_or_else(|| panic!("unsupported $ref {rule}"));
                validate(root, target, v, path, out);
            }
            "type" => {
                let types: Vec<&str> = match rule {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => panic!("bad type {rule}"),
                };
                if !types.iter().any(|t| is_type(v, t)) {
                    out.push(format!("{path}: expected {types:?}, got {v}"));
                }
            }
            "properties" | "patternProperties" | "additionalProperties" => {} // below
            "required" => {
                if let Value::Object(o) = v {
                    for r in rule.as_array().expect("required list") {
                        let r = r.as_str().expect("required name");
                        if !o.contains_key(r) {
                            out.push(format!("{path}: missing required `{r}`"));
                        }
                    }
                }
            }
            "enum" => {
                if !rule.as_array().expect("enum list").contains(v) {
                    out.push(format!("{path}: {v} is not one of {rule}"));
                }
            }
            "oneOf" => {
                let ok = rule
                    .as_array()
                    .expect("oneOf list")
                    .iter()
                    .filter(|sub| {
                        let mut o = Vec::new();
                        validate(root, sub, v, path, &mut o);
                        o.is_empty()
                    })
                    .count();
                if ok != 1 {
                    out.push(format!("{path}: matches {ok} alternatives of oneOf, not 1"));
                }
            }
            "items" => {
                if let Value::Array(a) = v {
                    for (i, item) in a.iter().enumerate() {
                        validate(root, rule, item, &format!("{path}[{i}]"), out);
                    }
                }
            }
            "uniqueItems" => {
                if let (Value::Array(a), Value::Bool(true)) = (v, rule) {
                    let set: BTreeSet<String> = a.iter().map(Value::to_string).collect();
                    if set.len() != a.len() {
                        out.push(format!("{path}: items are not unique"));
                    }
                }
            }
            "minimum" | "maximum" => {
                if let (Some(x), Some(bound)) = (v.as_f64(), rule.as_f64()) {
                    let bad = if k == "minimum" { x < bound } else { x > bound };
                    if bad {
                        out.push(format!("{path}: {x} violates {k} {bound}"));
                    }
                }
            }
            "pattern" => {
                if let Value::String(text) = v {
                    let re = regex::Regex::new(rule.as_str().expect("pattern")).expect("regex");
                    if !re.is_match(text) {
                        out.push(format!("{path}: `{text}` does not match {rule}"));
                    }
                }
            }
            "$schema" | "$id" | "title" | "description" | "default" | "deprecated"
            | "definitions" => {}
            other => panic!("schema keyword `{other}` is not supported by this validator"),
        }
    }
    if let Value::Object(o) = v {
        let props = s.get("properties").and_then(Value::as_object);
        let patterns = s.get("patternProperties").and_then(Value::as_object);
        for (key, val) in o {
            let sub = format!("{path}.{key}");
            let mut matched = false;
            if let Some(p) = props.and_then(|p| p.get(key)) {
                matched = true;
                validate(root, p, val, &sub, out);
            }
            for (pat, p) in patterns.into_iter().flatten() {
                if regex::Regex::new(pat).expect("regex").is_match(key) {
                    matched = true;
                    validate(root, p, val, &sub, out);
                }
            }
            if !matched && let Some(extra) = s.get("additionalProperties") {
                if extra == &Value::Bool(false) {
                    out.push(format!("{sub}: property not allowed"));
                } else {
                    validate(root, extra, val, &sub, out);
                }
            }
        }
    }
}

fn is_type(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        other => panic!("unknown type {other}"),
    }
}

fn problems(doc: &Value) -> Vec<String> {
    let text =
        std::fs::read_to_string(root().join("deploy/compose-spec.json")).expect("compose schema");
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    let mut out = Vec::new();
    validate(&schema, &schema, doc, "$", &mut out);
    out
}

#[test]
fn compose_file_is_valid_against_the_compose_spec() {
    let p = problems(&compose());
    assert!(p.is_empty(), "docker-compose.yml:\n{}", p.join("\n"));
}

#[test]
fn the_validator_rejects_what_the_spec_forbids() {
    let mut doc = compose();
    doc["services"]["citybrain"]["no_such_key"] = Value::from(1);
    doc["services"]["kafka"]["ports"] = Value::from("9092");
    doc["services"]["grafana"]["restart"] = Value::from(["no"]);
    let p = problems(&doc);
    assert!(
        p.iter().any(|l| l.contains("citybrain.no_such_key")),
        "{p:#?}"
    );
    assert!(p.iter().any(|l| l.contains("kafka.ports")), "{p:#?}");
    assert!(p.iter().any(|l| l.contains("grafana.restart")), "{p:#?}");
}

#[test]
fn compose_stack_matches_the_code() {
    let doc = compose();
    let services = doc["services"].as_object().expect("services");
    for s in [
        "kafka",
        "topics",
        "citybrain",
        "simulator",
        "prometheus",
        "grafana",
    ] {
        assert!(services.contains_key(s), "service {s} missing");
    }
    assert!(
        doc["services"]["kafka"]["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("apache/kafka:")),
        "the official apache/kafka image"
    );
    assert_eq!(
        doc["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"], "broker,controller",
        "KRaft single node"
    );

    // The topic creator makes every topic citybrain uses by default.
    let creator = doc["services"]["topics"]["command"].to_string();
    let defaults = KafkaConfig::default();
    let incidents = citybrain_engine::incidents::IncidentsSection::default();
    for t in defaults.topics.values().chain([
        &defaults.alert_topic,
        &defaults.dlq_topic,
        &incidents.events_topic,
        &incidents.table_topic,
        &incidents.actions_topic,
    ]) {
        assert!(creator.contains(t.as_str()), "topic creator lacks {t}");
    }
    assert!(
        creator.contains("citybrain.incidents --partitions 3 --replication-factor 1 --config cleanup.policy=compact"),
        "the incident table is compacted"
    );

    // citybrain's environment variables are ones the binary reads.
    let main = std::fs::read_to_string(root().join("engine/src/main.rs")).expect("main.rs");
    let env = doc["services"]["citybrain"]["environment"]
        .as_object()
        .expect("env map");
    for name in env.keys().filter(|k| *k != "CITYBRAIN_LOG") {
        assert!(
            main.contains(&format!("env = \"{name}\"")),
            "main.rs does not read {name}"
        );
    }
    // Issue 11: the key is never given a default here; it comes from a file the user creates
    // and git ignores.
    assert!(
        !env.contains_key("CITYBRAIN_PSEUDONYM_KEY"),
        "no pseudonymisation key (or default) in the compose file"
    );
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).expect("compose file");
    assert!(
        !text.contains("CITYBRAIN_PSEUDONYM_KEY:-"),
        "no default key"
    );
    let env_file = doc["services"]["citybrain"]["env_file"]
        .as_str()
        .expect("citybrain takes an env_file");
    let ignored = std::fs::read_to_string(root().join(".gitignore")).expect(".gitignore");
    assert!(
        ignored
            .lines()
            .any(|l| l.trim_start_matches('/') == env_file.trim_start_matches("./")),
        "{env_file} must be git-ignored"
    );
    let brokers = env["CITYBRAIN_BROKERS"].as_str().expect("brokers");
    let kafka_listeners = doc["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
        .as_str()
        .expect("listeners");
    assert!(
        kafka_listeners.contains(&format!("://{brokers}")),
        "citybrain must use the broker's compose-network listener"
    );

    // The mounted config is valid once the brokers come from the environment, and its metrics
    // port is the one published and scraped.
    let mut config =
        ServiceConfig::load(&root().join("deploy/citybrain.toml")).expect("deploy config");
    config.kafka.brokers = brokers.to_string();
    config.engine.rules = Some(root().join("rules/library"));
    assert!(config.problems().is_empty(), "{:?}", config.problems());
    let port = config.metrics.listen.rsplit(':').next().expect("port");
    assert!(
        doc["services"]["citybrain"]["ports"]
            .to_string()
            .contains(&format!("{port}:{port}"))
    );
    let prometheus =
        std::fs::read_to_string(root().join("deploy/prometheus.yml")).expect("prometheus.yml");
    assert!(prometheus.contains(&format!("citybrain:{port}")));
    assert!(
        doc["services"]["citybrain"]["volumes"]
            .to_string()
            .contains("./deploy/citybrain.toml:/etc/citybrain/citybrain.toml")
    );
    // Checkpoints go to a volume the service's user may write (the image's working folder is
    // root's), so that a restarted or new container continues from the last one.
    let (volume, mount) = ("citybrain-state", "/var/lib/citybrain");
    assert!(
        doc["services"]["citybrain"]["volumes"]
            .to_string()
            .contains(&format!("{volume}:{mount}"))
    );
    assert!(
        doc["volumes"].get(volume).is_some(),
        "volume {volume} declared"
    );
    assert!(
        config.checkpoint.store.starts_with(&format!("{mount}/")),
        "checkpoint store {} outside the volume",
        config.checkpoint.store
    );
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    assert!(
        dockerfile.contains(&format!("chown -R 65532:65532 {mount}"))
            && dockerfile.contains("USER 65532:65532"),
        "the service user must own {mount}"
    );

    // The dashboard only queries metrics the engine exports.
    let metrics_rs =
        std::fs::read_to_string(root().join("engine/src/metrics.rs")).expect("metrics.rs");
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/grafana/dashboards/citybrain.json"))
            .expect("dashboard"),
    )
    .expect("dashboard JSON");
    let re = regex::Regex::new(r"citybrain_[a-z_]+").expect("regex");
    let mut used = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().expect("targets") {
            for m in re.find_iter(t["expr"].as_str().expect("expr")) {
                used.insert(m.as_str().to_string());
            }
        }
    }
    assert!(used.len() >= 6, "{used:?}");
    for m in used {
        assert!(
            metrics_rs.contains(&format!("\"{m}\"")),
            "dashboard uses {m}, which the engine does not export"
        );
    }
}
