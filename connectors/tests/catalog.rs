//! The catalog files shipped with the project against what else states the same facts: the
//! published standard (`docs/feeds.md`) and the feed definitions the engine runs on today.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::datatypes::{DataType, TimeUnit};
use citybrain_connectors::Feed;
use citybrain_connectors::catalog::Catalog;

/// Per table in docs/feeds.md: (column, Arrow type as written, personal or required).
fn documented() -> BTreeMap<String, Vec<(String, String, bool)>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/feeds.md");
    let text = std::fs::read_to_string(&path).expect("docs/feeds.md");
    let mut tables: BTreeMap<String, Vec<(String, String, bool)>> = BTreeMap::new();
    let mut current = None;
    for line in text.lines() {
        if line.starts_with("## Fields common to every feed") {
            current = Some("*".to_string());
        } else if let Some(rest) = line.strip_prefix("### `") {
            current = rest.split('`').next().map(str::to_string);
        } else if line.starts_with("## ") {
            current = None;
        }
        let Some(table) = &current else { continue };
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 6 || !cells[1].starts_with('`') {
            continue;
        }
        let name = cells[1].trim_matches('`').to_string();
        let arrow = cells[3].trim_matches('`').to_string();
        let flagged = cells[cells.len() - 2].contains("**");
        tables
            .entry(table.clone())
            .or_default()
            .push((name, arrow, flagged));
    }
    tables
}

fn arrow_type(doc: &str) -> DataType {
    match doc {
        "Utf8" => DataType::Utf8,
        "Int64" => DataType::Int64,
        "Float64" => DataType::Float64,
        r#"Timestamp(Millisecond, "UTC")"# => {
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        }
        other => panic!("docs/feeds.md names an Arrow type the test does not know: {other}"),
    }
}

#[test]
fn docs_feeds_md_says_what_feeds_city_sql_says() {
    let docs = documented();
    let common = docs.get("*").expect("the common fields table");
    let city = Catalog::city();
    let names: Vec<&str> = city.tables().iter().map(|t| t.name()).collect();
    let documented_tables: Vec<&str> = docs
        .keys()
        .filter(|k| *k != "*")
        .map(String::as_str)
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(documented_tables, sorted, "the same tables");
    for table in city.tables() {
        let rows: Vec<&(String, String, bool)> = common.iter().chain(&docs[table.name()]).collect();
        let schema = table.schema();
        let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let doc_columns: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(columns, doc_columns, "{table}: columns in order");
        for (i, (name, arrow, flagged)) in rows.iter().enumerate() {
            let field = schema.field(i);
            assert_eq!(field.data_type(), &arrow_type(arrow), "{table}.{name}");
            let column = &table.columns()[i];
            if i < common.len() {
                assert_eq!(!field.is_nullable(), *flagged, "{table}.{name}: required");
            } else {
                assert_eq!(column.personal, *flagged, "{table}.{name}: personal");
                assert!(field.is_nullable(), "{table}.{name}: optional");
            }
        }
    }
}

#[test]
fn the_city_catalog_gives_the_feeds_schemas_and_personal_fields() {
    let city = Catalog::city();
    for feed in Feed::ALL {
        let table = city.table(feed.name()).expect("every feed is a table");
        assert_eq!(table.schema(), feed.schema(), "{feed}");
        let personal: Vec<&str> = table.personal_columns().collect();
        assert_eq!(personal, feed.personal_fields(), "{feed}");
        assert_eq!(table.topic(), Some(format!("city.{feed}").as_str()));
    }
}
