//! Applying the Drill output through Drill's REST API: `POST /storage/<name>.json` for each
//! storage plugin, then `POST /query.json` for each view. Plain HTTP (Drill's web server
//! listens on port 8047 without TLS unless configured otherwise), with hyper, which the AWS SDK
//! already brings.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(120);

/// A client for one Drill endpoint (`http://host:8047`).
#[derive(Debug, Clone)]
pub struct DrillClient {
    endpoint: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// Checks a Drill endpoint URL: `http://host[:port]` (no path).
pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
    if endpoint.starts_with("https://") {
        return Err(format!(
            "`drill.endpoint` {endpoint:?}: https is not supported; Drill's web server speaks http on port 8047 (reach a remote one through an SSH tunnel)"
        ));
    }
    let uri: Uri = endpoint
        .parse()
        .map_err(|e| format!("`drill.endpoint` {endpoint:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(format!(
            "`drill.endpoint` {endpoint:?} must be http://host:port, e.g. \"http://localhost:8047\""
        ));
    }
    if !matches!(uri.path(), "" | "/") {
        return Err(format!(
            "`drill.endpoint` {endpoint:?} must not have a path (just http://host:port)"
        ));
    }
    Ok(())
}

impl DrillClient {
    /// A client for `endpoint`.
    pub fn new(endpoint: &str) -> Result<DrillClient, String> {
        check_endpoint(endpoint)?;
        Ok(DrillClient {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.endpoint);
        let request = Request::builder()
            .method(Method::POST)
            .uri(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(Full::new(Bytes::from(serde_json::to_vec(body)?)))?;
        let response = tokio::time::timeout(TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| anyhow::anyhow!("POST {url}: no answer within {}s", TIMEOUT.as_secs()))?
            .map_err(|e| anyhow::anyhow!("POST {url}: {e}"))?;
        let status = response.status();
        let bytes = tokio::time::timeout(TIMEOUT, response.into_body().collect())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "POST {url}: the answer did not finish within {}s",
                    TIMEOUT.as_secs()
                )
            })?
            .map_err(|e| anyhow::anyhow!("POST {url}: {e}"))?
            .to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
        });
        if !status.is_success() {
            anyhow::bail!("POST {url}: HTTP {status}: {}", message(&value));
        }
        Ok(value)
    }

    /// Creates or replaces a storage plugin: `plugin` is `{"name": …, "config": {…}}`.
    pub async fn put_storage(&self, plugin: &serde_json::Value) -> anyhow::Result<()> {
        let name = plugin["name"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("a storage plugin needs a name"))?;
        let answer = self.post(&format!("/storage/{name}.json"), plugin).await?;
        let result = answer["result"].as_str().unwrap_or_default();
        if !result.to_ascii_lowercase().starts_with("success") {
            anyhow::bail!(
                "Drill did not accept the storage plugin {name}: {}",
                message(&answer)
            );
        }
        Ok(())
    }

    /// Runs one SQL statement; fails with Drill's message when the query fails.
    pub async fn query(&self, sql: &str) -> anyhow::Result<serde_json::Value> {
        let answer = self
            .post(
                "/query.json",
                &serde_json::json!({ "queryType": "SQL", "query": sql }),
            )
            .await?;
        let state = answer["queryState"].as_str().unwrap_or("COMPLETED");
        if state != "COMPLETED" || answer.get("errorMessage").is_some() {
            anyhow::bail!("Drill query failed ({state}): {}", message(&answer));
        }
        Ok(answer)
    }
}

/// The human part of a Drill answer.
fn message(answer: &serde_json::Value) -> String {
    for key in ["errorMessage", "result", "message"] {
        if let Some(s) = answer[key].as_str() {
            return s.lines().next().unwrap_or_default().to_owned();
        }
    }
    answer.to_string().chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked() {
        assert!(check_endpoint("http://localhost:8047").is_ok());
        assert!(check_endpoint("http://10.0.0.1:8047/").is_ok());
        assert!(
            check_endpoint("https://drill:8047")
                .unwrap_err()
                .contains("https")
        );
        assert!(check_endpoint("localhost:8047").is_err());
        assert!(
            check_endpoint("http://drill:8047/query")
                .unwrap_err()
                .contains("path")
        );
    }
}
