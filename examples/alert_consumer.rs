//! The operations centre's side: read alerts from `citybrain.alerts` with a standard Kafka
//! client, drop re-delivered duplicates by `alert_id`, print one line per alert.
//!
//! ```sh
//! cargo run -p citybrain-engine --example alert_consumer -- --brokers 127.0.0.1:9092
//! ```
//!
//! citybrain delivers at least once: after a crash it may send an alert again, always with the
//! same `alert_id`. A real consumer keeps the ids it has handled in its own store (here: a
//! bounded in-memory set) and commits its offsets after handling.

use std::collections::{HashSet, VecDeque};

use anyhow::Context;
use clap::Parser;
use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use serde_json::Value;

#[derive(Parser, Debug)]
struct Args {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// The alert topic.
    #[arg(long, default_value = "citybrain.alerts")]
    topic: String,
    /// Consumer group of the operations centre.
    #[arg(long, default_value = "operations-centre")]
    group: String,
    /// Also show the dead-letter topic's records with their origin headers.
    #[arg(long)]
    dlq: Option<String>,
    /// Ids remembered for dropping duplicates.
    #[arg(long, default_value_t = 100_000)]
    remember: usize,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", &args.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("creating the consumer")?;
    let mut topics = vec![args.topic.as_str()];
    if let Some(dlq) = &args.dlq {
        topics.push(dlq);
    }
    consumer.subscribe(&topics).context("subscribing")?;
    eprintln!(
        "reading {} from {} (Ctrl-C to stop)",
        topics.join(", "),
        args.brokers
    );
    let mut seen = HashSet::new();
    let mut order = VecDeque::new();
    loop {
        let msg = consumer.recv().await.context("receiving")?;
        let payload = msg.payload_view::<str>().and_then(Result::ok).unwrap_or("");
        if msg.topic() != args.topic {
            let headers: Vec<String> = msg
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            let v = h.value.map(String::from_utf8_lossy).unwrap_or_default();
                            format!("{}={v}", h.key)
                        })
                        .collect()
                })
                .unwrap_or_default();
            println!("DEAD LETTER {}", headers.join(" "));
        } else {
            let alert: Value = serde_json::from_str(payload).context("alert is JSON")?;
            let id = alert["alert_id"].as_str().unwrap_or_default().to_string();
            if seen.insert(id.clone()) {
                order.push_back(id);
                if order.len() > args.remember
                    && let Some(old) = order.pop_front()
                {
                    seen.remove(&old);
                }
                println!(
                    "{:<8} {:<32} {} {}",
                    alert["severity"].as_str().unwrap_or("?").to_uppercase(),
                    alert["rule"].as_str().unwrap_or("?"),
                    alert["window_start"].as_str().unwrap_or(""),
                    alert["data"]
                );
            }
        }
        consumer
            .commit_message(&msg, CommitMode::Async)
            .context("committing")?;
    }
}
