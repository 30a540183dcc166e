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

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use minijinja::value::Value;
use minijinja::{
    AutoEscape, Environment, ErrorKind, OutputSpan, OutputSpanKind, UndefinedBehavior,
};

use super::escape::{self, Lexer, Place};
use crate::diagnostic::{Diagnostic, DiagnosticKind, LineIndex};

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
    let mut undefined: Vec<(String, Diagnostic)> = Vec::new();
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
        let name = (err.kind() == ErrorKind::UndefinedError
            && d.message.starts_with("template variable `"))
        .then(|| super::load::backticked_key(&d.message))
        .flatten()
        .filter(|n| !trial.contains_key(n) && undefined.len() < 32);
        match name {
            Some(name) => {
                trial.insert(name.clone(), toml::Value::String(String::new()));
                undefined.push((name, d));
            }
            None => break Err(d),
        }
    };
    let (text, spans) = match (rendered, undefined.len()) {
        (Ok(r), 0) => r,
        (Err(d), 0) => return Err(d),
        (_, 1) => return Err(undefined.remove(0).1),
        _ => {
            let names: Vec<String> = undefined.iter().map(|(n, _)| format!("`{n}`")).collect();
            let flags: Vec<String> = undefined
                .iter()
                .map(|(n, _)| format!("--var {n}=…"))
                .collect();
            let mut d = undefined.remove(0).1;
            d.message = format!(
                "template variables {} and {} are not defined",
                names[..names.len() - 1].join(", "),
                names[names.len() - 1]
            );
            // The first one's help stays when it says more (a variable in a TOML comment).
            if d.help.as_deref().is_none_or(|h| h.starts_with("pass it")) {
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

/// Replaces the markers in minijinja's output with the values, each written for its place.
struct Placer<'a> {
    file: &'a str,
    template: &'a str,
    index: &'a LineIndex,
    spans: &'a [OutputSpan],
    values: &'a [Value],
    prefix: &'a str,
}

/// A replaced marker: its range in minijinja's output and in the final text.
struct Edit {
    from: Range<usize>,
    to: Range<usize>,
}

impl Placer<'_> {
    fn place(&self, text: &str) -> Result<(String, Vec<SourceSpan>), Diagnostic> {
        let mut out = String::with_capacity(text.len());
        let mut lexer = Lexer::default();
        let mut edits: Vec<Edit> = Vec::new();
        let mut pos = 0;
        while let Some(found) = text[pos..].find(self.prefix) {
            let start = pos + found;
            lexer.feed(&text[pos..start]);
            out.push_str(&text[pos..start]);
            let digits = start + self.prefix.len();
            let (n, end) = text[digits..]
                .find(CLOSE)
                .and_then(|len| {
                    let n = text[digits..digits + len].parse::<usize>().ok()?;
                    Some((n, digits + len + CLOSE.len_utf8()))
                })
                .filter(|(n, _)| *n < self.values.len())
                .ok_or_else(|| self.error(start, "the template output is garbled", None))?;
            let at = out.len();
            self.write(&self.values[n], &mut lexer, &mut out)
                .map_err(|(why, help)| self.error(start, &why, help))?;
            edits.push(Edit {
                from: start..end,
                to: at..out.len(),
            });
            pos = end;
        }
        out.push_str(&text[pos..]);
        let map = |p: usize| -> usize {
            let i = edits.partition_point(|e| e.from.end <= p);
            if let Some(e) = edits.get(i)
                && e.from.start < p
            {
                return e.to.end;
            }
            match i.checked_sub(1).map(|j| &edits[j]) {
                Some(e) => p - e.from.end + e.to.end,
                None => p,
            }
        };
        let spans = self
            .spans
            .iter()
            .map(|s| SourceSpan {
                out: map(s.output_range().start)..map(s.output_range().end),
                src: s.source_range(),
                raw: s.kind() == OutputSpanKind::Raw,
            })
            .collect();
        Ok((out, spans))
    }

    /// Writes one value for the place the lexer is in.
    fn write(
        &self,
        value: &Value,
        lexer: &mut Lexer,
        out: &mut String,
    ) -> Result<(), (String, Option<String>)> {
        let place = lexer.place();
        match place {
            Place::Basic | Place::MultiBasic => {
                if lexer.after_backslash() {
                    return Err((
                        "cannot be written right after a `\\`: the backslash would make an escape sequence of its first character".into(),
                        Some("remove the backslash before `{{`".into()),
                    ));
                }
                escape::escape_basic(&value.to_string(), out);
            }
            Place::Literal | Place::MultiLiteral | Place::Comment => {
                let text = value.to_string();
                if let Some(what) = escape::unwritable(&text, place) {
                    let (inside, help) = if place == Place::Comment {
                        (
                            "in a TOML comment",
                            "comment template code out with `{# … #}`, not `#`",
                        )
                    } else {
                        (
                            "inside a '…' string, which has no escapes",
                            "put it inside a \"…\" string, where every value is escaped",
                        )
                    };
                    return Err((
                        format!("cannot be written {inside}: it contains {what}"),
                        Some(help.into()),
                    ));
                }
                out.push_str(&text);
            }
            Place::Key | Place::Value if value.is_safe() => {
                // Text the template produced (`tojson`, a `{% set %}` block) is TOML already.
                let text = value.to_string();
                lexer.feed(&text);
                out.push_str(&text);
            }
            Place::Key => match value.kind() {
                minijinja::value::ValueKind::String
                | minijinja::value::ValueKind::Number
                | minijinja::value::ValueKind::Bool => {
                    out.push_str(&escape::quoted(&value.to_string()))
                }
                kind => {
                    return Err((
                        format!("cannot be a TOML key: it is {}", article(kind)),
                        None,
                    ));
                }
            },
            Place::Value => {
                if value.is_none() || value.is_undefined() {
                    return Err((
                        "cannot be written as a TOML value: it has no value (none)".into(),
                        None,
                    ));
                }
                let toml = toml::Value::try_from(value).map_err(|e| {
                    (
                        format!(
                            "cannot be written as a TOML value: {}",
                            crate::config::load::first_line(&e.to_string())
                        ),
                        None,
                    )
                })?;
                escape::literal(&toml, out);
            }
        }
        Ok(())
    }

    fn error(&self, offset: usize, why: &str, help: Option<String>) -> Diagnostic {
        let span = self
            .spans
            .iter()
            .find(|s| s.output_range().contains(&offset));
        let (expr, location) = match span {
            Some(s) => (
                self.template
                    .get(s.source_range())
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
                Some(self.index.locate(s.source_range())),
            ),
            None => (String::new(), None),
        };
        let mut d = Diagnostic::error_of(
            DiagnosticKind::Template,
            self.file,
            format!("the value of `{{{{ {expr} }}}}` {why}"),
        )
        .at(location);
        d.help = help;
        d
    }
}

fn article(kind: minijinja::value::ValueKind) -> String {
    match kind {
        minijinja::value::ValueKind::Seq => "a list".into(),
        minijinja::value::ValueKind::Map => "a table".into(),
        minijinja::value::ValueKind::None | minijinja::value::ValueKind::Undefined => "none".into(),
        other => format!("a {other}"),
    }
}

fn template_error(
    file: &str,
    template: &str,
    index: &LineIndex,
    err: &minijinja::Error,
    missing: &[String],
) -> Diagnostic {
    let location = match (err.range(), err.line()) {
        (Some(range), _) => Some(index.locate(range)),
        (None, Some(line)) => index.line(line),
        _ => None,
    };
    let detail = err.detail().unwrap_or_default().to_owned();
    if err.kind() == ErrorKind::UndefinedError {
        let line_text = location
            .as_ref()
            .map(|l| l.text.as_str())
            .unwrap_or_default();
        let named: Vec<&String> = missing
            .iter()
            .filter(|m| contains_word(line_text, m))
            .collect();
        let names = if named.is_empty() {
            missing.iter().collect::<Vec<_>>()
        } else {
            named
        };
        if let Some(first) = names.first() {
            let in_comment = line_text.trim_start().starts_with('#');
            let help = if in_comment {
                "this line is a TOML comment, but templates are rendered before TOML is read; comment template code out with `{# … #}`".to_owned()
            } else {
                format!(
                    "pass it with `--var {first}=…`, put it in a `--vars-file`, or give it a default in [vars]"
                )
            };
            return Diagnostic::error_of(
                DiagnosticKind::MissingVariable,
                file,
                format!("template variable `{first}` is not defined"),
            )
            .at(location)
            .help(help);
        }
        return Diagnostic::error_of(
            DiagnosticKind::MissingVariable,
            file,
            format!("template: undefined value {detail}")
                .trim_end()
                .to_owned(),
        )
        .at(location);
    }
    // A filter that refuses a value (`path_segment`) says why; the expression names the value.
    let expr = err
        .range()
        .filter(|_| err.kind() == ErrorKind::InvalidOperation)
        .and_then(|r| {
            let e = enclosing_expression(template, r.clone())?.trim();
            // Only when it shows more than the caret already does (the value a filter refused).
            (Some(e) != template.get(r).map(str::trim)).then_some(e)
        })
        .map(|e| format!("`{{{{ {e} }}}}`: "))
        .unwrap_or_default();
    if err.kind() == ErrorKind::OutOfFuel {
        return Diagnostic::error_of(
            DiagnosticKind::Template,
            file,
            format!("template: rendering stopped after {RENDER_FUEL} steps"),
        )
        .at(location)
        .help("a loop runs too long for a pipeline file; bound it (`range(n)` with a smaller n)");
    }
    let message = if detail.is_empty() {
        format!("template: {expr}{}", err.kind())
    } else {
        format!("template: {expr}{detail}")
    };
    let help = if detail.contains("expected end of block")
        || detail.contains("unexpected end of input")
    {
        Some("a `{% if %}` or `{% for %}` block is not closed; add its `{% endif %}` / `{% endfor %}`".to_owned())
    } else if detail.contains("not a usable file name") {
        Some("a value that names a file must be one name: no `/` or `\\`, no `..`".to_owned())
    } else if detail.contains("environment variable") {
        Some("export the variable before running, or read the value from a template variable with a default in [vars]".to_owned())
    } else {
        None
    };
    let mut d = Diagnostic::error_of(DiagnosticKind::Template, file, message).at(location);
    d.help = help;
    d
}

/// The `{{ … }}` around `range` (on its line), or the text of `range` itself.
fn enclosing_expression(template: &str, range: Range<usize>) -> Option<&str> {
    let line_start = template[..range.start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = template[range.end..]
        .find('\n')
        .map_or(template.len(), |i| range.end + i);
    let open = template[line_start..range.start].rfind("{{");
    let close = template[range.end..line_end].find("}}");
    match (open, close) {
        (Some(o), Some(c)) => template.get(line_start + o + 2..range.end + c),
        _ => template.get(range),
    }
}

fn contains_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !ident(before) && !ident(after)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, toml::Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), toml::Value::String(v.to_string())))
            .collect()
    }

    #[test]
    fn renders_and_maps_offsets_back() {
        let t = "a = \"{{ x }}\"\n{% if true %}\nb = 1\n{% endif %}\nc = 2\n";
        let r = render("t.toml", t, &vars(&[("x", "hello")])).unwrap();
        assert_eq!(r.text, "a = \"hello\"\nb = 1\nc = 2\n");
        let c_out = r.text.find("c = 2").unwrap();
        assert_eq!(r.source_offset(c_out), t.find("c = 2").unwrap());
        let hello = r.text.find("hello").unwrap();
        assert_eq!(r.source_offset(hello), t.find("x }}").unwrap());
    }

    #[test]
    fn undefined_variables_are_named() {
        let t = "a = 1\nb = \"{{ incident }}\"\n";
        let err = render("t.toml", t, &vars(&[])).unwrap_err();
        assert_eq!(err.message, "template variable `incident` is not defined");
        assert_eq!(err.location.unwrap().line, 2);
    }

    #[test]
    fn defaults_and_env() {
        // SAFETY-free: tests set a unique variable name.
        let t = "a = \"{{ target | default(stream) }}\"\nb = \"{{ env('FLUX_TEST_HOME_NOT_SET_X') }}\"\n";
        let err = render("t.toml", t, &vars(&[("stream", "orders")])).unwrap_err();
        assert!(
            err.message.contains("FLUX_TEST_HOME_NOT_SET_X"),
            "{}",
            err.message
        );
        let r = render(
            "t.toml",
            "a = \"{{ target | default(stream) }}\"\n",
            &vars(&[("stream", "orders")]),
        )
        .unwrap();
        assert_eq!(r.text, "a = \"orders\"\n");
    }
}

#[cfg(test)]
mod placing {
    //! Every value is written for the place it lands in.
    use super::*;

    #[test]
    fn a_loop_that_runs_too_long_is_an_error_naming_the_file_and_line() {
        let d = render_with(
            "# pipeline\n{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(d.file, "t.toml");
        assert!(
            d.message.contains("rendering stopped after"),
            "{}",
            d.message
        );
        assert_eq!(d.location.as_ref().map(|l| l.line), Some(2), "{d:?}");
    }

    #[test]
    fn output_past_the_size_budget_is_an_error() {
        for t in [
            "{% for a in range(1000) %}{{ \"x\" * 100000 }}{% endfor %}",
            "{% for a in range(100) %}{% set b %}{{ \"y\" * 1000000 }}{% endset %}{{ b }}{% endfor %}",
            "{% for a in range(300) %}x = \"{{ \"z\" * 100000 }}\"\n{% endfor %}",
        ] {
            let d = render_with(t, &[]).unwrap_err();
            assert!(
                d.message.contains("larger than 16 MiB"),
                "{t}: {}",
                d.message
            );
        }
    }

    #[test]
    fn a_loop_over_five_hundred_stages_renders_within_the_budget() {
        let t = "{% for i in range(500) %}[transforms.f{{ i }}]\ntype = \"filter\"\ninputs = [\"in\"]\nwhere = \"{{ 'x' ~ i }}\"\n\n{% endfor %}";
        let text = render_with(t, &[]).unwrap();
        assert_eq!(text.matches("[transforms.f").count(), 500);
    }

    fn render_with(t: &str, pairs: &[(&str, toml::Value)]) -> Result<String, Diagnostic> {
        let vars = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        render("t.toml", t, &vars).map(|r| r.text)
    }

    fn s(v: &str) -> toml::Value {
        toml::Value::String(v.into())
    }

    fn parse(text: &str) -> toml::Table {
        toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    const EVIL: &str =
        "x\"\n[sinks.evil]\ntype = \"file\"\ninputs = [\"orders\"]\npath = \"/tmp/evil.jsonl\"\n#";

    #[test]
    fn a_value_cannot_end_its_string() {
        for t in [
            "a = \"{{ v }}\"\n",
            "a = \"\"\"{{ v }}\"\"\"\n",
            "a = { b = \"pre-{{ v }}-post\" }\n",
            "a = [\"{{ v }}\", \"{{ v }}\"]\n",
        ] {
            let text = render_with(t, &[("v", s(EVIL))]).unwrap();
            let table = parse(&text);
            assert_eq!(table.keys().collect::<Vec<_>>(), ["a"], "{text}");
            assert!(
                text.contains(&escape::quoted(EVIL)[1..EVIL.len()]) || text.contains("\\n"),
                "{text}"
            );
        }
        let table =
            parse(&render_with("a = { b = \"pre-{{ v }}-post\" }\n", &[("v", s(EVIL))]).unwrap());
        assert_eq!(
            table["a"]["b"].as_str().unwrap(),
            format!("pre-{EVIL}-post")
        );
    }

    #[test]
    fn values_where_a_value_goes_are_typed_literals() {
        let text = render_with(
            "a = {{ s }}\nb = {{ n }}\nc = {{ f }}\nd = {{ t }}\ne = {{ l }}\nf = {{ m }}\ng = [{{ s }}, {{ n }}]\nh = { x = {{ s }} }\n",
            &[
                ("s", s(EVIL)),
                ("n", toml::Value::Integer(800)),
                ("f", toml::Value::Float(1.0)),
                ("t", toml::Value::Boolean(false)),
                ("l", toml::Value::Array(vec![s("a'b"), toml::Value::Integer(1)])),
                ("m", toml::Value::Table(toml::Table::from_iter([("k\"]".to_owned(), s(EVIL))]))),
            ],
        )
        .unwrap();
        let t = parse(&text);
        assert_eq!(t.len(), 8, "{text}");
        assert_eq!(t["a"].as_str(), Some(EVIL));
        assert_eq!(t["b"].as_integer(), Some(800));
        assert_eq!(t["c"].as_float(), Some(1.0));
        assert_eq!(t["d"].as_bool(), Some(false));
        assert_eq!(t["e"][0].as_str(), Some("a'b"));
        assert_eq!(t["f"]["k\"]"].as_str(), Some(EVIL));
        assert_eq!(t["g"][0].as_str(), Some(EVIL));
        assert_eq!(t["h"]["x"].as_str(), Some(EVIL));
    }

    #[test]
    fn values_in_key_places_are_quoted_keys() {
        let t = parse(
            &render_with(
                "[sinks.{{ id }}]\ntype = \"file\"\n{{ id }} = 1\n",
                &[("id", s(EVIL))],
            )
            .unwrap(),
        );
        assert_eq!(t.keys().collect::<Vec<_>>(), ["sinks"]);
        let sinks = t["sinks"].as_table().unwrap();
        assert_eq!(sinks.keys().collect::<Vec<_>>(), [EVIL]);
        assert_eq!(sinks[EVIL].as_table().unwrap().len(), 2);
        let err = render_with("{{ l }} = 1\n", &[("l", toml::Value::Array(vec![]))]).unwrap_err();
        assert!(
            err.message.contains("`{{ l }}` cannot be a TOML key"),
            "{}",
            err.message
        );
    }

    #[test]
    fn literal_strings_and_comments_refuse_what_would_end_them() {
        let err = render_with("a = 'x-{{ v }}'\n", &[("v", s("it's"))]).unwrap_err();
        assert_eq!(
            err.message,
            "the value of `{{ v }}` cannot be written inside a '…' string, which has no escapes: it contains a `'`"
        );
        assert_eq!(err.location.unwrap().line, 1);
        assert!(render_with("a = '{{ v }}'\n", &[("v", s("a\nb = 1"))]).is_err());
        let err = render_with("a = 1 # was {{ v }}\n", &[("v", s("x\nevil = 1"))]).unwrap_err();
        assert!(err.message.contains("in a TOML comment"), "{}", err.message);
        assert_eq!(
            render_with("a = '''{{ v }}'''\n", &[("v", s("a\nb"))]).unwrap(),
            "a = '''a\nb'''\n"
        );
        assert_eq!(
            render_with("a = 'C:\\{{ v }}'\n", &[("v", s("x\"y"))]).unwrap(),
            "a = 'C:\\x\"y'\n"
        );
    }

    #[test]
    fn a_value_after_a_backslash_is_refused() {
        // `"\{{ v }}"` with v = `"` would otherwise write `"\\"`: an escaped backslash, then a quote.
        let err = render_with("a = \"\\{{ v }}\"\n", &[("v", s("\""))]).unwrap_err();
        assert!(
            err.message.contains("right after a `\\`"),
            "{}",
            err.message
        );
        assert_eq!(
            render_with("a = \"\\\\{{ v }}\"\n", &[("v", s("\""))]).unwrap(),
            "a = \"\\\\\\\"\"\n"
        );
    }

    #[test]
    fn template_text_and_tojson_keep_working() {
        // tojson (safe JSON text) where a value goes, as older templates wrote it.
        let t = parse(
            &render_with(
                "k = {{ v | tojson }}\nl = {{ [v, 1] | tojson }}\n",
                &[("v", s(EVIL))],
            )
            .unwrap(),
        );
        assert_eq!(t["k"].as_str(), Some(EVIL));
        assert_eq!(t["l"][0].as_str(), Some(EVIL));
        // … and inside a string it is text like any other, so it cannot end the string.
        let t = parse(
            &render_with(
                "k = { a = \"{{ v | tojson }}\" }\n",
                &[("v", s(", evil = 1, x = "))],
            )
            .unwrap(),
        );
        assert_eq!(t["k"].as_table().unwrap().len(), 1);
        // Captured blocks and macros: template text as it is, the values inside still escaped.
        let text = render_with(
            "{% set block %}b = \"{{ v }}\"\n{% endset %}{{ block }}{% macro m(x) %}\"{{ x }}\"{% endmacro %}c = {{ m(v) }}\n",
            &[("v", s(EVIL))],
        )
        .unwrap();
        let t = parse(&text);
        assert_eq!(t["b"].as_str(), Some(EVIL), "{text}");
        assert_eq!(t["c"].as_str(), Some(EVIL), "{text}");
        // The annotate stage's per-record templates survive the file rendering.
        let text = render_with("f = \"{{ '{{' }} record.shard_id {{ '}}' }}\"\n", &[]).unwrap();
        assert_eq!(text, "f = \"{{ record.shard_id }}\"\n");
    }

    #[test]
    fn concatenating_template_text_with_a_value_still_escapes_the_value() {
        let text = render_with(
            "{% set pre %}x{% endset %}a = \"{{ pre ~ v }}\"\n",
            &[("v", s(EVIL))],
        )
        .unwrap();
        let t = parse(&text);
        assert_eq!(t.len(), 1, "{text}");
        assert_eq!(t["a"].as_str().unwrap(), format!("x{EVIL}"));
        // Where a value goes, the template text stays text and the value a quoted string: not
        // valid TOML, but no new key either.
        let text = render_with(
            "{% set pre %}x{% endset %}{% set both = pre ~ v %}b = {{ both }}\n",
            &[("v", s(EVIL))],
        )
        .unwrap();
        assert!(text.starts_with("b = x\"x\\\""), "{text}");
        assert!(toml::from_str::<toml::Table>(&text).is_err(), "{text}");
    }

    #[test]
    fn safe_is_refused() {
        let err = render_with("a = {{ v | safe }}\n", &[("v", s("1\nevil = 2"))]).unwrap_err();
        assert!(
            err.message.contains("`safe` is not available"),
            "{}",
            err.message
        );
    }

    #[test]
    fn jsonpath_literal_and_path_segment() {
        let text = render_with(
            "w = \"@.data.region == {{ r | jsonpath_literal }}\"\n",
            &[("r", s("eu' || @.x == 'y\\\n"))],
        )
        .unwrap();
        let w = parse(&text)["w"].as_str().unwrap().to_owned();
        assert_eq!(w, "@.data.region == 'eu\\' || @.x == \\'y\\\\\\n'");
        let err = render_with(
            "p = \"r-{{ id | path_segment }}.jsonl\"\n",
            &[("id", s("../../x"))],
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "template: `{{ id | path_segment }}`: the value is not a usable file name: it contains a path separator (`/` or `\\`)"
        );
        assert_eq!(
            render_with(
                "p = \"r-{{ id | path_segment }}.jsonl\"\n",
                &[("id", s("INC-1"))]
            )
            .unwrap(),
            "p = \"r-INC-1.jsonl\"\n"
        );
    }

    #[test]
    fn offsets_map_back_across_escaped_values() {
        let t = "a = \"{{ v }}\"\nb = {{ n }}\nc = oops\n";
        let r = render(
            "t.toml",
            t,
            &BTreeMap::from([
                ("v".to_owned(), s("q\"\n")),
                ("n".to_owned(), toml::Value::Integer(5)),
            ]),
        )
        .unwrap();
        assert_eq!(r.text, "a = \"q\\\"\\n\"\nb = 5\nc = oops\n");
        assert_eq!(
            r.source_offset(r.text.find("c = oops").unwrap()),
            t.find("c = oops").unwrap()
        );
        assert_eq!(
            r.source_offset(r.text.find('5').unwrap()),
            t.find("n }}").unwrap()
        );
    }
}
