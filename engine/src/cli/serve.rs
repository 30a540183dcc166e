//! `flux-engine serve --pipelines DIR`: the search-and-replay console (see [`crate::serve`]).

use clap::Args;

use super::{EXIT_INTERRUPTED, EXIT_INVALID, EXIT_RUNTIME};
use crate::serve::{self, Options};

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// The directory of pipeline files and templates the console offers.
    #[arg(long, value_name = "DIR")]
    pipelines: String,
    /// The address to listen on (port 0: any free port, logged). Anything but loopback needs
    /// --token-file.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// A file of bearer tokens, one per line (`NAME:TOKEN` or `TOKEN`); the API then requires
    /// one.
    #[arg(long, value_name = "FILE")]
    token_file: Option<String>,
    /// Keep the run history (one JSON file per run) and the audit log here.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<String>,
    /// Runs at once; more wait in the queue.
    #[arg(long, value_name = "N", default_value_t = 4)]
    max_runs: usize,
    /// An archive root that search and archive health may read (repeatable; default: any).
    #[arg(long = "archive", value_name = "URL")]
    archives: Vec<String>,
}

pub(crate) fn serve(args: ServeArgs) -> i32 {
    let options = Options {
        pipelines: args.pipelines,
        listen: args.listen,
        token_file: args.token_file,
        state_dir: args.state_dir,
        max_runs: args.max_runs,
        archives: args.archives,
    };
    let server = match serve::prepare(&options) {
        Ok(s) => s,
        Err(e) => {
            errln!("error: {e}");
            return EXIT_INVALID;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("flux-serve")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errln!("error: cannot start the runtime: {e}");
            return EXIT_RUNTIME;
        }
    };
    let code = rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(options.listen).await {
            Ok(l) => l,
            Err(e) => {
                errln!("error: --listen {}: cannot listen: {e}", options.listen);
                return EXIT_INVALID;
            }
        };
        let addr = listener.local_addr().map_or(options.listen, |a| a);
        tracing::info!(
            addr = %addr,
            auth = server.tokens.required(),
            "serving the console on http://{addr}/"
        );
        let stop = async {
            super::run::stop_requested().await;
        };
        match serve::serve(server, listener, stop).await {
            Ok(()) => EXIT_INTERRUPTED,
            Err(e) => {
                errln!("error: {e}");
                EXIT_RUNTIME
            }
        }
    });
    rt.shutdown_background();
    code
}
