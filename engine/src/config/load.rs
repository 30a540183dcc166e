//! Loading a pipeline file: read it, take its `[vars]`, render it when it is a template, parse the
//! TOML with spans, then decode each stage table: the engine keys (`type`, `inputs`,
//! `buffer_records`, `buffer_bytes`) first, then the stage's own keys with the config type that
//! `type` selects, on the TOML deserializer itself so every error keeps its line and key path.
//! Every problem found is reported, not just the first.

use std::collections::BTreeMap;
use std::ops::Range;

use flux_stages::registry::Role;
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

pub(crate) use super::decode::first_line;
use super::spec::PipelineSpec;
use super::template::{self, Rendered};
use super::vars::{self, VarOverrides};
use crate::diagnostic::{Diagnostic, DiagnosticKind, LineIndex, Location, did_you_mean};

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
}

mod stage;
mod syntax;

pub(crate) use syntax::{quoting_help, syntax_errors};

#[cfg(test)]
mod tests;
