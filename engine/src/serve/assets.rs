//! The web page: plain HTML, CSS and JavaScript under `engine/web/`, embedded in the binary at
//! build time (`include_str!`), so the binary needs no Node toolchain to build and the page
//! loads nothing from elsewhere (no CDN). The page only uses the API.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// `index.html`.
pub const INDEX: &str = include_str!("../../web/index.html");
/// `app.js`.
pub const APP_JS: &str = include_str!("../../web/app.js");
/// `app.css`.
pub const APP_CSS: &str = include_str!("../../web/app.css");

/// The page's security headers: only its own scripts, styles and API; not framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// `GET /`.
pub async fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

/// `GET /app.js`.
pub async fn app_js() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

/// `GET /app.css`.
pub async fn app_css() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8")
}
