//! Flink SQL built-in functions DataFusion lacks (or has with other meanings), with Flink's
//! semantics, so that queries copied from Flink (the Nexmark suite's among them) run unchanged:
//!
//! - `MOD(a, b)`: integer remainder, negative only when `a` is (Java's `%`); NULL for `b = 0`.
//! - `HOUR(ts)`: the hour of day (0-23) of a timestamp, in UTC (citybrain's session time zone).
//! - `SPLIT_INDEX(s, sep, i)`: the `i`-th (from 0) piece of `s` split at `sep`; NULL when out of
//!   range.
//! - `REGEXP_EXTRACT(s, regex [, group])`: the text of match group `group` (default 0, the whole
//!   match) of the first match of `regex` (the regex syntax of DataFusion's `regexp_match`, a
//!   subset of Java's for the usual patterns); NULL when nothing matches or the group took no
//!   part in the match.
//! - `DATE_FORMAT(ts, pattern)`: a timestamp formatted with a Java `SimpleDateFormat` pattern
//!   (`yyyy`, `MM`, `dd`, `HH`, `mm`, `ss`, `SSS` and `'quoted text'`), in UTC. Replaces
//!   DataFusion's `date_format`, its name for `to_char` with chrono's `%` patterns.
//!
//! Every function is NULL when an argument is.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, Int64Builder, Scalar, StringArray, StringBuilder,
};
use arrow::compute::regexp_match;
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
                regexp_extract(s, re, group, rows)?
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

/// `REGEXP_EXTRACT` over arrays, with arrow's `regexp_match` (DataFusion's regex engine).
/// For each distinct pattern and group, the pattern is rewritten so that the wanted group is
/// its only capturing group (every other one made non-capturing): `regexp_match` then yields
/// that group alone, an empty list when it took no part in the match and NULL when nothing
/// matches, which are Flink's answers (a group Java reports as `null` is NULL).
fn regexp_extract(
    s: &arrow::array::StringArray,
    re: &arrow::array::StringArray,
    group: Option<&Int64Array>,
    rows: usize,
) -> Result<ArrayRef> {
    let wanted = |i: usize| -> Option<(&str, i64)> {
        if re.is_null(i) {
            return None;
        }
        let g = match group {
            Some(g) => get_int(g, i)?,
            None => 0,
        };
        Some((re.value(i), g))
    };
    // The usual call has a literal pattern and group: one pass over the whole column.
    let first = (0..rows).find_map(wanted);
    let uniform = first.is_some_and(|f| (0..rows).all(|i| wanted(i).is_none_or(|w| w == f)));
    let mut out = StringBuilder::with_capacity(rows, rows * 8);
    if uniform && let Some((pattern, g)) = first {
        let lists = only_group(pattern, g).and_then(|only| matches(s, &only));
        for i in 0..rows {
            let value = lists.as_ref().filter(|_| wanted(i).is_some());
            out.append_option(value.and_then(|l| first_of(l, i)));
        }
        return Ok(Arc::new(out.finish()));
    }
    for i in 0..rows {
        let Some((pattern, g)) = wanted(i).filter(|_| !s.is_null(i)) else {
            out.append_null();
            continue;
        };
        let one = StringArray::from(vec![s.value(i)]);
        let lists = only_group(pattern, g).and_then(|only| matches(&one, &only));
        out.append_option(lists.and_then(|l| first_of(&l, 0)));
    }
    Ok(Arc::new(out.finish()))
}

/// `regexp_match` of `pattern` over `s`; `None` for a pattern that is no regex (Flink's
/// `REGEXP_EXTRACT` is NULL then too).
fn matches(s: &StringArray, pattern: &str) -> Option<arrow::array::ListArray> {
    regexp_match(s, &Scalar::new(StringArray::from(vec![pattern])), None)
        .ok()
        .map(|m| m.as_list::<i32>().clone())
}

/// The first string of list `i`, if the list is there and not empty.
fn first_of(lists: &arrow::array::ListArray, i: usize) -> Option<String> {
    if lists.is_null(i) {
        return None;
    }
    let values = lists.value(i);
    let values = values.as_string::<i32>();
    (!values.is_empty() && values.is_valid(0)).then(|| values.value(0).to_string())
}

/// `pattern` with capturing group `group` (1-based; 0 for the whole match) the only capturing
/// one: `(` and named groups `(?P<n>` / `(?<n>` become `(?:` elsewhere. Escapes (`\(`) and
/// character classes (`[(]`) are left alone. `None` when the pattern has no such group (Flink:
/// NULL).
fn only_group(pattern: &str, group: i64) -> Option<String> {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    let mut n = 0i64;
    let mut class = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            '[' => {
                class += 1;
                out.push(c);
                // A `]` right after `[` or `[^` is a literal.
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push(']');
                    chars.next();
                }
            }
            ']' if class > 0 => {
                class -= 1;
                out.push(c);
            }
            '(' if class == 0 => {
                let named = if chars.peek() == Some(&'?') {
                    let rest: String = chars.clone().take(3).collect();
                    if rest.starts_with("?P<") {
                        Some(3)
                    } else if rest.starts_with("?<")
                        && !rest.starts_with("?<=")
                        && !rest.starts_with("?<!")
                    {
                        Some(2)
                    } else {
                        None
                    }
                } else {
                    Some(0)
                };
                match named {
                    None => out.push('('),
                    Some(skip) => {
                        n += 1;
                        if skip > 0 {
                            for _ in 0..skip {
                                chars.next();
                            }
                            // The name and its closing `>`.
                            for d in chars.by_ref() {
                                if d == '>' {
                                    break;
                                }
                            }
                        }
                        out.push_str(if n == group { "(" } else { "(?:" });
                    }
                }
            }
            c => out.push(c),
        }
    }
    // Group 0: no capturing group is left, and regexp_match yields the whole match.
    (0..=n).contains(&group).then_some(out)
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
            // A group that took no part in the match is NULL, the groups after it keep
            // their numbers.
            ("SELECT regexp_extract('ab', '(a)|(b)', 2)".into(), ""),
            ("SELECT regexp_extract('b', '(a)|(b)', 2)".into(), "b"),
            (
                "SELECT regexp_extract('x(1)', '[(](?P<n>[0-9])\\)', 1)".into(),
                "1",
            ),
            ("SELECT regexp_extract('abc', '(b)', 3)".into(), ""),
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
