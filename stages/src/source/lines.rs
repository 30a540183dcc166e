//! Reading JSON Lines (plain or gzip) on a blocking thread, parsed into batches there, so the
//! CPU work of decompressing and parsing stays off the async workers.

use std::io::{BufRead, BufReader, Read};

use flate2::read::MultiGzDecoder;
use tokio::sync::mpsc;

use super::read_ahead::{ChunkPool, ReadAhead};

use crate::record::Batch;
use crate::stage::{Rejected, SourceContext};

/// What the parser made of a run of lines.
#[derive(Default)]
pub struct Parsed {
    /// Records.
    pub records: Batch,
    /// Lines that could not be turned into records, with the reason.
    pub rejected: Vec<Rejected>,
    /// Lines skipped on purpose (outside bounds, ruled out by a pushed-down filter).
    pub skipped: usize,
}

impl Parsed {
    /// Takes what was parsed, leaving an empty `Parsed` with room for as many records: batches
    /// of a run tend to hold alike numbers, and a vector grown one push at a time would copy
    /// its records about once more on the way.
    fn take(&mut self) -> Parsed {
        let room = self.records.len();
        std::mem::replace(
            self,
            Parsed {
                records: Vec::with_capacity(room),
                ..Parsed::default()
            },
        )
    }
}

/// Wraps a reader in a gzip decoder when `gzip` is set, and in a large buffer. With `ahead`
/// (for a gzip file or object, not for a pipe: a chunk is handed over when full), the
/// decompression runs on a thread of its own ([`ReadAhead`]), into that pool's buffers.
pub fn buffered(
    reader: Box<dyn Read + Send>,
    gzip: bool,
    ahead: Option<&ChunkPool>,
) -> std::io::Result<Lines> {
    const BUF: usize = 256 * 1024;
    if let (true, Some(pool)) = (gzip, ahead) {
        let decoder = Box::new(MultiGzDecoder::new(reader));
        return Ok(Lines::Ahead(ReadAhead::new(decoder, pool)?));
    }
    let inner: Box<dyn Read + Send> = if gzip {
        Box::new(MultiGzDecoder::new(reader))
    } else {
        reader
    };
    Ok(Lines::Buffered(BufReader::with_capacity(BUF, inner)))
}

/// A buffered line reader over a (decompressed) byte stream.
pub enum Lines {
    /// Read and decompressed on the parser's thread.
    Buffered(BufReader<Box<dyn Read + Send>>),
    /// Decompressed on a thread of its own.
    Ahead(ReadAhead),
}

impl Lines {
    /// Whether everything read so far was consumed (the next read may wait for input).
    fn is_drained(&self) -> bool {
        match self {
            Lines::Buffered(b) => b.buffer().is_empty(),
            Lines::Ahead(a) => a.is_drained(),
        }
    }
}

impl Read for Lines {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Lines::Buffered(b) => b.read(out),
            Lines::Ahead(a) => a.read(out),
        }
    }
}

impl BufRead for Lines {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        match self {
            Lines::Buffered(b) => b.fill_buf(),
            Lines::Ahead(a) => a.fill_buf(),
        }
    }

    fn consume(&mut self, amount: usize) {
        match self {
            Lines::Buffered(b) => b.consume(amount),
            Lines::Ahead(a) => a.consume(amount),
        }
    }
}

/// Starts a blocking thread that reads lines from `open()`, hands each non-empty line (without
/// its line break, with its 1-based number) to `parse`, and sends a [`Parsed`] every
/// `batch_records` lines. Errors (I/O, gzip) end the stream with an `Err` naming `what`.
pub fn spawn_reader<P>(
    what: String,
    open: impl FnOnce() -> std::io::Result<Lines> + Send + 'static,
    batch_records: usize,
    parse: P,
) -> mpsc::Receiver<Result<Parsed, String>>
where
    P: FnMut(u64, &[u8], &mut Parsed) + Send + 'static,
{
    spawn_reader_with(what, open, batch_records, false, parse)
}

/// Like [`spawn_reader`]; with `flush_when_idle`, a partial batch is also sent whenever the
/// next read would wait for input (standard input, pipes), so nothing read sits unsent.
pub fn spawn_reader_with<P>(
    what: String,
    open: impl FnOnce() -> std::io::Result<Lines> + Send + 'static,
    batch_records: usize,
    flush_when_idle: bool,
    parse: P,
) -> mpsc::Receiver<Result<Parsed, String>>
where
    P: FnMut(u64, &[u8], &mut Parsed) + Send + 'static,
{
    let (tx, rx) = mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        read_lines_into(what, open, batch_records, flush_when_idle, parse, &tx);
    });
    rx
}

/// The body of [`spawn_reader_with`], sending into a channel the caller owns (so a reader of
/// several objects in a row needs no channel of its own per object). Runs on the calling
/// (blocking) thread. Returns false when the receiver is gone or an error was sent: nothing
/// more should be read.
pub fn read_lines_into<P>(
    what: String,
    open: impl FnOnce() -> std::io::Result<Lines>,
    batch_records: usize,
    flush_when_idle: bool,
    mut parse: P,
    tx: &mpsc::Sender<Result<Parsed, String>>,
) -> bool
where
    P: FnMut(u64, &[u8], &mut Parsed),
{
    {
        let mut reader = match open() {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(format!("{what}: {e}")));
                return false;
            }
        };
        // Lines are parsed where they lie in the reader's buffer; only a line that spans two
        // refills is copied (into `carry`).
        let mut carry: Vec<u8> = Vec::new();
        let mut line_no = 0u64;
        let mut parsed = Parsed::default();
        let mut in_batch = 0usize;
        loop {
            // Reading from a pipe or a terminal: send what was parsed before waiting for more.
            if flush_when_idle && in_batch > 0 && reader.is_drained() {
                in_batch = 0;
                if tx.blocking_send(Ok(parsed.take())).is_err() {
                    return false;
                }
            }
            let buf = match reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(format!("{what}: line {}: {e}", line_no + 1)));
                    return false;
                }
            };
            let available = buf.len();
            let (line, used) = match memchr::memchr(b'\n', buf) {
                Some(i) if carry.is_empty() => (&buf[..i], i + 1),
                Some(i) => {
                    carry.extend_from_slice(&buf[..i]);
                    (carry.as_slice(), i + 1)
                }
                None if available > 0 => {
                    carry.extend_from_slice(buf);
                    reader.consume(available);
                    continue;
                }
                // The end: a last line without a line break, if any.
                None if carry.is_empty() => break,
                None => (carry.as_slice(), 0),
            };
            line_no += 1;
            let text = line.strip_suffix(b"\r").unwrap_or(line);
            let parsed_one = !text.is_empty();
            if parsed_one {
                parse(line_no, text, &mut parsed);
            }
            carry.clear();
            if used == 0 {
                break;
            }
            reader.consume(used);
            if !parsed_one {
                continue;
            }
            in_batch += 1;
            if in_batch >= batch_records {
                in_batch = 0;
                if tx.blocking_send(Ok(parsed.take())).is_err() {
                    return false;
                }
            }
        }
        // A send fails only when the receiver is gone: the run is stopping.
        !(!parsed.records.is_empty() || !parsed.rejected.is_empty() || parsed.skipped > 0)
            || tx.blocking_send(Ok(parsed)).is_ok()
    }
}

/// Forwards everything a reader produces to the source's output, stopping early when asked.
/// Returns the number of lines' worth of records forwarded.
pub async fn forward(
    mut rx: mpsc::Receiver<Result<Parsed, String>>,
    ctx: &mut SourceContext,
) -> anyhow::Result<u64> {
    let mut n = 0u64;
    loop {
        let next = tokio::select! {
            biased;
            _ = ctx.stop.cancelled(), if !rx.is_closed() => {
                // Stop reading, but deliver what was already read.
                rx.close();
                continue;
            }
            next = rx.recv() => next,
        };
        let Some(parsed) = next else { return Ok(n) };
        let parsed = parsed.map_err(anyhow::Error::msg)?;
        n += parsed.records.len() as u64;
        crate::stage::StageMetrics::add(&ctx.output.metrics().records_in, parsed.records.len());
        crate::stage::StageMetrics::add(&ctx.output.metrics().skipped, parsed.skipped);
        crate::stage::StageMetrics::add(
            &ctx.output.metrics().bytes_in,
            crate::record::batch_weight(&parsed.records),
        );
        ctx.output.reject(parsed.rejected).await?;
        ctx.output.send(parsed.records).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;
    use crate::stage::Rejected;

    /// (line number, text) of every non-empty line, read through a buffer of `capacity` bytes.
    fn lines(input: &'static [u8], capacity: usize, batch: usize) -> Vec<(u64, String)> {
        let (tx, mut rx) = mpsc::channel(64);
        let ok = read_lines_into(
            "test".into(),
            move || {
                Ok(Lines::Buffered(BufReader::with_capacity(
                    capacity,
                    Box::new(std::io::Cursor::new(input)) as Box<dyn Read + Send>,
                )))
            },
            batch,
            false,
            |n, text, out: &mut Parsed| {
                out.records.push(Record {
                    stream: "s".into(),
                    shard_id: "shardId-0".into(),
                    sequence_number: crate::record::SequenceNumber::from_u64(n),
                    sub_sequence_number: None,
                    partition_key: std::str::from_utf8(text).unwrap().into(),
                    arrival_ts: crate::record::ts_from_millis(0),
                    data: bytes::Bytes::new(),
                    annotations: None,
                    probed: None,
                });
            },
            &tx,
        );
        assert!(ok);
        drop(tx);
        let mut out = Vec::new();
        while let Ok(p) = rx.try_recv() {
            for r in p.unwrap().records {
                out.push((
                    r.sequence_number.as_str().parse().unwrap(),
                    r.partition_key.to_string(),
                ));
            }
        }
        out
    }

    #[test]
    fn lines_are_split_across_buffer_refills_exactly() {
        let input = b"ab\r\n\ncdefghijklmnop\nq";
        let expected: Vec<(u64, String)> = vec![
            (1, "ab".into()),
            (3, "cdefghijklmnop".into()),
            (4, "q".into()),
        ];
        for capacity in [1, 2, 3, 5, 7, 64] {
            for batch in [1, 2, 10] {
                assert_eq!(
                    lines(input, capacity, batch),
                    expected,
                    "capacity {capacity}"
                );
            }
        }
        assert_eq!(lines(b"", 4, 1), vec![]);
        assert_eq!(lines(b"\n\n", 4, 1), vec![]);
        assert_eq!(lines(b"x\n", 1, 1), vec![(1, "x".into())]);
    }

    /// Hands out one chunk per read, as a pipe does.
    struct Chunks(Vec<&'static [u8]>);

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let chunk = self.0.remove(0);
            buf[..chunk.len()].copy_from_slice(chunk);
            Ok(chunk.len())
        }
    }

    #[test]
    fn when_idle_what_was_read_is_sent_before_waiting_for_more() {
        let (tx, mut rx) = mpsc::channel(64);
        let ok = read_lines_into(
            "stdin".into(),
            || {
                Ok(Lines::Buffered(BufReader::new(
                    Box::new(Chunks(vec![b"a\n\n", b"b\nc", b"d\n"])) as Box<dyn Read + Send>,
                )))
            },
            100,
            true,
            |_, text, out: &mut Parsed| {
                out.skipped += 1;
                out.rejected.push(Rejected {
                    record: Record {
                        stream: "s".into(),
                        shard_id: "s".into(),
                        sequence_number: crate::record::SequenceNumber::from_u64(1),
                        sub_sequence_number: None,
                        partition_key: std::str::from_utf8(text).unwrap().into(),
                        arrival_ts: crate::record::ts_from_millis(0),
                        data: bytes::Bytes::new(),
                        annotations: None,
                        probed: None,
                    },
                    reason: String::new(),
                });
            },
            &tx,
        );
        assert!(ok);
        drop(tx);
        let mut batches = Vec::new();
        while let Ok(p) = rx.try_recv() {
            let keys: Vec<String> = p
                .unwrap()
                .rejected
                .into_iter()
                .map(|r| r.record.partition_key.to_string())
                .collect();
            batches.push(keys);
        }
        // "a" goes before the second read (after the empty line), "b" before the read that
        // completes "cd".
        assert_eq!(batches, vec![vec!["a"], vec!["b"], vec!["cd"]]);
    }
}
