//! Chained rules: views read by other rules, planned in dependency order.
//!
//! A rule with `-- emit: view` does not alert; its rows become a table other rules read by
//! the view's name (its file name). [`compile_all`] finds which rules read which views, plans
//! views before their readers (registering each view's schema), and rejects cycles, naming
//! every rule on the cycle.
//!
//! ```text
//!  police/fight_signals (view) ──┐
//!  traffic/crash_signals (view) ─┼──▶ city/cell_risk (alert)
//!  emergency/call_signals (view) ┘
//! ```

use std::collections::{BTreeMap, BTreeSet};

use futures::FutureExt;

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::compile::{Catalog, CompiledRule, compile};
use crate::error::{Error, Problem, Result};
use crate::rule::{Emit, RuleSource, parse_header};

/// Names of the tables `text` reads among `names` (a word equal to a name, not a column of a
/// qualified name and not an alias).
pub(crate) fn reads(text: &str, names: &BTreeSet<String>) -> BTreeSet<String> {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, text).tokenize() else {
        return BTreeSet::new();
    };
    let code: Vec<&Token> = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let mut out = BTreeSet::new();
    for (i, t) in code.iter().enumerate() {
        let Token::Word(w) = t else { continue };
        // Names are case-sensitive, quoted or not (as in Flink).
        let name = w.value.clone();
        if !names.contains(&name) {
            continue;
        }
        let before = i.checked_sub(1).map(|j| code[j]);
        let after = code.get(i + 1);
        let qualified_column = matches!(before, Some(Token::Period));
        let alias = matches!(before, Some(Token::Word(b)) if b.keyword == Keyword::AS);
        let function = matches!(after, Some(Token::LParen));
        if !qualified_column && !alias && !function {
            out.insert(name);
        }
    }
    out
}

/// Plans every rule, views before the rules that read them, reporting the problems of all
/// files at once. The result is in dependency order.
///
/// # Errors
/// [`Error::Invalid`] listing every problem, cycles and view name clashes included.
pub async fn compile_all(sources: &[RuleSource], catalog: &Catalog) -> Result<Vec<CompiledRule>> {
    let (rules, problems) = compile_each(sources, catalog).await;
    if problems.is_empty() {
        Ok(rules)
    } else {
        Err(Error::Invalid(problems))
    }
}

/// Plans every rule it can, in dependency order, and lists the problems of the others (a rule
/// reading a broken view fails too). With a cycle, no rule is planned.
pub async fn compile_each(
    sources: &[RuleSource],
    catalog: &Catalog,
) -> (Vec<CompiledRule>, Vec<Problem>) {
    let mut problems = Vec::new();
    let at_first_line = |src: &RuleSource, message: String| Problem {
        file: src.path.clone(),
        line: 1,
        column: 1,
        message,
    };
    // Views by name.
    let mut views: BTreeMap<String, usize> = BTreeMap::new();
    for (i, src) in sources.iter().enumerate() {
        let Ok(meta) = parse_header(src) else {
            continue;
        };
        if meta.emit != Emit::View {
            continue;
        }
        let name = meta.view_name().to_string();
        if catalog.schema(&name).is_some() {
            problems.push(at_first_line(
                src,
                format!("view `{name}` has the name of a feed: rename the file"),
            ));
        } else if let Some(other) = views.insert(name.clone(), i) {
            problems.push(at_first_line(
                src,
                format!(
                    "view `{name}` is also defined by {}: view names (file names) must be unique",
                    sources[other].path.display()
                ),
            ));
        }
    }
    let names: BTreeSet<String> = views.keys().cloned().collect();
    let deps: Vec<Vec<usize>> = sources
        .iter()
        .map(|s| reads(&s.text, &names).iter().map(|n| views[n]).collect())
        .collect();
    let order = match topological(&deps) {
        Ok(order) => order,
        Err(cycle) => {
            let path: Vec<&str> = cycle.iter().map(|i| sources[*i].id.as_str()).collect();
            for i in &cycle[..cycle.len() - 1] {
                problems.push(at_first_line(
                    &sources[*i],
                    format!("rules read each other in a cycle: {}", path.join(" → ")),
                ));
            }
            return (Vec::new(), problems);
        }
    };
    let mut catalog = catalog.clone();
    let mut compiled: Vec<Option<CompiledRule>> = sources.iter().map(|_| None).collect();
    for &i in &order {
        // A panic while planning (a bug, or a DataFusion one) fails this rule alone: the
        // others still load, and a live reload keeps watching.
        let planned = std::panic::AssertUnwindSafe(compile(&sources[i], &catalog))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(vec![at_first_line(
                    &sources[i],
                    format!("internal error while planning this rule (please report it): {what}"),
                )])
            });
        match planned {
            Ok(rule) => {
                if rule.meta.emit == Emit::View
                    && let Some(time) = rule.view_time_column()
                {
                    catalog = catalog.with_view(
                        rule.meta.view_name(),
                        rule.view_schema(),
                        time,
                        &rule.view_key_columns(),
                    );
                }
                compiled[i] = Some(rule);
            }
            Err(p) => problems.extend(p),
        }
    }
    let rules = order.iter().filter_map(|i| compiled[*i].take()).collect();
    (rules, problems)
}

/// Dependency order of `deps` (rule → rules it reads), or a cycle as a path that starts and
/// ends at the same rule.
fn topological(deps: &[Vec<usize>]) -> std::result::Result<Vec<usize>, Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        n: usize,
        deps: &[Vec<usize>],
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> std::result::Result<(), Vec<usize>> {
        match marks[n] {
            Mark::Done => return Ok(()),
            Mark::Active => {
                let from = stack.iter().position(|s| *s == n).unwrap_or(0);
                let mut cycle = stack[from..].to_vec();
                cycle.push(n);
                return Err(cycle);
            }
            Mark::New => {}
        }
        marks[n] = Mark::Active;
        stack.push(n);
        for d in &deps[n] {
            visit(*d, deps, marks, stack, order)?;
        }
        stack.pop();
        marks[n] = Mark::Done;
        order.push(n);
        Ok(())
    }
    let mut marks = vec![Mark::New; deps.len()];
    let mut order = Vec::with_capacity(deps.len());
    for n in 0..deps.len() {
        visit(n, deps, &mut marks, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_references_are_found_not_columns_or_aliases() {
        let names: BTreeSet<String> = ["signals".to_string(), "risk".to_string()].into();
        let sql =
            "SELECT s.cell, x.risk, COUNT(*) AS risk FROM signals s JOIN other x ON s.a = x.a";
        assert_eq!(reads(sql, &names), ["signals".to_string()].into());
        let sql =
            "SELECT * FROM TABLE(TUMBLE(TABLE risk, DESCRIPTOR(window_time), INTERVAL '1' HOUR))";
        assert_eq!(reads(sql, &names), ["risk".to_string()].into());
    }

    #[test]
    fn cycles_are_reported_as_paths() {
        assert_eq!(topological(&[vec![1], vec![]]), Ok(vec![1, 0]));
        let cycle = topological(&[vec![1], vec![2], vec![0]]).expect_err("a cycle");
        assert_eq!(cycle, vec![0, 1, 2, 0]);
        assert_eq!(topological(&[vec![0]]), Err(vec![0, 0]));
    }
}
