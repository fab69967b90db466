//! Decoding against the city feed standard: columns, event time, malformed records, privacy.

use std::sync::Arc;

use arrow::array::{
    Array, AsArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::DataType;
use bytes::Bytes;
use citybrain_connectors::{
    DeadReason, Decoded, Decoder, Feed, Origin, Pseudonymizer, RawBatch, RawRecord,
};

const KEY: &[u8] = b"test-key";

fn raw(feed: Feed, lines: &[&str]) -> RawBatch {
    let name = feed.name().to_string();
    RawBatch {
        feed,
        records: lines
            .iter()
            .enumerate()
            .map(|(i, line)| RawRecord {
                payload: Bytes::copy_from_slice(line.as_bytes()),
                origin: Origin::File {
                    path: format!("{name}.jsonl").into(),
                    line: i as u64 + 1,
                },
            })
            .collect(),
    }
}

fn decode(feed: Feed, lines: &[&str]) -> Decoded {
    let mut decoder = Decoder::new(feed.clone(), Arc::new(Pseudonymizer::new(KEY)));
    decoder.decode(&raw(feed, lines))
}

fn pseudonym(value: &str) -> String {
    Pseudonymizer::new(KEY).pseudonymize(value)
}

fn col<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| panic!("column {name} has another type"))
}

fn str_at(batch: &RecordBatch, name: &str, row: usize) -> Option<String> {
    let a = col::<StringArray>(batch, name);
    a.is_valid(row).then(|| a.value(row).to_owned())
}

fn reasons(decoded: &Decoded) -> Vec<String> {
    decoded
        .dead
        .iter()
        .map(|d| match &d.reason {
            DeadReason::Malformed(r) => r.clone(),
            other => panic!("expected malformed, got {other:?}"),
        })
        .collect()
}

fn assert_clean(decoded: &Decoded) {
    assert!(
        decoded.dead.is_empty(),
        "unexpected dead letters: {:?}",
        reasons(decoded)
    );
}

/// 2026-03-02T06:00:00Z.
const T0: i64 = 1_772_431_200_000;

#[test]
fn traffic_record_decodes_into_typed_columns() {
    let d = decode(
        city("traffic"),
        &[
            r#"{"event_id":"t-1","ts":"2026-03-02T06:00:00Z","lat":30.25,"lon":120.17,"sensor_id":"S0001","road_id":"R001","speed_kmh":42.5,"vehicle_count":17,"occupancy":0.31,"plate":"浙A12345","kind":"flow"}"#,
        ],
    );
    assert_clean(&d);
    let b = &d.batch;
    assert_eq!(b.schema(), city("traffic").schema());
    assert_eq!(b.num_rows(), 1);
    assert_eq!(d.rows, [0]);
    assert_eq!(str_at(b, "event_id", 0).as_deref(), Some("t-1"));
    assert_eq!(col::<TimestampMillisecondArray>(b, "ts").value(0), T0);
    assert_eq!(col::<Float64Array>(b, "lat").value(0), 30.25);
    assert_eq!(col::<Float64Array>(b, "lon").value(0), 120.17);
    assert_eq!(str_at(b, "sensor_id", 0).as_deref(), Some("S0001"));
    assert_eq!(str_at(b, "road_id", 0).as_deref(), Some("R001"));
    assert_eq!(col::<Float64Array>(b, "speed_kmh").value(0), 42.5);
    assert_eq!(col::<Int64Array>(b, "vehicle_count").value(0), 17);
    assert_eq!(col::<Float64Array>(b, "occupancy").value(0), 0.31);
    assert_eq!(str_at(b, "plate", 0), Some(pseudonym("浙A12345")));
    assert_eq!(str_at(b, "kind", 0).as_deref(), Some("flow"));
}

#[test]
fn police_emergency_market_records_decode() {
    let p = decode(
        city("police"),
        &[
            r#"{"event_id":"p-1","ts":1772431200000,"lat":30.2,"lon":120.1,"incident_id":"INC1","category":"fight","priority":1,"reporter_phone":"13800138000"}"#,
        ],
    );
    assert_clean(&p);
    assert_eq!(str_at(&p.batch, "incident_id", 0).as_deref(), Some("INC1"));
    assert_eq!(str_at(&p.batch, "category", 0).as_deref(), Some("fight"));
    assert_eq!(col::<Int64Array>(&p.batch, "priority").value(0), 1);
    assert_eq!(
        str_at(&p.batch, "reporter_phone", 0),
        Some(pseudonym("13800138000"))
    );

    let e = decode(
        city("emergency"),
        &[
            r#"{"event_id":"e-1","ts":"2026-03-02T06:00:00Z","lat":30.2,"lon":120.1,"call_id":"C1","service":"medical","severity":5,"caller_phone":"13900000000","caller_id_no":"33010619900101123X","response_s":960.5}"#,
        ],
    );
    assert_clean(&e);
    let b = &e.batch;
    assert_eq!(str_at(b, "call_id", 0).as_deref(), Some("C1"));
    assert_eq!(str_at(b, "service", 0).as_deref(), Some("medical"));
    assert_eq!(col::<Int64Array>(b, "severity").value(0), 5);
    assert_eq!(str_at(b, "caller_phone", 0), Some(pseudonym("13900000000")));
    assert_eq!(
        str_at(b, "caller_id_no", 0),
        Some(pseudonym("33010619900101123X"))
    );
    assert_eq!(col::<Float64Array>(b, "response_s").value(0), 960.5);

    let m = decode(
        city("market"),
        &[
            r#"{"event_id":"m-1","ts":"2026-03-02T06:00:00Z","lat":30.2,"lon":120.1,"merchant_id":"M0042","merchant_name":"运河海鲜大排档","category":"food_safety","kind":"inspection","complainant_phone":null,"amount_cny":12,"result":"fail"}"#,
        ],
    );
    assert_clean(&m);
    let b = &m.batch;
    assert_eq!(str_at(b, "merchant_id", 0).as_deref(), Some("M0042"));
    assert_eq!(
        str_at(b, "merchant_name", 0).as_deref(),
        Some("运河海鲜大排档")
    );
    assert_eq!(str_at(b, "category", 0).as_deref(), Some("food_safety"));
    assert_eq!(str_at(b, "kind", 0).as_deref(), Some("inspection"));
    assert_eq!(str_at(b, "complainant_phone", 0), None);
    assert_eq!(col::<Float64Array>(b, "amount_cny").value(0), 12.0);
    assert_eq!(str_at(b, "result", 0).as_deref(), Some("fail"));
}

#[test]
fn event_time_accepts_offsets_and_epoch_millis() {
    let d = decode(
        city("police"),
        &[
            r#"{"event_id":"a","ts":"2026-03-02T14:00:00+08:00","lat":0,"lon":0}"#,
            r#"{"event_id":"b","ts":"2026-03-02T06:00:00.250Z","lat":0,"lon":0}"#,
            r#"{"event_id":"c","ts":1772431200000,"lat":0,"lon":0}"#,
            r#"{"event_id":"d","ts":"2026-03-02T05:00:00-01:00","lat":0,"lon":0}"#,
        ],
    );
    assert_clean(&d);
    let ts = col::<TimestampMillisecondArray>(&d.batch, "ts");
    assert_eq!(ts.values().to_vec(), [T0, T0 + 250, T0, T0]);
    assert_eq!(
        d.batch.schema().field(1).data_type(),
        &DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, Some("UTC".into()))
    );
}

#[test]
fn integers_are_accepted_for_floats_and_missing_or_null_fields_are_null() {
    let d = decode(
        city("traffic"),
        &[
            r#"{"event_id":"t-1","ts":1772431200000,"lat":30,"lon":120,"speed_kmh":50,"occupancy":null}"#,
        ],
    );
    assert_clean(&d);
    let b = &d.batch;
    assert_eq!(col::<Float64Array>(b, "lat").value(0), 30.0);
    assert_eq!(col::<Float64Array>(b, "speed_kmh").value(0), 50.0);
    for name in [
        "sensor_id",
        "road_id",
        "vehicle_count",
        "occupancy",
        "plate",
        "kind",
    ] {
        assert!(b.column_by_name(name).expect(name).is_null(0), "{name}");
    }
}

#[test]
fn unknown_fields_are_ignored_and_only_coordinates_are_range_checked() {
    let d = decode(
        city("traffic"),
        &[
            r#"{"extra":{"nested":[1,2,{"x":null}]},"event_id":"t-1","ts":0,"lat":-90,"lon":180,"kind":"teleport","firmware":"4.2","speed_kmh":-5}"#,
        ],
    );
    assert_clean(&d);
    assert_eq!(str_at(&d.batch, "kind", 0).as_deref(), Some("teleport"));
    assert_eq!(col::<Float64Array>(&d.batch, "lat").value(0), -90.0);
    assert_eq!(col::<Float64Array>(&d.batch, "lon").value(0), 180.0);
    assert_eq!(col::<Float64Array>(&d.batch, "speed_kmh").value(0), -5.0);
}

/// Issue 11: lat 91 / lon -181 were accepted (grouped into `cell = null`), 2^70 was "a
/// non-integer number", and a key given twice silently kept its last value.
#[test]
fn impossible_coordinates_huge_integers_and_repeated_keys_are_malformed() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"event_id":"t-1","ts":0,"lat":91,"lon":0}"#,
            "field `lat`: out of range (must be within -90 and 90)",
        ),
        (
            r#"{"event_id":"t-1","ts":0,"lat":0,"lon":-181}"#,
            "field `lon`: out of range (must be within -180 and 180)",
        ),
        (
            r#"{"event_id":"t-1","ts":0,"lat":-90.000001,"lon":0}"#,
            "field `lat`: out of range",
        ),
        (
            r#"{"event_id":"t-1","ts":0,"lat":0,"lon":1e3}"#,
            "field `lon`: out of range",
        ),
        (
            r#"{"event_id":"t-1","ts":0,"lat":0,"lon":0,"vehicle_count":1180591620717411303424}"#,
            "field `vehicle_count`: integer out of range (beyond a signed 64-bit integer)",
        ),
        (
            r#"{"event_id":"t-1","ts":9223372036854775808,"lat":0,"lon":0}"#,
            "field `ts`: integer out of range (beyond a signed 64-bit integer)",
        ),
        (
            r#"{"event_id":"t-1","ts":-1180591620717411303424,"lat":0,"lon":0}"#,
            "field `ts`: integer out of range",
        ),
        (
            r#"{"event_id":"t-1","ts":0,"lat":0,"lon":0,"road_id":"R1","road_id":"R2"}"#,
            "duplicate field `road_id`",
        ),
        (
            r#"{"event_id":"t-1","ts":0,"lat":0,"lon":0,"lat":1}"#,
            "duplicate field `lat`",
        ),
        (
            r#"{"event_id":"t-1","firmware":"1","ts":0,"lat":0,"lon":0,"firmware":"2"}"#,
            "duplicate field `firmware`",
        ),
        (
            r#"{"event_id":"t-1","ts":0,"lat":0,"lon":0,"x\u0031":1,"x1":2}"#,
            "duplicate field `x1`",
        ),
    ];
    let lines: Vec<&str> = cases.iter().map(|(line, _)| *line).collect();
    let d = decode(city("traffic"), &lines);
    assert_eq!(d.batch.num_rows(), 0, "{:?}", reasons(&d));
    let got = reasons(&d);
    assert_eq!(got.len(), cases.len(), "{got:#?}");
    for ((line, want), reason) in cases.iter().zip(&got) {
        assert!(
            reason.starts_with(want),
            "{line}: reason {reason:?} does not start with {want:?}"
        );
    }
    // Still a double where the field is one: 2^70 is a fine speed, a nested repeat is fine.
    let d = decode(
        city("traffic"),
        &[
            r#"{"event_id":"t-1","ts":0,"lat":0,"lon":0,"speed_kmh":1180591620717411303424}"#,
            r#"{"event_id":"t-1","ts":0,"lat":0,"lon":0,"extra":{"a":1,"a":2}}"#,
        ],
    );
    assert_clean(&d);
}

#[test]
fn escaped_strings_decode() {
    let d = decode(
        city("traffic"),
        &[
            r#"{"event_id":"t-\"1\"","ts":0,"lat":0,"lon":0,"road_id":"R\u0030\u00301","plate":"\u6d59A12345"}"#,
        ],
    );
    assert_clean(&d);
    assert_eq!(str_at(&d.batch, "event_id", 0).as_deref(), Some("t-\"1\""));
    assert_eq!(str_at(&d.batch, "road_id", 0).as_deref(), Some("R001"));
    assert_eq!(str_at(&d.batch, "plate", 0), Some(pseudonym("浙A12345")));
}

#[test]
fn malformed_records_become_dead_letters_with_precise_reasons() {
    let cases: &[(&str, &str)] = &[
        (r#"{"event_id":"t-1","ts":0,"lat":0"#, "invalid JSON"),
        ("not json at all", "invalid JSON"),
        ("", "invalid JSON"),
        (r#"[{"event_id":"t-1"}]"#, "not a JSON object (found array)"),
        ("42", "not a JSON object (found number)"),
        (
            r#"{"event_id":"t-1","lat":0,"lon":0}"#,
            "missing field `ts`",
        ),
        (r#"{"ts":0,"lat":0,"lon":0}"#, "missing field `event_id`"),
        (
            r#"{"event_id":"t-1","ts":0,"lat":null,"lon":0}"#,
            "field `lat`: must not be null",
        ),
        (
            r#"{"event_id":"t-1","ts":0,"lat":0,"lon":0,"speed_kmh":"fast"}"#,
            "field `speed_kmh`: expected a number, found string",
        ),
        (
            r#"{"event_id":"t-1","ts":0,"lat":0,"lon":0,"vehicle_count":3.5}"#,
            "field `vehicle_count`: expected an integer, found a non-integer number",
        ),
        (
            r#"{"event_id":"t-1","ts":0,"lat":0,"lon":0,"plate":12345}"#,
            "field `plate`: expected a string, found number",
        ),
        (
            r#"{"event_id":"t-1","ts":0,"lat":0,"lon":0,"kind":["flow"]}"#,
            "field `kind`: expected a string, found array",
        ),
        (
            r#"{"event_id":"t-1","ts":0,"lat":0,"lon":0,"road_id":{"id":1}}"#,
            "field `road_id`: expected a string, found object",
        ),
        (
            r#"{"event_id":true,"ts":0,"lat":0,"lon":0}"#,
            "field `event_id`: expected a string, found boolean",
        ),
        (
            r#"{"event_id":"t-1","ts":"yesterday","lat":0,"lon":0}"#,
            "field `ts`: not an RFC 3339 timestamp: ",
        ),
        (
            r#"{"event_id":"t-1","ts":"2026-03-02 06:00:00","lat":0,"lon":0}"#,
            "field `ts`: not an RFC 3339 timestamp: ",
        ),
        (
            r#"{"event_id":"t-1","ts":1772431200000.5,"lat":0,"lon":0}"#,
            "field `ts`: expected an RFC 3339 string or integer epoch milliseconds, found a non-integer number",
        ),
        (
            r#"{"event_id":"t-1","ts":0,"lat":0,"lon":0} {}"#,
            "invalid JSON: trailing characters",
        ),
    ];
    let lines: Vec<&str> = cases.iter().map(|(line, _)| *line).collect();
    let d = decode(city("traffic"), &lines);
    assert_eq!(d.batch.num_rows(), 0);
    assert!(d.rows.is_empty());
    let got = reasons(&d);
    assert_eq!(got.len(), cases.len(), "{got:#?}");
    for (i, ((line, want), reason)) in cases.iter().zip(&got).enumerate() {
        assert!(
            reason.starts_with(want),
            "case {i} {line:?}: reason {reason:?} does not start with {want:?}"
        );
        assert!(
            !reason.contains("at line 1 column") || reason.starts_with("invalid JSON"),
            "position leaked into a data error: {reason:?}"
        );
        let letter = &d.dead[i];
        assert_eq!(letter.feed, city("traffic"));
        assert_eq!(
            letter.origin,
            Origin::File {
                path: "traffic.jsonl".into(),
                line: i as u64 + 1
            }
        );
        assert_eq!(&letter.payload[..], line.as_bytes());
    }
}

#[test]
fn wrong_type_reasons_do_not_quote_values() {
    let d = decode(
        city("emergency"),
        &[r#"{"event_id":"e","ts":0,"lat":0,"lon":0,"severity":"13912345678"}"#],
    );
    let got = reasons(&d);
    assert_eq!(got.len(), 1);
    assert!(!got[0].contains("13912345678"), "{got:?}");
}

#[test]
fn invalid_utf8_and_arbitrary_bytes_never_panic() {
    let mut decoder = Decoder::new(city("market"), Arc::new(Pseudonymizer::new(KEY)));
    let payloads: Vec<Vec<u8>> = vec![
        b"{\"event_id\":\"\xff\xfe\",\"ts\":0,\"lat\":0,\"lon\":0}".to_vec(),
        vec![0u8; 10],
        b"{\"event_id\":\"m\",\"ts\":99999999999999999999,\"lat\":0,\"lon\":0}".to_vec(),
        b"{\"event_id\":\"m\",\"ts\":\"+99999-01-01T00:00:00Z\",\"lat\":0,\"lon\":0}".to_vec(),
        b"{\"event_id\":\"m\",\"ts\":0,\"lat\":1e999,\"lon\":0}".to_vec(),
        b"{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{".to_vec(),
        [b"{\"x\":".repeat(200), b"1".to_vec(), b"}".repeat(200)].concat(),
    ];
    let batch = RawBatch {
        feed: city("market"),
        records: payloads
            .into_iter()
            .enumerate()
            .map(|(i, p)| RawRecord {
                payload: Bytes::from(p),
                origin: Origin::Simulator { seq: i as u64 },
            })
            .collect(),
    };
    let d = decoder.decode(&batch);
    assert_eq!(d.batch.num_rows(), 0, "dead: {:?}", reasons(&d));
    assert_eq!(d.dead.len(), batch.records.len());
}

#[test]
fn rows_map_back_to_input_positions() {
    let good = |id: &str| format!(r#"{{"event_id":"{id}","ts":0,"lat":0,"lon":0}}"#);
    let lines = [
        "oops".to_owned(),
        good("a"),
        good("b"),
        "{}".to_owned(),
        good("c"),
        "[]".to_owned(),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let mut decoder = Decoder::new(city("police"), Arc::new(Pseudonymizer::new(KEY)));
    let d = decoder.decode(&raw(city("police"), &lines));
    assert_eq!(d.rows, [1, 2, 4]);
    let ids: Vec<&str> = col::<StringArray>(&d.batch, "event_id")
        .iter()
        .flatten()
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);
    let dead_lines: Vec<u64> = d
        .dead
        .iter()
        .map(|l| match l.origin {
            Origin::File { line, .. } => line,
            ref other => panic!("file origin expected, got {other:?}"),
        })
        .collect();
    assert_eq!(dead_lines, [1, 4, 6]);

    // The decoder is reusable: a second batch starts from empty builders.
    let d2 = decoder.decode(&raw(city("police"), &lines[1..3]));
    assert_eq!(d2.batch.num_rows(), 2);
    assert_eq!(d2.rows, [0, 1]);
}

#[test]
fn personal_values_never_reach_the_batch() {
    let secrets = ["13812345678", "33010619900101123X", "13698765432"];
    let line = |i: usize, phone: &str, id_no: &str| {
        format!(
            r#"{{"event_id":"e-{i}","ts":0,"lat":0,"lon":0,"caller_phone":"{phone}","caller_id_no":"{id_no}","service":"medical"}}"#
        )
    };
    let lines = [
        line(1, secrets[0], secrets[1]),
        line(2, secrets[2], secrets[1]),
        line(3, secrets[0], secrets[1]),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let d = decode(city("emergency"), &lines);
    assert_clean(&d);
    for column in d.batch.columns() {
        if let Some(strings) = column.as_string_opt::<i32>() {
            for value in strings.iter().flatten() {
                for secret in secrets {
                    assert!(!value.contains(secret), "raw {secret} in batch: {value}");
                }
            }
        }
    }
    let phones = col::<StringArray>(&d.batch, "caller_phone");
    assert_eq!(
        phones.value(0),
        phones.value(2),
        "equal inputs, equal pseudonyms"
    );
    assert_ne!(phones.value(0), phones.value(1));
    let ids = col::<StringArray>(&d.batch, "caller_id_no");
    assert_eq!(ids.value(0), ids.value(1));
    assert!(phones.value(0).starts_with("ps_") && phones.value(0).len() == 35);
}

/// The city feed called `name`.
fn city(name: &str) -> Feed {
    citybrain_connectors::Catalog::city()
        .table(name)
        .expect("a city feed")
        .clone()
}
