//! The `archive` source's settings.

use super::*;
use crate::problems::Problems;

/// Reads the records of one stream from an archive (a local directory or, later, S3).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveSourceConfig {
    /// The archive root: `file:///abs/dir`, `file://./rel/dir` or a plain path.
    pub url: String,
    /// The stream to read.
    pub stream: String,
    /// Only records that arrived at or after this time (RFC 3339).
    #[serde(default)]
    pub from: Option<Timestamp>,
    /// Only records that arrived before this time (RFC 3339, exclusive).
    #[serde(default)]
    pub to: Option<Timestamp>,
    /// Only these shards (e.g. `["shardId-000000000001"]`); all when absent.
    #[serde(default)]
    pub shards: Option<Vec<String>>,
    /// Per-shard sequence bounds, inclusive at both ends, e.g.
    /// `sequences = { "shardId-000000000001" = { from = "4959…", to = "4960…" } }`. Shards not
    /// named are not bounded by sequence (use `shards` to read only some shards).
    #[serde(default)]
    pub sequences: std::collections::BTreeMap<String, SequenceRange>,
    /// Output order: `arrival` (default; shards merged by arrival time), `shard` (one shard
    /// after another) or `interleaved` (shards read at once, batches sent as ready). Each
    /// shard's records are in sequence order in every case.
    #[serde(default)]
    pub order: Order,
    /// Stop after this many records (after bounds, in output order).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub limit: Option<u64>,
    /// Batches read ahead per shard. Default 2.
    #[serde(default = "default_prefetch")]
    #[schemars(range(min = 1))]
    pub prefetch: usize,
    /// Records per batch. Default 1024.
    #[serde(default = "default_batch")]
    #[schemars(range(min = 1))]
    pub batch_records: usize,
    /// How to reach S3 (region, profile, endpoint) for `s3://` URLs.
    #[serde(default)]
    pub aws: crate::aws::AwsSettings,
    /// Shards read at the same time (each shard's objects in order). Default: the number of
    /// CPUs.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub concurrency: Option<usize>,
    /// Leave out the fences earlier replays wrote into the stream (and so into its archive;
    /// docs/replay-protocol.md), counted as skipped. Default false: the archive as it is. The
    /// replay template sets it: a fence is not a record to replay.
    #[serde(default)]
    pub skip_fences: bool,
    /// The payload member the replay protocol uses. Default `_flux` (as `annotate`'s `under`).
    #[serde(default = "default_under")]
    pub under: String,
}

fn default_under() -> String {
    crate::replay::DEFAULT_KEY.into()
}

fn default_batch() -> usize {
    1024
}
fn default_prefetch() -> usize {
    2
}

/// The order records leave the `archive` source in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// All shards merged by arrival time (ties: shard id order).
    #[default]
    Arrival,
    /// One shard after another, in shard id order.
    Shard,
    /// Shards read at the same time (`concurrency` at once), their batches sent as they are
    /// ready: each shard's records in sequence order, shards interleaved in no set order. The
    /// fastest order, for stages that need no cross-shard order (`compact`, `filter` into a
    /// file).
    Interleaved,
}

/// An inclusive range of sequence numbers of one shard.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SequenceRange {
    /// The first sequence number to read (inclusive); from the shard's start when absent.
    #[serde(default)]
    pub from: Option<String>,
    /// The last sequence number to read (inclusive); to the shard's end when absent.
    #[serde(default)]
    pub to: Option<String>,
}

impl SequenceRange {
    pub(super) fn parse(&self, shard: &str) -> Result<SeqBounds, String> {
        let one = |v: &Option<String>, key: &str| {
            v.as_deref()
                .map(SequenceNumber::parse)
                .transpose()
                .map_err(|e| format!("`sequences.{shard}.{key}`: {e}"))
        };
        let (from, to) = (one(&self.from, "from")?, one(&self.to, "to")?);
        if let (Some(f), Some(t)) = (&from, &to)
            && f > t
        {
            return Err(format!(
                "`sequences.{shard}`: `from` ({f}) is after `to` ({t})"
            ));
        }
        Ok((from, to))
    }
}

impl ArchiveSourceConfig {
    /// Checks bounds and the URL.
    pub fn check(&self, p: &mut Problems) {
        p.check("url", store::check_url(&self.url));
        p.check("stream", StreamName::parse(&self.stream));
        for shard in self.shards.iter().flatten() {
            p.check("shards", crate::names::ShardId::parse(shard));
        }
        for shard in self.sequences.keys() {
            p.check("sequences", crate::names::ShardId::parse(shard));
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from >= to
        {
            p.add(
                "from",
                format!(
                    "`from` ({}) must be before `to` ({})",
                    crate::record::format_ts(&from.0),
                    crate::record::format_ts(&to.0)
                ),
            );
        }
        if self.batch_records == 0 {
            p.add("batch_records", "`batch_records` must be at least 1");
        }
        if self.under.is_empty() {
            p.add(
                "under",
                "`under` must name the replay protocol's payload member, e.g. \"_flux\"",
            );
        }
        if self.concurrency == Some(0) {
            p.add("concurrency", "`concurrency` must be at least 1");
        }
        if self.prefetch == 0 {
            p.add("prefetch", "`prefetch` must be at least 1");
        }
        if self.limit == Some(0) {
            p.add(
                "limit",
                "`limit` must be at least 1 (leave it out to read everything)",
            );
        }
        for (shard, range) in &self.sequences {
            p.check_as_is("sequences", range.parse(shard));
        }
    }

    /// Builds the source; `prefilter` is a pushed-down filter's raw-bytes pre-check (see
    /// [`crate::registry::BuildContext::pushdown`]), `probe` the payload paths to note on every
    /// record ([`crate::registry::BuildContext::probe`]).
    pub fn build(
        &self,
        prefilter: Option<crate::expr::Prefilter>,
        probe: Option<crate::json::probe::PayloadProbe>,
    ) -> Result<Box<dyn Source>, String> {
        Problems::first(|p| self.check(p))?;
        Ok(Box::new(ArchiveSource {
            store: store::open_with(
                &self.url,
                &store::StoreOptions {
                    aws: self.aws.clone(),
                    ..Default::default()
                },
            )?,
            config: self.clone(),
            prefilter: prefilter.filter(crate::expr::Prefilter::is_useful),
            probe,
        }))
    }
}

impl crate::registry::StageKind for ArchiveSourceConfig {
    fn validate(&self, p: &mut crate::problems::Problems) {
        self.check(p)
    }

    fn build(
        &self,
        ctx: &crate::registry::BuildContext,
    ) -> Result<crate::registry::BuiltStage, String> {
        ArchiveSourceConfig::build(self, ctx.pushdown.clone(), ctx.probe.clone())
            .map(crate::registry::BuiltStage::Source)
    }

    fn source_stream(&self) -> Option<&str> {
        Some(&self.stream)
    }

    fn place(&self) -> Option<Result<crate::registry::Place, String>> {
        Some(
            store::locate(&self.url, self.aws.endpoint.as_deref())
                .map(crate::registry::Place::Archive)
                .map_err(String::from),
        )
    }

    fn accepts_pushdown(&self) -> bool {
        true
    }

    /// An arrival-order read keeps one reader thread per shard open at once.
    fn resources(&self) -> crate::registry::Resources {
        crate::registry::Resources {
            blocking_threads: BLOCKING_THREADS,
        }
    }
}
