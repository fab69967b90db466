//! The general parser: any JSON, through `serde_json` with a visitor per field kind, and the
//! reason when a record breaks the table's declaration. Nested `ROW`s and `ARRAY`s are read
//! here; the fast scanner leaves them (and every record it does not take) to this path.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::error::Category;

use super::{FieldSpec, Kind, Val, check_float, check_int, decimal_value, field_index, text};

/// 2^63: the smallest magnitude no `i64` reaches (`i64::MIN` is -2^63, but a double read as
/// -2^63 is as likely a rounded larger integer).
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// Parses `payload` (a JSON object) against `fields` into `values` (all `Absent` on entry).
/// A payload that is not UTF-8 goes the byte-slice way, which reports where the bad bytes are.
///
/// # Errors
/// Why the record is malformed.
pub(super) fn parse<'a>(
    fields: &[FieldSpec],
    all_present: bool,
    payload: &'a [u8],
    values: &mut [Val<'a>],
) -> Result<(), String> {
    match std::str::from_utf8(payload) {
        Ok(text) => parse_with(
            serde_json::Deserializer::from_str(text),
            fields,
            all_present,
            values,
        ),
        Err(_) => parse_with(
            serde_json::Deserializer::from_slice(payload),
            fields,
            all_present,
            values,
        ),
    }
}

fn parse_with<'a, R: serde_json::de::Read<'a>>(
    mut de: serde_json::Deserializer<R>,
    fields: &[FieldSpec],
    all_present: bool,
    values: &mut [Val<'a>],
) -> Result<(), String> {
    RecordSeed {
        fields,
        all_present,
        values,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end())
    .map_err(describe_error)
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

/// An object read field by field into `values`: the record, or a `ROW`.
struct RecordSeed<'v, 'f, 'a> {
    fields: &'f [FieldSpec],
    all_present: bool,
    values: &'v mut [Val<'a>],
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // Producers write fields in the declared order, so the field after the last one found
        // is tried first.
        let mut hint = 0;
        // Keys the declaration does not know, kept to find one given twice (rare: few records
        // carry extra keys at all).
        let mut unknown: Vec<Cow<'de, str>> = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed {
            fields: self.fields,
            hint,
        })? {
            match key {
                Key::Known(i) => {
                    if !matches!(self.values[i], Val::Absent) {
                        return Err(A::Error::duplicate_field_path(&self.fields[i].path));
                    }
                    self.values[i] = map.next_value_seed(ValueSeed {
                        spec: &self.fields[i],
                    })?;
                    hint = i + 1;
                }
                Key::Unknown(name) => {
                    unknown.push(name);
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if let Some(name) = duplicate(&mut unknown) {
            return Err(de::Error::custom(format_args!("duplicate field `{name}`")));
        }
        for (spec, value) in self.fields.iter().zip(self.values.iter()) {
            if matches!(value, Val::Absent) && (spec.required || self.all_present) {
                return Err(de::Error::custom(format_args!(
                    "missing field `{}`",
                    spec.path
                )));
            }
        }
        Ok(())
    }
}

/// `duplicate_field` with the field's path (serde's takes a `&'static str`).
trait DuplicatePath: de::Error {
    fn duplicate_field_path(path: &str) -> Self {
        Self::custom(format_args!("duplicate field `{path}`"))
    }
}

impl<E: de::Error> DuplicatePath for E {}

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

/// A record's key: a declared field, or another (ignored, but checked for repeats).
enum Key<'de> {
    Known(usize),
    Unknown(Cow<'de, str>),
}

/// Maps a key to the index of the declared field, or to the key itself for fields to ignore.
struct KeySeed<'f> {
    fields: &'f [FieldSpec],
    /// The index to try first.
    hint: usize,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
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

/// Parses the value of one declared field, with messages naming the field.
struct ValueSeed<'f> {
    spec: &'f FieldSpec,
}

impl ValueSeed<'_> {
    fn fail<E: de::Error>(&self, r: Result<Val<'static>, String>) -> Result<Val<'static>, E> {
        r.map_err(E::custom)
    }

    fn out_of_range<E: de::Error>(&self) -> E {
        E::custom(format_args!(
            "field `{}`: integer out of range (beyond a signed 64-bit integer)",
            self.spec.path
        ))
    }

    fn wrong_type<E: de::Error>(&self, found: &str) -> E {
        E::custom(format_args!(
            "field `{}`: expected {}, found {found}",
            self.spec.path,
            self.spec.kind.expected()
        ))
    }

    fn int<E: de::Error>(&self, v: i64) -> Result<Val<'static>, E> {
        self.fail(check_int(self.spec, v).map(Val::Int))
    }

    fn float<E: de::Error>(&self, v: f64) -> Result<Val<'static>, E> {
        self.fail(check_float(self.spec, v).map(Val::Float))
    }

    /// A string where the field is not `STRING`: a timestamp, a date, a decimal, or a type
    /// error.
    fn non_utf8_string<E: de::Error>(&self, s: &str) -> Result<Val<'static>, E> {
        let path = &self.spec.path;
        match self.spec.kind {
            Kind::Ts { zoned } => text::timestamp(s, zoned)
                .map(Val::Int)
                .map_err(|e| E::custom(format_args!("field `{path}`: {e}"))),
            Kind::Date => text::date(s)
                .map(|d| Val::Int(i64::from(d)))
                .map_err(|e| E::custom(format_args!("field `{path}`: {e}"))),
            Kind::Decimal { .. } => self.fail(decimal_value(self.spec, s)),
            _ => Err(self.wrong_type("string")),
        }
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Val<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Val<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "field `{}`: {}",
            self.spec.path,
            self.spec.kind.expected()
        )
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        if self.spec.required {
            Err(E::custom(format_args!(
                "field `{}`: must not be null",
                self.spec.path
            )))
        } else {
            Ok(Val::Null)
        }
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visit_unit()
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        match self.spec.kind {
            Kind::Bool => Ok(Val::Bool(v)),
            _ => Err(self.wrong_type("boolean")),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        match self.spec.kind {
            Kind::Int { .. } => self.int(v),
            Kind::Ts { .. } => Ok(Val::Int(v)),
            #[allow(clippy::cast_precision_loss)] // JSON numbers are doubles anyway
            Kind::Float { .. } => self.float(v as f64),
            Kind::Decimal { .. } => self.fail(decimal_value(self.spec, &v.to_string())),
            _ => Err(self.wrong_type("number")),
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        match self.spec.kind {
            Kind::Int { .. } | Kind::Ts { .. } => match i64::try_from(v) {
                Ok(v) => self.visit_i64(v),
                Err(_) => Err(self.out_of_range()),
            },
            #[allow(clippy::cast_precision_loss)] // JSON numbers are doubles anyway
            Kind::Float { .. } => self.float(v as f64),
            Kind::Decimal { .. } => self.fail(decimal_value(self.spec, &v.to_string())),
            _ => Err(self.wrong_type("number")),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        match self.spec.kind {
            Kind::Float { .. } => self.float(v),
            // serde_json reads an integer too large for 64 bits as a double: a whole number
            // this large was (in all likelihood) written as an integer.
            Kind::Int { .. } | Kind::Ts { .. } if v.fract() == 0.0 && v.abs() >= TWO_POW_63 => {
                Err(self.out_of_range())
            }
            Kind::Int { .. } | Kind::Ts { .. } => Err(self.wrong_type("a non-integer number")),
            // The shortest text that reads back as `v`: the digits written, up to 15 or so.
            Kind::Decimal { .. } => self.fail(decimal_value(self.spec, &v.to_string())),
            _ => Err(self.wrong_type("number")),
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

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Kind::List(element) = &self.spec.kind else {
            return Err(self.wrong_type("array"));
        };
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(ValueSeed { spec: element })? {
            items.push(v);
        }
        Ok(Val::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let Kind::Row(fields) = &self.spec.kind else {
            return Err(self.wrong_type("object"));
        };
        let mut values = vec![Val::Absent; fields.len()];
        RecordSeed {
            fields,
            all_present: false,
            values: &mut values,
        }
        .visit_map(map)?;
        Ok(Val::Row(values))
    }
}
