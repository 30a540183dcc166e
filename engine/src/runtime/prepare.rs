//! Building every stage of a compiled pipeline, handing each what compile decided about it
//! ([`crate::compile::Facts`]) through its `BuildContext`.

use std::sync::Arc;

use flux_stages::channel::Capacity;
use flux_stages::registry::{BuildContext, BuiltStage, Role};
use flux_stages::stage::{Emit, Pass, RecordTransform, StageMetrics};
use petgraph::graph::DiGraph;
use tokio_util::sync::CancellationToken;

use super::handle::RunOptions;
use crate::compile::{Edge, Pipeline};

/// A stage ready to run.
pub struct Prepared {
    /// Its id.
    pub id: String,
    /// Its role.
    pub role: Role,
    /// Its `type`, for summaries.
    pub kind: String,
    /// Capacity of each channel into it.
    pub buffer: Capacity,
    /// True when every record into it leaves as one record or one dead letter (see
    /// [`StageConfig::one_to_one`](flux_stages::registry::StageConfig::one_to_one)).
    pub one_to_one: bool,
    /// Its counters, which the stage itself holds too (see [`BuildContext::metrics`]).
    pub metrics: Arc<StageMetrics>,
    /// The stage itself.
    pub stage: BuiltStage,
}

/// Builds every stage of a compiled pipeline. Errors name the stage.
pub fn prepare(p: &Pipeline, run_id: &str) -> Result<DiGraph<Prepared, Edge>, String> {
    prepare_with(
        p,
        &RunOptions {
            run_id: run_id.to_owned(),
            ..RunOptions::default()
        },
        &CancellationToken::new(),
    )
}

/// [`prepare`] with the run's options (a dry run, see [`BuildContext::dry_run`], and its target
/// shards given instead of listed) and its stop signal, which stages that are slow to finish
/// watch ([`BuildContext::stop`]).
pub fn prepare_with(
    p: &Pipeline,
    options: &RunOptions,
    stop: &CancellationToken,
) -> Result<DiGraph<Prepared, Edge>, String> {
    let mut err = None;
    let graph = p.graph.map(
        |_, node| {
            let ctx = BuildContext {
                pipeline: p.name.clone(),
                run_id: options.run_id.clone(),
                stage: node.id.clone(),
                dry_run: options.dry_run,
                offline_shards: options
                    .dry_run
                    .then(|| options.offline_shards.clone())
                    .flatten(),
                metrics: Arc::new(StageMetrics::default()),
                stop: stop.clone(),
                pushdown: node.facts.pushdown.as_ref().map(|(pre, _)| pre.clone()),
                upstream_streams: node.facts.upstream_streams.clone(),
            };
            if let Some((_, filter)) = &node.facts.pushdown {
                tracing::debug!(source = %node.id, filter = %filter, "filter pushed down into the source");
            }
            let stage = node.config.build(&ctx).unwrap_or_else(|e| {
                err.get_or_insert(format!("{} `{}`: {e}", node.role.noun(), node.id));
                // A placeholder that is never run: the error is returned below.
                BuiltStage::PerRecord(Box::new(Noop))
            });
            Prepared {
                id: node.id.clone(),
                role: node.role,
                kind: node.kind.clone(),
                buffer: node.buffer,
                one_to_one: node.config.one_to_one(),
                metrics: ctx.metrics.clone(),
                stage,
            }
        },
        |_, e| *e,
    );
    match err {
        Some(e) => Err(e),
        None => Ok(graph),
    }
}

struct Noop;
impl RecordTransform for Noop {
    fn process(
        &mut self,
        _: &Arc<flux_stages::record::Batch>,
        _: &mut Emit,
    ) -> anyhow::Result<Pass> {
        Ok(Pass::Unchanged)
    }
}
