//! Turns a minijinja error into a diagnostic: where it points, which variable is missing, and
//! what to do about it.

use std::ops::Range;

use minijinja::ErrorKind;

use super::RENDER_FUEL;
use crate::diagnostic::{Diagnostic, DiagnosticKind, LineIndex};

/// A variable a render found undefined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Undefined {
    /// Its name.
    pub(super) name: String,
    /// True when the line it is on is a TOML comment (templates are rendered before TOML is
    /// read, so a variable there is still used).
    pub(super) in_comment: bool,
}

/// The undefined variable an `UndefinedError` is about: among the template's undeclared
/// variables (`missing`), the first named on the error's line (or the first at all).
pub(super) fn undefined_variable(
    index: &LineIndex,
    err: &minijinja::Error,
    missing: &[String],
) -> Option<Undefined> {
    if err.kind() != ErrorKind::UndefinedError {
        return None;
    }
    let location = match (err.range(), err.line()) {
        (Some(range), _) => Some(index.locate(range)),
        (None, Some(line)) => index.line(line),
        _ => None,
    };
    let line_text = location
        .as_ref()
        .map(|l| l.text.as_str())
        .unwrap_or_default();
    let named = missing.iter().find(|m| contains_word(line_text, m));
    named.or(missing.first()).map(|name| Undefined {
        name: name.clone(),
        in_comment: line_text.trim_start().starts_with('#'),
    })
}

pub(super) fn template_error(
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
        if let Some(undefined) = undefined_variable(index, err, missing) {
            let first = &undefined.name;
            let help = if undefined.in_comment {
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
