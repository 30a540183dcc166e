//! Running a compiled pipeline: one tokio task per stage, one bounded channel per edge.
//!
//! - A full channel blocks its sender, so the slowest stage paces the sources; memory is bounded
//!   by the sum of channel capacities plus what stages hold.
//! - Fan-out sends each batch (shared, not copied) to every downstream edge in turn; fan-in reads
//!   all inputs fairly and aligns checkpoint barriers ([`inputs`]).
//! - A source's end flows downstream as `End`; the run ends when every sink has finished.
//! - The first stage that fails stops the run; its error names the stage.
//! - The stop token (Ctrl-C) makes sources stop reading; what was read drains through the
//!   pipeline and is committed, then the run reports that it was interrupted.

pub mod inputs;
pub mod progress;

use std::sync::Arc;
use std::time::Instant;

use flux_stages::channel::{Capacity, Receiver, Sender, channel};
use flux_stages::record::batch_weight;
use flux_stages::registry::{BuildContext, BuiltStage, Role};
use flux_stages::stage::{
    Drain, Emit, Output, Pass, Sink, Source, SourceContext, StageMetrics, Transform,
};
use petgraph::graph::DiGraph;
use petgraph::visit::EdgeRef;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::compile::{Edge, Pipeline};
use crate::config::Port;
use inputs::{Event, Inputs};

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
    let mut err = None;
    let graph = p.graph.map(
        |_, node| {
            let ctx = BuildContext {
                pipeline: p.name.clone(),
                run_id: run_id.to_owned(),
                stage: node.id.clone(),
                dry_run,
            };
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
    if let Some(e) = err {
        return Err(e);
    }
    let mut graph = graph;
    push_down_filters(p, &mut graph);
    announce_streams(p, &mut graph);
    Ok(graph)
}

/// Tells each sink which streams its upstream sources read (see `Sink::expect_streams`).
fn announce_streams(p: &Pipeline, graph: &mut DiGraph<Prepared, Edge>) {
    for n in p.graph.node_indices() {
        if p.graph[n].role != Role::Sink {
            continue;
        }
        let mut streams = std::collections::BTreeSet::new();
        let mut seen = std::collections::HashSet::new();
        let mut todo = vec![n];
        while let Some(m) = todo.pop() {
            for e in p.graph.edges_directed(m, petgraph::Direction::Incoming) {
                // Dead-letter ports carry rejects, not the stream's records.
                if e.weight().port == Port::Main && seen.insert(e.source()) {
                    todo.push(e.source());
                }
            }
            if let Some(s) = p.graph[m].config.source_stream() {
                streams.insert(s.to_owned());
            }
        }
        if let BuiltStage::Sink(sink) = &mut graph[n].stage {
            sink.expect_streams(streams.into_iter().collect());
        }
    }
}

/// Offers a filter's raw-bytes pre-check to the source it is the only reader of, so lines that
/// cannot match are skipped before they are parsed (the filter still decides on every record
/// that is parsed).
fn push_down_filters(p: &Pipeline, graph: &mut DiGraph<Prepared, Edge>) {
    for n in p.graph.node_indices() {
        if p.graph[n].role != Role::Source {
            continue;
        }
        let readers = p.outputs(n, Port::Main);
        let [only] = readers.as_slice() else { continue };
        let Some(pre) = p.graph[*only].config.pushdown_prefilter() else {
            continue;
        };
        if let BuiltStage::Source(source) = &mut graph[n].stage
            && source.push_down(pre)
        {
            tracing::debug!(source = %p.graph[n].id, filter = %p.graph[*only].id, "filter pushed down into the source");
        }
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

/// What one stage did.
#[derive(Debug, Clone)]
pub struct StageSummary {
    /// Its id.
    pub id: String,
    /// Its role.
    pub role: Role,
    /// Its `type`.
    pub kind: String,
    /// Records in.
    pub records_in: u64,
    /// Records out.
    pub records_out: u64,
    /// Bytes in.
    pub bytes_in: u64,
    /// Bytes out.
    pub bytes_out: u64,
    /// Records sent to dead letter.
    pub dead_lettered: u64,
    /// Records skipped on purpose (outside bounds, ruled out by a pushed-down filter).
    pub skipped: u64,
    /// Seconds from start to its end.
    pub seconds: f64,
    /// Lines the stage reported (sinks: what they wrote).
    pub report: Vec<String>,
}

/// How a run ended.
#[derive(Debug)]
pub struct RunReport {
    /// One entry per stage, in graph order.
    pub stages: Vec<StageSummary>,
    /// The first failure, naming its stage.
    pub error: Option<String>,
    /// True when the run was stopped by the stop token (Ctrl-C).
    pub interrupted: bool,
    /// True when the run stopped because the reader of standard output went away (a `file`
    /// sink writing there failed with [`flux_stages::sink::file::StdoutClosed`]).
    pub output_closed: bool,
    /// Wall time.
    pub seconds: f64,
}

/// Shared, live view of every stage's counters (for progress reporting).
#[derive(Clone)]
pub struct LiveMetrics {
    /// Every stage, in graph order.
    pub stages: Vec<LiveStage>,
}

/// One stage in [`LiveMetrics`].
#[derive(Clone)]
pub struct LiveStage {
    /// Its id.
    pub id: String,
    /// Its role.
    pub role: Role,
    /// The stages feeding its main input (indices into [`LiveMetrics::stages`]).
    pub inputs: Vec<usize>,
    /// A transform that sends each record on or to dead letter (see `Transform::one_to_one`).
    pub one_to_one: bool,
    /// Its counters.
    pub metrics: Arc<StageMetrics>,
}

impl LiveMetrics {
    /// How many records stage `i` will have sent in all, when that is known: what the stage
    /// announced, or for a one-to-one transform what its inputs will send minus its dead letters.
    pub fn expected_out(&self, i: usize) -> Option<u64> {
        let s = &self.stages[i];
        if let Some(n) = s.metrics.expected_out() {
            return Some(n);
        }
        if !s.one_to_one || s.inputs.is_empty() {
            return None;
        }
        let upstream = self.expected_in(i)?;
        Some(upstream.saturating_sub(StageMetrics::get(&s.metrics.dead_lettered)))
    }

    /// How many records stage `i` will receive in all, when every input knows.
    pub fn expected_in(&self, i: usize) -> Option<u64> {
        let inputs = &self.stages[i].inputs;
        if inputs.is_empty() {
            return None;
        }
        inputs
            .iter()
            .map(|&j| self.expected_out(j))
            .sum::<Option<u64>>()
    }
}

/// Runs prepared stages to completion. `on_start` receives the live metrics once the tasks are
/// spawned (for progress reporting).
pub async fn execute(
    graph: DiGraph<Prepared, Edge>,
    stop: CancellationToken,
    on_start: impl FnOnce(LiveMetrics),
) -> RunReport {
    let started = Instant::now();
    // One channel per edge.
    let mut senders: Vec<Vec<(Port, Sender)>> =
        (0..graph.node_count()).map(|_| Vec::new()).collect();
    let mut receivers: Vec<Vec<(String, Receiver)>> =
        (0..graph.node_count()).map(|_| Vec::new()).collect();
    for e in graph.edge_references() {
        let (tx, rx) = channel(graph[e.target()].buffer);
        let label = match e.weight().port {
            Port::Main => graph[e.source()].id.clone(),
            Port::DeadLetter => format!("{}.dead_letter", graph[e.source()].id),
        };
        senders[e.source().index()].push((e.weight().port, tx));
        receivers[e.target().index()].push((label, rx));
    }
    let mut main_inputs: Vec<Vec<usize>> = (0..graph.node_count()).map(|_| Vec::new()).collect();
    for e in graph.edge_references() {
        if e.weight().port == Port::Main {
            main_inputs[e.target().index()].push(e.source().index());
        }
    }
    let (nodes, _) = graph.into_nodes_edges();
    let mut tasks = JoinSet::new();
    let mut live = LiveMetrics { stages: Vec::new() };
    let mut info = Vec::new();
    for (i, ((node, (outs, ins)), inputs)) in nodes
        .into_iter()
        .zip(senders.into_iter().zip(receivers))
        .zip(main_inputs)
        .enumerate()
    {
        let mut p = node.weight;
        let metrics = Arc::new(StageMetrics::default());
        let one_to_one = match &mut p.stage {
            BuiltStage::Transform(t) => {
                t.attach_metrics(metrics.clone());
                t.one_to_one()
            }
            _ => false,
        };
        live.stages.push(LiveStage {
            id: p.id.clone(),
            role: p.role,
            inputs,
            one_to_one,
            metrics: metrics.clone(),
        });
        info.push((p.id.clone(), p.role, p.kind.clone(), metrics.clone()));
        let (main, dl): (Vec<_>, Vec<_>) =
            outs.into_iter().partition(|(port, _)| *port == Port::Main);
        let output = Output::new(
            Arc::from(p.id.as_str()),
            main.into_iter().map(|(_, s)| s).collect(),
            dl.into_iter().map(|(_, s)| s).collect(),
            metrics,
        );
        let stop = stop.clone();
        let id = p.id.clone();
        let role = p.role;
        tasks.spawn(async move {
            let result = match p.stage {
                BuiltStage::Source(s) => run_source(s, output, stop).await,
                BuiltStage::Transform(t) => run_transform(t, Inputs::new(ins), output).await,
                BuiltStage::Sink(s) => run_sink(s, Inputs::new(ins), output, stop).await,
            };
            (i, id, role, result, Instant::now())
        });
    }
    on_start(live);

    let mut reports: Vec<Option<(Vec<String>, Instant)>> = (0..info.len()).map(|_| None).collect();
    // The first real failure is the cause; "downstream gone" / "upstream stopped" errors are
    // its consequences and are reported only when no cause is known.
    let mut cause: Option<String> = None;
    let mut consequence: Option<String> = None;
    let mut output_closed = false;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, _, _, Ok(report), at)) => reports[i] = Some((report, at)),
            Ok((i, id, role, Err(e), at)) => {
                reports[i] = Some((Vec::new(), at));
                let message = format!("{} `{id}` failed: {e:#}", role.noun());
                if is_consequence(&e) {
                    consequence.get_or_insert(message);
                } else if cause.is_none() {
                    output_closed = e
                        .chain()
                        .any(|c| c.is::<flux_stages::sink::file::StdoutClosed>());
                    cause = Some(message);
                    tasks.abort_all();
                }
            }
            Err(e) if e.is_cancelled() => {}
            Err(e) => {
                if cause.is_none() {
                    cause = Some(format!("a stage task panicked: {e}"));
                    tasks.abort_all();
                }
            }
        }
    }
    let error = cause.or(consequence);
    let stages = info
        .into_iter()
        .zip(reports)
        .map(|((id, role, kind, m), rep)| {
            let (report, at) = rep.unwrap_or((Vec::new(), Instant::now()));
            StageSummary {
                id,
                role,
                kind,
                records_in: StageMetrics::get(&m.records_in),
                records_out: StageMetrics::get(&m.records_out),
                bytes_in: StageMetrics::get(&m.bytes_in),
                bytes_out: StageMetrics::get(&m.bytes_out),
                dead_lettered: StageMetrics::get(&m.dead_lettered),
                skipped: StageMetrics::get(&m.skipped),
                seconds: at.duration_since(started).as_secs_f64(),
                report,
            }
        })
        .collect();
    RunReport {
        stages,
        error,
        interrupted: stop.is_cancelled(),
        output_closed,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Errors that only say "another stage went away": reported only when nothing better is known.
fn is_consequence(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<inputs::UpstreamFailed>().is_some()
            || matches!(
                c.downcast_ref::<flux_stages::stage::OutputError>(),
                Some(flux_stages::stage::OutputError::Closed)
            )
    })
}

async fn run_source(
    mut source: Box<dyn Source>,
    output: Output,
    stop: CancellationToken,
) -> anyhow::Result<Vec<String>> {
    let mut ctx = SourceContext { output, stop };
    source.run(&mut ctx).await?;
    ctx.output.end().await?;
    Ok(Vec::new())
}

async fn forward(
    output: &Output,
    emit: Emit,
    unchanged: Option<Arc<flux_stages::record::Batch>>,
) -> anyhow::Result<()> {
    StageMetrics::add(&output.metrics().skipped, emit.skipped);
    output.reject(emit.rejected).await?;
    match unchanged {
        Some(b) => output.send_shared(b).await?,
        None => output.send(emit.records).await?,
    }
    Ok(())
}

fn count_in(output: &Output, batch: &flux_stages::record::Batch) {
    StageMetrics::add(&output.metrics().records_in, batch.len());
    StageMetrics::add(&output.metrics().bytes_in, batch_weight(batch));
}

async fn run_transform(
    mut t: Box<dyn Transform>,
    mut inputs: Inputs,
    output: Output,
) -> anyhow::Result<Vec<String>> {
    loop {
        match inputs.next().await? {
            Event::Batch(batch) => {
                count_in(&output, &batch);
                let mut emit = Emit::default();
                let pass = t.process(&batch, &mut emit)?;
                let unchanged = (pass == Pass::Unchanged).then_some(batch);
                forward(&output, emit, unchanged).await?;
            }
            Event::Barrier(id) => {
                let mut emit = Emit::default();
                t.barrier(id, &mut emit)?;
                forward(&output, emit, None).await?;
                output.barrier(id).await?;
            }
            Event::End => {
                loop {
                    let mut emit = Emit::default();
                    let drain = t.finish(&mut emit)?;
                    forward(&output, emit, None).await?;
                    if drain == Drain::Done {
                        break;
                    }
                }
                output.end().await?;
                return Ok(Vec::new());
            }
        }
    }
}

async fn run_sink(
    mut s: Box<dyn Sink>,
    mut inputs: Inputs,
    output: Output,
    stop: CancellationToken,
) -> anyhow::Result<Vec<String>> {
    s.attach_metrics(output.metrics().clone());
    s.attach_stop(stop);
    loop {
        match inputs.next().await? {
            Event::Batch(batch) => {
                count_in(&output, &batch);
                let n = batch.len();
                let weight = batch_weight(&batch);
                let mut rejected = Vec::new();
                s.write(batch, &mut rejected).await?;
                let skipped = s.take_skipped();
                StageMetrics::add(&output.metrics().skipped, skipped);
                StageMetrics::add(
                    &output.metrics().records_out,
                    n.saturating_sub(rejected.len() + skipped),
                );
                StageMetrics::add(&output.metrics().bytes_out, weight);
                output.reject(rejected).await?;
            }
            Event::Barrier(id) => {
                s.barrier(id).await?;
                output.barrier(id).await?;
            }
            Event::End => {
                let report = s.finish().await?;
                // What the sink received but left unwritten at the end (a stopped replay).
                StageMetrics::add(&output.metrics().skipped, s.take_skipped());
                output.end().await?;
                return Ok(report);
            }
        }
    }
}

/// Builds and runs a compiled pipeline.
///
/// The tokio runtime it runs on needs room for one blocking reader thread per shard of an
/// arrival-order `archive` read: build it with
/// `max_blocking_threads(flux_stages::source::archive::BLOCKING_THREADS)`, as the `run` command
/// does (tokio's default, 512, stalls reads of more shards).
pub async fn run(
    p: &Pipeline,
    run_id: &str,
    stop: CancellationToken,
    on_start: impl FnOnce(LiveMetrics),
) -> Result<RunReport, String> {
    run_with(p, run_id, false, stop, on_start).await
}

/// [`run`], as a dry run when `dry_run`.
pub async fn run_with(
    p: &Pipeline,
    run_id: &str,
    dry_run: bool,
    stop: CancellationToken,
    on_start: impl FnOnce(LiveMetrics),
) -> Result<RunReport, String> {
    let graph = prepare_with(p, run_id, dry_run)?;
    Ok(execute(graph, stop, on_start).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(inputs: Vec<usize>, one_to_one: bool) -> LiveStage {
        LiveStage {
            id: String::new(),
            role: Role::Transform,
            inputs,
            one_to_one,
            metrics: Arc::new(StageMetrics::default()),
        }
    }

    #[test]
    fn expected_counts_flow_through_one_to_one_transforms() {
        // source(0) -> compact(1) -> annotate(2) -> sink(3); filter(4) -> sink(5)
        let live = LiveMetrics {
            stages: vec![
                stage(vec![], false),
                stage(vec![0], false),
                stage(vec![1], true),
                stage(vec![2], false),
                stage(vec![0], false),
                stage(vec![4, 2], false),
            ],
        };
        assert_eq!(live.expected_in(3), None, "compact has not announced yet");
        live.stages[1].metrics.set_expected_out(500);
        assert_eq!(live.expected_in(3), Some(500));
        StageMetrics::add(&live.stages[2].metrics.dead_lettered, 2);
        live.stages[1].metrics.expect_one_less();
        assert_eq!(live.expected_in(3), Some(497));
        assert_eq!(
            live.expected_in(5),
            None,
            "a filter's output is not known ahead"
        );
        live.stages[1].metrics.set_expected_out(0);
        live.stages[1].metrics.expect_one_less();
        assert_eq!(live.stages[1].metrics.expected_out(), Some(0));
    }
}
