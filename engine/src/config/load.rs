//! Loading a pipeline file: read it, take its `[vars]`, render it when it is a template, parse the
//! TOML with spans, then decode each stage table: the engine keys (`type`, `inputs`,
//! `buffer_records`, `buffer_bytes`) first, then the stage's own keys with the config type that
//! `type` selects, on the TOML deserializer itself so every error keeps its line and key path.
//! Every problem found is reported, not just the first.

use std::collections::BTreeMap;
use std::ops::Range;

use flux_stages::channel::Capacity;
use flux_stages::registry::{Role, StageConfig};
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

pub(crate) use super::decode::first_line;
use super::decode::{self, DecodeProblem, Scope, TableNames, list};
use super::engine_keys::{EngineKeys, Inputs};
use super::spec::{InputRef, PipelineSpec, StageSpec};
use super::template::{self, Rendered};
use super::vars::{self, VarOverrides};
use crate::diagnostic::{Diagnostic, DiagnosticKind, LineIndex, Location, did_you_mean};
use serde::Deserialize;

/// The result of loading: the spec when it could be built at all, and every diagnostic.
#[derive(Debug)]
pub struct Loaded {
    /// The pipeline, `None` when the file could not be read, rendered or parsed.
    pub spec: Option<PipelineSpec>,
    /// Errors and warnings, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

const TOP_LEVEL: [&str; 5] = ["pipeline", "vars", "sources", "transforms", "sinks"];

/// Reads and loads a pipeline file.
pub fn load_file(path: &str, overrides: &VarOverrides) -> Loaded {
    match std::fs::read_to_string(path) {
        Ok(text) => load_text(path, &text, overrides),
        Err(e) => Loaded {
            spec: None,
            diagnostics: vec![Diagnostic::error(
                path,
                format!("cannot read pipeline file: {e}"),
            )],
        },
    }
}

/// Renders the file's text with its variables (for `flux-engine render`).
pub fn render_text(
    file: &str,
    text: &str,
    overrides: &VarOverrides,
) -> Result<Rendered, Diagnostic> {
    let vars = vars::merge(file, vars::file_vars(file, text)?, overrides)?;
    let mut rendered = if template::is_template(text) {
        template::render(file, text, &vars)?
    } else {
        Rendered::plain(text)
    };
    rendered.warnings = vars::unused(overrides, &rendered.used, file);
    Ok(rendered)
}

/// Loads a pipeline from its text; `file` names it in diagnostics.
pub fn load_text(file: &str, text: &str, overrides: &VarOverrides) -> Loaded {
    let rendered = match render_text(file, text, overrides) {
        Ok(r) => r,
        Err(d) => {
            return Loaded {
                spec: None,
                diagnostics: vec![d],
            };
        }
    };
    load_rendered(file, text, rendered)
}

/// Loads a pipeline that a program wrote as plain TOML (no template syntax is interpreted,
/// whatever its strings hold): `serve` builds its search pipelines this way.
pub fn load_generated(file: &str, text: &str) -> Loaded {
    load_rendered(file, text, Rendered::plain(text))
}

fn load_rendered(file: &str, text: &str, rendered: Rendered) -> Loaded {
    let mut loader = Loader {
        file: file.to_owned(),
        source: LineIndex::new(text),
        rendered: rendered.clone(),
        diagnostics: rendered.warnings.clone(),
    };
    let (root, errors) = DeTable::parse_recoverable(&rendered.text);
    if !errors.is_empty() {
        for mut d in syntax_errors(file, &errors, |s| loader.locate(s)) {
            d.redact(&rendered.secrets);
            loader.diagnostics.push(d);
        }
        return Loaded {
            spec: None,
            diagnostics: loader.diagnostics,
        };
    }
    let spec = loader.pipeline(root.into_inner());
    let mut diagnostics = loader.diagnostics;
    diagnostics
        .iter_mut()
        .for_each(|d| d.redact(&rendered.secrets));
    Loaded {
        spec: Some(spec),
        diagnostics,
    }
}

/// The diagnostics for TOML syntax errors, in file order. The parser recovers and goes on, so
/// one mistake (an unclosed `[`) often yields several errors on the line where it noticed:
/// each line gets one, the one naming what is unclosed when there is one.
pub(crate) fn syntax_errors(
    file: &str,
    errors: &[toml::de::Error],
    locate: impl Fn(Range<usize>) -> Location,
) -> Vec<Diagnostic> {
    let mut located: Vec<(Option<Location>, &toml::de::Error)> =
        errors.iter().map(|e| (e.span().map(&locate), e)).collect();
    located.sort_by_key(|(l, _)| l.as_ref().map(|l| (l.line, l.column)));
    let mut out: Vec<Diagnostic> = Vec::new();
    let mut last_line = None;
    for (loc, e) in located {
        let line = loc.as_ref().map(|l| l.line);
        let unclosed = e.message().contains("unclosed");
        if line.is_some() && line == last_line {
            // Same line as the last one kept: a follow-on error, unless it names the cause.
            if unclosed
                && let Some(prev) = out.last_mut()
                && !prev.message.contains("unclosed")
            {
                *prev = syntax_error(file, e, loc);
            }
            continue;
        }
        last_line = line;
        out.push(syntax_error(file, e, loc));
    }
    out
}

fn syntax_error(file: &str, e: &toml::de::Error, loc: Option<Location>) -> Diagnostic {
    let mut d = Diagnostic::error_of(
        DiagnosticKind::Syntax,
        file,
        format!("invalid TOML: {}", first_line(e.message())),
    )
    .at(loc);
    d.help = quoting_help(e.message());
    d
}

/// A hint for the commonest TOML mistake: text without quotes.
pub(crate) fn quoting_help(message: &str) -> Option<String> {
    [
        "invalid boolean",
        "invalid integer",
        "invalid float",
        "invalid number",
        "invalid datetime",
        "string values must be quoted",
    ]
    .iter()
    .any(|m| message.contains(m))
    .then(|| "text values must be quoted, e.g. `url = \"file://./archive\"`".to_owned())
}

struct Loader {
    file: String,
    source: LineIndex,
    rendered: Rendered,
    diagnostics: Vec<Diagnostic>,
}

type Entry<'a> = (Spanned<DeString<'a>>, Spanned<DeValue<'a>>);

impl Loader {
    /// Where a span of the rendered text was written in the source file.
    fn locate(&self, span: Range<usize>) -> Location {
        self.source.locate(self.rendered.source_range(span))
    }

    fn error(
        &mut self,
        span: Option<Range<usize>>,
        field: &str,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let loc = span.map(|s| self.locate(s));
        let mut d = Diagnostic::error(&self.file, message).at(loc);
        if !field.is_empty() {
            d = d.field(field);
        }
        self.diagnostics.push(d);
        self.diagnostics.last_mut().expect("just pushed")
    }

    fn pipeline(&mut self, root: DeTable<'_>) -> PipelineSpec {
        let mut spec = PipelineSpec {
            file: self.file.clone(),
            name: std::path::Path::new(&self.file)
                .file_name()
                .map(|n| {
                    n.to_string_lossy()
                        .split('.')
                        .next()
                        .unwrap_or_default()
                        .to_owned()
                })
                .unwrap_or_default(),
            description: None,
            stages: Vec::new(),
            rendered: self.rendered.text.clone(),
            secrets: self.rendered.secrets.clone(),
        };
        let mut sections: BTreeMap<&str, Vec<Entry<'_>>> = BTreeMap::new();
        for (key, value) in root {
            let name = key.get_ref().to_string();
            match name.as_str() {
                "pipeline" => self.meta(&key, value, &mut spec),
                "vars" => {
                    if !value.get_ref().is_table() {
                        self.error(Some(value.span()), "vars", "`vars` must be a table");
                    }
                }
                "sources" | "transforms" | "sinks" => {
                    let section = match name.as_str() {
                        "sources" => "sources",
                        "transforms" => "transforms",
                        _ => "sinks",
                    };
                    let span = value.span();
                    match value.into_inner() {
                        DeValue::Table(t) => sections.entry(section).or_default().extend(t),
                        other => {
                            self.error(
                                Some(span),
                                section,
                                format!(
                                    "`{section}` must be a table of stages, found {}",
                                    other.type_str()
                                ),
                            )
                            .help = Some(format!("write each stage as a table: [{section}.<id>]"));
                        }
                    }
                }
                _ => {
                    let d = self.error(
                        Some(key.span()),
                        &name,
                        format!("unknown top-level key `{name}`"),
                    );
                    d.help = Some(match did_you_mean(&name, TOP_LEVEL) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "expected [pipeline], [vars], [sources.<id>], [transforms.<id>] or [sinks.<id>]".into(),
                    });
                }
            }
        }
        for role in [Role::Source, Role::Transform, Role::Sink] {
            let mut entries = sections.remove(role.section()).unwrap_or_default();
            // The parsed tables are sorted by key; keep the order of the file instead.
            entries.sort_by_key(|(k, _)| k.span().start);
            for (key, value) in entries {
                if let Some(stage) = self.stage(role, key, value) {
                    spec.stages.push(stage);
                }
            }
        }
        spec
    }

    fn meta(
        &mut self,
        key: &Spanned<DeString<'_>>,
        value: Spanned<DeValue<'_>>,
        spec: &mut PipelineSpec,
    ) {
        let span = value.span();
        let DeValue::Table(t) = value.into_inner() else {
            self.error(Some(key.span()), "pipeline", "`pipeline` must be a table");
            return;
        };
        for (k, v) in t {
            let field = format!("pipeline.{}", k.get_ref());
            match (k.get_ref().as_ref(), v.get_ref()) {
                ("name", DeValue::String(s)) => spec.name = s.to_string(),
                ("description", DeValue::String(s)) => spec.description = Some(s.to_string()),
                ("name" | "description", other) => {
                    let found = other.type_str();
                    self.error(
                        Some(v.span()),
                        &field,
                        format!("`{field}` must be a string, found {found}"),
                    );
                }
                (other, _) => {
                    let msg = format!("unknown key `{other}` in [pipeline]");
                    let d = self.error(Some(k.span()), &field, msg);
                    d.kind = DiagnosticKind::UnknownKey;
                    d.help = Some("[pipeline] takes `name` and `description`".into());
                }
            }
        }
        let _ = span;
    }

    fn stage(
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
                    .and_then(|k| decode::find_value(&table, k).map(|span| (k, span)));
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

/// The first `…` quoted word of a message, e.g. the key a validation message names.
pub(crate) fn backticked_key(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}

#[cfg(test)]
mod tests;
