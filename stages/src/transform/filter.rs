//! `filter` transform: keeps the records a JSONPath filter expression matches.
//!
//! ```toml
//! [transforms.big_cancellations]
//! type = "filter"
//! inputs = ["archive"]
//! where = "@.data.status == 'cancelled' && @.data.total > 100"
//! ```
//!
//! `@` is the record's envelope view `{stream, shard_id, sequence_number, partition_key,
//! arrival_ts, data}`; `data` is the parsed payload when it is JSON, else its text. The
//! expression is RFC 9535 filter syntax, evaluated with jsonpath-rust.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::expr::Predicate;
use crate::record::{Batch, Record};
use crate::stage::{Emit, Pass, RecordTransform};

/// A filter expression, compiled when the pipeline is loaded (so a bad one is a load error
/// pointing at its line).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct FilterExpr(pub Predicate);

impl TryFrom<String> for FilterExpr {
    type Error = crate::expr::ExprError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Predicate::compile(&s).map(FilterExpr)
    }
}

impl JsonSchema for FilterExpr {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FilterExpression".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "An RFC 9535 JSONPath filter expression over the record view, e.g. \"@.data.status == 'paid' && @.data.total > 100\"."
        })
    }
}

/// Keeps the records that match `where` (or, with `invert = true`, those that do not).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// The filter expression; `@` is the record view, e.g. `@.data.region == 'eu'`.
    #[serde(rename = "where")]
    pub condition: FilterExpr,
    /// Keep the records that do *not* match instead.
    #[serde(default)]
    pub invert: bool,
}

impl FilterConfig {
    /// Builds the transform.
    pub fn build(&self) -> Result<Box<dyn RecordTransform>, String> {
        Ok(Box::new(Filter {
            predicate: self.condition.0.clone(),
            invert: self.invert,
        }))
    }
}

/// The running `filter` transform.
pub struct Filter {
    predicate: Predicate,
    invert: bool,
}

impl Filter {
    /// True when the record is kept.
    pub fn keep(&self, record: &Record) -> bool {
        let matched = if !self.predicate.needs_data() {
            self.predicate.matches(record.view(serde_json::Value::Null))
        } else {
            // Decided on the payload's bytes where they tell (a missing literal, or a predicate
            // over simple payload paths), parsed otherwise.
            self.predicate
                .decide(&record.data)
                .unwrap_or_else(|| self.predicate.matches(record.view(record.data_view())))
        };
        matched != self.invert
    }
}

impl RecordTransform for Filter {
    fn process(&mut self, batch: &Arc<Batch>, emit: &mut Emit) -> anyhow::Result<Pass> {
        let keep: Vec<bool> = batch.iter().map(|r| self.keep(r)).collect();
        if keep.iter().all(|k| *k) {
            return Ok(Pass::Unchanged);
        }
        emit.records.extend(
            batch
                .iter()
                .zip(keep)
                .filter(|(_, k)| *k)
                .map(|(r, _)| r.clone()),
        );
        Ok(Pass::Emitted)
    }
}

impl crate::registry::StageKind for FilterConfig {
    fn build(
        &self,
        _: &crate::registry::BuildContext,
    ) -> Result<crate::registry::BuiltStage, String> {
        FilterConfig::build(self).map(crate::registry::BuiltStage::PerRecord)
    }

    /// A filter drops records or passes them as they are.
    fn forwards_records(&self) -> bool {
        true
    }

    fn pushdown_prefilter(&self) -> Option<crate::expr::Prefilter> {
        if self.invert {
            return None;
        }
        let pre = self.condition.0.prefilter();
        pre.is_useful().then(|| pre.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{SequenceNumber, ts_from_millis};

    fn rec(data: &str) -> Record {
        Record {
            stream: "orders".into(),
            shard_id: "shardId-000000000000".into(),
            sequence_number: SequenceNumber::from_u64(1),
            sub_sequence_number: None,
            partition_key: "k".into(),
            arrival_ts: ts_from_millis(0),
            data: bytes::Bytes::copy_from_slice(data.as_bytes()),
            annotations: None,
            probed: None,
        }
    }

    #[test]
    fn keeps_matching_records() {
        let cfg: FilterConfig = serde_json::from_str(
            r#"{"where": "@.data.status == 'cancelled' && @.data.total > 100"}"#,
        )
        .unwrap();
        let f = cfg.build().unwrap();
        let mut f = f;
        let batch = Arc::new(vec![
            rec(r#"{"status":"cancelled","total":150.5}"#),
            rec(r#"{"status":"cancelled","total":50}"#),
            rec(r#"{"status":"paid","total":500}"#),
            rec("not json cancelled"),
        ]);
        let mut emit = Emit::default();
        assert_eq!(f.process(&batch, &mut emit).unwrap(), Pass::Emitted);
        assert_eq!(emit.records.len(), 1);
        assert_eq!(
            emit.records[0].data.as_ref(),
            br#"{"status":"cancelled","total":150.5}"#
        );
    }

    #[test]
    fn invert_and_envelope_fields() {
        let cfg: FilterConfig =
            serde_json::from_str(r#"{"where": "@.partition_key == 'k'", "invert": true}"#).unwrap();
        let mut f = cfg.build().unwrap();
        let batch = Arc::new(vec![rec("{}")]);
        let mut emit = Emit::default();
        assert_eq!(f.process(&batch, &mut emit).unwrap(), Pass::Emitted);
        assert!(emit.records.is_empty());
    }

    #[test]
    fn bad_expression_fails_to_load() {
        let err =
            serde_json::from_str::<FilterConfig>(r#"{"where": "@.data.x === 1"}"#).unwrap_err();
        assert!(
            err.to_string().contains("invalid filter expression"),
            "{err}"
        );
    }
}
