//! The Flink window table-valued functions, parsed from sqlparser's tokens.
//!
//! Analysts write windows the way Apache Flink SQL does:
//!
//! ```sql
//! SELECT road_id, window_start, window_end, AVG(speed_kmh) AS avg_speed
//! FROM TABLE(TUMBLE(TABLE traffic, DESCRIPTOR(ts), INTERVAL '5' MINUTES))
//! GROUP BY road_id, window_start, window_end
//! ```
//!
//! The sqlparser that DataFusion uses rejects `TABLE name` as a function argument, so
//! [`rewrite`] works on the token stream (never on the text): it finds each
//! `TABLE(<KIND>(...))` call, parses its arguments into a [`WindowTvf`] and replaces the call's
//! tokens by tokens that DataFusion can plan. Every token keeps its original span, so errors
//! still point at the analyst's line and column.
//!
//! - [`Mode::Streaming`]: the call becomes a reference to a table named by
//!   [`WindowTvf::slot`], which the streaming operator fills with the input rows plus the
//!   `window_start`, `window_end` and `window_time` columns it assigns itself.
//! - [`Mode::Batch`]: the call becomes a subquery computing the same columns with DataFusion's
//!   own `date_bin`, the independent oracle that tests compare the streaming result with.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan, Tokenizer};

/// Name of the column holding a window's inclusive start.
pub const WINDOW_START: &str = "window_start";
/// Name of the column holding a window's exclusive end.
pub const WINDOW_END: &str = "window_end";
/// Name of the column holding a window's time attribute (`window_end` minus 1 ms), as in Flink.
pub const WINDOW_TIME: &str = "window_time";

/// One problem found in a rule's text, with its position in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diag {
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
    /// What is wrong, for a person.
    pub message: String,
}

impl Diag {
    pub(crate) fn at(loc: Location, message: impl Into<String>) -> Self {
        Self {
            line: loc.line.max(1),
            column: loc.column.max(1),
            message: message.into(),
        }
    }
}

/// The kind and size of a window, with all lengths in milliseconds.
///
/// The kinds that tile time (`TUMBLE`, `HOP`, `CUMULATE`) are cut into **slices**, as Flink
/// does: every window is a run of whole slices, so a row is stored (or pre-aggregated) once, in
/// its slice, however many windows it belongs to. A `SESSION` window is its own unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// `TUMBLE(TABLE t, DESCRIPTOR(ts), size)`: fixed, non-overlapping windows aligned to the epoch.
    Tumble {
        /// Window length.
        size_ms: i64,
    },
    /// `HOP(TABLE t, DESCRIPTOR(ts), slide, size)`: windows of `size` starting every `slide`.
    Hop {
        /// Distance between window starts (the slice length).
        slide_ms: i64,
        /// Window length, a whole multiple of the slide.
        size_ms: i64,
    },
    /// `CUMULATE(TABLE t, DESCRIPTOR(ts), step, max_size)`: windows that all start at a
    /// multiple of `max_size` and end every `step` until `max_size`.
    Cumulate {
        /// Growth step (the slice length).
        step_ms: i64,
        /// Length of the largest window, a whole multiple of the step.
        max_size_ms: i64,
    },
    /// `SESSION(TABLE t [PARTITION BY k], DESCRIPTOR(ts), gap)`: per key, events closer than
    /// `gap` share a window `[first ts, last ts + gap)`.
    Session {
        /// Inactivity that closes a session.
        gap_ms: i64,
    },
}

#[inline]
fn floor_to(ts: i64, unit: i64) -> i64 {
    ts - ts.rem_euclid(unit)
}

impl WindowKind {
    /// The slice length, for the kinds that tile time.
    pub fn slice_ms(self) -> Option<i64> {
        match self {
            WindowKind::Tumble { size_ms } => Some(size_ms),
            WindowKind::Hop { slide_ms, .. } => Some(slide_ms),
            WindowKind::Cumulate { step_ms, .. } => Some(step_ms),
            WindowKind::Session { .. } => None,
        }
    }

    /// The start of the slice holding `ts` (sliced kinds).
    #[inline]
    pub fn slice_start(self, ts: i64) -> i64 {
        floor_to(ts, self.slice_ms().unwrap_or(1))
    }

    /// The ends of every window that holds the slice starting at `slice`, ascending.
    pub fn window_ends(self, slice: i64) -> impl Iterator<Item = i64> {
        let (step, last) = match self {
            WindowKind::Tumble { size_ms } => (size_ms, slice.saturating_add(size_ms)),
            WindowKind::Hop { slide_ms, size_ms } => (slide_ms, slice.saturating_add(size_ms)),
            WindowKind::Cumulate {
                step_ms,
                max_size_ms,
            } => (
                step_ms,
                floor_to(slice, max_size_ms).saturating_add(max_size_ms),
            ),
            WindowKind::Session { gap_ms } => (gap_ms, slice.saturating_add(gap_ms)),
        };
        let first = slice.saturating_add(step);
        let mut next = Some(first);
        std::iter::from_fn(move || {
            let end = next?;
            next = (end < last).then(|| end.saturating_add(step));
            Some(end.min(last))
        })
    }

    /// The end of the last window holding the slice starting at `slice`: until the watermark
    /// passes it, rows of that slice still count somewhere.
    pub fn last_window_end(self, slice: i64) -> i64 {
        self.window_ends(slice).last().unwrap_or(slice)
    }

    /// The start of the window ending at `end` (sliced kinds).
    pub fn window_start(self, end: i64) -> i64 {
        match self {
            WindowKind::Tumble { size_ms } | WindowKind::Hop { size_ms, .. } => {
                end.saturating_sub(size_ms)
            }
            WindowKind::Cumulate { max_size_ms, .. } => floor_to(end - 1, max_size_ms),
            WindowKind::Session { gap_ms } => end.saturating_sub(gap_ms),
        }
    }

    /// The `[start, end)` of the first window holding `ts` (the only one for `TUMBLE`).
    #[inline]
    pub fn assign(self, ts: i64) -> (i64, i64) {
        match self {
            WindowKind::Session { gap_ms } => (ts, ts.saturating_add(gap_ms)),
            _ => {
                let end = self
                    .window_ends(self.slice_start(ts))
                    .next()
                    .unwrap_or(i64::MAX);
                (self.window_start(end), end)
            }
        }
    }

    /// The longest window: how far back in event time a window can reach.
    pub fn size_ms(self) -> i64 {
        match self {
            WindowKind::Tumble { size_ms } | WindowKind::Hop { size_ms, .. } => size_ms,
            WindowKind::Cumulate { max_size_ms, .. } => max_size_ms,
            WindowKind::Session { gap_ms } => gap_ms,
        }
    }
}

impl std::fmt::Display for WindowKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WindowKind::Tumble { size_ms } => write!(f, "TUMBLE {}", human_ms(*size_ms)),
            WindowKind::Hop { slide_ms, size_ms } => write!(
                f,
                "HOP {} every {}",
                human_ms(*size_ms),
                human_ms(*slide_ms)
            ),
            WindowKind::Cumulate {
                step_ms,
                max_size_ms,
            } => write!(
                f,
                "CUMULATE to {} by {}",
                human_ms(*max_size_ms),
                human_ms(*step_ms)
            ),
            WindowKind::Session { gap_ms } => write!(f, "SESSION gap {}", human_ms(*gap_ms)),
        }
    }
}

/// `300000` → `5min`, `1500` → `1500ms`.
fn human_ms(ms: i64) -> String {
    for (unit, name) in [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "min"),
        (1_000, "s"),
    ] {
        if ms % unit == 0 {
            return format!("{}{name}", ms / unit);
        }
    }
    format!("{ms}ms")
}

/// One window table-valued function found in a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowTvf {
    /// Which window and its size.
    pub kind: WindowKind,
    /// The table it reads (`TABLE traffic`).
    pub table: String,
    /// The time attribute column (`DESCRIPTOR(ts)`).
    pub time_column: String,
    /// `SESSION(TABLE t PARTITION BY k, ...)`: the columns sessions are kept apart by.
    pub partition_by: Vec<String>,
    /// The name the call was replaced by in streaming mode.
    pub slot: String,
    /// Where the call starts in the rule file.
    pub line: u64,
}

/// How a window call is rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Refer to an operator-fed table.
    Streaming,
    /// Compute the window columns with DataFusion's `date_bin` over the whole table.
    Batch,
}

/// The rule's tokens with every window call rewritten, and the calls found.
#[derive(Debug)]
pub struct Rewritten {
    /// Tokens ready for `Parser::with_tokens_with_locations`.
    pub tokens: Vec<TokenWithSpan>,
    /// The window calls, in order of appearance.
    pub windows: Vec<WindowTvf>,
}

/// Tokenizes `sql` and rewrites its window calls.
///
/// # Errors
/// Every malformed window call is reported, each at its own position.
pub fn rewrite(sql: &str, mode: Mode) -> Result<Rewritten, Vec<Diag>> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| vec![Diag::at(e.location, e.message)])?;
    let mut out = Vec::with_capacity(tokens.len());
    let mut windows = Vec::new();
    let mut diags = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if let Some(kind_at) = window_call_at(&tokens, i) {
            match parse_call(&tokens, i, kind_at, windows.len()) {
                Ok((tvf, end)) => {
                    let span = tokens[i].span;
                    let needs_alias = !has_alias(&tokens, end + 1);
                    emit_replacement(&tvf, mode, span, needs_alias, &mut out);
                    windows.push(tvf);
                    i = end + 1;
                    continue;
                }
                Err(d) => {
                    diags.push(d);
                    // Skip the call's keyword so the rest of the rule is still checked.
                    i = kind_at + 1;
                    continue;
                }
            }
        }
        out.push(tokens[i].clone());
        i += 1;
    }
    if diags.is_empty() {
        Ok(Rewritten {
            tokens: out,
            windows,
        })
    } else {
        Err(diags)
    }
}

const KINDS: [&str; 4] = ["TUMBLE", "HOP", "CUMULATE", "SESSION"];

fn is_trivia(t: &Token) -> bool {
    matches!(t, Token::Whitespace(_))
}

/// Index of the next non-whitespace token at or after `i`.
fn skip(tokens: &[TokenWithSpan], mut i: usize) -> usize {
    while i < tokens.len() && is_trivia(&tokens[i].token) {
        i += 1;
    }
    i
}

fn word_is(t: &Token, name: &str) -> bool {
    matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(name))
}

/// If `TABLE ( KIND (` starts at `i`, the index of `KIND`.
fn window_call_at(tokens: &[TokenWithSpan], i: usize) -> Option<usize> {
    if !word_is(&tokens[i].token, "TABLE") {
        return None;
    }
    let lp = skip(tokens, i + 1);
    if !matches!(tokens.get(lp)?.token, Token::LParen) {
        return None;
    }
    let kind = skip(tokens, lp + 1);
    let kind_tok = &tokens.get(kind)?.token;
    let is_kind = KINDS.iter().any(|k| word_is(kind_tok, k));
    let lp2 = skip(tokens, kind + 1);
    (is_kind && matches!(tokens.get(lp2)?.token, Token::LParen)).then_some(kind)
}

/// Parses `TABLE ( KIND ( args ) )` starting at `start`; returns the call and the index of its
/// last token.
fn parse_call(
    tokens: &[TokenWithSpan],
    start: usize,
    kind_at: usize,
    n: usize,
) -> Result<(WindowTvf, usize), Diag> {
    let kind_tok = &tokens[kind_at];
    let kind_name = match &kind_tok.token {
        Token::Word(w) => w.value.to_ascii_uppercase(),
        _ => unreachable!("window_call_at checked the keyword"),
    };
    let open = skip(tokens, kind_at + 1);
    // Split the arguments at top-level commas until the matching parenthesis.
    let mut args: Vec<Vec<&TokenWithSpan>> = vec![Vec::new()];
    let mut depth = 0usize;
    let mut i = open + 1;
    loop {
        let Some(t) = tokens.get(i) else {
            return Err(Diag::at(
                kind_tok.span.start,
                format!("{kind_name}(...) is not closed: missing `)`"),
            ));
        };
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen if depth == 0 => break,
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 => {
                args.push(Vec::new());
                i += 1;
                continue;
            }
            _ => {}
        }
        if !is_trivia(&t.token) {
            args.last_mut().expect("never empty").push(t);
        }
        i += 1;
    }
    let close_inner = i;
    let close_outer = skip(tokens, close_inner + 1);
    if !matches!(
        tokens.get(close_outer).map(|t| &t.token),
        Some(Token::RParen)
    ) {
        return Err(Diag::at(
            tokens[close_inner].span.end,
            format!("expected `)` closing TABLE({kind_name}(...))"),
        ));
    }
    let (usage, names): (&str, &[&str]) = match kind_name.as_str() {
        "TUMBLE" => (
            "TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '5' MINUTES)",
            &["DATA", "TIMECOL", "SIZE"],
        ),
        "HOP" => (
            "HOP(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '10' MINUTES) (slide, then size)",
            &["DATA", "TIMECOL", "SLIDE", "SIZE"],
        ),
        "CUMULATE" => (
            "CUMULATE(TABLE t, DESCRIPTOR(ts), INTERVAL '10' MINUTES, INTERVAL '1' HOUR) (step, then max size)",
            &["DATA", "TIMECOL", "STEP", "SIZE"],
        ),
        _ => (
            "SESSION(TABLE t PARTITION BY key, DESCRIPTOR(ts), INTERVAL '10' MINUTES)",
            &["DATA", "TIMECOL", "GAP"],
        ),
    };
    let args = named_args(args, names, usage, kind_tok.span.start)?;
    if args.len() != names.len() || args.iter().any(Vec::is_empty) {
        return Err(Diag::at(
            kind_tok.span.start,
            format!(
                "{kind_name} takes {} arguments, found {}: use {usage}",
                names.len(),
                args.iter().filter(|a| !a.is_empty()).count()
            ),
        ));
    }
    let (table, partition_by) = parse_table_arg(&args[0], usage, kind_name == "SESSION")?;
    let time_column = parse_descriptor(&args[1], usage)?;
    let at = |i: usize| args[i][0].span.start;
    let multiple = |small: i64, big: i64, what: &str| {
        if big % small == 0 {
            Ok(())
        } else {
            Err(Diag::at(
                kind_tok.span.start,
                format!(
                    "the {what} of {kind_name} must be a whole multiple of its {}: use {usage}",
                    if kind_name == "HOP" { "slide" } else { "step" }
                ),
            ))
        }
    };
    let kind = match kind_name.as_str() {
        "TUMBLE" => WindowKind::Tumble {
            size_ms: parse_interval(&args[2])?,
        },
        "HOP" => {
            let (slide_ms, size_ms) = (parse_interval(&args[2])?, parse_interval(&args[3])?);
            multiple(slide_ms, size_ms, "size").map_err(|mut d| {
                (d.line, d.column) = (at(3).line, at(3).column);
                d
            })?;
            WindowKind::Hop { slide_ms, size_ms }
        }
        "CUMULATE" => {
            let (step_ms, max_size_ms) = (parse_interval(&args[2])?, parse_interval(&args[3])?);
            multiple(step_ms, max_size_ms, "max size").map_err(|mut d| {
                (d.line, d.column) = (at(3).line, at(3).column);
                d
            })?;
            WindowKind::Cumulate {
                step_ms,
                max_size_ms,
            }
        }
        _ => WindowKind::Session {
            gap_ms: parse_interval(&args[2])?,
        },
    };
    bounded(kind, &kind_name).map_err(|message| Diag::at(at(args.len() - 1), message))?;
    let tvf = WindowTvf {
        kind,
        table,
        time_column,
        partition_by,
        slot: format!("__cb_w{n}"),
        line: tokens[start].span.start.line,
    };
    Ok((tvf, close_outer))
}

/// The longest window a rule may use (TUMBLE and HOP size, CUMULATE max size, SESSION gap):
/// 7 days. Window state is rebuilt from input not yet committed (Kafka), so a window must close
/// well within the feed topics' retention (Kafka keeps 7 days by default); until it closes,
/// its rows or partial states stay in memory.
pub const MAX_WINDOW_MS: i64 = 7 * 86_400_000;

/// The most windows one row may belong to, which is also the most slices a window is made of:
/// HOP size / slide, CUMULATE max size / step. Every slice adds its window ends to the open
/// windows and every window closing merges that many slices, so HOP with a 1 ms slide and a
/// 1 day size (86.4 million windows per row) would grow without end and never emit. 10,000
/// allows, e.g., a 1-hour window every second or a day every 10 seconds.
pub const MAX_WINDOWS_PER_ROW: i64 = 10_000;

/// Whether `kind` stays within [`MAX_WINDOW_MS`] and [`MAX_WINDOWS_PER_ROW`]; if not, why.
pub(crate) fn bounded(kind: WindowKind, name: &str) -> Result<(), String> {
    let size = kind.size_ms();
    if size > MAX_WINDOW_MS {
        return Err(format!(
            "a {name} window of {} is longer than the longest allowed, {}: a window holds its \
             state until it closes, and must close within the input's retention",
            human_ms(size),
            human_ms(MAX_WINDOW_MS)
        ));
    }
    if let Some(slice) = kind.slice_ms() {
        let per_row = size / slice;
        if per_row > MAX_WINDOWS_PER_ROW {
            return Err(format!(
                "{kind} puts every row in {per_row} windows (size / {}), more than \
                 {MAX_WINDOWS_PER_ROW}: every window closing merges that many slices; use a \
                 longer {} or a shorter size",
                if name == "HOP" { "slide" } else { "step" },
                if name == "HOP" { "slide" } else { "step" },
            ));
        }
    }
    Ok(())
}

/// Puts `NAME => value` arguments (Flink's named form) in their positional order.
fn named_args<'a>(
    args: Vec<Vec<&'a TokenWithSpan>>,
    names: &[&str],
    usage: &str,
    at: Location,
) -> Result<Vec<Vec<&'a TokenWithSpan>>, Diag> {
    let is_named = |a: &[&TokenWithSpan]| matches!(a, [name, arrow, ..] if matches!(name.token, Token::Word(_)) && arrow.token == Token::RArrow);
    if !args.iter().any(|a| is_named(a)) {
        return Ok(args);
    }
    let mut out: Vec<Vec<&TokenWithSpan>> = vec![Vec::new(); names.len()];
    for a in args {
        let name = match (is_named(&a), &a[0].token) {
            (true, Token::Word(w)) => w.value.to_ascii_uppercase(),
            _ => {
                return Err(Diag::at(
                    a.first().map_or(at, |t| t.span.start),
                    format!("name every argument or none: use {usage}"),
                ));
            }
        };
        let name = if name == "MAX_SIZE" {
            "SIZE".to_string()
        } else {
            name
        };
        let Some(i) = names.iter().position(|n| *n == name) else {
            return Err(Diag::at(
                a[0].span.start,
                format!(
                    "unknown argument `{name}`; this window takes {}",
                    names.join(", ")
                ),
            ));
        };
        out[i] = a[2..].to_vec();
    }
    Ok(out)
}

/// An identifier as written: names are case-sensitive, quoted or not (as in Flink).
fn ident(t: &Token) -> Option<String> {
    match t {
        Token::Word(w) => Some(w.value.clone()),
        _ => None,
    }
}

fn parse_table_arg(
    arg: &[&TokenWithSpan],
    usage: &str,
    session: bool,
) -> Result<(String, Vec<String>), Diag> {
    let bad =
        |t: &TokenWithSpan, what: &str| Diag::at(t.span.start, format!("{what}; use {usage}"));
    let (kw, name, rest) = match arg {
        [kw, name, rest @ ..] if word_is(&kw.token, "TABLE") => (kw, name, rest),
        _ => return Err(bad(arg[0], "the first argument must be `TABLE <feed>`")),
    };
    let _ = kw;
    let table = ident(&name.token).ok_or_else(|| bad(name, "expected a table name"))?;
    let mut partition_by = Vec::new();
    match rest {
        [] => {}
        [p, b, cols @ ..] if word_is(&p.token, "PARTITION") && word_is(&b.token, "BY") => {
            if !session {
                return Err(bad(p, "only SESSION windows take PARTITION BY"));
            }
            let cols = match cols {
                [lp, inner @ .., rp] if lp.token == Token::LParen && rp.token == Token::RParen => {
                    inner
                }
                other => other,
            };
            for (i, c) in cols.iter().enumerate() {
                match (&c.token, i % 2) {
                    (Token::Comma, 1) => {}
                    (t, 0) => {
                        partition_by.push(ident(t).ok_or_else(|| bad(c, "expected a column name"))?)
                    }
                    _ => return Err(bad(c, "expected `,` between PARTITION BY columns")),
                }
            }
            if partition_by.is_empty() {
                return Err(bad(b, "PARTITION BY needs at least one column"));
            }
        }
        [t, ..] => return Err(bad(t, "unexpected text after the table name")),
    }
    Ok((table, partition_by))
}

fn parse_descriptor(arg: &[&TokenWithSpan], usage: &str) -> Result<String, Diag> {
    match arg {
        [kw, lp, col, rp]
            if word_is(&kw.token, "DESCRIPTOR")
                && lp.token == Token::LParen
                && rp.token == Token::RParen =>
        {
            ident(&col.token).ok_or_else(|| {
                Diag::at(
                    col.span.start,
                    format!("expected a time column name; use {usage}"),
                )
            })
        }
        _ => Err(Diag::at(
            arg[0].span.start,
            format!("the time attribute must be `DESCRIPTOR(<column>)`; use {usage}"),
        )),
    }
}

/// Parses `INTERVAL '5' MINUTE[S]` or `INTERVAL '5 minutes'` into milliseconds.
pub(crate) fn parse_interval(arg: &[&TokenWithSpan]) -> Result<i64, Diag> {
    let at = arg[0].span.start;
    let bad = |why: &str| {
        Diag::at(
            at,
            format!(
                "{why}: write a window size like INTERVAL '5' MINUTES or INTERVAL '30' SECONDS"
            ),
        )
    };
    let (amount, unit) = match arg {
        [kw, lit, unit] if word_is(&kw.token, "INTERVAL") => {
            let Token::SingleQuotedString(s) = &lit.token else {
                return Err(bad("expected a quoted amount"));
            };
            let Token::Word(u) = &unit.token else {
                return Err(bad("expected a time unit"));
            };
            (s.trim().to_string(), u.value.clone())
        }
        [kw, lit] if word_is(&kw.token, "INTERVAL") => {
            let Token::SingleQuotedString(s) = &lit.token else {
                return Err(bad("expected a quoted amount"));
            };
            let mut parts = s.split_whitespace();
            match (parts.next(), parts.next(), parts.next()) {
                (Some(a), Some(u), None) => (a.to_string(), u.to_string()),
                _ => return Err(bad("expected an amount and a unit")),
            }
        }
        _ => return Err(bad("expected an INTERVAL")),
    };
    let unit_ms: i64 = match unit.to_ascii_lowercase().trim_end_matches('s') {
        "millisecond" => 1,
        "second" => 1_000,
        "minute" => 60_000,
        "hour" => 3_600_000,
        "day" => 86_400_000,
        other => return Err(bad(&format!("unknown time unit `{other}`"))),
    };
    let n: i64 = amount
        .parse()
        .map_err(|_| bad(&format!("`{amount}` is not a whole number")))?;
    match n.checked_mul(unit_ms) {
        Some(ms) if ms > 0 => Ok(ms),
        _ => Err(bad("a window size must be positive")),
    }
}

/// True when the tokens at `i` start a table alias (`AS x` or a plain identifier).
fn has_alias(tokens: &[TokenWithSpan], i: usize) -> bool {
    match tokens.get(skip(tokens, i)).map(|t| &t.token) {
        Some(Token::Word(w)) => w.keyword == Keyword::AS || w.keyword == Keyword::NoKeyword,
        _ => false,
    }
}

/// Pushes the tokens that replace a window call, each carrying the call's span.
fn emit_replacement(
    tvf: &WindowTvf,
    mode: Mode,
    span: Span,
    alias: bool,
    out: &mut Vec<TokenWithSpan>,
) {
    let table = quote(&tvf.table);
    let mut text = match mode {
        Mode::Streaming => tvf.slot.clone(),
        Mode::Batch => batch_sql(tvf),
    };
    if alias {
        text.push_str(" AS ");
        text.push_str(&table);
    }
    let generated = Tokenizer::new(&GenericDialect {}, &text)
        .tokenize()
        .expect("generated SQL always tokenizes");
    out.push(TokenWithSpan::new(
        Token::Whitespace(datafusion::sql::sqlparser::tokenizer::Whitespace::Space),
        span,
    ));
    out.extend(
        generated
            .into_iter()
            .map(|token| TokenWithSpan::new(token, span)),
    );
    out.push(TokenWithSpan::new(
        Token::Whitespace(datafusion::sql::sqlparser::tokenizer::Whitespace::Space),
        span,
    ));
}

/// The window call as a plain DataFusion subquery over the whole table: the oracle's
/// independent definition of each window kind (`date_bin`, `generate_series`, `LAG`).
fn batch_sql(tvf: &WindowTvf) -> String {
    let table = quote(&tvf.table);
    let ts = quote(&tvf.time_column);
    let ms = |n: i64| format!("INTERVAL '{n} milliseconds'");
    let bin = |n: i64| format!("date_bin({}, {ts}, to_timestamp_millis(0))", ms(n));
    match tvf.kind {
        WindowKind::Tumble { size_ms } => format!(
            "(SELECT *, {b} AS {WINDOW_START}, {b} + {size} AS {WINDOW_END}, \
               {b} + {last} AS {WINDOW_TIME} FROM {table})",
            b = bin(size_ms),
            size = ms(size_ms),
            last = ms(size_ms - 1),
        ),
        WindowKind::Hop { slide_ms, size_ms } => format!(
            "(SELECT * EXCLUDE (\"__cb_ws\"), \"__cb_ws\" AS {WINDOW_START}, \
               \"__cb_ws\" + {size} AS {WINDOW_END}, \
               \"__cb_ws\" + {last} AS {WINDOW_TIME} \
             FROM (SELECT *, unnest(generate_series({b} - {back}, {b}, {slide})) AS \"__cb_ws\" FROM {table}))",
            b = bin(slide_ms),
            back = ms(size_ms - slide_ms),
            slide = ms(slide_ms),
            size = ms(size_ms),
            last = ms(size_ms - 1),
        ),
        WindowKind::Cumulate {
            step_ms,
            max_size_ms,
        } => format!(
            "(SELECT * EXCLUDE (\"__cb_we\"), {start} AS {WINDOW_START}, \
               \"__cb_we\" AS {WINDOW_END}, \
               \"__cb_we\" - {one} AS {WINDOW_TIME} \
             FROM (SELECT *, unnest(generate_series({b} + {step}, {start} + {max}, {step})) AS \"__cb_we\" FROM {table}))",
            b = bin(step_ms),
            start = bin(max_size_ms),
            step = ms(step_ms),
            max = ms(max_size_ms),
            one = ms(1),
        ),
        WindowKind::Session { gap_ms } => {
            let keys: Vec<String> = tvf.partition_by.iter().map(|k| quote(k)).collect();
            let by = |extra: &str| {
                let mut all = keys.clone();
                if !extra.is_empty() {
                    all.push(extra.to_string());
                }
                if all.is_empty() {
                    String::new()
                } else {
                    format!("PARTITION BY {}", all.join(", "))
                }
            };
            let session = format!("OVER ({})", by("\"__cb_sid\""));
            format!(
                "(SELECT * EXCLUDE (\"__cb_prev\", \"__cb_sid\"), MIN({ts}) {session} AS {WINDOW_START}, \
                   MAX({ts}) {session} + {gap} AS {WINDOW_END}, MAX({ts}) {session} + {last} AS {WINDOW_TIME} \
                 FROM (SELECT *, SUM(CASE WHEN \"__cb_prev\" IS NULL \
                         OR CAST({ts} AS BIGINT) - CAST(\"__cb_prev\" AS BIGINT) >= {gap_ms} THEN 1 ELSE 0 END) \
                         OVER ({order} ROWS UNBOUNDED PRECEDING) AS \"__cb_sid\" \
                       FROM (SELECT *, LAG({ts}) OVER ({order}) AS \"__cb_prev\" FROM {table})))",
                order = format!("{} ORDER BY {ts}", by("")),
                gap = ms(gap_ms),
                last = ms(gap_ms - 1),
            )
        }
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: &Rewritten) -> String {
        r.tokens.iter().map(|t| t.token.to_string()).collect()
    }

    #[test]
    fn tumble_call_becomes_slot_with_alias() {
        let sql = "SELECT COUNT(*)\nFROM TABLE(TUMBLE(TABLE traffic, DESCRIPTOR(ts), INTERVAL '5' MINUTES))\nGROUP BY window_start, window_end";
        let r = rewrite(sql, Mode::Streaming).expect("valid");
        assert_eq!(
            r.windows,
            vec![WindowTvf {
                kind: WindowKind::Tumble { size_ms: 300_000 },
                table: "traffic".into(),
                time_column: "ts".into(),
                partition_by: Vec::new(),
                slot: "__cb_w0".into(),
                line: 2,
            }]
        );
        assert!(
            text(&r).contains("FROM  __cb_w0 AS \"traffic\" "),
            "{}",
            text(&r)
        );
    }

    #[test]
    fn existing_alias_is_kept() {
        let sql =
            "SELECT 1 FROM TABLE(TUMBLE(TABLE police, DESCRIPTOR(ts), INTERVAL '1 hour')) AS p";
        let r = rewrite(sql, Mode::Streaming).expect("valid");
        assert!(text(&r).ends_with("__cb_w0  AS p"), "{}", text(&r));
        assert_eq!(r.windows[0].kind.size_ms(), 3_600_000);
    }

    #[test]
    fn errors_point_at_the_call() {
        let sql = "SELECT 1\n\nFROM TABLE(TUMBLE(TABLE traffic, ts, INTERVAL '5' MINUTES))";
        let d = rewrite(sql, Mode::Streaming).expect_err("descriptor missing");
        assert_eq!(d[0].line, 3);
        assert!(d[0].message.contains("DESCRIPTOR"), "{}", d[0].message);

        let sql =
            "SELECT 1 FROM TABLE(TUMBLE(TABLE traffic, DESCRIPTOR(ts), INTERVAL '5' FORTNIGHTS))";
        let d = rewrite(sql, Mode::Streaming).expect_err("bad unit");
        assert!(d[0].message.contains("fortnight"), "{}", d[0].message);

        let sql = "SELECT 1 FROM TABLE(TUMBLE(TABLE traffic, DESCRIPTOR(ts)))";
        let d = rewrite(sql, Mode::Streaming).expect_err("missing size");
        assert!(d[0].message.contains("3 arguments"), "{}", d[0].message);
    }

    #[test]
    fn tumble_assignment_is_epoch_aligned() {
        let k = WindowKind::Tumble { size_ms: 60_000 };
        assert_eq!(k.assign(0), (0, 60_000));
        assert_eq!(k.assign(59_999), (0, 60_000));
        assert_eq!(k.assign(60_000), (60_000, 120_000));
        assert_eq!(k.assign(-1), (-60_000, 0));
        assert_eq!(
            k.assign(i64::MAX).1,
            i64::MAX,
            "no overflow at the end of time"
        );
        assert_eq!(k.to_string(), "TUMBLE 1min");
    }
}
