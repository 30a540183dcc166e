//! The pipeline loader (`flux_engine::config::load_text`: `[vars]`, template, TOML, stage
//! tables) and the compile checks after it, as `flux-engine validate` runs them.
//!
//! The input is a pipeline file's text, optionally followed by NUL-separated `--var key=value`
//! arguments. It loads to a spec or to at least one error diagnostic; every diagnostic renders;
//! a spec compiles to a pipeline or to error diagnostics, and a pipeline's plan prints.
//!
//! Templates can make output that grows without bound (`{% for a in range(100000) %}{{ "x" *
//! 100000 }}{% endfor %}`, nested loops, `{% set a = a ~ a %}` repeated): minijinja renders
//! without a time or size budget, so such inputs end in libFuzzer's timeout or memory limit
//! rather than a diagnostic (reported; bounding the renderer is a product decision).
//! tests/fuzz.sh therefore reports a timeout or out-of-memory of this target without failing;
//! panics and failed properties fail it.
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
