//! Property tests of the replay protocol (DESIGN §5, docs/replay-protocol.md).
//!
//! A writer plays a random script against a simulated stream: live writes of a few keys to
//! random shards, splits and merges, then one replay: opening fences shard by shard (live writes
//! and reshards in between), replayed records (some written twice, origins from earlier live
//! records, from the archive of a shard long gone, or from another stream) mixed with live writes,
//! closing fences, and more live writes. Shards created during the replay get their own opening
//! fence late, after records (as the sink writes it when it notices them), or just before their
//! closing fence. In three scripts out of ten the run fails before its closing fences and is run
//! again with the same id after more live writes: new opening fences, records sent again with the
//! failed run's origins, and new ones. A consumer then reads the shards in a random interleaving
//! (each shard in order, parents before children), with records delivered again, snapshots of its
//! state, and crashes that restore the last snapshot but rewind the shards further (at least
//! once). Once everything is read, every key must hold what the claim says:
//!
//! - a key some replayed record carries (in the replay's scope):
//!   - the newest live record that arrived after the fence in its shard (the first run's fence,
//!     its own or an ancestor's), if there is one;
//!   - else, `overwrite`: the replayed record with the newest origin;
//!   - else, `fill`: the newest of the replayed records and the live records;
//! - any other key: the newest live record, where one after the fence is newer than any before.
//!
//! "Newest" is the ground truth of the simulation: same shard by sequence number, a parent's
//! records before its children's, else arrival time, then the number of ancestor shards, then
//! stream, shard id and sequence number. The clock advances by 0 or 1 ms per write, so many
//! records share a millisecond, and shard ids and sequence number bases are random, so neither
//! follows creation order.
//!
//! The same runs with naive consumers (last delivered wins; DESIGN §5's rules read literally) must
//! find counterexamples, so the checks have teeth, and so must the claim read with the rerun's
//! fences counting. Consumers with two workers (KCL-style) settle on the claim when they share the
//! fences and compare-and-set each state write, and break it otherwise. The worked example of
//! docs/replay-protocol.md is checked record by record at the end, and a rerun by hand.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use flux_stages::record::{SequenceNumber, ts_from_millis};
use flux_stages::replay::{
    DEFAULT_KEY, Fence, FenceCounts, Observed, Reconciler, ReplayMode, ReplayTag, Replayed, Stamp,
    Version,
};
use flux_stages::transform::annotate::add_to_object;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};

const STREAM: &str = "orders";
const REPLAY_ID: &str = "INC-7";
const KEYS: u8 = 4;
const MAX_OPEN: usize = 4;
const START_MS: i64 = 1_000_000;
const CASES: u32 = 2_500;
/// Origin spans (see `Script::origin_span`).
const PAST: u16 = 40;
const ANY_TIME: u16 = 128;

// ---------------------------------------------------------------------------------------------
// The writer's script

/// Where a replayed record's origin comes from.
#[derive(Debug, Clone)]
enum OriginPick {
    /// An earlier live record of the same key (written before the replay started).
    Earlier(u8),
    /// The archive of a shard of this stream that the consumer never saw; `ms` before or after
    /// the start of the run.
    Archive(u16),
    /// Another stream's archive.
    OtherStream(u16),
    /// The origin (and payload) of an earlier replayed record of the same key: a rerun sends
    /// the failed run's records again.
    Resend(u8),
}

#[derive(Debug, Clone)]
enum Op {
    /// A live write of `key` to an open shard; `tick` advances the clock by 1 ms (else same ms).
    Live { key: u8, shard: u8, tick: bool },
    /// Splits an open shard, or merges two adjacent open shards.
    Reshard { shard: u8, merge: bool },
    /// The next fence of the current phase: opening (on the next shard not yet after one, else
    /// on a shard without its own, as the sink fences a shard created during the replay) or
    /// closing.
    Fence,
    /// A replayed record of `key` to an open shard; `twice`: the sink's retry wrote it again.
    Replay {
        key: u8,
        shard: u8,
        origin: OriginPick,
        twice: bool,
    },
}

#[derive(Debug, Clone)]
struct Script {
    mode: ReplayMode,
    /// Archived origins arrive in `START_MS - 40 + (ms % origin_span)`: with 40, all before the
    /// run; with more, some during it, even after the fence (another stream's records, clocks).
    origin_span: u16,
    initial_shards: u8,
    /// Salts for shard ids and sequence number bases, so that neither follows creation order.
    salts: Vec<u16>,
    before: Vec<Op>,
    fencing: Vec<Op>,
    replaying: Vec<Op>,
    closing: Vec<Op>,
    after: Vec<Op>,
    /// The replay run fails after `replaying` (no closing fences) and is run again with the same
    /// id: these are the writes in between and the rerun's.
    rerun: Option<Rerun>,
}

/// A failed replay run again with the same id (docs/replay.md, "If something goes wrong").
#[derive(Debug, Clone)]
struct Rerun {
    /// Live writes and reshards between the failed run and the rerun.
    between: Vec<Op>,
    /// The rerun's opening fences on every open shard, with live writes and reshards.
    fencing: Vec<Op>,
    /// The rerun's records (many sent again with the failed run's origins) and live writes.
    replaying: Vec<Op>,
}

fn live() -> impl Strategy<Value = Op> {
    (0..KEYS, any::<u8>(), any::<bool>()).prop_map(|(key, shard, tick)| Op::Live {
        key,
        shard,
        tick,
    })
}

fn reshard() -> impl Strategy<Value = Op> {
    (any::<u8>(), any::<bool>()).prop_map(|(shard, merge)| Op::Reshard { shard, merge })
}

fn replay() -> impl Strategy<Value = Op> {
    let origin = prop_oneof![
        any::<u8>().prop_map(OriginPick::Earlier),
        any::<u16>().prop_map(OriginPick::Archive),
        any::<u16>().prop_map(OriginPick::OtherStream),
        any::<u8>().prop_map(OriginPick::Resend),
    ];
    (0..KEYS, any::<u8>(), origin, prop::bool::weighted(0.2)).prop_map(
        |(key, shard, origin, twice)| Op::Replay {
            key,
            shard,
            origin,
            twice,
        },
    )
}

fn script(
    mode: impl Strategy<Value = ReplayMode>,
    origin_span: u16,
) -> impl Strategy<Value = Script> {
    (
        mode,
        1u8..=3,
        prop::collection::vec(any::<u16>(), 16),
        prop::collection::vec(prop_oneof![6 => live(), 1 => reshard()], 0..12),
        prop::collection::vec(
            prop_oneof![3 => live(), 1 => reshard(), 2 => Just(Op::Fence)],
            0..10,
        ),
        prop::collection::vec(
            prop_oneof![4 => replay(), 3 => live(), 1 => reshard(), 1 => Just(Op::Fence)],
            1..16,
        ),
        prop::collection::vec(
            prop_oneof![3 => live(), 1 => reshard(), 2 => Just(Op::Fence)],
            0..8,
        ),
        prop::collection::vec(live(), 0..8),
        prop::option::weighted(0.3, rerun()),
    )
        .prop_map(
            move |(
                mode,
                initial_shards,
                salts,
                before,
                fencing,
                replaying,
                closing,
                after,
                rerun,
            )| {
                Script {
                    mode,
                    origin_span,
                    initial_shards,
                    salts,
                    before,
                    fencing,
                    replaying,
                    closing,
                    after,
                    rerun,
                }
            },
        )
}

fn rerun() -> impl Strategy<Value = Rerun> {
    (
        prop::collection::vec(prop_oneof![4 => live(), 1 => reshard()], 0..8),
        prop::collection::vec(
            prop_oneof![3 => live(), 1 => reshard(), 2 => Just(Op::Fence)],
            0..8,
        ),
        prop::collection::vec(
            prop_oneof![4 => replay(), 3 => live(), 1 => reshard(), 1 => Just(Op::Fence)],
            1..12,
        ),
    )
        .prop_map(|(between, fencing, replaying)| Rerun {
            between,
            fencing,
            replaying,
        })
}

fn any_mode() -> impl Strategy<Value = ReplayMode> {
    prop_oneof![Just(ReplayMode::Fill), Just(ReplayMode::Overwrite)]
}

// ---------------------------------------------------------------------------------------------
// The simulated stream and the ground truth

/// A position as the ground truth knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pos {
    stream: String,
    shard: String,
    seq: u64,
    ms: i64,
}

impl Pos {
    fn version(&self) -> Version {
        Version {
            stream: self.stream.clone(),
            shard_id: self.shard.clone(),
            sequence_number: SequenceNumber::from_u64(self.seq),
            sub_sequence_number: None,
            arrival_ts: ts_from_millis(self.ms),
        }
    }
}

#[derive(Debug, Clone)]
struct Written {
    seq: u64,
    ms: i64,
    data: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Shard {
    id: String,
    parents: Vec<usize>,
    open: bool,
    /// Per run (the first, the rerun): writes to it now arrive after that run's opening fence
    /// (its own, or an ancestor's).
    fenced: [bool; 2],
    /// Per run: that run's opening fence is in this shard.
    own_fence: [bool; 2],
    closed_fence: bool,
    next_seq: u64,
    records: Vec<Written>,
}

#[derive(Debug, Clone)]
struct LiveWrite {
    key: u8,
    value: u64,
    pos: Pos,
    /// Per run: it arrived after that run's opening fence in its shard's lineage.
    after_fence: [bool; 2],
}

#[derive(Debug, Clone)]
struct ReplayedWrite {
    key: u8,
    value: u64,
    origin: Pos,
}

#[derive(Debug, Default)]
struct World {
    shards: Vec<Shard>,
    salts: Vec<u16>,
    origin_span: u16,
    ms: i64,
    next_value: u64,
    lives: Vec<LiveWrite>,
    replayed: Vec<ReplayedWrite>,
    sent: u64,
    /// Per run: when it opened (the first run's is the replay's start).
    opened_at: [i64; 2],
    /// The run writing fences and records now: 0, or 1 for a rerun.
    run: usize,
    /// 1, or 2 with a rerun.
    runs: usize,
}

impl World {
    fn new(script: &Script) -> World {
        let mut w = World {
            salts: script.salts.clone(),
            origin_span: script.origin_span,
            ms: START_MS,
            ..World::default()
        };
        for _ in 0..script.initial_shards {
            w.add_shard(Vec::new(), [false; 2]);
        }
        w
    }

    fn add_shard(&mut self, parents: Vec<usize>, fenced: [bool; 2]) {
        let n = self.shards.len();
        let salt = self.salts[n % self.salts.len()];
        self.shards.push(Shard {
            id: format!("shardId-{salt:05}-{n:02}"),
            parents,
            open: true,
            fenced,
            own_fence: [false; 2],
            closed_fence: false,
            next_seq: u64::from(salt) * 100,
            records: Vec::new(),
        });
    }

    fn open(&self) -> Vec<usize> {
        (0..self.shards.len())
            .filter(|&i| self.shards[i].open)
            .collect()
    }

    fn is_ancestor(&self, ancestor: &str, shard: &str) -> bool {
        let Some(i) = self.shards.iter().position(|s| s.id == shard) else {
            return false;
        };
        let mut todo = self.shards[i].parents.clone();
        while let Some(p) = todo.pop() {
            if self.shards[p].id == ancestor {
                return true;
            }
            todo.extend(self.shards[p].parents.iter().copied());
        }
        false
    }

    /// The ground truth's "newer".
    fn newer(&self, a: &Pos, b: &Pos) -> Ordering {
        if a.stream == b.stream && a.shard == b.shard {
            return a.seq.cmp(&b.seq);
        }
        if a.stream == STREAM && b.stream == STREAM {
            if self.is_ancestor(&a.shard, &b.shard) {
                return Ordering::Less;
            }
            if self.is_ancestor(&b.shard, &a.shard) {
                return Ordering::Greater;
            }
        }
        let depth = |p: &Pos| {
            if p.stream == STREAM {
                self.ancestor_count(&p.shard)
            } else {
                0
            }
        };
        (a.ms, depth(a), &a.stream, &a.shard, a.seq).cmp(&(
            b.ms,
            depth(b),
            &b.stream,
            &b.shard,
            b.seq,
        ))
    }

    fn ancestor_count(&self, shard: &str) -> usize {
        let Some(i) = self.shards.iter().position(|s| s.id == shard) else {
            return 0;
        };
        let mut seen = std::collections::BTreeSet::new();
        let mut todo = self.shards[i].parents.clone();
        while let Some(p) = todo.pop() {
            if seen.insert(p) {
                todo.extend(self.shards[p].parents.iter().copied());
            }
        }
        seen.len()
    }

    fn write(&mut self, shard: usize, data: Vec<u8>) -> Pos {
        let s = &mut self.shards[shard];
        s.next_seq += 1;
        s.records.push(Written {
            seq: s.next_seq,
            ms: self.ms,
            data,
        });
        Pos {
            stream: STREAM.into(),
            shard: s.id.clone(),
            seq: s.next_seq,
            ms: self.ms,
        }
    }

    fn pick_open(&self, pick: u8) -> usize {
        let open = self.open();
        open[usize::from(pick) % open.len()]
    }

    fn run(&mut self, op: &Op, mode: ReplayMode, phase: Phase) {
        match op {
            Op::Live { key, shard, tick } => {
                self.ms += i64::from(*tick);
                let shard = self.pick_open(*shard);
                let value = self.fresh_value();
                let data = format!(r#"{{"k":"k{key}","v":{value}}}"#).into_bytes();
                let after_fence = self.shards[shard].fenced;
                let pos = self.write(shard, data);
                self.lives.push(LiveWrite {
                    key: *key,
                    value,
                    pos,
                    after_fence,
                });
            }
            Op::Reshard { shard, merge } => {
                let open = self.open();
                if self.shards.len() >= self.salts.len() {
                    return;
                }
                if *merge && open.len() >= 2 {
                    let i = usize::from(*shard) % (open.len() - 1);
                    let (a, b) = (open[i], open[i + 1]);
                    self.shards[a].open = false;
                    self.shards[b].open = false;
                    let (fa, fb) = (self.shards[a].fenced, self.shards[b].fenced);
                    self.add_shard(vec![a, b], [fa[0] || fb[0], fa[1] || fb[1]]);
                } else if !*merge && open.len() < MAX_OPEN {
                    let a = open[usize::from(*shard) % open.len()];
                    self.shards[a].open = false;
                    let fenced = self.shards[a].fenced;
                    self.add_shard(vec![a], fenced);
                    self.add_shard(vec![a], fenced);
                }
            }
            Op::Fence => match phase {
                Phase::Fencing => self.fence_next(mode),
                Phase::Replaying => self.fence_new_shard(mode),
                Phase::Closing => self.close_next(mode),
                _ => {}
            },
            Op::Replay {
                key,
                shard,
                origin,
                twice,
            } => {
                self.ms += 1;
                let (origin, value) = self.origin(*key, origin);
                let resent = self
                    .replayed
                    .iter()
                    .any(|r| r.key == *key && r.origin == origin);
                let shard = self.pick_open(*shard);
                let replayed = Replayed {
                    replay: ReplayTag {
                        id: REPLAY_ID.into(),
                        mode,
                    },
                    origin: origin.version(),
                };
                let data = add_to_object(
                    format!(r#"{{"k":"k{key}","v":{value}}}"#).as_bytes(),
                    DEFAULT_KEY,
                    replayed.members(),
                )
                .expect("a JSON object");
                self.write(shard, data.clone());
                if *twice {
                    self.write(shard, data);
                }
                self.sent += 1;
                if !resent {
                    self.replayed.push(ReplayedWrite {
                        key: *key,
                        value,
                        origin,
                    });
                }
            }
        }
    }

    fn fresh_value(&mut self) -> u64 {
        self.next_value += 1;
        self.next_value
    }

    fn origin(&mut self, key: u8, pick: &OriginPick) -> (Pos, u64) {
        let earlier: Vec<(Pos, u64)> = self
            .lives
            .iter()
            .filter(|l| l.key == key && l.pos.ms < self.opened_at[0])
            .map(|l| (l.pos.clone(), l.value))
            .collect();
        let span = self.origin_span;
        let around = |ms: u16| START_MS - 40 + i64::from(ms % span);
        let (stream, ms) = match pick {
            OriginPick::Earlier(i) if !earlier.is_empty() => {
                return earlier[usize::from(*i) % earlier.len()].clone();
            }
            OriginPick::Resend(i) => {
                let sent: Vec<(Pos, u64)> = self
                    .replayed
                    .iter()
                    .filter(|r| r.key == key)
                    .map(|r| (r.origin.clone(), r.value))
                    .collect();
                if let Some(again) = sent.get(usize::from(*i) % sent.len().max(1)) {
                    return again.clone();
                }
                (STREAM, START_MS - 100)
            }
            OriginPick::Earlier(_) => (STREAM, START_MS - 100),
            OriginPick::Archive(ms) => (STREAM, around(*ms)),
            OriginPick::OtherStream(ms) => ("orders-eu", around(*ms)),
        };
        // Each archived origin on a shard of its own, so that sequence numbers and times of
        // one shard never disagree.
        let value = self.fresh_value();
        let pos = Pos {
            stream: stream.into(),
            shard: format!("shardId-archived-{value:03}"),
            seq: 7,
            ms,
        };
        (pos, value)
    }

    /// The current run's opening fence on the next open shard that is not after one (neither its
    /// own nor an ancestor's); once all are, on a shard without its own (the sink fences every
    /// shard it lists, children of fenced shards too).
    fn fence_next(&mut self, mode: ReplayMode) {
        let run = self.run;
        let open = self.open();
        let next = open
            .iter()
            .find(|&&i| !self.shards[i].fenced[run])
            .or_else(|| open.iter().find(|&&i| !self.shards[i].own_fence[run]));
        if let Some(&i) = next {
            self.write_fence(i, mode);
        }
    }

    /// The current run's opening fence on a shard created during the replay, which has only its
    /// ancestors' (the sink writes it when it notices the shard, possibly after records).
    fn fence_new_shard(&mut self, mode: ReplayMode) {
        let run = self.run;
        if let Some(i) = self
            .open()
            .into_iter()
            .find(|&i| !self.shards[i].own_fence[run])
        {
            self.write_fence(i, mode);
        }
    }

    fn write_fence(&mut self, shard: usize, mode: ReplayMode) {
        let run = self.run;
        self.ms += 1;
        let fence = Fence::open(REPLAY_ID, mode, ts_from_millis(self.opened_at[run]));
        self.write(shard, fence.payload(DEFAULT_KEY));
        self.shards[shard].fenced[run] = true;
        self.shards[shard].own_fence[run] = true;
    }

    /// The closing fence on the next open shard without one; a shard without the current run's
    /// opening fence gets that first, as the sink writes it.
    fn close_next(&mut self, mode: ReplayMode) {
        if let Some(i) = self
            .open()
            .into_iter()
            .find(|&i| !self.shards[i].closed_fence)
        {
            if !self.shards[i].own_fence[self.run] {
                self.write_fence(i, mode);
            }
            self.ms += 1;
            let shard_records = 0; // not checked here
            let fence = Fence::open(REPLAY_ID, mode, ts_from_millis(self.opened_at[self.run]))
                .close(FenceCounts {
                    records: self.sent,
                    shard_records,
                });
            self.write(i, fence.payload(DEFAULT_KEY));
            self.shards[i].closed_fence = true;
        }
    }

    /// Fences every open shard that is not after the current run's fence.
    fn fence_all(&mut self, mode: ReplayMode) {
        while self
            .open()
            .iter()
            .any(|&i| !self.shards[i].fenced[self.run])
        {
            self.fence_next(mode);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Before,
    Fencing,
    Replaying,
    Closing,
    After,
}

fn play(script: &Script) -> World {
    let mut w = World::new(script);
    for op in &script.before {
        w.run(op, script.mode, Phase::Before);
    }
    w.ms += 1;
    w.opened_at[0] = w.ms;
    w.runs = 1;
    for op in &script.fencing {
        w.run(op, script.mode, Phase::Fencing);
    }
    w.fence_all(script.mode);
    for op in &script.replaying {
        w.run(op, script.mode, Phase::Replaying);
    }
    if let Some(rerun) = &script.rerun {
        // The run fails here: no closing fences. Live writes go on; then the same replay again.
        for op in &rerun.between {
            w.run(op, script.mode, Phase::Before);
        }
        w.ms += 1;
        w.opened_at[1] = w.ms;
        w.run = 1;
        w.runs = 2;
        for op in &rerun.fencing {
            w.run(op, script.mode, Phase::Fencing);
        }
        w.fence_all(script.mode);
        for op in &rerun.replaying {
            w.run(op, script.mode, Phase::Replaying);
        }
    }
    for op in &script.closing {
        w.run(op, script.mode, Phase::Closing);
    }
    while w.open().iter().any(|&i| !w.shards[i].closed_fence) {
        w.close_next(script.mode);
    }
    for op in &script.after {
        w.run(op, script.mode, Phase::After);
    }
    w
}

/// Which opening fences of a replay id count when a failed run was run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// The first run's (docs/replay-protocol.md, "A replay run again"): live writes after the
    /// failed run's fences win over the rerun's records.
    FirstRun,
    /// The rerun's, as "the guarantee holds for the run that completes" could be read: live
    /// writes between the runs would be overwritten by the rerun.
    LastRun,
}

/// What each key must hold at the end (the claim), by key.
fn expected(w: &World, mode: ReplayMode) -> BTreeMap<String, u64> {
    expected_reading(w, mode, Reading::FirstRun)
}

/// The claim, with the opening fences of `reading` deciding what arrived after the fence.
fn expected_reading(w: &World, mode: ReplayMode, reading: Reading) -> BTreeMap<String, u64> {
    let run = match reading {
        Reading::FirstRun => 0,
        Reading::LastRun => w.runs - 1,
    };
    let mut out = BTreeMap::new();
    for key in 0..KEYS {
        let lives: Vec<&LiveWrite> = w.lives.iter().filter(|l| l.key == key).collect();
        let replayed: Vec<&ReplayedWrite> = w.replayed.iter().filter(|r| r.key == key).collect();
        let newest = |candidates: Vec<(&Pos, u64)>| {
            candidates
                .into_iter()
                .max_by(|a, b| w.newer(a.0, b.0))
                .map(|(_, v)| v)
        };
        let after: Vec<(&Pos, u64)> = lives
            .iter()
            .filter(|l| l.after_fence[run])
            .map(|l| (&l.pos, l.value))
            .collect();
        let all_lives: Vec<(&Pos, u64)> = lives.iter().map(|l| (&l.pos, l.value)).collect();
        let replays: Vec<(&Pos, u64)> = replayed.iter().map(|r| (&r.origin, r.value)).collect();
        let value = if replayed.is_empty() {
            if after.is_empty() {
                newest(all_lives)
            } else {
                newest(after)
            }
        } else if !after.is_empty() {
            newest(after)
        } else {
            match mode {
                ReplayMode::Overwrite => newest(replays),
                ReplayMode::Fill => newest(replays.into_iter().chain(all_lives).collect()),
            }
        };
        if let Some(v) = value {
            out.insert(format!("k{key}"), v);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Consumers

/// How a consumer decides to apply a record to its key.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// The protocol: `Reconciler::should_apply`.
    Protocol,
    /// The protocol, but a restart keeps only the per-key state, not the reconciler (fences).
    ProtocolForgettingFences,
    /// Naive: the record delivered last wins.
    LastDelivered,
    /// DESIGN §5's bullets taken literally: a live record applies when its position is newer
    /// than the stored version; `fill` when its origin is; `overwrite` unless the stored state
    /// came from a live record after the fence.
    DesignLiteral,
}

impl Rule {
    fn applies(self, rec: &Reconciler, incoming: &Stamp, stored: Option<&Stamp>) -> bool {
        let Some(stored) = stored else { return true };
        match self {
            Rule::Protocol | Rule::ProtocolForgettingFences => {
                rec.should_apply(incoming, Some(stored))
            }
            Rule::LastDelivered => true,
            Rule::DesignLiteral => match &incoming.replay {
                Some(tag) if tag.mode == ReplayMode::Overwrite => {
                    !(stored.replay.is_none() && stored.epoch > 0)
                }
                _ => rec.lineage().compare(&incoming.version, &stored.version) == Ordering::Greater,
            },
        }
    }
}

/// One step of the consumer's schedule.
#[derive(Debug, Clone)]
enum Step {
    /// Delivers the next record of a readable shard.
    Read(u8),
    /// Delivers again a record already delivered from a shard.
    Again(u8, u8),
    /// Persists state, reconciler and read positions (a checkpoint).
    Save,
    /// Crashes: restores the last saved state and rewinds each shard to the position of an
    /// earlier save (or the last one), whichever is earlier.
    Crash(u8),
}

fn schedule() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![
            12 => any::<u8>().prop_map(Step::Read),
            2 => (any::<u8>(), any::<u8>()).prop_map(|(s, i)| Step::Again(s, i)),
            2 => Just(Step::Save),
            1 => any::<u8>().prop_map(Step::Crash),
        ],
        0..120,
    )
}

#[derive(Clone)]
struct Saved {
    reconciler: String,
    state: BTreeMap<String, (Stamp, u64)>,
    cursors: Vec<usize>,
}

struct Consumer<'w> {
    world: &'w World,
    rule: Rule,
    reconciler: Reconciler,
    state: BTreeMap<String, (Stamp, u64)>,
    cursors: Vec<usize>,
    saves: Vec<Saved>,
}

impl<'w> Consumer<'w> {
    fn new(world: &'w World, rule: Rule) -> Self {
        let mut c = Consumer {
            world,
            rule,
            reconciler: Reconciler::new(STREAM),
            state: BTreeMap::new(),
            cursors: vec![0; world.shards.len()],
            saves: Vec::new(),
        };
        c.list_shards();
        c
    }

    /// What `ListShards` tells a consumer at start: every shard and its parents.
    fn list_shards(&mut self) {
        for s in &self.world.shards {
            let parents: Vec<&str> = s
                .parents
                .iter()
                .map(|&p| self.world.shards[p].id.as_str())
                .collect();
            self.reconciler.add_shard(&s.id, &parents);
        }
    }

    /// A shard is finished when it was read to its end after its parents were finished.
    fn finished(&self, shard: usize) -> bool {
        self.cursors[shard] == self.world.shards[shard].records.len()
            && self.world.shards[shard]
                .parents
                .iter()
                .all(|&p| self.finished(p))
    }

    /// Shards with records left whose parents are finished.
    fn readable(&self) -> Vec<usize> {
        (0..self.world.shards.len())
            .filter(|&i| self.cursors[i] < self.world.shards[i].records.len())
            .filter(|&i| {
                self.world.shards[i]
                    .parents
                    .iter()
                    .all(|&p| self.finished(p))
            })
            .collect()
    }

    fn deliver(&mut self, shard: usize, index: usize) {
        let s = &self.world.shards[shard];
        let r = &s.records[index];
        let observed = self
            .reconciler
            .observe(
                &s.id,
                &SequenceNumber::from_u64(r.seq),
                ts_from_millis(r.ms),
                &r.data,
            )
            .expect("well-formed");
        let Observed::Record(stamp) = observed else {
            return;
        };
        let v: serde_json::Value = serde_json::from_slice(&r.data).expect("JSON");
        let key = v["k"].as_str().expect("key").to_owned();
        let value = v["v"].as_u64().expect("value");
        let stored = self.state.get(&key).map(|(s, _)| s);
        if self.rule.applies(&self.reconciler, &stamp, stored) {
            self.state.insert(key, (stamp, value));
        }
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Read(pick) => {
                let readable = self.readable();
                if let Some(&i) = readable.get(usize::from(*pick) % readable.len().max(1)) {
                    self.deliver(i, self.cursors[i]);
                    self.cursors[i] += 1;
                }
            }
            Step::Again(pick, index) => {
                let read: Vec<usize> = (0..self.cursors.len())
                    .filter(|&i| self.cursors[i] > 0)
                    .collect();
                if let Some(&i) = read.get(usize::from(*pick) % read.len().max(1)) {
                    self.deliver(i, usize::from(*index) % self.cursors[i]);
                }
            }
            Step::Save => self.saves.push(Saved {
                reconciler: serde_json::to_string(&self.reconciler).expect("serializable"),
                state: self.state.clone(),
                cursors: self.cursors.clone(),
            }),
            Step::Crash(pick) => {
                match self.saves.last() {
                    None => {
                        self.reconciler = Reconciler::new(STREAM);
                        self.state.clear();
                        self.cursors.fill(0);
                    }
                    Some(last) => {
                        let earlier = &self.saves[usize::from(*pick) % self.saves.len()];
                        self.cursors = last
                            .cursors
                            .iter()
                            .zip(&earlier.cursors)
                            .map(|(a, b)| *a.min(b))
                            .collect();
                        self.reconciler = match self.rule {
                            Rule::ProtocolForgettingFences => Reconciler::new(STREAM),
                            _ => serde_json::from_str(&last.reconciler).expect("deserializable"),
                        };
                        self.state = last.state.clone();
                    }
                }
                self.list_shards();
            }
        }
    }

    /// Runs the schedule, then reads everything that is left.
    fn run(mut self, steps: &[Step]) -> BTreeMap<String, u64> {
        for step in steps {
            self.step(step);
        }
        while let Some(&i) = self.readable().first() {
            self.deliver(i, self.cursors[i]);
            self.cursors[i] += 1;
        }
        self.state.into_iter().map(|(k, (_, v))| (k, v)).collect()
    }
}

fn check(script: &Script, steps: &[Step], rule: Rule) -> Result<(), TestCaseError> {
    check_reading(script, steps, rule, Reading::FirstRun)
}

fn check_reading(
    script: &Script,
    steps: &[Step],
    rule: Rule,
    reading: Reading,
) -> Result<(), TestCaseError> {
    let world = play(script);
    let want = expected_reading(&world, script.mode, reading);
    let got = Consumer::new(&world, rule).run(steps);
    prop_assert_eq!(got, want);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Consumers with several workers (KCL-style)

/// How the workers of a multi-worker consumer share what the rule needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workers {
    /// As docs/replay-protocol.md asks: the fences (and lineage) in one store every worker reads
    /// and writes, and each state write a compare-and-set against the stamp it was decided on.
    SharedAtomic,
    /// Each worker keeps the fences of the shards it read: a child taken by the other worker
    /// does not see its parents' fences.
    LocalFences,
    /// Shared fences, but a worker reads the stored stamp, decides, and writes later,
    /// unconditionally (other workers' writes can come in between).
    ReadThenWrite,
}

/// One step of a multi-worker schedule.
#[derive(Debug, Clone)]
enum WorkerStep {
    /// The worker leasing a readable shard delivers its next record.
    Read(u8),
    /// A worker's oldest decided-but-unwritten state write lands (`ReadThenWrite` only).
    Write(u8),
}

fn worker_schedule() -> impl Strategy<Value = Vec<WorkerStep>> {
    prop::collection::vec(
        prop_oneof![
            3 => any::<u8>().prop_map(WorkerStep::Read),
            2 => any::<u8>().prop_map(WorkerStep::Write),
        ],
        0..120,
    )
}

/// Two workers; shard `i` is leased by worker `i % 2`, a child only once its parents were read
/// to their end (as the KCL does). The per-key state is one store both write.
struct MultiConsumer<'w> {
    world: &'w World,
    how: Workers,
    /// One reconciler per worker, or one shared (index 0).
    reconcilers: Vec<Reconciler>,
    state: BTreeMap<String, (Stamp, u64)>,
    cursors: Vec<usize>,
    /// Per worker: writes decided on a stamp read earlier, not yet written.
    unwritten: [Vec<(String, Stamp, u64)>; 2],
}

impl<'w> MultiConsumer<'w> {
    fn new(world: &'w World, how: Workers) -> Self {
        let mut reconciler = Reconciler::new(STREAM);
        for s in &world.shards {
            let parents: Vec<&str> = s
                .parents
                .iter()
                .map(|&p| world.shards[p].id.as_str())
                .collect();
            reconciler.add_shard(&s.id, &parents);
        }
        let n = if how == Workers::LocalFences { 2 } else { 1 };
        MultiConsumer {
            world,
            how,
            reconcilers: vec![reconciler; n],
            state: BTreeMap::new(),
            cursors: vec![0; world.shards.len()],
            unwritten: [Vec::new(), Vec::new()],
        }
    }

    fn finished(&self, shard: usize) -> bool {
        self.cursors[shard] == self.world.shards[shard].records.len()
            && self.world.shards[shard]
                .parents
                .iter()
                .all(|&p| self.finished(p))
    }

    fn readable(&self) -> Vec<usize> {
        (0..self.world.shards.len())
            .filter(|&i| self.cursors[i] < self.world.shards[i].records.len())
            .filter(|&i| {
                self.world.shards[i]
                    .parents
                    .iter()
                    .all(|&p| self.finished(p))
            })
            .collect()
    }

    fn read(&mut self, shard: usize) {
        let worker = shard % 2;
        let world = self.world;
        let s = &world.shards[shard];
        let r = &s.records[self.cursors[shard]];
        self.cursors[shard] += 1;
        let n = self.reconcilers.len();
        let reconciler = &mut self.reconcilers[worker % n];
        let observed = reconciler
            .observe(
                &s.id,
                &SequenceNumber::from_u64(r.seq),
                ts_from_millis(r.ms),
                &r.data,
            )
            .expect("well-formed");
        let Observed::Record(stamp) = observed else {
            return;
        };
        let v: serde_json::Value = serde_json::from_slice(&r.data).expect("JSON");
        let key = v["k"].as_str().expect("key").to_owned();
        let value = v["v"].as_u64().expect("value");
        let stored = self.state.get(&key).map(|(s, _)| s);
        if !reconciler.should_apply(&stamp, stored) {
            return;
        }
        match self.how {
            // Compare and set in one step: decided on the stamp that is stored when it writes.
            Workers::SharedAtomic | Workers::LocalFences => {
                self.state.insert(key, (stamp, value));
            }
            Workers::ReadThenWrite => self.unwritten[worker].push((key, stamp, value)),
        }
    }

    fn write(&mut self, worker: usize) {
        if !self.unwritten[worker].is_empty() {
            let (key, stamp, value) = self.unwritten[worker].remove(0);
            self.state.insert(key, (stamp, value));
        }
    }

    fn run(mut self, steps: &[WorkerStep]) -> BTreeMap<String, u64> {
        for step in steps {
            match step {
                WorkerStep::Read(pick) => {
                    let readable = self.readable();
                    if let Some(&i) = readable.get(usize::from(*pick) % readable.len().max(1)) {
                        self.read(i);
                    }
                }
                WorkerStep::Write(w) => self.write(usize::from(*w) % 2),
            }
        }
        while let Some(&i) = self.readable().first() {
            self.read(i);
            self.write(0);
            self.write(1);
        }
        for w in 0..2 {
            while !self.unwritten[w].is_empty() {
                self.write(w);
            }
        }
        self.state.into_iter().map(|(k, (_, v))| (k, v)).collect()
    }
}

fn check_workers(script: &Script, steps: &[WorkerStep], how: Workers) -> Result<(), TestCaseError> {
    let world = play(script);
    let want = expected(&world, script.mode);
    let got = MultiConsumer::new(&world, how).run(steps);
    prop_assert_eq!(got, want);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The properties

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn overwrite_settles_on_the_claim(
        script in script(Just(ReplayMode::Overwrite), ANY_TIME),
        steps in schedule(),
    ) {
        check(&script, &steps, Rule::Protocol)?;
    }

    #[test]
    fn fill_settles_on_the_claim(
        script in script(Just(ReplayMode::Fill), ANY_TIME),
        steps in schedule(),
    ) {
        check(&script, &steps, Rule::Protocol)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES / 2, ..ProptestConfig::default() })]

    /// Workers that share the fences and compare-and-set each state write hold what one
    /// consumer holds.
    #[test]
    fn workers_sharing_fences_with_compare_and_set_settle_on_the_claim(
        script in script(any_mode(), ANY_TIME),
        steps in worker_schedule(),
    ) {
        check_workers(&script, &steps, Workers::SharedAtomic)?;
    }
}

/// Runs `property` over `strategy`; it must find a counterexample, which is returned.
fn counterexample<S: Strategy>(
    what: &str,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> String {
    let config = Config {
        cases: CASES,
        max_shrink_iters: 2_000,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    match runner.run(&strategy, property) {
        Err(TestError::Fail(reason, value)) => format!("{reason}\nminimal case: {value:#?}"),
        other => panic!("{what} was expected to break the claim, got {other:?}"),
    }
}

/// Runs the same property with a naive rule; it must find a counterexample.
fn must_fail(rule: Rule, mode: impl Strategy<Value = ReplayMode>, origin_span: u16) -> String {
    counterexample(
        &format!("{rule:?}"),
        (script(mode, origin_span), schedule()),
        |(script, steps)| check(&script, &steps, rule),
    )
}

/// Reruns are part of every script above (three in ten); the claim they settle on keeps the
/// first run's opening fences. Read as "the rerun's fences count", the same consumers break it:
/// a live write between the failed run and the rerun is kept, not overwritten by the rerun.
#[test]
fn after_a_rerun_the_first_runs_fences_count_not_the_reruns() {
    eprintln!(
        "{}",
        counterexample(
            "the rerun's fences",
            (script(Just(ReplayMode::Overwrite), PAST), schedule()),
            |(script, steps)| check_reading(&script, &steps, Rule::Protocol, Reading::LastRun),
        )
    );
}

/// Workers that keep the fences they read to themselves stamp a child's records without the
/// fences of a parent another worker read.
#[test]
fn workers_keeping_their_own_fences_break_the_claim() {
    eprintln!(
        "{}",
        counterexample(
            "LocalFences",
            (script(any_mode(), PAST), worker_schedule()),
            |(script, steps)| check_workers(&script, &steps, Workers::LocalFences),
        )
    );
}

/// Workers that compare the stamp and write the state in two steps overwrite each other.
#[test]
fn workers_without_compare_and_set_break_the_claim() {
    eprintln!(
        "{}",
        counterexample(
            "ReadThenWrite",
            (script(any_mode(), PAST), worker_schedule()),
            |(script, steps)| check_workers(&script, &steps, Workers::ReadThenWrite),
        )
    );
}

#[test]
fn the_last_delivered_record_winning_breaks_the_claim() {
    eprintln!("{}", must_fail(Rule::LastDelivered, any_mode(), PAST));
}

/// A consumer that persists its per-key stamps but not the fences it saw stamps records after a
/// fence it re-reads no more as if they came before it.
#[test]
fn forgetting_the_fences_on_restart_breaks_the_claim() {
    eprintln!(
        "{}",
        must_fail(Rule::ProtocolForgettingFences, any_mode(), PAST)
    );
}

/// The rules of DESIGN §5 read literally apply a live record that arrived before the fence, in a
/// shard read late, over the `overwrite` replay's record (it is newer than the origin), so the
/// replay is undone although nothing arrived after the fence.
#[test]
fn design_rules_taken_literally_break_the_claim_for_overwrite() {
    eprintln!(
        "{}",
        must_fail(Rule::DesignLiteral, Just(ReplayMode::Overwrite), PAST)
    );
}

/// And when an origin is newer than a live record after the fence (another stream's record, a
/// clock ahead), they keep the replayed record in both modes.
#[test]
fn design_rules_taken_literally_break_the_claim_for_newer_origins() {
    eprintln!("{}", must_fail(Rule::DesignLiteral, any_mode(), ANY_TIME));
}

// ---------------------------------------------------------------------------------------------
// The worked example of docs/replay-protocol.md

const A: &str = "shardId-000000000000";
const B: &str = "shardId-000000000001";

/// The example's records in arrival order: (shard, sequence number, arrival, payload).
fn worked_example(mode: ReplayMode) -> Vec<(&'static str, u64, &'static str, Vec<u8>)> {
    let live = |order: &str, status: &str| {
        format!(r#"{{"order_id":"{order}","status":"{status}"}}"#).into_bytes()
    };
    let replayed = |order: &str, status: &str, shard: &str, seq: u64, at: &str| {
        let r = Replayed {
            replay: ReplayTag {
                id: "INC-7".into(),
                mode,
            },
            origin: Version {
                stream: "orders".into(),
                shard_id: shard.into(),
                sequence_number: SequenceNumber::from_u64(seq),
                sub_sequence_number: None,
                arrival_ts: flux_stages::record::parse_ts(at).unwrap(),
            },
        };
        add_to_object(&live(order, status), DEFAULT_KEY, r.members()).unwrap()
    };
    let opened = flux_stages::record::parse_ts("2026-11-25T12:00:00Z").unwrap();
    let open = Fence::open("INC-7", mode, opened);
    let close = |n| {
        open.close(FenceCounts {
            records: 3,
            shard_records: n,
        })
        .payload(DEFAULT_KEY)
    };
    vec![
        (A, 100, "2026-11-25T10:00:00.000Z", live("o-1", "paid")),
        (B, 500, "2026-11-25T10:05:00.000Z", live("o-2", "paid")),
        (B, 510, "2026-11-25T11:59:00.000Z", live("o-1", "lost")),
        (A, 110, "2026-11-25T11:59:30.000Z", live("o-2", "lost")),
        (
            A,
            120,
            "2026-11-25T12:00:00.000Z",
            open.payload(DEFAULT_KEY),
        ),
        (B, 520, "2026-11-25T12:00:00.020Z", live("o-1", "lost")),
        (
            B,
            530,
            "2026-11-25T12:00:00.040Z",
            open.payload(DEFAULT_KEY),
        ),
        (
            A,
            130,
            "2026-11-25T12:00:01.000Z",
            replayed("o-1", "paid", A, 100, "2026-11-25T10:00:00.000Z"),
        ),
        (
            B,
            540,
            "2026-11-25T12:00:01.000Z",
            replayed("o-2", "paid", B, 500, "2026-11-25T10:05:00.000Z"),
        ),
        (
            B,
            550,
            "2026-11-25T12:00:01.500Z",
            replayed("o-3", "delivered", B, 400, "2026-11-24T18:00:00.000Z"),
        ),
        (A, 140, "2026-11-25T12:00:02.000Z", live("o-2", "refunded")),
        (A, 150, "2026-11-25T12:00:03.000Z", close(1)),
        (B, 560, "2026-11-25T12:00:03.000Z", close(2)),
    ]
}

/// Consumes the example's records in the order given by `order` (indexes into the example),
/// and returns status per order.
fn consume_example(mode: ReplayMode, order: &[usize], rule: Rule) -> BTreeMap<String, String> {
    let records = worked_example(mode);
    let mut reconciler = Reconciler::new("orders");
    reconciler.add_shard(A, &[]);
    reconciler.add_shard(B, &[]);
    let mut state: BTreeMap<String, (Stamp, String)> = BTreeMap::new();
    for &i in order {
        let (shard, seq, at, data) = &records[i];
        let at = flux_stages::record::parse_ts(at).unwrap();
        let seq = SequenceNumber::from_u64(*seq);
        let Observed::Record(stamp) = reconciler.observe(shard, &seq, at, data).unwrap() else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_slice(data).unwrap();
        let key = v["order_id"].as_str().unwrap().to_owned();
        let status = v["status"].as_str().unwrap().to_owned();
        if rule.applies(&reconciler, &stamp, state.get(&key).map(|(s, _)| s)) {
            state.insert(key, (stamp, status));
        }
    }
    state.into_iter().map(|(k, (_, s))| (k, s)).collect()
}

#[test]
fn the_worked_example_settles_as_documented_in_every_delivery_order() {
    let in_time: Vec<usize> = (0..13).collect();
    let shard_a_first: Vec<usize> = [0, 3, 4, 7, 10, 11, 1, 2, 5, 6, 8, 9, 12].into();
    let shard_b_first: Vec<usize> = [1, 2, 5, 6, 8, 9, 12, 0, 3, 4, 7, 10, 11].into();
    let want = |o1: &str, o2: &str, o3: &str| -> BTreeMap<String, String> {
        [("o-1", o1), ("o-2", o2), ("o-3", o3)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    for order in [&in_time, &shard_a_first, &shard_b_first] {
        assert_eq!(
            consume_example(ReplayMode::Overwrite, order, Rule::Protocol),
            want("paid", "refunded", "delivered"),
            "overwrite, {order:?}"
        );
        assert_eq!(
            consume_example(ReplayMode::Fill, order, Rule::Protocol),
            want("lost", "refunded", "delivered"),
            "fill, {order:?}"
        );
    }
    // DESIGN §5's rules read literally: reading shard A first, the late "lost" records of o-1
    // in shard B are newer than the replayed origin and undo the overwrite.
    assert_eq!(
        consume_example(ReplayMode::Overwrite, &shard_a_first, Rule::DesignLiteral)["o-1"],
        "lost"
    );
}

/// docs/replay-protocol.md, "A replay run again": the first run's opening fence is the replay's
/// start, so a live write between a failed run and its rerun wins over the rerun's records, and
/// the rerun's copy of a record the failed run sent has the same stamp (it changes nothing).
#[test]
fn a_rerun_keeps_live_writes_made_after_the_failed_runs_fences() {
    let t = |text: &str| flux_stages::record::parse_ts(text).unwrap();
    let mode = ReplayMode::Overwrite;
    let live = |status: &str| format!(r#"{{"order_id":"o-1","status":"{status}"}}"#).into_bytes();
    let replayed = Replayed {
        replay: ReplayTag {
            id: "INC-7".into(),
            mode,
        },
        origin: Version {
            stream: "orders".into(),
            shard_id: A.into(),
            sequence_number: SequenceNumber::from_u64(100),
            sub_sequence_number: None,
            arrival_ts: t("2026-11-25T10:00:00Z"),
        },
    };
    let replayed = add_to_object(&live("paid"), DEFAULT_KEY, replayed.members()).unwrap();
    let failed = Fence::open("INC-7", mode, t("2026-11-25T12:00:00Z"));
    let rerun = Fence::open("INC-7", mode, t("2026-11-25T13:00:00Z"));
    let records: Vec<(u64, &str, Vec<u8>)> = vec![
        (100, "2026-11-25T10:00:00Z", live("paid")),
        (110, "2026-11-25T11:59:00Z", live("lost")),
        (120, "2026-11-25T12:00:00Z", failed.payload(DEFAULT_KEY)),
        (130, "2026-11-25T12:00:01Z", replayed.clone()),
        (140, "2026-11-25T12:30:00Z", live("refunded")),
        (150, "2026-11-25T13:00:00Z", rerun.payload(DEFAULT_KEY)),
        (160, "2026-11-25T13:00:01Z", replayed),
        (
            170,
            "2026-11-25T13:00:02Z",
            rerun
                .close(FenceCounts {
                    records: 1,
                    shard_records: 1,
                })
                .payload(DEFAULT_KEY),
        ),
    ];
    let mut reconciler = Reconciler::new("orders");
    reconciler.add_shard(A, &[]);
    let mut state: Option<(Stamp, String)> = None;
    let mut stamps = BTreeMap::new();
    for (seq, at, data) in &records {
        let Observed::Record(stamp) = reconciler
            .observe(A, &SequenceNumber::from_u64(*seq), t(at), data)
            .unwrap()
        else {
            continue;
        };
        stamps.insert(*seq, stamp.clone());
        let v: serde_json::Value = serde_json::from_slice(data).unwrap();
        if reconciler.should_apply(&stamp, state.as_ref().map(|(s, _)| s)) {
            state = Some((stamp, v["status"].as_str().unwrap().to_owned()));
        }
    }
    assert_eq!(
        reconciler.fence(A, "INC-7"),
        Some(&SequenceNumber::from_u64(120)),
        "the failed run's fence is H"
    );
    assert_eq!(
        stamps[&130], stamps[&160],
        "the rerun's copy ranks as the first"
    );
    assert_eq!(stamps[&140].epoch, 1, "after the failed run's fence");
    assert_eq!(state.unwrap().1, "refunded");
}
