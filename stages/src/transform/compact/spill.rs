//! Sorted runs on disk: the temporary folder, and writing and reading runs.
//!
//! A run is a file of entries, each `key length (u32 LE) · key · effective arrival ms (i64 LE) ·
//! envelope length (u32 LE) · envelope line`. The envelope is the archive's own JSON line
//! ([`Record::write_envelope`]), which round-trips a record byte for byte, annotations included.
//! Runs of the second phase (sorted by version) have empty keys.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::record::{Interner, Record};

const BUF: usize = 64 * 1024;

/// One entry of a run.
pub struct Entry {
    /// The compaction key (empty in runs sorted by version).
    pub key: Box<[u8]>,
    /// The effective arrival time (see [`order`](super::order)).
    pub ms: i64,
    /// The record.
    pub record: Record,
}

/// The temporary folder that holds the runs of one compaction; removed when dropped (at the end
/// of the stage, and when the stage fails).
pub struct SpillDir {
    dir: tempfile::TempDir,
    next: u64,
    /// Bytes written to runs so far.
    pub written: u64,
    /// Runs written so far.
    pub runs: u64,
}

impl SpillDir {
    /// Creates a fresh folder under `parent` (the system's temporary folder when `None`).
    pub fn new(parent: Option<&Path>) -> anyhow::Result<SpillDir> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("flux-compact-");
        let dir = match parent {
            Some(p) => builder.tempdir_in(p),
            None => builder.tempdir(),
        }
        .with_context(|| {
            format!(
                "cannot create a spill folder in {}",
                parent.map_or_else(
                    || std::env::temp_dir().display().to_string(),
                    |p| p.display().to_string()
                )
            )
        })?;
        Ok(SpillDir {
            dir,
            next: 0,
            written: 0,
            runs: 0,
        })
    }

    /// The folder's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Starts a new run file.
    pub fn create(&mut self) -> anyhow::Result<RunWriter> {
        let path = self.dir.path().join(format!("run-{:06}.bin", self.next));
        self.next += 1;
        self.runs += 1;
        let file =
            File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(RunWriter {
            out: BufWriter::with_capacity(BUF, file),
            path,
            line: Vec::with_capacity(4096),
            bytes: 0,
        })
    }
}

/// Writes one run.
pub struct RunWriter {
    out: BufWriter<File>,
    path: PathBuf,
    line: Vec<u8>,
    bytes: u64,
}

impl RunWriter {
    /// Appends an entry.
    pub fn write(&mut self, key: &[u8], ms: i64, record: &Record) -> anyhow::Result<()> {
        self.line.clear();
        record.write_envelope(&mut self.line);
        let key_len = u32::try_from(key.len()).context("compaction key longer than 4 GiB")?;
        let line_len = u32::try_from(self.line.len()).context("record longer than 4 GiB")?;
        let io = write_entry(&mut self.out, key, ms, &self.line, key_len, line_len);
        io.with_context(|| format!("cannot write {}", self.path.display()))?;
        self.bytes += 16 + key.len() as u64 + self.line.len() as u64;
        Ok(())
    }

    /// Flushes and closes the run; returns its path and size.
    pub fn finish(self, dir: &mut SpillDir) -> anyhow::Result<PathBuf> {
        let path = self.path.clone();
        self.out
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", path.display()))?;
        dir.written += self.bytes;
        Ok(path)
    }
}

fn write_entry(
    out: &mut impl Write,
    key: &[u8],
    ms: i64,
    line: &[u8],
    key_len: u32,
    line_len: u32,
) -> std::io::Result<()> {
    out.write_all(&key_len.to_le_bytes())?;
    out.write_all(key)?;
    out.write_all(&ms.to_le_bytes())?;
    out.write_all(&line_len.to_le_bytes())?;
    out.write_all(line)
}

/// Reads one run in order; deletes the file when dropped.
pub struct RunReader {
    input: BufReader<File>,
    path: PathBuf,
    interner: Interner,
    buf: Vec<u8>,
}

impl RunReader {
    /// Opens a run written by [`RunWriter`].
    pub fn open(path: PathBuf) -> anyhow::Result<RunReader> {
        let file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        Ok(RunReader {
            input: BufReader::with_capacity(BUF, file),
            path,
            interner: Interner::default(),
            buf: Vec::new(),
        })
    }

    /// The next entry, or `None` at the end of the run.
    pub fn next_entry(&mut self) -> anyhow::Result<Option<Entry>> {
        let mut len = [0u8; 4];
        match self.input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", self.path.display()));
            }
        }
        let entry = self.read_entry(u32::from_le_bytes(len) as usize);
        entry
            .map(Some)
            .with_context(|| format!("corrupt spill run {}", self.path.display()))
    }
}

impl RunReader {
    fn read_entry(&mut self, key_len: usize) -> anyhow::Result<Entry> {
        let mut key = vec![0u8; key_len];
        self.input.read_exact(&mut key)?;
        let mut ms = [0u8; 8];
        self.input.read_exact(&mut ms)?;
        let mut len = [0u8; 4];
        self.input.read_exact(&mut len)?;
        self.buf.resize(u32::from_le_bytes(len) as usize, 0);
        self.input.read_exact(&mut self.buf)?;
        let line = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
        let record =
            Record::parse_envelope(line, &mut self.interner).map_err(anyhow::Error::msg)?;
        Ok(Entry {
            key: key.into_boxed_slice(),
            ms: i64::from_le_bytes(ms),
            record,
        })
    }
}

impl Drop for RunReader {
    fn drop(&mut self) {
        // The folder goes at the end anyway; this frees the space as soon as a run is merged.
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{SequenceNumber, ts_from_millis};

    #[test]
    fn runs_round_trip_and_vanish() {
        let mut dir = SpillDir::new(None).unwrap();
        let mut record = Record {
            stream: "orders".into(),
            shard_id: "s0".into(),
            sequence_number: SequenceNumber::from_u64(5),
            sub_sequence_number: Some(2),
            partition_key: "k".into(),
            arrival_ts: ts_from_millis(1234),
            data: bytes::Bytes::from_static(b"\xff binary"),
            annotations: None,
        };
        record.annotate("window", serde_json::json!({"start": "a", "end": "b"}));
        let mut w = dir.create().unwrap();
        w.write(b"key", -7, &record).unwrap();
        w.write(b"", 9, &record).unwrap();
        let path = w.finish(&mut dir).unwrap();
        let root = dir.path().to_path_buf();
        let mut r = RunReader::open(path.clone()).unwrap();
        let a = r.next_entry().unwrap().unwrap();
        assert_eq!((&*a.key, a.ms), (&b"key"[..], -7));
        assert_eq!(a.record, record);
        let b = r.next_entry().unwrap().unwrap();
        assert_eq!((&*b.key, b.ms), (&b""[..], 9));
        assert!(r.next_entry().unwrap().is_none());
        drop(r);
        assert!(!path.exists());
        drop(dir);
        assert!(!root.exists());
    }
}
