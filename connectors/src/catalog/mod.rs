//! The feed catalog: every table citybrain reads, declared in Flink SQL DDL.
//!
//! A department joins the city's hub by adding a file of `CREATE TABLE` statements, written as
//! Apache Flink writes them, that Flink itself runs unchanged:
//!
//! ```sql
//! CREATE TABLE grid_reports (
//!     report_id STRING NOT NULL COMMENT '[id] the report''s id',
//!     ts TIMESTAMP_LTZ(3) NOT NULL,
//!     reporter_phone STRING COMMENT '[personal] who reported it',
//!     place ROW<district STRING, lat DOUBLE, lon DOUBLE>,
//!     tags ARRAY<STRING>,
//!     WATERMARK FOR ts AS ts - INTERVAL '10' SECOND
//! ) WITH ('connector' = 'kafka', 'topic' = 'city.grid', 'format' = 'json',
//!         'properties.bootstrap.servers' = 'localhost:9092');
//! ```
//!
//! ```text
//!  *.sql ──ddl::parse──▶ CreateTable ──check (options as Flink's factories, types, watermark,
//!                                            tags in COMMENTs)──▶ Catalog { Table, ... }
//!  Table: a cheap handle (Arc) ── name, Arrow schema, event-time column and its bound,
//!         record id columns, personal columns, connector (topic or path), JSON options
//! ```
//!
//! - The event-time column is the `WATERMARK FOR` column (`TIMESTAMP(3)` or `TIMESTAMP_LTZ(3)`);
//!   its bound (`- INTERVAL '5' SECOND`) is the table's out-of-orderness. Every feed has one.
//! - Personal columns carry the tag `[personal]` at the start of their `COMMENT` (Flink keeps
//!   comments as text); their values are pseudonymised at ingest. The record's id, if it has one,
//!   is its `PRIMARY KEY (...) NOT ENFORCED` or the columns tagged `[id]` (Flink's `kafka`
//!   connector refuses a primary key on a JSON topic, so a Kafka feed tags its id instead).
//! - `[`[`Catalog::city`]`]` is the city's four feeds (`feeds/city.sql`, built into the binary).

pub mod ddl;
mod options;
pub mod types;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use arrow::datatypes::{Schema, SchemaRef};

pub use options::{Connector, JsonOptions};
pub use types::{FieldType, SqlType};

use self::ddl::{CreateTable, Pos};

/// The city's feeds, `feeds/city.sql`.
pub const CITY_SQL: &str = include_str!("../../../feeds/city.sql");
/// The Nexmark benchmark's tables, `feeds/nexmark.sql`.
pub const NEXMARK_SQL: &str = include_str!("../../../feeds/nexmark.sql");

/// The tags a column `COMMENT` may start with (`[range MIN MAX]` takes two numbers).
const TAGS: [&str; 3] = ["personal", "id", "range"];

/// The column the decoder adds to the records of a table without an id (no `PRIMARY KEY`, no
/// `[id]` column): where each record came from (`file:line`, `topic/partition@offset`,
/// `simulator#seq`), so that per-event alerts still get an id of their own. Rules may read it;
/// alerts leave it out of their data.
pub const ORIGIN_COLUMN: &str = "__cb_origin";

/// A mistake in a catalog file, at a line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogProblem {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl fmt::Display for CatalogProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// A column of a catalog table.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub ty: SqlType,
    /// Whether a record may leave it out or set it to `null`.
    pub nullable: bool,
    /// Tagged `[personal]`: pseudonymised at ingest.
    pub personal: bool,
    /// Tagged `[range MIN MAX]`: a value outside (both ends included) makes the record
    /// malformed (a latitude of 91 is no place on Earth).
    pub range: Option<(f64, f64)>,
    /// The `COMMENT` without its tags.
    pub comment: Option<String>,
}

#[derive(Debug)]
struct TableDef {
    name: String,
    columns: Vec<Column>,
    schema: SchemaRef,
    time_index: usize,
    out_of_orderness_ms: i64,
    id_columns: Vec<usize>,
    connector: Connector,
    json: JsonOptions,
    comment: Option<String>,
    /// Where it is declared: file and line.
    declared: (String, u32),
}

/// A feed of the catalog: a cheap handle (clones share one definition). Two handles are equal
/// when they name the same table.
#[derive(Clone)]
pub struct Table(Arc<TableDef>);

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Table({})", self.0.name)
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.name)
    }
}

impl PartialEq for Table {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.name == other.0.name
    }
}

impl Eq for Table {}

impl std::hash::Hash for Table {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

impl PartialOrd for Table {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Table {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.name.cmp(&other.0.name)
    }
}

impl Table {
    /// The table's name: in rules, file names (`<name>.jsonl`) and metrics.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The Arrow schema its records decode into, columns in declaration order, then
    /// [`ORIGIN_COLUMN`] when the table has no id columns. The event-time column and the id
    /// columns are never null. Built once; every call returns the same `Arc`.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.0.schema)
    }

    /// The columns, in declaration order.
    pub fn columns(&self) -> &[Column] {
        &self.0.columns
    }

    /// Index of the event-time column (the `WATERMARK FOR` column).
    pub fn time_index(&self) -> usize {
        self.0.time_index
    }

    /// Name of the event-time column.
    pub fn time_column(&self) -> &str {
        &self.0.columns[self.0.time_index].name
    }

    /// How far behind the largest event time seen the watermark stays (the `WATERMARK`'s
    /// interval), in milliseconds.
    pub fn out_of_orderness_ms(&self) -> i64 {
        self.0.out_of_orderness_ms
    }

    /// Indexes of the columns that identify a record (`PRIMARY KEY` or `[id]`), possibly none.
    pub fn id_columns(&self) -> &[usize] {
        &self.0.id_columns
    }

    /// Names of the columns that identify a record in the decoded batch: the id columns, or
    /// [`ORIGIN_COLUMN`] when there are none.
    pub fn key_columns(&self) -> Vec<&str> {
        if self.0.id_columns.is_empty() {
            vec![ORIGIN_COLUMN]
        } else {
            self.0
                .id_columns
                .iter()
                .map(|i| self.0.columns[*i].name.as_str())
                .collect()
        }
    }

    /// Whether the decoder adds [`ORIGIN_COLUMN`] (the table has no id columns).
    pub fn has_origin_column(&self) -> bool {
        self.0.id_columns.is_empty()
    }

    /// Names of the columns holding personal data.
    pub fn personal_columns(&self) -> impl Iterator<Item = &str> {
        self.0
            .columns
            .iter()
            .filter(|c| c.personal)
            .map(|c| c.name.as_str())
    }

    /// Where the records come from.
    pub fn connector(&self) -> &Connector {
        &self.0.connector
    }

    /// The Kafka topic, for a `kafka` table.
    pub fn topic(&self) -> Option<&str> {
        match &self.0.connector {
            Connector::Kafka { topic, .. } => Some(topic),
            _ => None,
        }
    }

    /// The file a `filesystem` table reads, as declared (relative to the catalog's folder).
    pub fn path(&self) -> Option<&str> {
        match &self.0.connector {
            Connector::Filesystem { path } => Some(path),
            _ => None,
        }
    }

    /// How the JSON format reads records.
    pub fn json_options(&self) -> JsonOptions {
        self.0.json
    }

    /// The table's `COMMENT`.
    pub fn comment(&self) -> Option<&str> {
        self.0.comment.as_deref()
    }

    /// The file and line of its `CREATE TABLE`.
    pub fn declared_at(&self) -> (&str, u32) {
        (&self.0.declared.0, self.0.declared.1)
    }
}

/// The tables of one or more catalog files, in declaration order.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tables: Vec<Table>,
    /// Tables only written to (`blackhole`, `print`): the alert tables of Flink scripts.
    sinks: Vec<String>,
}

static CITY: LazyLock<Catalog> = LazyLock::new(|| {
    Catalog::parse("feeds/city.sql", CITY_SQL)
        .unwrap_or_else(|p| panic!("feeds/city.sql is valid: {p:?}"))
});

impl Catalog {
    /// The city's four feeds (`feeds/city.sql`, built in). Parsed once.
    pub fn city() -> Catalog {
        CITY.clone()
    }

    /// The tables declared in `text`, read from a file called `file` (for messages).
    ///
    /// # Errors
    /// Every problem found, each with its line and column.
    pub fn parse(file: &str, text: &str) -> Result<Catalog, Vec<CatalogProblem>> {
        Catalog::default().with_text(file, text)
    }

    /// This catalog with the tables of `text` added.
    ///
    /// # Errors
    /// Every problem in `text`, including a table declared twice.
    pub fn with_text(mut self, file: &str, text: &str) -> Result<Catalog, Vec<CatalogProblem>> {
        let at = |pos: Pos, message: String| CatalogProblem {
            file: file.to_string(),
            line: pos.line,
            column: pos.column,
            message,
        };
        let statements = ddl::parse(text).map_err(|e| vec![at(e.pos, e.message)])?;
        if statements.is_empty() {
            return Err(vec![at(
                Pos { line: 1, column: 1 },
                "no CREATE TABLE in the file".into(),
            )]);
        }
        let mut problems = Vec::new();
        let mut names: BTreeSet<String> =
            self.tables.iter().map(|t| t.name().to_string()).collect();
        names.extend(self.sinks.iter().cloned());
        for stmt in statements {
            if !names.insert(stmt.name.clone()) {
                problems.push(at(
                    stmt.pos,
                    format!("table `{}` is declared twice", stmt.name),
                ));
                continue;
            }
            match check_table(file, &stmt) {
                Ok(Checked::Feed(table)) => self.tables.push(table),
                Ok(Checked::Sink) => self.sinks.push(stmt.name.clone()),
                Err(mut p) => problems.append(&mut p),
            }
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(problems)
        }
    }

    /// Reads catalog files: each path a `.sql` file or a folder whose `.sql` files are read in
    /// name order.
    ///
    /// # Errors
    /// [`crate::Error::OpenFile`] / [`crate::Error::ReadFile`] for a file that cannot be read,
    /// [`crate::Error::Catalog`] with every problem of every file.
    pub fn load(paths: &[PathBuf]) -> crate::Result<Catalog> {
        let mut files = Vec::new();
        for path in paths {
            if path.is_dir() {
                let entries = std::fs::read_dir(path).map_err(|source| crate::Error::OpenFile {
                    path: path.clone(),
                    source,
                })?;
                let mut sql: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "sql"))
                    .collect();
                sql.sort();
                if sql.is_empty() {
                    return Err(crate::Error::Catalog {
                        problems: vec![CatalogProblem {
                            file: path.display().to_string(),
                            line: 1,
                            column: 1,
                            message: "no .sql catalog files in this folder".into(),
                        }],
                    });
                }
                files.extend(sql);
            } else {
                files.push(path.clone());
            }
        }
        let mut catalog = Catalog::default();
        let mut problems = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|source| crate::Error::ReadFile {
                path: file.clone(),
                source,
            })?;
            match catalog
                .clone()
                .with_text(&file.display().to_string(), &text)
            {
                Ok(c) => catalog = c,
                Err(mut p) => problems.append(&mut p),
            }
        }
        if problems.is_empty() {
            Ok(catalog)
        } else {
            Err(crate::Error::Catalog { problems })
        }
    }

    /// The feeds, in declaration order.
    pub fn tables(&self) -> &[Table] {
        &self.tables
    }

    /// The feed called `name` (exact).
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name() == name)
    }

    /// The feed read from Kafka topic `topic`.
    pub fn table_for_topic(&self, topic: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.topic() == Some(topic))
    }

    /// Names of the tables only written to (`blackhole`, `print` connectors).
    pub fn sinks(&self) -> &[String] {
        &self.sinks
    }
}

enum Checked {
    Feed(Table),
    Sink,
}

/// A tag at the start of a column `COMMENT`: its name and its arguments.
#[derive(Debug, Clone, PartialEq)]
struct Tag<'a> {
    name: String,
    args: Vec<&'a str>,
}

/// Splits the leading `[tag]`s off a comment (`[id] [personal] text`, `[range -90 90] degrees`).
fn tags_of(comment: &str) -> (Vec<Tag<'_>>, &str) {
    let mut tags = Vec::new();
    let mut rest = comment.trim_start();
    while let Some(inner) = rest.strip_prefix('[')
        && let Some(end) = inner.find(']')
    {
        let mut words = inner[..end].split_whitespace();
        let Some(name) = words.next().filter(|w| {
            w.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        }) else {
            break;
        };
        tags.push(Tag {
            name: name.to_ascii_lowercase(),
            args: words.map(|w| w.trim_end_matches(',')).collect(),
        });
        rest = inner[end + 1..].trim_start();
    }
    if tags.is_empty() {
        (tags, comment)
    } else {
        (tags, rest)
    }
}

/// The `[range MIN MAX]` of a column, or why it is wrong.
fn range_of(tag: &Tag<'_>, ty: &SqlType) -> Result<(f64, f64), String> {
    let numeric = matches!(
        ty,
        SqlType::TinyInt
            | SqlType::SmallInt
            | SqlType::Int
            | SqlType::BigInt
            | SqlType::Float
            | SqlType::Double
            | SqlType::Decimal { .. }
    );
    if !numeric {
        return Err(format!("[range] is for numeric columns, not {ty}"));
    }
    match tag.args.as_slice() {
        [min, max] => match (min.parse::<f64>(), max.parse::<f64>()) {
            (Ok(min), Ok(max)) if min.is_finite() && max.is_finite() && min <= max => {
                Ok((min, max))
            }
            _ => Err(format!(
                "[range {} {}]: two finite numbers, the smaller first",
                min, max
            )),
        },
        _ => Err("write [range MIN MAX], e.g. [range -90 90]".into()),
    }
}

fn check_table(file: &str, t: &CreateTable) -> Result<Checked, Vec<CatalogProblem>> {
    let mut problems = Vec::new();
    let mut at = |pos: Pos, message: String| {
        problems.push(CatalogProblem {
            file: file.to_string(),
            line: pos.line,
            column: pos.column,
            message,
        });
    };
    let name = &t.name;
    let plain: Vec<(String, String)> = t
        .options
        .iter()
        .map(|(k, v, _)| (k.clone(), v.clone()))
        .collect();
    let options = match options::check(&plain) {
        Ok(o) => Some(o),
        Err(list) => {
            for (index, message) in list {
                let pos = index.map_or(t.pos, |i| t.options[i].2);
                at(pos, format!("table `{name}`: {message}"));
            }
            None
        }
    };
    let mut seen = BTreeSet::new();
    let mut columns = Vec::with_capacity(t.columns.len());
    let mut tagged_ids = Vec::new();
    for (i, c) in t.columns.iter().enumerate() {
        let f = &c.field;
        if f.name.starts_with("__cb_") {
            at(
                c.pos,
                format!(
                    "column `{}`: names starting with `__cb_` are citybrain's own (e.g. `{ORIGIN_COLUMN}`)",
                    f.name
                ),
            );
        }
        if !seen.insert(f.name.as_str()) {
            at(
                c.pos,
                format!("table `{name}`: column `{}` is declared twice", f.name),
            );
        }
        let (tags, text) = f.comment.as_deref().map_or((Vec::new(), None), |c| {
            let (tags, text) = tags_of(c);
            (tags, Some(text.to_string()))
        });
        let has = |name: &str| tags.iter().any(|t| t.name == name);
        let personal = has("personal");
        let mut range = None;
        for tag in &tags {
            if !TAGS.contains(&tag.name.as_str()) {
                let hint = suggest(&tag.name, TAGS.into_iter())
                    .map(|s| format!(" (did you mean [{s}]?)"))
                    .unwrap_or_else(|| " (known tags: [personal], [id], [range MIN MAX])".into());
                at(
                    c.pos,
                    format!(
                        "column `{}`: unknown tag [{}] in its COMMENT{hint}",
                        f.name, tag.name
                    ),
                );
            } else if tag.name == "range" {
                match range_of(tag, &f.ty) {
                    Ok(r) => range = Some(r),
                    Err(e) => at(c.pos, format!("column `{}`: {e}", f.name)),
                }
            }
        }
        if personal && f.ty != SqlType::String {
            at(
                c.pos,
                format!(
                    "column `{}`: only STRING columns can be [personal] (a pseudonym is a string), not {}",
                    f.name, f.ty
                ),
            );
        }
        if has("id") {
            tagged_ids.push(i);
        }
        if c.primary_key && t.primary_key.is_some() {
            at(c.pos, format!("table `{name}` has a PRIMARY KEY already"));
        }
        check_nested_tags(&f.ty, &f.name, c.pos, &mut at);
        columns.push(Column {
            name: f.name.clone(),
            ty: f.ty.clone(),
            nullable: f.nullable,
            personal,
            range,
            comment: text.filter(|s| !s.is_empty()),
        });
    }
    let index_of = |n: &str| columns.iter().position(|c| c.name == n);
    let mut id_columns: Vec<usize> = Vec::new();
    let inline_key: Vec<usize> = t
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.primary_key)
        .map(|(i, _)| i)
        .collect();
    if let Some((key, pos)) = &t.primary_key {
        for k in key {
            match index_of(k) {
                Some(i) => id_columns.push(i),
                None => at(
                    *pos,
                    format!("table `{name}`: PRIMARY KEY column `{k}` is not a column"),
                ),
            }
        }
    }
    id_columns.extend(inline_key);
    let has_key = !id_columns.is_empty();
    if has_key
        && matches!(
            options.as_ref().map(|o| &o.connector),
            Some(Connector::Kafka { .. })
        )
    {
        let pos = t.primary_key.as_ref().map_or(t.pos, |k| k.1);
        at(
            pos,
            format!(
                "table `{name}`: Flink's 'kafka' connector with format 'json' refuses a PRIMARY KEY \
                 (it cannot guarantee it): tag the id column instead, COMMENT '[id] ...'"
            ),
        );
    }
    if has_key && !tagged_ids.is_empty() && tagged_ids != id_columns {
        at(
            t.pos,
            format!("table `{name}`: the [id] columns differ from the PRIMARY KEY"),
        );
    }
    if !has_key {
        id_columns = tagged_ids;
    }
    let sink = matches!(
        options.as_ref().map(|o| &o.connector),
        Some(Connector::Sink { .. })
    );
    let mut time = None;
    match &t.watermark {
        None if !sink && options.is_some() => at(
            t.pos,
            format!(
                "table `{name}` needs an event time: add `WATERMARK FOR <column> AS <column> - \
                 INTERVAL '5' SECOND` (citybrain runs on event time)"
            ),
        ),
        None => {}
        Some(w) => match index_of(&w.column) {
            None => at(
                w.pos,
                format!(
                    "table `{name}`: WATERMARK FOR `{}`: no such column",
                    w.column
                ),
            ),
            Some(i) => match columns[i].ty.timestamp_precision() {
                Some(p) if p <= 3 => time = Some((i, w.delay_ms)),
                _ => at(
                    w.pos,
                    format!(
                        "table `{name}`: the event-time column `{}` must be TIMESTAMP(3) or \
                         TIMESTAMP_LTZ(3) (precision 0 to 3, as Flink requires), not {}",
                        w.column, columns[i].ty
                    ),
                ),
            },
        },
    }
    for c in &columns {
        if let Some(p) = c.ty.timestamp_precision().filter(|p| *p > 3) {
            let pos = t
                .columns
                .iter()
                .find(|d| d.field.name == c.name)
                .map_or(t.pos, |d| d.pos);
            at(
                pos,
                format!(
                    "column `{}`: citybrain keeps timestamps to the millisecond: declare precision \
                     3 or less, not {p}",
                    c.name
                ),
            );
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let Some(options) = options else {
        return Err(problems);
    };
    if sink {
        return Ok(Checked::Sink);
    }
    let (time_index, out_of_orderness_ms) = time.expect("checked above");
    let mut fields: Vec<_> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let required = !c.nullable || i == time_index || id_columns.contains(&i);
            FieldType {
                name: c.name.clone(),
                ty: c.ty.clone(),
                nullable: !required,
                comment: None,
            }
            .arrow()
        })
        .collect();
    if id_columns.is_empty() {
        fields.push(arrow::datatypes::Field::new(
            ORIGIN_COLUMN,
            arrow::datatypes::DataType::Utf8,
            false,
        ));
    }
    for (i, c) in columns.iter_mut().enumerate() {
        if i == time_index || id_columns.contains(&i) {
            c.nullable = false;
        }
    }
    let schema = Arc::new(Schema::new(fields));
    Ok(Checked::Feed(Table(Arc::new(TableDef {
        name: name.clone(),
        columns,
        schema,
        time_index,
        out_of_orderness_ms,
        id_columns,
        connector: options.connector,
        json: options.json,
        comment: t.comment.clone(),
        declared: (file.to_string(), t.pos.line),
    }))))
}

/// Tags are for top-level columns: a `[personal]` inside a ROW is an error rather than ignored.
fn check_nested_tags(ty: &SqlType, path: &str, pos: Pos, at: &mut impl FnMut(Pos, String)) {
    match ty {
        SqlType::Row(fields) => {
            for f in fields {
                let inner = format!("{path}.{}", f.name);
                let (tags, _) = f.comment.as_deref().map_or((Vec::new(), ""), tags_of);
                if let Some(tag) = tags.first() {
                    at(
                        pos,
                        format!(
                            "field `{inner}`: tag [{}] only works on a top-level column",
                            tag.name
                        ),
                    );
                }
                check_nested_tags(&f.ty, &inner, pos, at);
            }
        }
        SqlType::Array(e) => check_nested_tags(&e.ty, path, pos, at),
        _ => {}
    }
}

/// The candidate closest to `word` when it is a plausible typo (edit distance at most a third
/// of its length, and at least one).
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(cur)
            };
            prev = cur;
        }
    }
    row[b.len()]
}

impl Catalog {
    /// The catalog as text for `docs/feeds.md`'s check: per table, `name(col TYPE [NOT NULL]
    /// [personal], ...)`.
    pub fn summary(&self) -> Vec<String> {
        self.tables
            .iter()
            .map(|t| {
                let cols: Vec<String> = t
                    .columns()
                    .iter()
                    .map(|c| {
                        format!(
                            "{} {}{}{}",
                            c.name,
                            c.ty,
                            if c.nullable { "" } else { " NOT NULL" },
                            if c.personal { " personal" } else { "" }
                        )
                    })
                    .collect();
                format!("{}({})", t.name(), cols.join(", "))
            })
            .collect()
    }
}

/// Reads a table's records from `dir`: its `path` when it is a `filesystem` table (relative to
/// `dir`), else `dir/<name>.jsonl`.
pub fn file_of(table: &Table, dir: &Path) -> PathBuf {
    match table.path() {
        Some(p) => dir.join(p.strip_prefix("file://").unwrap_or(p)),
        None => dir.join(format!("{}.jsonl", table.name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_city_catalog_is_todays_standard() {
        let city = Catalog::city();
        let names: Vec<&str> = city.tables().iter().map(Table::name).collect();
        assert_eq!(names, ["traffic", "police", "emergency", "market"]);
        for t in city.tables() {
            let schema = t.schema();
            let first: Vec<&str> = schema.fields()[..4]
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            assert_eq!(first, ["event_id", "ts", "lat", "lon"], "{t}");
            for (i, f) in schema.fields().iter().enumerate() {
                assert_eq!(f.is_nullable(), i >= 4, "{t}.{}", f.name());
            }
            assert_eq!(t.time_column(), "ts");
            assert_eq!(t.out_of_orderness_ms(), 5000);
            assert_eq!(t.id_columns(), [0]);
            assert_eq!(t.topic(), Some(format!("city.{}", t.name()).as_str()));
        }
        let personal = |n: &str| -> Vec<String> {
            city.table(n)
                .expect(n)
                .personal_columns()
                .map(String::from)
                .collect()
        };
        assert_eq!(personal("traffic"), ["plate"]);
        assert_eq!(personal("police"), ["reporter_phone"]);
        assert_eq!(personal("emergency"), ["caller_phone", "caller_id_no"]);
        assert_eq!(personal("market"), ["complainant_phone"]);
        let ts = city.tables()[1].schema().field(1).data_type().clone();
        assert_eq!(
            ts,
            arrow::datatypes::DataType::Timestamp(
                arrow::datatypes::TimeUnit::Millisecond,
                Some("UTC".into())
            )
        );
    }

    #[test]
    fn nexmark_tables_have_no_id_and_nullable_columns() {
        let nexmark = Catalog::parse("feeds/nexmark.sql", NEXMARK_SQL).expect("valid");
        let bid = nexmark.table("bid").expect("bid");
        assert_eq!(bid.time_column(), "dateTime");
        assert_eq!(bid.out_of_orderness_ms(), 4000);
        assert!(bid.id_columns().is_empty());
        assert_eq!(bid.path(), Some("bid.jsonl"));
        assert!(bid.schema().field(0).is_nullable());
        assert!(!bid.schema().field(bid.time_index()).is_nullable());
        assert_eq!(
            file_of(bid, Path::new("/data")),
            Path::new("/data/bid.jsonl")
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let text = "CREATE TABLE a (\n  id STRING COMMENT '[persnal] x',\n  n INT COMMENT '[personal]',\n  ts TIMESTAMP(6),\n  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND\n) WITH (\n  'connector' = 'kafka',\n  'topic' = 't',\n  'format' = 'json'\n);\nCREATE TABLE b (x STRING) WITH ('connector' = 'filesystem', 'path' = 'b', 'format' = 'json');\nCREATE TABLE a (x STRING) WITH ('connector' = 'blackhole');";
        let problems = Catalog::parse("dept.sql", text).expect_err("invalid");
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
        assert!(
            has(
                "dept.sql:2:3: column `id`: unknown tag [persnal] in its COMMENT (did you mean [personal]?)"
            ),
            "{lines:#?}"
        );
        assert!(
            has("dept.sql:3:3: column `n`: only STRING columns can be [personal]"),
            "{lines:#?}"
        );
        assert!(
            has("dept.sql:5:3: table `a`: the event-time column `ts` must be TIMESTAMP(3)"),
            "{lines:#?}"
        );
        assert!(
            has("dept.sql:1:14: table `a`: connector 'kafka' needs 'properties.bootstrap.servers'"),
            "{lines:#?}"
        );
        assert!(
            has("dept.sql:11:14: table `b` needs an event time"),
            "{lines:#?}"
        );
        assert!(
            has("dept.sql:12:14: table `a` is declared twice"),
            "{lines:#?}"
        );
    }

    #[test]
    fn a_primary_key_is_the_record_id_except_on_kafka() {
        let ok = Catalog::parse(
            "f.sql",
            "CREATE TABLE r (k BIGINT, ts TIMESTAMP(3), PRIMARY KEY (k) NOT ENFORCED, \
             WATERMARK FOR ts AS ts) WITH ('connector' = 'filesystem', 'path' = 'r.jsonl', 'format' = 'json')",
        )
        .expect("valid");
        let r = ok.table("r").expect("r");
        assert_eq!(r.id_columns(), [0]);
        assert!(!r.schema().field(0).is_nullable(), "a key is never null");
        assert_eq!(r.out_of_orderness_ms(), 0);
        let kafka = Catalog::parse(
            "k.sql",
            "CREATE TABLE r (k BIGINT PRIMARY KEY NOT ENFORCED, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) \
             WITH ('connector' = 'kafka', 'topic' = 'r', 'properties.bootstrap.servers' = 'b:1', 'format' = 'json')",
        )
        .expect_err("kafka refuses a key");
        assert!(kafka[0].message.contains("tag the id column"), "{kafka:?}");
    }

    #[test]
    fn sink_tables_are_known_but_not_feeds() {
        let c = Catalog::parse(
            "s.sql",
            "CREATE TABLE alerts (a STRING) WITH ('connector' = 'blackhole')",
        )
        .expect("valid");
        assert!(c.tables().is_empty());
        assert_eq!(c.sinks(), ["alerts"]);
    }
}
