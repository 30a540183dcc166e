//! `flux-engine run FILE`: run a pipeline to its end.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::{
    EXIT_INTERRUPTED, EXIT_OK, EXIT_OUTPUT_CLOSED, EXIT_RUNTIME, VarArgs, load_and_compile,
};
use crate::runtime::{self, progress};

#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// The pipeline file.
    file: String,
    #[command(flatten)]
    vars: VarArgs,
    /// Progress display: bars on a terminal, periodic log lines otherwise, or none.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    progress: ProgressArg,
    /// Seconds between progress log lines when not on a terminal.
    #[arg(long, default_value_t = 10)]
    progress_interval: u64,
    /// Read, transform and check everything, but write nothing: the kinesis sink lists the
    /// target's shards and prints its plan (records, bytes and time per shard, a sample) on
    /// standard output. Pipelines with an archive sink refuse.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ProgressArg {
    Auto,
    Bars,
    Log,
    Off,
}

/// A run id: UTC start time plus a per-process suffix, sortable by time.
fn new_run_id() -> String {
    let now = chrono::Utc::now();
    let nanos = now.timestamp_subsec_nanos();
    format!(
        "{}-{:04x}{:04x}",
        now.format("%Y%m%dT%H%M%SZ"),
        std::process::id() & 0xffff,
        nanos & 0xffff
    )
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM (what schedulers such as Kubernetes, ECS and systemd
/// send to stop a job); false when no signal handler could be installed.
async fn stop_requested() -> bool {
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

pub(crate) fn run(args: RunArgs) -> i32 {
    let pipeline = match load_and_compile(&args.file, &args.vars) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mode = match args.progress {
        ProgressArg::Auto if std::io::stderr().is_terminal() => progress::Mode::Bars,
        ProgressArg::Auto | ProgressArg::Log => {
            progress::Mode::Log(Duration::from_secs(args.progress_interval.max(1)))
        }
        ProgressArg::Bars => progress::Mode::Bars,
        ProgressArg::Off => progress::Mode::Off,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // An arrival-order archive read keeps one reader thread per shard open at once (see
        // flux_stages::source::archive::MAX_ARRIVAL_SHARDS); tokio's default of 512 would
        // leave later shards' readers queued behind parked ones, and the merge waiting forever.
        .max_blocking_threads(flux_stages::source::archive::BLOCKING_THREADS)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errln!("error: cannot start the runtime: {e}");
            return EXIT_RUNTIME;
        }
    };
    let run_id = new_run_id();
    let code = rt.block_on(async move {
        let stop = CancellationToken::new();
        let on_signal = stop.clone();
        tokio::spawn(async move {
            if stop_requested().await {
                errln!("interrupted: draining what was read; press Ctrl-C again to abort");
                on_signal.cancel();
                if stop_requested().await {
                    // Whatever is cut short, the stream's lease need not wait for lease_ttl.
                    let _ = tokio::time::timeout(
                        Duration::from_secs(3),
                        flux_stages::archive::lease::release_held(),
                    )
                    .await;
                    errln!("aborted");
                    std::process::exit(EXIT_INTERRUPTED);
                }
            }
        });
        tracing::info!(pipeline = %pipeline.name, run_id = %run_id, "starting");
        let mut reporter = None;
        let dry_run = args.dry_run;
        let result = runtime::run_with(&pipeline, &run_id, dry_run, stop, |live| {
            reporter = Some(progress::Reporter::start(live, mode));
        })
        .await;
        if let Some(r) = reporter {
            r.finish();
        }
        // A run that failed never reached its sinks' end: release the leases they still hold,
        // so the next run need not wait for lease_ttl.
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            flux_stages::archive::lease::release_held(),
        )
        .await;
        let report = match result {
            Ok(r) => r,
            Err(e) => {
                errln!("error: {e}");
                return EXIT_RUNTIME;
            }
        };
        err!("{}", progress::summary(&report));
        if dry_run {
            // The plan goes to standard output (payload samples never go to the log).
            for s in &report.stages {
                for l in &s.report {
                    outln!("{}: {l}", s.id);
                }
            }
        }
        if report.output_closed {
            // As a Unix tool whose reader went away (`| head`): no error, the shell's code.
            errln!("stopped: standard output was closed by its reader");
            EXIT_OUTPUT_CLOSED
        } else if let Some(e) = &report.error {
            errln!("error: {e}");
            EXIT_RUNTIME
        } else if report.interrupted {
            errln!("interrupted: the run stopped early; everything read was committed");
            EXIT_INTERRUPTED
        } else {
            EXIT_OK
        }
    });
    // Readers blocked on standard input (after Ctrl-C) must not keep the process alive.
    rt.shutdown_background();
    code
}
