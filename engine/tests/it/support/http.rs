//! A small blocking HTTP/1.0 client over `std::net` for the `serve` tests: one request per
//! connection, the answer read to its end (or line by line, for streamed answers).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// An answer.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    /// The status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics with the body when it is not).
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// A header's value.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A client for one server.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    /// `127.0.0.1:port`.
    pub addr: String,
    /// A bearer token to send.
    pub token: Option<String>,
    /// Speak HTTP/1.1 (with `Connection: close`) instead of 1.0, for servers that refuse 1.0
    /// (chromedriver); answers must then not be chunked.
    pub http11: bool,
}

/// A streamed answer: status, headers, then the body line by line.
pub(crate) struct Lines {
    /// The status code.
    pub status: u16,
    reader: BufReader<TcpStream>,
}

impl Iterator for Lines {
    type Item = String;
    fn next(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_owned()),
        }
    }
}

impl Lines {
    /// Closes the connection (the server sees the client go away).
    pub(crate) fn close(self) {
        let _ = self.reader.get_ref().shutdown(std::net::Shutdown::Both);
    }
}

impl Client {
    /// A client for `addr` without a token.
    pub(crate) fn new(addr: &str) -> Client {
        Client {
            addr: addr.to_owned(),
            token: None,
            http11: false,
        }
    }

    fn send(&self, method: &str, path: &str, body: &[u8]) -> BufReader<TcpStream> {
        let mut s = TcpStream::connect(&self.addr).expect("connect to the server");
        s.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
        let version = if self.http11 {
            "1.1\r\nConnection: close"
        } else {
            "1.0"
        };
        let mut head = format!(
            "{method} {path} HTTP/{version}\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if !body.is_empty() {
            head.push_str("Content-Type: application/json\r\n");
        }
        if let Some(t) = &self.token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        // A server may answer (413) before reading a large body, and close.
        let _ = s.write_all(body);
        BufReader::new(s)
    }

    fn head(reader: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>) {
        let mut line = String::new();
        reader.read_line(&mut line).expect("status line");
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            line.clear();
            reader.read_line(&mut line).expect("header");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        (status, headers)
    }

    /// Sends a request and reads the whole answer.
    pub(crate) fn request(&self, method: &str, path: &str, body: &[u8]) -> Answer {
        let mut reader = self.send(method, path, body);
        let (status, headers) = Self::head(&mut reader);
        let mut body = Vec::new();
        let length = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<u64>().ok());
        match length {
            // Some servers keep the connection open after the answer.
            Some(n) => {
                let _ = reader.by_ref().take(n).read_to_end(&mut body);
            }
            None => {
                let _ = reader.read_to_end(&mut body);
            }
        }
        Answer {
            status,
            headers,
            body,
        }
    }

    /// `GET path`.
    pub(crate) fn get(&self, path: &str) -> Answer {
        self.request("GET", path, b"")
    }

    /// `POST path` with a JSON body.
    pub(crate) fn post(&self, path: &str, body: &serde_json::Value) -> Answer {
        self.request("POST", path, body.to_string().as_bytes())
    }

    /// Sends a request and returns the answer's lines as they come.
    pub(crate) fn lines(&self, method: &str, path: &str, body: &[u8]) -> Lines {
        let mut reader = self.send(method, path, body);
        let (status, _) = Self::head(&mut reader);
        Lines { status, reader }
    }
}
