//! Decoding raw JSON records into Arrow as the catalog declares them, pseudonymising personal
//! fields on the way.
//!
//! A [`Decoder`] is made for one catalog table ([`Feed`]): its columns become a small plan of
//! [`FieldSpec`]s (JSON key, kind, `NOT NULL`, `[personal]`, `[range]`). Each record is parsed
//! straight into a row of typed values that borrow strings from the payload (no
//! `serde_json::Value`), checked against the plan, and only then appended to Arrow builders, so
//! a malformed record never leaves a partial row behind.
//!
//! ```text
//!  payload ──▶ scan (flat objects: one pass, no allocation) ──▶ [Val; columns] ──▶ builders ──▶ RecordBatch
//!     │            │ anything unusual (escapes, nesting, errors)     ▲                 (+ __cb_origin
//!     │            ▼                                                 │                  for tables
//!     └──────▶ general: serde_json with a visitor per kind ──────────┘                  without id)
//!                  │ the record breaks the table's declaration
//!                  ▼
//!              DeadLetter { reason: "field `lat`: out of range (must be within -90 and 90)" }
//! ```
//!
//! Two parsers fill the row: [`scan`], a one-pass scanner for the flat objects producers write,
//! and, for every record it does not take, `serde_json` with a visitor that knows the fields
//! (nested `ROW`s from JSON objects, `ARRAY`s from JSON arrays), which also writes the
//! dead-letter reasons. Values written as text (timestamps, dates, decimals) are read by the
//! same functions on both paths ([`text`]). Personal fields are pseudonymised on the stack;
//! their raw value never reaches a builder.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBufferBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder,
    ListArray, StringBuilder, StructArray, TimestampMillisecondBuilder,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, FieldRef};
use arrow::record_batch::RecordBatch;
use serde::de::IgnoredAny;

use crate::catalog::SqlType;
use crate::feed::Feed;
use crate::privacy::Pseudonymizer;
use crate::record::{DeadLetter, DeadReason, Origin, RawBatch};

mod ahead;
mod general;
pub mod guard;
mod scan;
mod text;

pub use ahead::{DecodeAhead, DecodedBatch};
pub use guard::{EventTimeGuard, GuardConfig};

/// How the decoder reads one field of a record (a column, or a field of a `ROW`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldSpec {
    /// The JSON key.
    pub name: String,
    /// The name in messages: `place.lat` inside a `ROW`, `tags[]` for an array's elements.
    pub path: String,
    pub kind: Kind,
    /// `NOT NULL`: must be present and not `null`.
    pub required: bool,
    /// Pseudonymised at ingest (top-level `STRING` columns only).
    pub personal: bool,
    /// Values outside `[min, max]` make the record malformed.
    pub range: Option<(f64, f64)>,
}

/// What a field holds, as the decoder reads it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// `STRING`: a JSON string.
    Str,
    /// `BOOLEAN`: `true` or `false`.
    Bool,
    /// `TINYINT` .. `BIGINT`: a JSON integer that fits in `bits` bits.
    Int { bits: u8 },
    /// `FLOAT` (`single`) or `DOUBLE`: any JSON number.
    Float { single: bool },
    /// `DECIMAL(p, s)`: a JSON number or numeric string, rounded half up to `s` digits.
    Decimal { precision: u8, scale: u8 },
    /// `DATE`: `"YYYY-MM-DD"`.
    Date,
    /// `TIMESTAMP(p)` / `TIMESTAMP_LTZ(p)` (`zoned`): a string ([`text::timestamp`]) or
    /// integer epoch milliseconds.
    Ts { zoned: bool },
    /// `ROW<...>`: a JSON object.
    Row(Vec<FieldSpec>),
    /// `ARRAY<...>`: a JSON array.
    List(Box<FieldSpec>),
}

impl Kind {
    fn of(ty: &SqlType, path: &str) -> Kind {
        match ty {
            SqlType::String => Kind::Str,
            SqlType::Boolean => Kind::Bool,
            SqlType::TinyInt => Kind::Int { bits: 8 },
            SqlType::SmallInt => Kind::Int { bits: 16 },
            SqlType::Int => Kind::Int { bits: 32 },
            SqlType::BigInt => Kind::Int { bits: 64 },
            SqlType::Float => Kind::Float { single: true },
            SqlType::Double => Kind::Float { single: false },
            SqlType::Decimal { precision, scale } => Kind::Decimal {
                precision: *precision,
                scale: *scale,
            },
            SqlType::Date => Kind::Date,
            SqlType::Timestamp { .. } => Kind::Ts { zoned: false },
            SqlType::TimestampLtz { .. } => Kind::Ts { zoned: true },
            SqlType::Row(fields) => Kind::Row(
                fields
                    .iter()
                    .map(|f| {
                        let path = format!("{path}.{}", f.name);
                        FieldSpec {
                            kind: Kind::of(&f.ty, &path),
                            name: f.name.clone(),
                            path,
                            required: !f.nullable,
                            personal: false,
                            range: None,
                        }
                    })
                    .collect(),
            ),
            SqlType::Array(element) => {
                let path = format!("{path}[]");
                Kind::List(Box::new(FieldSpec {
                    kind: Kind::of(&element.ty, &path),
                    name: String::new(),
                    path,
                    required: !element.nullable,
                    personal: false,
                    range: None,
                }))
            }
        }
    }

    /// What the JSON must hold, for messages.
    pub(crate) fn expected(&self) -> &'static str {
        match self {
            Kind::Str => "a string",
            Kind::Bool => "a boolean",
            Kind::Int { .. } => "an integer",
            Kind::Float { .. } => "a number",
            Kind::Decimal { .. } => "a number or a numeric string",
            Kind::Date => "a date string (YYYY-MM-DD)",
            Kind::Ts { zoned: true } => "an RFC 3339 string or integer epoch milliseconds",
            Kind::Ts { zoned: false } => "a timestamp string or integer epoch milliseconds",
            Kind::Row(_) => "an object",
            Kind::List(_) => "an array",
        }
    }
}

/// The decoding plan of a table: its columns as [`FieldSpec`]s.
pub(crate) fn plan(feed: &Feed) -> Vec<FieldSpec> {
    feed.columns()
        .iter()
        .map(|c| FieldSpec {
            kind: Kind::of(&c.ty, &c.name),
            name: c.name.clone(),
            path: c.name.clone(),
            required: !c.nullable,
            personal: c.personal,
            range: c.range,
        })
        .collect()
}

/// Decodes raw batches of one feed.
pub struct Decoder {
    feed: Feed,
    fields: Vec<FieldSpec>,
    /// `json.fail-on-missing-field`: every column must be present.
    all_present: bool,
    pseudonymizer: Arc<Pseudonymizer>,
    schema: arrow::datatypes::SchemaRef,
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
        let fields = plan(&feed);
        Self {
            all_present: feed.json_options().fail_on_missing_field,
            schema: feed.schema(),
            feed,
            fields,
            pseudonymizer,
        }
    }

    /// The feed this decoder reads.
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// Decodes `raw`. Never fails and never panics: records that break the declaration come
    /// back as dead letters. `raw.feed` must be this decoder's feed (records are read as this
    /// decoder's feed regardless).
    pub fn decode(&mut self, raw: &RawBatch) -> Decoded {
        debug_assert_eq!(raw.feed, self.feed, "decoder fed a batch of another feed");
        let capacity = raw.records.len();
        // Arrow builders hand their buffers to the arrays on `finish`, so capacity cannot be
        // kept from batch to batch; size them for this batch instead.
        let mut columns: Vec<Column> = self
            .fields
            .iter()
            .map(|f| Column::new(&f.kind, capacity))
            .collect();
        let mut origins = self
            .feed
            .has_origin_column()
            .then(|| StringBuilder::with_capacity(capacity, capacity * 16));
        let mut rows = Vec::with_capacity(capacity);
        let mut dead = Vec::new();
        // One row of values for the whole batch: they borrow from the payloads, which live as
        // long as `raw`.
        let mut values: Vec<Val<'_>> = Vec::with_capacity(self.fields.len());
        for (index, record) in raw.records.iter().enumerate() {
            values.clear();
            values.resize_with(self.fields.len(), Val::default);
            match self.parse_record(&record.payload, &mut values) {
                Ok(()) => {
                    self.append(&mut columns, &mut values);
                    if let Some(b) = origins.as_mut() {
                        write_origin(b, &record.origin);
                    }
                    rows.push(u32::try_from(index).expect("a batch holds fewer than 2^32 records"));
                }
                Err(reason) => dead.push(DeadLetter {
                    feed: self.feed.clone(),
                    origin: record.origin.clone(),
                    payload: record.payload.clone(),
                    reason: DeadReason::Malformed(reason),
                }),
            }
        }
        let mut arrays: Vec<ArrayRef> = columns
            .into_iter()
            .zip(self.schema.fields().iter())
            .map(|(c, f)| c.finish(f.data_type()))
            .collect();
        if let Some(mut b) = origins {
            arrays.push(Arc::new(b.finish()));
        }
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), arrays)
            .expect("decoder columns match the feed schema");
        Decoded { batch, rows, dead }
    }

    /// Parses one payload into `values` (all `Absent` on entry), or says why it is malformed.
    fn parse_record<'a>(&self, payload: &'a [u8], values: &mut [Val<'a>]) -> Result<(), String> {
        let first = payload.iter().find(|b| !b.is_ascii_whitespace()).copied();
        if first != Some(b'{') {
            return Err(match serde_json::from_slice::<IgnoredAny>(payload) {
                Ok(_) => format!("not a JSON object (found {})", json_kind(first)),
                Err(e) => format!("invalid JSON: {e}"),
            });
        }
        // Checking UTF-8 once for the whole payload (a fast ASCII scan) lets both parsers
        // borrow every string without checking each one again.
        if let Ok(text) = std::str::from_utf8(payload) {
            if scan::scan_record(&self.fields, self.all_present, text, values) {
                return Ok(());
            }
            values.fill_with(Val::default);
        }
        general::parse(&self.fields, self.all_present, payload, values)
    }

    fn append(&self, columns: &mut [Column], values: &mut [Val<'_>]) {
        for ((column, spec), value) in columns.iter_mut().zip(&self.fields).zip(values) {
            match (column, value) {
                (Column::Utf8(b), Val::Str(s)) if spec.personal => {
                    b.append_value(self.pseudonymizer.pseudonym(s).as_str());
                }
                (Column::Nested(rows), value) => rows.push(std::mem::take(value).into_owned()),
                (column, value) => column.append(value),
            }
        }
    }
}

/// Writes where a record came from as one string value: `file:line` (the file's name),
/// `topic/partition@offset` or `simulator#seq`.
fn write_origin(b: &mut StringBuilder, origin: &Origin) {
    let _ = match origin {
        Origin::File { path, line } => {
            let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
            write!(b, "{name}:{line}")
        }
        Origin::Kafka {
            topic,
            partition,
            offset,
            ..
        } => write!(b, "{topic}/{partition}@{offset}"),
        Origin::Simulator { seq } => write!(b, "simulator#{seq}"),
    };
    b.append_value("");
}

/// An Arrow builder per column; nested columns keep their values and build at the end.
enum Column {
    Utf8(StringBuilder),
    Bool(BooleanBuilder),
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal(Decimal128Builder),
    Date(Date32Builder),
    Ts(TimestampMillisecondBuilder),
    Nested(Vec<Val<'static>>),
}

impl Column {
    fn new(kind: &Kind, capacity: usize) -> Self {
        match kind {
            Kind::Str => Column::Utf8(StringBuilder::with_capacity(capacity, capacity * 12)),
            Kind::Bool => Column::Bool(BooleanBuilder::with_capacity(capacity)),
            Kind::Int { bits: 8 } => Column::Int8(Int8Builder::with_capacity(capacity)),
            Kind::Int { bits: 16 } => Column::Int16(Int16Builder::with_capacity(capacity)),
            Kind::Int { bits: 32 } => Column::Int32(Int32Builder::with_capacity(capacity)),
            Kind::Int { .. } => Column::Int64(Int64Builder::with_capacity(capacity)),
            Kind::Float { single: true } => {
                Column::Float32(Float32Builder::with_capacity(capacity))
            }
            Kind::Float { single: false } => {
                Column::Float64(Float64Builder::with_capacity(capacity))
            }
            #[allow(clippy::cast_possible_wrap)] // scale <= precision <= 38
            Kind::Decimal { precision, scale } => Column::Decimal(
                Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(*precision, *scale as i8)
                    .expect("the catalog checked precision and scale"),
            ),
            Kind::Date => Column::Date(Date32Builder::with_capacity(capacity)),
            Kind::Ts { .. } => Column::Ts(
                TimestampMillisecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            ),
            Kind::Row(_) | Kind::List(_) => Column::Nested(Vec::with_capacity(capacity)),
        }
    }

    /// Appends a flat value; anything the parsers rule out for this kind (and absent or null)
    /// is a null.
    #[allow(clippy::cast_possible_truncation)] // the parsers checked each integer's width
    fn append(&mut self, value: &Val<'_>) {
        match (self, value) {
            (Column::Utf8(b), Val::Str(s)) => b.append_value(s),
            (Column::Bool(b), Val::Bool(v)) => b.append_value(*v),
            (Column::Int8(b), Val::Int(v)) => b.append_value(*v as i8),
            (Column::Int16(b), Val::Int(v)) => b.append_value(*v as i16),
            (Column::Int32(b), Val::Int(v)) => b.append_value(*v as i32),
            (Column::Int64(b), Val::Int(v)) => b.append_value(*v),
            (Column::Float32(b), Val::Float(v)) => b.append_value(*v as f32),
            (Column::Float64(b), Val::Float(v)) => b.append_value(*v),
            (Column::Decimal(b), Val::Decimal(v)) => b.append_value(*v),
            (Column::Date(b), Val::Int(v)) => b.append_value(*v as i32),
            (Column::Ts(b), Val::Int(v)) => b.append_value(*v),
            (Column::Nested(rows), v) => rows.push(v.clone().into_owned()),
            (column, _) => column.append_null(),
        }
    }

    fn append_null(&mut self) {
        match self {
            Column::Utf8(b) => b.append_null(),
            Column::Bool(b) => b.append_null(),
            Column::Int8(b) => b.append_null(),
            Column::Int16(b) => b.append_null(),
            Column::Int32(b) => b.append_null(),
            Column::Int64(b) => b.append_null(),
            Column::Float32(b) => b.append_null(),
            Column::Float64(b) => b.append_null(),
            Column::Decimal(b) => b.append_null(),
            Column::Date(b) => b.append_null(),
            Column::Ts(b) => b.append_null(),
            Column::Nested(rows) => rows.push(Val::Null),
        }
    }

    /// The column's array, of Arrow type `data_type` (the schema's).
    fn finish(self, data_type: &DataType) -> ArrayRef {
        match self {
            Column::Utf8(mut b) => Arc::new(b.finish()),
            Column::Bool(mut b) => Arc::new(b.finish()),
            Column::Int8(mut b) => Arc::new(b.finish()),
            Column::Int16(mut b) => Arc::new(b.finish()),
            Column::Int32(mut b) => Arc::new(b.finish()),
            Column::Int64(mut b) => Arc::new(b.finish()),
            Column::Float32(mut b) => Arc::new(b.finish()),
            Column::Float64(mut b) => Arc::new(b.finish()),
            Column::Decimal(mut b) => Arc::new(b.finish()),
            Column::Date(mut b) => Arc::new(b.finish()),
            Column::Ts(mut b) => Arc::new(b.finish()),
            Column::Nested(rows) => {
                let refs: Vec<&Val<'_>> = rows.iter().collect();
                build(data_type, &refs)
            }
        }
    }
}

/// An array of Arrow type `data_type` from parsed values (absent and null are nulls).
fn build(data_type: &DataType, values: &[&Val<'_>]) -> ArrayRef {
    match data_type {
        DataType::Struct(fields) => {
            let nulls = NullBuffer::from_iter(values.iter().map(|v| matches!(v, Val::Row(_))));
            let children: Vec<ArrayRef> = fields
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let column: Vec<&Val<'_>> = values
                        .iter()
                        .map(|v| match v {
                            Val::Row(fields) => fields.get(i).unwrap_or(&Val::Null),
                            _ => &Val::Null,
                        })
                        .collect();
                    build(f.data_type(), &column)
                })
                .collect();
            Arc::new(
                StructArray::try_new(fields.clone(), children, Some(nulls))
                    .expect("nested values follow the ROW's declaration"),
            )
        }
        DataType::List(element) => {
            let mut valid = BooleanBufferBuilder::new(values.len());
            let mut lengths = Vec::with_capacity(values.len());
            let mut items: Vec<&Val<'_>> = Vec::new();
            for v in values {
                match v {
                    Val::List(elements) => {
                        valid.append(true);
                        lengths.push(elements.len());
                        items.extend(elements.iter());
                    }
                    _ => {
                        valid.append(false);
                        lengths.push(0);
                    }
                }
            }
            let child = build(element.data_type(), &items);
            Arc::new(
                ListArray::try_new(
                    FieldRef::clone(element),
                    OffsetBuffer::from_lengths(lengths),
                    child,
                    Some(NullBuffer::new(valid.finish())),
                )
                .expect("nested values follow the ARRAY's declaration"),
            )
        }
        flat => {
            let kind = match flat {
                DataType::Utf8 => Kind::Str,
                DataType::Boolean => Kind::Bool,
                DataType::Int8 => Kind::Int { bits: 8 },
                DataType::Int16 => Kind::Int { bits: 16 },
                DataType::Int32 => Kind::Int { bits: 32 },
                DataType::Float32 => Kind::Float { single: true },
                DataType::Float64 => Kind::Float { single: false },
                #[allow(clippy::cast_sign_loss)] // the catalog's scales are not negative
                DataType::Decimal128(precision, scale) => Kind::Decimal {
                    precision: *precision,
                    scale: *scale as u8,
                },
                DataType::Date32 => Kind::Date,
                DataType::Timestamp(..) => Kind::Ts { zoned: true },
                _ => Kind::Int { bits: 64 },
            };
            let mut column = Column::new(&kind, values.len());
            for v in values {
                column.append(v);
            }
            column.finish(flat)
        }
    }
}

/// A field's value after parsing. Timestamps are epoch milliseconds and dates days since
/// 1970-01-01, in `Int`; decimals are unscaled.
#[derive(Debug, Default, Clone)]
pub(crate) enum Val<'a> {
    #[default]
    Absent,
    Null,
    Str(Cow<'a, str>),
    Bool(bool),
    Int(i64),
    Float(f64),
    Decimal(i128),
    Row(Vec<Val<'a>>),
    List(Vec<Val<'a>>),
}

impl Val<'_> {
    /// The value with its strings owned.
    fn into_owned(self) -> Val<'static> {
        match self {
            Val::Absent => Val::Absent,
            Val::Null => Val::Null,
            Val::Str(s) => Val::Str(Cow::Owned(s.into_owned())),
            Val::Bool(v) => Val::Bool(v),
            Val::Int(v) => Val::Int(v),
            Val::Float(v) => Val::Float(v),
            Val::Decimal(v) => Val::Decimal(v),
            Val::Row(v) => Val::Row(v.into_iter().map(Val::into_owned).collect()),
            Val::List(v) => Val::List(v.into_iter().map(Val::into_owned).collect()),
        }
    }
}

/// The index of field `key`, trying `hint` first: producers write fields in the declared
/// order, so the field after the last one found is usually next.
pub(crate) fn field_index(fields: &[FieldSpec], hint: usize, key: &str) -> Option<usize> {
    // Field names are short: comparing bytes inline beats a call to `memcmp` per field.
    let same = |f: &FieldSpec| f.name.len() == key.len() && f.name.bytes().eq(key.bytes());
    if fields.get(hint).is_some_and(same) {
        return Some(hint);
    }
    fields.iter().position(same)
}

/// `v` as an integer of `bits` bits, or why not.
pub(crate) fn check_int(spec: &FieldSpec, v: i64) -> Result<i64, String> {
    let bits = match spec.kind {
        Kind::Int { bits } => bits,
        _ => 64,
    };
    if bits < 64 {
        let max = (1i64 << (bits - 1)) - 1;
        if v > max || v < -max - 1 {
            let name = match bits {
                8 => "TINYINT",
                16 => "SMALLINT",
                _ => "INT",
            };
            return Err(format!(
                "field `{}`: integer out of range for {name} ({} to {max})",
                spec.path,
                -max - 1
            ));
        }
    }
    #[allow(clippy::cast_precision_loss)] // ranges are for comparisons, not exact values
    check_range(spec, v as f64)?;
    Ok(v)
}

/// `v` for a `FLOAT`/`DOUBLE` field, or why not.
pub(crate) fn check_float(spec: &FieldSpec, v: f64) -> Result<f64, String> {
    #[allow(clippy::cast_possible_truncation)]
    if matches!(spec.kind, Kind::Float { single: true })
        && v.is_finite()
        && (v as f32).is_infinite()
    {
        return Err(format!(
            "field `{}`: out of range for FLOAT (a 32-bit float)",
            spec.path
        ));
    }
    check_range(spec, v)?;
    Ok(v)
}

/// Whether `v` lies in the field's declared range.
pub(crate) fn check_range(spec: &FieldSpec, v: f64) -> Result<(), String> {
    match spec.range {
        Some((min, max)) if !(min..=max).contains(&v) => Err(format!(
            "field `{}`: out of range (must be within {min} and {max})",
            spec.path
        )),
        _ => Ok(()),
    }
}

/// A decimal field's value from text, range-checked.
pub(crate) fn decimal_value(spec: &FieldSpec, text_value: &str) -> Result<Val<'static>, String> {
    let Kind::Decimal { precision, scale } = spec.kind else {
        unreachable!("decimal_value is for decimal fields");
    };
    let v = text::decimal(text_value, precision, scale)
        .map_err(|e| format!("field `{}`: {e}", spec.path))?;
    if spec.range.is_some() {
        #[allow(clippy::cast_precision_loss)]
        check_range(spec, v as f64 / 10f64.powi(i32::from(scale)))?;
    }
    Ok(Val::Decimal(v))
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

/// Reads the event time of raw records without decoding them (see [`TimePeek::peek`]).
#[derive(Debug, Clone)]
pub(crate) struct TimePeek {
    /// `"<time column>":`
    key: Vec<u8>,
    zoned: bool,
}

impl TimePeek {
    /// For the event-time column of `feed`.
    pub(crate) fn of(feed: &Feed) -> Self {
        let column = &feed.columns()[feed.time_index()];
        Self {
            key: format!("\"{}\":", column.name).into_bytes(),
            zoned: matches!(column.ty, SqlType::TimestampLtz { .. }),
        }
    }

    /// The event time of a raw record: the value after the first `"<time column>":` in the
    /// payload, a timestamp string or integer epoch milliseconds, as the decoder reads that
    /// column. `None` when there is no such key or its value is neither.
    ///
    /// A hint for ordering input only ([`FileSource`](crate::FileSource) merges feed files by
    /// it): it may be fooled by a nested key of that name, and decoding alone decides a
    /// record's time and whether it is malformed.
    pub(crate) fn peek(&self, payload: &[u8]) -> Option<i64> {
        let at = memchr::memmem::find(payload, &self.key)? + self.key.len();
        let value = payload[at..].trim_ascii_start();
        match value.first()? {
            b'"' => {
                let end = memchr::memchr(b'"', &value[1..])?;
                text::timestamp_opt(std::str::from_utf8(&value[1..=end]).ok()?, self.zoned)
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
}

/// Where the fast scanner and `serde_json` disagree on `payload` as a record of `feed`: the
/// scanner accepted what serde rejects, or read other values. `None` when they agree or the
/// scanner declined. For the fuzz targets (`fuzz/`), which look for such records.
#[doc(hidden)]
pub fn fast_path_disagreement(feed: &Feed, payload: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(payload).ok()?;
    let fields = plan(feed);
    let all_present = feed.json_options().fail_on_missing_field;
    let mut fast: Vec<Val<'_>> = Vec::new();
    fast.resize_with(fields.len(), Val::default);
    if !scan::scan_record(&fields, all_present, text, &mut fast) {
        return None;
    }
    let mut slow: Vec<Val<'_>> = Vec::new();
    slow.resize_with(fields.len(), Val::default);
    match general::parse(&fields, all_present, payload, &mut slow) {
        Err(reason) => Some(format!("fast path accepted what serde rejects: {reason}")),
        Ok(()) if !values_equal(&fast, &slow) => {
            Some(format!("fast path read {fast:?}, serde {slow:?}"))
        }
        Ok(()) => None,
    }
}

/// Same values, doubles compared bit for bit (so `-0.0` differs from `0.0`).
fn values_equal(a: &[Val<'_>], b: &[Val<'_>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|pair| match pair {
            (Val::Absent, Val::Absent) | (Val::Null, Val::Null) => true,
            (Val::Str(x), Val::Str(y)) => x == y,
            (Val::Bool(x), Val::Bool(y)) => x == y,
            (Val::Int(x), Val::Int(y)) => x == y,
            (Val::Decimal(x), Val::Decimal(y)) => x == y,
            (Val::Float(x), Val::Float(y)) => x.to_bits() == y.to_bits(),
            (Val::Row(x), Val::Row(y)) | (Val::List(x), Val::List(y)) => values_equal(x, y),
            _ => false,
        })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::catalog::Catalog;

    pub(in crate::decode) use super::values_equal;

    #[test]
    fn event_time_is_peeked_as_the_decoder_reads_it() {
        let police = Catalog::city().table("police").expect("police").clone();
        let peek = TimePeek::of(&police);
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
            (r#"{"ts":"2026-03-02 06:00:00"}"#, None),
            (r#"{"time":"2026-03-02T06:00:00Z"}"#, None),
            (r#"{"ts":"2026-03-02T06:00:00Z"#, None),
        ];
        for (payload, want) in cases {
            assert_eq!(peek.peek(payload.as_bytes()), want, "{payload}");
        }
        // Another table, another column, Flink's zone-less TIMESTAMP(3).
        let nexmark = Catalog::parse("n.sql", crate::catalog::NEXMARK_SQL).expect("valid");
        let bid = TimePeek::of(nexmark.table("bid").expect("bid"));
        assert_eq!(
            bid.peek(br#"{"auction":1,"dateTime":"2026-03-02 06:00:00.002"}"#),
            Some(1_772_431_200_002)
        );
    }
}
