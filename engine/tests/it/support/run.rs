//! A fluent run of the real `flux-engine` binary, and what tests read back from its outputs:
//!
//! ```ignore
//! let ran = Flux::run_pipeline(&p).var("input", &input).current_dir(dir).run().success();
//! assert!(ran.stderr.contains("archived"), "{}", ran.stderr);
//! let records = read_jsonl(dir.join("out.jsonl"));
//! ```

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::emulators::Emulators;
use super::flux_engine;

/// A `flux-engine` command being built (quiet logging, no colour, no standard input).
pub(crate) struct Flux {
    cmd: Command,
}

/// A finished command: its exit code (`None` when a signal ended it) and its output as text.
#[derive(Debug)]
pub(crate) struct Ran {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Flux {
    /// `flux-engine` with no arguments yet.
    pub(crate) fn new() -> Self {
        Flux {
            cmd: flux_engine(&[]),
        }
    }

    /// `flux-engine run PIPELINE --progress off`.
    pub(crate) fn run_pipeline(pipeline: impl AsRef<OsStr>) -> Self {
        Self::new()
            .arg("run")
            .arg(pipeline)
            .args(["--progress", "off"])
    }

    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.cmd.arg(arg);
        self
    }

    pub(crate) fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.cmd.args(args);
        self
    }

    /// `--var KEY=VALUE`.
    pub(crate) fn var(self, key: &str, value: impl std::fmt::Display) -> Self {
        self.arg("--var").arg(format!("{key}={value}"))
    }

    pub(crate) fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    pub(crate) fn env_remove(mut self, key: &str) -> Self {
        self.cmd.env_remove(key);
        self
    }

    /// `FLUX_FAULT=POINT` when a fault point is given.
    pub(crate) fn fault(self, point: Option<&str>) -> Self {
        match point {
            Some(p) => self.env("FLUX_FAULT", p),
            None => self,
        }
    }

    /// Points the command at the AWS emulators ([`Emulators::apply`]).
    pub(crate) fn emulators(mut self, emu: &Emulators) -> Self {
        emu.apply(&mut self.cmd);
        self
    }

    pub(crate) fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    /// The command itself, for what [`Flux::run`] does not do (standard input, spawning).
    pub(crate) fn command(self) -> Command {
        self.cmd
    }

    /// Runs the command to its end.
    pub(crate) fn run(mut self) -> Ran {
        let out = self.cmd.output().expect("run flux-engine");
        Ran::from(out)
    }
}

impl From<std::process::Output> for Ran {
    fn from(out: std::process::Output) -> Self {
        Ran {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Ran {
    /// Asserts exit code 0, showing both outputs when not.
    #[track_caller]
    pub(crate) fn success(self) -> Self {
        self.expect_code(0)
    }

    /// Asserts exit code `code`, showing both outputs when not.
    #[track_caller]
    pub(crate) fn failure(self, code: i32) -> Self {
        assert_ne!(code, 0, "failure(0): use success()");
        self.expect_code(code)
    }

    #[track_caller]
    fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// The exit code, -1 when a signal ended the command.
    pub(crate) fn code_or_signal(&self) -> i32 {
        self.code.unwrap_or(-1)
    }
}

/// The lines of a text file (panics when it cannot be read).
#[track_caller]
pub(crate) fn read_lines(path: impl AsRef<Path>) -> Vec<String> {
    let path = path.as_ref();
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .map(str::to_owned)
        .collect()
}

/// How many lines a file has; 0 when there is no such file.
pub(crate) fn count_lines_if_any(path: impl AsRef<Path>) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// Every line of a JSON-lines file, parsed.
#[track_caller]
pub(crate) fn read_jsonl(path: impl AsRef<Path>) -> Vec<serde_json::Value> {
    read_lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The lines of a gzip file (of one or more members).
pub(crate) fn gunzip_lines(path: &Path) -> Vec<String> {
    let mut s = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    s.lines().map(str::to_owned).collect()
}

/// Gzips `text` (fastest level), as a test writes an object by hand.
pub(crate) fn gzip(text: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, text).unwrap();
    gz.finish().unwrap()
}

/// Every file below `dir` (none when it does not exist), in no particular order.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Sends `signal` (`INT`, `TERM`, `CONT`, …) to a running child with kill(1).
pub(crate) fn kill(child: &std::process::Child, signal: &str) -> std::process::ExitStatus {
    Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .expect("run kill")
}
