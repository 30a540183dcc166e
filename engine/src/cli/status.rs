//! `flux-engine status <archive-url> [--stream S] [--json] [--kinesis]`: the health of an
//! archive (see docs/running.md, "status"). The report is made by
//! `flux_stages::archive::status`; this file reads the arguments, prints the report as a table
//! ([`super::status_table`]) or JSON, and turns it into the exit code: 0 healthy, 1 something
//! needs action, 2 usage errors and stores or endpoints that cannot be reached.

use clap::Args;
use flux_stages::archive::status::{self, StatusOptions, live::LiveOptions};
use flux_stages::aws::AwsSettings;
use flux_stages::names::StreamName;
use flux_stages::record::parse_ts;
use flux_stages::store::StoreOptions;
use flux_stages::units::HumanDuration;

use super::{EXIT_INVALID, EXIT_OK, EXIT_RUNTIME};

/// `flux-engine status …`.
#[derive(Args, Debug)]
pub(crate) struct StatusArgs {
    /// The archive root: s3://bucket/prefix, file:///abs/dir or a path.
    archive: String,
    /// Report only this stream (repeatable; default: every stream of the archive).
    #[arg(long = "stream", value_name = "STREAM")]
    streams: Vec<String>,
    /// Print the report as one JSON object (schema: docs/running.md, "status").
    #[arg(long)]
    json: bool,
    /// How many of each stream's latest run manifests to show.
    #[arg(long, default_value_t = 3, value_name = "N")]
    runs: usize,
    /// Also ask Kinesis: closed shards, lag behind the tip, time left before unarchived records
    /// expire (the streams of the archive by name).
    #[arg(long)]
    kinesis: bool,
    /// Records expiring from Kinesis within this need action (with --kinesis). Default: a
    /// quarter of the stream's retention period.
    #[arg(long, value_name = "DURATION")]
    expiry_margin: Option<String>,
    /// Gaps found at or before this time (RFC 3339) are listed but need no action.
    #[arg(long, value_name = "TIME")]
    ack_gaps_until: Option<String>,
    /// AWS region (S3 and Kinesis; default: the environment or profile).
    #[arg(long)]
    region: Option<String>,
    /// AWS profile.
    #[arg(long)]
    profile: Option<String>,
    /// Endpoint URL for s3:// archives (an emulator, MinIO, a VPC endpoint).
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// Endpoint URL for Kinesis (implies --kinesis).
    #[arg(long, value_name = "URL")]
    kinesis_endpoint: Option<String>,
}

fn usage(message: String) -> i32 {
    errln!("error: {message}");
    EXIT_INVALID
}

impl StatusArgs {
    fn options(&self) -> Result<(StoreOptions, StatusOptions), String> {
        let streams = self
            .streams
            .iter()
            .map(|s| StreamName::parse(s).map_err(|e| format!("--stream: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let margin = self
            .expiry_margin
            .as_deref()
            .map(|m| {
                m.parse::<HumanDuration>()
                    .map(|d| d.0)
                    .map_err(|e| format!("--expiry-margin: {e}"))
            })
            .transpose()?;
        let ack = self
            .ack_gaps_until
            .as_deref()
            .map(|t| {
                parse_ts(t).map_err(|e| {
                    format!("--ack-gaps-until: {e} (write a time like 2026-11-25T10:00:00Z)")
                })
            })
            .transpose()?;
        let aws = |endpoint: &Option<String>| AwsSettings {
            region: self.region.clone(),
            profile: self.profile.clone(),
            endpoint: endpoint.clone(),
            max_attempts: Some(3),
        };
        for (flag, url) in [
            ("--endpoint", &self.endpoint),
            ("--kinesis-endpoint", &self.kinesis_endpoint),
        ] {
            if let Some(u) = url
                && !(u.starts_with("http://") || u.starts_with("https://"))
            {
                return Err(format!("{flag}: {u:?} is not an http:// or https:// URL"));
            }
        }
        let kinesis = (self.kinesis || self.kinesis_endpoint.is_some()).then(|| LiveOptions {
            aws: aws(&self.kinesis_endpoint),
            expiry_margin: margin,
        });
        if margin.is_some() && kinesis.is_none() {
            return Err("--expiry-margin needs --kinesis (expiry is what Kinesis says)".into());
        }
        Ok((
            StoreOptions {
                aws: aws(&self.endpoint),
                ..Default::default()
            },
            StatusOptions {
                streams,
                runs: self.runs,
                gaps_acknowledged_until: ack,
                kinesis,
            },
        ))
    }
}

pub(crate) fn status(args: StatusArgs) -> i32 {
    let (store_options, options) = match args.options() {
        Ok(o) => o,
        Err(e) => return usage(e),
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
    let report = match rt.block_on(status::inspect(&args.archive, &store_options, &options)) {
        Ok(r) => r,
        Err(e) => return usage(format!("{e}")),
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => outln!("{text}"),
            Err(e) => {
                errln!("error: {e}");
                return EXIT_RUNTIME;
            }
        }
    } else {
        super::status_table::print(&report);
    }
    if report.healthy {
        EXIT_OK
    } else {
        EXIT_RUNTIME
    }
}
