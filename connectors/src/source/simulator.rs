//! A deterministic simulated city producing events in all four feeds.
//!
//! The city is centred on (30.25, 120.17) and spans about 10 km each way, the core of a
//! mid-sized city (about 1.5 million people). Road sensors cluster around a few hotspots
//! (squares, stations, business districts). Traffic is heavier and slower in the rush hours
//! (07–09 and 17–19, simulated UTC hours) and thin at night; in the rush hours two bottleneck
//! roads ([`BOTTLENECK_ROADS`]) turn stop-and-go.
//!
//! Volumes are those of a real city, whatever [`CityConfig::events_per_sim_second`] says:
//! police reports, emergency calls, market events and background traffic accidents come at fixed
//! rates per simulated hour ([`POLICE_PER_HOUR`], [`EMERGENCY_PER_HOUR`], [`MARKET_PER_HOUR`],
//! [`ACCIDENTS_PER_HOUR`], scaled by the time of day), and traffic sensor readings fill the rest
//! of the configured rate (over 99 % of events at the default rate, as in a real city).
//!
//! On top of the background the simulator stages incidents that rules are meant to find, each
//! recurring:
//!
//! - an accident burst (every 20–40 minutes, at a random hotspot): several traffic accidents on
//!   one road, police `traffic_accident` reports and medical calls nearby within minutes, and
//!   stop-and-go traffic on that road for 20–30 minutes;
//! - a fight burst in the nightlife area (Nanshan Road): many `fight`/`assault`/`disturbance`
//!   reports within minutes and a few medical calls; about every 45 minutes in the evening and
//!   at night, every few hours in the daytime;
//! - a food-safety problem: repeated complaints about one merchant, then a failed inspection;
//!   the first is merchant [`FOOD_SAFETY_MERCHANT`], later ones (every few hours) it or another;
//! - a repeated caller: the same phone calling the emergency line every few minutes (about
//!   hourly);
//! - a slow response: a severe call whose responders took over 15 minutes (about every
//!   40 minutes; background calls are rarely that slow).
//!
//! The first of each incident starts within the first three simulated minutes so that short
//! demos show them. Event time advances by exponential gaps; some events carry a time up to
//! 2 s before the simulator's clock (never more) to exercise watermarks. Output depends only on
//! [`CityConfig`]: the same seed gives the same bytes.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, FixedOffset, SecondsFormat};
use tokio::time::Instant;

use crate::catalog::Catalog;
use crate::feed::Feed;
use crate::record::{Origin, RawBatch, RawRecord};
use crate::source::Source;
use crate::{Error, Result};

/// The city's four feeds, as the simulator writes them (their declarations are
/// `feeds/city.sql`, [`Catalog::city`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum City {
    Traffic,
    Police,
    Emergency,
    Market,
}

impl City {
    const ALL: [City; 4] = [City::Traffic, City::Police, City::Emergency, City::Market];

    fn name(self) -> &'static str {
        ["traffic", "police", "emergency", "market"][self as usize]
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The city catalog's tables, in [`City`] order.
fn city_feeds() -> [Feed; 4] {
    let city = Catalog::city();
    City::ALL.map(|c| {
        city.table(c.name())
            .unwrap_or_else(|| panic!("feeds/city.sql declares {}", c.name()))
            .clone()
    })
}

/// The merchant with the (first) staged food-safety problem.
pub const FOOD_SAFETY_MERCHANT: &str = "M0042";

/// Police incident reports per simulated hour in daytime (half at night, a fifth more in the
/// evening): about 50 calls an hour for 1.5 million people, of which most become a report.
pub const POLICE_PER_HOUR: f64 = 36.0;
/// Emergency calls (medical, fire, rescue, hazmat) per simulated hour in daytime (60 % at night).
pub const EMERGENCY_PER_HOUR: f64 = 24.0;
/// Market supervision events (complaints and inspections) per simulated hour while shops are
/// open (08–22); a seventh of that at night.
pub const MARKET_PER_HOUR: f64 = 12.0;
/// Background traffic accidents reported by sensors and cameras per simulated hour in daytime
/// (1.6 times in the rush hours, a third at night), besides the staged accident bursts.
pub const ACCIDENTS_PER_HOUR: f64 = 6.0;
/// Road numbers (`R001` is 0) that turn stop-and-go in the rush hours: the main road at Wulin
/// Square and the one at the East Railway Station.
pub const BOTTLENECK_ROADS: [usize; 2] = [0, 6];

/// Configuration of the simulated city.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CityConfig {
    /// Seed of the pseudo-random generator; the same seed gives the same events. Default 42.
    pub seed: u64,
    /// Simulated time of the first event, epoch milliseconds. Default 2026-03-02T06:00:00Z,
    /// a Monday, one hour before the morning rush.
    pub start_ms: i64,
    /// Simulated seconds per wall second when paced (used by callers that pace by simulated
    /// time). Default 60: an hour of city in a minute.
    pub sim_speed: f64,
    /// Mean events per simulated second in daytime (rush hours about 1.4 times as many, night
    /// about a third). Default 200. Police, emergency and market events and background
    /// accidents come at fixed rates per simulated hour (see the module docs); traffic sensor
    /// readings make up the rest, so this sets the density of readings only.
    pub events_per_sim_second: f64,
}

impl CityConfig {
    /// 2026-03-02T06:00:00Z.
    pub const DEFAULT_START_MS: i64 = 1_772_431_200_000;

    /// The default configuration with another seed.
    pub const fn with_seed(seed: u64) -> Self {
        Self {
            seed,
            start_ms: Self::DEFAULT_START_MS,
            sim_speed: 60.0,
            events_per_sim_second: 200.0,
        }
    }

    /// Wall events per second that play the city at `sim_speed`.
    pub fn paced_rate(&self) -> f64 {
        self.sim_speed * self.events_per_sim_second
    }
}

impl Default for CityConfig {
    fn default() -> Self {
        Self::with_seed(42)
    }
}

/// Events written per feed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedCounts {
    pub traffic: u64,
    pub police: u64,
    pub emergency: u64,
    pub market: u64,
}

impl FeedCounts {
    /// The count of the city feed `feed` (0 for any other).
    pub fn get(&self, feed: &Feed) -> u64 {
        match feed.name() {
            "traffic" => self.traffic,
            "police" => self.police,
            "emergency" => self.emergency,
            "market" => self.market,
            _ => 0,
        }
    }

    /// Adds `n` events of the city feed `feed` (nothing for any other).
    pub fn add_n(&mut self, feed: &Feed, n: u64) {
        match feed.name() {
            "traffic" => self.traffic += n,
            "police" => self.police += n,
            "emergency" => self.emergency += n,
            "market" => self.market += n,
            _ => {}
        }
    }

    /// Events in all feeds.
    pub fn total(&self) -> u64 {
        self.traffic + self.police + self.emergency + self.market
    }

    fn add(&mut self, feed: City) {
        match feed {
            City::Traffic => self.traffic += 1,
            City::Police => self.police += 1,
            City::Emergency => self.emergency += 1,
            City::Market => self.market += 1,
        }
    }
}

/// Writes `DIR/{feed}.jsonl` with the first `events` events of the simulated city (all four
/// files, possibly empty), creating `dir` if needed.
///
/// # Errors
///
/// [`Error::CreateDir`], [`Error::CreateFile`] or [`Error::WriteFile`] naming the path.
pub fn write_feed_files(dir: &Path, cfg: CityConfig, events: u64) -> Result<FeedCounts> {
    std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files = Vec::with_capacity(City::ALL.len());
    for feed in City::ALL {
        let path = dir.join(format!("{}.jsonl", feed.name()));
        let file = File::create(&path).map_err(|source| Error::CreateFile {
            path: path.clone(),
            source,
        })?;
        files.push((path, BufWriter::with_capacity(1 << 20, file)));
    }
    let mut sim = CitySimulator::new(cfg);
    let mut counts = FeedCounts::default();
    let mut line = Vec::with_capacity(512);
    for _ in 0..events {
        line.clear();
        let feed = sim.next_city(&mut line);
        line.push(b'\n');
        let (path, writer) = &mut files[feed.index()];
        writer.write_all(&line).map_err(|source| Error::WriteFile {
            path: path.clone(),
            source,
        })?;
        counts.add(feed);
    }
    for (path, mut writer) in files {
        writer.flush().map_err(|source| Error::WriteFile {
            path: path.clone(),
            source,
        })?;
    }
    Ok(counts)
}

/// The simulated city: call [`CitySimulator::next_event`] for one event after another.
pub struct CitySimulator {
    /// The city catalog's feeds, in [`City`] order.
    feeds: [Feed; 4],
    rng: SplitMix64,
    events_per_sim_second: f64,
    /// Simulated clock, epoch milliseconds.
    clock_ms: f64,
    /// Events generated per feed (for event ids).
    counters: [u64; 4],
    incidents: u64,
    calls: u64,
    sensors: Vec<Sensor>,
    merchants: Vec<Merchant>,
    planned: BinaryHeap<Planned>,
    planned_seq: u64,
    /// (road number, until ms): traffic on the road is stop-and-go until then.
    congestion: Vec<(usize, f64)>,
    next_accident_ms: f64,
    next_fight_ms: f64,
    next_food_ms: f64,
    next_caller_ms: f64,
    next_slow_ms: f64,
    food_episodes: u64,
}

const CENTRE: (f64, f64) = (30.25, 120.17);
/// Degrees per metre, north-south and east-west at latitude 30.
const DEG_PER_M_LAT: f64 = 1.0 / 111_000.0;
const DEG_PER_M_LON: f64 = 1.0 / 96_000.0;

/// Where traffic and incidents concentrate.
const HOTSPOTS: [(f64, f64); 7] = [
    (30.2741, 120.1646), // Wulin Square
    (30.2590, 120.1630), // Hubin, West Lake shore
    (30.2905, 120.2130), // East Railway Station
    (30.2460, 120.2110), // Qianjiang New Town
    (30.2085, 120.2120), // Binjiang
    (30.2720, 120.1300), // Huanglong
    (30.2440, 120.1820), // City Station
];
/// Nanshan Road bars: the nightlife area, well inside one H3 resolution-7 cell (the nearest
/// cell edge is about 800 m away) so that a fight burst counts in one cell.
const NIGHTLIFE: (f64, f64) = (30.2380, 120.1560);
/// Hefang Street: many small merchants.
const MARKET_STREET: (f64, f64) = (30.2410, 120.1680);

const SENSORS: usize = 320;
const MERCHANTS: usize = 300;
const FLUSH_AFTER: Duration = Duration::from_millis(50);

struct Sensor {
    id: String,
    road: String,
    /// Road number (`road` is `R{road_no + 1:03}`).
    road_no: usize,
    lat: f64,
    lon: f64,
    hotspot: Option<usize>,
    /// Free-flow speed of the road, km/h.
    free_speed: f64,
    /// Vehicles per minute in daytime.
    base_flow: f64,
    /// Plate-reading camera (flow events may carry a plate).
    camera: bool,
}

struct Merchant {
    id: String,
    name: String,
    lat: f64,
    lon: f64,
}

/// The kind of a background (not staged) event.
#[derive(Clone, Copy)]
enum Background {
    Traffic,
    Accident,
    Police,
    Emergency,
    Market,
}

/// An event staged for a later simulated time.
struct Planned {
    at_ms: f64,
    seq: u64,
    event: PlannedEvent,
}

enum PlannedEvent {
    Accident {
        sensor: usize,
        at: (f64, f64),
    },
    Police {
        at: (f64, f64),
        category: &'static str,
        priority: i64,
    },
    Emergency(Call),
    Market {
        merchant: usize,
        category: &'static str,
        inspection_result: Option<&'static str>,
    },
}

/// One emergency call to write.
struct Call {
    at: (f64, f64),
    service: &'static str,
    severity: i64,
    phone: Option<String>,
    id_no: Option<String>,
    /// Responders took longer than 15 minutes.
    slow: bool,
}

impl PartialEq for Planned {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Planned {}
impl PartialOrd for Planned {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Planned {
    /// Reversed: the earliest plan is the greatest, on top of the max-heap.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .at_ms
            .total_cmp(&self.at_ms)
            .then(other.seq.cmp(&self.seq))
    }
}

const MINUTE: f64 = 60_000.0;
const HOUR: f64 = 60.0 * MINUTE;
const DAY: f64 = 24.0 * HOUR;

impl CitySimulator {
    /// A city as configured; the same configuration gives the same events.
    pub fn new(cfg: CityConfig) -> Self {
        let mut rng = SplitMix64::new(cfg.seed);
        let sensors = (0..SENSORS).map(|i| Sensor::random(&mut rng, i)).collect();
        let merchants = (0..MERCHANTS)
            .map(|i| Merchant::random(&mut rng, i))
            .collect();
        #[allow(clippy::cast_precision_loss)] // epoch ms fit f64 exactly
        let start = cfg.start_ms as f64;
        Self {
            feeds: city_feeds(),
            rng,
            events_per_sim_second: cfg.events_per_sim_second.max(1e-3),
            clock_ms: start,
            counters: [0; 4],
            incidents: 0,
            calls: 0,
            sensors,
            merchants,
            planned: BinaryHeap::new(),
            planned_seq: 0,
            congestion: Vec::new(),
            // The first of each incident early, so that short demos and tests show them.
            next_accident_ms: start + 20_000.0,
            next_slow_ms: start + 45_000.0,
            next_caller_ms: start + 60_000.0,
            next_food_ms: start + 90_000.0,
            next_fight_ms: start + 150_000.0,
            food_episodes: 0,
        }
    }

    /// The simulated clock, epoch milliseconds.
    #[allow(clippy::cast_possible_truncation)]
    pub fn clock_ms(&self) -> i64 {
        self.clock_ms as i64
    }

    /// Appends one event (a JSON object, no newline) to `out` and returns its feed (a table
    /// of [`Catalog::city`]).
    pub fn next_event(&mut self, out: &mut Vec<u8>) -> &Feed {
        let city = self.next_city(out);
        &self.feeds[city.index()]
    }

    /// [`CitySimulator::next_event`], naming the feed by the simulator's own enum.
    fn next_city(&mut self, out: &mut Vec<u8>) -> City {
        let hour = self.hour();
        let factor = match hour {
            7..=8 | 17..=18 => 1.4,
            22..=23 | 0..=5 => 0.35,
            6 => 0.8,
            _ => 1.0,
        };
        let events_per_s = self.events_per_sim_second * factor;
        self.clock_ms += self.rng.exp(1000.0 / events_per_s);
        self.start_incidents(hour);
        if self
            .planned
            .peek()
            .is_some_and(|p| p.at_ms <= self.clock_ms)
            && let Some(planned) = self.planned.pop()
        {
            return self.write_planned(out, planned.event);
        }
        match self.background_kind(hour, events_per_s) {
            Background::Traffic => {
                let sensor = self.rng.below(self.sensors.len());
                let kind = if self.rng.chance(0.026) {
                    "violation"
                } else {
                    "flow"
                };
                self.write_traffic(out, sensor, kind, None)
            }
            Background::Accident => {
                let sensor = self.rng.below(self.sensors.len());
                self.write_traffic(out, sensor, "accident", None)
            }
            Background::Police => {
                let at = self.random_place(0.6, 500.0);
                let (category, priority) = self.police_category();
                self.write_police(out, at, category, priority)
            }
            Background::Emergency => {
                let at = self.random_place(0.5, 800.0);
                let service =
                    ["medical", "fire", "rescue", "hazmat"][self.rng.weighted(&[68, 14, 12, 6])];
                let severity = [1, 2, 3, 4, 5][self.rng.weighted(&[25, 30, 25, 14, 6])];
                let phone = self.rng.chance(0.95).then(|| self.rng.phone());
                let id_no = self.rng.chance(0.35).then(|| self.rng.id_number());
                let call = Call {
                    at,
                    service,
                    severity,
                    phone,
                    id_no,
                    slow: false,
                };
                self.write_emergency(out, call)
            }
            Background::Market => {
                let merchant = self.rng.below(self.merchants.len());
                let category = ["food_safety", "price", "counterfeit", "license", "quality"]
                    [self.rng.weighted(&[20, 30, 15, 10, 25])];
                let result = if self.rng.chance(0.25) {
                    Some(if self.rng.chance(0.92) {
                        "pass"
                    } else {
                        "fail"
                    })
                } else {
                    None
                };
                self.write_market(out, merchant, category, result)
            }
        }
    }

    /// What the next background event is. Departments' events come at their rates per
    /// simulated hour whatever the total rate `events_per_s`; traffic readings fill the rest
    /// (and at least half, should the configured rate be tiny).
    fn background_kind(&mut self, hour: u32, events_per_s: f64) -> Background {
        let police = match hour {
            0..=5 => 0.5,
            6 => 0.7,
            19..=23 => 1.2,
            _ => 1.0,
        };
        let emergency = if hour <= 5 { 0.6 } else { 1.0 };
        let market = if (8..=21).contains(&hour) { 1.0 } else { 0.15 };
        let accidents = match hour {
            7..=8 | 17..=18 => 1.6,
            22..=23 | 0..=5 => 0.3,
            _ => 1.0,
        };
        let per_hour = [
            (Background::Police, POLICE_PER_HOUR * police),
            (Background::Emergency, EMERGENCY_PER_HOUR * emergency),
            (Background::Market, MARKET_PER_HOUR * market),
            (Background::Accident, ACCIDENTS_PER_HOUR * accidents),
        ];
        let total: f64 = per_hour.iter().map(|(_, r)| r).sum::<f64>() / 3600.0;
        let scale = 1.0 / events_per_s.max(2.0 * total) / 3600.0;
        let mut r = self.rng.unit();
        for (kind, rate) in per_hour {
            let p = rate * scale;
            if r < p {
                return kind;
            }
            r -= p;
        }
        Background::Traffic
    }

    /// Hour of the day (UTC) on the simulated clock.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    fn hour(&self) -> u32 {
        ((self.clock_ms / HOUR).floor().rem_euclid(24.0)) as u32
    }

    fn plan(&mut self, delay_ms: f64, event: PlannedEvent) {
        self.planned_seq += 1;
        self.planned.push(Planned {
            at_ms: self.clock_ms + delay_ms,
            seq: self.planned_seq,
            event,
        });
    }

    /// Stages the incidents whose time has come.
    fn start_incidents(&mut self, hour: u32) {
        let now = self.clock_ms;
        if now >= self.next_accident_ms {
            self.accident_burst();
            self.next_accident_ms = now + self.rng.range(20.0 * MINUTE, 40.0 * MINUTE);
        }
        if now >= self.next_fight_ms {
            self.fight_burst();
            let night = matches!(hour, 19..=23 | 0..=2);
            let mean = if night { 35.0 * MINUTE } else { 3.0 * HOUR };
            let mut next = now + 10.0 * MINUTE + self.rng.exp(mean);
            if !night {
                // Nightlife wakes up at 19:00 whenever the last daytime fight was.
                let evening = (now / DAY).floor() * DAY + 19.0 * HOUR;
                if next > evening {
                    next = evening + self.rng.range(0.0, 30.0 * MINUTE);
                }
            }
            self.next_fight_ms = next;
        }
        if now >= self.next_food_ms {
            self.food_safety_episode();
            self.next_food_ms = now + HOUR + self.rng.exp(3.0 * HOUR);
        }
        if now >= self.next_caller_ms {
            self.repeated_caller();
            self.next_caller_ms = now + 30.0 * MINUTE + self.rng.exp(40.0 * MINUTE);
        }
        if now >= self.next_slow_ms {
            self.slow_response();
            self.next_slow_ms = now + 10.0 * MINUTE + self.rng.exp(30.0 * MINUTE);
        }
    }

    fn accident_burst(&mut self) {
        let hotspot = self.rng.below(HOTSPOTS.len());
        let candidates: Vec<usize> = (0..self.sensors.len())
            .filter(|&i| self.sensors[i].hotspot == Some(hotspot))
            .collect();
        let sensor = if candidates.is_empty() {
            0
        } else {
            candidates[self.rng.below(candidates.len())]
        };
        let s = &self.sensors[sensor];
        let (place, road) = ((s.lat, s.lon), s.road_no);
        let centre = self.rng.near(place, 50.0);
        self.congestion.retain(|&(_, until)| until > self.clock_ms);
        let until = self.clock_ms + self.rng.range(20.0 * MINUTE, 30.0 * MINUTE);
        self.congestion.push((road, until));
        for _ in 0..3 + self.rng.below(4) {
            let delay = self.rng.range(0.0, 3.0 * MINUTE);
            let at = self.rng.near(centre, 60.0);
            self.plan(delay, PlannedEvent::Accident { sensor, at });
        }
        for _ in 0..2 + self.rng.below(3) {
            let delay = self.rng.range(MINUTE, 6.0 * MINUTE);
            let at = self.rng.near(centre, 150.0);
            self.plan(
                delay,
                PlannedEvent::Police {
                    at,
                    category: "traffic_accident",
                    priority: 2,
                },
            );
        }
        for _ in 0..1 + self.rng.below(3) {
            let delay = self.rng.range(MINUTE, 8.0 * MINUTE);
            let at = self.rng.near(centre, 150.0);
            let severity = 3 + i64::from(self.rng.chance(0.4));
            let phone = Some(self.rng.phone());
            self.plan(
                delay,
                PlannedEvent::Emergency(Call {
                    at,
                    service: "medical",
                    severity,
                    phone,
                    id_no: None,
                    slow: false,
                }),
            );
        }
    }

    fn fight_burst(&mut self) {
        let centre = self.rng.near(NIGHTLIFE, 80.0);
        // Many bystanders report the same brawl within minutes.
        for _ in 0..7 + self.rng.below(5) {
            let delay = self.rng.range(0.0, 6.0 * MINUTE);
            let at = self.rng.near(centre, 100.0);
            let category = ["fight", "assault", "disturbance"][self.rng.weighted(&[5, 2, 3])];
            let priority = if category == "disturbance" { 2 } else { 1 };
            self.plan(
                delay,
                PlannedEvent::Police {
                    at,
                    category,
                    priority,
                },
            );
        }
        for _ in 0..1 + self.rng.below(2) {
            let delay = self.rng.range(2.0 * MINUTE, 12.0 * MINUTE);
            let at = self.rng.near(centre, 100.0);
            let severity = 2 + i64::from(self.rng.chance(0.5));
            let phone = Some(self.rng.phone());
            self.plan(
                delay,
                PlannedEvent::Emergency(Call {
                    at,
                    service: "medical",
                    severity,
                    phone,
                    id_no: None,
                    slow: false,
                }),
            );
        }
    }

    fn food_safety_episode(&mut self) {
        self.food_episodes += 1;
        let merchant = if self.food_episodes == 1 || self.rng.chance(0.3) {
            FOOD_SAFETY_MERCHANT_INDEX
        } else {
            self.rng.below(self.merchants.len())
        };
        for _ in 0..5 + self.rng.below(4) {
            let delay = self.rng.range(0.0, 10.0 * MINUTE);
            self.plan(
                delay,
                PlannedEvent::Market {
                    merchant,
                    category: "food_safety",
                    inspection_result: None,
                },
            );
        }
        let delay = self.rng.range(11.0 * MINUTE, 14.0 * MINUTE);
        self.plan(
            delay,
            PlannedEvent::Market {
                merchant,
                category: "food_safety",
                inspection_result: Some("fail"),
            },
        );
    }

    fn repeated_caller(&mut self) {
        let phone = self.rng.phone();
        let id_no = self.rng.id_number();
        let home = self.random_place(0.3, 1500.0);
        // Calls back every half minute to three minutes.
        let mut delay = 0.0;
        for _ in 0..5 + self.rng.below(4) {
            let at = self.rng.near(home, 30.0);
            let service = if self.rng.chance(0.8) {
                "medical"
            } else {
                "rescue"
            };
            let severity = 1 + i64::from(self.rng.chance(0.3));
            let id_no = self.rng.chance(0.5).then(|| id_no.clone());
            self.plan(
                delay,
                PlannedEvent::Emergency(Call {
                    at,
                    service,
                    severity,
                    phone: Some(phone.clone()),
                    id_no,
                    slow: false,
                }),
            );
            delay += self.rng.range(0.5 * MINUTE, 3.0 * MINUTE);
        }
    }

    /// A severe call whose responders are held up for more than 15 minutes.
    fn slow_response(&mut self) {
        let at = self.random_place(0.4, 1500.0);
        let service = if self.rng.chance(0.7) {
            "medical"
        } else {
            "fire"
        };
        let severity = 4 + i64::from(self.rng.chance(0.4));
        let phone = Some(self.rng.phone());
        self.plan(
            0.0,
            PlannedEvent::Emergency(Call {
                at,
                service,
                severity,
                phone,
                id_no: None,
                slow: true,
            }),
        );
    }

    fn write_planned(&mut self, out: &mut Vec<u8>, event: PlannedEvent) -> City {
        match event {
            PlannedEvent::Accident { sensor, at } => {
                self.write_traffic(out, sensor, "accident", Some(at))
            }
            PlannedEvent::Police {
                at,
                category,
                priority,
            } => self.write_police(out, at, category, priority),
            PlannedEvent::Emergency(call) => self.write_emergency(out, call),
            PlannedEvent::Market {
                merchant,
                category,
                inspection_result,
            } => self.write_market(out, merchant, category, inspection_result),
        }
    }

    /// A point near a random hotspot with probability `p_hotspot`, else anywhere in the city.
    fn random_place(&mut self, p_hotspot: f64, spread_m: f64) -> (f64, f64) {
        if self.rng.chance(p_hotspot) {
            let hotspot = HOTSPOTS[self.rng.below(HOTSPOTS.len())];
            self.rng.near(hotspot, spread_m)
        } else {
            self.rng.anywhere()
        }
    }

    fn police_category(&mut self) -> (&'static str, i64) {
        const CATEGORIES: [(&str, u32, i64); 9] = [
            ("theft", 28, 3),
            ("disturbance", 18, 3),
            ("traffic_accident", 12, 2),
            ("fraud", 12, 4),
            ("noise", 10, 4),
            ("fight", 6, 2),
            ("suspicious_person", 6, 3),
            ("assault", 5, 1),
            ("lost_property", 3, 4),
        ];
        let weights = CATEGORIES.map(|(_, w, _)| w);
        let (category, _, priority) = CATEGORIES[self.rng.weighted(&weights)];
        let priority = if self.rng.chance(0.15) {
            (priority - 1).max(1)
        } else {
            priority
        };
        (category, priority)
    }

    /// Starts an event: bumps the feed's counter and writes the four core fields.
    fn begin<'o>(&mut self, out: &'o mut Vec<u8>, feed: City, at: (f64, f64)) -> Obj<'o> {
        let counter = &mut self.counters[feed.index()];
        *counter += 1;
        let prefix = &feed.name()[..1];
        let mut obj = Obj::new(out);
        obj.key("event_id");
        obj.raw(format_args!("\"{prefix}-{counter:06}\""));
        obj.key("ts");
        // Small disorder: some events are stamped up to 2 s before the clock.
        #[allow(clippy::cast_possible_truncation)]
        let mut ts = self.clock_ms.floor() as i64;
        if self.rng.chance(0.05) {
            ts -= i64::try_from(self.rng.below(2001)).unwrap_or(0);
        }
        let style = self.rng.unit();
        match DateTime::from_timestamp_millis(ts) {
            Some(t) if style < 0.80 => {
                obj.raw(format_args!(
                    "\"{}\"",
                    t.to_rfc3339_opts(SecondsFormat::Millis, true)
                ));
            }
            Some(t) if style < 0.85 => {
                let local = FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
                obj.raw(format_args!(
                    "\"{}\"",
                    t.with_timezone(&local)
                        .to_rfc3339_opts(SecondsFormat::Millis, false)
                ));
            }
            _ => obj.raw(format_args!("{ts}")),
        }
        obj.key("lat");
        obj.raw(format_args!("{:.6}", at.0));
        obj.key("lon");
        obj.raw(format_args!("{:.6}", at.1));
        obj
    }

    fn write_traffic(
        &mut self,
        out: &mut Vec<u8>,
        sensor: usize,
        kind: &'static str,
        at: Option<(f64, f64)>,
    ) -> City {
        let hour = self.hour();
        let s = &self.sensors[sensor];
        let (lat, lon, free_speed, base_flow, camera, road) =
            (s.lat, s.lon, s.free_speed, s.base_flow, s.camera, s.road_no);
        let rush = matches!(hour, 7..=8 | 17..=18);
        let night = matches!(hour, 22..=23 | 0..=5);
        let after_accident = self
            .congestion
            .iter()
            .any(|&(r, until)| r == road && until > self.clock_ms);
        let congested = after_accident || (rush && BOTTLENECK_ROADS.contains(&road));
        // Rush hours slow every road, yet most stay above 20 km/h; a congested road crawls.
        let mut speed_factor = if rush {
            0.6
        } else if night {
            1.1
        } else {
            0.85
        };
        if congested {
            speed_factor *= if rush { 0.4 } else { 0.25 };
        }
        let flow_factor = if rush {
            1.8
        } else if night {
            0.25
        } else {
            1.0
        };
        let speed = match kind {
            "accident" => self.rng.range(0.0, 15.0),
            _ => (free_speed * speed_factor * (1.0 + 0.12 * self.rng.normal())).max(2.0),
        };
        let count = (base_flow * flow_factor * (1.0 + 0.2 * self.rng.normal())).max(0.0);
        let occupancy = (count / 60.0 * (if congested { 1.8 } else { 1.0 })
            + 0.05 * self.rng.unit())
        .clamp(0.0, 1.0);
        let plate = match kind {
            "violation" => true,
            "accident" => self.rng.chance(0.7),
            _ => camera && self.rng.chance(0.5),
        }
        .then(|| self.rng.plate());
        let speed = (!self.rng.chance(0.02)).then_some(speed);
        let count = (!self.rng.chance(0.01)).then_some(count.round());
        let occupancy = (!self.rng.chance(0.05)).then_some(occupancy);
        let extra = self.rng.chance(0.01);
        let at = at.unwrap_or((lat, lon));
        let mut obj = self.begin(out, City::Traffic, at);
        let s = &self.sensors[sensor];
        obj.str("sensor_id", Some(&s.id));
        obj.str("road_id", Some(&s.road));
        obj.float("speed_kmh", speed, 1);
        obj.float("vehicle_count", count, 0);
        obj.float("occupancy", occupancy, 3);
        obj.str("plate", plate.as_deref());
        obj.str("kind", Some(kind));
        if extra {
            // Producers may add fields of their own; the standard ignores them.
            obj.str("firmware", Some("4.2.1"));
        }
        obj.end();
        City::Traffic
    }

    fn write_police(
        &mut self,
        out: &mut Vec<u8>,
        at: (f64, f64),
        category: &'static str,
        priority: i64,
    ) -> City {
        self.incidents += 1;
        let incident = format!("INC{:07}", self.incidents);
        let phone = self.rng.chance(0.8).then(|| self.rng.phone());
        let mut obj = self.begin(out, City::Police, at);
        obj.str("incident_id", Some(&incident));
        obj.str("category", Some(category));
        obj.int("priority", Some(priority));
        obj.str("reporter_phone", phone.as_deref());
        obj.end();
        City::Police
    }

    fn write_emergency(&mut self, out: &mut Vec<u8>, call: Call) -> City {
        let Call {
            at,
            service,
            severity,
            phone,
            id_no,
            slow,
        } = call;
        self.calls += 1;
        let call_id = format!("C{:08}", self.calls);
        #[allow(clippy::cast_precision_loss)]
        let response = if slow {
            self.rng.range(960.0, 2400.0)
        } else if self.rng.chance(0.02) {
            self.rng.range(900.0, 2400.0)
        } else {
            // Log-normal around 7 minutes, faster for severe calls.
            let median = 420.0 - 40.0 * (severity - 1) as f64;
            (median * (0.35 * self.rng.normal()).exp()).clamp(60.0, 890.0)
        };
        let response = (slow || !self.rng.chance(0.08)).then_some(response);
        let mut obj = self.begin(out, City::Emergency, at);
        obj.str("call_id", Some(&call_id));
        obj.str("service", Some(service));
        obj.int("severity", Some(severity));
        obj.str("caller_phone", phone.as_deref());
        obj.str("caller_id_no", id_no.as_deref());
        obj.float("response_s", response, 1);
        obj.end();
        City::Emergency
    }

    fn write_market(
        &mut self,
        out: &mut Vec<u8>,
        merchant: usize,
        category: &'static str,
        inspection_result: Option<&'static str>,
    ) -> City {
        let complaint = inspection_result.is_none();
        let phone = (complaint && self.rng.chance(0.9)).then(|| self.rng.phone());
        let amount = (complaint
            && matches!(category, "price" | "counterfeit" | "quality")
            && self.rng.chance(0.8))
        .then(|| self.rng.range(20.0, 2000.0));
        let m = &self.merchants[merchant];
        let (lat, lon) = (m.lat, m.lon);
        let mut obj = self.begin(out, City::Market, (lat, lon));
        let m = &self.merchants[merchant];
        obj.str("merchant_id", Some(&m.id));
        obj.str("merchant_name", Some(&m.name));
        obj.str("category", Some(category));
        obj.str(
            "kind",
            Some(if complaint { "complaint" } else { "inspection" }),
        );
        obj.str("complainant_phone", phone.as_deref());
        obj.float("amount_cny", amount, 2);
        obj.str("result", inspection_result);
        obj.end();
        City::Market
    }
}

/// Index of [`FOOD_SAFETY_MERCHANT`] in the merchant list (ids are 1-based).
const FOOD_SAFETY_MERCHANT_INDEX: usize = 41;

impl Sensor {
    fn random(rng: &mut SplitMix64, i: usize) -> Self {
        let hotspot = rng.chance(0.6).then(|| rng.below(HOTSPOTS.len()));
        let (lat, lon) = match hotspot {
            Some(h) => rng.near(HOTSPOTS[h], 600.0),
            None => rng.anywhere(),
        };
        let road = match hotspot {
            Some(h) => h * 3 + rng.below(3),
            None => 24 + rng.below(36),
        };
        Self {
            id: format!("S{:04}", i + 1),
            road: format!("R{:03}", road + 1),
            road_no: road,
            lat,
            lon,
            hotspot,
            free_speed: [40.0, 50.0, 60.0, 80.0][rng.below(4)],
            base_flow: rng.range(8.0, 40.0),
            camera: rng.chance(0.4),
        }
    }
}

impl Merchant {
    fn random(rng: &mut SplitMix64, i: usize) -> Self {
        const AREAS: [&str; 8] = [
            "湖滨", "武林", "钱江", "西溪", "运河", "南山", "城东", "滨江",
        ];
        const TRADES: [&str; 10] = [
            "面馆",
            "小吃店",
            "超市",
            "水果店",
            "海鲜排档",
            "奶茶店",
            "药房",
            "烧烤",
            "便利店",
            "服装店",
        ];
        let (lat, lon) = if rng.chance(0.3) {
            rng.near(MARKET_STREET, 300.0)
        } else {
            rng.anywhere()
        };
        let name = if i == FOOD_SAFETY_MERCHANT_INDEX {
            "运河海鲜大排档".to_owned()
        } else {
            format!(
                "{}{}",
                AREAS[rng.below(AREAS.len())],
                TRADES[rng.below(TRADES.len())]
            )
        };
        Self {
            id: format!("M{:04}", i + 1),
            name,
            lat,
            lon,
        }
    }
}

/// Writes one flat JSON object. Keys and string values are written as given: the simulator
/// only produces strings without characters that need escaping.
struct Obj<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> Obj<'o> {
    fn new(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn raw(&mut self, value: std::fmt::Arguments<'_>) {
        self.out
            .write_fmt(value)
            .expect("writing to a Vec cannot fail");
    }

    fn str(&mut self, key: &str, value: Option<&str>) {
        self.key(key);
        match value {
            Some(v) => {
                debug_assert!(!v.contains(['"', '\\']) && !v.chars().any(char::is_control));
                self.out.push(b'"');
                self.out.extend_from_slice(v.as_bytes());
                self.out.push(b'"');
            }
            None => self.out.extend_from_slice(b"null"),
        }
    }

    fn float(&mut self, key: &str, value: Option<f64>, decimals: usize) {
        self.key(key);
        match value {
            Some(v) => self.raw(format_args!("{v:.decimals$}")),
            None => self.out.extend_from_slice(b"null"),
        }
    }

    fn int(&mut self, key: &str, value: Option<i64>) {
        self.key(key);
        match value {
            Some(v) => self.raw(format_args!("{v}")),
            None => self.out.extend_from_slice(b"null"),
        }
    }

    fn end(self) {
        self.out.push(b'}');
    }
}

/// SplitMix64: small, fast, good enough for a simulation or a test's random input, and the
/// same everywhere (the simulators here, the incident desk's tests and benchmark).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5eed_c17b_4a1e_0001)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    #[allow(clippy::cast_precision_loss)]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n (n > 0).
    #[allow(clippy::cast_possible_truncation)]
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Exponential with the given mean.
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u = 1.0 - self.unit();
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Index drawn with the given weights.
    fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut r = u32::try_from(self.below(total as usize)).unwrap_or(0);
        for (i, &w) in weights.iter().enumerate() {
            if r < w {
                return i;
            }
            r -= w;
        }
        weights.len() - 1
    }

    /// A point within about `spread_m` metres (normal) of `centre`.
    fn near(&mut self, centre: (f64, f64), spread_m: f64) -> (f64, f64) {
        (
            centre.0 + self.normal() * spread_m * DEG_PER_M_LAT,
            centre.1 + self.normal() * spread_m * DEG_PER_M_LON,
        )
    }

    /// Uniform in the city, ±5 km around the centre.
    fn anywhere(&mut self) -> (f64, f64) {
        (
            CENTRE.0 + self.range(-5000.0, 5000.0) * DEG_PER_M_LAT,
            CENTRE.1 + self.range(-5000.0, 5000.0) * DEG_PER_M_LON,
        )
    }

    fn digits(&mut self, out: &mut String, n: usize) {
        for _ in 0..n {
            out.push(char::from(b'0' + u8::try_from(self.below(10)).unwrap_or(0)));
        }
    }

    /// A mainland mobile number such as `13812345678`.
    fn phone(&mut self) -> String {
        const PREFIXES: [&str; 10] = [
            "138", "139", "135", "136", "150", "151", "158", "186", "187", "199",
        ];
        let mut s = String::with_capacity(11);
        s.push_str(PREFIXES[self.below(PREFIXES.len())]);
        self.digits(&mut s, 8);
        s
    }

    /// A licence plate such as `浙A12345` or `浙AD1234`.
    fn plate(&mut self) -> String {
        const REGIONS: [&str; 5] = ["浙A", "浙A", "浙A", "浙B", "沪A"];
        const LETTERS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
        let mut s = String::with_capacity(12);
        s.push_str(REGIONS[self.below(REGIONS.len())]);
        let letters = self.below(3);
        for _ in 0..letters {
            s.push(char::from(LETTERS[self.below(LETTERS.len())]));
        }
        self.digits(&mut s, 5 - letters);
        s
    }

    /// An 18-character resident ID number with a valid ISO 7064 check character.
    fn id_number(&mut self) -> String {
        const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
        const CHECK: &[u8; 11] = b"10X98765432";
        const DISTRICTS: [&str; 4] = ["330102", "330105", "330106", "330108"];
        let mut s = String::with_capacity(18);
        s.push_str(DISTRICTS[self.below(DISTRICTS.len())]);
        let year = 1950 + self.below(56);
        let month = 1 + self.below(12);
        let day = 1 + self.below(28);
        s.push_str(&format!("{year:04}{month:02}{day:02}"));
        self.digits(&mut s, 3);
        let sum: u32 = s
            .bytes()
            .zip(WEIGHTS)
            .map(|(b, w)| u32::from(b - b'0') * w)
            .sum();
        s.push(char::from(CHECK[(sum % 11) as usize]));
        s
    }
}

/// The simulated city as a [`Source`], optionally paced and limited.
///
/// Events are collected per feed and a feed's batch is handed out when it holds `max_batch`
/// records or 50 ms (wall time) after its first record, so paced events flow promptly.
pub struct SimulatorSource {
    sim: CitySimulator,
    rate: Option<f64>,
    limit: Option<u64>,
    max_batch: usize,
    generated: u64,
    pending: [Pending; 4],
    started: Option<Instant>,
    scratch: Vec<u8>,
}

#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    /// (end offset in `buf`, sequence number) of each event.
    ends: Vec<(usize, u64)>,
    /// When the first pending event was generated.
    since: Option<Instant>,
}

impl SimulatorSource {
    /// A source playing `cfg`'s city. `rate` is wall events per second (`None`: as fast as
    /// possible; see [`CityConfig::paced_rate`]), `limit` the total events (`None`: endless),
    /// `max_batch` the most records per batch (at least 1).
    pub fn new(cfg: CityConfig, rate: Option<f64>, limit: Option<u64>, max_batch: usize) -> Self {
        Self {
            sim: CitySimulator::new(cfg),
            rate: rate.filter(|r| r.is_finite() && *r > 0.0),
            limit,
            max_batch: max_batch.max(1),
            generated: 0,
            pending: Default::default(),
            started: None,
            scratch: Vec::with_capacity(512),
        }
    }

    /// Events generated so far (some may still wait in a pending batch).
    pub fn generated(&self) -> u64 {
        self.generated
    }

    fn flush(&mut self, city: City) -> RawBatch {
        let feed = self.sim.feeds[city.index()].clone();
        let pending = &mut self.pending[city.index()];
        let capacity = pending.buf.capacity();
        let bytes = Bytes::from(std::mem::replace(
            &mut pending.buf,
            Vec::with_capacity(capacity),
        ));
        let mut start = 0;
        let records = pending
            .ends
            .drain(..)
            .map(|(end, seq)| {
                let payload = bytes.slice(start..end);
                start = end;
                RawRecord {
                    payload,
                    origin: Origin::Simulator { seq },
                }
            })
            .collect();
        pending.since = None;
        RawBatch { feed, records }
    }

    /// The feed whose pending batch has waited longest, if past [`FLUSH_AFTER`].
    fn overdue(&self, now: Instant) -> Option<City> {
        City::ALL
            .into_iter()
            .filter_map(|f| self.pending[f.index()].since.map(|t| (t, f)))
            .min()
            .filter(|(t, _)| now.duration_since(*t) >= FLUSH_AFTER)
            .map(|(_, f)| f)
    }
}

#[async_trait::async_trait]
impl Source for SimulatorSource {
    async fn next_batch(&mut self) -> Result<Option<RawBatch>> {
        let start = *self.started.get_or_insert_with(Instant::now);
        loop {
            let now = Instant::now();
            if let Some(feed) = self.overdue(now) {
                return Ok(Some(self.flush(feed)));
            }
            if self.limit.is_some_and(|limit| self.generated >= limit) {
                let rest = City::ALL
                    .into_iter()
                    .find(|f| !self.pending[f.index()].ends.is_empty());
                return Ok(rest.map(|feed| self.flush(feed)));
            }
            if let Some(rate) = self.rate {
                #[allow(clippy::cast_precision_loss)]
                let offset = Duration::try_from_secs_f64(self.generated as f64 / rate);
                // Beyond what `Instant` can represent: treat as an hour away.
                let due = offset
                    .ok()
                    .and_then(|d| start.checked_add(d))
                    .unwrap_or(now + Duration::from_secs(3600));
                if due > now {
                    let oldest = City::ALL
                        .into_iter()
                        .filter_map(|f| self.pending[f.index()].since)
                        .min();
                    let wake = oldest.map_or(due, |t| due.min(t + FLUSH_AFTER));
                    tokio::time::sleep_until(wake).await;
                    continue;
                }
            }
            self.scratch.clear();
            let feed = self.sim.next_city(&mut self.scratch);
            let seq = self.generated;
            self.generated += 1;
            let pending = &mut self.pending[feed.index()];
            pending.buf.extend_from_slice(&self.scratch);
            pending.ends.push((pending.buf.len(), seq));
            pending.since.get_or_insert(now);
            if pending.ends.len() >= self.max_batch {
                return Ok(Some(self.flush(feed)));
            }
        }
    }
}
