//! `flux-engine validate FILE|DIR…`: pipeline files and cluster files (recognised by their
//! `[cluster]` table); a directory stands for every `.toml` and `.j2` file below it.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{EXIT_INVALID, EXIT_OK, VarArgs, load_and_compile, print_diagnostics};
use crate::cluster::file as cluster_file;
use crate::diagnostic::Diagnostic;

#[derive(Args, Debug)]
pub(crate) struct ValidateArgs {
    /// Pipeline or cluster files to check; a directory checks every `.toml` and `.j2` file
    /// below it.
    #[arg(required = true)]
    files: Vec<String>,
    #[command(flatten)]
    vars: VarArgs,
}

pub(crate) fn validate(args: ValidateArgs) -> i32 {
    let mut code = EXIT_OK;
    for file in expand(&args.files) {
        let ok = if is_cluster_file(&file) {
            validate_cluster(&file, &args.vars)
        } else {
            match load_and_compile(&file, &args.vars) {
                Ok(p) => {
                    outln!("{file}: ok ({} stages)", p.graph.node_count());
                    true
                }
                Err(_) => false,
            }
        };
        if !ok {
            code = EXIT_INVALID;
        }
    }
    code
}

/// The files the arguments name: files as given, directories as the `.toml`/`.j2` files below
/// them (sorted, hidden entries skipped). A path that does not exist stays, so loading it
/// reports it.
fn expand(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for a in args {
        let p = Path::new(a);
        if p.is_dir() {
            let mut found = Vec::new();
            collect(p, &mut found);
            found.sort();
            if found.is_empty() {
                errln!("warning: {a}: no .toml or .j2 files in this directory");
            }
            out.extend(found.into_iter().map(|f| f.display().to_string()));
        } else {
            out.push(a.clone());
        }
    }
    out
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|x| x == "toml" || x == "j2") {
            out.push(path);
        }
    }
}

/// A cluster file has a `[cluster]` table; pipeline files cannot (it is not a pipeline key).
fn is_cluster_file(file: &str) -> bool {
    std::fs::read_to_string(file).is_ok_and(|text| {
        text.lines()
            .any(|l| l.trim_start().starts_with("[cluster]"))
    })
}

fn validate_cluster(file: &str, vars: &VarArgs) -> bool {
    let overrides = match vars.overrides() {
        Ok(o) => o,
        Err(e) => {
            errln!("error: {e}");
            return false;
        }
    };
    match cluster_file::load_file(file, &overrides) {
        Ok(f) => {
            if let Some((key, message)) = f.drill.as_ref().and_then(|d| d.placeholder_digest()) {
                let mut d = Diagnostic::warning(file, message);
                d = d.field(key);
                d.help = Some("`cluster up` refuses this file until the digest is set".into());
                print_diagnostics(&[d]);
            }
            outln!("{file}: ok (cluster file)");
            true
        }
        Err(diags) => {
            print_diagnostics(&diags);
            errln!("{file}: {} error(s)", diags.len());
            false
        }
    }
}
