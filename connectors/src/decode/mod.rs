//! Decoding raw JSON records into Arrow, pseudonymising personal fields on the way.
//!
//! Each record is parsed straight into a small array of typed values that borrow strings
//! from the payload (no `serde_json::Value`), checked against the feed standard, and only
//! then appended to Arrow builders, so a malformed record never leaves a partial row behind.
//! Two parsers fill that array: [`scan`], a one-pass scanner for the flat objects producers
//! write, and, for every record it does not take (escapes, nesting, errors), `serde_json`
//! with a visitor that knows the fields, which also writes the dead-letter reasons. Personal fields are pseudonymised into a reused `String`; their
//! raw value never reaches a builder.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::record_batch::RecordBatch;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::error::Category;

use crate::feed::{CORE_FIELDS, Feed, FieldSpec, Kind, MAX_FIELDS};
use crate::privacy::Pseudonymizer;
use crate::record::{DeadLetter, DeadReason, RawBatch};

mod ahead;
pub mod guard;
mod scan;

pub use ahead::{DecodeAhead, DecodedBatch};
pub use guard::{EventTimeGuard, GuardConfig};

/// Decodes raw batches of one feed.
pub struct Decoder {
    feed: Feed,
    fields: &'static [FieldSpec],
    pseudonymizer: Arc<Pseudonymizer>,
    columns: Vec<Column>,
}

/// The outcome of decoding one [`RawBatch`].
#[derive(Debug)]
pub struct Decoded {
    /// One row per well-formed record, in input order; schema is `feed.schema()`.
    pub batch: RecordBatch,
    /// `rows[i]` is the index in `RawBatch::records` of row `i` of `batch`.
    pub rows: Vec<u32>,
    /// The malformed records, in input order, each with the reason.
    pub dead: Vec<DeadLetter>,
}

impl Decoder {
    /// A decoder for `feed` that pseudonymises personal fields with `pseudonymizer`.
    pub fn new(feed: Feed, pseudonymizer: Arc<Pseudonymizer>) -> Self {
        let fields = feed.fields();
        Self {
            feed,
            fields,
            pseudonymizer,
            columns: fields.iter().map(|f| Column::new(f.kind, 0)).collect(),
        }
    }

    /// The feed this decoder reads.
    pub fn feed(&self) -> Feed {
        self.feed
    }

    /// Decodes `raw`. Never fails and never panics: records that break the standard come back
    /// as dead letters. `raw.feed` must be this decoder's feed (records are read as this
    /// decoder's feed regardless).
    pub fn decode(&mut self, raw: &RawBatch) -> Decoded {
        debug_assert_eq!(raw.feed, self.feed, "decoder fed a batch of another feed");
        let capacity = raw.records.len();
        // Arrow builders hand their buffers to the arrays on `finish`, so capacity cannot be
        // kept from batch to batch; size them for this batch instead.
        for (column, spec) in self.columns.iter_mut().zip(self.fields) {
            *column = Column::new(spec.kind, capacity);
        }
        let mut rows = Vec::with_capacity(capacity);
        let mut dead = Vec::new();
        for (index, record) in raw.records.iter().enumerate() {
            let mut values: [Val<'_>; MAX_FIELDS] = Default::default();
            match parse_record(self.fields, &record.payload, &mut values) {
                Ok(()) => {
                    self.append(&values);
                    rows.push(u32::try_from(index).expect("a batch holds fewer than 2^32 records"));
                }
                Err(reason) => dead.push(DeadLetter {
                    feed: self.feed,
                    origin: record.origin.clone(),
                    payload: record.payload.clone(),
                    reason: DeadReason::Malformed(reason),
                }),
            }
        }
        let columns: Vec<ArrayRef> = self.columns.iter_mut().map(Column::finish).collect();
        let batch = RecordBatch::try_new(self.feed.schema(), columns)
            .expect("decoder columns match the feed schema");
        Decoded { batch, rows, dead }
    }

    fn append(&mut self, values: &[Val<'_>; MAX_FIELDS]) {
        for ((column, spec), value) in self.columns.iter_mut().zip(self.fields).zip(values) {
            match (column, value) {
                (Column::Utf8(b), Val::Str(s)) if spec.personal => {
                    b.append_value(self.pseudonymizer.pseudonym(s).as_str());
                }
                (Column::Utf8(b), Val::Str(s)) => b.append_value(s),
                (Column::Int64(b), Val::Int(v)) => b.append_value(*v),
                (Column::Ts(b), Val::Int(v)) => b.append_value(*v),
                (Column::Float64(b), Val::Float(v)) => b.append_value(*v),
                // Absent or null; the parser rules out every other combination.
                (column, _) => column.append_null(),
            }
        }
    }
}

enum Column {
    Utf8(StringBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Ts(TimestampMillisecondBuilder),
}

impl Column {
    fn new(kind: Kind, capacity: usize) -> Self {
        match kind {
            Kind::Str => Column::Utf8(StringBuilder::with_capacity(capacity, capacity * 12)),
            Kind::Int => Column::Int64(Int64Builder::with_capacity(capacity)),
            Kind::Float => Column::Float64(Float64Builder::with_capacity(capacity)),
            Kind::Ts => Column::Ts(
                TimestampMillisecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            ),
        }
    }

    fn append_null(&mut self) {
        match self {
            Column::Utf8(b) => b.append_null(),
            Column::Int64(b) => b.append_null(),
            Column::Float64(b) => b.append_null(),
            Column::Ts(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Utf8(b) => Arc::new(b.finish()),
            Column::Int64(b) => Arc::new(b.finish()),
            Column::Float64(b) => Arc::new(b.finish()),
            Column::Ts(b) => Arc::new(b.finish()),
        }
    }
}

/// A field's value after parsing. Timestamps are epoch milliseconds in `Int`.
#[derive(Debug, Default)]
enum Val<'a> {
    #[default]
    Absent,
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
}

/// Parses one payload against the feed's fields into `values` (all `Absent` on entry), or says
/// why it is malformed.
fn parse_record<'a>(
    fields: &'static [FieldSpec],
    payload: &'a [u8],
    values: &mut [Val<'a>; MAX_FIELDS],
) -> Result<(), String> {
    let first = payload.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if first != Some(b'{') {
        return Err(match serde_json::from_slice::<IgnoredAny>(payload) {
            Ok(_) => format!("not a JSON object (found {})", json_kind(first)),
            Err(e) => format!("invalid JSON: {e}"),
        });
    }
    // Checking UTF-8 once for the whole payload (a fast ASCII scan) lets both parsers borrow
    // every string without checking each one again.
    if let Ok(text) = std::str::from_utf8(payload) {
        if scan::scan_record(fields, text, values) {
            return Ok(());
        }
        values.fill_with(Val::default);
    }
    parse_with_serde(fields, payload, values)
}

/// Where the fast scanner and `serde_json` disagree on `payload` as a record of `feed`: the
/// scanner accepted what serde rejects, or read other values. `None` when they agree or the
/// scanner declined. For the fuzz targets (`fuzz/`), which look for such records.
#[doc(hidden)]
pub fn fast_path_disagreement(feed: Feed, payload: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(payload).ok()?;
    let fields = feed.fields();
    let mut fast: [Val<'_>; MAX_FIELDS] = Default::default();
    if !scan::scan_record(fields, text, &mut fast) {
        return None;
    }
    let mut slow: [Val<'_>; MAX_FIELDS] = Default::default();
    match parse_with_serde(fields, payload, &mut slow) {
        Err(reason) => Some(format!("fast path accepted what serde rejects: {reason}")),
        Ok(()) if !same_values(&fast, &slow) => {
            Some(format!("fast path read {fast:?}, serde {slow:?}"))
        }
        Ok(()) => None,
    }
}

/// Same values, doubles compared bit for bit (so `-0.0` differs from `0.0`).
fn same_values(a: &[Val<'_>], b: &[Val<'_>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|pair| match pair {
            (Val::Absent, Val::Absent) | (Val::Null, Val::Null) => true,
            (Val::Str(x), Val::Str(y)) => x == y,
            (Val::Int(x), Val::Int(y)) => x == y,
            (Val::Float(x), Val::Float(y)) => x.to_bits() == y.to_bits(),
            _ => false,
        })
}

/// The general parser: any JSON, and the reason when the record breaks the standard. A
/// payload that is not UTF-8 goes the byte-slice way, which reports where the bad bytes are.
fn parse_with_serde<'a>(
    fields: &'static [FieldSpec],
    payload: &'a [u8],
    values: &mut [Val<'a>; MAX_FIELDS],
) -> Result<(), String> {
    match std::str::from_utf8(payload) {
        Ok(text) => parse_with(serde_json::Deserializer::from_str(text), fields, values),
        Err(_) => parse_with(
            serde_json::Deserializer::from_slice(payload),
            fields,
            values,
        ),
    }
}

/// The index of field `key`, trying `hint` first: producers write fields in the standard's
/// order, so the field after the last one found is usually next.
fn field_index(fields: &[FieldSpec], hint: usize, key: &str) -> Option<usize> {
    // Field names are short: comparing bytes inline beats a call to `memcmp` per field.
    let same = |f: &FieldSpec| f.name.len() == key.len() && f.name.bytes().eq(key.bytes());
    if fields.get(hint).is_some_and(same) {
        return Some(hint);
    }
    fields.iter().position(same)
}

/// An RFC 3339 timestamp as epoch milliseconds: the usual UTC form without chrono.
fn ts_from_str(s: &str) -> Option<i64> {
    utc_millis(s).or_else(|| {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis())
    })
}

fn parse_with<'a, R: serde_json::de::Read<'a>>(
    mut de: serde_json::Deserializer<R>,
    fields: &'static [FieldSpec],
    values: &mut [Val<'a>; MAX_FIELDS],
) -> Result<(), String> {
    RecordSeed { fields, values }
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(describe_error)
}

fn json_kind(first: Option<u8>) -> &'static str {
    match first {
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ => "number",
    }
}

/// Our own messages (data errors) without serde's position; syntax errors with it.
fn describe_error(e: serde_json::Error) -> String {
    match e.classify() {
        Category::Data => {
            let text = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            match text.strip_suffix(&suffix) {
                Some(stripped) => stripped.to_owned(),
                None => text,
            }
        }
        Category::Syntax | Category::Eof | Category::Io => format!("invalid JSON: {e}"),
    }
}

/// The event time of a raw record, read without decoding it: the value after the first
/// `"ts":` in the payload, an RFC 3339 string or integer epoch milliseconds, as the decoder
/// reads the `ts` field. `None` when there is no such key or its value is neither.
///
/// A hint for ordering input only ([`FileSource`](crate::FileSource) merges feed files by it):
/// it may be fooled by a nested `"ts":` key, and decoding alone decides a record's time and
/// whether it is malformed.
pub(crate) fn peek_event_time(payload: &[u8]) -> Option<i64> {
    const KEY: &[u8] = b"\"ts\":";
    let at = memchr::memmem::find(payload, KEY)? + KEY.len();
    let value = payload[at..].trim_ascii_start();
    match value.first()? {
        b'"' => {
            let end = memchr::memchr(b'"', &value[1..])?;
            ts_from_str(std::str::from_utf8(&value[1..=end]).ok()?)
        }
        b'-' | b'0'..=b'9' => {
            let len = value[1..]
                .iter()
                .position(|c| !c.is_ascii_digit())
                .map_or(value.len(), |n| n + 1);
            std::str::from_utf8(&value[..len]).ok()?.parse().ok()
        }
        _ => None,
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, the form producers write, as epoch milliseconds (the
/// fraction truncated to milliseconds, as chrono's `timestamp_millis` does), without the
/// general RFC 3339 parser. `None` for any other form or an out-of-range field: those go to
/// chrono, which gives the same value or the error message.
fn utc_millis(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[b.len() - 1] != b'Z'
    {
        return None;
    }
    let digits = |from: usize, to: usize| -> Option<i64> {
        b[from..to].iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let (year, month, day) = (digits(0, 4)?, digits(5, 7)?, digits(8, 10)?);
    let (hour, minute, second) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
    let millis = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', fraction @ ..]
            if (1..=9).contains(&fraction.len()) && fraction.iter().all(u8::is_ascii_digit) =>
        {
            (0..3).fold(0, |acc, i| {
                acc * 10 + fraction.get(i).map_or(0, |c| i64::from(c - b'0'))
            })
        }
        _ => return None,
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some((((days * 24 + hour) * 60 + minute) * 60 + second) * 1000 + millis)
}

struct RecordSeed<'v, 'a> {
    fields: &'static [FieldSpec],
    values: &'v mut [Val<'a>; MAX_FIELDS],
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // Producers write fields in the standard's order, so the field after the last one
        // found is tried first.
        let mut hint = 0;
        // Keys the standard does not know, kept to find one given twice (rare: few records
        // carry extra keys at all).
        let mut unknown: Vec<Cow<'de, str>> = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed {
            fields: self.fields,
            hint,
        })? {
            let index = match key {
                Key::Known(i) => Some(i),
                Key::Unknown(name) => {
                    unknown.push(name);
                    None
                }
            };
            match index {
                Some(i) => {
                    if !matches!(self.values[i], Val::Absent) {
                        return Err(de::Error::duplicate_field(self.fields[i].name));
                    }
                    self.values[i] = map.next_value_seed(ValueSeed {
                        spec: &self.fields[i],
                        required: i < CORE_FIELDS,
                    })?;
                    hint = i + 1;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if let Some(name) = duplicate(&mut unknown) {
            return Err(de::Error::custom(format_args!("duplicate field `{name}`")));
        }
        for (spec, value) in self.fields[..CORE_FIELDS].iter().zip(self.values.iter()) {
            if matches!(value, Val::Absent) {
                return Err(de::Error::missing_field(spec.name));
            }
        }
        Ok(())
    }
}

/// The first name `names` holds twice, if any (sorts `names`).
fn duplicate<'n>(names: &'n mut [Cow<'_, str>]) -> Option<&'n str> {
    if names.len() < 2 {
        return None;
    }
    names.sort_unstable();
    names
        .windows(2)
        .find(|pair| pair[0] == pair[1])
        .map(|pair| pair[0].as_ref())
}

/// A record's key: a field of the standard, or another (ignored, but checked for repeats).
enum Key<'de> {
    Known(usize),
    Unknown(Cow<'de, str>),
}

/// Maps a key to the index of the known field, or to the key itself for fields to ignore.
struct KeySeed {
    fields: &'static [FieldSpec],
    /// The index to try first.
    hint: usize,
}

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(field_index(self.fields, self.hint, key)
            .map_or(Key::Unknown(Cow::Borrowed(key)), Key::Known))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(field_index(self.fields, self.hint, key)
            .map_or_else(|| Key::Unknown(Cow::Owned(key.to_owned())), Key::Known))
    }
}

/// 2^63: the smallest magnitude no `i64` reaches (`i64::MIN` is -2^63, but a double read as
/// -2^63 is as likely a rounded larger integer).
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// Parses the value of one known field, with messages naming the field.
struct ValueSeed {
    spec: &'static FieldSpec,
    required: bool,
}

impl ValueSeed {
    fn expected(&self) -> &'static str {
        match self.spec.kind {
            Kind::Str => "a string",
            Kind::Int => "an integer",
            Kind::Float => "a number",
            Kind::Ts => "an RFC 3339 string or integer epoch milliseconds",
        }
    }

    /// A number for a `Float` field, checked against the field's declared range.
    fn float<E: de::Error>(&self, v: f64) -> Result<Val<'static>, E> {
        match self.spec.range {
            Some((min, max)) if !(min..=max).contains(&v) => Err(E::custom(format_args!(
                "field `{}`: out of range (must be within {min} and {max})",
                self.spec.name
            ))),
            _ => Ok(Val::Float(v)),
        }
    }

    fn out_of_range<E: de::Error>(&self) -> E {
        E::custom(format_args!(
            "field `{}`: integer out of range (beyond a signed 64-bit integer)",
            self.spec.name
        ))
    }

    fn wrong_type<E: de::Error>(&self, found: &str) -> E {
        E::custom(format_args!(
            "field `{}`: expected {}, found {found}",
            self.spec.name,
            self.expected()
        ))
    }

    /// A string where the field is not `Utf8`: a timestamp or a type error.
    fn non_utf8_string<E: de::Error>(&self, s: &str) -> Result<Val<'static>, E> {
        match self.spec.kind {
            Kind::Ts => match utc_millis(s) {
                Some(millis) => Ok(Val::Int(millis)),
                None => chrono::DateTime::parse_from_rfc3339(s)
                    .map(|t| Val::Int(t.timestamp_millis()))
                    .map_err(|e| {
                        E::custom(format_args!(
                            "field `{}`: not an RFC 3339 timestamp: {e}",
                            self.spec.name
                        ))
                    }),
            },
            Kind::Str | Kind::Int | Kind::Float => Err(self.wrong_type("string")),
        }
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Val<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Val<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}`: {}", self.spec.name, self.expected())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        if self.required {
            Err(E::custom(format_args!(
                "field `{}`: must not be null",
                self.spec.name
            )))
        } else {
            Ok(Val::Null)
        }
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visit_unit()
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(self.wrong_type("boolean"))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        match self.spec.kind {
            Kind::Int | Kind::Ts => Ok(Val::Int(v)),
            #[allow(clippy::cast_precision_loss)] // JSON numbers are doubles anyway
            Kind::Float => self.float(v as f64),
            Kind::Str => Err(self.wrong_type("number")),
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        match self.spec.kind {
            Kind::Int | Kind::Ts => i64::try_from(v)
                .map(Val::Int)
                .map_err(|_| self.out_of_range()),
            #[allow(clippy::cast_precision_loss)] // JSON numbers are doubles anyway
            Kind::Float => self.float(v as f64),
            Kind::Str => Err(self.wrong_type("number")),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        match self.spec.kind {
            Kind::Float => self.float(v),
            // serde_json reads an integer too large for 64 bits as a double: a whole number
            // this large was (in all likelihood) written as an integer.
            Kind::Int | Kind::Ts if v.fract() == 0.0 && v.abs() >= TWO_POW_63 => {
                Err(self.out_of_range())
            }
            Kind::Int | Kind::Ts => Err(self.wrong_type("a non-integer number")),
            Kind::Str => Err(self.wrong_type("number")),
        }
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        match self.spec.kind {
            Kind::Str => Ok(Val::Str(Cow::Borrowed(v))),
            _ => self.non_utf8_string(v),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        match self.spec.kind {
            Kind::Str => Ok(Val::Str(Cow::Owned(v.to_owned()))),
            _ => self.non_utf8_string(v),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.wrong_type("array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.wrong_type("object"))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Same values, doubles compared bit for bit (so `-0.0` differs from `0.0`).
    pub(in crate::decode) fn values_equal(a: &[Val<'_>], b: &[Val<'_>]) -> bool {
        same_values(a, b)
    }

    #[test]
    fn event_time_is_peeked_as_the_decoder_reads_it() {
        let cases = [
            (
                r#"{"event_id":"t-1","ts":"2026-03-02T06:00:00.002Z","lat":1.0}"#,
                Some(1_772_431_200_002),
            ),
            (
                r#"{"ts": 1772431248572,"lat":1.0}"#,
                Some(1_772_431_248_572),
            ),
            (
                r#"{"ts":"2026-03-02T14:00:00.002+08:00"}"#,
                Some(1_772_431_200_002),
            ),
            (r#"{"ts":-5}"#, Some(-5)),
            (r#"{"ts":null}"#, None),
            (r#"{"ts":"yesterday"}"#, None),
            (r#"{"time":"2026-03-02T06:00:00Z"}"#, None),
            (r#"{"ts":"2026-03-02T06:00:00Z"#, None),
        ];
        for (payload, want) in cases {
            assert_eq!(peek_event_time(payload.as_bytes()), want, "{payload}");
        }
    }

    #[test]
    fn fast_timestamps_agree_with_chrono() {
        let cases = [
            "2026-03-02T06:00:00.002Z",
            "2026-03-02T06:00:00Z",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.999Z",
            "1900-03-01T12:34:56.7Z",
            "2000-02-29T23:59:59.123456789Z",
            "2024-02-29T00:00:00.5Z",
            "2100-12-31T23:59:59.99Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999Z",
        ];
        for s in cases {
            let chrono = chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.timestamp_millis())
                .expect(s);
            assert_eq!(utc_millis(s), Some(chrono), "{s}");
        }
    }

    #[test]
    fn unusual_timestamps_are_left_to_chrono() {
        for s in [
            "2026-03-02T06:00:00+08:00",
            "2026-03-02t06:00:00z",
            "2026-03-02 06:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-03-02T24:00:00Z",
            "2026-03-02T23:59:60Z",
            "2026-03-02T06:00:00.Z",
            "2026-03-02T06:00:00.1234567890Z",
            "2026-03-02T06:00Z",
            "+2026-03-02T06:00:00Z",
        ] {
            assert_eq!(utc_millis(s), None, "{s}");
        }
    }
}
