//! `flux-engine run FILE`: run a pipeline to its end.

use std::io::IsTerminal;
use std::time::Duration;

use super::{
    EXIT_INTERRUPTED, EXIT_OK, EXIT_OUTPUT_CLOSED, EXIT_RUNTIME, VarArgs, load_and_compile,
};
use crate::runtime::{self, Outcome, RunOptions, RunSummary, progress, table};
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
        ProgressArg::Auto | ProgressArg::Log => progress::Mode::Log {
            interval: Duration::from_secs(args.progress_interval.max(1)),
            fields: false,
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
            errln!("error: cannot start the runtime: {e}");
            return EXIT_RUNTIME;
        }
    };
    let run_id = runtime::new_run_id();
    tracing::info!(pipeline = %pipeline.name, run_id = %run_id, "starting");
    let dry_run = args.dry_run;
    let handle = match runtime::start(&pipeline, RunOptions { run_id, dry_run }) {
        Ok(h) => h,
        Err(e) => {
            errln!("error: {e}");
            return EXIT_RUNTIME;
        }
    };
    let code = control.block_on(async move {
        let monitor = handle.monitor();
        let on_signal = monitor.clone();
        tokio::spawn(async move {
            if stop_requested().await {
                errln!("interrupted: draining what was read; press Ctrl-C again to abort");
                on_signal.cancel();
                if stop_requested().await {
                    // Whatever is cut short, the stream's lease need not wait for lease_ttl.
                    on_signal.release_leases(Duration::from_secs(3)).await;
                    errln!("aborted");
                    std::process::exit(EXIT_INTERRUPTED);
                }
            }
        });
        let reporter = progress::Reporter::start(monitor, mode);
        let summary = handle.wait().await;
        reporter.finish();
        finish(&summary)
    });
    // Readers blocked on standard input (after Ctrl-C) must not keep the process alive.
    control.shutdown_background();
    code
}

/// Prints what a finished run did and returns the exit code.
fn finish(summary: &RunSummary) -> i32 {
    if summary.stages.is_empty() {
        // The stages could not be built: no table, only the error.
        errln!(
            "error: {}",
            summary.error.as_deref().unwrap_or("the run did not start")
        );
        return EXIT_RUNTIME;
    }
    err!("{}", table::summary(summary));
    if summary.dry_run {
        // The plan goes to standard output (payload samples never go to the log).
        for s in &summary.stages {
            for l in &s.report {
                outln!("{}: {l}", s.id);
            }
        }
    }
    match summary.outcome {
        Outcome::OutputClosed => {
            // As a Unix tool whose reader went away (`| head`): no error, the shell's code.
            errln!("stopped: standard output was closed by its reader");
            EXIT_OUTPUT_CLOSED
        }
        Outcome::Failed => {
            errln!(
                "error: {}",
                summary.error.as_deref().unwrap_or("the run failed")
            );
            EXIT_RUNTIME
        }
        Outcome::Interrupted => {
            errln!("interrupted: the run stopped early; everything read was committed");
            EXIT_INTERRUPTED
        }
        Outcome::Succeeded => EXIT_OK,
    }
}
