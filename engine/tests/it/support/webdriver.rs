//! A minimal WebDriver client (the W3C protocol: JSON over HTTP) for the browser tests, driving
//! Debian's headless Chromium through its `chromedriver` (package `chromium-driver`). No
//! crate: requests go through [`crate::support::http`].

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::http::Client;

/// The key WebDriver names elements with.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session; the browser and its driver stop when it is dropped.
pub(crate) struct Browser {
    driver: Child,
    http: Client,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self
            .http
            .request("DELETE", &format!("/session/{}", self.session), b"");
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// True when Chromium and its driver are installed (tests/run.sh installs them).
pub(crate) fn available() -> bool {
    std::path::Path::new("/usr/bin/chromium").exists()
        && std::path::Path::new("/usr/bin/chromedriver").exists()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium session with a fresh
    /// profile, a window of `width`×`height`.
    pub(crate) fn start(width: u32, height: u32) -> Browser {
        let port = free_port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = Client {
            http11: true,
            ..Client::new(&format!("127.0.0.1:{port}"))
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(&http.addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            &format!("--user-data-dir={}", profile.path().display()),
            &format!("--window-size={width},{height}"),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let a = http.post("/session", &caps);
        let v = a.json();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_owned();
        Browser {
            driver,
            http,
            session,
            _profile: profile,
        }
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        match self.try_call(method, path, body) {
            Ok(v) => v,
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    fn try_call(&self, method: &str, path: &str, body: Value) -> Result<Value, Value> {
        if std::env::var_os("FLUX_WEBDRIVER_TRACE").is_some() {
            eprintln!("webdriver: {method} {path}");
        }
        let p = format!("/session/{}{path}", self.session);
        let body = if method == "GET" {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let a = self.http.request(method, &p, &body);
        let v = a.json();
        if a.status < 300 {
            Ok(v["value"].clone())
        } else {
            Err(v)
        }
    }

    /// Does `f` with the element matching `css`, finding it again when the page replaced it
    /// in the meantime (a stale element).
    fn with_element(&self, css: &str, f: impl Fn(&str) -> Result<Value, Value>) -> Value {
        for _ in 0..50 {
            let e = self.find(css);
            match f(&e) {
                Ok(v) => return v,
                Err(v) if v.to_string().contains("stale element") => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(v) => panic!("{css}: {v}"),
            }
        }
        panic!("{css}: the element kept being replaced");
    }

    /// Opens a URL.
    pub(crate) fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }));
    }

    /// Runs a script (its `return` value comes back).
    pub(crate) fn js(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
    }

    /// The first element matching a CSS selector, waiting (generously) for it to appear.
    pub(crate) fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let p = format!("/session/{}/element", self.session);
            let a = self
                .http
                .post(&p, &json!({"using": "css selector", "value": css}));
            if a.status < 300 {
                return a.json()["value"][ELEMENT].as_str().unwrap().to_owned();
            }
            assert!(Instant::now() < deadline, "no element {css}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Clicks the element matching `css`.
    pub(crate) fn click(&self, css: &str) {
        self.with_element(css, |e| {
            self.try_call("POST", &format!("/element/{e}/click"), json!({}))
        });
    }

    /// Replaces the text of the input matching `css` by typing `text` (as a person would).
    pub(crate) fn fill(&self, css: &str, text: &str) {
        self.with_element(css, |e| {
            self.try_call("POST", &format!("/element/{e}/clear"), json!({}))?;
            if !text.is_empty() {
                self.try_call(
                    "POST",
                    &format!("/element/{e}/value"),
                    json!({ "text": text }),
                )?;
            }
            Ok(Value::Null)
        });
    }

    /// The visible text of the element matching `css`.
    pub(crate) fn text(&self, css: &str) -> String {
        self.with_element(css, |e| {
            self.try_call("GET", &format!("/element/{e}/text"), json!({}))
        })
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Waits (generously) until the script returns something truthy; returns it.
    pub(crate) fn wait_for(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let v = self.js(script, json!([]));
            if !(v.is_null() || v == json!(false) || v == json!("")) {
                return v;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out waiting for {what}; the page: {}",
                    self.snapshot()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What a timed-out wait prints: the page's address, its status line and the state of
    /// the run buttons, so a failure says where the page was.
    fn snapshot(&self) -> String {
        let script = "const t = (s) => { const e = document.querySelector(s); return e ? e.textContent : null; }; \
            const d = (s) => { const e = document.querySelector(s); return e ? e.disabled : null; }; \
            return JSON.stringify({hash: location.hash, status: t('#status'), check: t('#check-state'), \
            dry: t('#dry-state'), dry_disabled: d('#btn-dry'), run_disabled: d('#btn-run'), \
            errors: window.fluxErrors || []});";
        match self.try_call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        ) {
            Ok(v) => v.as_str().unwrap_or_default().to_owned(),
            Err(e) => format!("(no snapshot: {e})"),
        }
    }

    /// Saves a PNG screenshot of the window.
    pub(crate) fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine;
        let v = self.call("GET", "/screenshot", json!({}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}
