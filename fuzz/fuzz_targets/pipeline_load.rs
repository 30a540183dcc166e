//! The pipeline loader (`flux_engine::config::load_text`: `[vars]`, template, TOML, stage
//! tables) and the compile checks after it, as `flux-engine validate` runs them.
//!
//! The input is a pipeline file's text, optionally followed by NUL-separated `--var key=value`
//! arguments. It loads to a spec or to at least one error diagnostic; every diagnostic renders;
//! a spec compiles to a pipeline or to error diagnostics, and a pipeline's plan prints.
//!
//! Rendering has a budget (`config::template::RENDER_FUEL` instructions, `MAX_RENDERED_BYTES`
//! of output), so loops that do not end and output that grows without bound are diagnostics.
//! What the budget cannot see is one instruction that builds a huge value: minijinja allows a
//! string repeated up to 100 MB (`"x" * 100000000`) and `~` concatenation has no limit, so a few
//! `{% set a = a ~ a %}` can still exceed libFuzzer's memory limit. tests/fuzz.sh therefore
//! reports a timeout or out-of-memory of this target without failing; panics and failed
//! properties fail it.
#![no_main]

use flux_engine::compile::{self, plan};
use flux_engine::config::{VarOverrides, load_text, vars::parse_var_arg};
use flux_engine::diagnostic::Diagnostic;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Pipeline files are read as UTF-8; other bytes fail before loading.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\0');
    let file = parts.next().unwrap_or_default();
    let overrides = VarOverrides {
        files: Vec::new(),
        pairs: parts.filter_map(|arg| parse_var_arg(arg).ok()).collect(),
    };
    let loaded = load_text("fuzz.toml", file, &overrides);
    render(&loaded.diagnostics);
    let load_errors = loaded.has_errors();
    let Some(spec) = loaded.spec else {
        assert!(load_errors, "no spec and no error");
        return;
    };
    let (pipeline, diagnostics) = compile::compile(&spec);
    render(&diagnostics);
    match pipeline {
        Some(p) => {
            let _ = (plan::text(&p), plan::dot(&p));
        }
        None => assert!(
            load_errors || diagnostics.iter().any(Diagnostic::is_error),
            "no pipeline and no error"
        ),
    }
});

fn render(diagnostics: &[Diagnostic]) {
    for d in diagnostics {
        assert!(!d.to_string().is_empty());
    }
}
