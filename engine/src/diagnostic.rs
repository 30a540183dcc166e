//! Diagnostics: where (file, line, column, key path) and what (message, help), rendered like a
//! compiler error with the offending line and a caret.
//!
//! ```text
//! error: unknown key `pth`, expected one of `path`, `format`
//!   --> pipelines/bad.toml:12:1
//!    |
//! 12 | pth = "out.jsonl"
//!    | ^^^
//!    = key: sinks.out.pth
//!    = help: did you mean `path`?
//! ```

use std::fmt;
use std::ops::Range;

/// How bad it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The pipeline cannot run.
    Error,
    /// The pipeline runs, but something looks wrong.
    Warning,
}

/// What kind of problem a diagnostic reports: for programs that act on it (the compile passes,
/// the console's API, scripts reading JSON); the message says it to people. Stable names in
/// JSON (`unknown_key`, …).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosticKind {
    /// Anything else.
    #[default]
    Other,
    /// The file is not valid TOML.
    Syntax,
    /// The template does not render (syntax, budget, a filter's error).
    Template,
    /// A template variable is used but set nowhere.
    MissingVariable,
    /// A stage `type` that its section does not have.
    UnknownKind,
    /// A key the table does not have.
    UnknownKey,
    /// A required key is not set.
    MissingKey,
    /// A value of the wrong type or out of range, or a setting the stage refuses.
    InvalidValue,
    /// Two stages share an id.
    DuplicateId,
    /// `inputs` names a stage that does not exist.
    UnknownInput,
    /// `inputs` names a sink's main output (sinks have none).
    ReadsSink,
    /// The stages form a cycle.
    Cycle,
    /// A stage's output is read by nothing.
    UnreadOutput,
    /// Two stages write one place, or a stage writes what the pipeline reads.
    SharedPlace,
}

/// A position in a source file, resolved for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// The text of the line.
    pub text: String,
    /// How many characters the caret covers (at least 1).
    pub width: usize,
}

/// One problem found in a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file, as given on the command line.
    pub file: String,
    /// Where in the file, when known (boxed to keep `Result<_, Diagnostic>` small).
    pub location: Option<Box<Location>>,
    /// The key path, e.g. `sinks.out.path`, when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
    /// What kind of problem it is.
    pub kind: DiagnosticKind,
}

impl Diagnostic {
    /// An error about `file`.
    pub fn error(file: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: file.to_owned(),
            location: None,
            field: None,
            message: message.into(),
            help: None,
            kind: DiagnosticKind::Other,
        }
    }

    /// An error of `kind` about `file`.
    pub fn error_of(kind: DiagnosticKind, file: &str, message: impl Into<String>) -> Self {
        Diagnostic::error(file, message).kind(kind)
    }

    /// A warning about `file`.
    pub fn warning(file: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(file, message)
        }
    }

    /// Sets the key path.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Sets the kind.
    pub fn kind(mut self, kind: DiagnosticKind) -> Self {
        self.kind = kind;
        self
    }

    /// Sets the help text.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Sets the location.
    pub fn at(mut self, location: Option<Location>) -> Self {
        self.location = location.map(Box::new);
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Replaces every occurrence of `secrets` (values read with `env("…")`) in the message and
    /// the help, as written and as serde, TOML and JSON quote them. The location shows the
    /// template's own line (`{{ env("TOKEN") }}`), never the value.
    pub fn redact(&mut self, secrets: &[String]) {
        let mut forms: Vec<String> = Vec::new();
        for s in secrets.iter().filter(|s| !s.is_empty()) {
            let debug = format!("{s:?}");
            let json = serde_json::to_string(s).unwrap_or_default();
            forms.push(s.clone());
            forms.push(debug[1..debug.len() - 1].to_owned());
            if json.len() >= 2 {
                forms.push(json[1..json.len() - 1].to_owned());
            }
        }
        // Longest first, so a value inside another is not half-replaced.
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        forms.dedup();
        for text in [Some(&mut self.message), self.help.as_mut()]
            .into_iter()
            .flatten()
        {
            for form in &forms {
                if text.contains(form.as_str()) {
                    *text = text.replace(form.as_str(), "[value of env()]");
                }
            }
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(f, "{label}: {}", self.message)?;
        match &self.location {
            Some(loc) => {
                let num = loc.line.to_string();
                let pad = " ".repeat(num.len());
                writeln!(f, "{pad}--> {}:{}:{}", self.file, loc.line, loc.column)?;
                writeln!(f, "{pad} |")?;
                writeln!(f, "{num} | {}", loc.text)?;
                writeln!(
                    f,
                    "{pad} | {}{}",
                    " ".repeat(loc.column.saturating_sub(1)),
                    "^".repeat(loc.width.max(1))
                )?;
                if let Some(field) = &self.field {
                    writeln!(f, "{pad} = key: {field}")?;
                }
                if let Some(help) = &self.help {
                    writeln!(f, "{pad} = help: {help}")?;
                }
            }
            None => {
                writeln!(f, " --> {}", self.file)?;
                if let Some(field) = &self.field {
                    writeln!(f, "  = key: {field}")?;
                }
                if let Some(help) = &self.help {
                    writeln!(f, "  = help: {help}")?;
                }
            }
        }
        Ok(())
    }
}

/// Resolves byte offsets of a text into lines and columns.
#[derive(Debug, Clone)]
pub struct LineIndex {
    text: String,
    starts: Vec<usize>,
}

impl LineIndex {
    /// Indexes `text`.
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex {
            text: text.to_owned(),
            starts,
        }
    }

    /// The location of a byte range (the caret covers the range's part on its first line).
    /// Offsets need not fall on character boundaries (some parsers' error spans end inside a
    /// character): the range is widened to whole characters.
    pub fn locate(&self, span: Range<usize>) -> Location {
        let start = self.text.floor_char_boundary(span.start);
        let line_idx = self.starts.partition_point(|&s| s <= start) - 1;
        let line_start = self.starts[line_idx];
        let line_end = self
            .starts
            .get(line_idx + 1)
            .map(|e| e - 1)
            .unwrap_or(self.text.len());
        let line_text = self.text[line_start..line_end].trim_end_matches('\r');
        let column = self.text[line_start..start].chars().count() + 1;
        // A span may start at the `\r` of a CRLF line ending, past the line's trimmed text.
        let end = span
            .end
            .clamp(start, (line_start + line_text.len()).max(start));
        let end = self.text.ceil_char_boundary(end);
        let width = self.text[start..end].chars().count().max(1);
        Location {
            line: line_idx + 1,
            column,
            text: line_text.to_owned(),
            width,
        }
    }

    /// The location of the start of a 1-based line.
    pub fn line(&self, line: usize) -> Option<Location> {
        let start = *self.starts.get(line.checked_sub(1)?)?;
        let mut loc = self.locate(start..start);
        loc.width = loc.text.chars().count().max(1);
        Some(loc)
    }

    /// The indexed text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// Suggests the closest candidate to a misspelt name.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_covers_quoted_forms() {
        let secret = "to\"k\\en\n".to_owned();
        let mut d = Diagnostic::error(
            "p",
            format!(
                "invalid size {secret:?}; also {secret} and {}",
                serde_json::to_string(&secret).unwrap()
            ),
        )
        .help(format!("not {secret}"));
        d.redact(&[secret.clone(), String::new()]);
        assert_eq!(
            d.message,
            "invalid size \"[value of env()]\"; also [value of env()] and \"[value of env()]\""
        );
        assert_eq!(d.help.as_deref(), Some("not [value of env()]"));
    }

    #[test]
    fn renders_with_a_caret() {
        let idx = LineIndex::new("[sinks.out]\npth = \"x\"\n");
        let d = Diagnostic::error("p.toml", "unknown key `pth`")
            .at(Some(idx.locate(12..15)))
            .field("sinks.out.pth")
            .help("did you mean `path`?");
        assert_eq!(
            d.to_string(),
            "error: unknown key `pth`\n --> p.toml:2:1\n  |\n2 | pth = \"x\"\n  | ^^^\n  = key: sinks.out.pth\n  = help: did you mean `path`?\n"
        );
    }

    /// Found by the `pipeline_load` fuzz target (`{%→`: minijinja's error range ends inside `→`).
    #[test]
    fn a_span_ending_inside_a_character_covers_that_character() {
        let idx = LineIndex::new("{%→ x");
        let loc = idx.locate(0..3);
        assert_eq!((loc.line, loc.column, loc.width), (1, 1, 3));
        let loc = idx.locate(3..4);
        assert_eq!((loc.column, loc.width), (3, 1));
    }

    /// Found by the `pipeline_load` fuzz target: a TOML error at the end of a file whose last
    /// line ends in `\r`, or at the `\n` of a CRLF line, lies past the line's trimmed text.
    #[test]
    fn a_span_past_the_carriage_return_of_a_line_is_located() {
        let idx = LineIndex::new("[a]\r\nkey\r");
        let loc = idx.locate(9..9);
        assert_eq!((loc.line, loc.column, loc.text.as_str()), (2, 5, "key"));
        let loc = idx.locate(4..5);
        assert_eq!((loc.line, loc.column, loc.text.as_str()), (1, 5, "[a]"));
        let d = Diagnostic::error("p.toml", "expected `=`").at(Some(idx.locate(9..10)));
        assert!(d.to_string().contains("2 | key\n"));
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("fliter", ["filter", "annotate"]),
            Some("filter")
        );
        assert_eq!(did_you_mean("zzz", ["filter", "annotate"]), None);
    }
}
