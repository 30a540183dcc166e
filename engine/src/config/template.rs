//! Renders a pipeline file that contains minijinja syntax, keeping a map from every byte of the
//! rendered text back to the template, so diagnostics point at the line the user wrote.
//!
//! Undefined variables are errors (strict mode) that name the variable; `env("NAME")` reads an
//! environment variable (an error when unset); `{{ x | default(y) }}` works as usual.

use std::collections::BTreeMap;

use minijinja::{Environment, ErrorKind, OutputSpan, OutputSpanKind, UndefinedBehavior};

use crate::diagnostic::{Diagnostic, LineIndex};

/// True when the text uses template syntax and must be rendered before parsing.
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// The rendered text and how its bytes map back to the template.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The rendered TOML text.
    pub text: String,
    spans: Vec<OutputSpan>,
}

impl Rendered {
    /// A text that was not a template: offsets map to themselves.
    pub fn plain(text: &str) -> Self {
        Rendered {
            text: text.to_owned(),
            spans: Vec::new(),
        }
    }

    /// Maps a byte offset of the rendered text to a byte offset of the template source.
    pub fn source_offset(&self, offset: usize) -> usize {
        if self.spans.is_empty() {
            return offset;
        }
        let i = self
            .spans
            .partition_point(|s| s.output_range().end <= offset)
            .min(self.spans.len() - 1);
        let span = &self.spans[i];
        let out = span.output_range();
        let src = span.source_range();
        match span.kind() {
            OutputSpanKind::Raw => {
                (src.start + offset.saturating_sub(out.start)).min(src.end.max(src.start))
            }
            _ => src.start,
        }
    }
}

/// Renders `template` with `vars`; errors become diagnostics about `file`.
pub fn render(
    file: &str,
    template: &str,
    vars: &BTreeMap<String, toml::Value>,
) -> Result<Rendered, Diagnostic> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.add_function("env", |name: String| -> Result<String, minijinja::Error> {
        std::env::var(&name).map_err(|_| {
            minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("environment variable `{name}` is not set"),
            )
        })
    });
    let index = LineIndex::new(template);
    let tmpl = env
        .template_from_named_str(file, template)
        .map_err(|e| template_error(file, &index, &e, &[]))?;
    let ctx = minijinja::Value::from(minijinja::value::Serde(vars));
    let (text, spans) = tmpl.render_with_spans(ctx).map_err(|e| {
        let mut missing: Vec<String> = tmpl
            .undeclared_variables(false)
            .into_iter()
            .filter(|v| !vars.contains_key(v) && v != "env")
            .collect();
        missing.sort();
        template_error(file, &index, &e, &missing)
    })?;
    Ok(Rendered { text, spans })
}

fn template_error(
    file: &str,
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
            return Diagnostic::error(file, format!("template variable `{first}` is not defined"))
                .at(location)
                .help(help);
        }
        return Diagnostic::error(
            file,
            format!("template: undefined value {detail}")
                .trim_end()
                .to_owned(),
        )
        .at(location);
    }
    let message = if detail.is_empty() {
        format!("template: {}", err.kind())
    } else {
        format!("template: {detail}")
    };
    let help = if detail.contains("expected end of block")
        || detail.contains("unexpected end of input")
    {
        Some("a `{% if %}` or `{% for %}` block is not closed; add its `{% endif %}` / `{% endfor %}`".to_owned())
    } else if detail.contains("environment variable") {
        Some("export the variable before running, or read the value from a template variable with a default in [vars]".to_owned())
    } else {
        None
    };
    let mut d = Diagnostic::error(file, message).at(location);
    d.help = help;
    d
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
