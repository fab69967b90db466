//! Flink SQL built-in functions DataFusion lacks (or has with other meanings), with Flink's
//! semantics, so that queries copied from Flink (the Nexmark suite's among them) run unchanged:
//!
//! - `MOD(a, b)`: integer remainder, negative only when `a` is (Java's `%`); NULL for `b = 0`.
//! - `HOUR(ts)`: the hour of day (0-23) of a timestamp, in UTC (citybrain's session time zone).
//! - `SPLIT_INDEX(s, sep, i)`: the `i`-th (from 0) piece of `s` split at `sep`; NULL when out of
//!   range.
//! - `REGEXP_EXTRACT(s, regex [, group])`: the text of match group `group` (default 0, the whole
//!   match) of the first match of `regex` (Rust's regex syntax, a subset of Java's for the usual
//!   patterns); NULL when nothing matches.
//! - `DATE_FORMAT(ts, pattern)`: a timestamp formatted with a Java `SimpleDateFormat` pattern
//!   (`yyyy`, `MM`, `dd`, `HH`, `mm`, `ss`, `SSS` and `'quoted text'`), in UTC. Replaces
//!   DataFusion's `date_format`, its name for `to_char` with chrono's `%` patterns.
//!
//! Every function is NULL when an argument is.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, Int64Builder, StringBuilder};
use arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMillisecondType};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// Registers the Flink functions on `ctx` (after DataFusion's, which they replace by name).
pub fn register(ctx: &SessionContext) {
    for f in [
        Func::Mod,
        Func::Hour,
        Func::SplitIndex,
        Func::RegexpExtract,
        Func::DateFormat,
    ] {
        ctx.register_udf(ScalarUDF::from(Flink::new(f)));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Func {
    Mod,
    Hour,
    SplitIndex,
    RegexpExtract,
    DateFormat,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Flink {
    func: Func,
    signature: Signature,
}

impl Flink {
    fn new(func: Func) -> Self {
        Self {
            func,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

impl ScalarUDFImpl for Flink {
    fn name(&self) -> &str {
        match self.func {
            Func::Mod => "mod",
            Func::Hour => "hour",
            Func::SplitIndex => "split_index",
            Func::RegexpExtract => "regexp_extract",
            Func::DateFormat => "date_format",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.func {
            Func::Mod | Func::Hour => DataType::Int64,
            Func::SplitIndex | Func::RegexpExtract | Func::DateFormat => DataType::Utf8,
        })
    }

    fn coerce_types(&self, got: &[DataType]) -> Result<Vec<DataType>> {
        let (usage, want): (&str, Vec<DataType>) = match self.func {
            Func::Mod => (
                "MOD(integer, integer)",
                vec![DataType::Int64, DataType::Int64],
            ),
            Func::Hour => ("HOUR(timestamp)", vec![ts_type()]),
            Func::SplitIndex => (
                "SPLIT_INDEX(string, separator, index)",
                vec![DataType::Utf8, DataType::Utf8, DataType::Int64],
            ),
            Func::RegexpExtract if got.len() == 2 => (
                "REGEXP_EXTRACT(string, regex [, group])",
                vec![DataType::Utf8, DataType::Utf8],
            ),
            Func::RegexpExtract => (
                "REGEXP_EXTRACT(string, regex [, group])",
                vec![DataType::Utf8, DataType::Utf8, DataType::Int64],
            ),
            Func::DateFormat => (
                "DATE_FORMAT(timestamp, pattern)",
                vec![ts_type(), DataType::Utf8],
            ),
        };
        if got.len() != want.len() {
            return plan_err!("{usage}: {} argument(s) given", got.len());
        }
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let ok = g.is_null()
                || match w {
                    DataType::Int64 => g.is_integer(),
                    DataType::Utf8 => {
                        matches!(g, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
                    }
                    _ => matches!(
                        g,
                        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
                    ),
                };
            if !ok {
                return plan_err!("{usage}: argument {} cannot be {g}", i + 1);
            }
        }
        Ok(want)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let rows = args.number_rows;
        let out: ArrayRef = match self.func {
            Func::Mod => {
                let (a, b) = (int(&arrays[0]), int(&arrays[1]));
                Arc::new(
                    (0..rows)
                        .map(|i| match (get_int(a, i), get_int(b, i)) {
                            (Some(x), Some(y)) if y != 0 => Some(x.wrapping_rem(y)),
                            _ => None,
                        })
                        .collect::<Int64Array>(),
                )
            }
            Func::Hour => {
                let ts = arrays[0].as_primitive::<TimestampMillisecondType>();
                let mut b = Int64Builder::with_capacity(rows);
                for i in 0..rows {
                    if ts.is_null(i) {
                        b.append_null();
                    } else {
                        b.append_value(ts.value(i).div_euclid(3_600_000).rem_euclid(24));
                    }
                }
                Arc::new(b.finish())
            }
            Func::SplitIndex => {
                let (s, sep, idx) = (
                    arrays[0].as_string::<i32>(),
                    arrays[1].as_string::<i32>(),
                    int(&arrays[2]),
                );
                let mut b = StringBuilder::with_capacity(rows, rows * 8);
                for i in 0..rows {
                    let piece = (!s.is_null(i) && !sep.is_null(i))
                        .then(|| get_int(idx, i))
                        .flatten()
                        .and_then(|n| usize::try_from(n).ok())
                        .and_then(|n| {
                            let sep = sep.value(i);
                            if sep.is_empty() {
                                return None;
                            }
                            s.value(i).split(sep).nth(n)
                        });
                    b.append_option(piece);
                }
                Arc::new(b.finish())
            }
            Func::RegexpExtract => {
                let (s, re) = (arrays[0].as_string::<i32>(), arrays[1].as_string::<i32>());
                let group = arrays.get(2).map(int);
                let mut compiled: Option<(String, regex::Regex)> = None;
                let mut b = StringBuilder::with_capacity(rows, rows * 8);
                for i in 0..rows {
                    let g = match group {
                        Some(g) => get_int(g, i),
                        None => Some(0),
                    };
                    if s.is_null(i) || re.is_null(i) || g.is_none() {
                        b.append_null();
                        continue;
                    }
                    let pattern = re.value(i);
                    if compiled.as_ref().is_none_or(|(p, _)| p != pattern) {
                        match regex::Regex::new(pattern) {
                            Ok(r) => compiled = Some((pattern.to_string(), r)),
                            Err(e) => {
                                return exec_err!("REGEXP_EXTRACT: bad regex {pattern:?}: {e}");
                            }
                        }
                    }
                    let (_, r) = compiled.as_ref().expect("compiled above");
                    let text = usize::try_from(g.unwrap_or(0)).ok().and_then(|g| {
                        r.captures(s.value(i))
                            .and_then(|c| c.get(g))
                            .map(|m| m.as_str())
                    });
                    b.append_option(text);
                }
                Arc::new(b.finish())
            }
            Func::DateFormat => {
                let ts = arrays[0].as_primitive::<TimestampMillisecondType>();
                let pattern = arrays[1].as_string::<i32>();
                let mut b = StringBuilder::with_capacity(rows, rows * 16);
                let mut cached: Option<(String, String)> = None;
                for i in 0..rows {
                    if ts.is_null(i) || pattern.is_null(i) {
                        b.append_null();
                        continue;
                    }
                    let p = pattern.value(i);
                    if cached.as_ref().is_none_or(|(java, _)| java != p) {
                        cached = Some((p.to_string(), chrono_pattern(p)?));
                    }
                    let (_, chrono) = cached.as_ref().expect("set above");
                    let t =
                        chrono::DateTime::from_timestamp_millis(ts.value(i)).unwrap_or_default();
                    b.append_value(t.format(chrono).to_string());
                }
                Arc::new(b.finish())
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

fn int(a: &ArrayRef) -> &Int64Array {
    a.as_primitive::<Int64Type>()
}

fn get_int(a: &Int64Array, i: usize) -> Option<i64> {
    (!a.is_null(i)).then(|| a.value(i))
}

/// A Java `SimpleDateFormat` pattern as a chrono format string.
fn chrono_pattern(java: &str) -> Result<String> {
    let mut out = String::new();
    let chars: Vec<char> = java.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let run = chars[i..].iter().take_while(|&&d| d == c).count();
        match c {
            '\'' => {
                let end = chars[i + 1..].iter().position(|&d| d == '\'');
                match end {
                    Some(0) => out.push('\''),
                    Some(n) => chars[i + 1..i + 1 + n]
                        .iter()
                        .for_each(|&d| push_literal(&mut out, d)),
                    None => return exec_err!("DATE_FORMAT: unclosed quote in {java:?}"),
                }
                i += end.unwrap_or(0) + 2;
                continue;
            }
            'y' if run == 2 => out.push_str("%y"),
            'y' => out.push_str("%Y"),
            'M' if run >= 2 => out.push_str("%m"),
            'd' if run >= 2 => out.push_str("%d"),
            'H' if run >= 2 => out.push_str("%H"),
            'm' if run >= 2 => out.push_str("%M"),
            's' if run >= 2 => out.push_str("%S"),
            'S' if run == 3 => out.push_str("%3f"),
            c if c.is_ascii_alphabetic() => {
                return exec_err!(
                    "DATE_FORMAT: pattern letter {:?} of {java:?} is not supported (yyyy MM dd HH mm ss SSS)",
                    c.to_string().repeat(run)
                );
            }
            c => {
                for _ in 0..run {
                    push_literal(&mut out, c);
                }
            }
        }
        i += run;
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn one(sql: &str) -> String {
        let ctx = SessionContext::new();
        register(&ctx);
        let batches = ctx
            .sql(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let col = batches[0].column(0);
        arrow::util::display::array_value_to_string(col, 0).expect("displayable")
    }

    #[tokio::test]
    async fn flinks_functions_give_flinks_answers() {
        let ts = "CAST('2026-03-02T20:05:09.007Z' AS TIMESTAMP WITH TIME ZONE)";
        let url = "'https://www.nexmark.com/abc/d_e/fgh/item.htm?query=1&channel_id=42'";
        let cases = [
            ("SELECT mod(CAST(1230 AS BIGINT), 123)".to_string(), "0"),
            ("SELECT mod(CAST(-7 AS BIGINT), 3)".into(), "-1"),
            ("SELECT mod(CAST(7 AS BIGINT), 0)".into(), ""),
            (format!("SELECT hour({ts})"), "20"),
            (format!("SELECT split_index({url}, '/', 3)"), "abc"),
            (format!("SELECT split_index({url}, '/', 5)"), "fgh"),
            (format!("SELECT split_index({url}, '/', 9)"), ""),
            (
                format!("SELECT regexp_extract({url}, '(&|^)channel_id=([^&]*)', 2)"),
                "42",
            ),
            (
                "SELECT regexp_extract('query=1', '(&|^)channel_id=([^&]*)', 2)".into(),
                "",
            ),
            ("SELECT regexp_extract('abc123', '[0-9]+')".into(), "123"),
            (
                format!("SELECT date_format({ts}, 'yyyy-MM-dd')"),
                "2026-03-02",
            ),
            (format!("SELECT date_format({ts}, 'HH:mm')"), "20:05"),
            (
                format!("SELECT date_format({ts}, 'yyyy-MM-dd''T''HH:mm:ss.SSS')"),
                "2026-03-02T20:05:09.007",
            ),
        ];
        for (sql, want) in cases {
            assert_eq!(one(&sql).await, want, "{sql}");
        }
    }

    #[tokio::test]
    async fn nulls_and_bad_arguments() {
        assert_eq!(one("SELECT split_index(NULL, '/', 1)").await, "");
        assert_eq!(one("SELECT hour(NULL)").await, "");
        let ctx = SessionContext::new();
        register(&ctx);
        let e = ctx
            .sql("SELECT mod('a', 2)")
            .await
            .expect_err("a string is no integer");
        assert!(e.to_string().contains("MOD(integer, integer)"), "{e}");
        let e = ctx
            .sql("SELECT date_format(CAST('2026-03-02T00:00:00Z' AS TIMESTAMP WITH TIME ZONE), 'EEE')")
            .await
            .expect("plans")
            .collect()
            .await
            .expect_err("unsupported letter");
        assert!(e.to_string().contains("not supported"), "{e}");
    }
}
