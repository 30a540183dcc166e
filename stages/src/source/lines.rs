//! Reading JSON Lines (plain or gzip) on a blocking thread, parsed into batches there, so the
//! CPU work of decompressing and parsing stays off the async workers.

use std::io::{BufRead, BufReader, Read};

use flate2::read::MultiGzDecoder;
use tokio::sync::mpsc;

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

/// Wraps a reader in a gzip decoder when `gzip` is set, and in a large buffer.
pub fn buffered(reader: Box<dyn Read + Send>, gzip: bool) -> Lines {
    const BUF: usize = 256 * 1024;
    let inner: Box<dyn Read + Send> = if gzip {
        Box::new(MultiGzDecoder::new(reader))
    } else {
        reader
    };
    BufReader::with_capacity(BUF, inner)
}

/// A buffered line reader over a (decompressed) byte stream.
pub type Lines = BufReader<Box<dyn Read + Send>>;

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
    mut parse: P,
) -> mpsc::Receiver<Result<Parsed, String>>
where
    P: FnMut(u64, &[u8], &mut Parsed) + Send + 'static,
{
    let (tx, rx) = mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        let mut reader = match open() {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(format!("{what}: {e}")));
                return;
            }
        };
        let mut line = Vec::with_capacity(4096);
        let mut line_no = 0u64;
        let mut parsed = Parsed::default();
        let mut in_batch = 0usize;
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(format!("{what}: line {}: {e}", line_no + 1)));
                    return;
                }
            }
            line_no += 1;
            let mut text = line.as_slice();
            if let Some(t) = text.strip_suffix(b"\n") {
                text = t;
            }
            if let Some(t) = text.strip_suffix(b"\r") {
                text = t;
            }
            if text.is_empty() {
                continue;
            }
            parse(line_no, text, &mut parsed);
            in_batch += 1;
            if in_batch >= batch_records || (flush_when_idle && reader.buffer().is_empty()) {
                in_batch = 0;
                if tx.blocking_send(Ok(std::mem::take(&mut parsed))).is_err() {
                    return;
                }
            }
        }
        if (!parsed.records.is_empty() || !parsed.rejected.is_empty() || parsed.skipped > 0)
            && tx.blocking_send(Ok(parsed)).is_err()
        {
            // The receiver is gone: the run is stopping.
        }
    });
    rx
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
