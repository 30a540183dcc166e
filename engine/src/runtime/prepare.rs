//! Building every stage of a compiled pipeline, handing each what compile decided about it
//! ([`crate::compile::Facts`]) through its `BuildContext`.

use std::collections::HashMap;
use std::sync::Arc;

use flux_stages::channel::Capacity;
use flux_stages::registry::{BuildContext, BuiltStage, Role};
use flux_stages::stage::{Emit, Pass, Sink, Transform};
use petgraph::graph::DiGraph;

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
    /// The stage itself.
    pub stage: BuiltStage,
}

/// Builds every stage of a compiled pipeline. Errors name the stage.
pub fn prepare(p: &Pipeline, run_id: &str) -> Result<DiGraph<Prepared, Edge>, String> {
    prepare_with(p, run_id, false)
}

/// [`prepare`], for a dry run when `dry_run` (see [`BuildContext::dry_run`]).
pub fn prepare_with(
    p: &Pipeline,
    run_id: &str,
    dry_run: bool,
) -> Result<DiGraph<Prepared, Edge>, String> {
    prepare_provided(p, run_id, dry_run, ProvidedSinks::default())
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
    run_id: &str,
    dry_run: bool,
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
                    stage: BuiltStage::Sink(sink),
                };
            }
            let ctx = BuildContext {
                pipeline: p.name.clone(),
                run_id: run_id.to_owned(),
                stage: node.id.clone(),
                dry_run,
                pushdown: node.facts.pushdown.as_ref().map(|(pre, _)| pre.clone()),
                upstream_streams: node.facts.upstream_streams.clone(),
            };
            if let Some((_, filter)) = &node.facts.pushdown {
                tracing::debug!(source = %node.id, filter = %filter, "filter pushed down into the source");
            }
            let stage = node.config.build(&ctx).unwrap_or_else(|e| {
                err.get_or_insert(format!("{} `{}`: {e}", node.role.noun(), node.id));
                // A placeholder that is never run: the error is returned below.
                BuiltStage::Transform(Box::new(Noop))
            });
            Prepared {
                id: node.id.clone(),
                role: node.role,
                kind: node.kind.clone(),
                buffer: node.buffer,
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
impl Transform for Noop {
    fn process(
        &mut self,
        _: &Arc<flux_stages::record::Batch>,
        _: &mut Emit,
    ) -> anyhow::Result<Pass> {
        Ok(Pass::Unchanged)
    }
}
