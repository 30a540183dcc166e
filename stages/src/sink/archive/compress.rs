//! Gzip off the sink's task: an open object's envelope lines are gathered into chunks, and each
//! chunk is compressed on the blocking pool while the sink goes on routing records. The chunks
//! of one object are compressed in order, into one gzip member (every reader of the archive
//! reads it as before); the objects of different shards are compressed in parallel, so the sink
//! uses every core when several shards are open.
//!
//! Memory is bounded per sink ([`CompressBudget`]): a chunk waits for room before it is handed
//! over, which slows the sink (and so the sources) instead of growing.

use std::io::Write;
use std::sync::Arc;

use flate2::Compression;
use flate2::write::GzEncoder;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

/// Bytes gathered before a chunk is handed to the compressor.
const CHUNK_BYTES: usize = 256 * 1024;

/// Uncompressed bytes in flight to the compressors of one sink at most (rounded to KiB).
const IN_FLIGHT_BYTES: usize = 32 * 1024 * 1024;

/// The room for chunks in flight, shared by the compressors of one sink.
#[derive(Clone)]
pub(super) struct CompressBudget(Arc<Semaphore>);

impl Default for CompressBudget {
    fn default() -> Self {
        CompressBudget(Arc::new(Semaphore::new(IN_FLIGHT_BYTES / 1024)))
    }
}

impl CompressBudget {
    /// Waits for room for `bytes` (a chunk larger than the whole budget takes all of it).
    async fn reserve(&self, bytes: usize) -> anyhow::Result<OwnedSemaphorePermit> {
        let permits = bytes.div_ceil(1024).clamp(1, IN_FLIGHT_BYTES / 1024) as u32;
        Ok(self.0.clone().acquire_many_owned(permits).await?)
    }
}

/// One object's gzip stream, compressed chunk by chunk on the blocking pool.
pub(super) struct Compressor {
    pending: Vec<u8>,
    chunks: Option<mpsc::Sender<(Vec<u8>, OwnedSemaphorePermit)>>,
    /// The compressing task; taken when awaited (a handle is awaited once).
    done: Option<JoinHandle<anyhow::Result<Vec<u8>>>>,
    budget: CompressBudget,
}

impl Compressor {
    /// A compressor at gzip `level` (0–9), drawing on `budget`.
    pub(super) fn new(level: u32, budget: CompressBudget) -> Compressor {
        let (tx, mut rx) = mpsc::channel::<(Vec<u8>, OwnedSemaphorePermit)>(1);
        let done = tokio::spawn(async move {
            let mut gz = GzEncoder::new(Vec::new(), Compression::new(level));
            while let Some((chunk, permit)) = rx.recv().await {
                gz = tokio::task::spawn_blocking(move || gz.write_all(&chunk).map(|()| gz))
                    .await?
                    .map_err(|e| anyhow::anyhow!("gzip: {e}"))?;
                drop(permit);
            }
            tokio::task::spawn_blocking(move || gz.finish())
                .await?
                .map_err(|e| anyhow::anyhow!("gzip: {e}"))
        });
        Compressor {
            pending: Vec::with_capacity(CHUNK_BYTES),
            chunks: Some(tx),
            done: Some(done),
            budget,
        }
    }

    /// Adds bytes to the object.
    #[cfg(test)]
    async fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.write_with(|buf| buf.extend_from_slice(bytes))
            .await
            .map(drop)
    }

    /// Adds what `fill` appends to the object's buffer (written in place: no copy of its own),
    /// and gives how many bytes that was.
    pub(super) async fn write_with(
        &mut self,
        fill: impl FnOnce(&mut Vec<u8>),
    ) -> anyhow::Result<usize> {
        let before = self.pending.len();
        fill(&mut self.pending);
        let written = self.pending.len() - before;
        if self.pending.len() >= CHUNK_BYTES {
            self.hand_over().await?;
        }
        Ok(written)
    }

    async fn hand_over(&mut self) -> anyhow::Result<()> {
        let chunk = std::mem::replace(&mut self.pending, Vec::with_capacity(CHUNK_BYTES));
        let permit = self.budget.reserve(chunk.len()).await?;
        let sender = self.chunks.as_ref().expect("open until finished");
        if sender.send((chunk, permit)).await.is_err() {
            // The compressor stopped on an error: say which.
            return Err(match self.done.take() {
                Some(done) => match done.await {
                    Ok(Err(e)) => e,
                    Ok(Ok(_)) => anyhow::anyhow!("gzip: the compressor stopped"),
                    Err(e) => e.into(),
                },
                None => anyhow::anyhow!("gzip: the compressor stopped"),
            });
        }
        Ok(())
    }

    /// Compresses what is left and gives the whole gzip stream.
    pub(super) async fn finish(mut self) -> anyhow::Result<Vec<u8>> {
        if !self.pending.is_empty() {
            self.hand_over().await?;
        }
        drop(self.chunks.take());
        match self.done.take() {
            Some(done) => done.await?,
            None => anyhow::bail!("gzip: the compressor stopped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// Whatever the chunking, the object is one gzip member holding every byte in order; a
    /// budget smaller than one chunk still lets it through.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn objects_compressed_in_parallel_hold_every_byte_in_order() {
        let budget = CompressBudget::default();
        let lines: Vec<Vec<u8>> = (0..40_000)
            .map(|i| format!("{{\"n\":{i},\"pad\":\"{}\"}}\n", "x".repeat(i % 97)).into_bytes())
            .collect();
        let mut objects: Vec<Compressor> =
            (0..3).map(|_| Compressor::new(6, budget.clone())).collect();
        let mut expected = vec![Vec::new(); 3];
        for (i, line) in lines.iter().enumerate() {
            objects[i % 3].write(line).await.unwrap();
            expected[i % 3].extend_from_slice(line);
        }
        for (object, expected) in objects.into_iter().zip(expected) {
            let body = object.finish().await.unwrap();
            let mut single = flate2::read::GzDecoder::new(&body[..]);
            let mut out = Vec::new();
            single.read_to_end(&mut out).unwrap();
            assert_eq!(out.len(), expected.len());
            assert!(out == expected);
        }
        let empty = Compressor::new(6, budget).finish().await.unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&empty[..])
            .read_to_end(&mut out)
            .unwrap();
        assert!(out.is_empty());
    }
}
