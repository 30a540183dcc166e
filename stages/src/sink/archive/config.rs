//! The `archive` sink's settings.

use super::*;
use crate::problems::Problems;

/// Writes records to an archive, one gzip JSON Lines object per shard and hour (or less).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveSinkConfig {
    /// The archive root: `file:///abs/dir`, `file://./rel/dir` or a plain path.
    pub url: String,
    /// Roll an object after this many records. Default 500000.
    #[serde(default = "default_max_records")]
    #[schemars(range(min = 1))]
    pub max_records: u64,
    /// Roll an object after this many uncompressed bytes. Default "128MiB".
    #[serde(default = "default_max_bytes")]
    pub max_bytes: Size,
    /// Roll an object once it has been open this long (wall-clock time since its first record),
    /// so a quiet shard's records reach the archive within this delay. No limit by default;
    /// with `stop = "never"` objects are rolled at every checkpoint barrier anyway.
    #[serde(default)]
    pub max_age: Option<crate::units::HumanDuration>,
    /// Roll an object whenever the `window` annotation (`{start, end}`, from a `window`
    /// transform upstream) changes, so each object holds the records of one window of one
    /// shard. Needs each shard's records in sequence order (tumbling windows on arrival time);
    /// a record going back stops the run. Default false.
    #[serde(default)]
    pub roll_per_window: bool,
    /// gzip level, 0 (none) to 9 (smallest). Default 6.
    #[serde(default = "default_level")]
    #[schemars(range(min = 0, max = 9))]
    pub gzip_level: u32,
    /// How to reach S3 (region, profile, endpoint) for `s3://` URLs.
    #[serde(default)]
    pub aws: crate::aws::AwsSettings,
    /// How long the archive lease (one archiver per stream) lasts without renewal; a run that
    /// died holds the stream this long. Default "5m".
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl: crate::units::HumanDuration,
    /// Server-side encryption of written objects: `aws:kms`, `aws:kms:dsse` or `AES256`
    /// (default: the bucket's default encryption).
    #[serde(default)]
    pub sse: Option<String>,
    /// The KMS key (id, alias or ARN) for `sse = "aws:kms"`.
    #[serde(default)]
    pub kms_key_id: Option<String>,
}

/// The largest `max_bytes`: objects are promoted with one CopyObject (5 GB at most), and gzip
/// can add a little to incompressible input.
const MAX_OBJECT_BYTES: u64 = 4 << 30;

fn default_max_records() -> u64 {
    500_000
}
fn default_max_bytes() -> Size {
    Size::mib(128)
}
fn default_level() -> u32 {
    6
}
fn default_lease_ttl() -> crate::units::HumanDuration {
    crate::units::HumanDuration(std::time::Duration::from_secs(300))
}

/// Who is writing: recorded in checkpoints and the run manifest.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The run id.
    pub run_id: String,
    /// The pipeline name.
    pub pipeline: String,
    /// The sink's stage id.
    pub stage: String,
}

impl ArchiveSinkConfig {
    /// Checks the settings.
    pub fn check(&self, p: &mut Problems) {
        p.check("url", store::check_url(&self.url));
        if self.max_records == 0 {
            p.add("max_records", "`max_records` must be at least 1");
        }
        if self.max_age.is_some_and(|a| a.0.is_zero()) {
            p.add("max_age", "`max_age` must be longer than 0s");
        }
        if self.max_bytes.bytes() < 1024 {
            p.add("max_bytes", "`max_bytes` must be at least 1KiB");
        }
        if self.gzip_level > 9 {
            p.add("gzip_level", "`gzip_level` must be between 0 and 9");
        }
        if self.max_bytes.bytes() > MAX_OBJECT_BYTES {
            p.add(
                "max_bytes",
                "`max_bytes` must be at most 4GiB (objects are promoted with S3's CopyObject, which stops at 5 GB)",
            );
        }
        if self.lease_ttl.0 < std::time::Duration::from_secs(1) {
            p.add("lease_ttl", "`lease_ttl` must be at least 1s");
        }
        if let Some(sse) = &self.sse
            && !["aws:kms", "aws:kms:dsse", "AES256"].contains(&sse.as_str())
        {
            p.add(
                "sse",
                format!("`sse` must be \"aws:kms\", \"aws:kms:dsse\" or \"AES256\", not {sse:?}"),
            );
        }
        if self.kms_key_id.is_some()
            && !self
                .sse
                .as_deref()
                .is_some_and(|s| s.starts_with("aws:kms"))
        {
            p.add("kms_key_id", "`kms_key_id` needs `sse = \"aws:kms\"`");
        }
    }

    /// Builds the sink. `expected` names the streams the upstream sources read (see
    /// [`crate::registry::BuildContext::upstream_streams`]): each gets a run manifest, records
    /// or not. `shared` names those that several processes archive at once
    /// ([`crate::registry::BuildContext::shared_streams`]).
    pub fn build(
        &self,
        run: RunInfo,
        expected: Vec<String>,
        shared: Vec<String>,
    ) -> Result<Box<dyn Sink>, String> {
        Problems::first(|p| self.check(p))?;
        if let Some(why) = crate::names::name_problem(&run.run_id) {
            return Err(format!("the run id {why}"));
        }
        Ok(Box::new(ArchiveSink {
            store: store::open_with(
                &self.url,
                &store::StoreOptions {
                    aws: self.aws.clone(),
                    encryption: store::s3::Encryption {
                        sse: self.sse.clone(),
                        kms_key_id: self.kms_key_id.clone(),
                    },
                },
            )?,
            config: self.clone(),
            run,
            started_at: Utc::now(),
            streams: HashMap::new(),
            writers: HashMap::new(),
            skipped: crate::stage::Skipped::default(),
            written: HashMap::new(),
            compress: Default::default(),
            expected,
            shared: shared.into_iter().map(Arc::from).collect(),
            fresh: Default::default(),
        }))
    }
}

impl crate::registry::StageKind for ArchiveSinkConfig {
    fn validate(&self, p: &mut crate::problems::Problems) {
        self.check(p)
    }

    fn build(
        &self,
        ctx: &crate::registry::BuildContext,
    ) -> Result<crate::registry::BuiltStage, String> {
        if ctx.dry_run {
            return Err(
                "the archive sink has no dry run; --dry-run works with kinesis and file sinks"
                    .into(),
            );
        }
        let run = RunInfo {
            run_id: ctx.run_id.clone(),
            pipeline: ctx.pipeline.clone(),
            stage: ctx.stage.clone(),
        };
        ArchiveSinkConfig::build(
            self,
            run,
            ctx.upstream_streams.clone(),
            ctx.shared_streams.clone(),
        )
        .map(crate::registry::BuiltStage::Sink)
    }

    fn place(&self) -> Option<Result<crate::registry::Place, String>> {
        Some(
            crate::store::locate(&self.url, self.aws.endpoint.as_deref())
                .map(crate::registry::Place::Archive)
                .map_err(String::from),
        )
    }
}
