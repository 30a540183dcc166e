//! Who may call the API: bearer tokens read from `--token-file`, compared in constant time.
//!
//! The token file holds one token per line, `NAME:TOKEN` (the name goes into audit lines) or a
//! bare `TOKEN` (named `token`); blank lines and `#` comments are skipped. A token is at least
//! [`MIN_TOKEN_LEN`] characters. Listening on anything but loopback requires a token file. No
//! cookie is ever set, so there is no CSRF; no CORS header is sent, so other origins cannot read
//! answers. Tokens are never logged.

use std::net::SocketAddr;

use axum::http::{HeaderMap, StatusCode, header};
use subtle::ConstantTimeEq;

use super::api::ApiError;

/// The shortest token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// The tokens the server accepts; empty when it runs without authentication (loopback only).
#[derive(Clone, Default)]
pub struct Tokens {
    tokens: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: a token never reaches a log through Debug either.
        f.debug_list()
            .entries(self.tokens.iter().map(|(n, _)| n))
            .finish()
    }
}

impl Tokens {
    /// Parses a token file's text; the error says which line is wrong (never its content).
    pub fn parse(text: &str) -> Result<Tokens, String> {
        let mut tokens = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, token) = match line.split_once(':') {
                Some((n, t)) => (n.trim(), t.trim()),
                None => ("token", line),
            };
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.@".contains(c))
            {
                return Err(format!(
                    "line {}: the name before `:` must be letters, digits, `_-.@`",
                    i + 1
                ));
            }
            if token.len() < MIN_TOKEN_LEN || token.chars().any(char::is_whitespace) {
                return Err(format!(
                    "line {}: a token must be at least {MIN_TOKEN_LEN} characters without spaces",
                    i + 1
                ));
            }
            tokens.push((name.to_owned(), token.as_bytes().to_vec()));
        }
        if tokens.is_empty() {
            return Err("no token in the file".into());
        }
        Ok(Tokens { tokens })
    }

    /// Reads a token file.
    pub fn read(path: &str) -> Result<Tokens, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--token-file {path}: cannot read it: {e}"))?;
        Tokens::parse(&text).map_err(|e| format!("--token-file {path}: {e}"))
    }

    /// True when requests must carry a token.
    pub fn required(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The name of the caller: `local` without tokens, else the name of the token in the
    /// `Authorization: Bearer …` header. Every token is compared (in constant time), so the
    /// time taken does not tell which one nearly matched.
    pub fn check(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        if !self.required() {
            return Ok("local".into());
        }
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "this server needs a token: send `Authorization: Bearer <token>`",
                )
            })?;
        let mut found: Option<&str> = None;
        for (name, token) in &self.tokens {
            if bool::from(token.as_slice().ct_eq(given.as_bytes())) {
                found.get_or_insert(name);
            }
        }
        found.map(str::to_owned).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the token is not valid",
            )
        })
    }
}

/// Refuses to listen beyond loopback without tokens; the message says why.
pub fn check_bind(addr: &SocketAddr, tokens: &Tokens) -> Result<(), String> {
    if addr.ip().is_loopback() || tokens.required() {
        return Ok(());
    }
    Err(format!(
        "refusing to listen on {addr} without a token: a replay writes into production streams, so anything but loopback (127.0.0.1, ::1) needs --token-file"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, auth.parse().unwrap());
        h
    }

    #[test]
    fn tokens_are_named_and_checked() {
        let t = Tokens::parse("# ops\nalice:0123456789abcdef0\n\nfedcba98765432100\n").unwrap();
        assert_eq!(
            t.check(&headers("Bearer 0123456789abcdef0")).unwrap(),
            "alice"
        );
        assert_eq!(
            t.check(&headers("Bearer fedcba98765432100")).unwrap(),
            "token"
        );
        assert_eq!(
            t.check(&headers("Bearer 0123456789abcdef"))
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert!(t.check(&HeaderMap::new()).is_err());
        assert!(t.check(&headers("Basic 0123456789abcdef0")).is_err());
        assert!(!format!("{t:?}").contains("0123"));
    }

    #[test]
    fn bad_token_files_are_refused_without_showing_tokens() {
        for bad in ["", "# none\n", "short", "a b:0123456789abcdef0"] {
            let e = Tokens::parse(bad).unwrap_err();
            assert!(!e.contains("0123"), "{e}");
        }
    }

    #[test]
    fn only_loopback_may_go_without_tokens() {
        let none = Tokens::default();
        assert!(check_bind(&"127.0.0.1:8080".parse().unwrap(), &none).is_ok());
        assert!(check_bind(&"[::1]:8080".parse().unwrap(), &none).is_ok());
        let e = check_bind(&"0.0.0.0:8080".parse().unwrap(), &none).unwrap_err();
        assert!(e.contains("--token-file"), "{e}");
        let some = Tokens::parse("0123456789abcdef0").unwrap();
        assert!(check_bind(&"0.0.0.0:8080".parse().unwrap(), &some).is_ok());
    }
}
