//! Writes each value a `{{ … }}` produced in the form the place it lands in needs (see
//! [`super::escape`]), and maps the ranges of minijinja's output to the final text.

use std::ops::Range;

use minijinja::value::Value;
use minijinja::{OutputSpan, OutputSpanKind};

use super::escape::{self, Lexer, Place};
use super::{CLOSE, SourceSpan};
use crate::diagnostic::{Diagnostic, DiagnosticKind, LineIndex};

/// Replaces the markers in minijinja's output with the values, each written for its place.
pub(super) struct Placer<'a> {
    pub(super) file: &'a str,
    pub(super) template: &'a str,
    pub(super) index: &'a LineIndex,
    pub(super) spans: &'a [OutputSpan],
    pub(super) values: &'a [Value],
    pub(super) prefix: &'a str,
}

/// A replaced marker: its range in minijinja's output and in the final text.
struct Edit {
    from: Range<usize>,
    to: Range<usize>,
}

impl Placer<'_> {
    pub(super) fn place(&self, text: &str) -> Result<(String, Vec<SourceSpan>), Diagnostic> {
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
