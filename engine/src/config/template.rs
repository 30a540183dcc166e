//! Renders a pipeline file that contains minijinja syntax, keeping a map from every byte of the
//! rendered text back to the template, so diagnostics point at the line the user wrote.
//!
//! Undefined variables are errors (strict mode) that name the variable; `env("NAME")` reads an
//! environment variable (an error when unset); `{{ x | default(y) }}` works as usual.
//!
//! A value can never change the structure of the pipeline: every `{{ … }}` is written in the
//! form the place it lands in needs (escaped inside a string, a typed literal where a value
//! goes, refused where it cannot be written; see [`super::escape`]). Two filters cover values
//! that go *inside* other syntax: `jsonpath_literal` (a JSONPath string literal, for filter
//! expressions) and `path_segment` (refuses anything but one file name: no `/`, no `..`).
//! `safe`, which would switch the escaping off, is refused.
//!
//! Rendering has a budget: at most [`RENDER_FUEL`] template instructions and
//! [`MAX_RENDERED_BYTES`] of output, so a loop that does not end or output that grows without
//! bound is an error that names the file, not a hang or an exhausted machine.

mod error;
mod place;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};

use super::escape;
use crate::diagnostic::{Diagnostic, LineIndex};
use error::template_error;
use place::Placer;

/// The most template instructions (minijinja's fuel) one render may run: far above what a
/// pipeline file needs (a loop over 500 shards takes some tens of thousands), far below what
/// takes noticeable time (a million run in well under a second).
pub const RENDER_FUEL: u64 = 1_000_000;

/// The largest rendered pipeline file, in bytes.
pub const MAX_RENDERED_BYTES: usize = 16 << 20;

fn too_large() -> minijinja::Error {
    minijinja::Error::new(
        ErrorKind::InvalidOperation,
        format!(
            "the rendered pipeline would be larger than {} MiB",
            MAX_RENDERED_BYTES >> 20
        ),
    )
}

/// True when the text uses template syntax and must be rendered before parsing.
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// The variables a template refers to (without `env`); empty when it does not parse.
pub fn variables(text: &str) -> BTreeSet<String> {
    let env = Environment::new();
    env.template_from_str(text)
        .map(|t| {
            t.undeclared_variables(false)
                .into_iter()
                .filter(|v| v != "env")
                .collect()
        })
        .unwrap_or_default()
}

/// Where a range of the rendered text came from.
#[derive(Debug, Clone)]
struct SourceSpan {
    /// The range in the rendered text.
    out: Range<usize>,
    /// The range in the template.
    src: Range<usize>,
    /// True when the output is the template text itself (offsets map one to one).
    raw: bool,
}

/// The rendered text and how its bytes map back to the template.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The rendered TOML text.
    pub text: String,
    spans: Vec<SourceSpan>,
    /// The variables the template refers to (empty for a file that is not a template).
    pub used: BTreeSet<String>,
    /// Warnings found while rendering (a `--var` the template does not use).
    pub warnings: Vec<Diagnostic>,
    /// The values `env("…")` returned: never shown in diagnostics (see
    /// [`Diagnostic::redact`]).
    pub secrets: Vec<String>,
}

impl Rendered {
    /// A text that was not a template: offsets map to themselves.
    pub fn plain(text: &str) -> Self {
        Rendered {
            text: text.to_owned(),
            spans: Vec::new(),
            used: BTreeSet::new(),
            warnings: Vec::new(),
            secrets: Vec::new(),
        }
    }

    /// Maps a range of the rendered text to the template source: an end that falls in a value
    /// a `{{ … }}` wrote extends to the end of that expression, so a caret under a value covers
    /// the expression that wrote it.
    pub fn source_range(&self, range: Range<usize>) -> Range<usize> {
        let start = self.source_offset(range.start);
        if range.end <= range.start {
            return start..start;
        }
        let last = range.end - 1;
        let end = match self.span_at(last) {
            Some(s) if !s.raw => s.src.end,
            _ => self.source_offset(last) + 1,
        };
        start..end.max(start)
    }

    fn span_at(&self, offset: usize) -> Option<&SourceSpan> {
        let i = self.spans.partition_point(|s| s.out.end <= offset);
        self.spans.get(i).filter(|s| s.out.start <= offset)
    }

    /// Maps a byte offset of the rendered text to a byte offset of the template source.
    pub fn source_offset(&self, offset: usize) -> usize {
        if self.spans.is_empty() {
            return offset;
        }
        let i = self
            .spans
            .partition_point(|s| s.out.end <= offset)
            .min(self.spans.len() - 1);
        let span = &self.spans[i];
        if span.raw {
            (span.src.start + offset.saturating_sub(span.out.start))
                .min(span.src.end.max(span.src.start))
        } else {
            span.src.start
        }
    }
}

/// The marker that stands for the n-th value in the text minijinja renders: private-use
/// characters around a per-render random number, so no value or template text can forge one.
const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

fn nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

/// Renders `template` with `vars`; errors become diagnostics about `file`.
pub fn render(
    file: &str,
    template: &str,
    vars: &BTreeMap<String, toml::Value>,
) -> Result<Rendered, Diagnostic> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(RENDER_FUEL));
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    // With an escaping mode on, minijinja marks the text the template itself produces (a
    // `{% set %}` block, a macro, `tojson`) as safe; values stay unmarked.
    env.set_auto_escape_callback(|_| AutoEscape::Custom("toml".into()));
    let values: Arc<Mutex<Vec<Value>>> = Arc::default();
    let written: Arc<AtomicUsize> = Arc::default();
    let prefix = format!("{OPEN}{}:", nonce());
    {
        let values = values.clone();
        let prefix = prefix.clone();
        // Bytes of values written so far: a value is held until the text is placed, so the
        // budget is checked here, before it is kept, not only on the finished text.
        let written = written.clone();
        env.set_formatter(move |out, _state, value| {
            let len = match value.as_str() {
                Some(s) => s.len(),
                None => value.to_string().len(),
            };
            if written
                .fetch_add(len, Ordering::Relaxed)
                .saturating_add(len)
                > MAX_RENDERED_BYTES
            {
                return Err(too_large());
            }
            // Captured template output already holds markers: it goes through as it is, and
            // its markers are resolved with the rest.
            if value.is_safe()
                && let Some(s) = value.as_str()
                && s.contains(prefix.as_str())
            {
                out.write_str(s)?;
                return Ok(());
            }
            let mut values = values.lock().unwrap_or_else(|e| e.into_inner());
            write!(out, "{prefix}{}{CLOSE}", values.len())?;
            values.push(value.clone());
            Ok(())
        });
    }
    env.add_filter("safe", |_: Value| -> Result<Value, minijinja::Error> {
        Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            "`safe` is not available in pipeline files: it would paste the value into the TOML unescaped",
        ))
    });
    env.add_filter("jsonpath_literal", |v: Value| {
        escape::jsonpath_literal(&v.to_string())
    });
    env.add_filter(
        "path_segment",
        |v: Value| -> Result<String, minijinja::Error> {
            let text = v.to_string();
            match escape::path_segment_problem(&text) {
                None => Ok(text),
                Some(why) => Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("the value is not a usable file name: {why}"),
                )),
            }
        },
    );
    let secrets: Arc<Mutex<Vec<String>>> = Arc::default();
    {
        let secrets = secrets.clone();
        env.add_function(
            "env",
            move |name: String| -> Result<String, minijinja::Error> {
                let value = std::env::var(&name).map_err(|_| {
                    minijinja::Error::new(
                        ErrorKind::InvalidOperation,
                        format!("environment variable `{name}` is not set"),
                    )
                })?;
                secrets
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(value.clone());
                Ok(value)
            },
        );
    }
    let index = LineIndex::new(template);
    let tmpl = env
        .template_from_named_str(file, template)
        .map_err(|e| template_error(file, template, &index, &e, &[]))?;
    // Every undefined variable in one message: after one is found, it gets an empty value and
    // the template is rendered again, until it renders or fails for another reason.
    let mut trial = vars.clone();
    let mut undefined: Vec<(error::Undefined, Diagnostic)> = Vec::new();
    let rendered = loop {
        values.lock().unwrap_or_else(|e| e.into_inner()).clear();
        written.store(0, Ordering::Relaxed);
        let ctx = Value::from(minijinja::value::Serde(&trial));
        let err = match tmpl.render_with_spans(ctx) {
            Ok(r) => break Ok(r),
            Err(e) => e,
        };
        let mut missing: Vec<String> = tmpl
            .undeclared_variables(false)
            .into_iter()
            .filter(|v| !trial.contains_key(v) && v != "env")
            .collect();
        missing.sort();
        let d = template_error(file, template, &index, &err, &missing);
        let found = error::undefined_variable(&index, &err, &missing)
            .filter(|u| !trial.contains_key(&u.name) && undefined.len() < 32);
        match found {
            Some(u) => {
                trial.insert(u.name.clone(), toml::Value::String(String::new()));
                undefined.push((u, d));
            }
            None => break Err(d),
        }
    };
    let (text, spans) = match (rendered, undefined.len()) {
        (Ok(r), 0) => r,
        (Err(d), 0) => return Err(d),
        (_, 1) => return Err(undefined.remove(0).1),
        _ => {
            let names: Vec<String> = undefined
                .iter()
                .map(|(u, _)| format!("`{}`", u.name))
                .collect();
            let flags: Vec<String> = undefined
                .iter()
                .map(|(u, _)| format!("--var {}=…", u.name))
                .collect();
            let (first, mut d) = undefined.remove(0);
            d.message = format!(
                "template variables {} and {} are not defined",
                names[..names.len() - 1].join(", "),
                names[names.len() - 1]
            );
            // The first one's help stays when it says more (a variable in a TOML comment).
            if !first.in_comment {
                d.help = Some(format!(
                    "pass them with `{}`, put them in a `--vars-file`, or give them defaults in [vars]",
                    flags.join(" ")
                ));
            }
            return Err(d);
        }
    };
    if text.len() > MAX_RENDERED_BYTES {
        return Err(template_error(file, template, &index, &too_large(), &[]));
    }
    let values = std::mem::take(&mut *values.lock().unwrap_or_else(|e| e.into_inner()));
    let placed = Placer {
        file,
        template,
        index: &index,
        spans: &spans,
        values: &values,
        prefix: &prefix,
    }
    .place(&text)
    .map_err(|mut d| {
        d.redact(&secrets.lock().unwrap_or_else(|e| e.into_inner()));
        d
    })?;
    let secrets = std::mem::take(&mut *secrets.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Rendered {
        text: placed.0,
        spans: placed.1,
        used: tmpl
            .undeclared_variables(false)
            .into_iter()
            .filter(|v| v != "env")
            .collect(),
        warnings: Vec::new(),
        secrets,
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod placing;
