//! `flux-engine serve` started as a user starts it, on a free loopback port, for the API and
//! browser tests; and a working directory holding the quickstart's archive.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::http::Client;

/// A running server; killed when dropped.
pub(crate) struct Served {
    /// The process.
    pub child: Child,
    /// `127.0.0.1:port`.
    pub addr: String,
    /// Where its standard error goes.
    pub log: PathBuf,
}

impl Served {
    /// A client without a token.
    pub(crate) fn client(&self) -> Client {
        Client::new(&self.addr)
    }

    /// What it logged so far.
    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills it at once (SIGKILL: no orderly stop) and waits.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `flux-engine serve --pipelines pipelines --listen 127.0.0.1:0 ARGS…` in `dir`, with
/// `env` added, and waits (generously) until it listens.
pub(crate) fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Served {
    let log = dir.join(format!(
        "serve-{}.log",
        crate::support::emulators::unique("log").replace('/', "_")
    ));
    let mut cmd = crate::support::flux_engine(&[
        "serve",
        "--pipelines",
        "pipelines",
        "--listen",
        "127.0.0.1:0",
    ]);
    cmd.args(args)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    if std::env::var("FLUX_TEST_KINESIS_ENDPOINT").is_ok() {
        crate::support::emulators::get().apply(&mut cmd);
    }
    let child = cmd.spawn().expect("start flux-engine serve");
    let mut served = Served {
        child,
        addr: String::new(),
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let text = served.log_text();
        if let Some(rest) = text.split("serving the console on http://").nth(1) {
            served.addr = rest.split('/').next().unwrap_or_default().to_owned();
            return served;
        }
        if let Ok(Some(status)) = served.child.try_wait() {
            panic!("serve exited with {status}: {text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("serve did not listen: {}", served.log_text());
}

/// A temporary directory with the repository's `pipelines/` and `examples/` and the archive
/// the quickstart writes (`./archive`).
pub(crate) fn quickstart_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["pipelines", "examples"] {
        copy_dir(
            &crate::support::repo_root().join(sub),
            &dir.path().join(sub),
        );
    }
    let out = crate::support::run_in(
        dir.path(),
        &["run", "pipelines/quickstart.toml", "--progress", "off"],
    );
    assert!(out.status.success(), "{:?}", crate::support::text(&out));
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Polls `GET /api/runs/{id}` until the run has ended (generous deadline); returns its view.
pub(crate) fn wait_run(client: &Client, id: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let v = client.get(&format!("/api/runs/{id}")).json();
        let state = v["state"].as_str().unwrap_or_default().to_owned();
        if !["queued", "running"].contains(&state.as_str()) {
            return v;
        }
        assert!(Instant::now() < deadline, "run {id} did not end: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
