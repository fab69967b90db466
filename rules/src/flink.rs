//! Flink SQL semantics that DataFusion does not share, applied to a rule's logical plan so that
//! the same query text gives the same rows in both engines.
//!
//! - `AVG` of an integer column is an integer in Flink (the sum divided by the count, truncated
//!   toward zero); DataFusion returns a float. A projection above the aggregate casts it back.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema};
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan, Projection, cast};

/// `plan` with Flink's semantics where DataFusion's differ.
pub(crate) fn with_flink_semantics(plan: LogicalPlan) -> datafusion::error::Result<LogicalPlan> {
    plan.transform_up(|node| {
        let LogicalPlan::Aggregate(agg) = &node else {
            return Ok(Transformed::no(node));
        };
        let integer_avgs: Vec<usize> = agg
            .aggr_expr
            .iter()
            .enumerate()
            .filter(|(_, e)| is_integer_avg(e, agg.input.schema()))
            .map(|(i, _)| i)
            .collect();
        if integer_avgs.is_empty() {
            return Ok(Transformed::no(node));
        }
        let schema = Arc::clone(node.schema());
        let first_aggregate = schema.fields().len() - agg.aggr_expr.len();
        let exprs: Vec<Expr> = (0..schema.fields().len())
            .map(|i| {
                let (qualifier, field) = schema.qualified_field(i);
                let column = Expr::Column(Column::from((qualifier, field)));
                if i >= first_aggregate && integer_avgs.contains(&(i - first_aggregate)) {
                    cast(column, DataType::Int64).alias_qualified(qualifier.cloned(), field.name())
                } else {
                    column
                }
            })
            .collect();
        let projection = Projection::try_new(exprs, Arc::new(node))?;
        Ok(Transformed::yes(LogicalPlan::Projection(projection)))
    })
    .map(|t| t.data)
}

fn is_integer_avg(e: &Expr, input: &DFSchema) -> bool {
    let e = match e {
        Expr::Alias(a) => a.expr.as_ref(),
        other => other,
    };
    match e {
        Expr::AggregateFunction(f) => {
            f.func.name().eq_ignore_ascii_case("avg")
                && matches!(f.params.args.as_slice(), [arg]
                    if arg.get_type(input).is_ok_and(|t| t.is_integer()))
        }
        _ => false,
    }
}
