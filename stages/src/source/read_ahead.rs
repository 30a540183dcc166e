//! Decompressing on a thread of its own, ahead of the thread that parses.
//!
//! A reader's two jobs, inflating gzip and parsing lines, then run on two threads, so that one
//! shard left to read at the end of a run (or one file) uses two cores instead of one; with
//! many shards in flight it changes little, as the cores are busy either way.

use std::io::{self, BufRead, Read};
use std::sync::mpsc;

/// Decompressed bytes handed over at a time.
const CHUNK: usize = 256 * 1024;

/// Chunks decompressed ahead of the parser (besides the one it reads and the one being filled).
const AHEAD: usize = 2;

/// A [`BufRead`] over what a thread of its own reads from another reader (a gzip decoder),
/// [`CHUNK`] bytes at a time, up to [`AHEAD`] chunks ahead. Errors come in order, after the
/// bytes read before them. Dropping it stops the thread at its next chunk.
pub struct ReadAhead {
    /// `None` once dropping.
    chunks: Option<mpsc::Receiver<io::Result<(Vec<u8>, usize)>>>,
    /// Disconnects when the thread has ended.
    finished: mpsc::Receiver<()>,
    /// Spent chunks, sent back to be filled again.
    spent: mpsc::SyncSender<Vec<u8>>,
    current: Vec<u8>,
    len: usize,
    pos: usize,
}

impl ReadAhead {
    /// Starts reading `inner` on the tokio blocking pool when there is a runtime, on a new
    /// thread otherwise.
    pub fn new(inner: Box<dyn Read + Send>) -> io::Result<ReadAhead> {
        let (tx, chunks) = mpsc::sync_channel(AHEAD);
        let (spent, recycled) = mpsc::sync_channel(AHEAD + 2);
        let (done, finished) = mpsc::sync_channel::<()>(0);
        let job = move || {
            fill(inner, &tx, &recycled);
            drop(done);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(job)),
            Err(_) => drop(
                std::thread::Builder::new()
                    .name("flux-read-ahead".into())
                    .spawn(job)?,
            ),
        }
        Ok(ReadAhead {
            chunks: Some(chunks),
            finished,
            spent,
            current: Vec::new(),
            len: 0,
            pos: 0,
        })
    }

    /// Whether everything received so far was consumed (the next read may wait).
    pub fn is_drained(&self) -> bool {
        self.pos >= self.len
    }
}

/// The reading thread: fills chunks from `inner` until its end, an error, or the reader is gone.
fn fill(
    mut inner: Box<dyn Read + Send>,
    tx: &mpsc::SyncSender<io::Result<(Vec<u8>, usize)>>,
    recycled: &mpsc::Receiver<Vec<u8>>,
) {
    loop {
        let mut chunk = recycled.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK]);
        let mut len = 0;
        let mut failed = None;
        while len < CHUNK {
            match inner.read(&mut chunk[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let end = len < CHUNK;
        if len > 0 && tx.send(Ok((chunk, len))).is_err() {
            return;
        }
        if let Some(e) = failed {
            let _ = tx.send(Err(e));
            return;
        }
        if end {
            return;
        }
    }
}

impl BufRead for ReadAhead {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.len {
            let Some(chunks) = &self.chunks else {
                return Ok(&[]);
            };
            match chunks.recv() {
                Ok(Ok((chunk, len))) => {
                    let spent = std::mem::replace(&mut self.current, chunk);
                    if !spent.is_empty() {
                        let _ = self.spent.try_send(spent);
                    }
                    self.len = len;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The thread is done: the end.
                Err(_) => {
                    self.len = 0;
                    self.pos = 0;
                }
            }
        }
        Ok(&self.current[self.pos..self.len])
    }

    fn consume(&mut self, amount: usize) {
        self.pos = (self.pos + amount).min(self.len);
    }
}

/// Waits for the thread to end, so that nothing of a read outlives its reader (a thread still
/// reading through the runtime while it shuts down would panic): with the chunks' receiver
/// gone, the thread ends at its next hand-over.
impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.chunks = None;
        let _ = self.finished.recv();
    }
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that yields `data` in pieces of `step` bytes, then `error` if any.
    struct Pieces {
        data: Vec<u8>,
        at: usize,
        step: usize,
        error: Option<io::ErrorKind>,
    }

    impl Read for Pieces {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.at == self.data.len() {
                return match self.error.take() {
                    Some(kind) => Err(io::Error::new(kind, "broken")),
                    None => Ok(0),
                };
            }
            let n = self.step.min(out.len()).min(self.data.len() - self.at);
            out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn hands_over_every_byte_in_order_across_chunks() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            let want = data(len);
            let inner = Pieces {
                data: want.clone(),
                at: 0,
                step: 10_007,
                error: None,
            };
            let mut got = Vec::new();
            ReadAhead::new(Box::new(inner))
                .unwrap()
                .read_to_end(&mut got)
                .unwrap();
            assert_eq!(got.len(), want.len());
            assert!(got == want, "bytes differ at length {len}");
        }
    }

    #[test]
    fn an_error_comes_after_the_bytes_before_it() {
        let want = data(CHUNK + 100);
        let inner = Pieces {
            data: want.clone(),
            at: 0,
            step: 4096,
            error: Some(io::ErrorKind::InvalidData),
        };
        let mut ahead = ReadAhead::new(Box::new(inner)).unwrap();
        let mut got = Vec::new();
        let err = ahead.read_to_end(&mut got).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(got == want);
    }

    #[test]
    fn dropping_it_stops_the_thread() {
        // An endless reader: the thread must end once the reader is dropped.
        struct Endless(std::sync::Arc<std::sync::atomic::AtomicUsize>);
        impl Read for Endless {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                out.fill(b'x');
                Ok(out.len())
            }
        }
        let reads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut ahead = ReadAhead::new(Box::new(Endless(reads.clone()))).unwrap();
        assert_eq!(ahead.fill_buf().unwrap().len(), CHUNK);
        drop(ahead);
        // The thread ends within a chunk or two of the drop; then the count stays put.
        let settled = || {
            let before = reads.load(std::sync::atomic::Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(200));
            before == reads.load(std::sync::atomic::Ordering::SeqCst)
        };
        assert!(
            (0..50).any(|_| settled()),
            "the reading thread kept reading"
        );
    }
}
