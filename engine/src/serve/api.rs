//! The API's plumbing: JSON errors (every bad request is a 4xx with a JSON body, never a 500 or
//! a panic), bounded JSON bodies that reject unknown fields, and the validation of names.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

/// The largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The most template variables one request may set.
pub const MAX_VARS: usize = 64;

/// The longest variable value, in bytes.
pub const MAX_VAR_BYTES: usize = 4096;

/// An error answer: a status and `{"error": message, "code": code}` (plus details when given).
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status (4xx for the client's mistakes).
    pub status: StatusCode,
    /// A short machine-readable code (`bad_json`, `not_found`, …).
    pub code: &'static str,
    /// What is wrong, for people.
    pub message: String,
    /// More, such as diagnostics.
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// Adds details (merged into the JSON body under `details`).
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.message, "code": self.code });
        if let Some(d) = self.details {
            body["details"] = d;
        }
        json_response(self.status, &body)
    }
}

/// A JSON answer.
pub fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response {
    let text = serde_json::to_string(value).unwrap_or_else(|_| "{}".into());
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        text,
    )
        .into_response()
}

/// 200 with a JSON body.
pub fn ok(value: &impl serde::Serialize) -> Response {
    json_response(StatusCode::OK, value)
}

/// Reads a request body of at most [`MAX_BODY_BYTES`] and decodes it as `T` (whose fields
/// should be `deny_unknown_fields`); an empty body decodes as `{}`.
pub async fn json_body<T: DeserializeOwned>(body: Body) -> Result<T, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
            )
        })?;
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let at = if path == "." || path.is_empty() {
            String::new()
        } else {
            format!(" at `{path}`")
        };
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("invalid request body{at}: {inner}"),
        )
    })
}

/// Template variables as a request gives them: names to strings, numbers or booleans.
pub type VarsBody = std::collections::BTreeMap<String, serde_json::Value>;

/// Checks a request's variables (count, names, sizes, types) and turns them into `--var`
/// pairs: numbers and booleans as their text, which takes the type of the variable's default.
pub fn var_pairs(vars: &VarsBody) -> Result<Vec<(String, String)>, ApiError> {
    if vars.len() > MAX_VARS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_VARS} variables, not {}",
            vars.len()
        )));
    }
    vars.iter()
        .map(|(k, v)| {
            if k.is_empty()
                || k.len() > 64
                || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(ApiError::bad_request(format!(
                    "variable name {k:?}: letters, digits and underscores (at most 64)"
                )));
            }
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "variable `{k}`: a string, number or boolean"
                    )));
                }
            };
            if text.len() > MAX_VAR_BYTES {
                return Err(ApiError::bad_request(format!(
                    "variable `{k}`: longer than {MAX_VAR_BYTES} bytes"
                )));
            }
            Ok((k.clone(), text))
        })
        .collect()
}

/// True for a run id as [`crate::runtime::new_run_id`] makes them (`20261125T100000Z-1a2b3c4d`).
pub fn valid_run_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 25
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
        && b[16] == b'-'
        && b[17..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_checked_by_shape() {
        assert!(valid_run_id(&crate::runtime::new_run_id()));
        assert!(valid_run_id("20261125T100000Z-1a2b3c4d"));
        for bad in [
            "",
            "../../etc/passwd",
            "20261125T100000Z-1a2b3c4",
            "20261125T100000Z-1A2B3C4D",
            "20261125T100000Z/1a2b3c4d",
        ] {
            assert!(!valid_run_id(bad), "{bad}");
        }
    }

    #[test]
    fn variables_are_bounded_and_typed() {
        let mut vars = VarsBody::new();
        vars.insert("rate".into(), serde_json::json!(5));
        vars.insert("flag".into(), serde_json::json!(true));
        vars.insert("name".into(), serde_json::json!("x"));
        let pairs = var_pairs(&vars).unwrap();
        assert!(pairs.contains(&("rate".into(), "5".into())));
        assert!(pairs.contains(&("flag".into(), "true".into())));
        vars.insert("bad name".into(), serde_json::json!("x"));
        assert!(var_pairs(&vars).is_err());
        let mut obj = VarsBody::new();
        obj.insert("o".into(), serde_json::json!({"a": 1}));
        assert!(var_pairs(&obj).is_err());
        let many: VarsBody = (0..=MAX_VARS)
            .map(|i| (format!("v{i}"), serde_json::json!(1)))
            .collect();
        assert!(var_pairs(&many).is_err());
    }
}
