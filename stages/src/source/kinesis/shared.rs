//! `workers = "shared"`: this process is one of several reading the stream. Every third of
//! `lease_ttl` it rewrites its heartbeat (which keeps its shard leases alive), looks at the
//! stream (its shards, the finished ones, the leases, the live workers), stops reading shards
//! whose lease another worker took, and follows the plan
//! ([`crate::archive::workers::plan`]): it takes free shards up to its fair share, and gives up
//! shards above it. A shard is given up only once what this worker read of it is archived (its
//! checkpoint reached the last record sent on), so the next holder resumes exactly there; a
//! closed shard read to its end is recorded as ended, and once archived, its children can be
//! taken by any worker (parents before children, as in the single-worker mode).

use std::collections::{BTreeSet, HashMap};

use tokio_util::sync::CancellationToken;

use super::*;
use crate::archive::state::read_checkpoint;
use crate::archive::workers::{ShardView, Workers, plan};
use crate::names::{ShardId, StreamName};

/// What this worker is doing with a shard it holds.
enum Held {
    /// A reader reads it; the token stops the reader.
    Reading(CancellationToken),
    /// Read to the tip of an open shard (`stop = "caught_up"`): kept until the run ends.
    CaughtUp,
    /// Its reader was asked to stop (the shard is given up): waiting for [`Event::Stopped`].
    Stopping,
    /// Nothing more is read of it; its lease goes back once its checkpoint reaches `last`.
    /// `ended`: it is a closed shard read to its end (then finished), else given up.
    Settling {
        last: Option<SequenceNumber>,
        ended: bool,
    },
}

/// The worker's state between events.
struct Worker {
    workers: Workers,
    stream: StreamName,
    held: BTreeMap<String, Held>,
    /// The last record sent on per shard, since this worker last took it.
    last_sent: HashMap<String, SequenceNumber>,
    /// The checkpoint each shard started after when this worker last took it.
    started_after: HashMap<String, Option<SequenceNumber>>,
    /// Each shard's last `MillisBehindLatest`.
    behind: HashMap<String, u64>,
    config: Arc<KinesisSourceConfig>,
    timing: Arc<Timing>,
    tx: mpsc::Sender<Event>,
}

impl KinesisSource {
    /// Runs this source as one of the workers sharing the stream.
    pub(super) async fn run_shared(
        &self,
        ctx: &mut SourceContext,
        client: Client,
        stream: Arc<str>,
    ) -> anyhow::Result<()> {
        let url = self.config.checkpoints.as_deref().ok_or_else(|| {
            anyhow::anyhow!("workers = \"shared\" needs `checkpoints` (the archive URL)")
        })?;
        let archive = store::open_with(
            url,
            &store::StoreOptions {
                aws: self.config.aws.clone(),
                ..Default::default()
            },
        )
        .map_err(anyhow::Error::msg)?;
        let name = StreamName::parse(&stream).map_err(anyhow::Error::msg)?;
        let ttl = self.config.lease_ttl.0;
        let workers = Workers::join(
            archive.clone(),
            name.clone(),
            &self.run_id,
            &self.pipeline,
            ttl,
        )
        .await?;
        let last_run = read_checkpoints(&archive, &name)
            .await?
            .values()
            .filter_map(|s| crate::record::parse_ts(&s.checkpoint.updated_at).ok())
            .max();
        if let Some(last_run) = last_run {
            self.warn_if_retention_near(&client, &stream, last_run)
                .await;
        }
        tracing::info!(stage = ctx.output.stage(), stream = %stream, worker = %self.run_id, lease_ttl = %self.config.lease_ttl, "reading Kinesis as one of the workers sharing the stream");
        let (tx, mut rx) = mpsc::channel::<Event>(64);
        let mut w = Worker {
            workers,
            stream: name,
            held: BTreeMap::new(),
            last_sent: HashMap::new(),
            started_after: HashMap::new(),
            behind: HashMap::new(),
            config: Arc::new(self.config.clone()),
            timing: Arc::new(Timing::default()),
            tx,
        };
        let mut tick = tokio::time::interval(ttl / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut barrier = tokio::time::interval(self.config.checkpoint_interval.0);
        barrier.tick().await;
        let mut barrier_id = 0u64;
        loop {
            let event = tokio::select! {
                biased;
                _ = ctx.stop.cancelled() => break,
                _ = tick.tick() => {
                    if self.coordinate(&client, &mut w).await? {
                        break;
                    }
                    // What is settling waits for the archive to commit it: ask for that now.
                    if w.held.values().any(|h| matches!(h, Held::Settling { .. })) {
                        barrier_id += 1;
                        ctx.output.barrier(barrier_id).await?;
                    }
                    continue;
                }
                _ = barrier.tick(), if self.config.stop == StopAt::Never => {
                    barrier_id += 1;
                    ctx.output.barrier(barrier_id).await?;
                    continue;
                }
                e = rx.recv() => e,
            };
            match event {
                Some(Event::Records(records, rejected)) => {
                    if let Some(r) = records.last() {
                        w.last_sent
                            .insert(r.shard_id.to_string(), r.sequence_number.clone());
                    }
                    forward(ctx, records, rejected).await?;
                }
                Some(Event::Behind { shard, millis }) => {
                    w.behind.insert(shard, millis);
                    w.show_lag(ctx);
                }
                Some(Event::Done { shard, closed, .. }) => {
                    w.behind.remove(&shard);
                    if !w.workers.holds(&shard) {
                        continue; // lost meanwhile
                    }
                    if closed {
                        let last = w.last_read(&shard);
                        w.workers.record_end(&shard, last.as_ref()).await?;
                        tracing::info!(stream = %w.stream, shard = %shard, "read a closed shard to its end");
                        w.held.insert(shard, Held::Settling { last, ended: true });
                    } else {
                        w.held.insert(shard, Held::CaughtUp);
                    }
                    w.show_lag(ctx);
                }
                Some(Event::Stopped { shard }) => {
                    w.behind.remove(&shard);
                    if matches!(w.held.get(&shard), Some(Held::Stopping)) {
                        let last = w.last_sent.get(&shard).cloned();
                        w.held.insert(shard, Held::Settling { last, ended: false });
                    }
                    w.show_lag(ctx);
                }
                Some(Event::Failed(e)) => anyhow::bail!(e),
                None => break,
            }
        }
        for h in w.held.values() {
            if let Held::Reading(stop) = h {
                stop.cancel();
            }
        }
        // The leases and the heartbeat go back when the run ends, after the sinks committed
        // (crate::archive::lease::release_held_by).
        Ok(())
    }

    /// One round: heartbeat, renewals, settled shards given back, a look at the stream and
    /// the plan carried out. True when a `stop = "caught_up"` worker has nothing left to do.
    async fn coordinate(&self, client: &Client, w: &mut Worker) -> anyhow::Result<bool> {
        if let Err(e) = w.workers.heartbeat().await {
            tracing::warn!(stream = %w.stream, "writing this worker's heartbeat failed: {e}");
        }
        let mut listed = self.list_shards(client).await?;
        if let Some(wanted) = &self.config.shards {
            listed
                .retain(|s| wanted.contains(&s.id) || s.parents.iter().any(|p| wanted.contains(p)));
        }
        let views = listed
            .iter()
            .map(|s| ShardView {
                id: s.id.clone(),
                parents: s.parents.clone(),
            })
            .collect();
        let closed: Vec<String> = listed
            .iter()
            .filter(|s| s.closed)
            .map(|s| s.id.clone())
            .collect();
        let mut look = w.workers.look(views, &closed).await?;
        for shard in w.workers.lost(&look) {
            if let Some(Held::Reading(stop)) = w.held.remove(&shard) {
                stop.cancel();
            }
        }
        let settling: Vec<(String, Option<SequenceNumber>, bool)> = w
            .held
            .iter()
            .filter_map(|(s, h)| match h {
                Held::Settling { last, ended } => Some((s.clone(), last.clone(), *ended)),
                _ => None,
            })
            .collect();
        let mut giving_up: BTreeSet<String> = w
            .held
            .iter()
            .filter(|(_, h)| matches!(h, Held::Stopping | Held::Settling { .. }))
            .map(|(s, _)| s.clone())
            .collect();
        for (shard, last, ended) in settling {
            if w.workers.archived_to(&shard, last.as_ref()).await? {
                w.workers.release(&shard).await?;
                w.held.remove(&shard);
                tracing::info!(stream = %w.stream, shard = %shard, "gave a shard back (what this worker read of it is archived)");
                // As the next look will see it: finished, or free for the others (this worker
                // gave it up, it does not take it back now).
                if ended {
                    look.done.insert(shard.clone());
                    giving_up.remove(&shard);
                }
            }
        }
        let plan = plan::plan(w.workers.me(), &look, &giving_up);
        for shard in &plan.release {
            match w.held.get(shard) {
                Some(Held::Reading(stop)) => {
                    stop.cancel();
                    w.held.insert(shard.clone(), Held::Stopping);
                }
                Some(Held::CaughtUp) => {
                    let last = w.last_sent.get(shard).cloned();
                    w.held
                        .insert(shard.clone(), Held::Settling { last, ended: false });
                }
                _ => {}
            }
            tracing::info!(stream = %w.stream, shard = %shard, share = plan.share, "giving a shard up to another worker");
        }
        let mut took = false;
        for shard in &plan.take {
            let Some(info) = listed.iter().find(|s| &s.id == shard) else {
                continue;
            };
            if w.workers.take(shard, &look.workers).await? {
                self.start_reader(client, w, info.clone()).await?;
                took = true;
            }
        }
        if took {
            // The others learn the leases from the heartbeats: say at once what was taken.
            if let Err(e) = w.workers.heartbeat().await {
                tracing::warn!(stream = %w.stream, "writing this worker's heartbeat failed: {e}");
            }
        }
        Ok(self.config.stop == StopAt::CaughtUp
            && !took
            && plan.take.is_empty()
            && w.held.values().all(|h| matches!(h, Held::CaughtUp)))
    }

    /// Starts reading a shard just taken, after its checkpoint as it is now.
    async fn start_reader(
        &self,
        client: &Client,
        w: &mut Worker,
        shard: ShardInfo,
    ) -> anyhow::Result<()> {
        let id = ShardId::parse(&shard.id).map_err(anyhow::Error::msg)?;
        let archive = w.workers.store().clone();
        let checkpoint = read_checkpoint(&archive, &w.stream, &id)
            .await?
            .map(|s| s.checkpoint.sequence_number);
        let mut after = checkpoint.clone();
        if let Some(cp) = &checkpoint {
            let cps = BTreeMap::from([(shard.id.clone(), cp.clone())]);
            let gaps = self
                .check_gaps(
                    client,
                    &archive,
                    w.stream.as_str(),
                    std::slice::from_ref(&shard),
                    &cps,
                )
                .await?;
            if gaps.contains(&shard.id) {
                after = None; // restarts at its oldest record: its checkpoint is gone
            }
        }
        let start = match &after {
            Some(seq) => (ShardIteratorType::AfterSequenceNumber, Some(seq.clone())),
            None => (ShardIteratorType::TrimHorizon, None),
        };
        tracing::info!(stream = %w.stream, shard = %shard.id, after = ?after, "took a shard");
        w.started_after.insert(
            shard.id.clone(),
            checkpoint
                .as_deref()
                .map(SequenceNumber::parse)
                .transpose()
                .map_err(anyhow::Error::msg)?,
        );
        w.last_sent.remove(&shard.id);
        let stop = CancellationToken::new();
        w.held.insert(shard.id.clone(), Held::Reading(stop.clone()));
        let reader = Reader {
            timing: w.timing.clone(),
            client: client.clone(),
            config: w.config.clone(),
            stream: Arc::from(w.stream.as_str()),
            shard,
            start,
            tx: w.tx.clone(),
            stop,
        };
        tokio::spawn(reader.run());
        Ok(())
    }
}

impl Worker {
    /// The last record of `shard` this worker knows of: the last it sent on, or the checkpoint
    /// it started after when it read nothing new.
    fn last_read(&self, shard: &str) -> Option<SequenceNumber> {
        self.last_sent
            .get(shard)
            .cloned()
            .or_else(|| self.started_after.get(shard).cloned().flatten())
    }

    fn show_lag(&self, ctx: &SourceContext) {
        let reading = self
            .held
            .values()
            .filter(|h| matches!(h, Held::Reading(_)))
            .count();
        ctx.output
            .metrics()
            .set_behind_ms(lag_behind_tip(&self.behind, reading));
    }
}
