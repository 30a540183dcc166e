//! Channels between stages, bounded in records *and* bytes (DESIGN §3).
//!
//! A full channel blocks the sender; nothing is ever dropped. Each edge of the DAG is one channel
//! with one sender and one receiver. A batch takes as many record permits as it has records and as
//! many byte permits as it weighs (both clamped to the capacity, so one oversized batch still
//! passes alone); the permits return when the receiver takes the batch out.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::record::{Batch, batch_weight};

/// What flows on an edge: data, checkpoint barriers, and the end of the input.
#[derive(Clone, Debug)]
pub enum Message {
    /// Records, shared between all downstream stages of a fan-out.
    Batch(Arc<Batch>),
    /// A checkpoint barrier with its id; stateful stages and sinks persist their state on it.
    Barrier(u64),
    /// The upstream stage finished cleanly; nothing follows.
    End,
}

/// The capacity of one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Records in flight at most.
    pub records: usize,
    /// Bytes (record weights) in flight at most.
    pub bytes: usize,
}

/// Records in flight at most on a channel whose stage sets no `buffer_records`.
pub const DEFAULT_RECORDS: usize = 16 * 1024;
/// Bytes in flight at most on a channel whose stage sets no `buffer_bytes` (and whose kind has
/// no default of its own).
pub const DEFAULT_BYTES: usize = 16 * 1024 * 1024;

impl Default for Capacity {
    fn default() -> Self {
        Capacity {
            records: DEFAULT_RECORDS,
            bytes: DEFAULT_BYTES,
        }
    }
}

struct Permits {
    _records: Option<OwnedSemaphorePermit>,
    _bytes: Option<OwnedSemaphorePermit>,
}

struct Limits {
    records: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    capacity: Capacity,
}

/// The sending half: [`Sender::send`] waits while the channel is full.
pub struct Sender {
    tx: mpsc::UnboundedSender<(Message, Permits)>,
    limits: Arc<Limits>,
}

/// The receiving half. Dropping it closes the channel and wakes a blocked sender with an error.
pub struct Receiver {
    rx: mpsc::UnboundedReceiver<(Message, Permits)>,
    limits: Arc<Limits>,
}

/// The receiver went away (its stage failed or the run is stopping).
#[derive(Debug, thiserror::Error)]
#[error("the downstream stage is gone")]
pub struct Closed;

/// Creates a channel with the given capacity (each limit at least 1).
pub fn channel(capacity: Capacity) -> (Sender, Receiver) {
    let capacity = Capacity {
        records: capacity.records.clamp(1, Semaphore::MAX_PERMITS),
        bytes: capacity.bytes.clamp(1, u32::MAX as usize),
    };
    let limits = Arc::new(Limits {
        records: Arc::new(Semaphore::new(capacity.records)),
        bytes: Arc::new(Semaphore::new(capacity.bytes)),
        capacity,
    });
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Sender {
            tx,
            limits: limits.clone(),
        },
        Receiver { rx, limits },
    )
}

fn clamp_u32(n: usize, max: usize) -> u32 {
    n.min(max).min(u32::MAX as usize) as u32
}

impl Sender {
    /// Sends a message, waiting while the channel is full.
    pub async fn send(&self, msg: Message) -> Result<(), Closed> {
        let permits = match &msg {
            Message::Batch(batch) => {
                let records = clamp_u32(batch.len(), self.limits.capacity.records);
                let bytes = clamp_u32(batch_weight(batch), self.limits.capacity.bytes);
                let r = acquire(&self.limits.records, records).await?;
                let b = acquire(&self.limits.bytes, bytes).await?;
                Permits {
                    _records: r,
                    _bytes: b,
                }
            }
            _ => Permits {
                _records: None,
                _bytes: None,
            },
        };
        self.tx.send((msg, permits)).map_err(|_| Closed)
    }

    /// The capacity this channel was created with.
    pub fn capacity(&self) -> Capacity {
        self.limits.capacity
    }
}

async fn acquire(sem: &Arc<Semaphore>, n: u32) -> Result<Option<OwnedSemaphorePermit>, Closed> {
    if n == 0 {
        return Ok(None);
    }
    sem.clone()
        .acquire_many_owned(n)
        .await
        .map(Some)
        .map_err(|_| Closed)
}

impl Receiver {
    /// Receives the next message; `None` when the sender is gone without sending [`Message::End`]
    /// (its stage failed).
    pub async fn recv(&mut self) -> Option<Message> {
        self.rx.recv().await.map(|(msg, _permits)| msg)
    }

    /// Polls for the next message (see [`Receiver::recv`]).
    pub fn poll_recv(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Message>> {
        self.rx.poll_recv(cx).map(|m| m.map(|(msg, _permits)| msg))
    }

    /// Records currently in flight (sent, not yet received).
    pub fn queued_records(&self) -> usize {
        self.limits.capacity.records - self.limits.records.available_permits()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.limits.records.close();
        self.limits.bytes.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Record, SequenceNumber, ts_from_millis};

    fn batch(n: usize) -> Arc<Batch> {
        Arc::new(
            (0..n)
                .map(|i| Record {
                    stream: "s".into(),
                    shard_id: "shard".into(),
                    sequence_number: SequenceNumber::from_u64(i as u64),
                    sub_sequence_number: None,
                    partition_key: Default::default(),
                    arrival_ts: ts_from_millis(0),
                    data: bytes::Bytes::from_static(b"{}"),
                    annotations: None,
                    probed: None,
                })
                .collect(),
        )
    }

    #[tokio::test]
    async fn a_full_channel_blocks_until_the_receiver_takes() {
        let (tx, mut rx) = channel(Capacity {
            records: 3,
            bytes: 1 << 20,
        });
        for _ in 0..3 {
            tx.send(Message::Batch(batch(1))).await.unwrap();
        }
        let blocked = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            tx.send(Message::Batch(batch(1))),
        )
        .await;
        assert!(blocked.is_err(), "the fourth record must wait");
        assert_eq!(rx.queued_records(), 3);
        assert!(matches!(rx.recv().await, Some(Message::Batch(_))));
        tx.send(Message::Batch(batch(1))).await.unwrap();
        assert_eq!(rx.queued_records(), 3);
    }

    #[tokio::test]
    async fn byte_limit_blocks_too() {
        let one = batch_weight(&batch(1));
        let (tx, _rx) = channel(Capacity {
            records: 100,
            bytes: one * 2,
        });
        tx.send(Message::Batch(batch(2))).await.unwrap();
        let blocked = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            tx.send(Message::Batch(batch(1))),
        )
        .await;
        assert!(blocked.is_err());
    }

    #[tokio::test]
    async fn oversized_batch_passes_alone_and_dropping_the_receiver_unblocks() {
        let (tx, rx) = channel(Capacity {
            records: 2,
            bytes: 1 << 20,
        });
        tx.send(Message::Batch(batch(10))).await.unwrap();
        let pending = tokio::spawn(async move { tx.send(Message::Batch(batch(1))).await });
        drop(rx);
        assert!(pending.await.unwrap().is_err());
    }
}
