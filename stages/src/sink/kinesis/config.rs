//! The `kinesis` sink's configuration, its checks, and the per-record key expressions.

use schemars::JsonSchema;
use serde::Deserialize;

use super::batch::{MAX_BATCH_BYTES, MAX_BATCH_RECORDS};
use crate::aws::AwsSettings;
use crate::expr::ValuePath;
use crate::problems::Problems;
use crate::record::Record;
use crate::replay::{DEFAULT_KEY, ReplayMode};
use crate::units::Size;

/// Writes records to a Kinesis data stream with PutRecords (a replay), with the replay
/// protocol's fences by default.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KinesisSinkConfig {
    /// The target stream's name or ARN.
    pub stream: String,
    /// The partition key to send: a JSONPath into the record view (`$.data.order_id`,
    /// `$.partition_key`) or a template (`"{{ record.data.customer }}"`). Default: the record's
    /// original partition key.
    #[serde(default)]
    pub partition_key: Option<String>,
    /// An explicit hash key (decimal, 0 to 2^128-1) choosing the shard instead of the partition
    /// key's MD5: a constant, a JSONPath or a template. Default: none.
    #[serde(default)]
    pub explicit_hash_key: Option<String>,
    /// Records per second per target shard. Default 800 (80% of Kinesis' 1000).
    #[serde(default = "default_rps")]
    #[schemars(range(min = 1))]
    pub records_per_second_per_shard: u32,
    /// Bytes per second per target shard. Default "800KB" (80% of Kinesis' 1 MB/s).
    #[serde(default = "default_bps")]
    pub bytes_per_second_per_shard: Size,
    /// The replay's id (usually a template variable such as the incident id). Required when
    /// `fences` is on; every record must carry a replay annotation with this id.
    #[serde(default)]
    pub replay_id: Option<String>,
    /// `fill` or `overwrite`, as in the records' replay annotation. Required when `fences` is on.
    #[serde(default)]
    pub mode: Option<ReplayMode>,
    /// Write the replay protocol's opening and closing fences to every open shard, and refuse
    /// records without the replay annotation. Default true; false makes a plain replay whose
    /// records consumers take for new live writes.
    #[serde(default = "default_true")]
    pub fences: bool,
    /// The payload key of the protocol's members. Default `_flux` (as `annotate`'s `under`).
    #[serde(default = "default_under")]
    pub under: String,
    /// Most records per PutRecords call, 1 to 500 (the default).
    #[serde(default = "default_batch_records")]
    #[schemars(range(min = 1, max = 500))]
    pub max_batch_records: usize,
    /// Most bytes (data plus partition keys) per PutRecords call, up to "5MiB" (the default).
    #[serde(default = "default_batch_bytes")]
    pub max_batch_bytes: Size,
    /// Fail the run when the sink receives no record at all (before any fence is written):
    /// for replays, where nothing to send usually means a wrong window, stream or filter.
    /// Default false.
    #[serde(default)]
    pub require_records: bool,
    /// Region, profile, endpoint.
    #[serde(default)]
    pub aws: AwsSettings,
}

fn default_rps() -> u32 {
    800
}
fn default_bps() -> Size {
    Size(800_000)
}
fn default_true() -> bool {
    true
}
fn default_under() -> String {
    DEFAULT_KEY.into()
}
fn default_batch_records() -> usize {
    MAX_BATCH_RECORDS
}
fn default_batch_bytes() -> Size {
    Size(MAX_BATCH_BYTES as u64)
}

impl KinesisSinkConfig {
    /// A target shard's rate limiter at the configured records and bytes per second.
    pub fn shard_rate(&self, now: tokio::time::Instant) -> super::rate::ShardRate {
        super::rate::ShardRate::new(
            f64::from(self.records_per_second_per_shard),
            self.bytes_per_second_per_shard.bytes() as f64,
            now,
        )
    }

    /// Checks the settings; the message names the key.
    pub fn check(&self, p: &mut Problems) {
        p.check(
            "stream",
            crate::names::check_configured_stream(&self.stream),
        );
        if !(1..=MAX_BATCH_RECORDS).contains(&self.max_batch_records) {
            p.add(
                "max_batch_records",
                format!(
                    "`max_batch_records` must be between 1 and {MAX_BATCH_RECORDS} (the PutRecords limit), not {}",
                    self.max_batch_records
                ),
            );
        }
        let bytes = self.max_batch_bytes.bytes();
        if !(1024..=MAX_BATCH_BYTES as u64).contains(&bytes) {
            p.add(
                "max_batch_bytes",
                format!(
                    "`max_batch_bytes` must be between 1KiB and 5MiB (the PutRecords limit), not {}",
                    self.max_batch_bytes
                ),
            );
        }
        if self.records_per_second_per_shard == 0 {
            p.add(
                "records_per_second_per_shard",
                "`records_per_second_per_shard` must be at least 1",
            );
        }
        if self.bytes_per_second_per_shard.bytes() < 1024 {
            p.add(
                "bytes_per_second_per_shard",
                "`bytes_per_second_per_shard` must be at least 1KiB",
            );
        }
        if self.under.is_empty() {
            p.add("under", "`under` must not be empty");
        }
        if self.fences {
            match &self.replay_id {
                None => p.add(
                    "replay_id",
                    "`replay_id` is required with fences = true (the default); set it to the replay's id, e.g. \"{{ incident }}\", or set fences = false for a plain replay",
                ),
                Some(id) if id.trim().is_empty() => {
                    p.add("replay_id", "`replay_id` must not be empty")
                }
                _ => {}
            }
            if self.mode.is_none() {
                p.add(
                    "mode",
                    "`mode` (\"fill\" or \"overwrite\") is required with fences = true (the default)",
                );
            }
        }
        p.check_as_is(
            "partition_key",
            KeyExpr::compile("partition_key", self.partition_key.as_deref()),
        );
        p.check_as_is(
            "explicit_hash_key",
            KeyExpr::compile("explicit_hash_key", self.explicit_hash_key.as_deref()),
        );
    }

    /// The stream's name (the last part of an ARN).
    pub fn stream_name(&self) -> &str {
        match self.stream.rsplit_once(":stream/") {
            Some((_, name)) => name,
            None => &self.stream,
        }
    }
}

/// A per-record value: a constant, a JSONPath into the record view or a template.
pub enum KeyExpr {
    /// The same for every record.
    Constant(String),
    /// `$.…` over `{stream, shard_id, sequence_number, partition_key, arrival_ts, data}`.
    Path(ValuePath),
    /// A minijinja template with `record` = the record view.
    Template(Box<minijinja::Environment<'static>>),
}

impl KeyExpr {
    /// Compiles the value of key `name`; `None` when absent.
    pub fn compile(name: &str, text: Option<&str>) -> Result<Option<KeyExpr>, String> {
        let Some(text) = text else { return Ok(None) };
        if text.contains("{{") || text.contains("{%") {
            let mut env = minijinja::Environment::new();
            env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
            env.add_template_owned("key", text.to_owned())
                .map_err(|e| format!("`{name}`: invalid template: {e}"))?;
            Ok(Some(KeyExpr::Template(Box::new(env))))
        } else if text.trim_start().starts_with('$') {
            Ok(Some(KeyExpr::Path(
                ValuePath::compile(text).map_err(|e| format!("`{name}`: {e}"))?,
            )))
        } else if name == "explicit_hash_key" {
            super::shards::parse_hash_key(text).map_err(|e| format!("`{name}`: {e}"))?;
            Ok(Some(KeyExpr::Constant(text.trim().to_owned())))
        } else {
            Err(format!(
                "`{name}` must be a JSONPath (\"$.data.order_id\") or a template (\"{{{{ record.data.order_id }}}}\"); leave it out to keep each record's own key"
            ))
        }
    }

    /// The value for `record`; `None` when a path selects nothing.
    pub fn eval(&self, record: &Record) -> Result<Option<String>, String> {
        match self {
            KeyExpr::Constant(c) => Ok(Some(c.clone())),
            KeyExpr::Path(p) => Ok(crate::transform::compact::key::exact::record_key(p, record)),
            KeyExpr::Template(env) => {
                let view = record.view(record.data_view());
                let ctx = minijinja::context! { record => minijinja::Value::from(minijinja::value::Serde(view)) };
                env.get_template("key")
                    .and_then(|t| t.render(ctx))
                    .map(Some)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(json: serde_json::Value) -> KinesisSinkConfig {
        serde_json::from_value(json).unwrap()
    }

    fn config(extra: serde_json::Value) -> Result<KinesisSinkConfig, String> {
        let mut base =
            serde_json::json!({"stream": "orders", "replay_id": "INC-7", "mode": "overwrite"});
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let c = parse(base);
        crate::problems::Problems::first(|p| c.check(p)).map(|_| c)
    }

    #[test]
    fn defaults_and_limits() {
        let c = config(json!({})).unwrap();
        assert_eq!(c.records_per_second_per_shard, 800);
        assert_eq!(c.bytes_per_second_per_shard.bytes(), 800_000);
        assert_eq!(c.max_batch_records, 500);
        assert_eq!(c.max_batch_bytes.bytes(), 5 * 1024 * 1024);
        assert!(c.fences);
        assert!(
            config(json!({"max_batch_records": 501}))
                .unwrap_err()
                .contains("between 1 and 500")
        );
        assert!(
            config(json!({"max_batch_bytes": "6MiB"}))
                .unwrap_err()
                .contains("5MiB")
        );
        assert!(config(json!({"records_per_second_per_shard": 0})).is_err());
        assert!(
            config(json!({"partition_key": "order_id"}))
                .unwrap_err()
                .contains("JSONPath")
        );
        assert!(config(json!({"explicit_hash_key": "abc"})).is_err());
        assert!(config(json!({"explicit_hash_key": "12"})).is_ok());
    }

    #[test]
    fn fences_need_an_id_and_a_mode() {
        let no_id: KinesisSinkConfig = parse(json!({"stream": "s", "mode": "fill"}));
        assert!(
            crate::problems::Problems::first(|p| no_id.check(p))
                .unwrap_err()
                .contains("`replay_id` is required")
        );
        let no_mode: KinesisSinkConfig = parse(json!({"stream": "s", "replay_id": "x"}));
        assert!(
            crate::problems::Problems::first(|p| no_mode.check(p))
                .unwrap_err()
                .contains("`mode`")
        );
        let plain: KinesisSinkConfig = parse(json!({"stream": "s", "fences": false}));
        assert!(crate::problems::Problems::first(|p| plain.check(p)).is_ok());
    }

    #[test]
    fn keys_from_paths_and_templates() {
        let r =
            super::super::batch::tests::record(1, "orig", br#"{"order_id":"o-1","n":7}"#.to_vec());
        let path = KeyExpr::compile("partition_key", Some("$.data.order_id"))
            .unwrap()
            .unwrap();
        assert_eq!(path.eval(&r).unwrap().as_deref(), Some("o-1"));
        let num = KeyExpr::compile("partition_key", Some("$.data.n"))
            .unwrap()
            .unwrap();
        assert_eq!(num.eval(&r).unwrap().as_deref(), Some("7"));
        let none = KeyExpr::compile("partition_key", Some("$.data.missing"))
            .unwrap()
            .unwrap();
        assert_eq!(none.eval(&r).unwrap(), None);
        let t = KeyExpr::compile(
            "partition_key",
            Some("{{ record.partition_key }}-{{ record.data.order_id }}"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.eval(&r).unwrap().as_deref(), Some("orig-o-1"));
    }
}
