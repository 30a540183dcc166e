//! `flux-engine lease release <archive-url> --stream S [--force]`: the operator's release of a
//! stream's archive lease (see docs/archive.md, "Releasing a lease by hand").

use clap::{Args, Subcommand};
use flux_stages::archive::lease::{self, ManualRelease};
use flux_stages::aws::AwsSettings;
use flux_stages::names::StreamName;
use flux_stages::store::{self, StoreOptions};

use super::{EXIT_INVALID, EXIT_OK, EXIT_RUNTIME};

/// `flux-engine lease …`.
#[derive(Args, Debug)]
pub(crate) struct LeaseArgs {
    #[command(subcommand)]
    command: LeaseCommand,
}

#[derive(Subcommand, Debug)]
enum LeaseCommand {
    /// Release a stream's archive lease: a lapsed one always, a live one only with --force.
    Release(ReleaseArgs),
}

#[derive(Args, Debug)]
struct ReleaseArgs {
    /// The archive root: s3://bucket/prefix, file:///abs/dir or a path.
    archive: String,
    /// The stream whose lease to release.
    #[arg(long)]
    stream: String,
    /// Release the lease even while its holder is alive and renewing it. That run then stops at
    /// its next renewal or commit (nothing is lost or archived twice), and another archiver can
    /// start at once.
    #[arg(long)]
    force: bool,
    /// AWS region for s3:// archives (default: the environment or profile).
    #[arg(long)]
    region: Option<String>,
    /// AWS profile for s3:// archives.
    #[arg(long)]
    profile: Option<String>,
    /// Endpoint URL for s3:// archives (an emulator, MinIO, a VPC endpoint).
    #[arg(long)]
    endpoint: Option<String>,
}

pub(crate) fn lease(args: LeaseArgs) -> i32 {
    let LeaseCommand::Release(a) = args.command;
    let stream = match StreamName::parse(&a.stream) {
        Ok(s) => s,
        Err(e) => {
            errln!("error: --stream: {e}");
            return EXIT_INVALID;
        }
    };
    let options = StoreOptions {
        aws: AwsSettings {
            region: a.region.clone(),
            profile: a.profile.clone(),
            endpoint: a.endpoint.clone(),
            max_attempts: None,
        },
        ..Default::default()
    };
    let store = match store::open_with(&a.archive, &options) {
        Ok(s) => s,
        Err(e) => {
            errln!("error: {e}");
            return EXIT_INVALID;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errln!("error: cannot start the runtime: {e}");
            return EXIT_RUNTIME;
        }
    };
    match rt.block_on(lease::release_manually(&store, &stream, a.force)) {
        Ok(ManualRelease::NotHeld) => {
            errln!("stream {stream}: no lease is held in {}", store.url());
            EXIT_OK
        }
        Ok(ManualRelease::Lapsed(h)) => {
            errln!(
                "stream {stream}: released the lease of run {} (pipeline {}), which had lapsed at {}",
                h.run_id,
                h.pipeline,
                h.expires_at
            );
            EXIT_OK
        }
        Ok(ManualRelease::Forced(h)) => {
            errln!(
                "stream {stream}: released the live lease of run {} (pipeline {}, held until {}); that run stops at its next renewal or commit",
                h.run_id,
                h.pipeline,
                h.expires_at
            );
            EXIT_OK
        }
        Err(e) => {
            errln!("error: {e}");
            EXIT_RUNTIME
        }
    }
}
