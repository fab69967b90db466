//! The consume-only baseline of `scripts/bench-kafka.sh` (`citybrain-bench drain`): read every
//! message of the feed topics with a plain librdkafka consumer and do nothing else with them (no
//! decoding, no rules, no commits). Its rate is the practical limit of any engine reading the
//! same broker.
//!
//! Stops after `--events` messages, or once every assigned partition is read to its end.
//! Prints a readable line on stderr and `RESULT {json}` on stdout: messages, payload bytes,
//! `wall_s` from start (group join included) to the last message, `read_s` from the first
//! message to the last, and `events_per_s` over `wall_s`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset};

/// What `citybrain-bench drain` reads.
#[derive(clap::Args, Debug)]
pub struct DrainArgs {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Topics to read, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "city.traffic,city.police,city.emergency,city.market"
    )]
    topics: Vec<String>,
    /// Stop after this many messages (at the latest at the end of every assigned partition).
    #[arg(long)]
    events: Option<u64>,
    /// Consumer group (default: a fresh one, so reading starts at the beginning).
    #[arg(long)]
    group: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
    /// Also write every payload to this file, one per line (the soak compares alerts with it).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

/// Reads the topics to their end (or `--events` messages) and prints the figures.
///
/// # Errors
/// When the consumer cannot be created, subscribe or read the partitions' ends, or after
/// `--timeout-s`.
pub fn drain(args: &DrainArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let group = args.group.clone().unwrap_or_else(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("kafka-drain-{}-{nanos}", std::process::id())
    });
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "10")
        .create()
        .context("creating the consumer")?;
    let topics: Vec<&str> = args.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).context("subscribing")?;
    let deadline = started + Duration::from_secs(args.timeout_s);
    let mut out = match &args.out {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => None,
    };
    let mut count = 0u64;
    let mut bytes = 0u64;
    let mut first: Option<Instant> = None;
    let mut last = started;
    loop {
        if args.events.is_some_and(|n| count >= n) {
            break;
        }
        if Instant::now() > deadline {
            bail!("timed out after {} s with {count} messages", args.timeout_s);
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
                count += 1;
                bytes += m.payload().map_or(0, |p| p.len() as u64);
                if let Some(out) = out.as_mut() {
                    use std::io::Write;
                    out.write_all(m.payload().unwrap_or_default())
                        .and_then(|()| out.write_all(b"\n"))
                        .context("writing --out")?;
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) if all_read(&consumer)? => break,
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => eprintln!("consumer error: {e}"),
        }
    }
    if let Some(mut out) = out {
        use std::io::Write;
        out.flush().context("writing --out")?;
    }
    let wall = last.duration_since(started).as_secs_f64();
    let read = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    let rate = count as f64 / wall.max(1e-9);
    eprintln!(
        "drained {count} messages ({:.1} MB) in {wall:.2} s ({read:.2} s from the first message): {rate:.0} messages/s",
        bytes as f64 / 1e6
    );
    println!(
        "RESULT {}",
        serde_json::json!({
            "messages": count,
            "bytes": bytes,
            "wall_s": wall,
            "read_s": read,
            "events_per_s": rate,
        })
    );
    Ok(())
}

/// Whether every assigned partition has been read up to its high watermark.
fn all_read(consumer: &BaseConsumer) -> anyhow::Result<bool> {
    let assignment = consumer.assignment().context("reading the assignment")?;
    if assignment.count() == 0 {
        return Ok(false);
    }
    let position = consumer.position().context("reading the position")?;
    for e in assignment.elements() {
        let (low, high) = consumer
            .fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(5))
            .with_context(|| format!("reading the end of {}/{}", e.topic(), e.partition()))?;
        let at = position
            .find_partition(e.topic(), e.partition())
            .and_then(|p| match p.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            })
            .unwrap_or(low);
        if at < high {
            return Ok(false);
        }
    }
    Ok(true)
}
