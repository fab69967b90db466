//! Rows compared as Flink gives them: the multiset of a JSON-lines file's rows in one
//! canonical text form. Used by the Flink and Nexmark oracle tests (`#[path]`-included, so
//! test binaries without them carry no dead code).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// A row as comparable text: keys sorted, numbers as f64 rounded to 9 significant digits
/// (Flink's DECIMAL results, such as Nexmark q1's `0.908 * price`, print with their scale).
fn canonical(row: &Value) -> String {
    fn norm(v: &Value) -> Value {
        match v {
            Value::Number(n) => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                Value::String(format!("{f:.9e}"))
            }
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), norm(v)))
                    .collect::<BTreeMap<_, _>>()
                    .into_iter()
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    norm(row).to_string()
}

/// The rows of the JSON-lines file at `path` (each line, or its `field`), canonical and
/// sorted.
pub fn read_rows(path: &Path, field: Option<&str>) -> Vec<String> {
    let mut rows: Vec<String> = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
            let v = field.map_or(v.clone(), |f| v[f].clone());
            canonical(&v)
        })
        .collect();
    rows.sort();
    rows
}
