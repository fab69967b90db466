//! `citybrain-bench publish`: the feed files of a folder (merged by event time, as a replay reads
//! them) published to the feed topics at a steady rate, for the soak (`scripts/soak.sh`): the
//! load generator of a long run with prepared input (a poisoned clock, a hot key), which
//! `citybrain simulate --brokers` (simulator output only) cannot publish.
//!
//! Prints a readable line every ten seconds on stderr and `RESULT {json}` on stdout: messages
//! published and acknowledged, wall seconds, events per second.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use citybrain_connectors::{Catalog, FileSource, Source};
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

/// What `citybrain-bench publish` publishes.
#[derive(clap::Args, Debug)]
pub struct PublishArgs {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Folder with `{traffic,police,emergency,market}.jsonl`.
    #[arg(long)]
    input: PathBuf,
    /// Events per second (default: as fast as the broker takes them).
    #[arg(long)]
    rate: Option<f64>,
    /// Topic of each feed: this prefix and the feed's name.
    #[arg(long, default_value = "city.")]
    topic_prefix: String,
}

/// Publishes every record of `--input` and waits for the broker's acknowledgements.
///
/// # Errors
/// When the input cannot be read, the producer cannot be created, or a delivery fails.
pub fn publish(args: &PublishArgs) -> anyhow::Result<()> {
    if args.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        bail!("--rate must be a positive number of events per second");
    }
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "500000")
        .create()
        .context("creating the producer")?;
    let mut source = FileSource::open(&Catalog::city(), &args.input, 1024)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .context("runtime")?;
    let started = Instant::now();
    let mut last_report = started;
    let mut sent: u64 = 0;
    while let Some(batch) = runtime.block_on(source.next_batch())? {
        let topic = format!("{}{}", args.topic_prefix, batch.feed.name());
        for record in &batch.records {
            let mut message = BaseRecord::<(), [u8]>::to(&topic).payload(&record.payload[..]);
            loop {
                match producer.send(message) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        message = back;
                        producer.poll(Duration::from_millis(5));
                    }
                    Err((e, _)) => bail!("producing to {topic}: {e}"),
                }
            }
            sent += 1;
        }
        if let Some(rate) = args.rate {
            // A load generator's pacing: the next batch waits until its events are due.
            let due = started + Duration::from_secs_f64(sent as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                runtime.block_on(async { tokio::time::sleep(wait).await });
            }
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "publish: {sent} events in {secs:.0} s ({:.0}/s)",
                sent as f64 / secs
            );
            last_report = Instant::now();
        }
    }
    producer
        .flush(Duration::from_secs(300))
        .context("waiting for the broker's acknowledgements")?;
    let wall = started.elapsed().as_secs_f64();
    println!(
        "RESULT {}",
        serde_json::json!({
            "messages": sent,
            "wall_s": wall,
            "events_per_s": sent as f64 / wall.max(1e-9),
        })
    );
    Ok(())
}
