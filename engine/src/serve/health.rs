//! Archive health: the report of `flux-engine status` (`flux_stages::archive::status`, the
//! same code), as JSON: checkpoints, ages, last manifests, gaps, lease holders, and with
//! `kinesis` the lag and expiry that Kinesis reports.

use std::time::Duration;

use flux_stages::archive::status::{self, StatusError, StatusOptions, live::LiveOptions};
use flux_stages::aws::AwsSettings;
use flux_stages::names::StreamName;
use flux_stages::store::StoreOptions;
use serde::Deserialize;

use super::api::ApiError;

/// The longest a report may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// An archive health request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthRequest {
    /// The archive root.
    pub archive: String,
    /// Only these streams (default: every stream of the archive).
    #[serde(default)]
    pub streams: Vec<String>,
    /// How many of each stream's latest run manifests to show (default 3, at most 50).
    #[serde(default)]
    pub runs: Option<usize>,
    /// Also ask Kinesis (lag, expiry), through the environment's endpoint and credentials.
    #[serde(default)]
    pub kinesis: bool,
}

/// The report as JSON (the schema of `status --json`).
pub async fn report(req: HealthRequest) -> Result<serde_json::Value, ApiError> {
    if req.streams.len() > 100 {
        return Err(ApiError::bad_request("at most 100 streams"));
    }
    let streams = req
        .streams
        .iter()
        .map(|s| StreamName::parse(s).map_err(|e| ApiError::bad_request(format!("streams: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let runs = req.runs.unwrap_or(3);
    if runs > 50 {
        return Err(ApiError::bad_request("`runs` must be at most 50"));
    }
    let aws = AwsSettings {
        max_attempts: Some(3),
        ..Default::default()
    };
    let options = StatusOptions {
        streams,
        runs,
        gaps_acknowledged_until: None,
        kinesis: req.kinesis.then(|| LiveOptions {
            aws: aws.clone(),
            expiry_margin: None,
        }),
    };
    let store = StoreOptions {
        aws,
        ..Default::default()
    };
    let inspected = tokio::time::timeout(TIMEOUT, status::inspect(&req.archive, &store, &options))
        .await
        .map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                format!("the archive did not answer within {TIMEOUT:?}"),
            )
        })?;
    match inspected {
        Ok(r) => serde_json::to_value(&r).map_err(|e| ApiError::bad_request(e.to_string())),
        Err(e @ (StatusError::NotAnArchive(_) | StatusError::UnknownStream(_))) => {
            Err(ApiError::not_found(e.to_string()))
        }
        Err(e @ StatusError::Store(_)) => Err(ApiError::bad_request(e.to_string())),
        Err(e @ StatusError::Kinesis(_)) => Err(ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            "kinesis",
            e.to_string(),
        )),
    }
}
