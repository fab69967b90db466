//! Event time as epoch milliseconds, RFC 3339 text and human durations.

use chrono::{DateTime, SecondsFormat, Utc};

/// Epoch milliseconds (UTC).
pub type Ms = i64;

/// One minute in milliseconds.
pub const MINUTE: Ms = 60_000;
/// One hour in milliseconds.
pub const HOUR: Ms = 60 * MINUTE;

/// `ms` as RFC 3339 UTC with milliseconds (`2026-03-02T08:00:00.000Z`).
pub fn rfc3339(ms: Ms) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// Reads an RFC 3339 time (any offset) as epoch milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<Ms> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Parses `90s`, `15m`, `2h`, `1h30m`, `500ms`, `1d` (units `ms`, `s`, `m`/`min`, `h`, `d`;
/// a bare `0` is zero) into milliseconds.
///
/// # Errors
/// A message saying what is wrong, for the caller to put after the field's name.
pub fn parse_duration(s: &str) -> Result<Ms, String> {
    let text = s.trim();
    if text == "0" {
        return Ok(0);
    }
    let bad = || format!("`{s}` is not a duration like 90s, 15m, 2h or 1h30m");
    let mut total: Ms = 0;
    let mut rest = text;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: Ms = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = rest[..unit_len].trim();
        let scale = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" | "min" => MINUTE,
            "h" => HOUR,
            "d" => 24 * HOUR,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(scale)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Milliseconds as the shortest of `1h30m`, `15m`, `90s`, `250ms`.
pub fn format_duration(ms: Ms) -> String {
    if ms == 0 {
        return "0".into();
    }
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let mut s = ms / 1000;
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if s >= size {
            out.push_str(&format!("{}{unit}", s / size));
            s %= size;
        }
    }
    out
}

/// Serde helpers: epoch milliseconds as RFC 3339 strings.
pub mod serde_ms {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{Ms, parse_rfc3339, rfc3339};

    /// Writes `ms` as RFC 3339.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(ms: &Ms, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339(*ms))
    }

    /// Reads RFC 3339.
    ///
    /// # Errors
    /// When the text is not RFC 3339.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Ms, D::Error> {
        let s = String::deserialize(d)?;
        parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("`{s}` is not an RFC 3339 time")))
    }

    /// The same for optional times (`null` when absent).
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        use super::super::{Ms, parse_rfc3339, rfc3339};

        /// Writes `ms` as RFC 3339 or null.
        ///
        /// # Errors
        /// The serializer's.
        pub fn serialize<S: Serializer>(ms: &Option<Ms>, s: S) -> Result<S::Ok, S::Error> {
            match ms {
                Some(ms) => s.serialize_str(&rfc3339(*ms)),
                None => s.serialize_none(),
            }
        }

        /// Reads RFC 3339 or null.
        ///
        /// # Errors
        /// When the text is not RFC 3339.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Ms>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(s) => parse_rfc3339(&s).map(Some).ok_or_else(|| {
                    serde::de::Error::custom(format!("`{s}` is not an RFC 3339 time"))
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_print() {
        assert_eq!(parse_duration("15m"), Ok(15 * MINUTE));
        assert_eq!(parse_duration("1h30m"), Ok(90 * MINUTE));
        assert_eq!(parse_duration("90s"), Ok(90_000));
        assert_eq!(parse_duration("250ms"), Ok(250));
        assert_eq!(parse_duration("2 h"), Ok(2 * HOUR));
        assert_eq!(parse_duration("0"), Ok(0));
        for bad in ["", "m", "15", "15 parsecs", "-5m", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(90 * MINUTE), "1h30m");
        assert_eq!(format_duration(250), "250ms");
        assert_eq!(
            parse_duration(&format_duration(26 * HOUR + 5000)),
            Ok(26 * HOUR + 5000)
        );
    }

    #[test]
    fn times_round_trip() {
        let t = parse_rfc3339("2026-03-02T08:00:00.123+08:00").expect("time");
        assert_eq!(rfc3339(t), "2026-03-02T00:00:00.123Z");
    }
}
