//! The command line: `flux-engine validate|plan|render|run|schema|cluster|lease|status|ddl|completions|serve`.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 invalid pipeline or usage, 130 interrupted,
//! 141 a run stopped because the reader of its standard output went away.
//!
//! Commands print through `outln!`/`errln!` ([`output`]), never `println!`/`eprintln!`, which
//! panic when the reader of a pipe has gone away.

#[macro_use]
mod output;

mod cluster;
mod completions;
mod ddl;
mod ddl_out;
mod lease;
mod plan;
mod render;
mod report;
mod run;
mod schema;
mod serve;
mod status;
mod status_table;
mod validate;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::compile::{self, Pipeline};
use crate::config::{self, VarOverrides};
use crate::diagnostic::Diagnostic;

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: the run failed.
pub const EXIT_RUNTIME: i32 = 1;
/// Exit code: the pipeline or the command line is invalid.
pub const EXIT_INVALID: i32 = 2;
/// Exit code: the run was interrupted (Ctrl-C) after draining.
pub const EXIT_INTERRUPTED: i32 = 130;
/// Exit code: the run stopped because the reader of its standard output went away (`| head`);
/// what a shell reports for a process that SIGPIPE ended (128 + 13).
pub const EXIT_OUTPUT_CLOSED: i32 = 141;

#[derive(Parser, Debug)]
#[command(
    name = "flux-engine",
    version,
    about = "Declarative pipelines over AWS Kinesis: archive, replay, SQL"
)]
struct Cli {
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// `--log-format`: how logs (and, for `run`, the end-of-run report) are written.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Template variables, for every command that reads pipelines.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct VarArgs {
    /// Set a template variable (repeatable; later wins over earlier, over --vars-file and [vars]).
    #[arg(long = "var", value_name = "KEY=VALUE")]
    vars: Vec<String>,
    /// Read template variables from a TOML file (repeatable; later files win).
    #[arg(long = "vars-file", value_name = "FILE")]
    vars_files: Vec<String>,
}

impl VarArgs {
    fn overrides(&self) -> Result<VarOverrides, String> {
        let pairs = self
            .vars
            .iter()
            .map(|a| config::vars::parse_var_arg(a))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(VarOverrides {
            files: self.vars_files.clone(),
            pairs,
        })
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check pipeline files: parse, decode every stage, compile the DAG; print every problem.
    Validate(validate::ValidateArgs),
    /// Print the compiled DAG of a pipeline (text or Graphviz DOT).
    Plan(plan::PlanArgs),
    /// Print a pipeline file after template rendering.
    Render(render::RenderArgs),
    /// Run a pipeline.
    Run(run::RunArgs),
    /// Print the JSON Schema of the pipeline format.
    Schema,
    /// Launch, inspect and terminate an EMR cluster (Hive, Drill) from a cluster file.
    Cluster(cluster::ClusterArgs),
    /// Manage archive leases (one archiver per stream): `lease release`.
    Lease(lease::LeaseArgs),
    /// Show the health of an archive: checkpoints, runs, gaps, leases, leftovers, lag (exit 1
    /// when something needs action).
    Status(status::StatusArgs),
    /// Write the SQL of the `ddl` sink (DuckDB, Drill, Hive, Athena) for an existing archive.
    Ddl(ddl::DdlArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Serve the search-and-replay console: an HTTP API and a web page to search archives,
    /// start runs and watch them.
    Serve(serve::ServeArgs),
}

/// Parses the command line, runs the command, returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                EXIT_INVALID
            } else {
                EXIT_OK
            };
            let _ = e.print();
            return code;
        }
    };
    init_logging(cli.log_format);
    let code = match cli.command {
        Command::Validate(a) => validate::validate(a),
        Command::Plan(a) => plan::plan(a),
        Command::Render(a) => render::render(a),
        Command::Run(a) => run::run_pipeline(a, cli.log_format),
        Command::Schema => schema::schema(),
        Command::Cluster(a) => cluster::cluster(a),
        Command::Lease(a) => lease::lease(a),
        Command::Status(a) => status::status(a),
        Command::Ddl(a) => ddl::ddl(a),
        Command::Completions(a) => completions::completions(a),
        Command::Serve(a) => serve::serve(a),
    };
    output::finish(code)
}

/// The log filter without `RUST_LOG`: this program's messages from info up; the AWS SDK's own
/// (crates `aws_*`) only at error, because its warnings dump whole errors with `Debug` (request
/// headers, bodies) and every failure that matters is reported again by the stage, readably.
pub(crate) const DEFAULT_LOG_FILTER: &str = "info,aws=error";

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    // The end-of-run report as JSON events (`report::REPORT_TARGET`) is output, not chatter:
    // like the summary table in text mode, it is shown whatever RUST_LOG says.
    let filter = match format!("{}=info", report::REPORT_TARGET).parse() {
        Ok(d) if format == LogFormat::Json => filter.add_directive(d),
        _ => filter,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Its own report of a failed write is an `eprintln!`, which panics when standard error
        // is closed; a log line that cannot be written is dropped.
        .log_internal_errors(false);
    let _ = match format {
        LogFormat::Text => builder
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Prints diagnostics to standard error.
pub(crate) fn print_diagnostics(diags: &[Diagnostic]) {
    for d in diags {
        errln!("{d}");
    }
}

/// Loads and compiles a pipeline file, printing diagnostics. `Err` holds the exit code.
pub(crate) fn load_and_compile(file: &str, vars: &VarArgs) -> Result<Pipeline, i32> {
    let overrides = vars.overrides().map_err(|e| {
        errln!("error: {e}");
        EXIT_INVALID
    })?;
    let checked = compile::check(config::load_file(file, &overrides));
    print_diagnostics(&checked.diagnostics);
    match checked.pipeline {
        Some(p) => Ok(p),
        None => {
            let errors = checked.diagnostics.iter().filter(|d| d.is_error()).count();
            errln!("{file}: {errors} error(s)");
            Err(EXIT_INVALID)
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    /// The AWS SDK's warnings stay out of the default log; this program's info lines stay in.
    #[test]
    fn the_default_filter_keeps_sdk_warnings_out() {
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = lines.clone();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new(
                super::DEFAULT_LOG_FILTER,
            ))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(move || Writer(sink.clone())),
            );
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "aws_config::imds::region", "IMDS dump {{ headers }}");
            tracing::warn!(target: "aws_smithy_runtime::client", "SdkBody dump");
            tracing::error!(target: "aws_sdk_s3", "an sdk error");
            tracing::info!(target: "flux_stages::source", "reading archive");
        });
        let text = String::from_utf8(lines.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("dump"), "{text}");
        assert!(text.contains("an sdk error"), "{text}");
        assert!(text.contains("reading archive"), "{text}");
    }

    struct Writer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Writer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
