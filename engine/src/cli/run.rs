//! `flux-engine run FILE`: run a pipeline to its end.

use flux_stages::sink::kinesis::shards::{ShardRange, even_shards, shards_from_json};
use std::io::IsTerminal;
use std::time::Duration;

use super::report::{self, SummaryJson};
use super::{
    EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, EXIT_RUNTIME, LogFormat, VarArgs, load_and_compile,
};
use crate::runtime::{self, RunOptions, RunSummary, progress};
use clap::Args;

#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// The pipeline file.
    file: String,
    #[command(flatten)]
    vars: VarArgs,
    /// Progress display: bars on a terminal, periodic log lines otherwise, or none.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    progress: ProgressArg,
    /// Seconds between progress log lines when not on a terminal (at least 1).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    progress_interval: u64,
    /// Read, transform and check everything, but write nothing: file sinks count what they
    /// would write; the kinesis sink lists the target's shards and prints its plan (records,
    /// bytes and time per shard, whole sample payloads) once, on standard output. Pipelines
    /// with an archive sink refuse.
    #[arg(long)]
    dry_run: bool,
    /// With --dry-run: plan a kinesis sink's records over N shards with equal hash key ranges
    /// (as CreateStream makes them) instead of listing the stream's: no Kinesis needed.
    #[arg(
        long,
        value_name = "N",
        requires = "dry_run",
        conflicts_with = "shards_file"
    )]
    shards: Option<u32>,
    /// With --dry-run: plan over the open shards of a saved listing (`aws kinesis list-shards
    /// --stream-name S > FILE`, or describe-stream) instead of listing the stream's.
    #[arg(long, value_name = "FILE", requires = "dry_run")]
    shards_file: Option<std::path::PathBuf>,
    /// Write the run's summary as one JSON object to FILE (replaced atomically), or with `-`
    /// as the last line of standard error: outcome, run id, per-stage counters, manifests
    /// written, durations (schema in docs/running.md).
    #[arg(long, value_name = "FILE")]
    summary_json: Option<String>,
    /// Serve Prometheus metrics on `http://ADDR/metrics` (and `/healthz`) while the run lasts,
    /// e.g. 127.0.0.1:9898 (port 0: any free port, logged at INFO). For `stop = "never"`
    /// archivers; see docs/running.md.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<std::net::SocketAddr>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ProgressArg {
    Auto,
    Bars,
    Log,
    Off,
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM (what schedulers such as Kubernetes, ECS and systemd
/// send to stop a job); false when no signal handler could be installed.
pub(crate) async fn stop_requested() -> bool {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return tokio::signal::ctrl_c().await.is_ok();
        };
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.is_ok(),
            r = term.recv() => r.is_some(),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.is_ok()
    }
}

/// The dry run's target shards from `--shards` or `--shards-file`, when given.
fn offline_shards(args: &RunArgs) -> Result<Option<Vec<ShardRange>>, String> {
    if let Some(n) = args.shards {
        return even_shards(n)
            .map(Some)
            .map_err(|e| format!("--shards {n}: {e}"));
    }
    let Some(path) = &args.shards_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--shards-file {}: {e}", path.display()))?;
    shards_from_json(&text)
        .map(Some)
        .map_err(|e| format!("--shards-file {}: {e}", path.display()))
}

pub(crate) fn run_pipeline(args: RunArgs, format: LogFormat) -> i32 {
    let summary_json = match args.summary_json.as_deref().map(SummaryJson::parse) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            report::error(format, &e);
            return EXIT_INVALID;
        }
    };
    // Bound before the run starts, so that a busy port or an address of another machine is an
    // error before anything is read.
    let metrics = match args.metrics_listen.map(bind) {
        None => None,
        Some(Ok(l)) => Some(l),
        Some(Err(e)) => {
            report::error(format, &e);
            return EXIT_INVALID;
        }
    };
    let offline_shards = match offline_shards(&args) {
        Ok(s) => s,
        Err(e) => {
            report::error(format, &e);
            return EXIT_INVALID;
        }
    };
    let pipeline = match load_and_compile(&args.file, &args.vars) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if offline_shards.is_some()
        && !pipeline
            .graph
            .node_weights()
            .any(|n| matches!(n.config, flux_stages::registry::StageConfig::KinesisSink(_)))
    {
        report::error(
            format,
            &format!(
                "{} has no kinesis sink: --shards and --shards-file give a kinesis sink's target shards",
                args.file
            ),
        );
        return EXIT_INVALID;
    }
    let mode = match args.progress {
        ProgressArg::Auto if std::io::stderr().is_terminal() => progress::Mode::Bars,
        ProgressArg::Auto | ProgressArg::Log => progress::Mode::Log {
            interval: Duration::from_secs(args.progress_interval.max(1)),
            fields: format == LogFormat::Json,
        },
        ProgressArg::Bars => progress::Mode::Bars,
        ProgressArg::Off => progress::Mode::Off,
    };
    // Signals, progress and waiting run here; the pipeline runs on a runtime of its own.
    let control = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            report::error(format, &format!("cannot start the runtime: {e}"));
            return EXIT_RUNTIME;
        }
    };
    let run_id = runtime::new_run_id();
    tracing::info!(pipeline = %pipeline.name, run_id = %run_id, "starting");
    let dry_run = args.dry_run;
    let started_at = chrono::Utc::now();
    let handle = match runtime::start(
        &pipeline,
        RunOptions {
            run_id: run_id.clone(),
            dry_run,
            offline_shards,
        },
    ) {
        Ok(h) => h,
        Err(e) => {
            let summary = RunSummary::not_started(
                &run_id,
                &pipeline.name,
                dry_run,
                started_at,
                e.to_string(),
            );
            let code = report::outcome(format, &summary);
            return write_summary(summary_json.as_ref(), &summary, format, code);
        }
    };
    let summary = control.block_on(async move {
        let monitor = handle.monitor();
        let on_signal = monitor.clone();
        tokio::spawn(async move {
            if stop_requested().await {
                report::interrupting(format);
                on_signal.cancel();
                if stop_requested().await {
                    // Whatever is cut short, the stream's lease need not wait for lease_ttl.
                    on_signal.release_leases(Duration::from_secs(3)).await;
                    report::aborted(format);
                    std::process::exit(EXIT_INTERRUPTED);
                }
            }
        });
        let server = metrics.and_then(|l| serve_metrics(l, monitor.clone(), format));
        let reporter = progress::Reporter::start(monitor, mode);
        let summary = handle.wait().await;
        reporter.finish();
        if let Some(s) = server {
            s.abort();
        }
        summary
    });
    // Readers blocked on standard input (after Ctrl-C) must not keep the process alive.
    control.shutdown_background();
    report::summary(format, &summary);
    if dry_run {
        // The plan goes to standard output, once (payload samples never go to the log); a dry
        // run writes no records, so standard output carries nothing else.
        for s in &summary.stages {
            for l in &s.plan {
                outln!("{}: {l}", s.id);
            }
        }
    }
    let code = report::outcome(format, &summary);
    write_summary(summary_json.as_ref(), &summary, format, code)
}

/// Binds `--metrics-listen`; the message names the option and the address.
fn bind(addr: std::net::SocketAddr) -> Result<std::net::TcpListener, String> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| format!("--metrics-listen {addr}: cannot listen: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("--metrics-listen {addr}: {e}"))?;
    Ok(listener)
}

/// Serves the run's metrics on the current runtime until the returned task is aborted.
fn serve_metrics(
    listener: std::net::TcpListener,
    monitor: runtime::Monitor,
    format: LogFormat,
) -> Option<tokio::task::JoinHandle<()>> {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            report::error(format, &format!("--metrics-listen: {e}"));
            return None;
        }
    };
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(addr = %addr, "serving metrics on http://{addr}/metrics");
    }
    Some(tokio::spawn(async move {
        if let Err(e) = crate::metrics::serve(listener, monitor).await {
            tracing::warn!("the metrics endpoint stopped: {e}");
        }
    }))
}

/// Writes `--summary-json` when asked; a failure to write it fails a run that succeeded.
fn write_summary(
    to: Option<&SummaryJson>,
    summary: &RunSummary,
    format: LogFormat,
    code: i32,
) -> i32 {
    match to.map(|t| t.write(summary)) {
        Some(Err(e)) => {
            report::error(format, &e);
            if code == EXIT_OK { EXIT_RUNTIME } else { code }
        }
        _ => code,
    }
}
