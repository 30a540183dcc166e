//! Backpressure with exact counts: a sink that stops reading lets exactly the channel capacities
//! through, then the source is blocked. Time is paused (tokio test-util): the clock only moves
//! when every task is idle, so "sleep an hour" means "wait until nothing can make progress".

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use flux_engine::compile::Edge;
use flux_engine::config::Port;
use flux_engine::runtime::{Prepared, execute};
use flux_stages::channel::Capacity;
use flux_stages::record::{Batch, Record, SequenceNumber, ts_from_millis};
use flux_stages::registry::{BuiltStage, Role};
use flux_stages::stage::{
    Emit, Pass, RecordTransform, Rejected, Sink, SinkReport, Source, SourceContext,
};
use petgraph::graph::DiGraph;
use tokio_util::sync::CancellationToken;

/// Emits one-record batches forever, counting those the output accepted.
struct Counter(Arc<AtomicU64>);

#[async_trait]
impl Source for Counter {
    async fn run(&mut self, ctx: &mut SourceContext) -> anyhow::Result<()> {
        for i in 0.. {
            if ctx.stop.is_cancelled() {
                break;
            }
            let r = Record {
                stream: "s".into(),
                shard_id: "shard-0".into(),
                sequence_number: SequenceNumber::from_u64(i),
                sub_sequence_number: None,
                partition_key: "k".into(),
                arrival_ts: ts_from_millis(0),
                data: bytes::Bytes::from_static(b"{}"),
                annotations: None,
                probed: None,
            };
            ctx.output.send(vec![r]).await?;
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// Takes one batch, then never returns: it stops reading its input.
struct Stuck(Arc<AtomicU64>);

#[async_trait]
impl Sink for Stuck {
    async fn write(&mut self, batch: Arc<Batch>, _: &mut Vec<Rejected>) -> anyhow::Result<()> {
        self.0.fetch_add(batch.len() as u64, Ordering::SeqCst);
        std::future::pending::<()>().await;
        Ok(())
    }
    async fn finish(&mut self) -> anyhow::Result<SinkReport> {
        Ok(SinkReport::default())
    }
}

/// Counts what passes through.
struct Pass1;

impl RecordTransform for Pass1 {
    fn process(&mut self, _: &Arc<Batch>, _: &mut Emit) -> anyhow::Result<Pass> {
        Ok(Pass::Unchanged)
    }
}

fn prepared(id: &str, role: Role, records: usize, stage: BuiltStage) -> Prepared {
    Prepared {
        id: id.into(),
        role,
        kind: "test".into(),
        buffer: Capacity {
            records,
            bytes: 1 << 30,
        },
        one_to_one: false,
        metrics: Default::default(),
        stage,
    }
}

#[tokio::test(start_paused = true)]
async fn a_stuck_sink_blocks_the_source_after_exactly_the_capacities() {
    let sent = Arc::new(AtomicU64::new(0));
    let taken = Arc::new(AtomicU64::new(0));
    let mut g = DiGraph::new();
    let src = g.add_node(prepared(
        "src",
        Role::Source,
        1,
        BuiltStage::Source(Box::new(Counter(sent.clone()))),
    ));
    let mid = g.add_node(prepared(
        "mid",
        Role::Transform,
        7,
        BuiltStage::PerRecord(Box::new(Pass1)),
    ));
    let out = g.add_node(prepared(
        "out",
        Role::Sink,
        5,
        BuiltStage::Sink(Box::new(Stuck(taken.clone()))),
    ));
    g.add_edge(src, mid, Edge { port: Port::Main });
    g.add_edge(mid, out, Edge { port: Port::Main });
    let run = tokio::spawn(execute(g, CancellationToken::new(), |_| {}));
    // Wait until nothing can move any more.
    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    // The sink holds 1 record; its channel holds 5; the transform holds 1 (blocked sending);
    // its channel holds 7. Anything more would mean a dropped or unbounded buffer.
    assert_eq!(taken.load(Ordering::SeqCst), 1);
    assert_eq!(sent.load(Ordering::SeqCst), 1 + 5 + 1 + 7);
    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    assert_eq!(
        sent.load(Ordering::SeqCst),
        14,
        "the source must stay blocked"
    );
    run.abort();
}

#[tokio::test(start_paused = true)]
async fn fan_out_is_paced_by_the_slowest_consumer() {
    let sent = Arc::new(AtomicU64::new(0));
    let taken = Arc::new(AtomicU64::new(0));
    let fast_taken = Arc::new(AtomicU64::new(0));
    let mut g = DiGraph::new();
    let src = g.add_node(prepared(
        "src",
        Role::Source,
        1,
        BuiltStage::Source(Box::new(Counter(sent.clone()))),
    ));
    let slow = g.add_node(prepared(
        "slow",
        Role::Sink,
        3,
        BuiltStage::Sink(Box::new(Stuck(taken.clone()))),
    ));
    let fast = g.add_node(prepared(
        "fast",
        Role::Sink,
        100,
        BuiltStage::Sink(Box::new(Drain(fast_taken.clone()))),
    ));
    g.add_edge(src, slow, Edge { port: Port::Main });
    g.add_edge(src, fast, Edge { port: Port::Main });
    let run = tokio::spawn(execute(g, CancellationToken::new(), |_| {}));
    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    // The slow sink holds 1 and its channel 3: the source got 4 batches out, then blocked while
    // sending the 5th, which the fast sink (first or second in line) may or may not have seen.
    assert_eq!(sent.load(Ordering::SeqCst), 4);
    let fast = fast_taken.load(Ordering::SeqCst);
    assert!((4..=5).contains(&fast), "fast sink saw {fast}");
    run.abort();
}

/// Reads everything.
struct Drain(Arc<AtomicU64>);

#[async_trait]
impl Sink for Drain {
    async fn write(&mut self, batch: Arc<Batch>, _: &mut Vec<Rejected>) -> anyhow::Result<()> {
        self.0.fetch_add(batch.len() as u64, Ordering::SeqCst);
        Ok(())
    }
    async fn finish(&mut self) -> anyhow::Result<SinkReport> {
        Ok(SinkReport::default())
    }
}

#[tokio::test]
async fn stop_drains_and_reports_interrupted() {
    let sent = Arc::new(AtomicU64::new(0));
    let taken = Arc::new(AtomicU64::new(0));
    let mut g = DiGraph::new();
    let src = g.add_node(prepared(
        "src",
        Role::Source,
        1,
        BuiltStage::Source(Box::new(Counter(sent.clone()))),
    ));
    let out = g.add_node(prepared(
        "out",
        Role::Sink,
        10,
        BuiltStage::Sink(Box::new(Drain(taken.clone()))),
    ));
    g.add_edge(src, out, Edge { port: Port::Main });
    let stop = CancellationToken::new();
    let stopper = stop.clone();
    let run = tokio::spawn(execute(g, stop, |_| {}));
    while sent.load(Ordering::SeqCst) < 1000 {
        tokio::task::yield_now().await;
    }
    stopper.cancel();
    let report = run.await.unwrap();
    assert!(report.interrupted);
    assert!(report.error.is_none(), "{:?}", report.error);
    // Everything the source sent reached the sink: nothing was lost while draining.
    assert_eq!(taken.load(Ordering::SeqCst), sent.load(Ordering::SeqCst));
    assert_eq!(
        report.stages[1].counters.records_in,
        sent.load(Ordering::SeqCst)
    );
}

/// Fails on its first batch.
struct Failing;

#[async_trait]
impl Sink for Failing {
    async fn write(&mut self, _: Arc<Batch>, _: &mut Vec<Rejected>) -> anyhow::Result<()> {
        anyhow::bail!("disk on fire")
    }
    async fn finish(&mut self) -> anyhow::Result<SinkReport> {
        Ok(SinkReport::default())
    }
}

#[tokio::test]
async fn the_first_failure_stops_the_run_and_names_its_stage() {
    let sent = Arc::new(AtomicU64::new(0));
    let mut g = DiGraph::new();
    let src = g.add_node(prepared(
        "src",
        Role::Source,
        1,
        BuiltStage::Source(Box::new(Counter(sent.clone()))),
    ));
    let mid = g.add_node(prepared(
        "mid",
        Role::Transform,
        4,
        BuiltStage::PerRecord(Box::new(Pass1)),
    ));
    let out = g.add_node(prepared(
        "burning",
        Role::Sink,
        4,
        BuiltStage::Sink(Box::new(Failing)),
    ));
    g.add_edge(src, mid, Edge { port: Port::Main });
    g.add_edge(mid, out, Edge { port: Port::Main });
    let report = execute(g, CancellationToken::new(), |_| {}).await;
    assert_eq!(
        report.error.as_deref(),
        Some("sink `burning` failed: disk on fire")
    );
}
