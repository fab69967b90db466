//! The incident desk against issue 13's two performance claims.
//!
//! - `desk/ingest`: alerts/s through [`Desk::ingest`] on the sample city (48 communities), one
//!   batch per simulated minute of event time with the watermark, then a [`Desk::tick`], so the
//!   escalation sweeps of the deadlines that fall due are counted. Four rules (one per
//!   severity), keys = H3 cells drawn with a skew (most alerts fall on a few hundred hot cells and
//!   correlate into open incidents; the rest open new ones), 2% revisions of earlier alerts.
//!   Every event is written as a JSON line to a file (the local store's shape; not fsynced).
//!   Claim: at least 10,000 alerts/s on one core (run under `taskset -c 1`).
//! - `desk/restore`: a restart with 100,000 open incidents (plus one update each: 200,000 events
//!   in a JSON-lines log written beforehand): read the log ([`store::read_log`]), build a desk,
//!   [`Desk::restore`] it, and answer a first read ([`Desk::book`]: count and one incident).
//!   Claim: serving again within 10 s.
//!
//! Not measured: alert JSON decoding ([`citybrain_ops::AlertIn::from_json`]), Kafka, the HTTP
//! layer, fsync. Inputs are deterministic (a fixed seed). In criterion's test mode (`cargo test
//! --all-targets`, no `--bench`) and in debug builds the sizes are small, so CI pays seconds.
//!
//! Run: `taskset -c 1 cargo bench -p citybrain-ops --bench desk`.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use citybrain_connectors::{JsonlSink, SplitMix64};
use citybrain_ops::calendar::Calendar;
use citybrain_ops::jurisdiction::{Placement, RoutingOptions, sample_city_path};
use citybrain_ops::policy::Overrides;
use citybrain_ops::store::{self, Format, Outputs};
use citybrain_ops::time::{MINUTE, Ms, parse_rfc3339};
use citybrain_ops::{
    Access, AlertIn, Book, Context, Desk, DeskConfig, IncidentEvent, Jurisdictions, Location,
    Policy, RuleProfile, Severity,
};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

/// Full sizes only for `cargo bench` of an optimised build.
fn full() -> bool {
    !cfg!(debug_assertions) && std::env::args().any(|a| a == "--bench")
}

/// (rule id, severity, window slide).
const RULES: [(&str, Severity, Ms); 4] = [
    ("traffic/congestion", Severity::High, MINUTE),
    ("environment/noise", Severity::Medium, 5 * MINUTE),
    ("public_safety/crowd", Severity::Critical, MINUTE),
    ("municipal/waterlogging", Severity::Low, 10 * MINUTE),
];

fn context() -> Context {
    let j =
        Jurisdictions::load(&sample_city_path(), RoutingOptions::default()).expect("sample city");
    let rules: HashMap<String, RuleProfile> = RULES
        .iter()
        .map(|(id, _, slide)| {
            (
                (*id).to_string(),
                RuleProfile {
                    department: id.split('/').next().expect("folder").to_string(),
                    overrides: Overrides::default(),
                    slide_ms: Some(*slide),
                },
            )
        })
        .collect();
    Context {
        jurisdictions: Arc::new(j),
        policy: Policy::default(),
        calendar: Calendar::default(),
        rules,
    }
}

/// Every routing cell whose centroid lies in a community, found on a grid over the city's
/// bounding box (from the GeoJSON), in a fixed order.
fn city_cells(ctx: &Context) -> Vec<Location> {
    let text = std::fs::read_to_string(sample_city_path()).expect("sample city");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("GeoJSON");
    let (mut lat0, mut lat1, mut lon0, mut lon1) = (90.0_f64, -90.0_f64, 180.0_f64, -180.0_f64);
    let mut visit = vec![&doc["features"]];
    while let Some(v) = visit.pop() {
        match v {
            serde_json::Value::Array(a)
                if a.len() == 2 && a.iter().all(serde_json::Value::is_number) =>
            {
                let (lon, lat) = (a[0].as_f64().expect("f64"), a[1].as_f64().expect("f64"));
                (lat0, lat1, lon0, lon1) =
                    (lat0.min(lat), lat1.max(lat), lon0.min(lon), lon1.max(lon));
            }
            serde_json::Value::Array(a) => visit.extend(a.iter()),
            serde_json::Value::Object(o) => visit.extend(o.values()),
            _ => {}
        }
    }
    let j = &ctx.jurisdictions;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let step = 0.001;
    let mut lat = lat0;
    while lat <= lat1 {
        let mut lon = lon0;
        while lon <= lon1 {
            if let Some(cell) = Location::from_point(lat, lon, j.resolution())
                .and_then(|l| Location::from_cell(l.cell.as_deref().expect("cell")))
                && matches!(j.route(&cell).placement, Placement::Inside)
                && seen.insert(cell.cell.clone())
            {
                out.push(cell);
            }
            lon += step;
        }
        lat += step;
    }
    assert!(out.len() > 100, "the sample city has cells ({})", out.len());
    out
}

fn alert(i: usize, rule: usize, cell: &Location, at: Ms, revision: u32) -> AlertIn {
    let (id, severity, _) = RULES[rule];
    AlertIn {
        alert_id: format!("{id}/{i}"),
        rule: id.to_string(),
        title: id.to_string(),
        severity,
        key: cell.cell.clone().expect("cell"),
        at,
        revision,
        location: cell.clone(),
        unit: None,
    }
}

/// `minutes` batches of `per_minute` alerts, each batch at one window end (its watermark).
/// 90% of alerts fall on 10% of the cells (hot spots: correlated into open incidents).
fn alert_stream(cells: &[Location], minutes: usize, per_minute: usize) -> Vec<(Ms, Vec<AlertIn>)> {
    let t0 = parse_rfc3339("2026-03-02T08:00:00Z").expect("time");
    let hot = (cells.len() / 10).max(1);
    let mut rng = SplitMix64::new(13);
    let mut sent: Vec<(usize, usize, usize)> = Vec::new();
    let mut i = 0;
    (0..minutes)
        .map(|m| {
            let at = t0 + i64::try_from(m + 1).expect("fits") * MINUTE;
            let batch = (0..per_minute)
                .map(|_| {
                    if !sent.is_empty() && rng.below(50) == 0 {
                        // A revision of a recent alert (a late event changed its window).
                        let (n, rule, cell) =
                            sent[sent.len() - 1 - rng.below(sent.len().min(1000))];
                        return alert(n, rule, &cells[cell], at, 2);
                    }
                    let cell = if rng.below(10) < 9 {
                        rng.below(hot)
                    } else {
                        rng.below(cells.len())
                    };
                    let rule = rng.below(RULES.len());
                    i += 1;
                    sent.push((i, rule, cell));
                    alert(i, rule, &cells[cell], at, 1)
                })
                .collect();
            (at, batch)
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

fn events_file(dir: &Path, name: &str) -> Outputs {
    let mut outputs = Outputs::new();
    let path = dir.join(name);
    outputs.add(
        &path.display().to_string(),
        Format::Events,
        Box::new(JsonlSink::create(&path).expect("events file")),
    );
    outputs
}

fn ingest(c: &mut Criterion) {
    let (minutes, per_minute) = if full() { (120, 500) } else { (5, 50) };
    let ctx = context();
    let cells = city_cells(&ctx);
    let stream = alert_stream(&cells, minutes, per_minute);
    let alerts: usize = stream.iter().map(|(_, b)| b.len()).sum();
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut run = 0_u64;

    let mut group = c.benchmark_group("desk");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(if full() { 20 } else { 1 }));
    group.warm_up_time(Duration::from_secs(if full() { 3 } else { 1 }));
    group.throughput(Throughput::Elements(alerts as u64));
    group.bench_function("ingest", |b| {
        b.iter_batched(
            || {
                run += 1;
                let outputs = events_file(dir.path(), &format!("events-{run}.jsonl"));
                let desk = Desk::new(
                    ctx.clone(),
                    Access::default(),
                    DeskConfig::default(),
                    outputs,
                );
                (desk, stream.clone())
            },
            |(desk, stream)| {
                rt.block_on(async {
                    for (at, batch) in stream {
                        desk.ingest(batch, Vec::new(), Some(at))
                            .await
                            .expect("ingest");
                        desk.tick().await.expect("tick");
                    }
                });
                desk
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();

    // What the stream did, once (stderr: criterion owns stdout's format).
    let desk = Desk::new(
        ctx.clone(),
        Access::default(),
        DeskConfig::default(),
        Outputs::new(),
    );
    rt.block_on(async {
        for (at, batch) in stream {
            desk.ingest(batch, Vec::new(), Some(at))
                .await
                .expect("ingest");
        }
    });
    eprintln!(
        "desk/ingest: {alerts} alerts over {minutes} min of event time on {} cells -> {} incidents, {} events",
        cells.len(),
        desk.book().len(),
        desk.book().seq(),
    );
}

/// The log of `incidents` open incidents with one update each, as JSON lines at `path`.
fn write_open_log(ctx: &Context, incidents: usize, path: &Path) -> usize {
    let cells = city_cells(ctx);
    let t0 = parse_rfc3339("2026-03-02T08:00:00Z").expect("time");
    let mut book = Book::new();
    let mut events: Vec<IncidentEvent> = Vec::with_capacity(2 * incidents);
    for round in 0..2 {
        for n in 0..incidents {
            let cell = &cells[n % cells.len()];
            let rule = (n / cells.len()) % RULES.len();
            let mut a = alert(
                round * incidents + n,
                rule,
                cell,
                t0 + i64::try_from(round).expect("0..2") * MINUTE,
                1,
            );
            // Distinct keys: a cell and a sensor number (one incident each).
            a.key = format!("{}|{}", a.key, n);
            events.extend(book.alert(ctx, &a));
        }
    }
    assert_eq!(book.len(), incidents, "one incident per key");
    let mut text = String::new();
    for e in &events {
        text.push_str(&serde_json::to_string(e).expect("event JSON"));
        text.push('\n');
    }
    std::fs::write(path, text).expect("event log");
    events.len()
}

fn restore(c: &mut Criterion) {
    let incidents = if full() { 100_000 } else { 1_000 };
    let ctx = context();
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("incident-events.jsonl");
    let events = write_open_log(&ctx, incidents, &log);
    let bytes = std::fs::metadata(&log).expect("log").len();
    eprintln!("desk/restore: {incidents} open incidents, {events} events, {bytes} bytes of log");
    let rt = runtime();

    let mut group = c.benchmark_group("desk");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(if full() { 30 } else { 1 }));
    group.warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(incidents as u64));
    group.bench_function("restore", |b| {
        b.iter_batched(
            || (),
            |()| {
                let events = store::read_log(&log).expect("read log");
                let desk = Desk::new(
                    ctx.clone(),
                    Access::default(),
                    DeskConfig::default(),
                    Outputs::new(),
                );
                rt.block_on(desk.restore(events)).expect("restore");
                let book = desk.book();
                assert_eq!(book.len(), incidents);
                black_box(book.incidents().next().map(|i| i.state));
                drop(book);
                desk
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, ingest, restore);
criterion_main!(benches);
