//! Building every stage of a compiled pipeline, handing each what compile decided about it
//! ([`crate::compile::Facts`]) through its `BuildContext`.

use std::collections::HashMap;
use std::sync::Arc;

use flux_stages::channel::Capacity;
use flux_stages::registry::{BuildContext, BuiltStage, Role};
use flux_stages::stage::{Emit, Pass, RecordTransform, Sink, StageMetrics};
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
    prepare_provided(p, options, stop, ProvidedSinks::default())
}

/// Sinks an embedding program provides itself, by stage id: each replaces the sink of that id
/// that the pipeline file configures (which is then not built), and runs as any sink does
/// (counters, stop signal, summary). A server collects search results this way, without a
/// second runtime or a sink kind that pipeline files could name.
#[derive(Default)]
pub struct ProvidedSinks(HashMap<String, Box<dyn Sink>>);

impl ProvidedSinks {
    /// Provides the sink for the stage `id`.
    pub fn insert(&mut self, id: impl Into<String>, sink: Box<dyn Sink>) {
        self.0.insert(id.into(), sink);
    }

    /// True when no sink is provided.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// [`prepare_with`], with some sinks provided by the caller (see [`ProvidedSinks`]). A provided
/// sink whose id names no sink of the pipeline is an error.
pub fn prepare_provided(
    p: &Pipeline,
    options: &RunOptions,
    stop: &CancellationToken,
    mut provided: ProvidedSinks,
) -> Result<DiGraph<Prepared, Edge>, String> {
    let mut err = None;
    for id in provided.0.keys() {
        if !p
            .graph
            .node_weights()
            .any(|n| n.role == Role::Sink && &n.id == id)
        {
            return Err(format!("no sink `{id}` to provide"));
        }
    }
    let graph = p.graph.map(
        |_, node| {
            if node.role == Role::Sink
                && let Some(sink) = provided.0.remove(&node.id)
            {
                return Prepared {
                    id: node.id.clone(),
                    role: node.role,
                    kind: node.kind.clone(),
                    buffer: node.buffer,
                    one_to_one: false,
                    metrics: Arc::new(StageMetrics::default()),
                    stage: BuiltStage::Sink(sink),
                };
            }
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
                probe: node.facts.probe.clone(),
                upstream_streams: node.facts.upstream_streams.clone(),
                shared_streams: node.facts.shared_streams.clone(),
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
