//! Flink SQL types of catalog columns and the Arrow types they decode into.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, TimeUnit};

/// A column's type as the DDL declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlType {
    /// `STRING`, `VARCHAR(n)`, `CHAR(n)`: Arrow `Utf8` (lengths are not enforced).
    String,
    /// `BOOLEAN`.
    Boolean,
    /// `TINYINT`: `Int8`.
    TinyInt,
    /// `SMALLINT`: `Int16`.
    SmallInt,
    /// `INT`: `Int32`.
    Int,
    /// `BIGINT`: `Int64`.
    BigInt,
    /// `FLOAT`: `Float32`.
    Float,
    /// `DOUBLE`: `Float64`.
    Double,
    /// `DECIMAL(p, s)`: `Decimal128(p, s)`.
    Decimal { precision: u8, scale: u8 },
    /// `DATE`: `Date32`, from `"YYYY-MM-DD"`.
    Date,
    /// `TIMESTAMP(p)`, a wall-clock time read as UTC: `Timestamp(Millisecond, "UTC")`.
    Timestamp { precision: u8 },
    /// `TIMESTAMP_LTZ(p)`, an instant: `Timestamp(Millisecond, "UTC")`.
    TimestampLtz { precision: u8 },
    /// `ROW<name TYPE, ...>`: `Struct`, from a JSON object.
    Row(Vec<FieldType>),
    /// `ARRAY<TYPE>`: `List`, from a JSON array.
    Array(Box<FieldType>),
}

/// A named, typed, possibly nullable column or field of a `ROW`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldType {
    pub name: String,
    pub ty: SqlType,
    pub nullable: bool,
    pub comment: Option<String>,
}

impl SqlType {
    /// The Arrow type values of this type decode into.
    pub fn arrow(&self) -> DataType {
        match self {
            SqlType::String => DataType::Utf8,
            SqlType::Boolean => DataType::Boolean,
            SqlType::TinyInt => DataType::Int8,
            SqlType::SmallInt => DataType::Int16,
            SqlType::Int => DataType::Int32,
            SqlType::BigInt => DataType::Int64,
            SqlType::Float => DataType::Float32,
            SqlType::Double => DataType::Float64,
            #[allow(clippy::cast_possible_wrap)] // scale <= precision <= 38
            SqlType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale as i8),
            SqlType::Date => DataType::Date32,
            SqlType::Timestamp { .. } | SqlType::TimestampLtz { .. } => {
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
            }
            SqlType::Row(fields) => DataType::Struct(Fields::from(
                fields.iter().map(FieldType::arrow).collect::<Vec<_>>(),
            )),
            SqlType::Array(element) => DataType::List(Arc::new(element.arrow())),
        }
    }

    /// Whether values are flat (no `ROW` or `ARRAY`).
    pub fn is_flat(&self) -> bool {
        !matches!(self, SqlType::Row(_) | SqlType::Array(_))
    }

    /// `TIMESTAMP(p)` or `TIMESTAMP_LTZ(p)`, with `p`.
    pub fn timestamp_precision(&self) -> Option<u8> {
        match self {
            SqlType::Timestamp { precision } | SqlType::TimestampLtz { precision } => {
                Some(*precision)
            }
            _ => None,
        }
    }
}

impl FieldType {
    /// The Arrow field.
    pub fn arrow(&self) -> Field {
        Field::new(&self.name, self.ty.arrow(), self.nullable)
    }
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlType::String => f.write_str("STRING"),
            SqlType::Boolean => f.write_str("BOOLEAN"),
            SqlType::TinyInt => f.write_str("TINYINT"),
            SqlType::SmallInt => f.write_str("SMALLINT"),
            SqlType::Int => f.write_str("INT"),
            SqlType::BigInt => f.write_str("BIGINT"),
            SqlType::Float => f.write_str("FLOAT"),
            SqlType::Double => f.write_str("DOUBLE"),
            SqlType::Decimal { precision, scale } => write!(f, "DECIMAL({precision}, {scale})"),
            SqlType::Date => f.write_str("DATE"),
            SqlType::Timestamp { precision } => write!(f, "TIMESTAMP({precision})"),
            SqlType::TimestampLtz { precision } => write!(f, "TIMESTAMP_LTZ({precision})"),
            SqlType::Row(fields) => {
                f.write_str("ROW<")?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "`{}` {}", field.name, field.ty)?;
                    if !field.nullable {
                        f.write_str(" NOT NULL")?;
                    }
                }
                f.write_str(">")
            }
            SqlType::Array(element) => {
                write!(f, "ARRAY<{}", element.ty)?;
                if !element.nullable {
                    f.write_str(" NOT NULL")?;
                }
                f.write_str(">")
            }
        }
    }
}
