//! Template variables: `[vars]` in the file (plain TOML, read before rendering), then
//! `--vars-file FILE.toml`, then `--var key=value` (later wins).

use std::collections::{BTreeMap, BTreeSet};

use crate::diagnostic::{Diagnostic, LineIndex};

/// Variables and where they came from, in override order.
#[derive(Debug, Clone, Default)]
pub struct VarOverrides {
    /// `--vars-file` paths, in order.
    pub files: Vec<String>,
    /// `--var key=value` pairs, in order.
    pub pairs: Vec<(String, String)>,
}

/// Parses one `--var key=value` argument.
pub fn parse_var_arg(arg: &str) -> Result<(String, String), String> {
    let (k, v) = arg
        .split_once('=')
        .ok_or_else(|| format!("--var {arg:?}: expected key=value"))?;
    let k = k.trim();
    if k.is_empty() || !k.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err(format!(
            "--var {arg:?}: the name must be letters, digits and underscores"
        ));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// Reads the `[vars]` table of a (possibly templated) pipeline file without rendering it: the
/// lines from the `[vars]` header to the next table header must be plain TOML.
pub fn file_vars(file: &str, text: &str) -> Result<BTreeMap<String, toml::Value>, Diagnostic> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let Some(start) = lines.iter().position(|l| {
        l.trim() == "[vars]"
            || l.trim_start().starts_with("[vars]")
                && l.trim_start()["[vars]".len()..]
                    .trim_start()
                    .starts_with('#')
    }) else {
        return Ok(BTreeMap::new());
    };
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .map(|i| start + 1 + i)
        .unwrap_or(lines.len());
    // Keep the preceding lines as blank lines so parse errors carry the file's line numbers.
    let mut snippet = "\n".repeat(start + 1);
    for l in &lines[start + 1..end] {
        snippet.push_str(l);
    }
    if crate::config::template::is_template(&snippet) {
        let idx = LineIndex::new(text);
        let line = lines[start + 1..end]
            .iter()
            .position(|l| crate::config::template::is_template(l))
            .map(|i| start + 2 + i);
        return Err(Diagnostic::error(file, "[vars] must be plain TOML without template syntax")
            .at(line.and_then(|l| idx.line(l)))
            .field("vars")
            .help("[vars] holds the defaults that templates use; compute values in the template instead"));
    }
    let table: toml::Table = toml::from_str(&snippet).map_err(|e| {
        let idx = LineIndex::new(&snippet);
        let loc = e.span().map(|s| {
            let mut l = idx.locate(s);
            l.text = lines
                .get(l.line - 1)
                .map(|t| t.trim_end().to_owned())
                .unwrap_or_default();
            l
        });
        let mut d = Diagnostic::error(file, format!("invalid [vars]: {}", e.message().trim_end()))
            .at(loc)
            .field("vars");
        d.help = crate::config::load::quoting_help(e.message());
        d
    })?;
    Ok(table.into_iter().collect())
}

/// Merges file vars, vars files and `--var` pairs, in that order; `file` (the pipeline file)
/// names errors in `--var` values.
pub fn merge(
    file: &str,
    mut vars: BTreeMap<String, toml::Value>,
    overrides: &VarOverrides,
) -> Result<BTreeMap<String, toml::Value>, Diagnostic> {
    for path in &overrides.files {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Diagnostic::error(path, format!("cannot read vars file: {e}")))?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| {
            let idx = LineIndex::new(&text);
            Diagnostic::error(
                path,
                format!("invalid vars file: {}", e.message().trim_end()),
            )
            .at(e.span().map(|s| idx.locate(s)))
        })?;
        vars.extend(table);
    }
    for (k, v) in &overrides.pairs {
        let value = typed(file, k, v, vars.get(k))?;
        vars.insert(k.clone(), value);
    }
    Ok(vars.into_iter().map(|(k, v)| (k, plain(v))).collect())
}

/// A `--var` value as the type of the variable's default: a variable whose default (in
/// `[vars]` or a vars file) is a number or a boolean takes a number or a boolean, so that
/// `rate = {{ rate }}` stays a number and `--var flag=false` is false. Other values are strings.
/// The error names the variable, not the value.
fn typed(
    file: &str,
    name: &str,
    text: &str,
    default: Option<&toml::Value>,
) -> Result<toml::Value, Diagnostic> {
    let err = |expected: &str, default: &toml::Value| {
        Diagnostic::error(
            file,
            format!("`--var {name}` must be {expected}, like its default `{name} = {default}`"),
        )
        .help(format!(
            "the default in [vars] or the vars file sets the type of `{name}`"
        ))
    };
    Ok(match default {
        Some(d @ toml::Value::Integer(_)) => toml::Value::Integer(
            text.trim()
                .parse::<i64>()
                .map_err(|_| err("a whole number", d))?,
        ),
        Some(d @ toml::Value::Float(_)) => {
            let f = text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .ok_or_else(|| err("a number", d))?;
            toml::Value::Float(f)
        }
        Some(d @ toml::Value::Boolean(_)) => toml::Value::Boolean(match text.trim() {
            "true" => true,
            // `--var flag=` has always meant false.
            "false" | "" => false,
            _ => return Err(err("`true` or `false`", d)),
        }),
        _ => toml::Value::String(text.to_owned()),
    })
}

/// TOML date-times become their text: pipeline keys take times as strings.
fn plain(value: toml::Value) -> toml::Value {
    match value {
        toml::Value::Datetime(d) => toml::Value::String(d.to_string()),
        toml::Value::Array(items) => toml::Value::Array(items.into_iter().map(plain).collect()),
        toml::Value::Table(t) => {
            toml::Value::Table(t.into_iter().map(|(k, v)| (k, plain(v))).collect())
        }
        other => other,
    }
}

/// Warnings for `--var` names the template does not use (`used`): a misspelt name would
/// otherwise leave the default in place without a word.
pub fn unused(overrides: &VarOverrides, used: &BTreeSet<String>, file: &str) -> Vec<Diagnostic> {
    let mut seen = BTreeSet::new();
    overrides
        .pairs
        .iter()
        .filter(|(k, _)| !used.contains(k) && seen.insert(k.clone()))
        .map(|(k, _)| {
            let d = Diagnostic::warning(file, format!("`--var {k}` is not used by this file"));
            match crate::diagnostic::did_you_mean(k, used.iter().map(String::as_str)) {
                Some(s) => d.help(format!("did you mean `--var {s}`?")),
                None if used.is_empty() => d.help("the file uses no template variables"),
                None => d.help(format!(
                    "the file uses {}",
                    used.iter()
                        .map(|u| format!("`{u}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vars_before_rendering() {
        let text = "[pipeline]\nname = \"{{ x }}\"\n\n[vars]\nstream = \"orders\"\nn = 3\n\n[sources.a]\ntype = \"{{ t }}\"\n";
        let vars = file_vars("p.toml", text).unwrap();
        assert_eq!(vars["stream"].as_str(), Some("orders"));
        assert_eq!(vars["n"].as_integer(), Some(3));
        assert_eq!(vars.len(), 2);
    }

    #[test]
    fn templated_vars_are_rejected_with_their_line() {
        let text = "[vars]\na = 1\nb = \"{{ c }}\"\n";
        let err = file_vars("p.toml", text).unwrap_err();
        assert_eq!(err.location.unwrap().line, 3);
    }

    #[test]
    fn later_sources_win() {
        let vars = file_vars("p", "[vars]\na = \"1\"\nb = \"1\"\n").unwrap();
        let merged = merge(
            "p",
            vars,
            &VarOverrides {
                files: vec![],
                pairs: vec![("b".into(), "2".into()), ("b".into(), "3".into())],
            },
        )
        .unwrap();
        assert_eq!(merged["a"].as_str(), Some("1"));
        assert_eq!(merged["b"].as_str(), Some("3"));
        assert!(parse_var_arg("novalue").is_err());
        assert_eq!(parse_var_arg("a=b=c").unwrap(), ("a".into(), "b=c".into()));
    }

    #[test]
    fn var_values_take_the_type_of_their_default() {
        let defaults =
            file_vars("p", "[vars]\nrate = 800\nratio = 0.5\nflag = true\nname = \"x\"\nat = 2026-11-25T10:00:00Z\n")
                .unwrap();
        let pairs = |p: &[(&str, &str)]| VarOverrides {
            files: vec![],
            pairs: p
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let merged = merge(
            "p",
            defaults.clone(),
            &pairs(&[
                ("rate", "900"),
                ("ratio", "2"),
                ("flag", "false"),
                ("name", "12"),
                ("new", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(merged["rate"], toml::Value::Integer(900));
        assert_eq!(merged["ratio"], toml::Value::Float(2.0));
        assert_eq!(merged["flag"], toml::Value::Boolean(false));
        assert_eq!(merged["name"].as_str(), Some("12"));
        assert_eq!(merged["new"].as_str(), Some("true"));
        assert_eq!(merged["at"].as_str(), Some("2026-11-25T10:00:00Z"));
        assert_eq!(
            merge("p", defaults.clone(), &pairs(&[("flag", "")])).unwrap()["flag"],
            toml::Value::Boolean(false)
        );
        for (k, v) in [
            ("rate", "5\n[sinks.evil]"),
            ("rate", "1.5"),
            ("ratio", "nan"),
            ("flag", "yes"),
        ] {
            let err = merge("p", defaults.clone(), &pairs(&[(k, v)])).unwrap_err();
            assert!(
                err.message.starts_with(&format!("`--var {k}` must be")),
                "{}",
                err.message
            );
            assert!(
                !err.message.contains(v),
                "the value is not repeated: {}",
                err.message
            );
        }
    }

    #[test]
    fn unused_vars_draw_a_warning() {
        let used: BTreeSet<String> = ["incident".to_owned(), "region".to_owned()].into();
        let overrides = VarOverrides {
            files: vec![],
            pairs: vec![
                ("incident".into(), "x".into()),
                ("regoin".into(), "eu".into()),
                ("zzz".into(), "1".into()),
                ("zzz".into(), "2".into()),
            ],
        };
        let w = unused(&overrides, &used, "p.toml");
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].message, "`--var regoin` is not used by this file");
        assert_eq!(w[0].help.as_deref(), Some("did you mean `--var region`?"));
        assert!(!w[0].is_error());
        assert_eq!(
            w[1].help.as_deref(),
            Some("the file uses `incident`, `region`")
        );
        let plain = unused(&overrides, &BTreeSet::new(), "p.toml");
        assert_eq!(
            plain[0].help.as_deref(),
            Some("the file uses no template variables")
        );
    }
}
