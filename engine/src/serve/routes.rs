//! The router: every endpoint (listed in [`ROUTES`], which `docs/openapi.json` must match: a
//! test checks it), authentication on the API and `/metrics`, JSON errors for unknown routes
//! and methods.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::api::{self, ApiError, VarsBody, json_body, ok};
use super::pipelines::diagnostics_json;
use super::runs::Submit;
use super::{Server, assets, health, search};

/// Every endpoint as (method, path), as `docs/openapi.json` lists them.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/app.js"),
    ("GET", "/app.css"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/api/server"),
    ("GET", "/api/pipelines"),
    ("POST", "/api/pipelines/check"),
    ("GET", "/api/runs"),
    ("POST", "/api/runs"),
    ("GET", "/api/runs/{id}"),
    ("GET", "/api/runs/{id}/events"),
    ("POST", "/api/runs/{id}/cancel"),
    ("POST", "/api/search"),
    ("POST", "/api/archive/status"),
];

/// Who made a request (the token's name), set by the authentication layer.
#[derive(Debug, Clone)]
struct Who(String);

/// The whole application.
pub fn router(server: Arc<Server>) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/server", get(server_info))
        .route("/api/pipelines", get(list_pipelines))
        .route("/api/pipelines/check", post(check_pipeline))
        .route("/api/runs", get(list_runs).post(start_run))
        .route("/api/runs/{id}", get(get_run))
        .route("/api/runs/{id}/events", get(run_events))
        .route("/api/runs/{id}/cancel", post(cancel_run))
        .route("/api/search", post(start_search))
        .route("/api/archive/status", post(archive_status))
        .route_layer(middleware::from_fn_with_state(server.clone(), authenticate));
    Router::new()
        .route("/", get(assets::index))
        .route("/app.js", get(assets::app_js))
        .route("/app.css", get(assets::app_css))
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(protected)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no_route", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .with_state(server)
}

async fn authenticate(State(s): State<Arc<Server>>, mut req: Request, next: Next) -> Response {
    match s.tokens.check(req.headers()) {
        Ok(who) => {
            req.extensions_mut().insert(Who(who));
            next.run(req).await
        }
        Err(e) => {
            let mut r = e.into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            r
        }
    }
}

fn who(req: &Request) -> String {
    req.extensions()
        .get::<Who>()
        .map(|w| w.0.clone())
        .unwrap_or_else(|| "local".into())
}

async fn metrics(State(s): State<Arc<Server>>) -> Response {
    match super::server_metrics(&s) {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics",
            "the metrics could not be encoded",
        )
        .into_response(),
    }
}

async fn server_info(State(s): State<Arc<Server>>, req: Request) -> Response {
    ok(&serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "who": who(&req),
        "auth": s.tokens.required(),
        "max_runs": s.max_runs,
        "archives": s.archives,
        "limits": {
            "body_bytes": api::MAX_BODY_BYTES,
            "vars": api::MAX_VARS,
            "search_limit": search::MAX_LIMIT,
            "search_timeout_seconds": search::MAX_TIMEOUT_SECONDS,
        },
    }))
}

async fn list_pipelines(State(s): State<Arc<Server>>) -> Response {
    let dir = s.pipelines.clone();
    match tokio::task::spawn_blocking(move || dir.list()).await {
        Ok(list) => ok(&serde_json::json!({ "pipelines": list })),
        Err(e) => ApiError::bad_request(e.to_string()).into_response(),
    }
}

/// `POST /api/pipelines/check` and `POST /api/runs`: a pipeline and its variables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PipelineRequest {
    pipeline: String,
    #[serde(default)]
    vars: VarsBody,
    #[serde(default)]
    dry_run: bool,
}

async fn check_pipeline(State(s): State<Arc<Server>>, body: Body) -> Result<Response, ApiError> {
    let req: PipelineRequest = json_body(body).await?;
    let pairs = api::var_pairs(&req.vars)?;
    let dir = s.pipelines.clone();
    let name = req.pipeline.clone();
    let (checked, rendered) = tokio::task::spawn_blocking(move || {
        let checked = dir.check(&name, pairs.clone())?;
        let rendered = dir.render(&name, pairs)?.ok();
        Ok::<_, ApiError>((checked, rendered))
    })
    .await
    .map_err(|e| ApiError::bad_request(e.to_string()))??;
    let stages = checked.pipeline.as_ref().map(|p| p.graph.node_count());
    let targets = checked.pipeline.as_ref().map(super::runs::targets);
    Ok(ok(&serde_json::json!({
        "pipeline": req.pipeline,
        "ok": checked.pipeline.is_some(),
        "name": checked.pipeline.as_ref().map(|p| p.name.clone()),
        "stages": stages,
        "targets": targets,
        "diagnostics": diagnostics_json(&checked.diagnostics),
        "rendered": rendered,
    })))
}

async fn start_run(State(s): State<Arc<Server>>, req: Request) -> Result<Response, ApiError> {
    let who = who(&req);
    let body: PipelineRequest = json_body(req.into_body()).await?;
    let pairs = api::var_pairs(&body.vars)?;
    let dir = s.pipelines.clone();
    let name = body.pipeline.clone();
    let vars: BTreeMap<String, String> = pairs.iter().cloned().collect();
    let checked = tokio::task::spawn_blocking(move || dir.check(&name, pairs))
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))??;
    let Some(pipeline) = checked.pipeline else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_pipeline",
            format!(
                "{} does not validate with these variables: nothing was started",
                body.pipeline
            ),
        )
        .with_details(serde_json::json!({
            "diagnostics": diagnostics_json(&checked.diagnostics)
        })));
    };
    let view = s.runs.submit(Submit {
        pipeline_file: body.pipeline,
        pipeline,
        vars,
        dry_run: body.dry_run,
        who,
    });
    Ok(api::json_response(StatusCode::ACCEPTED, &view))
}

async fn list_runs(State(s): State<Arc<Server>>) -> Response {
    ok(&serde_json::json!({ "runs": s.runs.list() }))
}

fn run_id(id: &str) -> Result<&str, ApiError> {
    if api::valid_run_id(id) {
        Ok(id)
    } else {
        Err(ApiError::bad_request(format!(
            "{id:?} is not a run id (like 20261125T100000Z-1a2b3c4d)"
        )))
    }
}

async fn get_run(
    State(s): State<Arc<Server>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(ok(&s.runs.get(run_id(&id)?)?))
}

async fn cancel_run(
    State(s): State<Arc<Server>>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let id = run_id(&id)?.to_owned();
    Ok(ok(&s.runs.cancel(&id, &who(&req))?))
}

/// Server-sent events: a `run` event with the run's view every second, the last one once the
/// run has ended; then the stream ends.
async fn run_events(
    State(s): State<Arc<Server>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = run_id(&id)?.to_owned();
    s.runs.get(&id)?;
    let runs = s.runs.clone();
    let stream = futures_util::stream::unfold(Some(true), move |first| {
        let runs = runs.clone();
        let id = id.clone();
        async move {
            let first = first?;
            if !first {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let view = runs.get(&id).ok()?;
            let last = view.record.state.is_final();
            let data = serde_json::to_string(&view).ok()?;
            let event = Event::default().event("run").data(data);
            Some((
                Ok::<_, std::convert::Infallible>(event),
                if last { None } else { Some(false) },
            ))
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

async fn start_search(State(s): State<Arc<Server>>, body: Body) -> Result<Response, ApiError> {
    let req: search::SearchRequest = json_body(body).await?;
    s.allow_archive(&req.archive)?;
    let permit = s.searches.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "busy",
            "too many searches at once: try again when one has ended",
        )
    })?;
    search::start(req, permit).await
}

async fn archive_status(State(s): State<Arc<Server>>, body: Body) -> Result<Response, ApiError> {
    let req: health::HealthRequest = json_body(body).await?;
    s.allow_archive(&req.archive)?;
    Ok(ok(&health::report(req).await?))
}
