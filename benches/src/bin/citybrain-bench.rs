//! `citybrain-bench`: the end-to-end throughput and latency benchmark.
//!
//! ```text
//! citybrain-bench generate --out DIR --events N [--seed S] [--traffic-only]
//! citybrain-bench run --mode read|decode|pipeline --input DIR [--rules PATH]
//!                     [--batch-size N] [--rate EVENTS_PER_S] [--out DIR]
//! citybrain-bench drain --brokers HOST:PORT [--topics A,B] [--events N]
//! citybrain-bench publish --brokers HOST:PORT --input DIR [--rate EVENTS_PER_S]
//! citybrain-bench checkpoint [--keys N] [--rules PATH] [--store DIR|memory://]
//! ```
//!
//! `run` reads the feed files of `DIR` with the real [`FileSource`] and, by `--mode`:
//!
//! - `read`: only reads and splits lines (the practical limit of any engine on this input);
//! - `decode`: reads, decodes to Arrow and pseudonymises (the connectors' share);
//! - `pipeline`: the real [`Pipeline`]: file source, decode, pseudonymise, every rule of
//!   `--rules`, alerts as JSON lines to `OUT/alerts.jsonl`, dead letters to `OUT/dead.jsonl`.
//!
//! It prints a summary and one `RESULT {json}` line: events, bytes, wall and CPU seconds (the
//! timed part: after the rules are planned, until the sinks are flushed), events/s, MB/s, peak
//! RSS (`VmHWM`), and in `pipeline` mode the latency histogram.
//!
//! The `decode` and `pipeline` modes decode a few batches ahead on other cores with
//! [`DecodeAhead`], as [`Pipeline::run`] does.
//!
//! **Latency** is measured per emitted window, from the moment the batch holding the event
//! that moved the watermark past the window's end was handed over by the source, to the
//! moment the alert sink's `write` of that window's alerts returned: decoding and waiting
//! behind the batches ahead of it count. No hook in the pipeline is needed:
//! [`Pipeline::apply`] emits every window its batch closes and writes the alerts before it
//! returns. With `--rate` the input is paced: a batch is handed over when its last event is
//! due (events `0..n` are due at `n / rate` seconds), and latency counts from that due time,
//! so queueing behind a slow batch counts too. Windows emitted at the end of the input (not
//! closed by a watermark) are not timed.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use citybrain_benches::{BENCH_KEY, compile_all, cpu_seconds, peak_rss_bytes, rule_sources};
use citybrain_connectors::{
    Catalog, CityConfig, DecodeAhead, FileSource, JsonlSink, Pseudonymizer, RawBatch, Sink,
    SinkRecord, Source, write_feed_files,
};
use citybrain_engine::{AlertFormat, DECODE_AHEAD, Pipeline, PipelineConfig};
use clap::{Parser, Subcommand, ValueEnum};
use hdrhistogram::Histogram;

#[derive(Parser)]
#[command(
    name = "citybrain-bench",
    about = "End-to-end benchmark of the citybrain pipeline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes simulator events as feed files (as `citybrain simulate`).
    Generate {
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Number of events.
        #[arg(long)]
        events: u64,
        /// Simulator seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Keep only `traffic.jsonl` (the Flink comparison input, about 200 bytes an event).
        #[arg(long)]
        traffic_only: bool,
    },
    /// Runs the feed files of a folder through one stage of the data path and measures it.
    Run(RunArgs),
    /// Reads Kafka topics with a plain consumer and nothing else (the consume-only baseline of
    /// `scripts/bench-kafka.sh`).
    Drain(citybrain_benches::drain::DrainArgs),
    /// Publishes feed files to the feed topics at a steady rate (the soak's load, with
    /// prepared input: scripts/soak.sh).
    Publish(citybrain_benches::publish::PublishArgs),
    /// Measures a checkpoint (snapshot, write, read, restore) with many keys in open windows.
    Checkpoint(citybrain_benches::checkpoint::CheckpointArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Read and split lines only.
    Read,
    /// Read, decode to Arrow, pseudonymise.
    Decode,
    /// The whole pipeline: read, decode, pseudonymise, rules, alert sink.
    Pipeline,
}

#[derive(clap::Args)]
struct RunArgs {
    /// What to run.
    #[arg(long, value_enum)]
    mode: Mode,
    /// Folder with `{traffic,police,emergency,market}.jsonl`.
    #[arg(long)]
    input: PathBuf,
    /// A rules folder or one `.sql` file (pipeline mode).
    #[arg(long, default_value = "rules/library")]
    rules: PathBuf,
    /// Most records per batch.
    #[arg(long, default_value_t = citybrain_connectors::DEFAULT_MAX_BATCH)]
    batch_size: usize,
    /// Pace the input at this many events per second (default: as fast as possible).
    #[arg(long)]
    rate: Option<f64>,
    /// Where alerts and dead letters go (default: a folder in the system temp dir).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Bounded out-of-orderness in milliseconds.
    #[arg(long, default_value_t = citybrain_rules::DEFAULT_OUT_OF_ORDERNESS_MS)]
    out_of_orderness_ms: i64,
}

fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    match Cli::parse().command {
        Command::Generate {
            out,
            events,
            seed,
            traffic_only,
        } => generate(&out, events, seed, traffic_only),
        Command::Run(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let report = runtime.block_on(run(&args))?;
            report.print(started.elapsed());
            Ok(())
        }
        Command::Drain(args) => citybrain_benches::drain::drain(&args),
        Command::Publish(args) => citybrain_benches::publish::publish(&args),
        Command::Checkpoint(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?
            .block_on(citybrain_benches::checkpoint::checkpoint(&args)),
    }
}

fn generate(out: &Path, events: u64, seed: u64, traffic_only: bool) -> anyhow::Result<()> {
    let counts = write_feed_files(out, CityConfig::with_seed(seed), events)?;
    if traffic_only {
        let city = Catalog::city();
        for feed in city.tables().iter().filter(|f| f.name() != "traffic") {
            let path = out.join(format!("{}.jsonl", feed.name()));
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    println!("wrote {} events to {}: {counts:?}", events, out.display());
    Ok(())
}

/// What one run measured.
struct Report {
    mode: Mode,
    events: u64,
    bytes: u64,
    setup: Duration,
    wall: Duration,
    cpu_s: f64,
    alerts: u64,
    latency: Option<Histogram<u64>>,
}

impl Report {
    fn print(&self, total: Duration) {
        let wall = self.wall.as_secs_f64().max(1e-9);
        let cpu = self.cpu_s.max(1e-9);
        let rss_mb = peak_rss_bytes().map_or(0.0, |b| b as f64 / 1e6);
        let mode = match self.mode {
            Mode::Read => "read",
            Mode::Decode => "decode",
            Mode::Pipeline => "pipeline",
        };
        let ev_s = self.events as f64 / wall;
        let ev_cpu_s = self.events as f64 / cpu;
        let mb_s = self.bytes as f64 / 1e6 / wall;
        println!(
            "{mode}: {} events, {:.1} MB in {:.3} s wall ({:.3} s CPU), setup {:.3} s, \
             total {:.3} s",
            self.events,
            self.bytes as f64 / 1e6,
            wall,
            self.cpu_s,
            self.setup.as_secs_f64(),
            total.as_secs_f64()
        );
        println!(
            "  {ev_s:.0} events/s, {ev_cpu_s:.0} events per CPU-second, {mb_s:.1} MB/s, \
             peak RSS {rss_mb:.1} MB, {} alerts",
            self.alerts
        );
        let mut json = serde_json::json!({
            "mode": mode,
            "events": self.events,
            "bytes": self.bytes,
            "setup_s": self.setup.as_secs_f64(),
            "wall_s": wall,
            "cpu_s": self.cpu_s,
            "total_s": total.as_secs_f64(),
            "events_per_s": ev_s,
            "events_per_cpu_s": ev_cpu_s,
            "mb_per_s": mb_s,
            "peak_rss_mb": rss_mb,
            "alerts": self.alerts,
        });
        if let Some(h) = &self.latency {
            let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "  latency over {} windows: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, \
                 max {:.2} ms",
                h.len(),
                ms(0.5),
                ms(0.99),
                ms(0.999),
                h.max() as f64 / 1000.0
            );
            json["windows_timed"] = h.len().into();
            json["p50_ms"] = ms(0.5).into();
            json["p99_ms"] = ms(0.99).into();
            json["p999_ms"] = ms(0.999).into();
            json["max_ms"] = (h.max() as f64 / 1000.0).into();
        }
        println!("RESULT {json}");
    }
}

async fn run(a: &RunArgs) -> anyhow::Result<Report> {
    if a.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    if let Some(rate) = a.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        bail!("--rate must be a positive number of events per second");
    }
    let setup_started = Instant::now();
    let source = FileSource::open(&Catalog::city(), &a.input, a.batch_size)?;
    let bytes = source.progress().and_then(|p| p.total_bytes).unwrap_or(0);
    let pseudonymizer = Arc::new(Pseudonymizer::new(BENCH_KEY));
    match a.mode {
        Mode::Read | Mode::Decode => {
            let mut decoding = DecodeAhead::new(Arc::clone(&pseudonymizer), DECODE_AHEAD);
            let setup = setup_started.elapsed();
            let (t, cpu) = (Instant::now(), cpu_seconds().unwrap_or(0.0));
            let mut events = 0u64;
            let mut source = PacedSource::new(source, a.rate);
            if a.mode == Mode::Decode {
                while let Some((_, decoded)) = decoding.next_from(&mut source).await? {
                    events += (decoded.batch.num_rows() + decoded.dead.len()) as u64;
                    std::hint::black_box(decoded);
                }
            } else {
                while let Some(raw) = source.next_batch().await? {
                    events += raw.records.len() as u64;
                    std::hint::black_box(raw);
                }
            }
            Ok(Report {
                mode: a.mode,
                events,
                bytes,
                setup,
                wall: t.elapsed(),
                cpu_s: cpu_seconds().unwrap_or(0.0) - cpu,
                alerts: 0,
                latency: None,
            })
        }
        Mode::Pipeline => {
            let out = a.out.clone().unwrap_or_else(|| {
                std::env::temp_dir().join(format!("citybrain-bench-{}", std::process::id()))
            });
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let rules = compile_all(&rule_sources(&a.rules)?).await?;
            let timing = Arc::new(Mutex::new(Timing::new()));
            let alerts = TimingSink {
                inner: JsonlSink::create(&out.join("alerts.jsonl"))?,
                timing: Arc::clone(&timing),
            };
            let dead = JsonlSink::create(&out.join("dead.jsonl"))?;
            let config = PipelineConfig {
                out_of_orderness_ms: a.out_of_orderness_ms,
                idle_timeout_ms: None,
                max_watermark_drift_ms: None,
                alert_format: AlertFormat::Json,
                ..PipelineConfig::default()
            };
            let mut decoding = DecodeAhead::new(Arc::clone(&pseudonymizer), DECODE_AHEAD);
            let mut pipeline = Pipeline::new(
                config,
                rules,
                pseudonymizer,
                Box::new(alerts),
                Box::new(dead),
            );
            let setup = setup_started.elapsed();
            let (t, cpu) = (Instant::now(), cpu_seconds().unwrap_or(0.0));
            // The loop of `Pipeline::run`, with each batch's hand-over time at hand.
            let mut source = PacedSource::new(source, a.rate);
            while let Some((raw, decoded)) = decoding.next_from(&mut source).await? {
                lock(&timing).batch_start = source.handed_over.pop_front();
                pipeline.apply(raw, decoded).await?;
            }
            lock(&timing).batch_start = None;
            pipeline.finish().await?;
            let wall = t.elapsed();
            let cpu_s = cpu_seconds().unwrap_or(0.0) - cpu;
            let stats = pipeline.stats();
            let timing = lock(&timing);
            Ok(Report {
                mode: a.mode,
                events: stats.records(),
                bytes,
                setup,
                wall,
                cpu_s,
                alerts: stats.alerts.values().sum(),
                latency: Some(timing.histogram.clone()),
            })
        }
    }
}

/// A source handing batches over no sooner than their last event is due at the configured
/// rate (events `0..n` are due at `n / rate` seconds), remembering when each was handed over.
struct PacedSource {
    inner: FileSource,
    rate: Option<f64>,
    start: Instant,
    events: u64,
    /// A batch read and not yet due, with its due time (kept across cancellation).
    pending: Option<(RawBatch, Instant)>,
    /// Hand-over time of each batch returned and not yet taken by the driver, in order: the
    /// due time when paced (in the past when the pipeline is behind), else the time it was read.
    handed_over: VecDeque<Instant>,
}

impl PacedSource {
    fn new(inner: FileSource, rate: Option<f64>) -> Self {
        Self {
            inner,
            rate,
            start: Instant::now(),
            events: 0,
            pending: None,
            handed_over: VecDeque::new(),
        }
    }
}

#[async_trait::async_trait]
impl Source for PacedSource {
    async fn next_batch(&mut self) -> citybrain_connectors::Result<Option<RawBatch>> {
        if self.pending.is_none() {
            let Some(raw) = self.inner.next_batch().await? else {
                return Ok(None);
            };
            self.events += raw.records.len() as u64;
            let due = match self.rate {
                Some(rate) => self.start + Duration::from_secs_f64(self.events as f64 / rate),
                None => Instant::now(),
            };
            self.pending = Some((raw, due));
        }
        // Only a batch not yet due waits: tokio's timer works in whole milliseconds, so even a
        // deadline already passed would wait for the next tick (half a millisecond a batch on
        // average, which an unpaced run must not pay).
        if let Some((_, due)) = &self.pending
            && *due > Instant::now()
        {
            tokio::time::sleep_until((*due).into()).await;
        }
        let (raw, due) = self.pending.take().expect("a pending batch");
        self.handed_over.push_back(due);
        Ok(Some(raw))
    }
}

/// Latency bookkeeping shared by the driver and the alert sink.
struct Timing {
    /// When the batch being processed was handed over; `None` at the end of the input.
    batch_start: Option<Instant>,
    /// Microseconds from hand-over to alerts written, one value per emitted window.
    histogram: Histogram<u64>,
}

impl Timing {
    fn new() -> Self {
        Self {
            batch_start: None,
            histogram: Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("valid histogram bounds"),
        }
    }
}

fn lock(timing: &Mutex<Timing>) -> std::sync::MutexGuard<'_, Timing> {
    timing.lock().unwrap_or_else(|e| e.into_inner())
}

/// The alert sink, timing each write: one histogram value per distinct (rule, window).
struct TimingSink {
    inner: JsonlSink,
    timing: Arc<Mutex<Timing>>,
}

#[derive(serde::Deserialize, PartialEq, Eq)]
struct AlertWindow {
    rule: String,
    window_end: Option<String>,
}

#[async_trait::async_trait]
impl Sink for TimingSink {
    async fn write(&mut self, records: &[SinkRecord]) -> citybrain_connectors::Result<()> {
        self.inner.write(records).await?;
        let written = Instant::now();
        let mut timing = lock(&self.timing);
        let Some(start) = timing.batch_start else {
            return Ok(());
        };
        let micros = u64::try_from(written.saturating_duration_since(start).as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut windows: Vec<AlertWindow> = Vec::new();
        for r in records {
            if let Ok(w) = serde_json::from_str::<AlertWindow>(&r.payload)
                && w.window_end.is_some()
                && !windows.contains(&w)
            {
                windows.push(w);
            }
        }
        for _ in &windows {
            timing.histogram.saturating_record(micros);
        }
        Ok(())
    }

    async fn flush(&mut self) -> citybrain_connectors::Result<()> {
        self.inner.flush().await
    }
}
