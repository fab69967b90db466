//! City functions registered as DataFusion scalar UDFs.
//!
//! - `h3_cell(lat, lon, resolution)`: the H3 cell containing a WGS84 point, as the usual
//!   15-character hex string (`NULL` for invalid coordinates or resolution).
//! - `distance_m(lat1, lon1, lat2, lon2)`: great-circle distance in metres (haversine, mean
//!   Earth radius 6,371,008.8 m).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// Registers every city function on `ctx`, and Flink's built-ins DataFusion lacks
/// ([`crate::flink_functions`]).
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::from(H3Cell::new()));
    ctx.register_udf(ScalarUDF::from(DistanceM::new()));
    crate::flink_functions::register(ctx);
}

/// Coerces every argument to the given types, naming the function in the error.
fn coerce(name: &str, want: &[DataType], got: &[DataType]) -> Result<Vec<DataType>> {
    if got.len() != want.len() {
        return plan_err!("{name} takes {} arguments, found {}", want.len(), got.len());
    }
    for (i, t) in got.iter().enumerate() {
        if !(t.is_numeric() || t.is_null()) {
            return plan_err!("{name}: argument {} must be a number, found {t}", i + 1);
        }
    }
    Ok(want.to_vec())
}

/// `h3_cell(lat, lon, resolution)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct H3Cell {
    signature: Signature,
}

impl H3Cell {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for H3Cell {
    fn name(&self) -> &str {
        "h3_cell"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(
            "h3_cell(lat, lon, resolution)",
            &[DataType::Float64, DataType::Float64, DataType::Int64],
            arg_types,
        )
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let lat = as_f64(&arrays[0])?;
        let lon = as_f64(&arrays[1])?;
        let res = arrays[2]
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| {
                datafusion::error::DataFusionError::Execution(
                    "h3_cell: resolution must be an integer".into(),
                )
            })?;
        let mut out = StringBuilder::with_capacity(lat.len(), lat.len() * 15);
        let mut buf = String::with_capacity(16);
        for i in 0..lat.len() {
            if lat.is_null(i) || lon.is_null(i) || res.is_null(i) {
                out.append_null();
                continue;
            }
            match cell(lat.value(i), lon.value(i), res.value(i)) {
                Some(c) => {
                    use std::fmt::Write;
                    buf.clear();
                    // Writing to a String cannot fail.
                    let _ = write!(buf, "{c}");
                    out.append_value(&buf);
                }
                None => out.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }
}

/// The H3 cell of a point, or `None` when the coordinates or resolution are invalid.
pub fn cell(lat: f64, lon: f64, resolution: i64) -> Option<h3o::CellIndex> {
    if !((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)) {
        return None;
    }
    let res = h3o::Resolution::try_from(u8::try_from(resolution).ok()?).ok()?;
    let ll = h3o::LatLng::new(lat, lon).ok()?;
    Some(ll.to_cell(res))
}

/// `distance_m(lat1, lon1, lat2, lon2)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct DistanceM {
    signature: Signature,
}

impl DistanceM {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for DistanceM {
    fn name(&self) -> &str {
        "distance_m"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(
            "distance_m(lat1, lon1, lat2, lon2)",
            &[const { DataType::Float64 }; 4],
            arg_types,
        )
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let a = as_f64(&arrays[0])?;
        let b = as_f64(&arrays[1])?;
        let c = as_f64(&arrays[2])?;
        let d = as_f64(&arrays[3])?;
        let out: Float64Array = (0..a.len())
            .map(|i| {
                if a.is_null(i) || b.is_null(i) || c.is_null(i) || d.is_null(i) {
                    None
                } else {
                    Some(haversine_m(a.value(i), b.value(i), c.value(i), d.value(i)))
                }
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// Mean Earth radius in metres (IUGG).
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle distance between two WGS84 points, in metres.
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

fn as_f64(a: &ArrayRef) -> Result<&Float64Array> {
    match a.as_any().downcast_ref::<Float64Array>() {
        Some(x) => Ok(x),
        None => exec_err!("expected a float argument, found {}", a.data_type()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_between_known_points() {
        // One degree of latitude is about 111.2 km.
        let d = haversine_m(30.0, 120.0, 31.0, 120.0);
        assert!((d - 111_195.0).abs() < 50.0, "got {d}");
        assert_eq!(haversine_m(30.25, 120.17, 30.25, 120.17), 0.0);
    }

    #[test]
    fn h3_cell_matches_resolution_and_rejects_bad_input() {
        let c = cell(30.25, 120.17, 8).expect("valid point");
        assert_eq!(c.resolution(), h3o::Resolution::Eight);
        assert_eq!(c.to_string().len(), 15);
        assert!(cell(95.0, 120.0, 8).is_none());
        assert!(cell(30.0, 120.0, 16).is_none());
        assert!(cell(f64::NAN, 120.0, 8).is_none());
    }
}
