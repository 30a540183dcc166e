//! The `flux-engine` command.

/// mimalloc: fewer, smaller arenas than glibc malloc under many reader threads (lower peak RSS)
/// and faster small allocations on the per-record hot path.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(flux_engine::cli::main());
}
