//! `annotate` transform: adds fields under `_flux` (or `under`) in each JSON payload, and the
//! replay annotation of the replay protocol (DESIGN §5).
//!
//! ```toml
//! [transforms.mark]
//! type = "annotate"
//! inputs = ["latest"]
//! fields = { ticket = "INC-123", source_shard = "{{ record.shard_id }}" }
//! replay = { id = "INC-123", mode = "overwrite" }
//! ```
//!
//! A payload `{"order_id":"o-1"}` becomes
//! `{"order_id":"o-1","_flux":{"ticket":"INC-123",…,"replay":{"id":"INC-123","mode":"overwrite"},
//! "origin":{"stream":…,"shard_id":…,"sequence_number":…,"arrival_ts":…}}}`. The payload's own
//! bytes are kept as they are; the annotation is appended (or merged into an existing `_flux`
//! object). Payloads that are not JSON objects go to `dead_letter` (or stop the run).
//!
//! With `replay`, a record that is itself a replayed copy (an archive of a stream that received
//! replays holds them) keeps its `origin`: a copy of a copy is still a version of the record that
//! first arrived (docs/replay-protocol.md). A fence, or a payload whose protocol member is broken,
//! is not a record to replay: it goes to `dead_letter` with the reason (the `archive` source's
//! `skip_fences` leaves fences out before they get here).

use std::collections::BTreeMap;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::json::ObjectMembers;
use crate::problems::Problems;
use crate::record::{Batch, Record};
use crate::replay::{Marker, ReplayTag, Replayed, Version};
use crate::stage::{Emit, Pass, RecordTransform, Rejected};

pub use crate::replay::ReplayMode;

/// The replay annotation: marks records as replayed, with their origin.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaySpec {
    /// The replay's id, e.g. the incident ticket.
    pub id: String,
    /// `fill` or `overwrite`.
    pub mode: ReplayMode,
}

/// Adds annotations to JSON payloads.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnnotateConfig {
    /// Fields to add: constants (any TOML value) or strings with `{{ … }}` templates rendered per
    /// record, with `record` = `{stream, shard_id, sequence_number, partition_key, arrival_ts,
    /// data}`.
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
    /// The payload key the annotations go under. Default `_flux`.
    #[serde(default = "default_under")]
    pub under: String,
    /// Adds `replay = {id, mode}` and `origin = {stream, shard_id, sequence_number, arrival_ts}`.
    #[serde(default)]
    pub replay: Option<ReplaySpec>,
}

fn default_under() -> String {
    "_flux".into()
}

impl AnnotateConfig {
    /// Compiles templates and builds the transform.
    pub fn build(&self) -> Result<Box<dyn RecordTransform>, String> {
        Ok(Box::new(Annotate::new(self)?))
    }

    /// Checks the settings: a non-empty `under`, at least one annotation, templates that
    /// parse; every problem, with its key.
    pub fn check(&self, p: &mut Problems) {
        if self.under.is_empty() {
            p.add("under", "`under` must not be empty");
        }
        if self.fields.is_empty() && self.replay.is_none() {
            p.add_general("nothing to add: set `fields`, `replay`, or both");
        }
        let mut env = minijinja::Environment::new();
        for (name, value) in &self.fields {
            if let Some(template) = value.as_str().filter(|s| is_template(s))
                && let Err(e) = env.add_template_owned(name.clone(), template.to_owned())
            {
                p.add("fields", format!("fields.{name}: invalid template: {e}"));
            }
        }
    }
}

/// True when a field's value is a template rendered per record, not a constant.
fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

enum FieldValue {
    Constant(Value),
    Template(String),
}

/// The running `annotate` transform.
pub struct Annotate {
    under: String,
    fields: Vec<(String, FieldValue)>,
    replay: Option<ReplaySpec>,
    env: minijinja::Environment<'static>,
}

impl Annotate {
    fn new(cfg: &AnnotateConfig) -> Result<Annotate, String> {
        Problems::first(|p| cfg.check(p))?;
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        let mut fields = Vec::new();
        for (name, value) in &cfg.fields {
            let fv = match value {
                Value::String(s) if is_template(s) => {
                    env.add_template_owned(name.clone(), s.clone())
                        .map_err(|e| format!("fields.{name}: invalid template: {e}"))?;
                    FieldValue::Template(name.clone())
                }
                other => FieldValue::Constant(other.clone()),
            };
            fields.push((name.clone(), fv));
        }
        Ok(Annotate {
            under: cfg.under.clone(),
            fields,
            replay: cfg.replay.clone(),
            env,
        })
    }

    /// The annotation object for one record.
    fn annotation(&self, record: &Record) -> Result<serde_json::Map<String, Value>, String> {
        let mut out = serde_json::Map::new();
        let mut ctx = None;
        for (name, value) in &self.fields {
            let v = match value {
                FieldValue::Constant(v) => v.clone(),
                FieldValue::Template(t) => {
                    let ctx = ctx.get_or_insert_with(|| {
                        minijinja::context! { record => minijinja::Value::from(minijinja::value::Serde(record.view(record.data_view()))) }
                    });
                    let tmpl = self.env.get_template(t).map_err(|e| e.to_string())?;
                    Value::String(
                        tmpl.render(ctx.clone())
                            .map_err(|e| format!("fields.{name}: {e}"))?,
                    )
                }
            };
            out.insert(name.clone(), v);
        }
        if let Some(replay) = &self.replay {
            let origin = match crate::replay::parse_marker(&record.data, &self.under) {
                Ok(Marker::Live) => Version::of(record),
                Ok(Marker::Replayed(copy)) => copy.origin,
                Ok(Marker::Fence(f)) => {
                    return Err(format!(
                        "a fence of replay `{}` is not a record to replay (the archive source's `skip_fences = true` leaves fences out)",
                        f.replay_id
                    ));
                }
                Err(e) => return Err(format!("not replayed: a broken replay annotation: {e}")),
            };
            let replayed = Replayed {
                replay: ReplayTag {
                    id: replay.id.clone(),
                    mode: replay.mode,
                },
                origin,
            };
            out.extend(replayed.members());
        }
        Ok(out)
    }

    fn annotate(&self, record: &Record) -> Result<Record, String> {
        let annotation = self.annotation(record)?;
        let data = add_to_object(&record.data, &self.under, annotation)?;
        let mut out = record.clone();
        out.data = bytes::Bytes::from(data);
        // The source's note was about the old payload.
        out.probed = None;
        Ok(out)
    }
}

/// Adds `annotation` under `key` to the JSON object `payload`, keeping the payload's bytes; an
/// existing object under `key` is merged (new fields win).
pub fn add_to_object(
    payload: &[u8],
    key: &str,
    annotation: serde_json::Map<String, Value>,
) -> Result<Vec<u8>, String> {
    let entries: ObjectMembers<'_> = serde_json::from_slice(payload).map_err(|e| {
        if serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_ok() {
            "payload is JSON but not an object".to_owned()
        } else {
            format!("payload is not JSON: {e}")
        }
    })?;
    let existing = entries.last(key);
    let text = std::str::from_utf8(payload).map_err(|e| format!("payload is not UTF-8: {e}"))?;
    let body = text.trim_end();
    let Some(existing) = existing else {
        // Append before the closing brace.
        let inner = &body[..body.len() - 1];
        let mut out = String::with_capacity(payload.len() + 128);
        out.push_str(inner);
        if !entries.0.is_empty() {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(key).unwrap_or_default());
        out.push(':');
        out.push_str(&Value::Object(annotation).to_string());
        out.push('}');
        return Ok(out.into_bytes());
    };
    // Merge into the existing object without re-serializing anything already there: its
    // members keep their bytes (numbers, escapes, spacing), a field given again has only its
    // value replaced, new fields go before its closing brace.
    let inner: ObjectMembers<'_> = serde_json::from_str(existing.get())
        .map_err(|_| format!("payload already has `{key}` and it is not an object"))?;
    let base = offset_in(text, existing.get());
    let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    let mut appended = String::new();
    for (name, value) in &annotation {
        let ranges: Vec<_> = inner
            .0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| {
                let at = offset_in(text, v.get());
                at..at + v.get().len()
            })
            .collect();
        if ranges.is_empty() {
            if !inner.0.is_empty() || !appended.is_empty() {
                appended.push(',');
            }
            appended.push_str(&serde_json::to_string(name).unwrap_or_default());
            appended.push(':');
            appended.push_str(&value.to_string());
        } else {
            edits.extend(ranges.into_iter().map(|r| (r, value.to_string())));
        }
    }
    let close = base + existing.get().trim_end().len() - 1;
    edits.push((close..close, appended));
    edits.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
    let mut out = text.to_owned();
    for (range, with) in edits {
        out.replace_range(range, &with);
    }
    Ok(out.into_bytes())
}

/// Where `part`, a slice of `whole`, starts in it.
fn offset_in(whole: &str, part: &str) -> usize {
    part.as_ptr() as usize - whole.as_ptr() as usize
}

impl RecordTransform for Annotate {
    fn process(&mut self, batch: &Arc<Batch>, emit: &mut Emit) -> anyhow::Result<Pass> {
        for record in batch.iter() {
            match self.annotate(record) {
                Ok(r) => emit.records.push(r),
                Err(reason) => emit.rejected.push(Rejected {
                    record: record.clone(),
                    reason,
                }),
            }
        }
        Ok(Pass::Emitted)
    }
}

impl crate::registry::StageKind for AnnotateConfig {
    fn validate(&self, p: &mut crate::problems::Problems) {
        self.check(p)
    }

    fn build(
        &self,
        _: &crate::registry::BuildContext,
    ) -> Result<crate::registry::BuiltStage, String> {
        AnnotateConfig::build(self).map(crate::registry::BuiltStage::PerRecord)
    }

    /// Every record leaves annotated or as a dead letter.
    fn one_to_one(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;
