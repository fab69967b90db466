//! The simulated city: determinism, conformance to the standard, staged incidents, sources.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Array, StringArray};
use arrow::datatypes::TimestampMillisecondType;
use bytes::Bytes;
use citybrain_connectors::source::simulator::FOOD_SAFETY_MERCHANT;
use citybrain_connectors::{
    CityConfig, CitySimulator, Decoded, Decoder, Feed, FileSource, Origin, Pseudonymizer, RawBatch,
    RawRecord, SimulatorSource, Source, write_feed_files,
};

fn generate(cfg: CityConfig, n: usize) -> Vec<(Feed, Vec<u8>)> {
    let mut sim = CitySimulator::new(cfg);
    (0..n)
        .map(|_| {
            let mut out = Vec::new();
            let feed = sim.next_event(&mut out).clone();
            (feed, out)
        })
        .collect()
}

/// Decodes every event per feed, asserting there is no dead letter.
fn decode_all(events: &[(Feed, Vec<u8>)]) -> HashMap<Feed, Decoded> {
    let pseudonymizer = Arc::new(Pseudonymizer::new(b"sim-test"));
    city_feeds()
        .into_iter()
        .map(|feed| {
            let records = events
                .iter()
                .enumerate()
                .filter(|(_, (f, _))| *f == feed)
                .map(|(i, (_, payload))| RawRecord {
                    payload: Bytes::copy_from_slice(payload),
                    origin: Origin::Simulator { seq: i as u64 },
                })
                .collect();
            let decoded =
                Decoder::new(feed.clone(), Arc::clone(&pseudonymizer)).decode(&RawBatch {
                    feed: feed.clone(),
                    records,
                });
            if let Some(letter) = decoded.dead.first() {
                panic!(
                    "{} dead letters in {feed}, first: {}",
                    decoded.dead.len(),
                    letter.to_json()
                );
            }
            (feed, decoded)
        })
        .collect()
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a = generate(CityConfig::with_seed(7), 5000);
    let b = generate(CityConfig::with_seed(7), 5000);
    assert!(a == b, "same seed gave different events");
    let c = generate(CityConfig::with_seed(8), 5000);
    assert!(a != c, "different seeds gave the same events");
}

#[test]
fn events_conform_and_show_the_staged_city() {
    // A quiet city (50 events per simulated second) so that 60k events span about 25
    // simulated minutes: long enough for the first incident of each kind to play out.
    let cfg = CityConfig {
        events_per_sim_second: 50.0,
        ..CityConfig::default()
    };
    let events = generate(cfg, 60_000);
    let decoded = decode_all(&events);

    // Traffic readings dominate; the departments come at city rates per simulated hour (their
    // background plus the staged incidents, which weigh a lot in 25 minutes).
    let count = |feed: Feed| decoded[&feed].batch.num_rows();
    let total = events.len() as f64;
    let traffic_share = count(city("traffic")) as f64 / total;
    assert!(traffic_share > 0.99, "traffic share {traffic_share}");
    let last_ms = decoded
        .values()
        .flat_map(|d| {
            let ts = d.batch.column_by_name("ts").expect("ts");
            let ts = ts.as_primitive::<TimestampMillisecondType>();
            ts.values().iter().copied().collect::<Vec<_>>()
        })
        .max()
        .expect("events");
    let hours = (last_ms - cfg.start_ms) as f64 / 3_600_000.0;
    for (feed, per_hour) in [
        (city("police"), 15.0..120.0),
        (city("emergency"), 10.0..100.0),
        (city("market"), 5.0..60.0),
    ] {
        let rate = count(feed.clone()) as f64 / hours;
        assert!(
            per_hour.contains(&rate),
            "{feed}: {rate:.1} events per simulated hour"
        );
    }

    // Event ids are unique across feeds.
    let mut ids = HashSet::new();
    for d in decoded.values() {
        let col = d.batch.column_by_name("event_id").expect("event_id");
        for id in col.as_string::<i32>().iter().flatten() {
            assert!(ids.insert(id.to_owned()), "duplicate event id {id}");
        }
    }

    // Time runs forward with at most 2 s of disorder, at about the configured events per
    // simulated second.
    let mut times: Vec<(usize, i64)> = Vec::new();
    for feed in city_feeds() {
        let ts = decoded[&feed].batch.column_by_name("ts").expect("ts");
        let ts = ts.as_primitive::<TimestampMillisecondType>();
        let seqs = events
            .iter()
            .enumerate()
            .filter(|(_, (f, _))| *f == feed)
            .map(|(i, _)| i);
        times.extend(seqs.zip(ts.values().iter().copied()));
    }
    assert_eq!(times.len(), events.len());
    times.sort_unstable();
    let mut max_seen = i64::MIN;
    for &(_, t) in &times {
        assert!(
            t >= max_seen.saturating_sub(2000),
            "event {t} more than 2 s behind {max_seen}"
        );
        max_seen = max_seen.max(t);
    }
    let span_s = (max_seen - cfg.start_ms) as f64 / 1000.0;
    let rate = total / span_s / cfg.events_per_sim_second;
    assert!(
        (0.6..1.3).contains(&rate),
        "{rate} times the configured events per simulated second"
    );

    // Positions stay in the city, about 10 km across.
    for d in decoded.values() {
        let lat = d.batch.column_by_name("lat").expect("lat");
        let lon = d.batch.column_by_name("lon").expect("lon");
        let lat = lat.as_any().downcast_ref::<Float64Array>().expect("f64");
        let lon = lon.as_any().downcast_ref::<Float64Array>().expect("f64");
        for (la, lo) in lat.values().iter().zip(lon.values()) {
            assert!(
                (30.15..30.35).contains(la) && (120.05..120.29).contains(lo),
                "{la},{lo}"
            );
        }
    }

    // The food-safety merchant gets repeated complaints and a failed inspection.
    let market = &decoded[&city("market")].batch;
    let strings =
        |name: &str| -> &StringArray { market.column_by_name(name).expect(name).as_string() };
    let (merchant, category, kind, result) = (
        strings("merchant_id"),
        strings("category"),
        strings("kind"),
        strings("result"),
    );
    let mut complaints = 0;
    let mut failed = 0;
    for i in 0..market.num_rows() {
        if merchant.value(i) == FOOD_SAFETY_MERCHANT && category.value(i) == "food_safety" {
            match (kind.value(i), result.is_valid(i).then(|| result.value(i))) {
                ("complaint", _) => complaints += 1,
                ("inspection", Some("fail")) => failed += 1,
                _ => {}
            }
        }
    }
    assert!(
        complaints >= 5,
        "{complaints} complaints about {FOOD_SAFETY_MERCHANT}"
    );
    assert!(
        failed >= 1,
        "no failed inspection of {FOOD_SAFETY_MERCHANT}"
    );

    // Accident burst: several traffic accidents and police traffic_accident reports.
    let traffic = &decoded[&city("traffic")].batch;
    let accidents = traffic
        .column_by_name("kind")
        .expect("kind")
        .as_string::<i32>()
        .iter()
        .filter(|k| *k == Some("accident"))
        .count();
    assert!(accidents >= 3, "{accidents} accidents");

    // Fight burst and the repeated caller.
    let police = &decoded[&city("police")].batch;
    let fights = police
        .column_by_name("category")
        .expect("category")
        .as_string::<i32>()
        .iter()
        .filter(|c| *c == Some("fight"))
        .count();
    assert!(fights >= 4, "{fights} fights");
    let phones = decoded[&city("emergency")]
        .batch
        .column_by_name("caller_phone")
        .expect("caller_phone")
        .as_string::<i32>()
        .iter()
        .flatten()
        .fold(HashMap::<&str, usize>::new(), |mut m, p| {
            *m.entry(p).or_default() += 1;
            m
        });
    let most = phones.values().copied().max().unwrap_or(0);
    assert!(most >= 5, "most calls from one phone: {most}");

    // Both allowed ts encodings occur in the raw output.
    let texts: Vec<&str> = events
        .iter()
        .map(|(_, e)| std::str::from_utf8(e).expect("utf-8"))
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("Z\",\"lat\"")),
        "no RFC 3339 ts"
    );
    assert!(
        texts.iter().any(|t| t.contains("\"ts\":17")),
        "no epoch-ms ts"
    );
    assert!(texts.iter().any(|t| t.contains(":null")), "no null fields");
}

/// Counts per feed over the first `hours` simulated hours.
fn counts_over(cfg: CityConfig, hours: f64) -> HashMap<Feed, usize> {
    let mut sim = CitySimulator::new(cfg);
    let end = cfg.start_ms + (hours * 3_600_000.0) as i64;
    let mut counts = HashMap::new();
    let mut out = Vec::new();
    while sim.clock_ms() < end {
        out.clear();
        *counts.entry(sim.next_event(&mut out).clone()).or_default() += 1;
    }
    counts
}

#[test]
fn department_rates_are_per_simulated_hour_whatever_the_event_rate() {
    // Six simulated hours (06:00–12:00, with the morning rush) at two densities of readings.
    let hours = 6.0;
    let sparse = counts_over(
        CityConfig {
            events_per_sim_second: 5.0,
            ..CityConfig::default()
        },
        hours,
    );
    let dense = counts_over(
        CityConfig {
            events_per_sim_second: 20.0,
            ..CityConfig::default()
        },
        hours,
    );
    let traffic_ratio = dense[&city("traffic")] as f64 / sparse[&city("traffic")] as f64;
    assert!(
        (3.6..4.4).contains(&traffic_ratio),
        "traffic scales with the rate: {traffic_ratio}"
    );
    // Background rates (36, 24 and 12 an hour in daytime, market shops opening at 08:00)
    // plus the staged incidents, which make market counts (a burst of complaints now and then)
    // vary most between runs.
    for (feed, per_hour, tolerance) in [
        (city("police"), 30.0..70.0, 0.25),
        (city("emergency"), 20.0..50.0, 0.25),
        (city("market"), 5.0..25.0, 0.5),
    ] {
        let (a, b) = (sparse[&feed] as f64, dense[&feed] as f64);
        for n in [a, b] {
            assert!(
                per_hour.contains(&(n / hours)),
                "{feed}: {:.1} per simulated hour",
                n / hours
            );
        }
        assert!(
            (a - b).abs() <= tolerance * a.max(b),
            "{feed} does not scale with the rate: {a} vs {b}"
        );
    }
}

#[test]
fn feed_files_read_back_through_the_file_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("feeds");
    let counts = write_feed_files(&out, CityConfig::default(), 3000).expect("write feed files");
    assert_eq!(counts.total(), 3000);
    let mut source =
        FileSource::open(&citybrain_connectors::Catalog::city(), &out, 500).expect("open");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut per_feed: HashMap<Feed, u64> = HashMap::new();
    let pseudonymizer = Arc::new(Pseudonymizer::new(b"k"));
    while let Some(batch) = rt.block_on(source.next_batch()).expect("next batch") {
        assert!(batch.records.len() <= 500);
        let decoded = Decoder::new(batch.feed.clone(), Arc::clone(&pseudonymizer)).decode(&batch);
        assert!(decoded.dead.is_empty(), "dead letters in {}", batch.feed);
        *per_feed.entry(batch.feed.clone()).or_default() += batch.records.len() as u64;
    }
    for feed in city_feeds() {
        assert_eq!(
            per_feed.get(&feed).copied().unwrap_or(0),
            counts.get(&feed),
            "{feed}"
        );
    }
    let progress = source.progress().expect("file progress");
    assert_eq!(Some(progress.done_bytes), progress.total_bytes);
}

#[test]
fn simulator_source_respects_limit_and_batch_size() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let mut source = SimulatorSource::new(CityConfig::default(), None, Some(2500), 300);
    let mut seqs = Vec::new();
    while let Some(batch) = rt.block_on(source.next_batch()).expect("next batch") {
        assert!(!batch.records.is_empty() && batch.records.len() <= 300);
        for r in &batch.records {
            let Origin::Simulator { seq } = r.origin else {
                panic!("simulator origin expected, got {:?}", r.origin)
            };
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (0..2500).collect::<Vec<u64>>());
    assert!(
        rt.block_on(source.next_batch())
            .expect("after end")
            .is_none()
    );

    // Same events as the simulator itself.
    let mut source = SimulatorSource::new(CityConfig::default(), None, Some(10), 1);
    let expected = generate(CityConfig::default(), 10);
    for (feed, payload) in expected {
        let batch = rt
            .block_on(source.next_batch())
            .expect("next")
            .expect("batch");
        assert_eq!(batch.feed, feed);
        assert_eq!(batch.records[0].payload, Bytes::from(payload));
    }
}

#[test]
fn paced_simulator_source_flushes_partial_batches_promptly() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    // 1000 events/s with huge batches: only the 50 ms flush can hand batches out.
    let mut source = SimulatorSource::new(CityConfig::default(), Some(1000.0), Some(400), 1 << 20);
    rt.block_on(async {
        let start = tokio::time::Instant::now();
        let first = source.next_batch().await.expect("next").expect("batch");
        let waited = start.elapsed();
        assert!(
            waited >= std::time::Duration::from_millis(50)
                && waited < std::time::Duration::from_millis(60),
            "first batch after {waited:?}"
        );
        // About 51 events were due in those 50 ms; the first batch holds one feed's share.
        assert!(
            (20..=51).contains(&first.records.len()),
            "{} records",
            first.records.len()
        );
        let mut total = first.records.len();
        while let Some(batch) = source.next_batch().await.expect("next") {
            total += batch.records.len();
        }
        assert_eq!(total, 400);
        let elapsed = start.elapsed();
        assert!(
            elapsed.as_secs_f64() >= 0.39 && elapsed.as_secs_f64() < 0.5,
            "{elapsed:?}"
        );
    });
}

/// The city's feeds, in the shipped catalog's order.
fn city_feeds() -> Vec<Feed> {
    citybrain_connectors::Catalog::city().tables().to_vec()
}

/// The city feed called `name`.
fn city(name: &str) -> Feed {
    citybrain_connectors::Catalog::city()
        .table(name)
        .expect("a city feed")
        .clone()
}
