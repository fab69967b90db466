//! The batch oracle: a rule evaluated as one query over complete tables.
//!
//! On input whose disorder stays within the watermark bound, a rule's streaming results must
//! equal this evaluation row for row. It shares no window code with the streaming path: the
//! window columns come from DataFusion's `date_bin` over the whole table.

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::datasource::MemTable;

use crate::compile::{Catalog, new_context, parse_query};
use crate::error::{Error, Result};
use crate::rule::RuleSource;
use crate::window::{self, Mode};

/// Runs `src` once over `tables` (name and every batch of that table, with the catalog schema).
///
/// # Errors
/// When the rule is invalid or fails to run.
pub async fn evaluate(
    src: &RuleSource,
    catalog: &Catalog,
    tables: &[(&str, Vec<RecordBatch>)],
) -> Result<Vec<RecordBatch>> {
    let rewritten = window::rewrite(&src.text, Mode::Batch).map_err(|d| {
        Error::Invalid(
            d.into_iter()
                .map(|d| crate::Problem {
                    file: src.path.clone(),
                    line: d.line,
                    column: d.column,
                    message: d.message,
                })
                .collect(),
        )
    })?;
    let ctx = new_context(None);
    for name in catalog.names() {
        let schema = Arc::clone(catalog.schema(name).expect("listed name"));
        let batches = tables
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| b.clone())
            .unwrap_or_default();
        let table = MemTable::try_new(schema, vec![batches]).map_err(|source| Error::Execute {
            rule: src.id.clone(),
            source,
        })?;
        ctx.register_table(name, Arc::new(table))
            .expect("fresh context accepts tables");
    }
    let stmt = parse_query(src, rewritten).map_err(Error::Invalid)?;
    let exec = |source| Error::Execute {
        rule: src.id.clone(),
        source,
    };
    let plan = ctx
        .state()
        .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(
            stmt,
        )))
        .await
        .and_then(crate::flink::with_flink_semantics)
        .map_err(exec)?;
    ctx.execute_logical_plan(plan)
        .await
        .map_err(exec)?
        .collect()
        .await
        .map_err(exec)
}
