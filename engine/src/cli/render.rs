//! `flux-engine render FILE`: the pipeline after template rendering.

use clap::Args;

use super::{EXIT_INVALID, EXIT_OK, VarArgs, print_diagnostics};
use crate::config::load::render_text;

#[derive(Args, Debug)]
pub(crate) struct RenderArgs {
    /// The pipeline file (template or plain TOML).
    file: String,
    #[command(flatten)]
    vars: VarArgs,
}

pub(crate) fn render(args: RenderArgs) -> i32 {
    let overrides = match args.vars.overrides() {
        Ok(o) => o,
        Err(e) => {
            errln!("error: {e}");
            return EXIT_INVALID;
        }
    };
    let text = match std::fs::read_to_string(&args.file) {
        Ok(t) => t,
        Err(e) => {
            errln!("error: {}: cannot read pipeline file: {e}", args.file);
            return EXIT_INVALID;
        }
    };
    match render_text(&args.file, &text, &overrides) {
        Ok(r) => {
            print_diagnostics(&r.warnings);
            out!("{}", r.text);
            EXIT_OK
        }
        Err(d) => {
            print_diagnostics(&[d]);
            EXIT_INVALID
        }
    }
}
