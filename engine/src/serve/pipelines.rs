//! The pipelines directory: listing its pipeline files and templates with their variables,
//! resolving a name to a file inside it (no `..`, no symbolic link leading out), and checking
//! a file with variables through the same loader and compiler as `validate` and `run`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::api::ApiError;
use crate::compile::{self, Checked};
use crate::config::{self, VarOverrides, template, vars};
use crate::diagnostic::{Diagnostic, Severity};

/// The most files listed.
const MAX_FILES: usize = 500;

/// The pipelines directory, canonicalized at start.
#[derive(Debug, Clone)]
pub struct PipelineDir {
    root: PathBuf,
}

/// One template variable of a file.
#[derive(Debug, Clone, Serialize)]
pub struct VarInfo {
    /// Its name.
    pub name: String,
    /// Its default from `[vars]`, when it has one.
    pub default: Option<serde_json::Value>,
    /// True when the file uses it and has no default: a run must set it.
    pub required: bool,
}

/// A pipeline file as the list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineInfo {
    /// Its name: the path below the pipelines directory (`replay.toml.j2`).
    pub name: String,
    /// True when it uses template syntax.
    pub template: bool,
    /// `[pipeline] description`, when found.
    pub description: Option<String>,
    /// Its variables: those in `[vars]` and those the template uses.
    pub vars: Vec<VarInfo>,
    /// True when it validates with its defaults alone.
    pub valid: bool,
    /// How many errors validating with the defaults finds (a template with required variables
    /// has at least one).
    pub errors: usize,
}

/// A diagnostic as JSON: the same fields the CLI prints.
#[derive(Debug, Clone, Serialize)]
pub struct DiagnosticJson {
    /// `error` or `warning`.
    pub severity: &'static str,
    /// The file.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// How many characters the caret covers.
    pub width: Option<usize>,
    /// The text of the line.
    pub text: Option<String>,
    /// The key path (`sinks.out.path`).
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
    /// What kind of problem it is (`unknown_key`, `missing_variable`, …; see
    /// [`DiagnosticKind`](crate::diagnostic::DiagnosticKind)).
    pub kind: crate::diagnostic::DiagnosticKind,
    /// The diagnostic as the CLI prints it.
    pub rendered: String,
}

impl From<&Diagnostic> for DiagnosticJson {
    fn from(d: &Diagnostic) -> Self {
        let loc = d.location.as_deref();
        DiagnosticJson {
            severity: match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            },
            file: d.file.clone(),
            line: loc.map(|l| l.line),
            column: loc.map(|l| l.column),
            width: loc.map(|l| l.width),
            text: loc.map(|l| l.text.clone()),
            field: d.field.clone(),
            message: d.message.clone(),
            help: d.help.clone(),
            kind: d.kind,
            rendered: d.to_string(),
        }
    }
}

/// Diagnostics as JSON.
pub fn diagnostics_json(diags: &[Diagnostic]) -> Vec<DiagnosticJson> {
    diags.iter().map(DiagnosticJson::from).collect()
}

impl PipelineDir {
    /// Opens the directory; the error names it.
    pub fn open(dir: &str) -> Result<PipelineDir, String> {
        let root = std::fs::canonicalize(dir).map_err(|e| format!("--pipelines {dir}: {e}"))?;
        if !root.is_dir() {
            return Err(format!("--pipelines {dir}: not a directory"));
        }
        Ok(PipelineDir { root })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file a name stands for: a relative path of plain segments ending in `.toml` or
    /// `.j2`, which exists, and whose real path (links resolved) stays inside the directory.
    pub fn resolve(&self, name: &str) -> Result<PathBuf, ApiError> {
        let plain = !name.is_empty()
            && name.len() <= 255
            && name.split('/').all(|seg| {
                !seg.is_empty()
                    && !seg.starts_with('.')
                    && seg
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            })
            && (name.ends_with(".toml") || name.ends_with(".j2"));
        if !plain {
            return Err(ApiError::bad_request(format!(
                "pipeline {name:?}: a name from the list (letters, digits, `._-`, `/` between folders; no `..`), ending in .toml or .j2"
            )));
        }
        let unknown = || ApiError::not_found(format!("no pipeline {name:?}"));
        let real = std::fs::canonicalize(self.root.join(name)).map_err(|_| unknown())?;
        if !real.starts_with(&self.root) || !real.is_file() || is_cluster_file(&real) {
            return Err(unknown());
        }
        Ok(real)
    }

    /// Every pipeline file and template below the directory (hidden entries and cluster files
    /// left out), sorted by name.
    pub fn list(&self) -> Vec<PipelineInfo> {
        let mut names = Vec::new();
        collect(&self.root, &self.root, &mut names);
        names.sort();
        names.truncate(MAX_FILES);
        names
            .into_iter()
            .filter_map(|name| {
                let path = self.resolve(&name).ok()?;
                let text = std::fs::read_to_string(&path).ok()?;
                Some(describe(&name, &text))
            })
            .collect()
    }

    /// Loads and compiles a pipeline with the request's variables (`--var` pairs).
    pub fn check(&self, name: &str, pairs: Vec<(String, String)>) -> Result<Checked, ApiError> {
        let path = self.resolve(name)?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ApiError::not_found(format!("pipeline {name:?}: {e}")))?;
        Ok(check_text(name, &text, pairs))
    }

    /// Renders a pipeline with the request's variables: the text, or the diagnostic.
    pub fn render(
        &self,
        name: &str,
        pairs: Vec<(String, String)>,
    ) -> Result<Result<String, Diagnostic>, ApiError> {
        let path = self.resolve(name)?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ApiError::not_found(format!("pipeline {name:?}: {e}")))?;
        let overrides = VarOverrides {
            files: Vec::new(),
            pairs,
        };
        // Values read with `env("…")` are the server's environment: never sent to a client.
        Ok(config::load::render_text(name, &text, &overrides).map(|r| redact(&r.text, &r.secrets)))
    }
}

/// Loads and compiles a pipeline's text with `--var` pairs; `name` names it in diagnostics.
pub fn check_text(name: &str, text: &str, pairs: Vec<(String, String)>) -> Checked {
    let overrides = VarOverrides {
        files: Vec::new(),
        pairs,
    };
    compile::check(config::load_text(name, text, &overrides))
}

/// `text` with every value of `secrets` replaced by `[value of env()]`, longest first.
fn redact(text: &str, secrets: &[String]) -> String {
    let mut secrets: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_owned();
    for s in secrets {
        out = out.replace(s.as_str(), "[value of env()]");
    }
    out
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if out.len() >= MAX_FILES {
            return;
        }
        let path = e.path();
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_dir() {
            collect(root, &path, out);
        } else if path.extension().is_some_and(|x| x == "toml" || x == "j2")
            && let Ok(rel) = path.strip_prefix(root)
        {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// A cluster file has a `[cluster]` table (see `validate`).
fn is_cluster_file(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| {
        text.lines()
            .any(|l| l.trim_start().starts_with("[cluster]"))
    })
}

/// What the list says about one file.
fn describe(name: &str, text: &str) -> PipelineInfo {
    let defaults: BTreeMap<String, toml::Value> = vars::file_vars(name, text).unwrap_or_default();
    let is_template = template::is_template(text);
    let used = if is_template {
        template::variables(text)
    } else {
        Default::default()
    };
    let mut all: BTreeMap<String, VarInfo> = BTreeMap::new();
    for (k, v) in &defaults {
        all.insert(
            k.clone(),
            VarInfo {
                name: k.clone(),
                default: serde_json::to_value(v).ok(),
                required: false,
            },
        );
    }
    for k in used {
        all.entry(k.clone()).or_insert(VarInfo {
            name: k,
            default: None,
            required: true,
        });
    }
    let checked = check_text(name, text, Vec::new());
    let errors = checked.diagnostics.iter().filter(|d| d.is_error()).count();
    PipelineInfo {
        name: name.to_owned(),
        template: is_template,
        description: description(text),
        vars: all.into_values().collect(),
        valid: checked.pipeline.is_some(),
        errors,
    }
}

/// `description = "…"` of the `[pipeline]` table, read line by line (a template cannot be
/// parsed before it is rendered).
fn description(text: &str) -> Option<String> {
    let mut in_pipeline = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_pipeline = t.starts_with("[pipeline]");
        } else if in_pipeline && t.starts_with("description") {
            let table: toml::Table = toml::from_str(t).ok()?;
            return table
                .get("description")
                .and_then(|v| v.as_str())
                .map(str::to_owned);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_inside_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.toml"), "").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(
            outside.path().join("secret.toml"),
            dir.path().join("link.toml"),
        )
        .unwrap();
        let p = PipelineDir::open(dir.path().to_str().unwrap()).unwrap();
        assert!(p.resolve("a.toml").is_ok());
        for bad in [
            "../a.toml",
            "/etc/passwd",
            "a.txt",
            ".a.toml",
            "x/../a.toml",
            "",
        ] {
            assert_eq!(p.resolve(bad).unwrap_err().status, 400, "{bad}");
        }
        assert_eq!(p.resolve("b.toml").unwrap_err().status, 404);
        #[cfg(unix)]
        assert_eq!(p.resolve("link.toml").unwrap_err().status, 404);
    }

    #[test]
    fn rendered_text_never_holds_environment_values() {
        let secrets = vec!["abc".to_owned(), "abcdef".to_owned(), String::new()];
        assert_eq!(
            redact("key = \"abcdef\" # abc", &secrets),
            "key = \"[value of env()]\" # [value of env()]"
        );
    }

    #[test]
    fn a_template_lists_its_variables_and_which_are_required() {
        let text = "[pipeline]\nname = \"r-{{ incident }}\"\ndescription = \"Replay it\"\n\n[vars]\nstream = \"orders\"\n\n[sources.a]\ntype = \"file\"\npath = \"{{ stream }}.jsonl\"\n";
        let info = describe("r.toml.j2", text);
        assert!(info.template);
        assert_eq!(info.description.as_deref(), Some("Replay it"));
        let names: Vec<_> = info
            .vars
            .iter()
            .map(|v| (v.name.as_str(), v.required))
            .collect();
        assert_eq!(names, [("incident", true), ("stream", false)]);
        assert!(!info.valid);
        assert!(info.errors >= 1);
    }
}
