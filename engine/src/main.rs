//! The `flux-engine` command.

fn main() {
    std::process::exit(flux_engine::cli::run());
}
