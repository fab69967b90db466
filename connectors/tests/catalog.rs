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
fn the_city_catalog_keeps_the_city_standard() {
    // What the Feed enum declared before the catalog: four feeds with these personal fields,
    // read from `city.<feed>`, event time `ts` with a 5 s bound, `event_id` the record id.
    let city = Catalog::city();
    let standard = [
        ("traffic", vec!["plate"]),
        ("police", vec!["reporter_phone"]),
        ("emergency", vec!["caller_phone", "caller_id_no"]),
        ("market", vec!["complainant_phone"]),
    ];
    let names: Vec<&str> = city.tables().iter().map(Feed::name).collect();
    assert_eq!(names, standard.iter().map(|(n, _)| *n).collect::<Vec<_>>());
    for (name, personal) in standard {
        let table = city.table(name).expect("every feed is a table");
        let got: Vec<&str> = table.personal_columns().collect();
        assert_eq!(got, personal, "{name}");
        assert_eq!(table.topic(), Some(format!("city.{name}").as_str()));
        assert_eq!(table.time_column(), "ts", "{name}");
        assert_eq!(table.out_of_orderness_ms(), 5_000, "{name}");
        assert_eq!(table.key_columns(), ["event_id"], "{name}");
        assert!(!table.has_origin_column(), "{name}");
        assert_eq!(
            table.schema().field(1).data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
    }
}
