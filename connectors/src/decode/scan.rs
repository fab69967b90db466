//! The fast path of decoding: a scanner for the flat objects producers write.
//!
//! A feed record is usually one flat JSON object of strings, numbers, booleans and nulls.
//! [`scan_record`] reads exactly that shape in one pass over the bytes, knowing the table's
//! fields and their kinds, and gives up (returns `false`) on anything else: an escape in a
//! string, a nested value, an exponent or a very long number, a wrong type, a missing or null
//! required field, a value outside its field's width or declared range, a key given twice, bad
//! syntax. The caller then parses the record again with the general `serde_json` path, which
//! yields the same values or the error message, so the dead-letter reasons do not depend on
//! which path ran. The module's tests check both paths agree on generated records.

use std::borrow::Cow;

use super::{FieldSpec, Kind, Val, check_float, check_int, decimal_value, field_index, text};

/// Most keys outside the declaration a record may carry and still take the fast path.
const MAX_UNKNOWN: usize = 8;

/// Exact powers of ten: a decimal with a mantissa below 2^53 and at most 22 fraction digits is
/// `mantissa / 10^k` with one correctly rounded division, the value any JSON parser gives.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Parses `text`, a whole record, into `values` (all `Absent` on entry) when it has the usual
/// shape; `false` when the general parser must decide (`values` may then hold partial results).
/// `all_present`: every field must be there (`json.fail-on-missing-field`).
pub(super) fn scan_record<'a>(
    fields: &[FieldSpec],
    all_present: bool,
    text: &'a str,
    values: &mut [Val<'a>],
) -> bool {
    scan(fields, text, values).is_some()
        && fields
            .iter()
            .zip(values.iter())
            .all(|(f, v)| !matches!(v, Val::Absent) || !(f.required || all_present))
}

fn scan<'a>(fields: &[FieldSpec], text: &'a str, values: &mut [Val<'a>]) -> Option<()> {
    let mut s = Scanner {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    s.skip_ws();
    s.expect(b'{')?;
    s.skip_ws();
    let mut hint = 0;
    // Keys the declaration does not know, to catch one given twice; a record with more of
    // them goes the general way.
    let mut unknown: [&str; MAX_UNKNOWN] = [""; MAX_UNKNOWN];
    let mut unknowns = 0;
    if s.peek() != Some(b'}') {
        loop {
            s.expect(b'"')?;
            let index = match s.key_is(fields, hint) {
                Some(i) => Some(i),
                None => {
                    let key = s.string_body()?;
                    let index = field_index(fields, hint, key);
                    if index.is_none() {
                        if unknowns == MAX_UNKNOWN || unknown[..unknowns].contains(&key) {
                            return None;
                        }
                        unknown[unknowns] = key;
                        unknowns += 1;
                    }
                    index
                }
            };
            s.skip_ws();
            s.expect(b':')?;
            s.skip_ws();
            match index {
                // A field given twice: the general parser names it.
                Some(i) if !matches!(values[i], Val::Absent) => return None,
                Some(i) => {
                    values[i] = s.value(&fields[i])?;
                    hint = i + 1;
                }
                None => s.skip_scalar()?,
            }
            s.skip_ws();
            match s.next()? {
                b',' => s.skip_ws(),
                b'}' => break,
                _ => return None,
            }
        }
    } else {
        s.at += 1;
    }
    s.skip_ws();
    (s.at == s.bytes.len()).then_some(())
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    /// The body of a string whose opening quote was just read, through the closing quote.
    /// `None` for escapes and control characters (the general parser handles or rejects them).
    fn string_body(&mut self) -> Option<&'a str> {
        let start = self.at;
        let rest = &self.bytes[start..];
        // Feed strings are short: one plain pass beats setting up a vectorised search.
        let len = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest[len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        // Both ends sit next to an ASCII quote, so they are character boundaries.
        self.text.get(start..start + len)
    }

    /// Whether the key whose opening quote was just read is field `hint` (producers write the
    /// declared order, so it usually is): then reads through its closing quote.
    fn key_is(&mut self, fields: &[FieldSpec], hint: usize) -> Option<usize> {
        let name = fields.get(hint)?.name.as_bytes();
        let end = self.at + name.len();
        if self.bytes.get(self.at..end)? == name && self.bytes.get(end) == Some(&b'"') {
            self.at = end + 1;
            Some(hint)
        } else {
            None
        }
    }

    /// The value of a declared field, checked against its kind; `None` leaves the record to
    /// the general parser.
    fn value(&mut self, spec: &FieldSpec) -> Option<Val<'a>> {
        match self.peek()? {
            b'"' => {
                self.at += 1;
                let s = self.string_body()?;
                match spec.kind {
                    Kind::Str => Some(Val::Str(Cow::Borrowed(s))),
                    Kind::Ts { zoned } => text::timestamp_opt(s, zoned).map(Val::Int),
                    Kind::Date => text::date(s).ok().map(|d| Val::Int(i64::from(d))),
                    Kind::Decimal { .. } => decimal_value(spec, s).ok(),
                    _ => None,
                }
            }
            b'n' => {
                self.literal(b"null")?;
                (!spec.required).then_some(Val::Null)
            }
            b't' if spec.kind == Kind::Bool => {
                self.literal(b"true")?;
                Some(Val::Bool(true))
            }
            b'f' if spec.kind == Kind::Bool => {
                self.literal(b"false")?;
                Some(Val::Bool(false))
            }
            b'-' | b'0'..=b'9' => {
                let start = self.at;
                let number = self.number()?;
                match (number, &spec.kind) {
                    (Number::Int(v), Kind::Int { .. }) => check_int(spec, v).ok().map(Val::Int),
                    (Number::Int(v), Kind::Ts { .. }) => Some(Val::Int(v)),
                    #[allow(clippy::cast_precision_loss)] // as serde_json: JSON numbers are doubles
                    (Number::Int(v), Kind::Float { .. }) => {
                        check_float(spec, v as f64).ok().map(Val::Float)
                    }
                    (Number::Float(v), Kind::Float { .. }) => {
                        check_float(spec, v).ok().map(Val::Float)
                    }
                    (_, Kind::Decimal { .. }) => {
                        decimal_value(spec, &self.text[start..self.at]).ok()
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Skips the value of a field the declaration does not know; nested values go the general
    /// way.
    fn skip_scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.at += 1;
                self.string_body().map(drop)
            }
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'-' | b'0'..=b'9' => self.number().map(drop),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let rest = self.bytes.get(self.at..self.at + word.len())?;
        (rest == word).then(|| self.at += word.len())
    }

    /// A number without exponent and with at most 15 significant digits, as `serde_json` reads
    /// it: integers as integers, `-0` and every decimal as a double.
    fn number(&mut self) -> Option<Number> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let mut mantissa: i64 = 0;
        let mut digits = 0usize;
        let int_start = self.at;
        while let Some(b @ b'0'..=b'9') = self.peek() {
            mantissa = mantissa * 10 + i64::from(b - b'0');
            digits += 1;
            self.at += 1;
            if digits > 15 {
                return None;
            }
        }
        let int_digits = self.at - int_start;
        // JSON: at least one digit, and no leading zero before another digit.
        if int_digits == 0 || (int_digits > 1 && self.bytes[int_start] == b'0') {
            return None;
        }
        let mut fraction = 0usize;
        if self.peek() == Some(b'.') {
            self.at += 1;
            while let Some(b @ b'0'..=b'9') = self.peek() {
                mantissa = mantissa * 10 + i64::from(b - b'0');
                digits += 1;
                fraction += 1;
                self.at += 1;
                if digits > 15 {
                    return None;
                }
            }
            if fraction == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            return None;
        }
        #[allow(clippy::cast_precision_loss)] // below 10^15 < 2^53: exact
        let value = |m: i64| m as f64 / POW10[fraction];
        Some(match (fraction, negative) {
            (0, false) => Number::Int(mantissa),
            (0, true) if mantissa != 0 => Number::Int(-mantissa),
            (_, false) => Number::Float(value(mantissa)),
            (_, true) => Number::Float(-value(mantissa)),
        })
    }
}

enum Number {
    Int(i64),
    Float(f64),
}

#[cfg(test)]
mod tests {
    use super::super::{general, plan, tests::values_equal};
    use super::*;
    use crate::catalog::Catalog;
    use crate::source::simulator::{CityConfig, CitySimulator};

    /// Every flat type of the catalog, besides the city's four feeds.
    const TYPES: &str = "CREATE TABLE types (b BOOLEAN, t TINYINT, s SMALLINT NOT NULL, i INT, \
        n BIGINT COMMENT '[range -1000 1000]', f FLOAT, d DECIMAL(8, 3), day DATE, \
        local TIMESTAMP(3), ts TIMESTAMP_LTZ(3) NOT NULL, WATERMARK FOR ts AS ts) \
        WITH ('connector' = 'filesystem', 'path' = 'types.jsonl', 'format' = 'json')";

    fn tables() -> Vec<Vec<FieldSpec>> {
        let mut out: Vec<Vec<FieldSpec>> = Catalog::city().tables().iter().map(plan).collect();
        let types = Catalog::parse("types.sql", TYPES).expect("valid");
        out.push(plan(&types.tables()[0]));
        out
    }

    /// Records of every table, usual and unusual, each mutated many ways: wherever the fast
    /// path answers, it must give exactly what `serde_json` gives.
    #[test]
    fn fast_path_agrees_with_serde() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let pieces: &[&str] = &[
            "\"x\"",
            "\"\"",
            "\"沪A12345\"",
            "\"a\\\"b\"",
            "\"\\u00e9\"",
            "\"tab\tin\"",
            "null",
            "true",
            "false",
            "0",
            "-0",
            "7",
            "-12",
            "007",
            "1.5",
            "-0.0",
            "30.282514",
            "120.127848",
            "1.",
            ".5",
            "1e3",
            "2E-2",
            "12345678901234567",
            "123456789012345",
            "1.23456789012345",
            "1772431198244",
            "\"2026-03-02T06:00:00.002Z\"",
            "\"2026-03-02 06:00:00.002Z\"",
            "\"2026-03-02 06:00:00.002\"",
            "\"2026-03-02T06:00:00+08:00\"",
            "\"2026-02-30T00:00:00Z\"",
            "\"2026-03-02\"",
            "\"2026-02-30\"",
            "\"12.5\"",
            "\"12.3456\"",
            "99999.9995",
            "128",
            "-129",
            "32768",
            "2147483648",
            "1001",
            "-1000",
            "3.5e38",
            "[]",
            "{}",
            "[1,2]",
            "{\"a\":1}",
            "-",
            "nul",
            "tru",
            "fals",
            "90",
            "-90.0",
            "90.000001",
            "180",
            "-180.5",
            "181",
            "1e400",
        ];
        let mut fast_answers = 0;
        for fields in tables() {
            for _ in 0..5000 {
                let mut text = String::from(if next() % 17 == 0 { " { " } else { "{" });
                let mut first = true;
                for (i, f) in fields.iter().enumerate() {
                    if next() % 13 == 0 {
                        continue; // leave the field out
                    }
                    if !first {
                        text.push_str(if next() % 19 == 0 { " ,\n" } else { "," });
                    }
                    first = false;
                    let key = match next() % 41 {
                        0 => "extra",
                        1 => "other",
                        _ => f.name.as_str(),
                    };
                    let value = if next() % 12 == 0 {
                        pieces[(next() % pieces.len() as u64) as usize].to_owned()
                    } else {
                        usual_value(f, i, next())
                    };
                    text.push_str(&format!("\"{key}\":{value}"));
                    if next() % 97 == 0 {
                        // The same key again.
                        text.push_str(&format!(",\"{key}\":{value}"));
                    }
                }
                text.push_str(match next() % 23 {
                    0 => "} ",
                    1 => "}x",
                    2 => "",
                    3 => ",}",
                    _ => "}",
                });
                let all_present = next() % 5 == 0;
                let mut fast = vec![Val::Absent; fields.len()];
                if !scan_record(&fields, all_present, &text, &mut fast) {
                    continue;
                }
                fast_answers += 1;
                let mut slow = vec![Val::Absent; fields.len()];
                let serde = general::parse(&fields, all_present, text.as_bytes(), &mut slow);
                assert!(
                    serde.is_ok(),
                    "fast path accepted what serde rejects: {text}: {serde:?}"
                );
                assert!(
                    values_equal(&fast, &slow),
                    "{text}\nfast {fast:?}\nserde {slow:?}"
                );
            }
        }
        // The test is only worth something if the fast path answered for many records.
        assert!(
            fast_answers > 5000,
            "fast path answered {fast_answers} times"
        );
    }

    /// What the fast path leaves to the general parser so that it names the problem.
    #[test]
    fn declines_out_of_range_and_repeated_keys() {
        let police = plan(Catalog::city().table("police").expect("police"));
        for text in [
            r#"{"event_id":"p","ts":0,"lat":91,"lon":0}"#,
            r#"{"event_id":"p","ts":0,"lat":0,"lon":-180.5}"#,
            r#"{"event_id":"p","ts":0,"lat":0,"lon":0,"lat":1}"#,
            r#"{"event_id":"p","ts":0,"x":1,"lat":0,"lon":0,"x":2}"#,
            r#"{"a":0,"b":0,"c":0,"d":0,"e":0,"f":0,"g":0,"h":0,"i":0,"event_id":"p","ts":0,"lat":0,"lon":0}"#,
            r#"{"event_id":"p","ts":0,"lat":0}"#,
        ] {
            let mut values = vec![Val::Absent; police.len()];
            assert!(!scan_record(&police, false, text, &mut values), "{text}");
        }
        let mut values = vec![Val::Absent; police.len()];
        let edge = r#"{"event_id":"p","ts":0,"lat":-90,"lon":180.0,"a":0,"b":0}"#;
        assert!(scan_record(&police, false, edge, &mut values), "{edge}");
        // json.fail-on-missing-field: every column, nullable ones too.
        let mut values = vec![Val::Absent; police.len()];
        assert!(!scan_record(&police, true, edge, &mut values), "{edge}");
    }

    /// What producers write (the simulator writes as they do, RFC 3339 and epoch timestamps,
    /// nulls, Chinese text) takes the fast path: the general parser is for the unusual.
    #[test]
    fn producer_records_take_the_fast_path() {
        let mut sim = CitySimulator::new(CityConfig::with_seed(7));
        let plans: Vec<(String, Vec<FieldSpec>)> = Catalog::city()
            .tables()
            .iter()
            .map(|t| (t.name().to_string(), plan(t)))
            .collect();
        let mut out = Vec::new();
        for _ in 0..20_000 {
            out.clear();
            let feed = sim.next_event(&mut out);
            let text = std::str::from_utf8(&out).expect("the simulator writes UTF-8");
            let (_, fields) = plans
                .iter()
                .find(|(name, _)| name == feed.name())
                .expect("a city feed");
            let mut values = vec![Val::Absent; fields.len()];
            assert!(scan_record(fields, false, text, &mut values), "{text}");
        }
    }

    fn usual_value(f: &FieldSpec, i: usize, r: u64) -> String {
        match f.kind {
            Kind::Str => format!("\"v{i}-{r}\""),
            Kind::Bool => r.is_multiple_of(2).to_string(),
            Kind::Int { bits: 8 } => format!("{}", (r % 300) as i64 - 150),
            Kind::Int { .. } => format!("{}", (r % 2000) as i64 - 1000),
            // Coordinates mostly within their range, now and then just outside it.
            Kind::Float { .. } if f.range.is_some() => {
                format!("{}.{:06}", (r % 182) as i64 - 91, r % 1_000_000)
            }
            Kind::Float { .. } => format!("{}.{:06}", (r % 400) as i64 - 200, r % 1_000_000),
            Kind::Decimal { .. } if r.is_multiple_of(4) => {
                format!("\"{}.{:04}\"", r % 100, r % 10_000)
            }
            Kind::Decimal { .. } => format!("{}.{:04}", (r % 200_000) as i64 - 100_000, r % 10_000),
            Kind::Date => format!("\"2026-{:02}-{:02}\"", r % 12 + 1, r % 28 + 1),
            Kind::Ts { .. } if r.is_multiple_of(3) => {
                format!("{}", 1_772_431_198_244u64 + r % 100_000)
            }
            Kind::Ts { zoned: false } if r.is_multiple_of(2) => format!(
                "\"2026-03-02 06:{:02}:{:02}.{:03}\"",
                r % 60,
                (r / 60) % 60,
                r % 1000
            ),
            Kind::Ts { .. } => format!(
                "\"2026-03-02T06:{:02}:{:02}.{:03}Z\"",
                r % 60,
                (r / 60) % 60,
                r % 1000
            ),
            Kind::Row(_) | Kind::List(_) => "null".into(),
        }
    }
}
