//! Values written as text in JSON: timestamps, dates and decimals, read the same way by both
//! parsers (the fast scanner and the general `serde_json` path), so that a record's values and
//! reasons do not depend on which one ran.

/// A timestamp string as epoch milliseconds. `zoned` is `TIMESTAMP_LTZ` (an instant: the text
/// must say its offset); otherwise `TIMESTAMP` (a wall-clock time read as UTC, the offset
/// optional). Accepted:
///
/// - RFC 3339 with an offset, `2026-03-02T06:00:00.250Z`, `2026-03-02T14:00:00+08:00`;
/// - Flink's JSON shapes: `2026-03-02 06:00:00.250Z` (`TIMESTAMP_LTZ`, SQL format) and, for
///   `TIMESTAMP`, `2026-03-02 06:00:00.250` and `2026-03-02T06:00:00.250` (SQL and ISO-8601).
///
/// Precision beyond milliseconds is truncated, as chrono's `timestamp_millis` does.
///
/// # Errors
/// Why the text is no such timestamp (chrono's message for an RFC 3339 attempt).
pub(crate) fn timestamp(s: &str, zoned: bool) -> Result<i64, String> {
    if let Some((millis, z)) = civil_millis(s)
        && (z || !zoned)
    {
        return Ok(millis);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            if zoned {
                format!("not an RFC 3339 timestamp: {e}")
            } else {
                format!(
                    "not a timestamp: expected yyyy-MM-dd HH:mm:ss[.SSS] (or RFC 3339, or \
                     integer epoch milliseconds): {e}"
                )
            }
        })
}

/// [`timestamp`], `None` instead of the reason.
pub(crate) fn timestamp_opt(s: &str, zoned: bool) -> Option<i64> {
    match civil_millis(s) {
        Some((millis, z)) if z || !zoned => Some(millis),
        _ => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis()),
    }
}

/// `YYYY-MM-DD(T| )HH:MM:SS[.fraction][Z]` as epoch milliseconds (read as UTC; the fraction
/// truncated to milliseconds) and whether it ends in `Z`, without the general RFC 3339
/// parser. `None` for any other form or an out-of-range field: those go to chrono, which gives
/// the same value or the error message.
pub(crate) fn civil_millis(s: &str) -> Option<(i64, bool)> {
    let b = s.as_bytes();
    let z = b.last() == Some(&b'Z');
    let end = b.len() - usize::from(z);
    if end < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || (b[10] != b'T' && b[10] != b' ')
        || b[13] != b':'
        || b[16] != b':'
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
    let millis = match &b[19..end] {
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
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    Some((
        (((days * 24 + hour) * 60 + minute) * 60 + second) * 1000 + millis,
        z,
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`);
/// `None` for a month or day that does not exist.
fn days_from_civil(year: i64, month: i64, day: i64) -> Option<i64> {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > month_days {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    Some(era * 146_097 + day_of_era - 719_468)
}

/// A `DATE` as days since 1970-01-01, from `YYYY-MM-DD` (Flink's JSON shape).
///
/// # Errors
/// Why it is no such date.
pub(crate) fn date(s: &str) -> Result<i32, String> {
    let b = s.as_bytes();
    let bad = || {
        format!(
            "not a date: expected YYYY-MM-DD, found {} characters",
            s.len()
        )
    };
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let digits = |from: usize, to: usize| -> Option<i64> {
        b[from..to].iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let (Some(y), Some(m), Some(d)) = (digits(0, 4), digits(5, 7), digits(8, 10)) else {
        return Err(bad());
    };
    days_from_civil(y, m, d)
        .and_then(|days| i32::try_from(days).ok())
        .ok_or_else(|| "not a date: no such day".to_string())
}

/// A decimal number's text (`-12.345`, `1e3`, as JSON or a JSON string writes it) as the
/// unscaled value of `DECIMAL(precision, scale)`: rounded half away from zero to `scale`
/// digits (Java's `HALF_UP`, as Flink does).
///
/// # Errors
/// When the text is no number, or the value needs more than `precision` digits.
pub(crate) fn decimal(text: &str, precision: u8, scale: u8) -> Result<i128, String> {
    let t = text.trim();
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (
            &t[..i],
            t[i + 1..]
                .parse::<i32>()
                .map_err(|_| "not a decimal number".to_string())?,
        ),
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err("not a decimal number".to_string());
    }
    let too_large = || format!("out of range for DECIMAL({precision}, {scale})");
    let all = || int.bytes().chain(frac.bytes()).map(|b| b - b'0');
    let leading = all().take_while(|d| *d == 0).count();
    if leading == int.len() + frac.len() {
        return Ok(0);
    }
    // The value is 0.D × 10^point, D the digits after the leading zeros; `keep` of them (and
    // zeros after them) make the unscaled integer, the next one rounds it.
    let len = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let point = len(int.len()) - len(leading) + i64::from(exponent);
    let keep = point + i64::from(scale);
    if keep > i64::from(precision) {
        return Err(too_large());
    }
    let mut digits = all().skip(leading);
    let mut value: i128 = 0;
    for _ in 0..keep.max(0) {
        value = value * 10 + i128::from(digits.next().unwrap_or(0));
    }
    let next = if keep >= 0 {
        digits.next().unwrap_or(0)
    } else {
        0
    };
    if next >= 5 {
        value += 1;
    }
    if value >= 10i128.pow(u32::from(precision)) {
        return Err(too_large());
    }
    Ok(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

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
            assert_eq!(civil_millis(s), Some((chrono, true)), "{s}");
            assert_eq!(timestamp(s, true), Ok(chrono), "{s}");
        }
    }

    #[test]
    fn unusual_timestamps_are_left_to_chrono() {
        for s in [
            "2026-03-02T06:00:00+08:00",
            "2026-03-02t06:00:00z",
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-03-02T24:00:00Z",
            "2026-03-02T23:59:60Z",
            "2026-03-02T06:00:00.Z",
            "2026-03-02T06:00:00.1234567890Z",
            "2026-03-02T06:00Z",
            "+2026-03-02T06:00:00Z",
        ] {
            assert_eq!(civil_millis(s), None, "{s}");
        }
    }

    #[test]
    fn flinks_shapes_by_type() {
        let t0 = 1_772_431_200_250;
        // TIMESTAMP_LTZ: an instant, its zone said.
        assert_eq!(timestamp("2026-03-02 06:00:00.250Z", true), Ok(t0));
        assert_eq!(timestamp("2026-03-02T14:00:00.250+08:00", true), Ok(t0));
        assert!(timestamp("2026-03-02 06:00:00.250", true).is_err());
        assert!(timestamp("2026-03-02T06:00:00", true).is_err());
        // TIMESTAMP: a wall-clock time, read as UTC.
        assert_eq!(timestamp("2026-03-02 06:00:00.250", false), Ok(t0));
        assert_eq!(timestamp("2026-03-02T06:00:00.25", false), Ok(t0));
        assert_eq!(timestamp("2026-03-02T06:00:00.250Z", false), Ok(t0));
        let e = timestamp("yesterday", false).expect_err("no timestamp");
        assert!(e.starts_with("not a timestamp: expected yyyy-MM-dd"), "{e}");
        assert_eq!(timestamp_opt("2026-03-02 06:00:00.250", false), Some(t0));
        assert_eq!(timestamp_opt("2026-03-02 06:00:00.250", true), None);
    }

    #[test]
    fn dates() {
        assert_eq!(date("1970-01-01"), Ok(0));
        assert_eq!(date("2026-03-02"), Ok(20_514));
        assert_eq!(date("1969-12-31"), Ok(-1));
        assert!(date("2026-02-30").is_err());
        assert!(date("2026-3-2").is_err());
        assert!(date("20260302").is_err());
    }

    #[test]
    fn decimals_round_half_up_and_check_precision() {
        let d = |t: &str, p: u8, s: u8| decimal(t, p, s);
        assert_eq!(d("12.345", 10, 2), Ok(1235));
        assert_eq!(d("-12.345", 10, 2), Ok(-1235));
        assert_eq!(d("12.344", 10, 2), Ok(1234));
        assert_eq!(d("12", 10, 2), Ok(1200));
        assert_eq!(d("0.005", 10, 2), Ok(1));
        assert_eq!(d("0.004", 10, 2), Ok(0));
        assert_eq!(d("1e3", 10, 2), Ok(100_000));
        assert_eq!(d("1.5E-1", 10, 2), Ok(15));
        assert_eq!(d("5e-3", 10, 2), Ok(1));
        assert_eq!(d("4e-3", 10, 2), Ok(0));
        assert_eq!(d("5e-4", 10, 2), Ok(0));
        assert_eq!(d("0e999999", 10, 2), Ok(0));
        assert!(d("1e999999", 10, 2).is_err());
        assert_eq!(d("1e-999999", 10, 2), Ok(0));
        assert_eq!(d("007.50", 3, 1), Ok(75));
        assert_eq!(d("999.99", 5, 2), Ok(99_999));
        assert!(d("999.995", 5, 2).is_err(), "rounds to 1000.00");
        assert!(d("1000", 5, 2).is_err());
        assert!(d("abc", 5, 2).is_err());
        assert!(d("", 5, 2).is_err());
        assert!(d("1.2.3", 5, 2).is_err());
        assert_eq!(
            d("12345678901234567890.123456789", 38, 9),
            Ok(12_345_678_901_234_567_890_123_456_789)
        );
    }
}
