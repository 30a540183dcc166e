//! Prometheus metrics of a running pipeline, for long-running jobs (`run --metrics-listen`):
//! `/metrics` in the OpenMetrics text format (which Prometheus scrapes), encoded by the
//! Prometheus project's `prometheus-client` crate from a [`Snapshot`] taken at each scrape,
//! and `/healthz`. The HTTP side is axum on hyper, which the planned `serve` command shares.
//!
//! No payload, key or credential is ever exported: only counters, the stage ids and types from
//! the pipeline file, the run id and the pipeline's name.

use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::runtime::{Counters, Monitor, RunState, Snapshot};

/// The media type of `/metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A stage's labels: `stage` (its id), `role`, `type`.
type StageLabels = Vec<(&'static str, String)>;

/// A stage counter's metric name (after `flux_stage_`), help, and how to read it.
type StageCounter = (&'static str, &'static str, fn(&Counters) -> u64);

/// The counters every stage has.
const STAGE_COUNTERS: [StageCounter; 9] = [
    (
        "records_in",
        "Records received (sources: records read and sent on).",
        |c| c.records_in,
    ),
    (
        "records_out",
        "Records sent on (sinks: records accepted).",
        |c| c.records_out,
    ),
    (
        "bytes_in",
        "Bytes received (payload + partition key + 64 per record).",
        |c| c.bytes_in,
    ),
    (
        "bytes_out",
        "Bytes sent on (sinks: accepted), measured as bytes_in.",
        |c| c.bytes_out,
    ),
    (
        "dead_lettered",
        "Records sent to the stage's dead_letter port.",
        |c| c.dead_lettered,
    ),
    ("skipped", "Records skipped on purpose and counted.", |c| {
        c.skipped
    }),
    (
        "throttled",
        "Sinks: records the destination throttled (and that were retried).",
        |c| c.throttled,
    ),
    (
        "retried",
        "Sinks: records sent again after a failure.",
        |c| c.retried,
    ),
    (
        "delivered",
        "Sinks that deliver after accepting (kinesis): records delivered.",
        |c| c.delivered,
    ),
];

/// The OpenMetrics text of a snapshot.
pub fn encode_snapshot(snap: &Snapshot) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("flux");
    register_runs(&mut registry, std::slice::from_ref(snap), false);
    let mut out = String::new();
    encode(&mut out, &registry)?;
    Ok(out)
}

/// Registers the metrics of runs: with `per_run`, every series also carries the `run_id`
/// label (a server with several runs at once); without, one run's series as `run` serves them.
pub fn register_runs(registry: &mut Registry, snaps: &[Snapshot], per_run: bool) {
    let labels = |snap: &Snapshot, s: &crate::runtime::StageSnapshot| -> StageLabels {
        let mut l = Vec::with_capacity(4);
        if per_run {
            l.push(("run_id", snap.run_id.clone()));
        }
        l.extend([
            ("stage", s.id.clone()),
            ("role", s.role.noun().to_owned()),
            ("type", s.kind.clone()),
        ]);
        l
    };
    for (name, help, read) in STAGE_COUNTERS {
        let family = Family::<StageLabels, Counter>::default();
        for snap in snaps {
            for s in &snap.stages {
                family
                    .get_or_create(&labels(snap, s))
                    .inc_by(read(&s.counters));
            }
        }
        registry.register(format!("stage_{name}"), help, family);
    }
    let behind = Family::<StageLabels, Gauge>::default();
    let checkpoint_age = Family::<StageLabels, Gauge<f64, AtomicU64>>::default();
    for snap in snaps {
        for s in &snap.stages {
            if let Some(ms) = s.behind_ms {
                behind
                    .get_or_create(&labels(snap, s))
                    .set(i64::try_from(ms).unwrap_or(i64::MAX));
            }
            if let Some(ms) = s.checkpoint_age_ms {
                checkpoint_age
                    .get_or_create(&labels(snap, s))
                    .set(ms as f64 / 1000.0);
            }
        }
    }
    registry.register(
        "stage_behind_tip_ms",
        "Sources reading a stream: milliseconds behind its tip (the largest MillisBehindLatest of the open shards), once every shard has reported.",
        behind,
    );
    registry.register_with_unit(
        "stage_checkpoint_age",
        "Sinks: time since the last checkpoint barrier completed (everything received before it is durable), once one has.",
        Unit::Seconds,
        checkpoint_age,
    );
    let state = Family::<Vec<(&'static str, String)>, Gauge>::default();
    let info = Family::<Vec<(&'static str, String)>, Gauge>::default();
    let elapsed = Family::<Vec<(&'static str, String)>, Gauge<f64, AtomicU64>>::default();
    for snap in snaps {
        let run: Vec<(&'static str, String)> = if per_run {
            vec![("run_id", snap.run_id.clone())]
        } else {
            Vec::new()
        };
        for s in RunState::ALL {
            let mut l = run.clone();
            l.push(("state", s.name().to_owned()));
            state.get_or_create(&l).set(i64::from(s == snap.state));
        }
        info.get_or_create(&vec![
            ("run_id", snap.run_id.clone()),
            ("pipeline", snap.pipeline.clone()),
        ])
        .set(1);
        elapsed.get_or_create(&run).set(snap.elapsed_seconds);
    }
    registry.register(
        "run_state",
        "1 for the run's current state, 0 for the others.",
        state,
    );
    registry.register("run_info", "The run's id and pipeline (always 1).", info);
    let help = "Time since the run started.";
    match snaps {
        [one] if !per_run => {
            let gauge = Gauge::<f64, AtomicU64>::default();
            gauge.set(one.elapsed_seconds);
            registry.register_with_unit("run_elapsed", help, Unit::Seconds, gauge);
        }
        _ => registry.register_with_unit("run_elapsed", help, Unit::Seconds, elapsed),
    }
}

/// The routes: `GET /metrics` and `GET /healthz` (200 and the run's state while it runs).
pub fn router(monitor: Monitor) -> Router {
    let m = monitor.clone();
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let monitor = m.clone();
                async move {
                    match encode_snapshot(&monitor.snapshot()) {
                        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
                        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                    }
                }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let monitor = monitor.clone();
                async move { format!("{}\n", monitor.state().name()) }
            }),
        )
}

/// Serves [`router`] on `listener` until the task is dropped or aborted.
pub async fn serve(listener: tokio::net::TcpListener, monitor: Monitor) -> std::io::Result<()> {
    axum::serve(listener, router(monitor)).await
}

#[cfg(test)]
mod tests {
    use flux_stages::registry::Role;

    use super::*;
    use crate::runtime::StageSnapshot;

    #[test]
    fn a_snapshot_encodes_as_openmetrics_text() {
        let stage = |id: &str, role, behind_ms, checkpoint_age_ms| StageSnapshot {
            id: id.into(),
            role,
            kind: "kinesis".into(),
            counters: Counters {
                records_out: 42,
                ..Default::default()
            },
            counts_delivered: false,
            behind_ms,
            expected_in: None,
            checkpoint_age_ms,
            finished: false,
            objects: None,
        };
        let snap = Snapshot {
            run_id: "r-1".into(),
            pipeline: "p".into(),
            state: RunState::Running,
            elapsed_seconds: 2.5,
            stages: vec![
                stage("stream", Role::Source, Some(1200), None),
                stage("archive", Role::Sink, None, Some(1500)),
            ],
        };
        let text = encode_snapshot(&snap).unwrap();
        for line in [
            "# TYPE flux_stage_records_out counter",
            "flux_stage_records_out_total{stage=\"stream\",role=\"source\",type=\"kinesis\"} 42",
            "flux_stage_behind_tip_ms{stage=\"stream\",role=\"source\",type=\"kinesis\"} 1200",
            "flux_stage_checkpoint_age_seconds{stage=\"archive\",role=\"sink\",type=\"kinesis\"} 1.5",
            "flux_run_state{state=\"running\"} 1",
            "flux_run_state{state=\"finished\"} 0",
            "flux_run_info{run_id=\"r-1\",pipeline=\"p\"} 1",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
        assert!(!text.contains("behind_tip_ms{stage=\"archive\""), "{text}");
    }
}
