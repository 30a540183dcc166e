//! Sorted runs on disk: the temporary folder, and writing and reading runs.
//!
//! A run is a file of entries, each `key length (u32 LE) · key · effective arrival ms (i64 LE) ·
//! origin length (u32 LE) · origin (JSON; length 0 for a live record) · record length (u32 LE) ·
//! record`. The record is in a binary form of its own (`encode`):
//! length-prefixed fields, the payload bytes as they are and annotations as JSON, so it
//! round-trips byte for byte and reading it back parses no JSON (runs are written and read by
//! this process only). Runs of the second phase (sorted by version) have empty keys.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::order::Ranked;
use crate::record::{Interner, Record, SequenceNumber};

const BUF: usize = 64 * 1024;

/// One entry of a run.
pub struct Entry {
    /// The compaction key (empty in runs sorted by version).
    pub key: Box<[u8]>,
    /// The record and its place in the version order.
    pub item: Ranked,
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
            origin: Vec::new(),
            bytes: 0,
        })
    }
}

/// Writes one run.
pub struct RunWriter {
    out: BufWriter<File>,
    path: PathBuf,
    line: Vec<u8>,
    origin: Vec<u8>,
    bytes: u64,
}

impl RunWriter {
    /// Appends an entry.
    pub fn write(&mut self, key: &[u8], item: &Ranked) -> anyhow::Result<()> {
        self.line.clear();
        encode(&item.record, &mut self.line)?;
        self.origin.clear();
        if let Some(origin) = &item.origin {
            serde_json::to_writer(&mut self.origin, origin)?;
        }
        let io = write_entry(&mut self.out, key, item.ms, &self.origin, &self.line);
        io.with_context(|| format!("cannot write {}", self.path.display()))?;
        self.bytes += 20 + (key.len() + self.origin.len() + self.line.len()) as u64;
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
    origin: &[u8],
    line: &[u8],
) -> anyhow::Result<()> {
    let len = |b: &[u8], what: &str| {
        u32::try_from(b.len()).with_context(|| format!("{what} longer than 4 GiB"))
    };
    out.write_all(&len(key, "compaction key")?.to_le_bytes())?;
    out.write_all(key)?;
    out.write_all(&ms.to_le_bytes())?;
    out.write_all(&len(origin, "origin")?.to_le_bytes())?;
    out.write_all(origin)?;
    out.write_all(&len(line, "record")?.to_le_bytes())?;
    out.write_all(line)?;
    Ok(())
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
        let origin = if self.buf.is_empty() {
            None
        } else {
            Some(Box::new(serde_json::from_slice(&self.buf)?))
        };
        self.input.read_exact(&mut len)?;
        self.buf.resize(u32::from_le_bytes(len) as usize, 0);
        self.input.read_exact(&mut self.buf)?;
        let record = decode(&self.buf, &mut self.interner)?;
        Ok(Entry {
            key: key.into_boxed_slice(),
            item: Ranked {
                ms: i64::from_le_bytes(ms),
                origin,
                record,
            },
        })
    }
}

/// Appends `record` in the runs' binary form, all little-endian: stream, shard id and sequence
/// number (each a u16 length, then the text); the sub-sequence number (a u8 flag, then a u64);
/// the partition key (a u32 length, then the text); the arrival time (i64 seconds, u32
/// nanoseconds); the payload (a u32 length, then the bytes); the annotations (a u32 length, then
/// JSON; length 0 for none).
fn encode(record: &Record, out: &mut Vec<u8>) -> anyhow::Result<()> {
    fn short(out: &mut Vec<u8>, text: &str) -> anyhow::Result<()> {
        let n = u16::try_from(text.len()).context("field longer than 64 KiB")?;
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(text.as_bytes());
        Ok(())
    }
    fn long(out: &mut Vec<u8>, bytes: &[u8]) -> anyhow::Result<()> {
        let n = u32::try_from(bytes.len()).context("field longer than 4 GiB")?;
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(bytes);
        Ok(())
    }
    short(out, &record.stream)?;
    short(out, &record.shard_id)?;
    short(out, record.sequence_number.as_str())?;
    match record.sub_sequence_number {
        Some(n) => {
            out.push(1);
            out.extend_from_slice(&n.to_le_bytes());
        }
        None => out.push(0),
    }
    long(out, record.partition_key.as_bytes())?;
    out.extend_from_slice(&record.arrival_ts.timestamp().to_le_bytes());
    out.extend_from_slice(&record.arrival_ts.timestamp_subsec_nanos().to_le_bytes());
    long(out, &record.data)?;
    match &record.annotations {
        Some(a) => long(out, &serde_json::to_vec(a)?)?,
        None => long(out, &[])?,
    }
    Ok(())
}

/// Reads a record written by [`encode`].
fn decode(mut bytes: &[u8], interner: &mut Interner) -> anyhow::Result<Record> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> anyhow::Result<&'a [u8]> {
        anyhow::ensure!(bytes.len() >= n, "record cut short");
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Ok(head)
    }
    fn array<const N: usize>(bytes: &mut &[u8]) -> anyhow::Result<[u8; N]> {
        Ok(take(bytes, N)?.try_into().expect("N bytes"))
    }
    fn short<'a>(bytes: &mut &'a [u8]) -> anyhow::Result<&'a str> {
        let n = u16::from_le_bytes(array(bytes)?) as usize;
        Ok(std::str::from_utf8(take(bytes, n)?)?)
    }
    fn long<'a>(bytes: &mut &'a [u8]) -> anyhow::Result<&'a [u8]> {
        let n = u32::from_le_bytes(array(bytes)?) as usize;
        take(bytes, n)
    }
    let stream = interner.intern(short(&mut bytes)?);
    let shard_id = interner.intern(short(&mut bytes)?);
    let sequence_number = SequenceNumber::parse(short(&mut bytes)?).map_err(anyhow::Error::msg)?;
    let sub_sequence_number = match array::<1>(&mut bytes)? {
        [0] => None,
        _ => Some(u64::from_le_bytes(array(&mut bytes)?)),
    };
    let partition_key = crate::record::CompactString::from(std::str::from_utf8(long(&mut bytes)?)?);
    let secs = i64::from_le_bytes(array(&mut bytes)?);
    let nanos = u32::from_le_bytes(array(&mut bytes)?);
    let arrival_ts =
        chrono::DateTime::from_timestamp(secs, nanos).context("arrival time out of range")?;
    let data = bytes::Bytes::copy_from_slice(long(&mut bytes)?);
    let annotations = match long(&mut bytes)? {
        [] => None,
        json => Some(Box::new(serde_json::from_slice(json)?)),
    };
    anyhow::ensure!(bytes.is_empty(), "trailing bytes after a record");
    Ok(Record {
        stream,
        shard_id,
        sequence_number,
        sub_sequence_number,
        partition_key,
        arrival_ts,
        data,
        annotations,
        probed: None,
    })
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
    use crate::record::ts_from_millis;

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
            probed: None,
        };
        record.annotate("window", serde_json::json!({"start": "a", "end": "b"}));
        let ranked = |ms: i64, record: &Record, origin: Option<&Record>| Ranked {
            ms,
            origin: origin.map(|o| Box::new(crate::replay::Version::of(o))),
            record: record.clone(),
        };
        let mut w = dir.create().unwrap();
        w.write(b"key", &ranked(-7, &record, None)).unwrap();
        w.write(b"", &ranked(9, &record, Some(&record))).unwrap();
        let other = Record {
            stream: "orders".into(),
            shard_id: "shardId-000000000003".into(),
            sequence_number: SequenceNumber::parse(
                "49590965313585712722664768729111599489403360183634635353",
            )
            .unwrap(),
            sub_sequence_number: None,
            partition_key: "Zoë ✓".into(),
            arrival_ts: chrono::DateTime::from_timestamp(1_764_000_000, 123_456_789).unwrap(),
            data: bytes::Bytes::from_static(br#"{"a":[1,"\u00e9"]}"#),
            annotations: None,
            probed: None,
        };
        w.write(b"k2", &ranked(1, &other, None)).unwrap();
        let path = w.finish(&mut dir).unwrap();
        let root = dir.path().to_path_buf();
        let mut r = RunReader::open(path.clone()).unwrap();
        let a = r.next_entry().unwrap().unwrap();
        assert_eq!((&*a.key, a.item.ms), (&b"key"[..], -7));
        assert_eq!((&a.item.record, &a.item.origin), (&record, &None));
        let b = r.next_entry().unwrap().unwrap();
        assert_eq!((&*b.key, b.item.ms), (&b""[..], 9));
        let origin = crate::replay::Version::of(&record);
        assert_eq!(b.item.origin.as_deref(), Some(&origin));
        let c = r.next_entry().unwrap().unwrap();
        assert_eq!(c.item.record, other);
        assert!(r.next_entry().unwrap().is_none());
        drop(r);
        assert!(!path.exists());
        drop(dir);
        assert!(!root.exists());
    }
}
