//! The `citybrain` command line: `run` (simulator demo or, with `--brokers`, the Kafka
//! service), `replay`, `simulate` (files or Kafka) and `rules check`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use citybrain_connectors::{
    Catalog as FeedCatalog, CityConfig, FileSource, JsonlSink, KeySource, NexmarkConfig, Progress,
    Pseudonymizer, SimulatorSource, Sink, write_feed_files, write_nexmark_files,
};
use citybrain_engine::console::ConsoleArgs;
use citybrain_engine::incidents;
use citybrain_engine::metrics::Metrics;
use citybrain_engine::{
    AlertFormat, Observer, Pipeline, PipelineConfig, RuleWatcher, RunOptions, ServiceConfig,
    Stopped, city_catalog, rules_catalog, service,
};
use citybrain_rules::Catalog;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use tracing::info;

mod outputs;

#[derive(Parser, Debug)]
#[command(
    name = "citybrain",
    version,
    about = "Streaming SQL rules over a city's departmental feeds"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: the size of the largest variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Run the built-in city simulator through the rule library, alerts on stdout (no services
    /// needed); with --brokers (or --config), run as the Kafka service.
    Run(RunArgs),
    /// Replay feed files through the rules with streaming semantics.
    Replay(ReplayArgs),
    /// Write the simulator's feeds as JSON-lines files (--out) or publish them to Kafka (--brokers).
    Simulate(SimulateArgs),
    /// Work with rule files.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// The ingest tier: raw feed topics in, decoded, validated, pseudonymised standard records
    /// out (`<topic>.std`); run any number in one consumer group (docs/scale.md).
    Ingest(citybrain_engine::ingest::IngestArgs),
    /// Work with incident event logs.
    Incidents {
        #[command(subcommand)]
        command: IncidentsCommand,
    },
}

#[derive(Subcommand, Debug)]
enum IncidentsCommand {
    /// Indicators (考核) per unit and day from an incident event log.
    Report {
        /// The incident events (JSON lines, as `replay --incidents` writes them).
        #[arg(long)]
        events: PathBuf,
        /// Jurisdictions (default: the sample city).
        #[arg(long)]
        jurisdictions: Option<PathBuf>,
        /// Calendar whose UTC offset sets the days (default UTC+8).
        #[arg(long)]
        calendar: Option<PathBuf>,
        /// Only this local day (YYYY-MM-DD): every unit listed, zeros included.
        #[arg(long)]
        day: Option<String>,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum RulesCommand {
    /// Validate every rule below DIR and report all problems (exit 1 when any).
    Check {
        /// The rules folder, or one rule file.
        dir: PathBuf,
        /// The feed catalog the rules read: Flink SQL `CREATE TABLE` files or folders of them
        /// (repeatable; default: the shipped city feeds, feeds/city.sql).
        #[arg(long, value_name = "CATALOG")]
        feeds: Vec<PathBuf>,
    },
}

#[derive(Args, Debug, Clone)]
struct EngineArgs {
    /// Bounded out-of-orderness of each feed (e.g. 5s, 500ms, 1m).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    out_of_orderness: Duration,
    /// Live runs: after how long without events a feed stops holding back the rules that read
    /// several feeds (a replay reads every feed to its end and never treats one as idle).
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Secret for pseudonymising personal fields (default: $CITYBRAIN_PSEUDONYM_KEY, else a
    /// public development key with a warning, refused by the Kafka service). On the command
    /// line it shows in `ps`: prefer --pseudonym-key-file.
    #[arg(long, env = "CITYBRAIN_PSEUDONYM_KEY", hide_env_values = true)]
    pseudonym_key: Option<String>,
    /// A file holding the pseudonymisation secret (surrounding whitespace ignored; chmod 600);
    /// wins over --pseudonym-key. See docs/privacy.md.
    #[arg(long, env = "CITYBRAIN_PSEUDONYM_KEY_FILE")]
    pseudonym_key_file: Option<PathBuf>,
    /// Most records per batch.
    #[arg(long, default_value_t = 8192)]
    batch_size: usize,
    /// How far ahead of the wall clock (live runs) or of its source's time an event time may
    /// be; further ahead, the record is dead-lettered as `future` (docs/rules.md).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    max_future: Duration,
}

#[derive(Args, Debug)]
struct ReplayArgs {
    /// Folder holding a JSON-lines file per feed of the catalog (`<table>.jsonl`, or the
    /// file name of its `'path'`): traffic.jsonl, police.jsonl, ... for the city feeds.
    #[arg(long)]
    input: PathBuf,
    /// The feed catalog: Flink SQL `CREATE TABLE` files or folders of them (repeatable;
    /// default: the shipped city feeds, feeds/city.sql).
    #[arg(long, value_name = "CATALOG")]
    feeds: Vec<PathBuf>,
    /// The rules folder, or one rule file (back-testing a single rule).
    #[arg(long)]
    rules: PathBuf,
    /// Where alerts go (JSON lines; replaced at the end of the replay, never an input).
    #[arg(long)]
    out: PathBuf,
    /// Where dead letters go (JSON lines; replaced at the end, never an input or --out).
    #[arg(long)]
    dlq: PathBuf,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    incidents: citybrain_engine::incidents::IncidentArgs,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The rules folder (default: the built-in library).
    #[arg(long)]
    rules: Option<PathBuf>,
    /// The feed catalog of the Kafka service (`--brokers`): Flink SQL `CREATE TABLE` files or
    /// folders of them, each table read from its topic (repeatable; default: the shipped city
    /// feeds, feeds/city.sql). The simulator demo always plays the city feeds.
    #[arg(long, value_name = "CATALOG")]
    feeds: Vec<PathBuf>,
    /// Simulated events per wall-clock second.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Simulated seconds per wall-clock second.
    #[arg(long, default_value_t = 60.0)]
    speed: f64,
    /// Stop after this long (e.g. 30s); default: until Ctrl-C.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Stop after this many events.
    #[arg(long)]
    events: Option<u64>,
    /// Simulator seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print alerts as JSON lines instead of readable lines.
    #[arg(long)]
    json: bool,
    /// Where dead letters go (appended: earlier runs' letters stay).
    #[arg(long, default_value = "citybrain-dead-letters.jsonl")]
    dlq: PathBuf,
    /// Bearer tokens of the incident API (TOML, hashed; default: the sample city's demo tokens).
    #[arg(long)]
    access: Option<PathBuf>,
    /// Keep incidents across restarts in this event log (JSON lines; without Kafka).
    #[arg(long)]
    incident_store: Option<PathBuf>,
    /// Alerts only: no incident desk.
    #[arg(long)]
    no_incidents: bool,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    incidents: citybrain_engine::incidents::IncidentArgs,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    console: ConsoleArgs,
}

/// The Kafka service (`run --brokers`): everything else comes from the TOML file.
#[derive(Args, Debug)]
struct KafkaArgs {
    /// Kafka bootstrap servers HOST:PORT[,HOST:PORT]: run as the Kafka service (feed topics in,
    /// alerts and dead letters out) instead of the simulator demo.
    #[arg(long, env = "CITYBRAIN_BROKERS")]
    brokers: Option<String>,
    /// Consumer group id (default: the config file's, else `citybrain`).
    #[arg(long, env = "CITYBRAIN_GROUP")]
    group: Option<String>,
    /// Service configuration (TOML: [kafka], [engine], [metrics]); see examples/kafka/.
    #[arg(long, env = "CITYBRAIN_CONFIG")]
    config: Option<PathBuf>,
    /// Stop once every assigned partition has been read to its end: emit open windows, deliver,
    /// commit, exit (back-tests and tests).
    #[arg(long)]
    exit_at_end: bool,
    /// Serve /metrics here (IP:PORT, "" for none) instead of the config file's [metrics]
    /// listen (default 127.0.0.1:9464).
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Run the Kafka service with the PUBLIC development key when no pseudonymisation key is
    /// configured: its pseudonyms protect nothing. Development only.
    #[arg(long)]
    insecure_dev_key: bool,
}

#[derive(Args, Debug)]
struct SimulateArgs {
    /// Output folder (created if missing).
    #[arg(long, required_unless_present = "brokers", conflicts_with = "brokers")]
    out: Option<PathBuf>,
    /// Publish to the feed topics of these Kafka bootstrap servers instead of writing files.
    #[arg(long, env = "CITYBRAIN_BROKERS")]
    brokers: Option<String>,
    /// With --brokers: wall-clock events per second (default: as fast as the broker takes them).
    #[arg(long)]
    rate: Option<f64>,
    /// With --brokers: the service configuration whose [kafka] topics and properties to use.
    #[arg(long, env = "CITYBRAIN_CONFIG")]
    config: Option<PathBuf>,
    /// How many events in all feeds together.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Simulator seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Events per simulated second (traffic readings fill it; the other departments have
    /// fixed hourly rates): lower it to cover more simulated time with the same event count.
    /// Default 200; with --nexmark, 10000 (the Nexmark suite's rate).
    #[arg(long)]
    sim_rate: Option<f64>,
    /// Write the Nexmark benchmark's person, auction and bid tables (feeds/nexmark.sql) instead
    /// of the city's feeds.
    #[arg(long, conflicts_with = "brokers")]
    nexmark: bool,
}

impl SimulateArgs {
    /// Events per simulated second, checked.
    fn sim_rate(&self) -> anyhow::Result<f64> {
        let default = if self.nexmark {
            citybrain_connectors::source::nexmark::NEXMARK_DEFAULT_RATE
        } else {
            200.0
        };
        let rate = self.sim_rate.unwrap_or(default);
        ensure_positive("--sim-rate", rate)?;
        Ok(rate)
    }
}

fn main() -> ExitCode {
    match try_main() {
        Ok(code) => code,
        Err(e) => {
            // `{:#}` prints the whole cause chain on one line: "cannot read x: permission denied".
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn try_main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CITYBRAIN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // Flags given on the command line override the Kafka service's config file.
    let explicit = |id: &str| {
        matches
            .subcommand_matches("run")
            .and_then(|m| m.value_source(id))
            == Some(clap::parser::ValueSource::CommandLine)
    };
    let engine_overrides = EngineOverrides {
        batch_size: explicit("batch_size"),
        out_of_orderness: explicit("out_of_orderness"),
        max_future: explicit("max_future"),
    };
    if let Some((_, m)) = matches.subcommand()
        && m.try_get_raw("pseudonym_key").is_ok()
        && m.value_source("pseudonym_key") == Some(clap::parser::ValueSource::CommandLine)
    {
        tracing::warn!(
            "--pseudonym-key on the command line is visible to every user of this machine \
             (ps, /proc): use --pseudonym-key-file or CITYBRAIN_PSEUDONYM_KEY"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Rules {
            command: RulesCommand::Check { dir, feeds },
        } => runtime.block_on(rules_check(&dir, &feeds)),
        Command::Incidents {
            command:
                IncidentsCommand::Report {
                    events,
                    jurisdictions,
                    calendar,
                    day,
                    json,
                },
        } => {
            print!(
                "{}",
                citybrain_engine::incidents::report(
                    &events,
                    jurisdictions.as_deref(),
                    calendar.as_deref(),
                    day.as_deref(),
                    json
                )?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate(a) if a.brokers.is_some() => runtime
            .block_on(simulate_kafka(&a))
            .map(|()| ExitCode::SUCCESS),
        Command::Simulate(a) => simulate(&a).map(|()| ExitCode::SUCCESS),
        Command::Replay(a) => runtime.block_on(replay(a)).map(|()| ExitCode::SUCCESS),
        Command::Run(a) if a.kafka.brokers.is_some() || a.kafka.config.is_some() => runtime
            .block_on(run_kafka(a, engine_overrides))
            .map(|()| ExitCode::SUCCESS),
        Command::Run(a) => runtime.block_on(run(a)).map(|()| ExitCode::SUCCESS),
        Command::Ingest(a) => runtime.block_on(ingest(a)).map(|()| ExitCode::SUCCESS),
    }
}

/// `citybrain ingest`: the only tier that holds the pseudonymisation key.
async fn ingest(a: citybrain_engine::ingest::IngestArgs) -> anyhow::Result<()> {
    let catalog = if a.feeds.is_empty() {
        FeedCatalog::city()
    } else {
        FeedCatalog::load(&a.feeds)?
    };
    let config = a.config(&catalog)?;
    let (pseudonymizer, key) =
        Pseudonymizer::load(a.pseudonym_key.as_deref(), a.pseudonym_key_file.as_deref())?;
    if key == KeySource::DevelopmentDefault && !a.insecure_dev_key {
        bail!(
            "no pseudonymisation key: ingest refuses to publish pseudonyms made with the public \
             development key. Give --pseudonym-key-file FILE (or CITYBRAIN_PSEUDONYM_KEY_FILE, \
             or CITYBRAIN_PSEUDONYM_KEY); for a throwaway development broker only, \
             --insecure-dev-key. See docs/privacy.md"
        );
    }
    let (_metrics, _) = Metrics::install(&config.metrics.listen, &Default::default()).await?;
    info!(
        brokers = %config.kafka.brokers,
        group = %config.kafka.group_id,
        dlq = %config.kafka.dlq_topic,
        "starting ingest (SIGINT/SIGTERM to stop)"
    );
    let started = Instant::now();
    let stats = citybrain_engine::ingest::run(
        config,
        &catalog,
        Arc::new(pseudonymizer),
        a.exit_at_end,
        shutdown_signal(),
    )
    .await?;
    eprint!("{}", stats.summary(started.elapsed()));
    Ok(())
}

/// The feed catalog: the `CREATE TABLE`s of `paths` (`--feeds`) and of the rule files below
/// `rules` (a whole Flink SQL script, DDL then queries, runs as catalog and rules); the shipped
/// city catalog when neither declares a table.
fn feed_catalog(paths: &[PathBuf], rules: &Path) -> anyhow::Result<FeedCatalog> {
    let mut files = paths.to_vec();
    files.extend(script_ddl_files(rules));
    if files.is_empty() {
        return Ok(FeedCatalog::city());
    }
    let catalog = FeedCatalog::load(&files)?;
    if catalog.tables().is_empty() && paths.is_empty() {
        return Ok(FeedCatalog::city());
    }
    info!(tables = ?catalog.tables().iter().map(|t| t.name()).collect::<Vec<_>>(), "feed catalog loaded");
    Ok(catalog)
}

/// The `.sql` files at or below `rules` that declare tables (`CREATE TABLE`, any case).
fn script_ddl_files(rules: &Path) -> Vec<PathBuf> {
    fn declares(path: &Path) -> bool {
        std::fs::read_to_string(path).is_ok_and(|text| {
            let upper = text.to_ascii_uppercase();
            upper
                .split(|c: char| c.is_whitespace())
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .windows(2)
                .any(|w| w[0] == "CREATE" && w[1] == "TABLE")
        })
    }
    fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            if path.is_dir() && depth < 16 {
                walk(&path, out, depth + 1);
            } else if path.extension().is_some_and(|e| e == "sql") && declares(&path) {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    if rules.is_file() {
        if declares(rules) {
            out.push(rules.to_path_buf());
        }
    } else {
        walk(rules, &mut out, 0);
    }
    out
}

async fn rules_check(dir: &Path, feeds: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let catalog = rules_catalog(&feed_catalog(feeds, dir)?);
    let sources = citybrain_rules::read_dir(dir)?;
    if sources.is_empty() {
        bail!("no .sql rules found below {}", dir.display());
    }
    match citybrain_rules::compile_all(&sources, &catalog).await {
        Ok(rules) => {
            for rule in &rules {
                let kind = match rule.meta.emit {
                    citybrain_rules::Emit::View => "view",
                    citybrain_rules::Emit::Alert => "alert",
                };
                println!(
                    "ok   {:<40} {kind:<5} {:<24} {}",
                    rule.meta.id,
                    rule.inputs.join(","),
                    match (&rule.window, rule.shape) {
                        (Some(w), _) if rule.is_sliced() =>
                            format!("{}, per-slice partials", w.kind),
                        (Some(w), _) => w.kind.to_string(),
                        (None, citybrain_rules::Shape::IntervalJoin) => format!(
                            "interval join within {} ms",
                            rule.interval_ms.unwrap_or_default()
                        ),
                        (None, _) => "per event".to_string(),
                    }
                );
            }
            println!("{} rule(s) ok", sources.len());
            Ok(ExitCode::SUCCESS)
        }
        Err(citybrain_rules::Error::Invalid(problems)) => {
            for p in &problems {
                eprintln!("{p}");
            }
            let files: std::collections::BTreeSet<_> = problems.iter().map(|p| &p.file).collect();
            eprintln!(
                "{} problem(s) in {} of {} rule file(s)",
                problems.len(),
                files.len(),
                sources.len()
            );
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

fn simulate(a: &SimulateArgs) -> anyhow::Result<()> {
    let out = a.out.as_deref().context("--out or --brokers is required")?;
    if a.nexmark {
        let cfg = NexmarkConfig {
            seed: a.seed,
            events_per_second: a.sim_rate()?,
        };
        let counts = write_nexmark_files(out, cfg, a.events)?;
        println!("wrote {} events to {}: {counts:?}", a.events, out.display());
        return Ok(());
    }
    let cfg = CityConfig {
        seed: a.seed,
        events_per_sim_second: a.sim_rate()?,
        ..CityConfig::default()
    };
    let counts = write_feed_files(out, cfg, a.events)?;
    println!("wrote {} events to {}: {counts:?}", a.events, out.display());
    Ok(())
}

/// The service configuration: the file when given, flags over it (validate after any other
/// override).
fn service_config(
    file: Option<&Path>,
    brokers: Option<&str>,
    group: Option<&str>,
) -> anyhow::Result<ServiceConfig> {
    let mut config = match file {
        Some(path) => ServiceConfig::load(path)?,
        None => ServiceConfig::default(),
    };
    if let Some(b) = brokers {
        config.kafka.brokers = b.to_string();
    }
    if let Some(g) = group {
        config.kafka.group_id = g.to_string();
    }
    Ok(config)
}

async fn simulate_kafka(a: &SimulateArgs) -> anyhow::Result<()> {
    let sim_rate = a.sim_rate()?;
    if let Some(rate) = a.rate {
        ensure_positive("--rate", rate)?;
    }
    let mut config =
        service_config(a.config.as_deref(), a.brokers.as_deref(), None)?.validated()?;
    config.metrics.listen.clear();
    let city = CityConfig {
        seed: a.seed,
        events_per_sim_second: sim_rate,
        ..CityConfig::default()
    };
    info!(brokers = %config.kafka.brokers, events = a.events, rate = ?a.rate, "publishing the simulated city");
    let counts =
        service::publish_simulation(&config.kafka, city, a.rate, a.events, shutdown_signal())
            .await?;
    println!(
        "published {} events to {}: {counts:?}",
        counts.total(),
        config.kafka.brokers
    );
    Ok(())
}

/// Which [`EngineArgs`] were given on the command line (they override the config file).
#[derive(Debug, Clone, Copy)]
struct EngineOverrides {
    batch_size: bool,
    out_of_orderness: bool,
    max_future: bool,
}

async fn run_kafka(a: RunArgs, overrides: EngineOverrides) -> anyhow::Result<()> {
    let mut config = service_config(
        a.kafka.config.as_deref(),
        a.kafka.brokers.as_deref(),
        a.kafka.group.as_deref(),
    )?;
    if overrides.batch_size {
        config.engine.batch_size = a.engine.batch_size;
    }
    if overrides.out_of_orderness {
        config.engine.out_of_orderness_ms = i64::try_from(a.engine.out_of_orderness.as_millis())
            .context("--out-of-orderness is too large")?;
    }
    if overrides.max_future {
        config.engine.max_future_ms = positive_millis("--max-future", a.engine.max_future)?;
    }
    if let Some(dir) = a.rules.clone() {
        config.engine.rules = Some(dir);
    }
    if let Some(listen) = &a.kafka.metrics_listen {
        config.metrics.listen.clone_from(listen);
    }
    let config = config.validated()?;
    // Pseudonyms leave the machine here (alerts, and the topics others read): a public key
    // would make them reversible by anyone with the source (docs/privacy.md).
    let pseudonymizer = pseudonymizer(&a.engine)?;
    if pseudonymizer.1 == KeySource::DevelopmentDefault && !a.kafka.insecure_dev_key {
        bail!(
            "no pseudonymisation key: the Kafka service refuses to publish pseudonyms made with \
             the public development key. Give --pseudonym-key-file FILE (or \
             CITYBRAIN_PSEUDONYM_KEY_FILE, or CITYBRAIN_PSEUDONYM_KEY); for a throwaway \
             development broker only, --insecure-dev-key. See docs/privacy.md"
        );
    }
    let dir = config.engine.rules.clone().unwrap_or_else(builtin_rules);
    let feeds = feed_catalog(&a.feeds, &dir)?;
    let (rules, _watcher, updates) = watched_rules(&dir, rules_catalog(&feeds)).await?;
    let (metrics, _) = Metrics::install(&config.metrics.listen, &config.http).await?;
    let mut incident_desk = incidents::kafka_desk(&config, &rules).await?;
    let _console = console(
        &a.console,
        incident_desk.desk.clone().map(citybrain_ops::router),
    )
    .await?;
    info!(
        brokers = %config.kafka.brokers,
        group = %config.kafka.group_id,
        alerts = %config.kafka.alert_topic,
        dlq = %config.kafka.dlq_topic,
        "starting the Kafka service (SIGINT/SIGTERM to stop)"
    );
    let started = Instant::now();
    let outcome = service::run(
        config,
        &feeds,
        rules,
        Some(updates),
        pseudonymizer.0,
        metrics,
        a.kafka.exit_at_end,
        shutdown_signal(),
        incident_desk.take_grid(),
    )
    .await?;
    eprint!("{}", outcome.stats.summary(started.elapsed()));
    drop(incident_desk);
    Ok(())
}

/// Serves the operations console and the incident API (`api`, when the run has a desk) until
/// the returned guard is dropped.
async fn console(
    args: &ConsoleArgs,
    api: Option<axum::Router>,
) -> anyhow::Result<tokio::sync::oneshot::Sender<()>> {
    let (guard, stop) = tokio::sync::oneshot::channel::<()>();
    citybrain_engine::console::start(args, api, async {
        let _ = stop.await;
    })
    .await?;
    Ok(guard)
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (docker stop, Kubernetes).
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// The pseudonymiser and where its key came from; the connectors crate warns loudly when it
/// falls back to the development key.
fn pseudonymizer(e: &EngineArgs) -> anyhow::Result<(Arc<Pseudonymizer>, KeySource)> {
    let (p, source) =
        Pseudonymizer::load(e.pseudonym_key.as_deref(), e.pseudonym_key_file.as_deref())?;
    Ok((Arc::new(p), source))
}

fn pipeline_config(e: &EngineArgs, format: AlertFormat) -> anyhow::Result<PipelineConfig> {
    if e.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    Ok(PipelineConfig {
        out_of_orderness_ms: i64::try_from(e.out_of_orderness.as_millis())
            .context("--out-of-orderness is too large")?,
        idle_timeout_ms: Some(
            i64::try_from(e.idle_timeout.as_millis()).context("--idle-timeout is too large")?,
        ),
        max_watermark_drift_ms: None,
        alert_format: format,
        max_future_ms: positive_millis("--max-future", e.max_future)?,
    })
}

/// A duration option as milliseconds, at least 1.
fn positive_millis(flag: &str, d: Duration) -> anyhow::Result<i64> {
    match i64::try_from(d.as_millis()) {
        Ok(ms) if ms >= 1 => Ok(ms),
        Ok(_) => bail!("{flag} must be at least 1ms"),
        Err(_) => bail!("{flag} is too large"),
    }
}

async fn load_rules(
    dir: &Path,
    catalog: &Catalog,
) -> anyhow::Result<Vec<citybrain_rules::CompiledRule>> {
    Ok(read_and_plan(dir, catalog).await?.0)
}

/// Reads and plans the rules below `dir` (views first), with the sources they came from.
async fn read_and_plan(
    dir: &Path,
    catalog: &Catalog,
) -> anyhow::Result<(
    Vec<citybrain_rules::CompiledRule>,
    Vec<citybrain_rules::RuleSource>,
)> {
    let sources = citybrain_rules::read_dir(dir)?;
    if sources.is_empty() {
        bail!("no .sql rules found below {}", dir.display());
    }
    let rules = citybrain_rules::compile_all(&sources, catalog).await?;
    info!(rules = rules.len(), dir = %dir.display(), "rules loaded");
    Ok((rules, sources))
}

/// The rules below `dir`, and a watcher of the folder sending every later valid set: files
/// added, changed or removed while running take effect without a restart.
async fn watched_rules(
    dir: &Path,
    catalog: Catalog,
) -> anyhow::Result<(
    Vec<citybrain_rules::CompiledRule>,
    RuleWatcher,
    tokio::sync::mpsc::Receiver<Vec<citybrain_rules::CompiledRule>>,
)> {
    let (rules, sources) = read_and_plan(dir, &catalog).await?;
    let (watcher, updates) =
        RuleWatcher::spawn(dir.to_path_buf(), catalog, sources, Duration::from_secs(1));
    Ok((rules, watcher, updates))
}

async fn replay(a: ReplayArgs) -> anyhow::Result<()> {
    let config = PipelineConfig {
        idle_timeout_ms: None,
        ..pipeline_config(&a.engine, AlertFormat::Json)?
    };
    let feeds = feed_catalog(&a.feeds, &a.rules)?;
    let rules = load_rules(&a.rules, &rules_catalog(&feeds)).await?;
    let grid = incidents::replay_grid(&a.incidents, &rules, config.out_of_orderness_ms).await?;
    let mut source = FileSource::open(&feeds, &a.input, a.engine.batch_size)?;
    let mut inputs: Vec<PathBuf> = source.paths();
    inputs.extend(
        citybrain_rules::read_dir(&a.rules)?
            .into_iter()
            .map(|r| r.path),
    );
    outputs::check(&[("--out", &a.out), ("--dlq", &a.dlq)], &inputs)?;
    let alerts = JsonlSink::create(&a.out)?;
    let dead = JsonlSink::create(&a.dlq)?;
    let mut pipeline = Pipeline::new(
        config,
        rules,
        pseudonymizer(&a.engine)?.0,
        Box::new(alerts),
        Box::new(dead),
    );
    pipeline.set_grid(grid);
    let started = Instant::now();
    let mut report = ProgressLines { started };
    pipeline
        .run(
            &mut source,
            std::future::pending::<Stopped>(),
            RunOptions {
                observer: Some(&mut report),
                ..RunOptions::default()
            },
        )
        .await?;
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    print!("{}", pipeline.stats().summary(started.elapsed()));
    println!(
        "alerts: {}  dead letters: {}",
        a.out.display(),
        a.dlq.display()
    );
    if let Some(summary) = pipeline.grid().and_then(incidents::summary) {
        print!("{summary}");
    }
    Ok(())
}

/// Prints a progress line every two seconds (on a terminal, one line rewritten in place).
struct ProgressLines {
    started: Instant,
}

impl Observer for ProgressLines {
    fn tick(&mut self, pipeline: &Pipeline, source: &dyn citybrain_connectors::Source) {
        progress_line(pipeline.stats(), source.progress(), self.started);
    }
}

fn progress_line(stats: &citybrain_engine::Stats, p: Option<Progress>, started: Instant) {
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let pct = p
        .and_then(|p| {
            p.total_bytes
                .map(|t| (p.done_bytes as f64 / t.max(1) as f64) * 100.0)
        })
        .map(|x| format!("{x:5.1}% "))
        .unwrap_or_default();
    let alerts: u64 = stats.alerts.values().sum();
    let line = format!(
        "{pct}{} records, {:.0} records/s, {alerts} alerts",
        stats.records(),
        stats.records() as f64 / secs
    );
    let mut err = std::io::stderr();
    if err.is_terminal() {
        let _ = write!(err, "\r{line}   ");
    } else {
        let _ = writeln!(err, "progress: {line}");
    }
    let _ = err.flush();
}

async fn run(a: RunArgs) -> anyhow::Result<()> {
    let format = if a.json {
        AlertFormat::Json
    } else {
        AlertFormat::Human
    };
    let config = pipeline_config(&a.engine, format)?;
    ensure_positive("--rate", a.rate)?;
    ensure_positive("--speed", a.speed)?;
    if !a.feeds.is_empty() {
        bail!("--feeds is for the Kafka service (--brokers): the simulator plays the city feeds");
    }
    let dir = a.rules.clone().unwrap_or_else(builtin_rules);
    let (rules, _watcher, updates) = watched_rules(&dir, city_catalog()).await?;
    if a.incidents.actions.is_some() {
        bail!("--actions is for replay; live actions come through the incident API");
    }
    let grid = incidents::live_grid(
        &incidents::LiveOptions {
            args: a.incidents.clone(),
            access: a.access.clone(),
            store: a.incident_store.clone(),
            desk: !a.no_incidents,
            terminal: !a.json,
        },
        &rules,
        config.out_of_orderness_ms,
    )
    .await?;
    let _console = console(
        &a.console,
        grid.desk()
            .map(|d| citybrain_ops::router(std::sync::Arc::clone(d))),
    )
    .await?;
    let mut source = SimulatorSource::new(
        CityConfig {
            seed: a.seed,
            sim_speed: a.speed,
            // Paced at `rate` wall events/s, simulated time runs `speed` times faster than
            // wall time when each simulated second holds rate / speed events.
            events_per_sim_second: a.rate / a.speed,
            ..CityConfig::default()
        },
        Some(a.rate),
        a.events,
        a.engine.batch_size.min(1024),
    );
    let alerts: Box<dyn Sink> = Box::new(JsonlSink::stdout());
    // Appended: the dead letters of earlier runs are evidence, not scratch.
    let dead = JsonlSink::append(&a.dlq)?;
    let mut pipeline = Pipeline::new(
        config,
        rules,
        pseudonymizer(&a.engine)?.0,
        alerts,
        Box::new(dead),
    );
    pipeline.watch_rules(updates);
    pipeline.set_grid(grid);
    info!(
        rules = %dir.display(),
        rate = a.rate,
        speed = a.speed,
        seed = a.seed,
        "simulating the city; alerts follow (Ctrl-C to stop)"
    );
    let duration = a.duration;
    let stop = async move {
        let timer = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = timer => {}
        }
        Stopped::Gracefully
    };
    let started = Instant::now();
    pipeline
        .run(&mut source, stop, RunOptions::default())
        .await?;
    eprint!("{}", pipeline.stats().summary(started.elapsed()));
    if let Some(summary) = pipeline.grid().and_then(incidents::summary) {
        eprint!("{summary}");
    }
    Ok(())
}

/// The built-in rule library: `rules/library` of the working directory when present (a clone),
/// else beside the binary (`<bin>/rules/library`, or `<bin>/../share/citybrain/rules/library`
/// for an installed binary), else the one next to the sources this binary was built from.
fn builtin_rules() -> PathBuf {
    let local = PathBuf::from("rules/library");
    if local.is_dir() {
        return local;
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .into_iter()
        .flat_map(|bin| {
            [
                bin.join("rules/library"),
                bin.join("../share/citybrain/rules/library"),
            ]
        })
        .find(|p| p.is_dir());
    beside.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/library"))
}

/// Rejects zero, negative, infinite and NaN values of a numeric option.
fn ensure_positive(flag: &str, value: f64) -> anyhow::Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        bail!("{flag} must be a positive number, got {value}")
    }
}

/// Parses `250ms`, `5s`, `2m`, `1h` or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 500ms, 5s, 2m or 1h"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{s}`: use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("`{s}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("5 fortnights").is_err());
        assert!(parse_duration("x").is_err());
    }
}
