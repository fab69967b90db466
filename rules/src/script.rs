//! Flink SQL scripts as rules: a file of statements separated by `;`, as Flink's SQL client
//! runs it, becomes one rule per query.
//!
//! ```text
//!  -- the feeds                         CREATE TABLE ...            passed over (the catalog's)
//!  CREATE TABLE bid (...) WITH (...);   SET 'k' = 'v'               passed over
//!  -- title: Hot items                  SELECT ...                  a rule
//!  INSERT INTO alerts SELECT ...;       INSERT INTO t SELECT ...    a rule: the SELECT
//!  CREATE VIEW v AS SELECT ...;         CREATE VIEW v AS SELECT ... a view named v
//! ```
//!
//! Each rule's text is the whole file with everything but its own statement and the comments
//! just before it (its header) turned into spaces, line breaks kept: error positions are the
//! file's own lines and columns.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use crate::rule::RuleSource;

/// Statements passed over: the client's commands and DDL other than views.
const PASSED_OVER: [&str; 17] = [
    "SET", "RESET", "USE", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "LOAD", "UNLOAD", "ADD",
    "REMOVE", "DROP", "ALTER", "ANALYZE", "TRUNCATE", "DELETE", "UPDATE",
];

/// What one statement of a script is.
#[derive(Debug, PartialEq)]
enum Kind {
    /// Not a rule.
    Skip,
    /// A query from token `start` on (`INSERT INTO t` before it is left out).
    Query { start: usize },
    /// `CREATE VIEW name AS` and the query from `start` on.
    View { name: String, start: usize },
}

/// The rules of `src`: `src` itself when it is one query (the usual rule file), otherwise one
/// rule per query of the script (see the module docs). A file of DDL alone gives none; text
/// the tokenizer cannot read is left whole, for planning to report.
pub fn split_script(src: RuleSource) -> Vec<RuleSource> {
    if src.defect.is_some() {
        return vec![src];
    }
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, &src.text).tokenize_with_location() else {
        return vec![src];
    };
    let statements = statements(&tokens);
    let kinds: Vec<(Kind, &[TokenWithSpan], usize)> = statements
        .iter()
        .map(|(range, lead)| {
            (
                classify(&tokens[range.clone()]),
                &tokens[range.clone()],
                *lead,
            )
        })
        .collect();
    let queries = kinds.iter().filter(|(k, ..)| *k != Kind::Skip).count();
    if statements.len() == 1 && matches!(kinds[0].0, Kind::Query { start: 0 }) {
        return vec![src];
    }
    let lines = LineIndex::new(&src.text);
    let mut out = Vec::new();
    let mut n = 0;
    for ((kind, toks, lead), (range, _)) in kinds.iter().zip(&statements) {
        let start = match kind {
            Kind::Skip => continue,
            Kind::Query { start } | Kind::View { start, .. } => *start,
        };
        n += 1;
        let Some(last) = toks.iter().rposition(is_code) else {
            continue;
        };
        // The statement's own header: the comments after the previous statement.
        let header = &tokens[range.start - lead..range.start];
        let mut keep: Vec<(usize, usize)> = Vec::new();
        if let (Some(first), Some(end)) = (header.first(), header.last()) {
            keep.push((lines.offset(first.span.start), lines.offset(end.span.end)));
        }
        // The only query of a file also has the file's header (the comments before its first
        // statement).
        if queries == 1
            && let Some((first, lead)) = statements.first()
        {
            let head = &tokens[first.start - lead..first.start];
            if let (Some(a), Some(b)) = (head.first(), head.last()) {
                keep.push((lines.offset(a.span.start), lines.offset(b.span.end)));
            }
        }
        keep.push((
            lines.offset(toks[start].span.start),
            lines.offset(toks[last].span.end),
        ));
        let (id, view) = match kind {
            Kind::View { name, .. } => (format!("{}/{name}", src.id), true),
            _ if queries == 1 => (src.id.clone(), false),
            _ => (format!("{}/{n}", src.id), false),
        };
        out.push(RuleSource {
            id,
            path: src.path.clone(),
            text: blank_outside(&src.text, &keep),
            defect: None,
            view,
        });
    }
    out
}

/// The statements of a script: each one's token range (without its `;`) and how many
/// whitespace and comment tokens just before it belong to it (after the previous `;`).
fn statements(tokens: &[TokenWithSpan]) -> Vec<(std::ops::Range<usize>, usize)> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut begin = 0;
    let push = |from: usize, to: usize, out: &mut Vec<(std::ops::Range<usize>, usize)>| {
        let slice = &tokens[from..to];
        if let Some(first) = slice.iter().position(is_code) {
            out.push((from + first..to, first));
        }
    };
    for (i, t) in tokens.iter().enumerate() {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::SemiColon if depth <= 0 => {
                push(begin, i, &mut out);
                begin = i + 1;
                depth = 0;
            }
            _ => {}
        }
    }
    push(begin, tokens.len(), &mut out);
    out
}

fn is_code(t: &TokenWithSpan) -> bool {
    !matches!(t.token, Token::Whitespace(_))
}

fn word(t: &TokenWithSpan) -> Option<String> {
    match &t.token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

/// What the statement `toks` (from its first code token) is.
fn classify(toks: &[TokenWithSpan]) -> Kind {
    let code: Vec<usize> = (0..toks.len()).filter(|i| is_code(&toks[*i])).collect();
    let w = |k: usize| code.get(k).and_then(|i| word(&toks[*i]));
    let mut k = 0;
    // `EXECUTE STATEMENT SET BEGIN ...` / `BEGIN STATEMENT SET; ...; END`: the statements
    // inside are statements of their own.
    if w(0).as_deref() == Some("EXECUTE") && w(1).as_deref() == Some("STATEMENT") {
        k = 3;
        if w(k).as_deref() == Some("BEGIN") {
            k += 1;
        }
    } else if w(0).as_deref() == Some("BEGIN") || w(0).as_deref() == Some("END") {
        return Kind::Skip;
    } else if w(0).as_deref() == Some("EXECUTE") {
        k = 1;
    }
    match w(k).as_deref() {
        None if code.len() > k => Kind::Query { start: code[k] },
        None => Kind::Skip,
        Some("CREATE") => {
            k += 1;
            while matches!(
                w(k).as_deref(),
                Some("TEMPORARY" | "SYSTEM" | "OR" | "REPLACE")
            ) {
                k += 1;
            }
            if w(k).as_deref() != Some("VIEW") {
                return Kind::Skip;
            }
            k += 1;
            if w(k).as_deref() == Some("IF") {
                k += 3;
            }
            let Some(name) = code.get(k).and_then(|i| match &toks[*i].token {
                Token::Word(w) => Some(w.value.clone()),
                _ => None,
            }) else {
                return Kind::Skip;
            };
            // The query follows the first AS.
            match (k + 1..code.len()).find(|j| w(*j).as_deref() == Some("AS")) {
                Some(a) if a + 1 < code.len() => Kind::View {
                    name,
                    start: code[a + 1],
                },
                _ => Kind::Skip,
            }
        }
        Some("INSERT") => {
            // INSERT INTO|OVERWRITE name [PARTITION (...)] [(columns)] query
            k += 2;
            while code.get(k).is_some_and(|i| {
                matches!(toks[*i].token, Token::Period) || matches!(toks[*i].token, Token::Word(_))
            }) && !matches!(w(k).as_deref(), Some("SELECT" | "WITH" | "VALUES"))
            {
                if w(k).as_deref() == Some("PARTITION") {
                    k += 1;
                    k = skip_parens(toks, &code, k);
                    continue;
                }
                k += 1;
            }
            // A column list, not a parenthesised query.
            if code
                .get(k)
                .is_some_and(|i| matches!(toks[*i].token, Token::LParen))
                && !matches!(w(k + 1).as_deref(), Some("SELECT" | "WITH" | "VALUES"))
            {
                k = skip_parens(toks, &code, k);
            }
            match code.get(k) {
                Some(i) => Kind::Query { start: *i },
                None => Kind::Skip,
            }
        }
        Some(first) if PASSED_OVER.contains(&first) => Kind::Skip,
        Some(_) => Kind::Query { start: code[k] },
    }
}

/// The position in `code` just after the parenthesised group starting at `code[k]`.
fn skip_parens(toks: &[TokenWithSpan], code: &[usize], mut k: usize) -> usize {
    let mut depth = 0;
    while let Some(i) = code.get(k) {
        match toks[*i].token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth <= 0 {
                    return k + 1;
                }
            }
            _ if depth == 0 => return k,
            _ => {}
        }
        k += 1;
    }
    k
}

/// Byte offsets of tokenizer locations (1-based line, column in characters).
struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { text, starts }
    }

    fn offset(&self, at: Location) -> usize {
        let Some(&start) = usize::try_from(at.line)
            .ok()
            .and_then(|l| l.checked_sub(1))
            .and_then(|l| self.starts.get(l))
        else {
            return self.text.len();
        };
        let column = usize::try_from(at.column).unwrap_or(1).saturating_sub(1);
        self.text[start..]
            .char_indices()
            .nth(column)
            .map_or(self.text.len(), |(i, _)| start + i)
    }
}

/// `text` with every character outside the byte ranges `keep` replaced by a space (line breaks
/// kept, so lines and columns stay).
fn blank_outside(text: &str, keep: &[(usize, usize)]) -> String {
    text.char_indices()
        .map(|(i, c)| {
            if c == '\n' || c == '\r' || keep.iter().any(|(a, b)| (*a..*b).contains(&i)) {
                c
            } else {
                ' '
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<RuleSource> {
        split_script(RuleSource::inline("s", text))
    }

    #[test]
    fn one_query_stays_as_it_is() {
        let rules = split("-- title: x\nSELECT 1 FROM t");
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].id, "s");
        assert_eq!(rules[0].text, "-- title: x\nSELECT 1 FROM t");
        // A trailing `;` as Flink's client wants it is still one query.
        assert_eq!(split("SELECT 1;\n").len(), 1);
    }

    #[test]
    fn a_script_gives_its_queries_in_place() {
        let text = "-- Nexmark, the Flink way\nCREATE TABLE bid (a BIGINT) WITH ('connector' = 'x');\n\
                    SET 'parallelism.default' = '1';\n\
                    -- title: Hot\nINSERT INTO alerts SELECT a FROM bid;\n\
                    CREATE TEMPORARY VIEW big AS SELECT a FROM bid WHERE a > 10;\n\
                    SELECT * FROM big;";
        let rules = split(text);
        let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["s/1", "s/big", "s/3"]);
        let lines: Vec<&str> = rules[0].text.lines().map(str::trim_end).collect();
        assert_eq!(lines.len(), 7, "lines kept");
        assert_eq!(lines[3], "-- title: Hot");
        assert_eq!(lines[4], "                   SELECT a FROM bid");
        assert!(lines[1].trim().is_empty() && lines[2].trim().is_empty());
        assert!(!rules[0].view && rules[1].view);
        assert_eq!(
            rules[1].text.lines().nth(5).map(str::trim),
            Some("SELECT a FROM bid WHERE a > 10")
        );
        assert_eq!(
            rules[2].text.lines().nth(6).map(str::trim),
            Some("SELECT * FROM big")
        );
    }

    #[test]
    fn ddl_alone_gives_no_rule_and_one_query_keeps_the_file_header() {
        assert!(split("CREATE TABLE t (a INT) WITH ('connector' = 'x');").is_empty());
        let rules = split(
            "-- title: One\n-- severity: high\nCREATE TABLE t (a INT) WITH ('c' = 'x');\nSELECT a FROM t",
        );
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].id, "s");
        assert!(
            rules[0]
                .text
                .starts_with("-- title: One\n-- severity: high\n")
        );
        assert!(rules[0].text.ends_with("\nSELECT a FROM t"));
    }

    #[test]
    fn insert_targets_with_columns_and_statement_sets() {
        let rules = split(
            "EXECUTE STATEMENT SET BEGIN\nINSERT INTO db.sink (a, b) SELECT a, b FROM t;\n\
             INSERT INTO s2 (SELECT a FROM t);\nEND;",
        );
        let texts: Vec<String> = rules.iter().map(|r| r.text.trim().to_string()).collect();
        assert_eq!(texts, ["SELECT a, b FROM t", "(SELECT a FROM t)"]);
    }
}
