//! `flux-engine validate FILE…`

use clap::Args;

use super::{EXIT_INVALID, EXIT_OK, VarArgs, load_and_compile};

#[derive(Args, Debug)]
pub(crate) struct ValidateArgs {
    /// Pipeline files to check.
    #[arg(required = true)]
    files: Vec<String>,
    #[command(flatten)]
    vars: VarArgs,
}

pub(crate) fn validate(args: ValidateArgs) -> i32 {
    let mut code = EXIT_OK;
    for file in &args.files {
        match load_and_compile(file, &args.vars) {
            Ok(p) => outln!("{file}: ok ({} stages)", p.graph.node_count()),
            Err(_) => code = EXIT_INVALID,
        }
    }
    code
}
