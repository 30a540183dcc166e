//! Small pieces of SQL text shared by the renderers: quoting, literals, generated files.

/// How an engine quotes identifiers and string literals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quoting {
    /// `"name"`, `'text'` with `''` (DuckDB, Trino/Athena views).
    Ansi,
    /// `` `name` ``, `'text'` with backslash escapes (Hive, Athena DDL, Drill).
    Backtick,
}

impl Quoting {
    /// A quoted identifier.
    pub fn ident(self, name: &str) -> String {
        match self {
            Quoting::Ansi => format!("\"{}\"", name.replace('"', "\"\"")),
            Quoting::Backtick => format!("`{}`", name.replace('`', "``")),
        }
    }

    /// A string literal.
    pub fn string(self, text: &str) -> String {
        match self {
            Quoting::Ansi => format!("'{}'", text.replace('\'', "''")),
            Quoting::Backtick => {
                format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
            }
        }
    }
}

/// One generated file: SQL statements, or a JSON document (Drill storage plugins).
#[derive(Debug, Clone, PartialEq)]
pub enum GeneratedFile {
    /// SQL statements, each without its terminating `;`.
    Sql {
        /// Path below the sink's `out`, e.g. `hive/archive.sql`.
        path: String,
        /// Comment lines at the top (without the comment marker).
        header: Vec<String>,
        /// The statements.
        statements: Vec<String>,
    },
    /// A JSON document.
    Json {
        /// Path below the sink's `out`, e.g. `drill/storage-flux.json`.
        path: String,
        /// The document.
        value: serde_json::Value,
    },
}

impl GeneratedFile {
    /// The file's path below `out`.
    pub fn path(&self) -> &str {
        match self {
            GeneratedFile::Sql { path, .. } | GeneratedFile::Json { path, .. } => path,
        }
    }

    /// The file's content: for SQL, the header as `--` comments, then each statement followed
    /// by `;` and a blank line.
    pub fn text(&self) -> String {
        match self {
            GeneratedFile::Sql {
                header, statements, ..
            } => {
                let mut out = String::new();
                for line in header {
                    if line.is_empty() {
                        out.push_str("--\n");
                    } else {
                        out.push_str(&format!("-- {line}\n"));
                    }
                }
                for s in statements {
                    out.push('\n');
                    out.push_str(s);
                    out.push_str(";\n");
                }
                out
            }
            GeneratedFile::Json { value, .. } => {
                let mut s = serde_json::to_string_pretty(value).expect("JSON serializes");
                s.push('\n');
                s
            }
        }
    }
}

/// Joins select-list items, one per line, indented.
pub fn list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("  {i}"))
        .collect::<Vec<_>>()
        .join(",\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(Quoting::Ansi.ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(Quoting::Backtick.ident("hour"), "`hour`");
        assert_eq!(Quoting::Ansi.string("it's"), "'it''s'");
        assert_eq!(Quoting::Backtick.string("it's \\"), "'it\\'s \\\\'");
    }

    #[test]
    fn sql_files_end_statements_with_semicolons() {
        let f = GeneratedFile::Sql {
            path: "x.sql".into(),
            header: vec!["one".into(), String::new()],
            statements: vec!["SELECT 1".into(), "SELECT 2".into()],
        };
        assert_eq!(f.text(), "-- one\n--\n\nSELECT 1;\n\nSELECT 2;\n");
    }
}
