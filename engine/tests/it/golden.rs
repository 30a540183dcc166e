//! Golden tests of `flux-engine validate`: every pipeline file under `tests/golden/bad/` must be
//! rejected (exit 2) and every one under `tests/golden/warn/` accepted (exit 0), each printing
//! exactly its `.stderr` golden. `FLUX_BLESS=1` rewrites the goldens (see tests/golden/README.md).
//!
//! Also checks that the shipped `pipelines/` all validate.

use std::path::{Path, PathBuf};

use crate::support::{assert_golden, flux_engine, repo_root, text};

/// An environment variable a golden file reads with `env(…)`; it must stay unset.
const UNSET_ENV: &str = "FLUX_GOLDEN_ARCHIVE_URL";

/// The pipeline files of a corpus directory (relative to the repo root), sorted.
fn corpus(dir: &str) -> Vec<String> {
    let root = repo_root();
    let mut files: Vec<String> = std::fs::read_dir(root.join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| {
            e.expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".toml") || name.ends_with(".toml.j2"))
        .map(|name| format!("{dir}/{name}"))
        .collect();
    files.sort();
    files
}

/// The golden stderr file of a pipeline file: `x.toml` → `x.stderr`, `x.toml.j2` → `x.stderr`.
fn golden_path(file: &str) -> PathBuf {
    let stem = file
        .strip_suffix(".toml.j2")
        .or_else(|| file.strip_suffix(".toml"))
        .expect("a .toml or .toml.j2 file");
    repo_root().join(format!("{stem}.stderr"))
}

/// Runs `flux-engine validate FILE ARGS…` from the repo root: (exit code, stdout, stderr).
fn validate(file: &str, extra: &[String]) -> (Option<i32>, String, String) {
    let mut args = vec!["validate", file];
    args.extend(extra.iter().map(String::as_str));
    let out = flux_engine(&args)
        .current_dir(repo_root())
        .env_remove(UNSET_ENV)
        .output()
        .expect("run flux-engine");
    let (stdout, stderr) = text(&out);
    (out.status.code(), stdout, stderr)
}

/// Checks every file of a corpus directory; returns one message per mismatch.
fn check_corpus(dir: &str, expected_code: i32) -> Vec<String> {
    let files = corpus(dir);
    assert!(!files.is_empty(), "{dir} has no pipeline files");
    let mut failures = Vec::new();
    for file in &files {
        let (code, stdout, stderr) = validate(file, &[]);
        if code != Some(expected_code) {
            failures.push(format!(
                "{file}: exit code {code:?}, expected {expected_code}\n--- stdout\n{stdout}--- stderr\n{stderr}"
            ));
        }
        let golden = golden_path(file);
        if let Err(panic) = std::panic::catch_unwind(|| assert_golden(&golden, &stderr)) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| format!("{}: mismatch", golden.display()));
            failures.push(message);
        }
    }
    failures
}

fn fail_on(failures: Vec<String>) {
    if !failures.is_empty() {
        panic!(
            "{} golden mismatch(es):\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
}

#[test]
fn bad_pipelines_are_rejected_with_their_golden_diagnostics() {
    fail_on(check_corpus("tests/golden/bad", 2));
}

#[test]
fn warning_only_pipelines_validate_with_their_golden_warnings() {
    fail_on(check_corpus("tests/golden/warn", 0));
}

/// Every golden file belongs to a pipeline file (no leftovers after a rename).
#[test]
fn no_orphan_goldens() {
    let root = repo_root();
    let mut orphans = Vec::new();
    for dir in ["tests/golden/bad", "tests/golden/warn"] {
        let files = corpus(dir);
        for entry in std::fs::read_dir(root.join(dir)).expect("corpus dir") {
            let path = entry.expect("directory entry").path();
            if path.extension().is_some_and(|e| e == "stderr")
                && !files.iter().any(|f| golden_path(f) == path)
            {
                orphans.push(path.display().to_string());
            }
        }
    }
    assert!(
        orphans.is_empty(),
        "goldens without a pipeline file: {orphans:?}"
    );
}

/// The `--var KEY=VALUE` arguments a pipeline's header comment documents: the leading comment
/// lines are searched for `--var KEY=VALUE` words.
fn documented_vars(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read pipeline");
    let mut args = Vec::new();
    for line in text.lines().take_while(|l| l.trim_start().starts_with('#')) {
        let mut words = line.split_whitespace();
        while let Some(w) = words.next() {
            if w == "--var"
                && let Some(kv) = words.next()
            {
                args.push("--var".to_owned());
                args.push(kv.to_owned());
            } else if let Some(kv) = w.strip_prefix("--var=") {
                args.push("--var".to_owned());
                args.push(kv.to_owned());
            }
        }
    }
    args
}

#[test]
fn shipped_pipelines_validate() {
    let root = repo_root();
    let files = corpus("pipelines");
    assert!(!files.is_empty(), "pipelines/ has no pipeline files");
    let mut failures = Vec::new();
    for file in &files {
        let vars = if file.ends_with(".j2") {
            documented_vars(&root.join(file))
        } else {
            Vec::new()
        };
        let (code, stdout, stderr) = validate(file, &vars);
        if code != Some(0) || !stderr.is_empty() {
            failures.push(format!(
                "{file} {vars:?}: exit code {code:?}\n--- stdout\n{stdout}--- stderr\n{stderr}"
            ));
        }
    }
    fail_on(failures);
}

#[test]
fn documented_vars_come_from_the_header_comment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("p.toml.j2");
    std::fs::write(
        &path,
        "# Replay an incident:\n#   flux-engine run p.toml.j2 --var incident=INC-1 --var=from=2026-01-01T00:00:00Z\n\n# not the header: --var late=1\n[vars]\n",
    )
    .expect("write");
    assert_eq!(
        documented_vars(&path),
        [
            "--var",
            "incident=INC-1",
            "--var",
            "from=2026-01-01T00:00:00Z"
        ]
    );
}
