//! Running prepared stages: one tokio task per stage, one bounded channel per edge, the first
//! failure cancelling the rest; the result as a [`RunReport`].

use std::sync::Arc;
use std::time::Instant;

use flux_stages::channel::{Receiver, Sender, channel};
use flux_stages::record::batch_weight;
use flux_stages::registry::BuiltStage;
use flux_stages::stage::{
    Drain, Emit, Output, Pass, RecordTransform, Sink, SinkReport, Source, SourceContext,
    StageMetrics, StatefulTransform,
};
use petgraph::graph::DiGraph;
use petgraph::visit::EdgeRef;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::inputs::{self, Event, Inputs};
use super::live::{LiveMetrics, LiveStage};
use super::prepare::Prepared;
use super::summary::{Counters, StageSummary};
use crate::compile::Edge;
use crate::config::Port;

/// How a run of prepared stages ended.
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
        let p = node.weight;
        let metrics = p.metrics.clone();
        live.stages.push(LiveStage {
            id: p.id.clone(),
            role: p.role,
            kind: p.kind.clone(),
            inputs,
            one_to_one: p.one_to_one,
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
                BuiltStage::PerRecord(t) => run_per_record(t, Inputs::new(ins), output).await,
                BuiltStage::Stateful(t) => run_stateful(t, Inputs::new(ins), output).await,
                BuiltStage::Sink(s) => run_sink(s, Inputs::new(ins), output).await,
            };
            (i, id, role, result, Instant::now())
        });
    }
    on_start(live);

    let mut reports: Vec<Option<(SinkReport, Instant)>> = (0..info.len()).map(|_| None).collect();
    // The first real failure is the cause; "downstream gone" / "upstream stopped" errors are
    // its consequences and are reported only when no cause is known.
    let mut cause: Option<String> = None;
    let mut consequence: Option<String> = None;
    let mut output_closed = false;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, _, _, Ok(report), at)) => reports[i] = Some((report, at)),
            Ok((i, id, role, Err(e), at)) => {
                reports[i] = Some((SinkReport::default(), at));
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
            let (report, at) = rep.unwrap_or((SinkReport::default(), Instant::now()));
            StageSummary {
                id,
                role,
                kind,
                counters: Counters::read(&m),
                seconds: at.duration_since(started).as_secs_f64(),
                report: report.lines,
                manifests: report.manifests,
                plan: report.plan,
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
) -> anyhow::Result<SinkReport> {
    let mut ctx = SourceContext { output, stop };
    source.run(&mut ctx).await?;
    ctx.output.end().await?;
    ctx.output
        .metrics()
        .finished
        .store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(SinkReport::default())
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

async fn run_per_record(
    mut t: Box<dyn RecordTransform>,
    mut inputs: Inputs,
    output: Output,
) -> anyhow::Result<SinkReport> {
    loop {
        match inputs.next().await? {
            Event::Batch(batch) => {
                count_in(&output, &batch);
                let mut emit = Emit::default();
                let pass = t.process(&batch, &mut emit)?;
                let unchanged = (pass == Pass::Unchanged).then_some(batch);
                forward(&output, emit, unchanged).await?;
            }
            Event::Barrier(id) => output.barrier(id).await?,
            Event::End => {
                output.end().await?;
                return Ok(SinkReport::default());
            }
        }
    }
}

/// One call of a stateful transform.
enum Call {
    Process(Arc<flux_stages::record::Batch>),
    Barrier(u64),
    Finish,
}

/// What a call produced: its output, and whether there is more (for [`Call::Finish`]).
type Answer = anyhow::Result<(Emit, Drain)>;

/// A stateful transform on a thread of the blocking pool of its own, for the stage's whole life:
/// its calls may block (a compaction's spill I/O) without holding an async worker, and its
/// state is allocated and freed on one thread (per-thread allocator caches stay one).
struct StatefulWorker {
    calls: tokio::sync::mpsc::Sender<(Call, tokio::sync::oneshot::Sender<Answer>)>,
    thread: tokio::task::JoinHandle<()>,
}

impl StatefulWorker {
    fn start(mut t: Box<dyn StatefulTransform>) -> StatefulWorker {
        let (calls, mut rx) =
            tokio::sync::mpsc::channel::<(Call, tokio::sync::oneshot::Sender<Answer>)>(1);
        let thread = tokio::task::spawn_blocking(move || {
            while let Some((call, reply)) = rx.blocking_recv() {
                let mut emit = Emit::default();
                let drain = match call {
                    Call::Process(batch) => t.process(batch, &mut emit).map(|()| Drain::Done),
                    Call::Barrier(id) => t.barrier(id, &mut emit).map(|()| Drain::Done),
                    Call::Finish => t.finish(&mut emit),
                };
                let failed = drain.is_err();
                let _ = reply.send(drain.map(|d| (emit, d)));
                if failed {
                    return;
                }
            }
        });
        StatefulWorker { calls, thread }
    }

    /// Makes one call and waits for its answer.
    async fn call(&mut self, call: Call) -> anyhow::Result<(Emit, Drain)> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = self.calls.send((call, reply)).await.is_ok();
        match answer.await {
            Ok(answer) if sent => answer,
            // The thread is gone: a panic in the transform, reported as such.
            _ => match (&mut self.thread).await {
                Err(e) => Err(anyhow::anyhow!(
                    "the transform's thread ended abnormally: {e}"
                )),
                Ok(()) => Err(anyhow::anyhow!("the transform's thread ended")),
            },
        }
    }
}

async fn run_stateful(
    t: Box<dyn StatefulTransform>,
    mut inputs: Inputs,
    output: Output,
) -> anyhow::Result<SinkReport> {
    let mut worker = StatefulWorker::start(t);
    loop {
        match inputs.next().await? {
            Event::Batch(batch) => {
                count_in(&output, &batch);
                let (emit, _) = worker.call(Call::Process(batch)).await?;
                forward(&output, emit, None).await?;
            }
            Event::Barrier(id) => {
                let (emit, _) = worker.call(Call::Barrier(id)).await?;
                forward(&output, emit, None).await?;
                output.barrier(id).await?;
            }
            Event::End => {
                loop {
                    let (emit, drain) = worker.call(Call::Finish).await?;
                    forward(&output, emit, None).await?;
                    if drain == Drain::Done {
                        break;
                    }
                }
                output.end().await?;
                return Ok(SinkReport::default());
            }
        }
    }
}

async fn run_sink(
    mut s: Box<dyn Sink>,
    mut inputs: Inputs,
    output: Output,
) -> anyhow::Result<SinkReport> {
    loop {
        match inputs.next().await? {
            Event::Batch(batch) => {
                count_in(&output, &batch);
                let n = batch.len();
                let weight = batch_weight(&batch);
                let mut rejected = Vec::new();
                s.write(batch, &mut rejected).await?;
                let skipped = s.take_skipped();
                StageMetrics::add(&output.metrics().skipped, skipped.records);
                // Out: what the sink accepted, neither rejected nor skipped.
                let rejected_weight: usize = rejected.iter().map(|r| r.record.weight()).sum();
                StageMetrics::add(
                    &output.metrics().records_out,
                    n.saturating_sub(rejected.len() + skipped.records),
                );
                StageMetrics::add(
                    &output.metrics().bytes_out,
                    weight.saturating_sub(rejected_weight + skipped.bytes),
                );
                output.reject(rejected).await?;
            }
            Event::Barrier(id) => {
                s.barrier(id).await?;
                // A sink's barrier makes everything it received durable: a checkpoint.
                output.metrics().set_checkpointed_now();
                output.barrier(id).await?;
            }
            Event::End => {
                let report = s.finish().await?;
                // What the sink received but left unwritten at the end (a stopped replay).
                StageMetrics::add(&output.metrics().skipped, s.take_skipped().records);
                output.end().await?;
                return Ok(report);
            }
        }
    }
}
