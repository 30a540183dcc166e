//! Decoding one stage table: the engine's keys ([`EngineKeys`]), then the kind's own settings
//! ([`StageConfig::decode`]) and their check ([`StageConfig::validate`]), every problem
//! reported at its key.

use std::ops::Range;

use flux_stages::channel::Capacity;
use flux_stages::registry::{Role, StageConfig};
use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use super::Loader;
use crate::config::decode::{self, DecodeProblem, Scope, TableNames, list};
use crate::config::engine_keys::{EngineKeys, Inputs};
use crate::config::spec::{InputRef, StageSpec};
use crate::diagnostic::{DiagnosticKind, did_you_mean};

impl Loader {
    pub(super) fn stage(
        &mut self,
        role: Role,
        key: Spanned<DeString<'_>>,
        value: Spanned<DeValue<'_>>,
    ) -> Option<StageSpec> {
        let id = key.get_ref().to_string();
        let path = format!("{}.{id}", role.section());
        let table_span = value.span();
        let header = key.span();
        let DeValue::Table(mut table) = value.into_inner() else {
            self.error(Some(header), &path, format!("`{path}` must be a table"))
                .help = Some(format!(
                "write [{path}] followed by `type = \"…\"` and its settings"
            ));
            return None;
        };
        if !valid_id(&id) {
            self.error(
                Some(header.clone()),
                &path,
                format!("invalid stage id `{id}`"),
            )
            .help = Some("stage ids are letters, digits, `_` and `-`".into());
        }
        let mut stage = StageSpec {
            id: id.clone(),
            role,
            kind: None,
            inputs: Vec::new(),
            config: None,
            buffer: Capacity::default(),
            location: Some(self.locate(header.clone())),
            type_location: None,
            keys: Default::default(),
        };
        let scope = Scope {
            prefix: &path,
            names: TableNames::Stage(&path),
            docs: "docs/pipeline-reference.md",
            fallback: Some(header.clone()),
        };
        // The engine's keys, decoded apart from the kind's own.
        let mut engine = DeTable::new();
        for name in EngineKeys::NAMES {
            if let Some((k, v)) = table.remove_entry(name) {
                engine.insert(k, v);
            }
        }
        let type_span = engine.get("type").map(Spanned::span);
        let kind_span = type_span.clone().unwrap_or_else(|| header.clone());
        stage.type_location = type_span.map(|s| self.locate(s));
        if role == Role::Source
            && let Some(v) = engine.remove("inputs")
        {
            self.error(Some(v.span()), &format!("{path}.inputs"), format!("source `{id}` cannot have `inputs`"))
                .help = Some("sources read from outside the pipeline; move this stage to [transforms] or [sinks] if it reads other stages".into());
        }
        let input_items: Vec<Range<usize>> = match engine.get("inputs").map(Spanned::get_ref) {
            Some(DeValue::Array(items)) => items.iter().map(Spanned::span).collect(),
            _ => Vec::new(),
        };
        let decoded = decode::decode_every(&engine, table_span.clone(), &scope, |d| {
            EngineKeys::deserialize(d)
        });
        decoded.problems.into_iter().for_each(|p| self.report(p));
        let keys = decoded.value.unwrap_or_default();
        if !engine.contains_key("type") {
            self.error(
                Some(header.clone()),
                &format!("{path}.type"),
                format!("{} `{id}` has no `type`", role.noun()),
            )
            .help = Some(format!(
                "add `type = \"…\"`; {} types are {}",
                role.noun(),
                list(&role.kinds())
            ));
        }
        if role != Role::Source && !engine.contains_key("inputs") {
            self.error(
                Some(header.clone()),
                &format!("{path}.inputs"),
                format!("{} `{id}` has no `inputs`", role.noun()),
            )
            .help = Some("add `inputs = [\"<upstream id>\"]`".into());
        }
        if let Some(inputs) = &keys.inputs {
            self.inputs(
                &path,
                inputs,
                &input_items,
                engine.get("inputs"),
                &mut stage,
            );
        }
        stage.kind = keys.kind.as_ref().map(|t| t.0.clone());
        stage.buffer = keys.capacity(None);
        // the stage's own keys
        let Some(kind) = stage.kind.clone() else {
            return Some(stage);
        };
        if !role.kinds().contains(&kind.as_str()) {
            self.unknown_kind(role, &kind, &path, kind_span);
            return Some(stage);
        }
        stage.keys = table
            .iter()
            .map(|(k, v)| (k.get_ref().to_string(), self.locate(v.span())))
            .collect();
        let decoded = decode::decode_every(&table, table_span, &scope, |d| {
            StageConfig::decode(role, &kind, d)
        });
        let (bad_values, complete) = (decoded.bad_values, decoded.left_out.is_empty());
        decoded.problems.into_iter().for_each(|p| self.report(p));
        // Checked only as written: with a bad value left out, the check would judge a
        // configuration the author did not write. Unknown keys left out change nothing.
        if let Some(config) = decoded.value.flatten().filter(|_| !bad_values) {
            let problems = config.validate();
            for problem in &problems {
                // Where the key is written, its value; a key not written (or a problem of the
                // table as a whole), the stage's `type`.
                let at = problem
                    .key
                    .as_deref()
                    .and_then(|k| decode::find_value_span(&table, k).map(|span| (k, span)));
                let (field, span) = match at {
                    Some((k, span)) => (format!("{path}.{k}"), span),
                    None => (path.clone(), kind_span.clone()),
                };
                self.error(Some(span), &field, problem.message.clone()).kind =
                    DiagnosticKind::InvalidValue;
            }
            if problems.is_empty() && complete {
                stage.buffer = keys.capacity(config.default_buffer_bytes());
                stage.config = Some(config);
            }
        }
        Some(stage)
    }

    /// Reports a decoding problem as a diagnostic.
    fn report(&mut self, problem: DecodeProblem) {
        let d = self.error(problem.span, &problem.field, problem.message);
        d.kind = problem.kind;
        d.help = problem.help;
    }

    fn unknown_kind(&mut self, role: Role, kind: &str, path: &str, span: Range<usize>) {
        let noun = role.noun();
        let elsewhere = [Role::Source, Role::Transform, Role::Sink]
            .into_iter()
            .find(|r| *r != role && r.kinds().contains(&kind));
        let (message, help) = if role.planned_kinds().contains(&kind) {
            (
                format!("{noun} type `{kind}` is not available in this version yet"),
                format!("available {noun} types: {}", list(&role.kinds())),
            )
        } else if let Some(other) = elsewhere {
            (
                format!("`{kind}` is not a {noun} type"),
                format!(
                    "`{kind}` is a {} type; declare it under [{}.<id>]",
                    other.noun(),
                    other.section()
                ),
            )
        } else if let Some(s) = did_you_mean(kind, role.kinds().iter().copied()) {
            (
                format!("unknown {noun} type `{kind}`"),
                format!("did you mean `{s}`?"),
            )
        } else {
            (
                format!("unknown {noun} type `{kind}`"),
                format!("available {noun} types: {}", list(&role.kinds())),
            )
        };
        let d = self.error(Some(span), &format!("{path}.type"), message);
        d.kind = DiagnosticKind::UnknownKind;
        d.help = Some(help);
    }

    fn inputs(
        &mut self,
        path: &str,
        inputs: &Inputs,
        items: &[Range<usize>],
        value: Option<&Spanned<DeValue<'_>>>,
        stage: &mut StageSpec,
    ) {
        let field = format!("{path}.inputs");
        if inputs.0.is_empty() {
            self.error(
                value.map(Spanned::span),
                &field,
                format!("{} `{}` has an empty `inputs`", stage.role.noun(), stage.id),
            )
            .help = Some("name at least one upstream stage".into());
        }
        for (input, span) in inputs.0.iter().zip(items) {
            let loc = Some(self.locate(span.clone()));
            match InputRef::parse(input, loc) {
                Ok(input) => stage.inputs.push(input),
                Err(e) => {
                    self.error(Some(span.clone()), &field, e);
                }
            }
        }
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}
