//! Fan-in: reading all inputs of a stage fairly, propagating the end of input, and aligning
//! checkpoint barriers (a barrier is forwarded once every live input has delivered it; an input
//! that delivered it is not read again until then, as in Chandy–Lamport / Arroyo).

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use flux_stages::channel::{Message, Receiver};
use flux_stages::record::Batch;

/// What the stage should handle next.
#[derive(Debug)]
pub enum Event {
    /// Records.
    Batch(Arc<Batch>),
    /// A barrier every live input has delivered.
    Barrier(u64),
    /// Every input has ended.
    End,
}

/// An upstream stage stopped without ending its output (it failed).
#[derive(Debug, thiserror::Error)]
#[error("input `{0}` stopped before its end (its stage failed)")]
pub struct UpstreamFailed(pub String);

struct Input {
    label: String,
    rx: Receiver,
    ended: bool,
    at_barrier: Option<u64>,
}

/// All inputs of one stage.
pub struct Inputs {
    inputs: Vec<Input>,
    next_start: usize,
}

impl Inputs {
    /// Wraps the receivers of a stage's incoming edges, each with its label (`id` or
    /// `id.dead_letter`).
    pub fn new(receivers: Vec<(String, Receiver)>) -> Self {
        Inputs {
            inputs: receivers
                .into_iter()
                .map(|(label, rx)| Input {
                    label,
                    rx,
                    ended: false,
                    at_barrier: None,
                })
                .collect(),
            next_start: 0,
        }
    }

    /// Waits for the next event.
    pub async fn next(&mut self) -> Result<Event, UpstreamFailed> {
        loop {
            if self.inputs.iter().all(|i| i.ended) {
                return Ok(Event::End);
            }
            // A barrier is complete when every live input stands at it.
            let live: Vec<&Input> = self.inputs.iter().filter(|i| !i.ended).collect();
            if let Some(id) = live[0].at_barrier
                && live.iter().all(|i| i.at_barrier == Some(id))
            {
                for i in &mut self.inputs {
                    i.at_barrier = None;
                }
                return Ok(Event::Barrier(id));
            }
            let (idx, msg) = self.poll_any().await;
            let input = &mut self.inputs[idx];
            match msg {
                Some(Message::Batch(b)) => return Ok(Event::Batch(b)),
                Some(Message::Barrier(id)) => input.at_barrier = Some(id),
                Some(Message::End) => {
                    input.ended = true;
                    input.at_barrier = None;
                }
                None => return Err(UpstreamFailed(input.label.clone())),
            }
        }
    }

    /// Polls the readable inputs (live, not waiting at a barrier), starting after the last one
    /// served so that no input starves.
    async fn poll_any(&mut self) -> (usize, Option<Message>) {
        let n = self.inputs.len();
        let start = self.next_start;
        let (idx, msg) = poll_fn(|cx| {
            for k in 0..n {
                let i = (start + k) % n;
                let input = &mut self.inputs[i];
                if input.ended || input.at_barrier.is_some() {
                    continue;
                }
                if let Poll::Ready(msg) = input.rx.poll_recv(cx) {
                    return Poll::Ready((i, msg));
                }
            }
            Poll::Pending
        })
        .await;
        self.next_start = (idx + 1) % n;
        (idx, msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flux_stages::channel::{Capacity, channel};

    #[tokio::test]
    async fn barriers_align_across_inputs_and_end_propagates() {
        let (a_tx, a_rx) = channel(Capacity::default());
        let (b_tx, b_rx) = channel(Capacity::default());
        let mut inputs = Inputs::new(vec![("a".into(), a_rx), ("b".into(), b_rx)]);
        a_tx.send(Message::Barrier(1)).await.unwrap();
        a_tx.send(Message::Batch(Arc::new(Vec::new())))
            .await
            .unwrap();
        b_tx.send(Message::Batch(Arc::new(Vec::new())))
            .await
            .unwrap();
        // `a` is held at its barrier; the batch from `b` comes first.
        assert!(matches!(inputs.next().await.unwrap(), Event::Batch(_)));
        b_tx.send(Message::Barrier(1)).await.unwrap();
        assert!(matches!(inputs.next().await.unwrap(), Event::Barrier(1)));
        assert!(matches!(inputs.next().await.unwrap(), Event::Batch(_)));
        a_tx.send(Message::End).await.unwrap();
        b_tx.send(Message::End).await.unwrap();
        assert!(matches!(inputs.next().await.unwrap(), Event::End));
    }

    #[tokio::test]
    async fn a_vanished_input_is_an_error() {
        let (a_tx, a_rx) = channel(Capacity::default());
        let mut inputs = Inputs::new(vec![("up".into(), a_rx)]);
        drop(a_tx);
        let err = inputs.next().await.unwrap_err();
        assert_eq!(err.0, "up");
    }
}
