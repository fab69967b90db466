//! Static checks that keep one analyst's rule from hurting the engine, run while planning (so
//! `rules check`, `replay`, `run` and the live reload all apply them):
//!
//! - **Nesting depth** ([`MAX_NESTING`]): sqlparser limits the nesting of parentheses, but a
//!   chain of `AND`/`OR`/`+` terms parses into a tree as deep as the chain is long, and
//!   DataFusion plans and evaluates expressions recursively: an `AND` chain of a few thousand
//!   terms overflowed the stack (an abort no handler can catch). Deeper syntax trees are
//!   refused before DataFusion sees them. Parsing, this check and dropping a refused tree
//!   (recursive too) run on a thread with a large stack ([`PARSE_STACK_BYTES`]).
//! - **Recursion**: `WITH RECURSIVE` over an endless feed never finishes.
//! - **Joins on a key** ([`unkeyed_join`]): a join that matches rows on the window alone
//!   (a self `CROSS JOIN` in a 10-minute window) produces every pair of rows, growing with the
//!   square of the input.
//!
//! Window sizes are checked where windows are parsed ([`crate::window::MAX_WINDOW_MS`],
//! [`crate::window::MAX_WINDOWS_PER_ROW`]).

use std::ops::ControlFlow;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::{JoinType, LogicalPlan};
use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, Query, Statement, Visit, Visitor};
use datafusion::sql::sqlparser::tokenizer::Location;

use crate::window::{Diag, WINDOW_END, WINDOW_START, WINDOW_TIME};

/// The deepest a rule's syntax tree may nest (expressions inside expressions, queries inside
/// queries). A left-deep chain of n `AND` terms nests n levels. Planning in a debug build needs
/// a few kilobytes of stack per level and the live reload plans on a 2 MiB worker stack
/// (overflowing at about 800 levels), so 200 leaves a margin of four while no hand-written
/// condition comes near it (a list of values belongs in `IN (...)`, which does not nest).
pub const MAX_NESTING: usize = 200;

/// Stack of the thread that parses a rule and checks its syntax tree: the parser builds a
/// chain of terms without recursion, but dropping it recurses once per term, and a rule file
/// may hold up to [`crate::rule::MAX_RULE_BYTES`] of them. Only the pages used are committed.
pub const PARSE_STACK_BYTES: usize = 256 << 20;

/// Problems of the parsed rule `stmt` that must stop it before DataFusion plans it: a syntax
/// tree nested deeper than [`MAX_NESTING`] and `WITH RECURSIVE`. `fallback` positions a
/// problem whose node has none.
pub(crate) fn syntax(stmt: &Statement, fallback: Location) -> Vec<Diag> {
    let mut v = Depth {
        depth: 0,
        fallback,
        found: Vec::new(),
    };
    let _ = Visit::visit(stmt, &mut v);
    v.found
}

struct Depth {
    depth: usize,
    fallback: Location,
    found: Vec<Diag>,
}

impl Depth {
    fn enter(&mut self, at: impl FnOnce() -> Option<Location>) -> ControlFlow<()> {
        self.depth += 1;
        if self.depth <= MAX_NESTING {
            return ControlFlow::Continue(());
        }
        self.found.push(Diag::at(
            at().unwrap_or(self.fallback),
            format!(
                "the rule nests more than {MAX_NESTING} levels deep here (a chain of n AND/OR \
                 terms nests n levels): write a list of values as `x IN (a, b, ...)`, or split \
                 the condition into rules or a view"
            ),
        ));
        ControlFlow::Break(())
    }
}

impl Visitor for Depth {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with
            && with.recursive
        {
            self.found.push(Diag::at(
                with.with_token.0.span.start,
                "WITH RECURSIVE is not supported: over an endless feed a recursive query never \
                 finishes; use a plain WITH, or a view that other rules read",
            ));
        }
        self.enter(|| query.with.as_ref().map(|w| w.with_token.0.span.start))
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &SqlExpr) -> ControlFlow<()> {
        self.enter(|| position(expr))
    }

    fn post_visit_expr(&mut self, _expr: &SqlExpr) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

/// Where `expr` is, found without recursion: its rightmost leaf (in a left-deep chain, the
/// term at this level).
fn position(mut expr: &SqlExpr) -> Option<Location> {
    loop {
        expr = match expr {
            SqlExpr::BinaryOp { right, .. } => right,
            SqlExpr::UnaryOp { expr, .. } | SqlExpr::Nested(expr) => expr,
            SqlExpr::Identifier(i) => return Some(i.span.start),
            SqlExpr::CompoundIdentifier(parts) => return parts.first().map(|i| i.span.start),
            SqlExpr::Value(v) => return Some(v.span.start),
            _ => return None,
        };
    }
}

/// The first join of `plan` (optimized, so that `WHERE a.x = b.x` has become a join key) that
/// matches rows on nothing but window columns or constants, with its kind. Semi and anti joins
/// (`EXISTS`, `IN`, `NOT EXISTS`) pass: they emit at most one row per row of one side.
pub(crate) fn unkeyed_join(plan: &LogicalPlan) -> Option<JoinType> {
    let mut found = None;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Join(join) = node {
            let bounded = matches!(
                join.join_type,
                JoinType::LeftSemi
                    | JoinType::RightSemi
                    | JoinType::LeftAnti
                    | JoinType::RightAnti
                    | JoinType::LeftMark
                    | JoinType::RightMark
            );
            let keyed = join.on.iter().any(|(l, r)| is_key(l) && is_key(r));
            if !bounded && !keyed {
                found = Some(join.join_type);
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// Whether `e` reads a column other than the window columns.
fn is_key(e: &datafusion::logical_expr::Expr) -> bool {
    e.column_refs()
        .iter()
        .any(|c| ![WINDOW_START, WINDOW_END, WINDOW_TIME].contains(&c.name.as_str()))
}
