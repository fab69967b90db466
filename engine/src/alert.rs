//! Rule results to alerts: one JSON object per result row, with a deterministic id.
//!
//! ```json
//! {"alert_id":"3f1c…","rule":"traffic/congestion","severity":"high","title":"Congestion",
//!  "window_start":"2026-03-02T08:00:00.000Z","window_end":"2026-03-02T08:05:00.000Z",
//!  "event_time":"2026-03-02T08:05:00.000Z","emitted_at":"2026-11-22T20:00:01.123Z",
//!  "revision":1,"key":"R12","location":{"cell":"8931aa42b2bffff","lat":30.2741,"lon":120.1646},
//!  "unit":"330105001002","unit_name":"米市巷二社区","data":{"road_id":"R12","avg_speed":11.5}}
//! ```
//!
//! `key` is the alert's group (the GROUP BY values, or the event id of per-event rules)
//! without the window's bounds, joined by `|`: the same from one window to the next.
//! `event_time` is the window's end, or for rules without windows the latest event time behind
//! the row (the `ts` of the events it comes from, whether selected or not), else the engine's
//! event-time clock when it was emitted. `location`
//! comes from the rule's `-- location:` header (`null` without one); `unit` is the grid unit
//! the place belongs to (`citybrain_ops::Jurisdictions::route`): a community, a district's or
//! the city's queue.
//!
//! **`alert_id`** tells apart every two alerts that differ, and gives a replayed alert the id it
//! had (consumers drop duplicates by it). It is 32 lowercase hex digits, the first 16 bytes of
//! SHA-256 over these bytes, in order:
//!
//! 1. the rule id, UTF-8 (`traffic/congestion`);
//! 2. the byte `0x1F`;
//! 3. for a windowed rule, `window_start` then `window_end`, each as epoch milliseconds in 8
//!    bytes, big-endian two's complement (nothing for a rule without windows);
//! 4. for each identifying value: the byte `0x1F`, then the value written as in the alert's
//!    `data` (compact JSON: `"R12"` with quotes and JSON escapes, non-ASCII characters as
//!    themselves in UTF-8, `42`, `1.5`, `true`, `null`, a timestamp as
//!    `"2026-03-02T08:00:00.000Z"`).
//!
//! The identifying values ([`CompiledRule::id_columns`], by [`citybrain_rules::RowKey`]):
//!
//! - a window aggregation: its GROUP BY values, in GROUP BY order (whether selected or not;
//!   `window_start` and `window_end` among them when grouped by). A group updated by late
//!   events comes again with the same id and the next `revision`.
//! - a rule whose rows come from input events (per-event rules, joins, unnest): the `event_id`
//!   of each input row behind the result, in the order the query reads its inputs, then every
//!   selected value in the order selected. The rows of one event (an unnest, a join matching
//!   several rows) differ in what they select; two records reusing one `event_id` differ in
//!   what the rule selects of them; rows equal in all of it are one alert.
//! - otherwise (no group or `event_id` reaches the top of the query, e.g. a union): every
//!   selected value in the order selected.
//!
//! So two alerts share an id only when rule, window and every identifying value are equal, and
//! the id depends on nothing else (not on batches, arrival order or the time of emission).

use std::fmt::Write as _;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use chrono::{DateTime, SecondsFormat, Utc};
use citybrain_connectors::SinkRecord;
use citybrain_ops::{Jurisdictions, Location};
use citybrain_rules::{CompiledRule, Emission, KEY_PREFIX, TIME_PREFIX};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// One alert, ready to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Deterministic id (32 hex characters).
    pub id: String,
    /// The grouping key values joined by `|`, used as the message key downstream.
    pub key: String,
    /// The whole alert as a JSON object.
    pub json: Value,
}

impl Alert {
    /// As a sink record (compact JSON payload, keyed by the group).
    pub fn to_record(&self) -> SinkRecord {
        SinkRecord {
            key: Some(self.key.clone()),
            payload: self.json.to_string(),
            headers: Vec::new(),
        }
    }

    /// One line for a person watching a terminal.
    pub fn to_human(&self) -> String {
        let j = &self.json;
        let s = |k: &str| j.get(k).and_then(Value::as_str).unwrap_or_default();
        let mut line = format!(
            "{:<8} {}  {}",
            s("severity").to_uppercase(),
            s("rule"),
            s("title")
        );
        if let (Some(ws), Some(we)) = (j.get("window_start"), j.get("window_end")) {
            let short = |v: &Value| {
                v.as_str()
                    .map(|t| t.get(..16).unwrap_or(t).replace('T', " "))
            };
            let _ = write!(
                line,
                "  [{} .. {}]",
                short(ws).unwrap_or_default(),
                short(we)
                    .and_then(|t| t.get(11..).map(str::to_string))
                    .unwrap_or_default()
            );
        }
        if let Some(unit) = j.get("unit_name").and_then(Value::as_str) {
            let _ = write!(line, "  @{unit}");
        }
        if let Some(Value::Object(data)) = j.get("data") {
            for (k, v) in data {
                if k == "window_start" || k == "window_end" {
                    continue;
                }
                match v {
                    Value::String(t) => {
                        let _ = write!(line, "  {k}={t}");
                    }
                    Value::Number(n) => match n.as_f64() {
                        Some(f) if !n.is_i64() && !n.is_u64() => {
                            // At most two decimals for a person: 17.0 → 17, 15.456 → 15.46.
                            let text = format!("{f:.2}");
                            let text = text.trim_end_matches('0').trim_end_matches('.');
                            let _ = write!(line, "  {k}={text}");
                        }
                        _ => {
                            let _ = write!(line, "  {k}={n}");
                        }
                    },
                    other => {
                        let _ = write!(line, "  {k}={other}");
                    }
                }
            }
        }
        line
    }
}

/// What alerts need besides a rule's rows: the jurisdictions their places are routed by
/// (none: alerts carry no `unit`) and the engine's event-time clock (the `event_time` of
/// alerts whose rows carry no time).
#[derive(Debug, Clone, Copy, Default)]
pub struct Grid<'a> {
    /// Where each unit is.
    pub jurisdictions: Option<&'a Jurisdictions>,
    /// The event-time clock, epoch ms.
    pub clock_ms: Option<i64>,
}

/// Turns a rule's emissions into alerts.
pub fn alerts(
    rule: &CompiledRule,
    emission: &Emission,
    emitted_at: DateTime<Utc>,
    grid: Grid<'_>,
) -> Vec<Alert> {
    let emitted = rfc3339(emitted_at.timestamp_millis());
    let schema = &rule.output_schema;
    let key_cols: Vec<usize> = (0..schema.fields().len())
        .filter(|i| schema.field(*i).name().starts_with(KEY_PREFIX))
        .collect();
    let id_cols = rule.id_columns();
    let mut out = Vec::new();
    for batch in &emission.batches {
        let cols: Vec<Cell<'_>> = batch.columns().iter().map(Cell::new).collect();
        for row in 0..batch.num_rows() {
            let data = row_json(schema, &cols, row, rule.data_columns);
            let id_values: Vec<Value> = id_cols.iter().map(|i| cols[*i].json(row)).collect();
            let id = alert_id(&rule.meta.id, emission.window, &id_values);
            let key_values: Vec<Value> = if key_cols.is_empty() {
                data.values().cloned().collect()
            } else {
                key_cols.iter().map(|i| cols[*i].json(row)).collect()
            };
            let key = key_values
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join("|");
            let mut json = Map::new();
            json.insert("alert_id".into(), Value::String(id.clone()));
            json.insert("rule".into(), Value::String(rule.meta.id.clone()));
            json.insert(
                "severity".into(),
                Value::String(rule.meta.severity.to_string()),
            );
            json.insert("title".into(), Value::String(rule.meta.title.clone()));
            if let Some(w) = emission.window {
                json.insert("window_start".into(), Value::String(rfc3339(w.start)));
                json.insert("window_end".into(), Value::String(rfc3339(w.end)));
            }
            let event_time = emission
                .window
                .map(|w| w.end)
                .or_else(|| row_time(schema, &cols, row, rule.data_columns))
                .or(grid.clock_ms);
            json.insert(
                "event_time".into(),
                event_time.map_or(Value::Null, |t| Value::String(rfc3339(t))),
            );
            json.insert("emitted_at".into(), Value::String(emitted.clone()));
            json.insert("revision".into(), Value::from(emission.revision));
            // The group without its window: what stays the same from one window to the next
            // (the incident desk correlates on it).
            let bounds: Vec<String> = emission
                .window
                .map(|w| vec![rfc3339(w.start), rfc3339(w.end), rfc3339(w.end - 1)])
                .unwrap_or_default();
            let group = key_values
                .iter()
                .filter(|v| !v.as_str().is_some_and(|s| bounds.iter().any(|b| b == s)))
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join("|");
            json.insert("key".into(), Value::String(group));
            let resolution = grid.jurisdictions.map_or(
                citybrain_ops::jurisdiction::DEFAULT_RESOLUTION,
                Jurisdictions::resolution,
            );
            let location = locate(rule, &data, resolution);
            json.insert(
                "location".into(),
                location.as_ref().map_or(Value::Null, |l| {
                    serde_json::to_value(l).expect("locations serialize")
                }),
            );
            if let Some(j) = grid.jurisdictions {
                let unit = j.route(location.as_ref().unwrap_or(&Location::none())).unit;
                json.insert("unit".into(), Value::String(unit.to_string()));
                json.insert("unit_name".into(), Value::String(j.name(unit)));
            }
            json.insert("data".into(), Value::Object(data));
            out.push(Alert {
                id,
                key,
                json: Value::Object(json),
            });
        }
    }
    out
}

/// Where an alert is, from the columns its rule's `-- location:` header names; `None` without
/// a header or when the values are missing or not a place.
fn locate(rule: &CompiledRule, data: &Map<String, Value>, resolution: u8) -> Option<Location> {
    match rule.meta.location.as_ref()? {
        citybrain_rules::Location::Cell(col) => match data.get(col)? {
            Value::String(s) => Location::from_cell(s),
            Value::Number(n) => n.as_u64().and_then(Location::from_cell_u64),
            _ => None,
        },
        citybrain_rules::Location::LatLon { lat, lon } => {
            let (lat, lon) = (data.get(lat)?.as_f64()?, data.get(lon)?.as_f64()?);
            Location::from_point(lat, lon, resolution)
        }
    }
}

/// The latest timestamp of `row` among its first `columns` cells (what the rule selects) and
/// the hidden event times behind it ([`TIME_PREFIX`]), epoch ms.
fn row_time(
    schema: &arrow::datatypes::Schema,
    cols: &[Cell<'_>],
    row: usize,
    columns: usize,
) -> Option<i64> {
    use arrow::datatypes as t;
    cols.iter()
        .enumerate()
        .filter(|(i, _)| *i < columns || schema.field(*i).name().starts_with(TIME_PREFIX))
        .filter_map(|(i, c)| {
            let a = c.array;
            if a.is_null(row) {
                return None;
            }
            match schema.field(i).data_type() {
                DataType::Timestamp(TimeUnit::Second, _) => {
                    Some(a.as_primitive::<t::TimestampSecondType>().value(row) * 1000)
                }
                DataType::Timestamp(TimeUnit::Millisecond, _) => {
                    Some(a.as_primitive::<t::TimestampMillisecondType>().value(row))
                }
                DataType::Timestamp(TimeUnit::Microsecond, _) => {
                    Some(a.as_primitive::<t::TimestampMicrosecondType>().value(row) / 1000)
                }
                DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                    Some(a.as_primitive::<t::TimestampNanosecondType>().value(row) / 1_000_000)
                }
                _ => None,
            }
        })
        .max()
}

/// The first `columns` columns of every row of `batches` as JSON objects, converted exactly as
/// an alert's `data` is.
pub fn rows_json(batches: &[RecordBatch], columns: usize) -> Vec<Map<String, Value>> {
    let mut out = Vec::new();
    for batch in batches {
        let schema = batch.schema();
        let cols: Vec<Cell<'_>> = batch.columns().iter().map(Cell::new).collect();
        out.extend((0..batch.num_rows()).map(|row| row_json(&schema, &cols, row, columns)));
    }
    out
}

/// The first `columns` cells of `row`, by column name.
fn row_json(
    schema: &arrow::datatypes::Schema,
    cols: &[Cell<'_>],
    row: usize,
    columns: usize,
) -> Map<String, Value> {
    cols.iter()
        .enumerate()
        .take(columns)
        // Where a record of a table without an id came from: part of the alert's id, not its
        // data (`SELECT *` reads it).
        .filter(|(i, _)| schema.field(*i).name() != citybrain_connectors::ORIGIN_COLUMN)
        .map(|(i, c)| (schema.field(i).name().clone(), c.json(row)))
        .collect()
}

/// The deterministic alert id of a rule, window and identifying values (see the module docs).
pub fn alert_id(rule: &str, window: Option<citybrain_rules::Window>, key: &[Value]) -> String {
    let mut h = Sha256::new();
    h.update(rule.as_bytes());
    h.update([0x1f]);
    if let Some(w) = window {
        h.update(w.start.to_be_bytes());
        h.update(w.end.to_be_bytes());
    }
    for v in key {
        h.update([0x1f]);
        h.update(v.to_string().as_bytes());
    }
    let digest = h.finalize();
    let mut id = String::with_capacity(32);
    for b in &digest[..16] {
        let _ = write!(id, "{b:02x}");
    }
    id
}

/// Epoch milliseconds as RFC 3339 UTC with milliseconds (`2026-03-02T08:00:00.000Z`).
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// One result column, read as JSON values.
struct Cell<'a> {
    array: &'a ArrayRef,
    fallback: Option<ArrayFormatter<'a>>,
}

impl<'a> Cell<'a> {
    fn new(array: &'a ArrayRef) -> Self {
        let simple = matches!(
            array.data_type(),
            DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Boolean
                | DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32
                | DataType::UInt64
                | DataType::Float32
                | DataType::Float64
                | DataType::Timestamp(_, _)
        );
        let fallback = (!simple)
            .then(|| ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default()).ok())
            .flatten();
        Self { array, fallback }
    }

    fn json(&self, row: usize) -> Value {
        use arrow::datatypes as t;
        let a = self.array;
        if a.is_null(row) {
            return Value::Null;
        }
        // JSON has no NaN or infinity: they are written as the strings "NaN", "Infinity" and
        // "-Infinity" (as JavaScript and Jackson spell them), never as a misleading null.
        let float = |f: f64| {
            serde_json::Number::from_f64(f).map_or_else(
                || {
                    Value::String(
                        match (f.is_nan(), f > 0.0) {
                            (true, _) => "NaN",
                            (false, true) => "Infinity",
                            (false, false) => "-Infinity",
                        }
                        .into(),
                    )
                },
                Value::Number,
            )
        };
        match a.data_type() {
            DataType::Utf8 => Value::String(a.as_string::<i32>().value(row).to_string()),
            DataType::LargeUtf8 => Value::String(a.as_string::<i64>().value(row).to_string()),
            DataType::Utf8View => Value::String(a.as_string_view().value(row).to_string()),
            DataType::Boolean => Value::Bool(a.as_boolean().value(row)),
            DataType::Int8 => a.as_primitive::<t::Int8Type>().value(row).into(),
            DataType::Int16 => a.as_primitive::<t::Int16Type>().value(row).into(),
            DataType::Int32 => a.as_primitive::<t::Int32Type>().value(row).into(),
            DataType::Int64 => a.as_primitive::<t::Int64Type>().value(row).into(),
            DataType::UInt8 => a.as_primitive::<t::UInt8Type>().value(row).into(),
            DataType::UInt16 => a.as_primitive::<t::UInt16Type>().value(row).into(),
            DataType::UInt32 => a.as_primitive::<t::UInt32Type>().value(row).into(),
            DataType::UInt64 => a.as_primitive::<t::UInt64Type>().value(row).into(),
            DataType::Float32 => float(f64::from(a.as_primitive::<t::Float32Type>().value(row))),
            DataType::Float64 => float(a.as_primitive::<t::Float64Type>().value(row)),
            DataType::Timestamp(unit, _) => {
                let v = match unit {
                    TimeUnit::Second => {
                        a.as_primitive::<t::TimestampSecondType>().value(row) * 1000
                    }
                    TimeUnit::Millisecond => {
                        a.as_primitive::<t::TimestampMillisecondType>().value(row)
                    }
                    TimeUnit::Microsecond => {
                        a.as_primitive::<t::TimestampMicrosecondType>().value(row) / 1000
                    }
                    TimeUnit::Nanosecond => {
                        a.as_primitive::<t::TimestampNanosecondType>().value(row) / 1_000_000
                    }
                };
                Value::String(rfc3339(v))
            }
            // Nested values (a catalog's ROW and ARRAY columns) as JSON objects and arrays.
            DataType::Struct(fields) => {
                let s = a.as_struct();
                Value::Object(
                    fields
                        .iter()
                        .zip(s.columns())
                        .map(|(f, c)| (f.name().clone(), Cell::new(c).json(row)))
                        .collect(),
                )
            }
            DataType::List(_) => {
                let values = a.as_list::<i32>().value(row);
                let cell = Cell::new(&values);
                Value::Array((0..values.len()).map(|i| cell.json(i)).collect())
            }
            _ => self
                .fallback
                .as_ref()
                .map_or(Value::Null, |f| Value::String(f.value(row).to_string())),
        }
    }
}

#[cfg(test)]
mod id_tests {
    use super::*;

    /// The scheme of the module docs, computed independently (Python's hashlib over the bytes
    /// the docs list), so that another implementation (an exported Flink job) can check itself
    /// against the same vectors.
    #[test]
    fn alert_ids_follow_the_documented_scheme() {
        let window = citybrain_rules::Window {
            start: 1_772_438_400_000, // 2026-03-02T08:00:00Z
            end: 1_772_438_700_000,
        };
        let values = [
            Value::from("R12"),
            Value::from(42),
            Value::Null,
            Value::from("2026-03-02T08:00:00.000Z"),
        ];
        assert_eq!(
            alert_id("traffic/congestion", Some(window), &values),
            "4f14e9457305c3bb20bd853dd867629c"
        );
        assert_eq!(
            alert_id(
                "market/failed_inspection",
                None,
                &[Value::from("m-1"), Value::from("运河")]
            ),
            "8b5322e38c1a9d975ddaab01d0170196"
        );
    }
}
