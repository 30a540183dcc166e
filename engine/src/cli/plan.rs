//! `flux-engine plan FILE [--format text|dot]`

use clap::{Args, ValueEnum};

use super::{EXIT_OK, VarArgs, load_and_compile};
use crate::compile::plan;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Dot,
}

#[derive(Args, Debug)]
pub(crate) struct PlanArgs {
    /// The pipeline file.
    file: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    vars: VarArgs,
}

pub(crate) fn plan(args: PlanArgs) -> i32 {
    match load_and_compile(&args.file, &args.vars) {
        Ok(p) => {
            out!(
                "{}",
                match args.format {
                    Format::Text => plan::text(&p),
                    Format::Dot => plan::dot(&p),
                }
            );
            EXIT_OK
        }
        Err(code) => code,
    }
}
