//! The `kinesis` source's settings.

use super::*;
use crate::problems::Problems;

/// Where each shard starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// The oldest record still in the stream.
    #[default]
    TrimHorizon,
    /// Only records that arrive after the run starts.
    Latest,
    /// Records that arrived at or after `timestamp`.
    AtTimestamp,
    /// Just after the last archived record of each shard (from `checkpoints`); shards never
    /// archived start at the trim horizon.
    Checkpoint,
}

/// When the source ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StopAt {
    /// When every open shard is caught up and every closed shard was read to its end.
    #[default]
    CaughtUp,
    /// Never (until Ctrl-C): a continuous archiver.
    Never,
}

/// Reads records from a Kinesis data stream.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KinesisSourceConfig {
    /// The stream's name or ARN.
    pub stream: String,
    /// Only these shards (and, after resharding, their descendants); all when absent.
    #[serde(default)]
    pub shards: Option<Vec<String>>,
    /// `trim_horizon` (default), `latest`, `at_timestamp` or `checkpoint`.
    #[serde(default)]
    pub start: StartAt,
    /// The time for `start = "at_timestamp"`.
    #[serde(default)]
    pub timestamp: Option<Timestamp>,
    /// The archive whose checkpoints `start = "checkpoint"` resumes from (`s3://…`, `file://…`).
    #[serde(default)]
    pub checkpoints: Option<String>,
    /// `caught_up` (default) or `never`.
    #[serde(default)]
    pub stop: StopAt,
    /// Records per GetRecords call, at most 10000 (the default).
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 10000))]
    pub limit: i32,
    /// Least time between two GetRecords calls on one shard. Default "200ms".
    #[serde(default = "default_poll")]
    pub poll_interval: HumanDuration,
    /// Time between calls on a shard that returned nothing. Default "1s".
    #[serde(default = "default_idle")]
    pub idle_interval: HumanDuration,
    /// With `stop = "never"`: how often downstream stages checkpoint. Default "1m".
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: HumanDuration,
    /// With `start = "checkpoint"`: archive what is left even when records expired between a
    /// shard's checkpoint and the oldest record still in the stream (a gap). The gap is recorded
    /// in the archive under `_flux/gaps/`. Default false: the run refuses to start.
    #[serde(default)]
    pub allow_gaps: bool,
    /// Split KPL-aggregated records into their user records (each with its own partition key
    /// and a `sub_sequence_number`), as the KCL does. A corrupt aggregate goes to the
    /// dead-letter route. Default true; false passes aggregates on as single records.
    #[serde(default = "default_true")]
    pub deaggregate: bool,
    /// `single` (default): this process reads every shard. `shared`: several processes
    /// running this pipeline share the shards (needs `start = "checkpoint"`).
    #[serde(default)]
    pub workers: WorkersMode,
    /// With `workers = "shared"`: how long a shard lease (and a worker's heartbeat) lasts
    /// unless renewed; renewed every third of it. A worker that dies leaves its shards to the
    /// others after at most this long. Default "1m".
    #[serde(default = "default_shard_lease_ttl")]
    pub lease_ttl: HumanDuration,
    /// Region, profile, endpoint.
    #[serde(default)]
    pub aws: AwsSettings,
}

/// How many archiver processes read the stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkersMode {
    /// One process reads every shard; the archive sink holds a lease on the whole stream.
    #[default]
    Single,
    /// Several processes share the shards: each shard is leased to one of them at a time, in
    /// the `checkpoints` archive (docs/archive.md, "Several workers on one stream").
    Shared,
}

fn default_true() -> bool {
    true
}
fn default_limit() -> i32 {
    10_000
}
fn default_poll() -> HumanDuration {
    HumanDuration(Duration::from_millis(200))
}
fn default_idle() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
fn default_shard_lease_ttl() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}
fn default_checkpoint_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

impl KinesisSourceConfig {
    /// Checks the settings.
    pub fn check(&self, p: &mut Problems) {
        p.check(
            "stream",
            crate::names::check_configured_stream(&self.stream),
        );
        for shard in self.shards.iter().flatten() {
            p.check("shards", crate::names::ShardId::parse(shard));
        }
        if !(1..=10_000).contains(&self.limit) {
            p.add("limit", "`limit` must be between 1 and 10000");
        }
        match self.start {
            StartAt::AtTimestamp if self.timestamp.is_none() => p.add(
                "timestamp",
                "`timestamp` is required with start = \"at_timestamp\"",
            ),
            StartAt::Checkpoint if self.checkpoints.is_none() => p.add(
                "checkpoints",
                "`checkpoints` (the archive URL) is required with start = \"checkpoint\"",
            ),
            _ => {}
        }
        if self.checkpoint_interval.0.is_zero() {
            p.add(
                "checkpoint_interval",
                "`checkpoint_interval` must be longer than 0s",
            );
        }
        if let Some(url) = &self.checkpoints {
            p.check("checkpoints", store::check_url(url));
        }
        if self.workers == WorkersMode::Shared && self.start != StartAt::Checkpoint {
            p.add(
                "workers",
                "workers = \"shared\" needs start = \"checkpoint\" (and `checkpoints`): shared workers hand shards over through the archive's checkpoints",
            );
        }
        if self.lease_ttl.0 < Duration::from_secs(1) {
            p.add("lease_ttl", "`lease_ttl` must be at least 1s");
        }
    }

    /// The stream's name (the last part of an ARN).
    pub fn stream_name(&self) -> &str {
        match self.stream.rsplit_once(":stream/") {
            Some((_, name)) => name,
            None => &self.stream,
        }
    }
}

impl crate::registry::StageKind for KinesisSourceConfig {
    fn validate(&self, p: &mut crate::problems::Problems) {
        self.check(p)
    }

    fn build(
        &self,
        ctx: &crate::registry::BuildContext,
    ) -> Result<crate::registry::BuiltStage, String> {
        Problems::first(|p| self.check(p))?;
        Ok(crate::registry::BuiltStage::Source(Box::new(
            KinesisSource {
                config: self.clone(),
                run_id: ctx.run_id.clone(),
                pipeline: ctx.pipeline.clone(),
            },
        )))
    }

    /// Also when configured by ARN.
    fn source_stream(&self) -> Option<&str> {
        Some(self.stream_name())
    }

    fn shared_archive(&self) -> Option<Result<crate::registry::Place, String>> {
        if self.workers != WorkersMode::Shared {
            return None;
        }
        let url = self.checkpoints.as_deref()?;
        Some(
            store::locate(url, self.aws.endpoint.as_deref())
                .map(crate::registry::Place::Archive)
                .map_err(String::from),
        )
    }
}
