//! The city feed standard: the four feeds, their fields and Arrow schemas.
//!
//! `docs/feeds.md` is the human-readable version of this module; keep them in step.

use std::fmt;
use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// One of the city's event feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feed {
    /// Road sensors and cameras: flow measurements, accidents, violations.
    Traffic,
    /// Police incident reports.
    Police,
    /// Emergency calls (medical, fire, rescue, hazmat).
    Emergency,
    /// Market supervision: consumer complaints and inspections.
    Market,
}

/// The Arrow type of a field, as the decoder sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `Utf8`.
    Str,
    /// `Int64`; JSON integers only.
    Int,
    /// `Float64`; JSON integers accepted.
    Float,
    /// `Timestamp(Millisecond, "UTC")` from an RFC 3339 string or integer epoch milliseconds.
    Ts,
}

/// One field of the standard.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldSpec {
    pub name: &'static str,
    pub kind: Kind,
    /// Personal data: pseudonymised at ingest.
    pub personal: bool,
    /// The declared range of a `Float` field, both ends included: a value outside it makes
    /// the record malformed (latitude and longitude; a catalog may declare more).
    pub range: Option<(f64, f64)>,
}

/// Number of leading fields every feed shares; they are required and non-null.
pub(crate) const CORE_FIELDS: usize = 4;

/// Most fields any feed has.
pub(crate) const MAX_FIELDS: usize = 11;

const fn field(name: &'static str, kind: Kind) -> FieldSpec {
    FieldSpec {
        name,
        kind,
        personal: false,
        range: None,
    }
}

/// A `Float` field whose values must lie in `[min, max]`.
const fn ranged(name: &'static str, min: f64, max: f64) -> FieldSpec {
    FieldSpec {
        name,
        kind: Kind::Float,
        personal: false,
        range: Some((min, max)),
    }
}

const fn personal(name: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        kind: Kind::Str,
        personal: true,
        range: None,
    }
}

const EVENT_ID: FieldSpec = field("event_id", Kind::Str);
const TS: FieldSpec = field("ts", Kind::Ts);
// WGS 84 degrees: a coordinate outside these ranges is no place on Earth.
const LAT: FieldSpec = ranged("lat", -90.0, 90.0);
const LON: FieldSpec = ranged("lon", -180.0, 180.0);

static TRAFFIC: [FieldSpec; 11] = [
    EVENT_ID,
    TS,
    LAT,
    LON,
    field("sensor_id", Kind::Str),
    field("road_id", Kind::Str),
    field("speed_kmh", Kind::Float),
    field("vehicle_count", Kind::Int),
    field("occupancy", Kind::Float),
    personal("plate"),
    field("kind", Kind::Str),
];

static POLICE: [FieldSpec; 8] = [
    EVENT_ID,
    TS,
    LAT,
    LON,
    field("incident_id", Kind::Str),
    field("category", Kind::Str),
    field("priority", Kind::Int),
    personal("reporter_phone"),
];

static EMERGENCY: [FieldSpec; 10] = [
    EVENT_ID,
    TS,
    LAT,
    LON,
    field("call_id", Kind::Str),
    field("service", Kind::Str),
    field("severity", Kind::Int),
    personal("caller_phone"),
    personal("caller_id_no"),
    field("response_s", Kind::Float),
];

static MARKET: [FieldSpec; 11] = [
    EVENT_ID,
    TS,
    LAT,
    LON,
    field("merchant_id", Kind::Str),
    field("merchant_name", Kind::Str),
    field("category", Kind::Str),
    field("kind", Kind::Str),
    personal("complainant_phone"),
    field("amount_cny", Kind::Float),
    field("result", Kind::Str),
];

fn build_schema(fields: &[FieldSpec]) -> SchemaRef {
    let fields: Vec<Field> = fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let data_type = match f.kind {
                Kind::Str => DataType::Utf8,
                Kind::Int => DataType::Int64,
                Kind::Float => DataType::Float64,
                Kind::Ts => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            };
            Field::new(f.name, data_type, i >= CORE_FIELDS)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

static SCHEMAS: LazyLock<[SchemaRef; 4]> =
    LazyLock::new(|| Feed::ALL.map(|f| build_schema(f.fields())));

impl Feed {
    /// Every feed, in the standard's order.
    pub const ALL: [Feed; 4] = [Feed::Traffic, Feed::Police, Feed::Emergency, Feed::Market];

    /// The feed's name in file names, topics and configuration: `traffic`, `police`,
    /// `emergency` or `market`.
    pub fn name(self) -> &'static str {
        match self {
            Feed::Traffic => "traffic",
            Feed::Police => "police",
            Feed::Emergency => "emergency",
            Feed::Market => "market",
        }
    }

    /// The feed called `s` (exact, lowercase), if any.
    pub fn from_name(s: &str) -> Option<Feed> {
        Feed::ALL.into_iter().find(|f| f.name() == s)
    }

    /// The Arrow schema the feed decodes into: `event_id`, `ts`, `lat`, `lon` (non-null), then
    /// the feed's own fields (nullable). Built once; every call returns the same `Arc`.
    pub fn schema(self) -> SchemaRef {
        Arc::clone(&SCHEMAS[self.index()])
    }

    /// Names of the fields holding personal data, pseudonymised at ingest.
    pub fn personal_fields(self) -> &'static [&'static str] {
        match self {
            Feed::Traffic => &["plate"],
            Feed::Police => &["reporter_phone"],
            Feed::Emergency => &["caller_phone", "caller_id_no"],
            Feed::Market => &["complainant_phone"],
        }
    }

    /// Position in [`Feed::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The feed's fields in schema order.
    pub(crate) fn fields(self) -> &'static [FieldSpec] {
        match self {
            Feed::Traffic => &TRAFFIC,
            Feed::Police => &POLICE,
            Feed::Emergency => &EMERGENCY,
            Feed::Market => &MARKET,
        }
    }
}

impl fmt::Display for Feed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for feed in Feed::ALL {
            assert_eq!(Feed::from_name(feed.name()), Some(feed));
            assert_eq!(Feed::ALL[feed.index()], feed);
        }
        assert_eq!(Feed::from_name("Traffic"), None);
    }

    #[test]
    fn schema_is_cached_and_ordered() {
        for feed in Feed::ALL {
            let a = feed.schema();
            assert!(Arc::ptr_eq(&a, &feed.schema()), "{feed} schema rebuilt");
            let names: Vec<&str> = a.fields().iter().map(|f| f.name().as_str()).collect();
            assert_eq!(&names[..4], ["event_id", "ts", "lat", "lon"]);
            assert!(a.fields().len() <= MAX_FIELDS);
            for (i, f) in a.fields().iter().enumerate() {
                assert_eq!(f.is_nullable(), i >= CORE_FIELDS, "{feed}.{}", f.name());
            }
        }
        let ts = Feed::Police.schema().field(1).data_type().clone();
        assert_eq!(
            ts,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
    }

    #[test]
    fn personal_fields_match_specs() {
        for feed in Feed::ALL {
            let from_specs: Vec<&str> = feed
                .fields()
                .iter()
                .filter(|f| f.personal)
                .map(|f| f.name)
                .collect();
            assert_eq!(from_specs, feed.personal_fields(), "{feed}");
        }
    }
}
