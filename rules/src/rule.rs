//! Rule files: one `SELECT` per `.sql` file, with `-- key: value` metadata in the header, or a
//! whole Flink SQL script.
//!
//! A rule's id is its path relative to the rules folder, without `.sql`
//! (`traffic/congestion.sql` is `traffic/congestion`). The header is the run of comment lines
//! before the query; these keys are read from it, none required (a query copied from Flink runs
//! as it is):
//!
//! | key           | default        | meaning                                                     |
//! |---------------|----------------|-------------------------------------------------------------|
//! | `title`       | the rule's id  | one line shown to the operations centre                     |
//! | `severity`    | `medium`       | `info`, `low`, `medium`, `high` or `critical`               |
//! | `description` |                | what the rule detects and why its thresholds (may repeat)   |
//! | `owner`       |                | the department or analyst answering for the rule           |
//! | `location`    |                | where an alert is: `cell` (a column holding an H3 cell) or `lat, lon` (two columns) |
//! | `level`       |                | the level its incidents start at: `community`, `street`, `district`, `city` |
//! | `ack_within`  |                | time to acknowledge its incidents at every level (`10m`, `2 minutes`) |
//! | `max_state_rows` | 10,000,000 | rows or partial aggregate states the rule may hold ([`Limits`]) |
//! | `max_state_bytes` | 256 MiB  | memory its held state and one run of its plan may take (`512 MiB`, `2 GiB`) |
//! | `max_rows_per_window` | 100,000 | result rows of one window (one batch for rules without windows) |
//!
//! Other comment lines are free prose. A `-- word: ...` line whose word is a near miss of a key
//! (`-- severty: high`) is an error, so typos never silently drop metadata.
//!
//! **Flink SQL scripts.** A file may hold several statements separated by `;`, as a script for
//! Flink's SQL client does ([`split_script`]): `CREATE TABLE`s (the catalog reads them, rules
//! pass over them), `SET`/`USE`/... (passed over), queries (`SELECT`, or `INSERT INTO <table>
//! SELECT ...`: the query is the rule, its alerts are what would go into the table), and
//! `CREATE VIEW <name> AS <query>` (a view, `-- emit: view`, read by the others as `<name>`).
//! Each query is one rule, its header the comments just before it; the rules of a file with
//! several are `<id>/1`, `<id>/2`, ... (views `<id>/<name>`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Problem, Result, suggest};
use crate::script::split_script;

/// How urgent an alert from a rule is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// For the record.
    Info,
    /// Worth a look.
    Low,
    /// Needs attention this shift.
    Medium,
    /// Needs attention now.
    High,
    /// Lives or major damage at stake.
    Critical,
}

impl Severity {
    const NAMES: [&'static str; 5] = ["info", "low", "medium", "high", "critical"];

    /// The lowercase name used in headers and alerts.
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    fn parse(s: &str) -> Option<Self> {
        use Severity::*;
        [Info, Low, Medium, High, Critical]
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule file as read from disk, before planning.
#[derive(Debug, Clone)]
pub struct RuleSource {
    /// Path relative to the rules folder, without `.sql`, with `/` separators.
    pub id: String,
    /// The file, as given (for error messages).
    pub path: PathBuf,
    /// The whole file (when it is not UTF-8, with each invalid byte replaced by `U+FFFD`).
    pub text: String,
    /// Why the file cannot be a rule at all (not UTF-8 text, binary, too large, unreadable, a
    /// link looping back into the folder): planning reports it as the file's only problem, so
    /// one such file neither stops `rules check` nor blocks live reloads of the others.
    pub defect: Option<Problem>,
    /// A `CREATE VIEW` of a script: a view whatever its header says.
    pub view: bool,
}

impl RuleSource {
    /// A rule from text, for tests and tools; `id` doubles as its path.
    pub fn inline(id: &str, text: &str) -> Self {
        Self {
            id: id.to_string(),
            path: PathBuf::from(format!("{id}.sql")),
            text: text.to_string(),
            defect: None,
            view: false,
        }
    }
}

/// The largest rule file read, in bytes: a rule is one query, and the live reload reads every
/// file every second.
pub const MAX_RULE_BYTES: u64 = 1 << 20;

/// Reads every `*.sql` file below the folder `dir`, sorted by id (the path below `dir`
/// without `.sql`); or, when `dir` is a file, that one rule (its id is the file name without
/// `.sql`), so an analyst can check or back-test a single rule.
///
/// A file that cannot be a rule (not UTF-8, binary, larger than [`MAX_RULE_BYTES`],
/// unreadable) and a link to a folder already read (a link loop, whose rules would otherwise be
/// read again at every level) come back as sources with a [`RuleSource::defect`], so that every
/// problem is reported with the others and the remaining rules still load.
///
/// # Errors
/// When `dir` itself cannot be read.
pub fn read_dir(dir: &Path) -> Result<Vec<RuleSource>> {
    let mut out = Vec::new();
    if dir.is_file() {
        let root = dir.parent().unwrap_or(Path::new(""));
        out.extend(split_script(read_rule(root, dir)));
        return Ok(out);
    }
    let canonical = std::fs::canonicalize(dir).map_err(|source| Error::ReadDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut seen = std::collections::HashSet::from([canonical]);
    walk(dir, dir, &mut seen, &mut out)?;
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Reads the folder `dir` below `root`, each folder (by its canonical path) once.
fn walk(
    root: &Path,
    dir: &Path,
    seen: &mut std::collections::HashSet<PathBuf>,
    out: &mut Vec<RuleSource>,
) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::ReadDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => paths.push(entry.path()),
            Err(e) => out.push(defective(
                root,
                dir,
                format!("cannot list this folder: {e}"),
            )),
        }
    }
    // Sorted, so that of two paths to one folder the same one is read every time.
    paths.sort();
    for path in paths {
        if path.is_dir() {
            match std::fs::canonicalize(&path) {
                Err(e) => out.push(defective(
                    root,
                    &path,
                    format!("cannot read this folder: {e}"),
                )),
                Ok(target) if seen.contains(&target) => out.push(defective(
                    root,
                    &path,
                    format!(
                        "leads to {}, which is already read (a link loop, or a second link to one \
                         folder): remove the link; its rules are read once",
                        target.display()
                    ),
                )),
                Ok(target) => {
                    seen.insert(target);
                    if let Err(Error::ReadDir { source, .. }) = walk(root, &path, seen, out) {
                        out.push(defective(
                            root,
                            &path,
                            format!("cannot read this folder: {source}"),
                        ));
                    }
                }
            }
        } else if path.extension().is_some_and(|e| e == "sql") {
            out.extend(split_script(read_rule(root, &path)));
        }
    }
    Ok(())
}

/// The id of the file `path` below `root`: its path there, without `.sql`, `/`-separated.
fn rule_id(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path).with_extension("");
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// A source that is no rule, with why.
fn defective(root: &Path, path: &Path, message: String) -> RuleSource {
    RuleSource {
        id: rule_id(root, path),
        path: path.to_path_buf(),
        text: String::new(),
        view: false,
        defect: Some(Problem {
            file: path.to_path_buf(),
            line: 1,
            column: 1,
            message,
        }),
    }
}

/// Reads the rule file `path`; its id is its path below `root` without `.sql`. A file that
/// cannot be a rule comes back with its defect.
fn read_rule(root: &Path, path: &Path) -> RuleSource {
    let bytes = match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_RULE_BYTES => {
            return defective(
                root,
                path,
                format!(
                    "is {} bytes; a rule file holds one query and must be under {} bytes",
                    m.len(),
                    MAX_RULE_BYTES
                ),
            );
        }
        _ => match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => return defective(root, path, format!("cannot read this file: {e}")),
        },
    };
    // A byte-order mark, as some editors write, is not part of the text.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    RuleSource {
        id: rule_id(root, path),
        path: path.to_path_buf(),
        text: String::from_utf8_lossy(bytes).into_owned(),
        defect: text_defect(path, bytes),
        view: false,
    }
}

/// Why `bytes` are not the text of a rule: the first byte that is not UTF-8, or the first NUL
/// (a binary file), with its line and column.
fn text_defect(path: &Path, bytes: &[u8]) -> Option<Problem> {
    let invalid = std::str::from_utf8(bytes).err().map(|e| e.valid_up_to());
    let nul = bytes.iter().position(|b| *b == 0);
    let (at, what) = match (invalid, nul) {
        (None, None) => return None,
        (Some(i), Some(n)) if n < i => (n, "a binary file (a NUL byte), not SQL text"),
        (Some(i), _) => (i, "not UTF-8 text"),
        (None, Some(n)) => (n, "a binary file (a NUL byte), not SQL text"),
    };
    let before = &bytes[..at];
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |p| p + 1);
    let line = before.iter().filter(|b| **b == b'\n').count() as u64 + 1;
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count() as u64
        + 1;
    Some(Problem {
        file: path.to_path_buf(),
        line,
        column,
        message: format!(
            "{what}: byte 0x{:02x} here; save the rule as UTF-8 text",
            bytes[at]
        ),
    })
}

/// A rule's metadata, from its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMeta {
    /// The rule id.
    pub id: String,
    /// The rule file.
    pub path: PathBuf,
    /// One line for the operations centre.
    pub title: String,
    /// How urgent its alerts are.
    pub severity: Severity,
    /// What it detects and why (may be empty).
    pub description: String,
    /// Where results go: alerts (the default) or a view other rules read.
    pub emit: Emit,
    /// How long after a window's end a late event still updates it (`allowed_lateness`,
    /// default 0), in milliseconds.
    pub allowed_lateness_ms: i64,
    /// Where its alerts are (`-- location:`), for routing them to the grid.
    pub location: Option<Location>,
    /// The level its incidents start at (`-- level:`), instead of its severity's.
    pub incident_level: Option<String>,
    /// Time to acknowledge its incidents at every level (`-- ack_within:`), milliseconds.
    pub ack_within_ms: Option<i64>,
    /// What it may hold and produce (`-- max_state_rows:` and the like).
    pub limits: Limits,
    /// Every `key: value` pair of the header, including the ones above.
    pub headers: BTreeMap<String, String>,
    /// The whole rule file as planned (to tell a changed rule from an unchanged one).
    pub text: String,
}

impl RuleMeta {
    /// The table name a view rule's rows are read by: the file name without `.sql`.
    pub fn view_name(&self) -> &str {
        self.id.rsplit('/').next().unwrap_or(&self.id)
    }
}

/// Where a rule's alerts are: the result columns naming the place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `-- location: cell`: one column holding an H3 cell (hex text or 64-bit index).
    Cell(String),
    /// `-- location: lat, lon`: two columns holding WGS84 degrees.
    LatLon {
        /// The latitude column.
        lat: String,
        /// The longitude column.
        lon: String,
    },
}

impl Location {
    fn parse(value: &str) -> std::result::Result<Self, String> {
        let names: Vec<&str> = value.split(',').map(str::trim).collect();
        let ident =
            |n: &str| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        match names.as_slice() {
            [cell] if ident(cell) => Ok(Location::Cell((*cell).to_string())),
            [lat, lon] if ident(lat) && ident(lon) => Ok(Location::LatLon {
                lat: (*lat).to_string(),
                lon: (*lon).to_string(),
            }),
            _ => Err(format!(
                "`-- location: {value}` must name one column holding an H3 cell (`-- location: cell`) \
                 or two holding latitude and longitude (`-- location: lat, lon`)"
            )),
        }
    }

    /// The columns it names.
    pub fn columns(&self) -> Vec<&str> {
        match self {
            Location::Cell(c) => vec![c.as_str()],
            Location::LatLon { lat, lon } => vec![lat.as_str(), lon.as_str()],
        }
    }
}

/// Problems of a rule's `-- location:` header against its result columns: each named column
/// must be selected, a cell as text or an integer, latitude and longitude as numbers.
pub(crate) fn location_problems(
    src: &RuleSource,
    meta: &RuleMeta,
    schema: &arrow::datatypes::Schema,
    data_columns: usize,
) -> Vec<Problem> {
    use arrow::datatypes::DataType;
    let Some(location) = &meta.location else {
        return Vec::new();
    };
    let line = src
        .text
        .lines()
        .position(|l| {
            l.trim_start().starts_with("--") && l.to_ascii_lowercase().contains("location")
        })
        .unwrap_or(0);
    let fields = &schema.fields()[..data_columns.min(schema.fields().len())];
    let mut out = Vec::new();
    for (i, name) in location.columns().into_iter().enumerate() {
        let Some(field) = fields.iter().find(|f| f.name() == name) else {
            let selected: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
            let hint = suggest(name, selected.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            out.push(Problem {
                file: src.path.clone(),
                line: line as u64 + 1,
                column: 1,
                message: format!(
                    "`-- location:` names column `{name}`, which the rule does not select{hint}"
                ),
            });
            continue;
        };
        let t = field.data_type();
        let ok = match location {
            Location::Cell(_) => matches!(
                t,
                DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
                    | DataType::UInt64
                    | DataType::Int64
            ),
            Location::LatLon { .. } => t.is_numeric(),
        };
        if !ok {
            let want = match (location, i) {
                (Location::Cell(_), _) => {
                    "an H3 cell (text such as h3_cell(lat, lon, 8) gives, or an integer index)"
                }
                (_, 0) => "a latitude in degrees (a number)",
                _ => "a longitude in degrees (a number)",
            };
            out.push(Problem {
                file: src.path.clone(),
                line: line as u64 + 1,
                column: 1,
                message: format!("`-- location:` column `{name}` is {t}, not {want}"),
            });
        }
    }
    out
}

/// `10m`, `90s`, `2h`, `10 minutes`, `INTERVAL '10' MINUTES`, in milliseconds.
fn parse_short_duration(value: &str) -> std::result::Result<i64, String> {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    if let Ok(n) = num.parse::<i64>() {
        let scale = match unit.trim() {
            "ms" => Some(1),
            "s" => Some(1000),
            "m" | "min" => Some(60_000),
            "h" => Some(3_600_000),
            _ => None,
        };
        if let Some(scale) = scale {
            return Ok(n * scale);
        }
    }
    parse_lateness(v)
        .map_err(|_| format!("`{value}` is not a duration: write e.g. `10m` or `10 minutes`"))
}

/// What a rule's result rows become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Emit {
    /// Alerts for the operations centre.
    #[default]
    Alert,
    /// A stream other rules read by the rule's [`RuleMeta::view_name`] (`-- emit: view`).
    View,
}

/// The severity of a rule whose header says none.
pub const DEFAULT_SEVERITY: Severity = Severity::Medium;

const KEYS: [&str; 12] = [
    "title",
    "severity",
    "description",
    "owner",
    "emit",
    "allowed_lateness",
    "location",
    "level",
    "ack_within",
    "max_state_rows",
    "max_state_bytes",
    "max_rows_per_window",
];

/// What one rule may hold and produce. Going over a limit stops that rule alone (see
/// [`crate::graph`]), never the process; a header raises (or lowers) each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `max_state_rows`: rows held for windows not yet final, or partial aggregate states
    /// (about one per open group and slice).
    pub state_rows: u64,
    /// `max_state_bytes`: memory of the state held between batches, and the memory DataFusion
    /// may reserve while running the rule's plan once (hash tables, join build sides, sorts).
    pub state_bytes: u64,
    /// `max_rows_per_window`: result rows of one window (for rules without windows, of one
    /// input batch); counted as they are produced, so a runaway join stops early.
    pub rows_per_window: u64,
}

impl Limits {
    /// 10 million rows, 256 MiB, 100,000 rows per window. The rule library needs a small part
    /// of each (its largest state is a few thousand partial states); a dozen rules at their
    /// limits stay within a few GiB, and a window of more than 100,000 alerts helps nobody.
    pub const DEFAULT: Limits = Limits {
        state_rows: 10_000_000,
        state_bytes: 256 << 20,
        rows_per_window: 100_000,
    };

    /// The header key and value of the limit named `what` (`state_rows`, ...), for messages.
    pub fn header(&self, what: &str) -> String {
        match what {
            "state_bytes" => format!("-- max_state_bytes: {}", human_bytes(self.state_bytes)),
            "rows_per_window" => format!("-- max_rows_per_window: {}", self.rows_per_window),
            _ => format!("-- max_state_rows: {}", self.state_rows),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// `268435456` → `256 MiB`.
pub fn human_bytes(n: u64) -> String {
    for (unit, name) in [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] {
        if n >= unit && n.is_multiple_of(unit) {
            return format!("{} {name}", n / unit);
        }
    }
    format!("{n} bytes")
}

/// A count (`5000000`, `5_000_000`, `5,000,000`, `5M`, `200k`) or, with `bytes`, a size
/// (`536870912`, `512 MiB`, `2 GiB`, `500 MB`).
fn parse_amount(value: &str, bytes: bool) -> std::result::Result<u64, String> {
    let v = value.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '_' || c == ','))
        .unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let digits: String = digits.chars().filter(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().map_err(|_| "no number".to_string())?;
    let scale: u64 = match (unit.trim().to_ascii_lowercase().as_str(), bytes) {
        ("", _) => 1,
        ("k", false) => 1_000,
        ("m", false) => 1_000_000,
        ("b" | "bytes", true) => 1,
        ("kib", true) => 1 << 10,
        ("mib", true) => 1 << 20,
        ("gib", true) => 1 << 30,
        ("kb", true) => 1_000,
        ("mb", true) => 1_000_000,
        ("gb", true) => 1_000_000_000,
        (other, _) => return Err(format!("unknown unit `{other}`")),
    };
    match n.checked_mul(scale) {
        Some(0) => Err("must be more than zero".into()),
        Some(n) => Ok(n),
        None => Err("too large".into()),
    }
}

/// `1 minute`, `30 seconds`, `INTERVAL '2' MINUTES` or `0`, in milliseconds.
fn parse_lateness(value: &str) -> std::result::Result<i64, String> {
    let v = value.trim();
    if v == "0" {
        return Ok(0);
    }
    let sql = if v.to_ascii_uppercase().starts_with("INTERVAL") {
        v.to_string()
    } else {
        format!("INTERVAL '{}'", v.replace('\'', ""))
    };
    let tokens = datafusion::sql::sqlparser::tokenizer::Tokenizer::new(
        &datafusion::sql::sqlparser::dialect::GenericDialect {},
        &sql,
    )
    .tokenize_with_location()
    .map_err(|e| e.message)?;
    let code: Vec<_> = tokens
        .iter()
        .filter(|t| {
            !matches!(
                t.token,
                datafusion::sql::sqlparser::tokenizer::Token::Whitespace(_)
            )
        })
        .collect();
    crate::window::parse_interval(&code).map_err(|d| {
        format!(
            "allowed_lateness `{value}` is not a duration: write e.g. `-- allowed_lateness: 2 minutes` ({})",
            d.message
        )
    })
}

/// Reads the header of `src`, reporting every problem.
pub(crate) fn parse_header(src: &RuleSource) -> std::result::Result<RuleMeta, Vec<Problem>> {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut problems = Vec::new();
    let problem = |line: usize, message: String| Problem {
        file: src.path.clone(),
        line: line as u64 + 1,
        column: 1,
        message,
    };
    for (n, line) in src.text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let Some(comment) = t.strip_prefix("--") else {
            break;
        };
        let Some((key, value)) = comment.split_once(':') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let value = value.trim().to_string();
        if KEYS.contains(&key.as_str()) {
            headers
                .entry(key)
                .and_modify(|v| {
                    v.push(' ');
                    v.push_str(&value);
                })
                .or_insert(value);
        } else if let Some(s) = suggest(&key, KEYS) {
            problems.push(problem(
                n,
                format!("unknown header `{key}` (did you mean `{s}`?)"),
            ));
        }
    }
    // A query copied from Flink has no header: its id stands for its title.
    let title = headers
        .get("title")
        .filter(|t| !t.is_empty())
        .cloned()
        .unwrap_or_else(|| src.id.clone());
    let severity = match headers.get("severity") {
        None => Some(DEFAULT_SEVERITY),
        Some(s) => {
            let parsed = Severity::parse(s);
            if parsed.is_none() {
                let line = src
                    .text
                    .lines()
                    .position(|l| l.to_ascii_lowercase().contains("severity"))
                    .unwrap_or(0);
                problems.push(problem(
                    line,
                    format!(
                        "severity `{s}` is not one of {}",
                        Severity::NAMES.join(", ")
                    ),
                ));
            }
            parsed
        }
    };
    let at_key = |key: &str| {
        src.text
            .lines()
            .position(|l| l.to_ascii_lowercase().contains(key))
            .unwrap_or(0)
    };
    let emit = match headers.get("emit").map(|v| v.to_ascii_lowercase()) {
        _ if src.view => Emit::View,
        None => Emit::Alert,
        Some(v) if v == "alert" || v == "alerts" => Emit::Alert,
        Some(v) if v == "view" => Emit::View,
        Some(v) => {
            problems.push(problem(
                at_key("emit"),
                format!("`-- emit: {v}` must be `alert` (the default) or `view`"),
            ));
            Emit::Alert
        }
    };
    let allowed_lateness_ms = match headers.get("allowed_lateness") {
        None => 0,
        Some(v) => parse_lateness(v).unwrap_or_else(|e| {
            problems.push(problem(at_key("allowed_lateness"), e));
            0
        }),
    };
    let location = headers.get("location").and_then(|v| {
        Location::parse(v)
            .map_err(|e| problems.push(problem(at_key("location"), e)))
            .ok()
    });
    let incident_level = headers.get("level").and_then(|v| {
        let l = v.trim().to_ascii_lowercase();
        if ["community", "street", "district", "city"].contains(&l.as_str()) {
            Some(l)
        } else {
            problems.push(problem(
                at_key("level"),
                format!("`-- level: {v}` must be community, street, district or city"),
            ));
            None
        }
    });
    let ack_within_ms = headers
        .get("ack_within")
        .and_then(|v| match parse_short_duration(v) {
            Ok(ms) if ms > 0 => Some(ms),
            Ok(_) => {
                problems.push(problem(
                    at_key("ack_within"),
                    "`-- ack_within:` must be longer than zero".into(),
                ));
                None
            }
            Err(e) => {
                problems.push(problem(at_key("ack_within"), e));
                None
            }
        });
    let mut limits = Limits::DEFAULT;
    for (key, bytes, slot) in [
        ("max_state_rows", false, &mut limits.state_rows),
        ("max_state_bytes", true, &mut limits.state_bytes),
        ("max_rows_per_window", false, &mut limits.rows_per_window),
    ] {
        if let Some(v) = headers.get(key) {
            match parse_amount(v, bytes) {
                Ok(n) => *slot = n,
                Err(e) => problems.push(problem(
                    at_key(key),
                    format!(
                        "`-- {key}: {v}`: {e}; write e.g. `-- {key}: {}`",
                        if bytes { "1 GiB" } else { "20000000" }
                    ),
                )),
            }
        }
    }
    match severity {
        Some(severity) if problems.is_empty() => Ok(RuleMeta {
            limits,
            emit,
            allowed_lateness_ms,
            location,
            incident_level,
            ack_within_ms,
            text: src.text.clone(),
            id: src.id.clone(),
            path: src.path.clone(),
            title,
            severity,
            description: headers.get("description").cloned().unwrap_or_default(),
            headers,
        }),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_keys_are_read_and_prose_ignored() {
        let src = RuleSource::inline(
            "traffic/congestion",
            "-- title: Congestion on a road\n-- severity: High\n-- Why: prose is fine\n\
             -- description: slow traffic\n-- description: for 5 minutes\nSELECT 1",
        );
        let meta = parse_header(&src).expect("valid header");
        assert_eq!(meta.title, "Congestion on a road");
        assert_eq!(meta.severity, Severity::High);
        assert_eq!(meta.description, "slow traffic for 5 minutes");
    }

    #[test]
    fn no_header_means_the_id_as_title_and_the_default_severity() {
        let src = RuleSource::inline("nexmark/q5", "SELECT 1");
        let meta = parse_header(&src).expect("no header is fine");
        assert_eq!(meta.title, "nexmark/q5");
        assert_eq!(meta.severity, DEFAULT_SEVERITY);
        assert_eq!(meta.emit, Emit::Alert);
    }

    #[test]
    fn header_problems_are_all_reported_with_lines() {
        let src = RuleSource::inline("x", "-- titel: typo\n-- severity: urgent\nSELECT 1");
        let problems = parse_header(&src).expect_err("invalid header");
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(
            text.iter()
                .any(|t| t.starts_with("x.sql:1:") && t.contains("did you mean `title`")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("x.sql:2:") && t.contains("`urgent`")),
            "{text:?}"
        );
    }

    #[test]
    fn location_level_and_ack_within_are_read() {
        let src = RuleSource::inline(
            "x",
            "-- title: t\n-- severity: high\n-- location: lat, lon\n-- level: Street\n-- ack_within: 10m\nSELECT 1",
        );
        let meta = parse_header(&src).expect("valid header");
        assert_eq!(
            meta.location,
            Some(Location::LatLon {
                lat: "lat".into(),
                lon: "lon".into()
            })
        );
        assert_eq!(meta.incident_level.as_deref(), Some("street"));
        assert_eq!(meta.ack_within_ms, Some(600_000));
        let cell = RuleSource::inline(
            "x",
            "-- title: t\n-- severity: high\n-- location: cell\n-- ack_within: 2 minutes\nSELECT 1",
        );
        let meta = parse_header(&cell).expect("valid header");
        assert_eq!(meta.location, Some(Location::Cell("cell".into())));
        assert_eq!(meta.ack_within_ms, Some(120_000));
    }

    #[test]
    fn bad_location_level_and_ack_within_are_reported() {
        let src = RuleSource::inline(
            "x",
            "-- title: t\n-- severity: high\n-- location: a, b, c\n-- level: province\n-- ack_within: soon\nSELECT 1",
        );
        let problems = parse_header(&src).expect_err("invalid header");
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        for (line, what) in [(3, "location"), (4, "province"), (5, "soon")] {
            assert!(
                text.iter()
                    .any(|t| t.starts_with(&format!("x.sql:{line}:")) && t.contains(what)),
                "{what}: {text:?}"
            );
        }
    }

    #[test]
    fn a_folder_gives_ids_by_path_and_a_file_gives_its_own_rule() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("traffic")).expect("subfolder");
        std::fs::write(dir.path().join("traffic/slow.sql"), "-- title: a\nSELECT 1").expect("w");
        std::fs::write(dir.path().join("b.sql"), "-- title: b\nSELECT 2").expect("w");
        std::fs::write(dir.path().join("notes.md"), "not a rule").expect("w");
        let all = read_dir(dir.path()).expect("folder");
        let ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["b", "traffic/slow"]);
        let one = read_dir(&dir.path().join("traffic/slow.sql")).expect("file");
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].id, "slow");
        assert_eq!(one[0].text, "-- title: a\nSELECT 1");
    }
}
