//! Decompressing on a thread of its own, ahead of the thread that parses.
//!
//! A reader's two jobs, inflating gzip and parsing lines, then run on two threads, so that one
//! shard left to read at the end of a run (or one file) uses two cores instead of one; with
//! many shards in flight it changes little, as the cores are busy either way.

use std::io::{self, BufRead, Read};
use std::sync::{Arc, Mutex, mpsc};

/// Decompressed bytes handed over at a time.
const CHUNK: usize = 256 * 1024;

/// Chunks decompressed ahead of the parser (besides the one it reads and the one being filled).
const AHEAD: usize = 2;

/// Chunk buffers a reader keeps for its next object (each read holds at most this many).
const POOLED: usize = AHEAD + 2;

/// The chunk buffers of one reader, reused from object to object: allocated once, and never
/// freed by one thread into another's heap (the allocator kept such memory long enough to add
/// 11 MB to a 35 MB filter run).
#[derive(Clone, Default)]
pub struct ChunkPool(Arc<Mutex<Vec<Vec<u8>>>>);

impl ChunkPool {
    fn take(&self) -> Chunk {
        let pooled = self.0.lock().ok().and_then(|mut p| p.pop());
        Chunk {
            buf: pooled.unwrap_or_else(|| vec![0u8; CHUNK]),
            pool: self.clone(),
        }
    }
}

/// A chunk buffer that goes back to its pool when dropped, wherever that happens.
struct Chunk {
    buf: Vec<u8>,
    pool: ChunkPool,
}

impl Drop for Chunk {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if let Ok(mut pool) = self.pool.0.lock()
            && pool.len() < POOLED
        {
            pool.push(buf);
        }
    }
}

/// A [`BufRead`] over what a thread of its own reads from another reader (a gzip decoder),
/// [`CHUNK`] bytes at a time, up to [`AHEAD`] chunks ahead. Errors come in order, after the
/// bytes read before them. Dropping it stops the thread at its next chunk.
pub struct ReadAhead {
    /// `None` once dropping.
    chunks: Option<mpsc::Receiver<io::Result<(Chunk, usize)>>>,
    /// Disconnects when the thread has ended.
    finished: mpsc::Receiver<()>,
    current: Option<Chunk>,
    len: usize,
    pos: usize,
}

impl ReadAhead {
    /// Starts reading `inner` on the tokio blocking pool when there is a runtime, on a new
    /// thread otherwise, into buffers of `pool`.
    pub fn new(inner: Box<dyn Read + Send>, pool: &ChunkPool) -> io::Result<ReadAhead> {
        let (tx, chunks) = mpsc::sync_channel(AHEAD);
        let (done, finished) = mpsc::sync_channel::<()>(0);
        let pool = pool.clone();
        let job = move || {
            fill(inner, &tx, &pool);
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
            current: None,
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
    tx: &mpsc::SyncSender<io::Result<(Chunk, usize)>>,
    pool: &ChunkPool,
) {
    loop {
        let mut chunk = pool.take();
        let mut len = 0;
        let mut failed = None;
        while len < CHUNK {
            match inner.read(&mut chunk.buf[len..]) {
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
            // The spent chunk goes back to the pool before the next is awaited.
            self.current = None;
            self.len = 0;
            self.pos = 0;
            match chunks.recv() {
                Ok(Ok((chunk, len))) => {
                    self.current = Some(chunk);
                    self.len = len;
                }
                Ok(Err(e)) => return Err(e),
                // The thread is done: the end.
                Err(_) => {}
            }
        }
        Ok(self
            .current
            .as_ref()
            .map_or(&[][..], |c| &c.buf[self.pos..self.len]))
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
            ReadAhead::new(Box::new(inner), &ChunkPool::default())
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
        let mut ahead = ReadAhead::new(Box::new(inner), &ChunkPool::default()).unwrap();
        let mut got = Vec::new();
        let err = ahead.read_to_end(&mut got).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(got == want);
    }

    #[test]
    fn a_pool_keeps_its_chunks_for_the_next_read() {
        let pool = ChunkPool::default();
        for _ in 0..3 {
            let inner = Pieces {
                data: data(5 * CHUNK),
                at: 0,
                step: CHUNK,
                error: None,
            };
            let mut got = Vec::new();
            ReadAhead::new(Box::new(inner), &pool)
                .unwrap()
                .read_to_end(&mut got)
                .unwrap();
            assert_eq!(got.len(), 5 * CHUNK);
            let kept = pool.0.lock().unwrap().len();
            assert!((1..=POOLED).contains(&kept), "{kept} chunks pooled");
        }
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
        let mut ahead =
            ReadAhead::new(Box::new(Endless(reads.clone())), &ChunkPool::default()).unwrap();
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
