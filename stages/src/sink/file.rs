//! `file` sink: JSON Lines to a file or standard output.
//!
//! ```toml
//! [sinks.out]
//! type = "file"
//! inputs = ["mark"]
//! path = "-"              # standard output; a path ending in .gz is gzip-compressed
//! format = "data"         # payloads only; "envelope" (default) keeps position, key and time
//! ```
//!
//! Where it writes:
//! - `-`, `/dev/stdout`, `/dev/fd/1`: the process's standard output (`/dev/stderr`: standard
//!   error). Every write is whole lines, so two sinks writing there interleave lines but never
//!   split one. When the reader goes away (`| head`), the run stops with [`StdoutClosed`].
//! - An existing FIFO, device or socket, and any path under `/dev`, `/proc` or `/sys`: written
//!   where it is (appended to), never created, replaced or removed.
//! - Otherwise a regular file, written under a temporary name in the same directory and renamed
//!   over the file when the run ends cleanly, so a failed run never leaves a truncated file under
//!   the real name. The temporary name is `.<name>.<random>.flux-partial`, created exclusively
//!   (it never replaces a file that exists). A symbolic link is followed: its target is
//!   replaced, never the link. A file that existed keeps its permissions.
//! - A directory is an error.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::local_path::{self, StdStream};
use crate::record::{Batch, Record};
use crate::source::file::LineFormat;
use crate::stage::{Rejected, Sink, SinkReport};

/// Writes records as JSON Lines to a file or standard output.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// Path of the output file (relative to the working directory), or `-` for standard output.
    /// A path ending in `.gz` is gzip-compressed.
    pub path: String,
    /// `envelope` (default): archive envelopes, lossless. `data`: the payloads alone, one per
    /// line (payloads with line breaks go to `dead_letter`).
    #[serde(default = "default_format")]
    pub format: LineFormat,
}

fn default_format() -> LineFormat {
    LineFormat::Envelope
}

impl FileSinkConfig {
    /// Builds the sink (the file is created when the first record arrives, or at the end).
    /// Builds the sink; `dry_run` (`run --dry-run`) counts what it would write and writes
    /// nothing, not even to standard output.
    pub fn build(&self, dry_run: bool) -> Result<Box<dyn Sink>, String> {
        if self.path.is_empty() {
            return Err("`path` must not be empty".into());
        }
        Ok(Box::new(FileSink {
            dry_run,
            config: self.clone(),
            target: None,
            out: None,
            records: 0,
            bytes: 0,
            line: Vec::with_capacity(4096),
        }))
    }
}

/// Where a `file` sink's `path` leads (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Standard output or standard error of the process.
    Std(StdStream),
    /// A FIFO, device or socket, or a path under `/dev`, `/proc` or `/sys`: opened for
    /// appending where it is.
    InPlace(PathBuf),
    /// A regular file (or none yet) at this resolved path (symbolic links followed): written
    /// under a temporary name and renamed over it.
    Replace(PathBuf),
}

impl Target {
    /// Decides where `path` leads, as the operating system resolves it now.
    pub fn of(path: &str) -> std::io::Result<Target> {
        use std::io::{Error, ErrorKind};
        match StdStream::for_writing(path) {
            Some(StdStream::Stdin) => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "standard input cannot be written",
                ));
            }
            Some(s) => return Ok(Target::Std(s)),
            None => {}
        }
        let p = Path::new(path);
        if path.ends_with('/') {
            return Err(Error::new(
                ErrorKind::IsADirectory,
                "the path names a directory",
            ));
        }
        // `metadata` follows links as opening the path would.
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => {
                return Err(Error::new(ErrorKind::IsADirectory, "is a directory"));
            }
            Ok(m) if !m.is_file() => return Ok(Target::InPlace(p.to_path_buf())),
            _ => {}
        }
        let resolved = local_path::resolve(p)?;
        if local_path::is_system_path(p) || local_path::is_system_path(&resolved) {
            return Ok(Target::InPlace(p.to_path_buf()));
        }
        Ok(Target::Replace(resolved))
    }
}

/// The reader of standard output went away (a closed pipe, as after `| head`): nothing more can
/// be written there, and the run stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed by its reader")
    }
}

impl std::error::Error for StdoutClosed {}

/// Writes to standard output or error, each call whole under the stream's lock and flushed, so
/// that sinks sharing the stream never split each other's lines (the buffer in front of it is
/// only ever given whole lines).
struct StdWriter(StdStream);

impl Write for StdWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0 {
            StdStream::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(buf)?;
                out.flush()?;
            }
            _ => std::io::stderr().lock().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Open {
    writer: Box<dyn Write + Send>,
    /// The temporary file (removed when dropped) and the file it replaces at the end.
    replace: Option<(tempfile::TempPath, PathBuf)>,
}

/// The running `file` sink.
pub struct FileSink {
    /// `run --dry-run`: count, write nothing.
    dry_run: bool,
    config: FileSinkConfig,
    target: Option<Target>,
    out: Option<Open>,
    records: u64,
    bytes: u64,
    line: Vec<u8>,
}

/// The longest part of the target's name kept in its temporary name (file names are at most
/// 255 bytes; the rest is `.`, `.`, six random characters and `.flux-partial`).
const TEMP_NAME_KEEP: usize = 200;

fn temp_prefix(target: &Path) -> String {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut end = name.len().min(TEMP_NAME_KEEP);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!(".{}.", &name[..end])
}

impl FileSink {
    fn error(&self, e: std::io::Error) -> anyhow::Error {
        if e.kind() == std::io::ErrorKind::BrokenPipe
            && self.target == Some(Target::Std(StdStream::Stdout))
        {
            anyhow::Error::new(StdoutClosed)
        } else {
            anyhow::anyhow!("{}: {e}", self.config.path)
        }
    }

    fn open(&mut self) -> anyhow::Result<&mut Open> {
        if self.out.is_none() {
            let path = self.config.path.clone();
            let target = Target::of(&path).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
            self.target = Some(target.clone());
            let (raw, replace): (Box<dyn Write + Send>, _) = match target {
                Target::Std(s) => (Box::new(StdWriter(s)), None),
                Target::InPlace(p) => {
                    let f = std::fs::OpenOptions::new()
                        .append(true)
                        .open(&p)
                        .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
                    (Box::new(f), None)
                }
                Target::Replace(target) => {
                    let (file, temp) = create_temp(&target)?;
                    (Box::new(file), Some((temp, target)))
                }
            };
            let buffered = std::io::BufWriter::with_capacity(256 * 1024, raw);
            let writer: Box<dyn Write + Send> = if path.ends_with(".gz") {
                Box::new(crate::gzip::MemberWriter::new(buffered, 6))
            } else {
                Box::new(buffered)
            };
            self.out = Some(Open { writer, replace });
        }
        Ok(self.out.as_mut().expect("opened above"))
    }
}

/// Creates the temporary file that will replace `target`, in its directory (created if
/// missing), with the permissions of the file it replaces if there is one.
fn create_temp(target: &Path) -> anyhow::Result<(std::fs::File, tempfile::TempPath)> {
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let existing = std::fs::metadata(target).ok().map(|m| m.permissions());
    let prefix = temp_prefix(target);
    let mut builder = tempfile::Builder::new();
    builder
        .prefix(&prefix)
        .suffix(".flux-partial")
        .rand_bytes(6);
    #[cfg(unix)]
    let default_mode = {
        use std::os::unix::fs::PermissionsExt;
        // As `File::create`: 0666 less the umask.
        std::fs::Permissions::from_mode(0o666)
    };
    #[cfg(unix)]
    builder.permissions(existing.clone().unwrap_or(default_mode));
    let temp = builder
        .tempfile_in(dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let (file, path) = temp.into_parts();
    if let Some(p) = existing {
        // Exactly the old mode, whatever the umask.
        std::fs::set_permissions(&path, p)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    Ok((file, path))
}

#[async_trait]
impl Sink for FileSink {
    async fn write(
        &mut self,
        batch: Arc<Batch>,
        rejected: &mut Vec<Rejected>,
    ) -> anyhow::Result<()> {
        let format = self.config.format;
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        for r in batch.iter() {
            if let Err(reason) = append_line(format, r, &mut line) {
                rejected.push(Rejected {
                    record: r.clone(),
                    reason,
                });
                continue;
            }
            self.records += 1;
        }
        self.bytes += line.len() as u64;
        if self.dry_run {
            self.line = line;
            return Ok(());
        }
        let written = self.open()?.writer.write_all(&line);
        written.map_err(|e| self.error(e))?;
        self.line = line;
        Ok(())
    }

    async fn finish(&mut self) -> anyhow::Result<SinkReport> {
        let path = self.config.path.clone();
        if self.dry_run {
            return Ok(vec![format!(
                "dry run: wrote nothing; would write {} records ({} bytes) to {path}",
                self.records, self.bytes
            )]
            .into());
        }
        let flushed = self.open()?.writer.flush();
        flushed.map_err(|e| self.error(e))?;
        let Open { writer, replace } = self.out.take().expect("opened above");
        // The flush wrote the last gzip member (a `.gz` path); dropping closes the file.
        drop(writer);
        if let Some((temp, target)) = replace {
            temp.persist(&target)
                .map_err(|e| anyhow::anyhow!("{path}: {}", e.error))?;
        }
        let place = match self.target {
            Some(Target::Std(s)) => s.name().to_owned(),
            _ => path,
        };
        Ok(vec![format!(
            "wrote {} records ({} bytes) to {place}",
            self.records, self.bytes
        )]
        .into())
    }
}

/// Appends `r` to `out` as one line in `format`; the reason when it cannot be one line (a
/// payload with a line break in the `data` format).
pub fn append_line(format: LineFormat, r: &Record, out: &mut Vec<u8>) -> Result<(), String> {
    match format {
        LineFormat::Envelope => r.write_envelope(out),
        LineFormat::Data => {
            if r.data.contains(&b'\n') || r.data.contains(&b'\r') {
                return Err("payload contains a line break; use format = \"envelope\"".into());
            }
            out.extend_from_slice(&r.data);
            out.push(b'\n');
        }
    }
    Ok(())
}

impl crate::registry::StageKind for FileSinkConfig {
    fn build(
        &self,
        ctx: &crate::registry::BuildContext,
    ) -> Result<crate::registry::BuiltStage, String> {
        FileSinkConfig::build(self, ctx.dry_run).map(crate::registry::BuiltStage::Sink)
    }

    fn place(&self) -> Option<Result<crate::registry::Place, String>> {
        let std = crate::local_path::StdStream::for_writing(&self.path);
        Some(
            Target::of(&self.path)
                .map_err(|e| format!("{}: {e}", self.path))
                .and_then(|_| crate::registry::file_place(&self.path, std)),
        )
    }
}

#[cfg(all(test, unix))]
mod tests;
