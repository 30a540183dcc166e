//! TOML syntax errors as diagnostics: one per line, naming what is unclosed, with a hint when
//! a value lacks its quotes.

use std::ops::Range;

use crate::diagnostic::{Diagnostic, DiagnosticKind, Location};

use super::first_line;

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
