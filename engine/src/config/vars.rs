//! Template variables: `[vars]` in the file (plain TOML, read before rendering), then
//! `--vars-file FILE.toml`, then `--var key=value` (later wins).

use std::collections::BTreeMap;

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

/// Merges file vars, vars files and `--var` pairs, in that order.
pub fn merge(
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
        vars.insert(k.clone(), toml::Value::String(v.clone()));
    }
    Ok(vars)
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
}
