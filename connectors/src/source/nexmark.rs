//! A seeded Nexmark generator: the auction site of the Nexmark benchmark (people, auctions,
//! bids) as JSON lines, the tables of the Flink Nexmark suite.
//!
//! The model is that suite's generator (itself Beam's): event number `n` is a person, an
//! auction or a bid by `n % 50` (the standard 1:3:46 mix), event time advances by
//! `1 / events_per_second` per event, in order, from [`NEXMARK_BASE_TIME_MS`]. Ids start at
//! 1000; auctions are sold by *hot sellers* three times in four, and bids go to a *hot auction*
//! one time in two and come from a *hot bidder* three times in four (the last person or auction
//! id rounded down to a hundred), the rest to recent auctions and active people. Prices are
//! log-uniform from $1 to $1M (in cents), half the bids come through one of four hot channels,
//! and every record carries an `extra` string padding it to the suite's average sizes (person
//! 200, auction 500, bid 100 bytes).
//!
//! The random numbers are citybrain's own (the same seed gives the same bytes), not Java's, so
//! the values differ from the suite's while their distributions are the same. One quirk of the
//! suite's generator is not copied: it adds the first person id to a bid's bidder twice.
//!
//! Rows follow `feeds/nexmark.sql`: field names as in the suite (`emailAddress`, `dateTime`,
//! ...), `dateTime` and `expires` as Flink's JSON format writes a `TIMESTAMP(3)`
//! (`"2026-03-02 08:00:00.000"`, UTC).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::simulator::SplitMix64;
use crate::{Error, Result};

/// Event time of the first event: 2026-03-02T08:00:00Z.
pub const NEXMARK_BASE_TIME_MS: i64 = 1_772_438_400_000;

/// Nexmark's default event rate (the suite's `first-event.rate`): 10,000 events per second of
/// event time, so a million events span 100 seconds.
pub const NEXMARK_DEFAULT_RATE: f64 = 10_000.0;

/// Out of every 50 events: 1 person, 3 auctions, 46 bids.
const PERSON_PROPORTION: u64 = 1;
const AUCTION_PROPORTION: u64 = 3;
const TOTAL_PROPORTION: u64 = 50;
const FIRST_ID: u64 = 1000;
const FIRST_CATEGORY_ID: u64 = 10;
const NUM_CATEGORIES: usize = 5;
/// Ids not yet created that a random reference may already name.
const ID_LEAD: u64 = 10;
/// Hot sellers, auctions and bidders are ids rounded down to this.
const HOT_RATIO: u64 = 100;
/// One in this many auctions has a random (not hot) seller; bids likewise for bidders.
const HOT_SELLERS_RATIO: usize = 4;
const HOT_BIDDERS_RATIO: usize = 4;
/// One bid in two goes to the hot auction.
const HOT_AUCTION_RATIO: usize = 2;
const NUM_IN_FLIGHT_AUCTIONS: u64 = 100;
const NUM_ACTIVE_PEOPLE: u64 = 1000;
const AVG_PERSON_BYTES: usize = 200;
const AVG_AUCTION_BYTES: usize = 500;
const AVG_BID_BYTES: usize = 100;
const CHANNELS: usize = 10_000;
const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const US_CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];
/// Length of the letter pool `extra` strings are cut from.
const EXTRA_POOL: usize = 1 << 20;

/// What the generator makes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NexmarkConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Events (of all three tables) per second of event time.
    pub events_per_second: f64,
}

impl Default for NexmarkConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            events_per_second: NEXMARK_DEFAULT_RATE,
        }
    }
}

/// The three Nexmark tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NexmarkTable {
    /// New users of the auction site.
    Person,
    /// New auctions.
    Auction,
    /// Bids on auctions.
    Bid,
}

impl NexmarkTable {
    /// Every table, in the order of `feeds/nexmark.sql`.
    pub const ALL: [NexmarkTable; 3] = [Self::Person, Self::Auction, Self::Bid];

    /// The table's name, also its file name without `.jsonl`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Person => "person",
            Self::Auction => "auction",
            Self::Bid => "bid",
        }
    }
}

/// Rows written per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NexmarkCounts {
    pub person: u64,
    pub auction: u64,
    pub bid: u64,
}

/// Writes `events` Nexmark events as `DIR/person.jsonl`, `DIR/auction.jsonl` and
/// `DIR/bid.jsonl`, creating `dir` if needed.
///
/// # Errors
///
/// [`Error::CreateDir`], [`Error::CreateFile`] or [`Error::WriteFile`] naming the path.
pub fn write_nexmark_files(dir: &Path, cfg: NexmarkConfig, events: u64) -> Result<NexmarkCounts> {
    std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files = Vec::with_capacity(NexmarkTable::ALL.len());
    for table in NexmarkTable::ALL {
        let path = dir.join(format!("{}.jsonl", table.name()));
        let file = File::create(&path).map_err(|source| Error::CreateFile {
            path: path.clone(),
            source,
        })?;
        files.push((path, BufWriter::with_capacity(1 << 20, file)));
    }
    let mut generator = NexmarkGenerator::new(cfg);
    let mut counts = NexmarkCounts::default();
    let mut line = Vec::with_capacity(1024);
    for _ in 0..events {
        line.clear();
        let table = generator.next_event(&mut line);
        line.push(b'\n');
        let (index, count) = match table {
            NexmarkTable::Person => (0, &mut counts.person),
            NexmarkTable::Auction => (1, &mut counts.auction),
            NexmarkTable::Bid => (2, &mut counts.bid),
        };
        *count += 1;
        let (path, writer) = &mut files[index];
        writer.write_all(&line).map_err(|source| Error::WriteFile {
            path: path.clone(),
            source,
        })?;
    }
    for (path, mut writer) in files {
        writer.flush().map_err(|source| Error::WriteFile {
            path: path.clone(),
            source,
        })?;
    }
    Ok(counts)
}

/// The generator: call [`NexmarkGenerator::next_event`] for one event after another.
pub struct NexmarkGenerator {
    rng: SplitMix64,
    /// Microseconds of event time between two events.
    inter_event_us: f64,
    /// Number of the next event.
    n: u64,
    /// Random lowercase letters that `extra` strings are cut from.
    pool: Vec<u8>,
    hot_urls: [String; 4],
    channel_urls: Vec<String>,
    /// The last `dateTime` formatted, and its text (many events share a millisecond).
    last_ts: (i64, String),
}

impl std::fmt::Debug for NexmarkGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NexmarkGenerator")
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

impl NexmarkGenerator {
    /// A generator at event 0.
    pub fn new(cfg: NexmarkConfig) -> Self {
        let mut rng = SplitMix64::new(cfg.seed);
        let pool = (0..EXTRA_POOL).map(|_| letter(&mut rng)).collect();
        let hot_urls = std::array::from_fn(|_| base_url(&mut rng));
        let channel_urls = (0..CHANNELS)
            .map(|i| {
                let mut url = base_url(&mut rng);
                if rng.below(10) > 0 {
                    // As the suite: the bit-reversed channel number, |.| in 32-bit arithmetic.
                    #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
                    let id = (i as i32).reverse_bits().wrapping_abs();
                    url.push_str(&format!("&channel_id={id}"));
                }
                url
            })
            .collect();
        Self {
            rng,
            inter_event_us: 1_000_000.0 / cfg.events_per_second,
            n: 0,
            pool,
            hot_urls,
            channel_urls,
            last_ts: (i64::MIN, String::new()),
        }
    }

    /// Event time of event number `n`, epoch milliseconds.
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    fn timestamp(&self, n: u64) -> i64 {
        NEXMARK_BASE_TIME_MS + (n as f64 * self.inter_event_us) as i64 / 1000
    }

    /// Appends the next event as one JSON object (no newline) and says which table it is of.
    pub fn next_event(&mut self, out: &mut Vec<u8>) -> NexmarkTable {
        let n = self.n;
        self.n += 1;
        let ts = self.timestamp(n);
        let rem = n % TOTAL_PROPORTION;
        if rem < PERSON_PROPORTION {
            self.person(n, ts, out);
            NexmarkTable::Person
        } else if rem < PERSON_PROPORTION + AUCTION_PROPORTION {
            self.auction(n, ts, out);
            NexmarkTable::Auction
        } else {
            self.bid(n, ts, out);
            NexmarkTable::Bid
        }
    }

    fn person(&mut self, n: u64, ts: i64, out: &mut Vec<u8>) {
        let id = last_person(n) + FIRST_ID;
        let name = format!(
            "{} {}",
            FIRST_NAMES[self.rng.below(FIRST_NAMES.len())],
            LAST_NAMES[self.rng.below(LAST_NAMES.len())]
        );
        let email = format!(
            "{}@{}.com",
            next_string(&mut self.rng, 7, b' '),
            next_string(&mut self.rng, 5, b' ')
        );
        let card = (0..4)
            .map(|_| format!("{:04}", self.rng.below(10_000)))
            .collect::<Vec<_>>()
            .join(" ");
        let city = US_CITIES[self.rng.below(US_CITIES.len())];
        let state = US_STATES[self.rng.below(US_STATES.len())];
        let size = 8 + name.len() + email.len() + card.len() + city.len() + state.len();
        let extra = self.extra(size, AVG_PERSON_BYTES);
        out.extend_from_slice(format!("{{\"id\":{id},\"name\":\"{name}\",\"emailAddress\":\"{email}\",\"creditCard\":\"{card}\",\"city\":\"{city}\",\"state\":\"{state}\",\"dateTime\":\"").as_bytes());
        self.push_ts(ts, out);
        out.extend_from_slice(b"\",\"extra\":\"");
        out.extend_from_slice(&self.pool[extra]);
        out.extend_from_slice(b"\"}");
    }

    fn auction(&mut self, n: u64, ts: i64, out: &mut Vec<u8>) {
        let id = last_auction(n) + FIRST_ID;
        let seller = if self.rng.below(HOT_SELLERS_RATIO) > 0 {
            (last_person(n) / HOT_RATIO) * HOT_RATIO
        } else {
            self.next_person(n)
        } + FIRST_ID;
        let category = FIRST_CATEGORY_ID + self.rng.below(NUM_CATEGORIES) as u64;
        let initial_bid = next_price(&mut self.rng);
        // Auctions last up to twice the time in which the next 100 auctions are created.
        let horizon =
            self.timestamp(n + NUM_IN_FLIGHT_AUCTIONS * TOTAL_PROPORTION / AUCTION_PROPORTION) - ts;
        let expires =
            ts + 1 + self.next_below(u64::try_from((horizon * 2).max(1)).unwrap_or(1)) as i64;
        let item = next_string(&mut self.rng, 20, b' ');
        let description = next_string(&mut self.rng, 100, b' ');
        let reserve = initial_bid + next_price(&mut self.rng);
        let size = 8 + item.len() + description.len() + 40;
        let extra = self.extra(size, AVG_AUCTION_BYTES);
        out.extend_from_slice(format!("{{\"id\":{id},\"itemName\":\"{item}\",\"description\":\"{description}\",\"initialBid\":{initial_bid},\"reserve\":{reserve},\"dateTime\":\"").as_bytes());
        self.push_ts(ts, out);
        out.extend_from_slice(b"\",\"expires\":\"");
        self.push_ts(expires, out);
        out.extend_from_slice(
            format!("\",\"seller\":{seller},\"category\":{category},\"extra\":\"").as_bytes(),
        );
        out.extend_from_slice(&self.pool[extra]);
        out.extend_from_slice(b"\"}");
    }

    fn bid(&mut self, n: u64, ts: i64, out: &mut Vec<u8>) {
        let auction = if self.rng.below(HOT_AUCTION_RATIO) > 0 {
            (last_auction(n) / HOT_RATIO) * HOT_RATIO
        } else {
            let max = last_auction(n);
            let min = max.saturating_sub(NUM_IN_FLIGHT_AUCTIONS);
            min + self.next_below(max - min + 1 + ID_LEAD)
        } + FIRST_ID;
        let bidder = if self.rng.below(HOT_BIDDERS_RATIO) > 0 {
            (last_person(n) / HOT_RATIO) * HOT_RATIO + 1
        } else {
            self.next_person(n)
        } + FIRST_ID;
        let price = next_price(&mut self.rng);
        let (channel, url) = if self.rng.below(2) > 0 {
            let i = self.rng.below(HOT_CHANNELS.len());
            (HOT_CHANNELS[i].to_string(), self.hot_urls[i].as_str())
        } else {
            let i = self.rng.below(CHANNELS);
            (format!("channel-{i}"), self.channel_urls[i].as_str())
        };
        out.extend_from_slice(format!("{{\"auction\":{auction},\"bidder\":{bidder},\"price\":{price},\"channel\":\"{channel}\",\"url\":\"{url}\",\"dateTime\":\"").as_bytes());
        self.push_ts(ts, out);
        out.extend_from_slice(b"\",\"extra\":\"");
        let extra = self.extra(32, AVG_BID_BYTES);
        out.extend_from_slice(&self.pool[extra]);
        out.extend_from_slice(b"\"}");
    }

    /// A random person among the active ones, or one about to be created.
    fn next_person(&mut self, n: u64) -> u64 {
        let people = last_person(n) + 1;
        let active = people.min(NUM_ACTIVE_PEOPLE);
        people - active + self.next_below(active + ID_LEAD)
    }

    fn next_below(&mut self, n: u64) -> u64 {
        self.rng.below(usize::try_from(n).unwrap_or(usize::MAX)) as u64
    }

    /// Padding that brings a record of `size` bytes to `average` bytes on average: a range of
    /// the letter pool.
    fn extra(&mut self, size: usize, average: usize) -> std::ops::Range<usize> {
        if size > average {
            return 0..0;
        }
        let wanted = average - size;
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let delta = (wanted as f64 * 0.2).round() as usize;
        let len = wanted - delta
            + if delta == 0 {
                0
            } else {
                self.rng.below(2 * delta)
            };
        let at = self.rng.below(EXTRA_POOL - len);
        at..at + len
    }

    /// Appends `ms` as Flink's JSON `TIMESTAMP(3)`: `2026-03-02 08:00:00.000` (UTC).
    fn push_ts(&mut self, ms: i64, out: &mut Vec<u8>) {
        if self.last_ts.0 != ms {
            let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
            self.last_ts = (ms, t.format("%Y-%m-%d %H:%M:%S%.3f").to_string());
        }
        out.extend_from_slice(self.last_ts.1.as_bytes());
    }
}

/// The last person id (from 0) created by event `n`, or the one it creates.
fn last_person(n: u64) -> u64 {
    let epoch = n / TOTAL_PROPORTION;
    let offset = n % TOTAL_PROPORTION;
    // Past the epoch's people: the epoch's last person.
    let offset = if offset < PERSON_PROPORTION {
        offset
    } else {
        PERSON_PROPORTION - 1
    };
    epoch * PERSON_PROPORTION + offset
}

/// The last auction id (from 0) created by event `n`, or the one it creates.
fn last_auction(n: u64) -> u64 {
    let mut epoch = n / TOTAL_PROPORTION;
    let mut offset = n % TOTAL_PROPORTION;
    if offset < PERSON_PROPORTION {
        // No auction yet in this epoch: the last one of the previous epoch (0 for the very first).
        if epoch == 0 {
            return 0;
        }
        epoch -= 1;
        offset = AUCTION_PROPORTION - 1;
    } else if offset >= PERSON_PROPORTION + AUCTION_PROPORTION {
        offset = AUCTION_PROPORTION - 1;
    } else {
        offset -= PERSON_PROPORTION;
    }
    epoch * AUCTION_PROPORTION + offset
}

/// A price in cents, log-uniform from $1 to $1M.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn next_price(rng: &mut SplitMix64) -> u64 {
    (10f64.powf(rng.unit() * 6.0) * 100.0).round() as u64
}

fn letter(rng: &mut SplitMix64) -> u8 {
    b"abcdefghijklmnopqrstuvwxyz"[rng.below(26)]
}

/// 3 to `max - 1` random letters, one in 13 replaced by `special`; spaces trimmed at both ends.
fn next_string(rng: &mut SplitMix64, max: usize, special: u8) -> String {
    let len = 3 + rng.below(max - 3);
    let s: String = (0..len)
        .map(|_| {
            if rng.below(13) == 0 {
                special as char
            } else {
                letter(rng) as char
            }
        })
        .collect();
    s.trim_matches(' ').to_string()
}

fn base_url(rng: &mut SplitMix64) -> String {
    format!(
        "https://www.nexmark.com/{}/{}/{}/item.htm?query=1",
        next_string(rng, 5, b'_'),
        next_string(rng, 5, b'_'),
        next_string(rng, 5, b'_')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(cfg: NexmarkConfig, n: u64) -> Vec<(NexmarkTable, serde_json::Value)> {
        let mut g = NexmarkGenerator::new(cfg);
        (0..n)
            .map(|_| {
                let mut line = Vec::new();
                let t = g.next_event(&mut line);
                let v = serde_json::from_slice(&line)
                    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&line)));
                (t, v)
            })
            .collect()
    }

    #[test]
    fn the_mix_ids_and_event_time_follow_the_suite() {
        let all = events(NexmarkConfig::default(), 10_000);
        let count = |t| all.iter().filter(|(x, _)| *x == t).count();
        assert_eq!(
            (
                count(NexmarkTable::Person),
                count(NexmarkTable::Auction),
                count(NexmarkTable::Bid)
            ),
            (200, 600, 9200)
        );
        // Person and auction ids are dense from 1000, in creation order.
        let ids = |t| -> Vec<u64> {
            all.iter()
                .filter(|(x, _)| *x == t)
                .map(|(_, v)| v["id"].as_u64().expect("id"))
                .collect()
        };
        assert_eq!(ids(NexmarkTable::Person), (1000..1200).collect::<Vec<_>>());
        assert_eq!(ids(NexmarkTable::Auction), (1000..1600).collect::<Vec<_>>());
        // 10,000 events per second: event 9999 is at 0.9999 s, in order.
        assert_eq!(all[0].1["dateTime"], "2026-03-02 08:00:00.000");
        assert_eq!(all[9999].1["dateTime"], "2026-03-02 08:00:00.999");
        let times: Vec<&str> = all
            .iter()
            .map(|(_, v)| v["dateTime"].as_str().expect("ts"))
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "event time goes forward"
        );
    }

    #[test]
    fn bids_reference_existing_or_imminent_ids_and_favour_hot_ones() {
        let all = events(NexmarkConfig::default(), 50_000);
        let mut hot_auction = 0;
        let mut hot_bidder = 0;
        let mut bids = 0;
        let (mut people, mut auctions) = (0u64, 0u64);
        for (t, v) in &all {
            match t {
                NexmarkTable::Person => people += 1,
                NexmarkTable::Auction => {
                    auctions += 1;
                    let seller = v["seller"].as_u64().expect("seller");
                    assert!(seller < FIRST_ID + people + ID_LEAD, "{v}");
                    let expires = v["expires"].as_str().expect("expires");
                    assert!(expires > v["dateTime"].as_str().expect("dateTime"), "{v}");
                }
                NexmarkTable::Bid => {
                    bids += 1;
                    let auction = v["auction"].as_u64().expect("auction");
                    let bidder = v["bidder"].as_u64().expect("bidder");
                    assert!(
                        (FIRST_ID..FIRST_ID + auctions + ID_LEAD).contains(&auction),
                        "{v}"
                    );
                    assert!(
                        (FIRST_ID..FIRST_ID + people + ID_LEAD).contains(&bidder),
                        "{v}"
                    );
                    hot_auction += u32::from((auction - FIRST_ID).is_multiple_of(HOT_RATIO));
                    hot_bidder += u32::from((bidder - FIRST_ID) % HOT_RATIO == 1);
                    let price = v["price"].as_u64().expect("price");
                    assert!((100..=100_000_000).contains(&price), "{v}");
                }
            }
        }
        // Half the bids go to the hot auction, three quarters come from the hot bidder (plus
        // the random picks that happen to hit a hot id).
        let share = |k: u32| f64::from(k) / f64::from(bids);
        assert!(
            (0.48..0.56).contains(&share(hot_auction)),
            "{}",
            share(hot_auction)
        );
        assert!(
            (0.73..0.78).contains(&share(hot_bidder)),
            "{}",
            share(hot_bidder)
        );
    }

    #[test]
    fn records_are_padded_to_the_suites_average_sizes() {
        let all = events(NexmarkConfig::default(), 50_000);
        let len = |v: &serde_json::Value, k: &str| v[k].as_str().expect(k).len();
        for (table, average) in [
            (NexmarkTable::Person, 200.0),
            (NexmarkTable::Auction, 500.0),
            (NexmarkTable::Bid, 100.0),
        ] {
            // The suite's size of a record: 8 bytes a number, strings by length.
            let sizes: Vec<usize> = all
                .iter()
                .filter(|(t, _)| *t == table)
                .map(|(_, v)| match table {
                    NexmarkTable::Person => {
                        8 + [
                            "name",
                            "emailAddress",
                            "creditCard",
                            "city",
                            "state",
                            "extra",
                        ]
                        .iter()
                        .map(|k| len(v, k))
                        .sum::<usize>()
                    }
                    NexmarkTable::Auction => {
                        48 + len(v, "itemName") + len(v, "description") + len(v, "extra")
                    }
                    NexmarkTable::Bid => 32 + len(v, "extra"),
                })
                .collect();
            #[allow(clippy::cast_precision_loss)]
            let mean = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
            assert!(
                (average * 0.97..average * 1.03).contains(&mean),
                "{table:?}: {mean}"
            );
        }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = NexmarkConfig::default();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        let c = dir.path().join("c");
        let counts = write_nexmark_files(&a, cfg, 5_000).expect("write");
        write_nexmark_files(&b, cfg, 5_000).expect("write");
        write_nexmark_files(&c, NexmarkConfig { seed: 7, ..cfg }, 5_000).expect("write");
        assert_eq!(
            counts,
            NexmarkCounts {
                person: 100,
                auction: 300,
                bid: 4600
            }
        );
        for t in NexmarkTable::ALL {
            let file = format!("{}.jsonl", t.name());
            let read = |d: &Path| std::fs::read(d.join(&file)).expect("read");
            assert_eq!(read(&a), read(&b), "{file}");
            assert_ne!(read(&a), read(&c), "{file}");
        }
    }
}
