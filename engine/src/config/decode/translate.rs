//! One translation of [`DecodeError`]s into what a diagnostic says, shared by pipeline files
//! and cluster files: which key path, which span, which message and help, of which
//! [`DiagnosticKind`]. It reads the error's kind, never its English text.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::error::{DecodeError, DecodeErrorKind};
use crate::diagnostic::{DiagnosticKind, did_you_mean};

/// How a file names the table being decoded in its messages.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TableNames<'a> {
    /// A pipeline stage: every table in it is named by the stage's key path (`` `sinks.out` ``).
    Stage(&'a str),
    /// A file of sections, as the cluster file: `[cluster]`, or the file itself at the top
    /// (this noun: "the cluster file").
    Sections(&'a str),
}

/// The table being decoded and how to speak of it.
#[derive(Debug, Clone)]
pub(crate) struct Scope<'a> {
    /// The key path of the decoded table in its file (`sinks.out`; empty for a whole file).
    pub(crate) prefix: &'a str,
    /// How messages name tables.
    pub(crate) names: TableNames<'a>,
    /// The page a "missing key" help points to.
    pub(crate) docs: &'a str,
    /// Where a problem of the table itself points when nothing nearer is known (a stage's
    /// header).
    pub(crate) fallback: Option<Range<usize>>,
}

/// A decoding error, translated: ready to become a diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeProblem {
    /// What kind of problem.
    pub(crate) kind: DiagnosticKind,
    /// The whole key path, e.g. `sinks.out.pth`.
    pub(crate) field: String,
    /// Where, in the rendered text.
    pub(crate) span: Option<Range<usize>>,
    /// What is wrong.
    pub(crate) message: String,
    /// What to do about it.
    pub(crate) help: Option<String>,
    /// The key of the decoded table the problem is in (to leave out and decode the rest
    /// again), when there is one.
    pub(crate) top_key: Option<String>,
    /// For an unknown key, the key it is probably a misspelling of.
    pub(crate) suggestion: Option<&'static str>,
}

/// Translates `err`, raised at `path` (serde_path_to_error's, inside `table`).
pub(crate) fn translate(
    err: &DecodeError,
    path: &serde_path_to_error::Path,
    table: &DeTable<'_>,
    scope: &Scope<'_>,
) -> DecodeProblem {
    let path = match path.to_string() {
        p if p == "." || p == "?" => String::new(),
        p => p,
    };
    let join = |parts: &[&str]| {
        parts
            .iter()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(".")
    };
    let top_key = |inner: &str| {
        inner
            .split('.')
            .next()
            .filter(|k| !k.is_empty() && *k != "?")
            .map(str::to_owned)
    };
    match &err.kind {
        DecodeErrorKind::MissingField(name) => {
            let inner = path.as_str();
            let (table_name, section) = scope.names.name(scope.prefix, inner);
            let help = match section {
                Some(s) => format!("add `{name} = …` to [{s}]; see {}", scope.docs),
                None => format!("add `{name} = …`; see {}", scope.docs),
            };
            DecodeProblem {
                kind: DiagnosticKind::MissingKey,
                field: join(&[scope.prefix, inner, name]),
                span: match inner {
                    "" => scope.fallback.clone(),
                    inner => find_key(table, inner).or_else(|| scope.fallback.clone()),
                },
                message: format!("{table_name} is missing the required key `{name}`"),
                help: Some(help),
                top_key: top_key(inner),
                suggestion: None,
            }
        }
        DecodeErrorKind::UnknownField { field, expected } => {
            // The tracked path ends with the unknown key itself.
            let inner = if path == *field {
                ""
            } else {
                path.strip_suffix(&format!(".{field}"))
                    .unwrap_or(path.as_str())
            };
            let suggestion = did_you_mean(field, expected.iter().copied());
            let help = match suggestion {
                Some(s) => Some(format!("did you mean `{s}`?")),
                None if !expected.is_empty() => Some(format!("expected one of {}", list(expected))),
                None => None,
            };
            let full = join(&[inner, field]);
            let message = match scope.names {
                TableNames::Stage(stage) => format!("unknown key `{field}` in `{stage}`"),
                TableNames::Sections(_) => match join(&[scope.prefix, inner]) {
                    s if s.is_empty() => format!("unknown key `{field}`"),
                    s => format!("unknown key `{field}` in [{s}]"),
                },
            };
            DecodeProblem {
                kind: DiagnosticKind::UnknownKey,
                field: join(&[scope.prefix, &full]),
                span: err
                    .span
                    .clone()
                    .or_else(|| find_key(table, &full))
                    .or_else(|| scope.fallback.clone()),
                message,
                help,
                top_key: top_key(&full),
                suggestion,
            }
        }
        kind => {
            let span = err.span.clone().or_else(|| scope.fallback.clone());
            let mut problem = DecodeProblem {
                kind: DiagnosticKind::InvalidValue,
                field: join(&[scope.prefix, &path]),
                span,
                message: plain_types(&first_line(&err.to_string())),
                help: None,
                top_key: top_key(&path),
                suggestion: None,
            };
            match kind {
                // A TOML date-time where a string goes: serde sees a table (toml's private
                // date-time wrapper); the author wrote a time without quotes.
                DecodeErrorKind::InvalidType {
                    found_table: true, ..
                } => {
                    if let Some(DeValue::Datetime(t)) = find_value(table, &path) {
                        let key = path.rsplit('.').next().unwrap_or(&path);
                        problem.message = format!(
                            "`{key}` is a TOML date-time without quotes; times are written as strings here"
                        );
                        problem.help = Some(format!("write it in quotes: {key} = \"{t}\""));
                    }
                }
                DecodeErrorKind::UnknownVariant { variant, expected } => {
                    problem.help = did_you_mean(variant, expected.iter().copied())
                        .map(|s| format!("did you mean `{s}`?"));
                }
                _ => {}
            }
            problem
        }
    }
}

impl TableNames<'_> {
    /// How a message names the table at `inner` below `prefix`, and its `[section]` name for
    /// a help, when it has one.
    fn name(&self, prefix: &str, inner: &str) -> (String, Option<String>) {
        match *self {
            TableNames::Stage(stage) => (format!("`{stage}`"), Some(stage.to_owned())),
            TableNames::Sections(noun) => {
                let section = [prefix, inner]
                    .iter()
                    .filter(|p| !p.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(".");
                if section.is_empty() {
                    (noun.to_owned(), None)
                } else {
                    (format!("[{section}]"), Some(section))
                }
            }
        }
    }
}

/// The entry at a dotted key path (`cluster.name`).
fn find_entry<'t, 'a>(
    table: &'t DeTable<'a>,
    path: &str,
) -> Option<(Range<usize>, &'t toml::Spanned<DeValue<'a>>)> {
    let mut parts = path.split('.').filter(|p| !p.is_empty()).peekable();
    let mut current = table;
    while let Some(part) = parts.next() {
        let (k, v) = current.iter().find(|(k, _)| k.get_ref() == part)?;
        if parts.peek().is_none() {
            return Some((k.span(), v));
        }
        match v.get_ref() {
            DeValue::Table(t) => current = t,
            _ => return None,
        }
    }
    None
}

/// The span of the key at a dotted key path.
pub(crate) fn find_key(table: &DeTable<'_>, path: &str) -> Option<Range<usize>> {
    find_entry(table, path).map(|(k, _)| k)
}

fn find_value<'t, 'a>(table: &'t DeTable<'a>, path: &str) -> Option<&'t DeValue<'a>> {
    find_entry(table, path).map(|(_, v)| v.get_ref())
}

/// The span of the value at a dotted key path.
pub(crate) fn find_value_span(table: &DeTable<'_>, path: &str) -> Option<Range<usize>> {
    find_entry(table, path).map(|(_, v)| v.span())
}

/// Rewrites serde's Rust type names into what a file's author writes.
fn plain_types(message: &str) -> String {
    let mut m = message.to_owned();
    for (rust, plain) in [
        (
            "expected u64",
            "expected a whole number (without quotes), e.g. 1000",
        ),
        (
            "expected u32",
            "expected a whole number (without quotes), e.g. 4",
        ),
        (
            "expected usize",
            "expected a whole number (without quotes), e.g. 1024",
        ),
        ("expected i64", "expected a whole number (without quotes)"),
        ("expected f64", "expected a number (without quotes)"),
        (
            "expected a boolean",
            "expected true or false (without quotes)",
        ),
        ("expected a string", "expected a string in quotes"),
    ] {
        m = m.replace(rust, plain);
    }
    m
}

/// The first line of a message.
pub(crate) fn first_line(s: &str) -> String {
    s.trim().lines().next().unwrap_or_default().to_owned()
}

/// Names as a list for a message: `` `a`, `b` ``.
pub(crate) fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
