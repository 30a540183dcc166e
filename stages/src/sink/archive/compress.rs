//! Gzip off the sink's task: an open object's envelope lines are gathered into chunks of whole
//! lines, and each chunk is compressed on the blocking pool, by libdeflate, into a gzip member
//! of its own while the sink goes on routing records. An object is the members of its chunks
//! in order: a gzip file of several members, which every gzip reader reads as the one stream
//! (RFC 1952 §2.2; zlib's `gunzip`, Hadoop's codec for Hive, Drill and Spark, DuckDB, Athena,
//! Python, and the archive source). Chunks are independent, so the chunks of one object are
//! compressed in parallel as well as the objects of different shards: the sink uses every core
//! even with one shard open.
//!
//! Memory is bounded per sink ([`CompressBudget`]): a chunk waits for room before it is handed
//! over, which slows the sink (and so the sources) instead of growing; no more chunks are
//! compressed at once than the machine has cores.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// Bytes gathered before a chunk is handed to the compressor.
const CHUNK_BYTES: usize = crate::gzip::MEMBER_BYTES;

/// Uncompressed bytes in flight to the compressors of one sink at most (rounded to KiB).
const IN_FLIGHT_BYTES: usize = 32 * 1024 * 1024;

/// The room for chunks in flight, and the compressions running at once, shared by the
/// compressors of one sink.
#[derive(Clone)]
pub(super) struct CompressBudget {
    bytes: Arc<Semaphore>,
    running: Arc<Semaphore>,
    /// The budget's KiB.
    room: usize,
}

impl Default for CompressBudget {
    fn default() -> Self {
        CompressBudget::with_room(IN_FLIGHT_BYTES)
    }
}

impl CompressBudget {
    /// Room for `bytes` (rounded to KiB) in flight.
    fn with_room(bytes: usize) -> CompressBudget {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        CompressBudget {
            bytes: Arc::new(Semaphore::new((bytes / 1024).max(1))),
            running: Arc::new(Semaphore::new(cores)),
            room: (bytes / 1024).max(1),
        }
    }

    /// Waits for room for `bytes` (a chunk larger than the whole budget takes all of it).
    async fn reserve(&self, bytes: usize) -> anyhow::Result<OwnedSemaphorePermit> {
        let permits = bytes.div_ceil(1024).clamp(1, self.room) as u32;
        Ok(self.bytes.clone().acquire_many_owned(permits).await?)
    }
}

/// One object's gzip members, compressed chunk by chunk on the blocking pool.
pub(super) struct Compressor {
    level: u32,
    pending: Vec<u8>,
    /// Members being compressed, in the object's order.
    members: VecDeque<JoinHandle<anyhow::Result<Vec<u8>>>>,
    /// The members done so far, in order.
    body: Vec<u8>,
    budget: CompressBudget,
}

impl Compressor {
    /// A compressor at gzip `level` (0–9), drawing on `budget`.
    pub(super) fn new(level: u32, budget: CompressBudget) -> Compressor {
        Compressor {
            level,
            // Grown as lines come: an object that stays small (a quiet shard, many shards on
            // one worker) does not hold a whole chunk's memory.
            pending: Vec::new(),
            members: VecDeque::new(),
            body: Vec::new(),
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
    /// and gives how many bytes that was. Chunks are cut between calls, so a member ends where
    /// a `fill` ended (at the end of an envelope line).
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
        // An object that filled a chunk is likely to fill the next one.
        let chunk = std::mem::replace(&mut self.pending, Vec::with_capacity(CHUNK_BYTES));
        let permit = self.budget.reserve(chunk.len()).await?;
        let running = self.budget.running.clone();
        let level = self.level;
        self.members.push_back(tokio::spawn(async move {
            let _running = running.acquire_owned().await?;
            let member =
                tokio::task::spawn_blocking(move || crate::gzip::member(level, &chunk)).await?;
            // The room is for chunks waiting or being compressed. It is given back here, not
            // when the member joins its object: an object that receives no records for a while
            // would otherwise keep room that the objects being written wait for, for ever.
            drop(permit);
            Ok(member?)
        }));
        // Keep what is done: the queue stays short, and an error shows early.
        while self.members.front().is_some_and(JoinHandle::is_finished) {
            self.take_front().await?;
        }
        Ok(())
    }

    async fn take_front(&mut self) -> anyhow::Result<()> {
        if let Some(member) = self.members.pop_front() {
            let member = member.await??;
            self.body.extend_from_slice(&member);
        }
        Ok(())
    }

    /// Compresses what is left and gives the whole object: its members in order (one empty
    /// member for an empty object).
    pub(super) async fn finish(mut self) -> anyhow::Result<Vec<u8>> {
        if !self.pending.is_empty() || (self.members.is_empty() && self.body.is_empty()) {
            self.hand_over().await?;
        }
        while !self.members.is_empty() {
            self.take_front().await?;
        }
        Ok(self.body)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// Whatever the chunking, the object's members hold every byte in order, each ending at
    /// the end of a write; a budget smaller than one chunk still lets it through.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn objects_compressed_in_parallel_hold_every_byte_in_order() {
        let budget = CompressBudget::default();
        let lines: Vec<Vec<u8>> = (0..60_000)
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
            let members = members_of(&body);
            assert!(members.len() > 1, "{} members", members.len());
            for member in &members {
                assert!(member.ends_with(b"\n"));
            }
            let out = members.concat();
            assert_eq!(out.len(), expected.len());
            assert!(out == expected);
        }
        let empty = Compressor::new(6, budget).finish().await.unwrap();
        assert_eq!(members_of(&empty), vec![Vec::<u8>::new()]);
    }

    /// Objects that stop receiving bytes while others go on never hold the room the others
    /// wait for: eight objects written in turns, on a budget of two chunks, all finish.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn objects_left_open_do_not_starve_the_others() {
        let budget = CompressBudget::with_room(2 * CHUNK_BYTES);
        let line = vec![b'x'; 64 * 1024];
        let mut objects: Vec<Compressor> =
            (0..8).map(|_| Compressor::new(1, budget.clone())).collect();
        let written = tokio::time::timeout(std::time::Duration::from_secs(120), async {
            for object in objects.iter_mut() {
                for _ in 0..40 {
                    object.write(&line).await.unwrap();
                }
            }
        })
        .await;
        assert!(
            written.is_ok(),
            "the writes waited for room that never came"
        );
        for object in objects {
            let members = members_of(&object.finish().await.unwrap());
            assert_eq!(members.concat().len(), 40 * line.len());
        }
    }

    /// The decompressed members of a gzip file, one by one.
    fn members_of(mut body: &[u8]) -> Vec<Vec<u8>> {
        let mut members = Vec::new();
        while !body.is_empty() {
            let mut one = flate2::bufread::GzDecoder::new(body);
            let mut out = Vec::new();
            one.read_to_end(&mut out).unwrap();
            body = one.into_inner();
            members.push(out);
        }
        members
    }
}
