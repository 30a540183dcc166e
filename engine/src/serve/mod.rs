//! `flux-engine serve`: the search-and-replay console. An HTTP API (and a web page that uses
//! only it) over the same loader, compiler and runtime as the CLI: list and check pipelines,
//! search archives, start, watch and cancel runs, archive health, metrics.
//!
//! Files: [`api`] (errors, bodies, limits), [`auth`] (tokens), [`pipelines`] (the directory),
//! [`runs`] (the runs and their state), [`schedule`] (starting and running them), [`history`] (`--state-dir`), [`output`] (what runs write to
//! standard output), [`progress`], [`search`] and [`found`], [`health`], [`assets`] (the page), [`routes`].

pub mod api;
pub mod assets;
pub mod auth;
pub mod found;
pub mod health;
pub mod history;
pub mod output;
pub mod pipelines;
pub mod progress;
pub mod routes;
pub mod runs;
pub mod schedule;
pub mod search;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use auth::Tokens;
use pipelines::PipelineDir;
use runs::Runs;

/// Searches running at once.
const MAX_SEARCHES: usize = 4;

/// How long the server waits for its runs to stop when it is stopped.
const STOP_WITHIN: Duration = Duration::from_secs(60);

/// How to serve.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--pipelines DIR`.
    pub pipelines: String,
    /// `--listen ADDR`.
    pub listen: SocketAddr,
    /// `--token-file F`.
    pub token_file: Option<String>,
    /// `--state-dir D`.
    pub state_dir: Option<String>,
    /// `--max-runs N`.
    pub max_runs: usize,
    /// `--archive URL` (repeatable): the archive roots search and health may read; any when
    /// empty.
    pub archives: Vec<String>,
}

/// What every handler shares.
pub struct Server {
    /// The pipelines directory.
    pub pipelines: PipelineDir,
    /// The accepted tokens.
    pub tokens: Tokens,
    /// The runs.
    pub runs: Arc<Runs>,
    /// The concurrency limit of runs.
    pub max_runs: usize,
    /// The archive roots allowed (any when empty).
    pub archives: Vec<String>,
    /// Permits for searches running at once.
    pub searches: Arc<tokio::sync::Semaphore>,
}

impl Server {
    /// Checks an archive root against `--archive`.
    pub fn allow_archive(&self, url: &str) -> Result<(), api::ApiError> {
        if self.archives.is_empty() || self.archives.iter().any(|a| a == url) {
            Ok(())
        } else {
            Err(api::ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "archive_not_allowed",
                format!(
                    "this server reads only the archives given with --archive: {}",
                    self.archives.join(", ")
                ),
            ))
        }
    }
}

/// `/metrics` of the server: every run in flight (series labelled with `run_id`), and how
/// many runs are in each state.
pub fn server_metrics(s: &Server) -> Result<String, std::fmt::Error> {
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    let mut registry = prometheus_client::registry::Registry::with_prefix("flux");
    crate::metrics::register_runs(&mut registry, &s.runs.snapshots(), true);
    let runs = Family::<Vec<(&'static str, &'static str)>, Gauge>::default();
    for (state, n) in s.runs.counts() {
        runs.get_or_create(&vec![("state", state)])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    registry.register("serve_runs", "Runs of this server by state", runs);
    let searches = Gauge::<i64>::default();
    searches.set((MAX_SEARCHES - s.searches.available_permits()) as i64);
    registry.register("serve_searches", "Searches running now", searches);
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// Checks the options and builds the server state (nothing listens yet).
pub fn prepare(options: &Options) -> Result<Arc<Server>, String> {
    let tokens = match &options.token_file {
        Some(f) => Tokens::read(f)?,
        None => Tokens::default(),
    };
    auth::check_bind(&options.listen, &tokens)?;
    let pipelines = PipelineDir::open(&options.pipelines)?;
    let history = options
        .state_dir
        .as_deref()
        .map(history::History::open)
        .transpose()?;
    if options.max_runs == 0 {
        return Err("--max-runs must be at least 1".into());
    }
    Ok(Arc::new(Server {
        pipelines,
        tokens,
        runs: Runs::new(history, options.max_runs),
        max_runs: options.max_runs,
        archives: options.archives.clone(),
        searches: Arc::new(tokio::sync::Semaphore::new(MAX_SEARCHES)),
    }))
}

/// Serves on `listener` until `stop` resolves; then cancels the runs in flight and waits (at
/// most a minute) for them to stop in order.
pub async fn serve(
    server: Arc<Server>,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let app = routes::router(server.clone());
    tokio::select! {
        r = axum::serve(listener, app) => r?,
        () = stop => {
            tracing::info!("stopping: cancelling the runs in flight");
            if tokio::time::timeout(STOP_WITHIN, server.runs.cancel_all()).await.is_err() {
                tracing::warn!("runs did not stop within {STOP_WITHIN:?}");
            }
        }
    }
    Ok(())
}
