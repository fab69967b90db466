//! Flink SQL DDL, the part a feed catalog uses: `CREATE TABLE` with columns, types, `NOT NULL`,
//! `COMMENT`, `WATERMARK FOR`, `PRIMARY KEY ... NOT ENFORCED` and `WITH (...)`.
//!
//! A small tokenizer (line and column kept on every token) and a recursive-descent parser. The
//! result is syntax only ([`CreateTable`]); what the options and types mean is checked in
//! [`super`].

use super::types::{FieldType, SqlType};

/// A position in a catalog file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

/// A syntax error at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A word: keyword or unquoted identifier, as written.
    Word(String),
    /// A `backtick-quoted` identifier.
    Quoted(String),
    /// A 'string literal' ('' inside is one quote).
    Str(String),
    /// A number as written: digits, an optional fraction.
    Num(String),
    /// One punctuation character: ( ) < > , ; = - + . *
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: Pos,
}

fn tokenize(text: &str) -> Result<Vec<Token>, SyntaxError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let (mut line, mut column) = (1u32, 1u32);
    macro_rules! bump {
        () => {{
            let c = chars.next();
            if c == Some('\n') {
                line += 1;
                column = 1;
            } else if c.is_some() {
                column += 1;
            }
            c
        }};
    }
    while let Some(&c) = chars.peek() {
        let pos = Pos { line, column };
        if c.is_whitespace() {
            bump!();
        } else if c == '-' && text_at(&chars, "--") {
            while chars.peek().is_some_and(|&c| c != '\n') {
                bump!();
            }
        } else if c == '/' && text_at(&chars, "/*") {
            bump!();
            bump!();
            loop {
                match bump!() {
                    None => {
                        return Err(SyntaxError {
                            pos,
                            message: "comment `/*` is never closed".into(),
                        });
                    }
                    Some('*') if chars.peek() == Some(&'/') => {
                        bump!();
                        break;
                    }
                    Some(_) => {}
                }
            }
        } else if c.is_alphabetic() || c == '_' {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_alphanumeric() || c == '_' || c == '$' {
                    word.push(c);
                    bump!();
                } else {
                    break;
                }
            }
            out.push(Token {
                tok: Tok::Word(word),
                pos,
            });
        } else if c.is_ascii_digit() {
            let mut num = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_ascii_digit() || (c == '.' && !num.contains('.')) {
                    num.push(c);
                    bump!();
                } else {
                    break;
                }
            }
            out.push(Token {
                tok: Tok::Num(num),
                pos,
            });
        } else if c == '`' || c == '\'' {
            bump!();
            let mut s = String::new();
            loop {
                match bump!() {
                    None => {
                        let what = if c == '`' { "identifier" } else { "string" };
                        return Err(SyntaxError {
                            pos,
                            message: format!("{what} starting here is never closed (missing {c})"),
                        });
                    }
                    Some(q) if q == c => {
                        if chars.peek() == Some(&c) {
                            bump!();
                            s.push(c);
                        } else {
                            break;
                        }
                    }
                    Some(other) => s.push(other),
                }
            }
            out.push(Token {
                tok: if c == '`' {
                    Tok::Quoted(s)
                } else {
                    Tok::Str(s)
                },
                pos,
            });
        } else {
            // Punctuation: ( ) < > , ; = - + . * and, in the queries of a Flink script that a
            // catalog skips, anything else (`/`, `%`, `!`, `"`, ...).
            bump!();
            out.push(Token {
                tok: Tok::Punct(c),
                pos,
            });
        }
    }
    Ok(out)
}

fn text_at(chars: &std::iter::Peekable<std::str::Chars<'_>>, s: &str) -> bool {
    chars.clone().take(s.len()).eq(s.chars())
}

/// A column of a `CREATE TABLE`.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub field: FieldType,
    pub pos: Pos,
    /// `PRIMARY KEY NOT ENFORCED` written on the column.
    pub primary_key: bool,
}

/// `WATERMARK FOR column AS column - INTERVAL 'n' UNIT`.
#[derive(Debug, Clone, PartialEq)]
pub struct WatermarkDef {
    pub column: String,
    /// How far the watermark stays behind the column, in milliseconds.
    pub delay_ms: i64,
    pub pos: Pos,
}

/// One `CREATE TABLE` statement.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateTable {
    pub name: String,
    pub pos: Pos,
    pub columns: Vec<ColumnDef>,
    pub watermark: Option<WatermarkDef>,
    pub primary_key: Option<(Vec<String>, Pos)>,
    pub comment: Option<String>,
    /// `WITH` options in order: key, value, position of the key.
    pub options: Vec<(String, String, Pos)>,
}

/// Statements of a Flink SQL script that a catalog passes over: the queries (`SELECT`,
/// `INSERT INTO`, ... are rules) and the client's commands.
const SCRIPT_STATEMENTS: [&str; 24] = [
    "SELECT", "INSERT", "WITH", "VALUES", "SET", "RESET", "USE", "EXECUTE", "EXPLAIN", "BEGIN",
    "END", "SHOW", "DESCRIBE", "DESC", "LOAD", "UNLOAD", "ADD", "REMOVE", "DROP", "ALTER",
    "ANALYZE", "TRUNCATE", "DELETE", "UPDATE",
];

/// What may follow `CREATE [TEMPORARY] [SYSTEM]` in a script besides `TABLE`: passed over.
const SCRIPT_CREATES: [&str; 4] = ["VIEW", "FUNCTION", "CATALOG", "DATABASE"];

/// Parses a file of `CREATE TABLE` statements separated by `;`: a catalog file, or a whole
/// Flink SQL script whose other statements (queries, `SET`, `CREATE VIEW`, ...) are passed over.
///
/// # Errors
/// The first syntax error, with its position.
pub fn parse(text: &str) -> Result<Vec<CreateTable>, SyntaxError> {
    let tokens = tokenize(text)?;
    let mut p = Parser { tokens, at: 0 };
    let mut tables = Vec::new();
    loop {
        while p.eat_punct(';') {}
        if p.peek().is_none() {
            return Ok(tables);
        }
        if p.is_script_statement() {
            while p.peek().is_some() && !p.eat_punct(';') {
                p.at += 1;
            }
            continue;
        }
        tables.push(p.create_table()?);
        if p.peek().is_some() && !p.eat_punct(';') {
            return Err(p.error("expected `;` after the statement"));
        }
    }
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn pos(&self) -> Pos {
        self.peek()
            .or(self.tokens.last())
            .map(|t| t.pos)
            .unwrap_or_default()
    }

    fn error(&self, message: impl Into<String>) -> SyntaxError {
        let found = match self.peek().map(|t| &t.tok) {
            None => "the end of the file".to_string(),
            Some(Tok::Word(w)) => format!("`{w}`"),
            Some(Tok::Quoted(w)) => format!("`{w}`"),
            Some(Tok::Str(s)) => format!("'{s}'"),
            Some(Tok::Num(n)) => n.clone(),
            Some(Tok::Punct(c)) => format!("`{c}`"),
        };
        SyntaxError {
            pos: self.pos(),
            message: format!("{}, found {found}", message.into()),
        }
    }

    /// Whether the statement starting here is one a catalog passes over.
    fn is_script_statement(&self) -> bool {
        let word = |i: usize| match self.tokens.get(self.at + i) {
            Some(Token {
                tok: Tok::Word(w), ..
            }) => Some(w.to_ascii_uppercase()),
            _ => None,
        };
        match word(0).as_deref() {
            Some("CREATE") => {
                let mut i = 1;
                while matches!(
                    word(i).as_deref(),
                    Some("TEMPORARY" | "SYSTEM" | "OR" | "REPLACE")
                ) {
                    i += 1;
                }
                word(i).is_some_and(|w| SCRIPT_CREATES.contains(&w.as_str()))
            }
            Some(w) => SCRIPT_STATEMENTS.contains(&w),
            None => {
                matches!(
                    self.peek(),
                    Some(Token {
                        tok: Tok::Punct('('),
                        ..
                    })
                ) && word(1).as_deref() == Some("SELECT")
            }
        }
    }

    fn is_keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Word(w), .. }) if w.eq_ignore_ascii_case(k))
    }

    fn eat_keyword(&mut self, k: &str) -> bool {
        let yes = self.is_keyword(k);
        self.at += usize::from(yes);
        yes
    }

    fn keyword(&mut self, k: &str) -> Result<(), SyntaxError> {
        if self.eat_keyword(k) {
            Ok(())
        } else {
            Err(self.error(format!("expected {k}")))
        }
    }

    fn eat_punct(&mut self, c: char) -> bool {
        let yes = matches!(self.peek(), Some(Token { tok: Tok::Punct(p), .. }) if *p == c);
        self.at += usize::from(yes);
        yes
    }

    fn punct(&mut self, c: char) -> Result<(), SyntaxError> {
        if self.eat_punct(c) {
            Ok(())
        } else {
            Err(self.error(format!("expected `{c}`")))
        }
    }

    fn identifier(&mut self, what: &str) -> Result<(String, Pos), SyntaxError> {
        match self.peek() {
            Some(Token {
                tok: Tok::Word(w) | Tok::Quoted(w),
                pos,
            }) => {
                let out = (w.clone(), *pos);
                self.at += 1;
                Ok(out)
            }
            _ => Err(self.error(format!("expected {what}"))),
        }
    }

    fn string(&mut self, what: &str) -> Result<(String, Pos), SyntaxError> {
        match self.peek() {
            Some(Token {
                tok: Tok::Str(s),
                pos,
            }) => {
                let out = (s.clone(), *pos);
                self.at += 1;
                Ok(out)
            }
            _ => Err(self.error(format!("expected {what} as a 'quoted string'"))),
        }
    }

    fn integer(&mut self, what: &str) -> Result<u32, SyntaxError> {
        match self.peek() {
            Some(Token {
                tok: Tok::Num(n), ..
            }) if n.bytes().all(|b| b.is_ascii_digit()) => {
                let v = n
                    .parse()
                    .map_err(|_| self.error(format!("{what} is too large")))?;
                self.at += 1;
                Ok(v)
            }
            _ => Err(self.error(format!("expected {what}"))),
        }
    }

    fn create_table(&mut self) -> Result<CreateTable, SyntaxError> {
        if !self.is_keyword("CREATE") {
            return Err(
                self.error("a catalog holds CREATE TABLE statements: expected CREATE TABLE")
            );
        }
        self.at += 1;
        self.eat_keyword("TEMPORARY");
        if !self.eat_keyword("TABLE") {
            return Err(self.error("a catalog holds CREATE TABLE statements: expected TABLE"));
        }
        if self.eat_keyword("IF") {
            self.keyword("NOT")?;
            self.keyword("EXISTS")?;
        }
        let (mut name, pos) = self.identifier("a table name")?;
        // catalog.database.table: the table is the last part.
        while self.eat_punct('.') {
            name = self.identifier("a table name")?.0;
        }
        self.punct('(')?;
        let mut table = CreateTable {
            name,
            pos,
            columns: Vec::new(),
            watermark: None,
            primary_key: None,
            comment: None,
            options: Vec::new(),
        };
        loop {
            if self.is_keyword("WATERMARK") {
                let at = self.pos();
                self.at += 1;
                if table.watermark.is_some() {
                    return Err(SyntaxError {
                        pos: at,
                        message: "a table has one WATERMARK".into(),
                    });
                }
                table.watermark = Some(self.watermark(at)?);
            } else if self.is_keyword("PRIMARY") || self.is_keyword("CONSTRAINT") {
                let at = self.pos();
                if self.eat_keyword("CONSTRAINT") {
                    self.identifier("a constraint name")?;
                }
                self.keyword("PRIMARY")?;
                self.keyword("KEY")?;
                self.punct('(')?;
                let mut cols = vec![self.identifier("a column name")?.0];
                while self.eat_punct(',') {
                    cols.push(self.identifier("a column name")?.0);
                }
                self.punct(')')?;
                self.not_enforced()?;
                if table.primary_key.is_some() {
                    return Err(SyntaxError {
                        pos: at,
                        message: "a table has one PRIMARY KEY".into(),
                    });
                }
                table.primary_key = Some((cols, at));
            } else {
                table.columns.push(self.column()?);
            }
            if self.eat_punct(')') {
                break;
            }
            self.punct(',')
                .map_err(|_| self.error("expected `,` or `)` after a column"))?;
        }
        if self.eat_keyword("COMMENT") {
            table.comment = Some(self.string("the table comment")?.0);
        }
        if self.is_keyword("PARTITIONED") {
            return Err(self.error("PARTITIONED BY is for file sinks, not feeds"));
        }
        self.keyword("WITH")
            .map_err(|_| self.error("expected WITH (...) naming the table's connector"))?;
        self.punct('(')?;
        loop {
            let (key, at) = self.string("an option name")?;
            self.punct('=')?;
            let (value, _) = self.string("an option value")?;
            table.options.push((key, value, at));
            if self.eat_punct(')') {
                break;
            }
            self.punct(',')?;
        }
        if self.is_keyword("LIKE") {
            return Err(self.error("CREATE TABLE ... LIKE is not supported in a catalog"));
        }
        Ok(table)
    }

    fn not_enforced(&mut self) -> Result<(), SyntaxError> {
        if self.eat_keyword("NOT") && self.eat_keyword("ENFORCED") {
            Ok(())
        } else {
            Err(self
                .error("Flink supports only PRIMARY KEY ... NOT ENFORCED (the key is not checked)"))
        }
    }

    fn watermark(&mut self, pos: Pos) -> Result<WatermarkDef, SyntaxError> {
        self.keyword("FOR")?;
        let (column, _) = self.identifier("the event-time column")?;
        self.keyword("AS")?;
        let (of, _) = self.identifier("the watermark: `column - INTERVAL 'n' SECOND`")?;
        if of != column {
            return Err(SyntaxError {
                pos,
                message: format!(
                    "the watermark must be `{column} - INTERVAL 'n' UNIT` (a bounded delay behind \
                     its column); other watermark expressions are not supported"
                ),
            });
        }
        let delay_ms = if self.eat_punct('-') {
            self.interval()?
        } else {
            0
        };
        Ok(WatermarkDef {
            column,
            delay_ms,
            pos,
        })
    }

    /// `INTERVAL 'n' UNIT` (also `INTERVAL 'n UNIT'`) in milliseconds.
    fn interval(&mut self) -> Result<i64, SyntaxError> {
        let at = self.pos();
        self.keyword("INTERVAL")?;
        let (text, _) = self.string("the interval, e.g. INTERVAL '5' SECOND")?;
        let mut parts = text.split_whitespace();
        let amount = parts.next().unwrap_or_default().to_string();
        let unit = match parts.next() {
            Some(u) => u.to_string(),
            None => {
                self.identifier("the interval's unit (SECOND, MINUTE, ...)")?
                    .0
            }
        };
        let per_unit: f64 = match unit.to_ascii_uppercase().trim_end_matches('S') {
            "MILLISECOND" => 1.0,
            "SECOND" => 1000.0,
            "MINUTE" => 60_000.0,
            "HOUR" => 3_600_000.0,
            "DAY" => 86_400_000.0,
            _ => {
                return Err(SyntaxError {
                    pos: at,
                    message: format!(
                        "unknown interval unit `{unit}`: use MILLISECOND, SECOND, MINUTE, HOUR or DAY"
                    ),
                });
            }
        };
        match amount.parse::<f64>() {
            #[allow(clippy::cast_possible_truncation)]
            Ok(n) if n >= 0.0 && n.is_finite() => Ok((n * per_unit).round() as i64),
            _ => Err(SyntaxError {
                pos: at,
                message: format!("`{amount}` is not a non-negative interval length"),
            }),
        }
    }

    fn column(&mut self) -> Result<ColumnDef, SyntaxError> {
        let (name, pos) = self.identifier("a column name, WATERMARK or PRIMARY KEY")?;
        if self.is_keyword("AS") {
            return Err(self.error(format!(
                "computed column `{name}`: computed columns are not supported in a feed catalog"
            )));
        }
        let ty = self.data_type()?;
        let mut field = FieldType {
            name,
            ty,
            nullable: true,
            comment: None,
        };
        let mut primary_key = false;
        loop {
            if self.eat_keyword("NOT") {
                self.keyword("NULL")?;
                field.nullable = false;
            } else if self.eat_keyword("NULL") {
                field.nullable = true;
            } else if self.eat_keyword("PRIMARY") {
                self.keyword("KEY")?;
                self.not_enforced()?;
                primary_key = true;
            } else if self.eat_keyword("COMMENT") {
                field.comment = Some(self.string("the column comment")?.0);
            } else if self.is_keyword("METADATA") {
                return Err(self.error(format!(
                    "metadata column `{}`: metadata columns are not supported in a feed catalog",
                    field.name
                )));
            } else {
                break;
            }
        }
        Ok(ColumnDef {
            field,
            pos,
            primary_key,
        })
    }

    /// A type, with `NOT NULL` inside ROW and ARRAY left to the caller for columns.
    fn data_type(&mut self) -> Result<SqlType, SyntaxError> {
        let at = self.pos();
        let (word, _) = match self.peek() {
            Some(Token {
                tok: Tok::Word(_), ..
            }) => self.identifier("a type")?,
            _ => return Err(self.error("expected a type")),
        };
        let upper = word.to_ascii_uppercase();
        let ty = match upper.as_str() {
            "STRING" => SqlType::String,
            "VARCHAR" | "CHAR" => {
                if self.eat_punct('(') {
                    self.integer("a length")?;
                    self.punct(')')?;
                }
                SqlType::String
            }
            "BOOLEAN" => SqlType::Boolean,
            "TINYINT" => SqlType::TinyInt,
            "SMALLINT" => SqlType::SmallInt,
            "INT" | "INTEGER" => SqlType::Int,
            "BIGINT" => SqlType::BigInt,
            "FLOAT" => SqlType::Float,
            "DOUBLE" => {
                self.eat_keyword("PRECISION");
                SqlType::Double
            }
            "DECIMAL" | "DEC" | "NUMERIC" => {
                let (mut precision, mut scale) = (10, 0);
                if self.eat_punct('(') {
                    precision = self.integer("the precision")?;
                    if self.eat_punct(',') {
                        scale = self.integer("the scale")?;
                    }
                    self.punct(')')?;
                }
                if !(1..=38).contains(&precision) || scale > precision {
                    return Err(SyntaxError {
                        pos: at,
                        message: format!(
                            "DECIMAL({precision}, {scale}): the precision is 1 to 38 and the scale \
                             at most the precision"
                        ),
                    });
                }
                SqlType::Decimal {
                    precision: u8::try_from(precision).unwrap_or(38),
                    scale: u8::try_from(scale).unwrap_or(0),
                }
            }
            "DATE" => SqlType::Date,
            "TIMESTAMP" | "TIMESTAMP_LTZ" => {
                let mut precision = 6;
                if self.eat_punct('(') {
                    precision = self.integer("the precision")?;
                    self.punct(')')?;
                }
                if precision > 9 {
                    return Err(SyntaxError {
                        pos: at,
                        message: format!("{upper}({precision}): the precision is 0 to 9"),
                    });
                }
                let precision = u8::try_from(precision).unwrap_or(9);
                let local = if upper == "TIMESTAMP_LTZ" {
                    true
                } else if self.eat_keyword("WITH") {
                    self.keyword("LOCAL")?;
                    self.keyword("TIME")?;
                    self.keyword("ZONE")?;
                    true
                } else {
                    if self.eat_keyword("WITHOUT") {
                        self.keyword("TIME")?;
                        self.keyword("ZONE")?;
                    }
                    false
                };
                if local {
                    SqlType::TimestampLtz { precision }
                } else {
                    SqlType::Timestamp { precision }
                }
            }
            "ROW" => {
                let close = if self.eat_punct('<') {
                    '>'
                } else {
                    self.punct('(')
                        .map_err(|_| self.error("expected ROW<name TYPE, ...>"))?;
                    ')'
                };
                let mut fields = Vec::new();
                loop {
                    let (name, _) = self.identifier("a field name")?;
                    let ty = self.data_type()?;
                    let mut field = FieldType {
                        name,
                        ty,
                        nullable: true,
                        comment: None,
                    };
                    if self.eat_keyword("NOT") {
                        self.keyword("NULL")?;
                        field.nullable = false;
                    } else {
                        self.eat_keyword("NULL");
                    }
                    if let Some(Token {
                        tok: Tok::Str(s), ..
                    }) = self.peek()
                    {
                        field.comment = Some(s.clone());
                        self.at += 1;
                    }
                    fields.push(field);
                    if self.eat_punct(close) {
                        break;
                    }
                    self.punct(',')?;
                }
                SqlType::Row(fields)
            }
            "ARRAY" => {
                self.punct('<')
                    .map_err(|_| self.error("expected ARRAY<TYPE>"))?;
                let ty = self.data_type()?;
                let mut nullable = true;
                if self.eat_keyword("NOT") {
                    self.keyword("NULL")?;
                    nullable = false;
                } else {
                    self.eat_keyword("NULL");
                }
                self.punct('>')?;
                SqlType::Array(Box::new(FieldType {
                    name: "element".into(),
                    ty,
                    nullable,
                    comment: None,
                }))
            }
            "TIME" | "MAP" | "MULTISET" | "BINARY" | "VARBINARY" | "BYTES" | "INTERVAL" | "RAW" => {
                return Err(SyntaxError {
                    pos: at,
                    message: format!(
                        "type {upper} is not supported in a feed catalog: use STRING, BOOLEAN, \
                         TINYINT..BIGINT, FLOAT, DOUBLE, DECIMAL, DATE, TIMESTAMP, TIMESTAMP_LTZ, \
                         ROW<...> or ARRAY<...>"
                    ),
                });
            }
            _ => {
                return Err(SyntaxError {
                    pos: at,
                    message: format!("unknown type `{word}`"),
                });
            }
        };
        Ok(ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flink_table_parses_with_positions() {
        let text = "-- a feed\nCREATE TABLE `grid` (\n  id STRING NOT NULL COMMENT 'the id',\n  \
                    ts TIMESTAMP_LTZ(3) NOT NULL,\n  loc ROW<x DOUBLE, y DOUBLE NOT NULL>,\n  \
                    tags ARRAY<STRING>,\n  amount DECIMAL(10, 2),\n  \
                    WATERMARK FOR ts AS ts - INTERVAL '5' SECOND,\n  \
                    PRIMARY KEY (id) NOT ENFORCED\n) WITH ('connector' = 'kafka', 'topic' = 'g');";
        let tables = parse(text).expect("parses");
        assert_eq!(tables.len(), 1);
        let t = &tables[0];
        assert_eq!(t.name, "grid");
        assert_eq!(
            t.pos,
            Pos {
                line: 2,
                column: 14
            }
        );
        let names: Vec<&str> = t.columns.iter().map(|c| c.field.name.as_str()).collect();
        assert_eq!(names, ["id", "ts", "loc", "tags", "amount"]);
        assert!(!t.columns[0].field.nullable);
        assert_eq!(t.columns[0].field.comment.as_deref(), Some("the id"));
        assert_eq!(t.columns[1].pos, Pos { line: 4, column: 3 });
        assert_eq!(
            t.columns[1].field.ty,
            SqlType::TimestampLtz { precision: 3 }
        );
        let SqlType::Row(fields) = &t.columns[2].field.ty else {
            panic!("a row")
        };
        assert!(fields[0].nullable && !fields[1].nullable);
        assert!(matches!(&t.columns[3].field.ty, SqlType::Array(e) if e.ty == SqlType::String));
        assert_eq!(
            t.columns[4].field.ty,
            SqlType::Decimal {
                precision: 10,
                scale: 2
            }
        );
        let wm = t.watermark.as_ref().expect("watermark");
        assert_eq!((wm.column.as_str(), wm.delay_ms), ("ts", 5000));
        assert_eq!(
            t.primary_key.as_ref().map(|k| k.0.clone()),
            Some(vec!["id".into()])
        );
        assert_eq!(t.options.len(), 2);
        assert_eq!(t.options[1].0, "topic");
    }

    #[test]
    fn intervals_and_type_spellings() {
        let text = "CREATE TABLE t (a INTEGER, b DOUBLE PRECISION, c VARCHAR(20), \
                    d TIMESTAMP(3) WITH LOCAL TIME ZONE, e TIMESTAMP, f ROW(g INT), \
                    WATERMARK FOR d AS d - INTERVAL '1.5 minutes') WITH ('connector' = 'x')";
        let t = &parse(text).expect("parses")[0];
        let types: Vec<&SqlType> = t.columns.iter().map(|c| &c.field.ty).collect();
        assert_eq!(types[0], &SqlType::Int);
        assert_eq!(types[1], &SqlType::Double);
        assert_eq!(types[2], &SqlType::String);
        assert_eq!(types[3], &SqlType::TimestampLtz { precision: 3 });
        assert_eq!(types[4], &SqlType::Timestamp { precision: 6 });
        assert_eq!(t.watermark.as_ref().map(|w| w.delay_ms), Some(90_000));
    }

    #[test]
    fn syntax_errors_say_where_and_what() {
        let cases = [
            ("CREATE INDEX i ON t (a)", 1, 8, "expected TABLE"),
            (
                "CREATE TABLE t (a STRNG) WITH ()",
                1,
                19,
                "unknown type `STRNG`",
            ),
            (
                "CREATE TABLE t (\n a INT,\n b AS a + 1\n) WITH ()",
                3,
                4,
                "computed column `b`",
            ),
            (
                "CREATE TABLE t (a INT) WITH ('x' = 'y'",
                1,
                36,
                "expected `,`",
            ),
            (
                "CREATE TABLE t (a INT, PRIMARY KEY (a)) WITH ()",
                1,
                39,
                "NOT ENFORCED",
            ),
            ("CREATE TABLE t (a INT)", 1, 22, "expected WITH"),
            (
                "CREATE TABLE t (a MAP<STRING, INT>) WITH ()",
                1,
                19,
                "type MAP is not supported",
            ),
            (
                "CREATE TABLE t (a INT) WITH ('x' = 'y\n",
                1,
                36,
                "never closed",
            ),
            (
                "CREATE TABLE t (ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '5' WEEK) WITH ()",
                1,
                59,
                "unknown interval unit `WEEK`",
            ),
        ];
        for (text, line, column, needle) in cases {
            let e = parse(text).expect_err(text);
            assert!(e.message.contains(needle), "{text}: {}", e.message);
            assert_eq!(e.pos, Pos { line, column }, "{text}: {}", e.message);
        }
    }
}
