//! `flux-engine cluster up|status|down`: an EMR cluster from a cluster file (docs/cluster.md).
//!
//! This module is the command line (the arguments of each subcommand) and what the subcommands
//! share: loading the cluster file, the runtime, finding the cluster. Each workflow is a module
//! of its own: `up`, `status`, `down`.

mod down;
mod status;
mod up;

use clap::{Args, Subcommand};
use flux_stages::aws::AwsSettings;
use flux_stages::units::HumanDuration;

use super::{EXIT_INVALID, EXIT_RUNTIME, VarArgs, print_diagnostics};
use crate::cluster as emr;
use crate::cluster::file::{self, ClusterFile};
use down::down;
use status::status;
use up::up;

#[derive(Args, Debug)]
pub(crate) struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Upload the generated scripts and launch the cluster (RunJobFlow with the DDL steps).
    Up(UpArgs),
    /// Show a cluster: state, master, steps, how to reach Drill's web UI.
    Status(WhichArgs),
    /// Terminate a cluster.
    Down(WhichArgs),
}

#[derive(Args, Debug)]
struct UpArgs {
    /// The cluster file.
    file: String,
    #[command(flatten)]
    vars: VarArgs,
    /// Print the RunJobFlow request as JSON; upload and launch nothing.
    #[arg(long)]
    dry_run: bool,
    /// Wait until the cluster is WAITING or RUNNING (or fails).
    #[arg(long)]
    wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "45m")]
    timeout: HumanDuration,
    /// How often --wait asks.
    #[arg(long, default_value = "30s")]
    poll_interval: HumanDuration,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["file", "id"]))]
struct WhichArgs {
    /// The cluster file (the cluster is found by its name and tag).
    file: Option<String>,
    /// The cluster id, `j-…`.
    #[arg(long)]
    id: Option<String>,
    #[command(flatten)]
    vars: VarArgs,
}

pub(crate) fn cluster(args: ClusterArgs) -> i32 {
    match args.command {
        ClusterCommand::Up(a) => up(a),
        ClusterCommand::Status(a) => status(a),
        ClusterCommand::Down(a) => down(a),
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            errln!("error: cannot start the runtime: {e}");
            None
        }
    }
}

fn load(path: &str, vars: &VarArgs) -> Result<ClusterFile, i32> {
    let overrides = vars.overrides().map_err(|e| {
        errln!("error: {e}");
        EXIT_INVALID
    })?;
    file::load_file(path, &overrides).map_err(|diags| {
        print_diagnostics(&diags);
        errln!("{path}: {} error(s)", diags.len());
        EXIT_INVALID
    })
}

/// The cluster id and the AWS settings for status/down.
async fn which(
    args: &WhichArgs,
) -> Result<(aws_sdk_emr::Client, String, Option<ClusterFile>), i32> {
    let f = match &args.file {
        Some(path) => Some(load(path, &args.vars)?),
        None => None,
    };
    let aws = f
        .as_ref()
        .map(|f| f.aws.clone())
        .unwrap_or_else(AwsSettings::default);
    let client = emr::client(&aws).await;
    let id = match (&args.id, &f) {
        (Some(id), _) => id.clone(),
        (None, Some(f)) => emr::find_one(&client, &f.cluster.name).await.map_err(|e| {
            errln!("error: {e}");
            EXIT_RUNTIME
        })?,
        (None, None) => unreachable!("clap requires FILE or --id"),
    };
    Ok((client, id, f))
}
