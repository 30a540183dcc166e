use super::*;
use crate::record::ts_from_millis;
use crate::replay::wire::{FenceCounts, Replayed};
use crate::transform::annotate::add_to_object;

const S0: &str = "shardId-000000000000";
const S1: &str = "shardId-000000000001";

fn seq(n: u64) -> SequenceNumber {
    SequenceNumber::from_u64(n)
}

fn origin(shard: &str, n: u64, ms: i64) -> Version {
    Version {
        stream: "orders".into(),
        shard_id: shard.into(),
        sequence_number: seq(n),
        sub_sequence_number: None,
        arrival_ts: ts_from_millis(ms),
    }
}

fn replayed(id: &str, mode: ReplayMode, origin: Version) -> Vec<u8> {
    let r = Replayed {
        replay: ReplayTag {
            id: id.into(),
            mode,
        },
        origin,
    };
    add_to_object(br#"{"k":"a"}"#, DEFAULT_KEY, r.members()).unwrap()
}

fn fence(id: &str, mode: ReplayMode, opened_ms: i64) -> Vec<u8> {
    Fence::open(id, mode, ts_from_millis(opened_ms)).payload(DEFAULT_KEY)
}

fn stamp(r: &mut Reconciler, shard: &str, n: u64, ms: i64, data: &[u8]) -> Stamp {
    match r.observe(shard, &seq(n), ts_from_millis(ms), data).unwrap() {
        Observed::Record(s) => s,
        Observed::Fence(f) => panic!("unexpected fence {f:?}"),
    }
}

fn reconciler() -> Reconciler {
    let mut r = Reconciler::new("orders");
    r.add_shard(S0, &[]);
    r.add_shard(S1, &[]);
    r
}

#[test]
fn live_records_after_a_fence_outrank_everything_before_it() {
    let mut r = reconciler();
    let pre = stamp(&mut r, S0, 10, 1_000, b"{}");
    assert!(matches!(
        r.observe(
            S1,
            &seq(5),
            ts_from_millis(900),
            &fence("R", ReplayMode::Overwrite, 900)
        )
        .unwrap(),
        Observed::Fence(_)
    ));
    assert_eq!(r.fence(S1, "R"), Some(&seq(5)));
    // Arrived earlier than `pre` by the clock, but after the fence of its shard.
    let post = stamp(&mut r, S1, 6, 950, b"{}");
    assert_eq!((pre.epoch, post.epoch), (0, 1));
    assert!(r.should_apply(&post, Some(&pre)));
    assert!(!r.should_apply(&pre, Some(&post)));
    // Delivered again after the fence was seen: still before it.
    assert_eq!(stamp(&mut r, S1, 4, 800, b"{}").epoch, 0);
    assert!(!r.should_apply(&post, Some(&post)));
}

#[test]
fn overwrite_beats_live_before_its_fence_and_loses_to_live_after() {
    let mut r = reconciler();
    r.observe(
        S0,
        &seq(5),
        ts_from_millis(500),
        &fence("R", ReplayMode::Overwrite, 500),
    )
    .unwrap();
    let rep = stamp(
        &mut r,
        S0,
        7,
        600,
        &replayed("R", ReplayMode::Overwrite, origin(S0, 1, 100)),
    );
    assert_eq!(rep.epoch, 0);
    let pre = stamp(&mut r, S0, 3, 400, b"{}");
    let post = stamp(&mut r, S0, 8, 700, b"{}");
    assert!(r.should_apply(&rep, Some(&pre)));
    assert!(!r.should_apply(&pre, Some(&rep)));
    assert!(r.should_apply(&post, Some(&rep)));
    assert!(!r.should_apply(&rep, Some(&post)));
}

#[test]
fn fill_goes_by_version_before_the_fence() {
    let mut r = reconciler();
    r.observe(
        S0,
        &seq(5),
        ts_from_millis(500),
        &fence("R", ReplayMode::Fill, 500),
    )
    .unwrap();
    let old = stamp(
        &mut r,
        S0,
        7,
        600,
        &replayed("R", ReplayMode::Fill, origin(S0, 1, 100)),
    );
    let new = stamp(
        &mut r,
        S0,
        8,
        600,
        &replayed("R", ReplayMode::Fill, origin(S0, 4, 450)),
    );
    let pre = stamp(&mut r, S0, 3, 400, b"{}");
    assert!(r.should_apply(&pre, Some(&old)));
    assert!(!r.should_apply(&old, Some(&pre)));
    assert!(r.should_apply(&new, Some(&pre)));
    let post = stamp(&mut r, S1, 9, 300, b"{}");
    assert_eq!(post.epoch, 0, "S1 has no fence yet");
}

#[test]
fn children_inherit_their_parents_fences() {
    let mut r = reconciler();
    r.add_shard("child", &[S0, S1]);
    r.observe(
        S0,
        &seq(5),
        ts_from_millis(500),
        &fence("R", ReplayMode::Overwrite, 500),
    )
    .unwrap();
    let in_child = stamp(&mut r, "child", 1, 400, b"{}");
    assert_eq!(in_child.epoch, 1);
    let rep = stamp(
        &mut r,
        "child",
        2,
        600,
        &replayed("R", ReplayMode::Overwrite, origin(S0, 1, 100)),
    );
    assert_eq!(rep.epoch, 0);
}

#[test]
fn a_fill_after_an_earlier_replay_keeps_its_origins_place_in_time() {
    let mut r = reconciler();
    r.observe(
        S0,
        &seq(5),
        ts_from_millis(500),
        &fence("R0", ReplayMode::Overwrite, 500),
    )
    .unwrap();
    let r0 = stamp(
        &mut r,
        S0,
        6,
        510,
        &replayed("R0", ReplayMode::Overwrite, origin(S0, 1, 100)),
    );
    r.observe(
        S0,
        &seq(9),
        ts_from_millis(900),
        &fence("R1", ReplayMode::Fill, 900),
    )
    .unwrap();
    // Origin older than R0: it does not undo R0's overwrite.
    let older = stamp(
        &mut r,
        S0,
        10,
        910,
        &replayed("R1", ReplayMode::Fill, origin(S0, 2, 200)),
    );
    assert_eq!(older.epoch, 0);
    assert!(!r.should_apply(&older, Some(&r0)));
    // Origin after R0 opened: newer than R0's state, older than what follows R1's fence.
    let newer = stamp(
        &mut r,
        S0,
        11,
        920,
        &replayed("R1", ReplayMode::Fill, origin(S0, 7, 700)),
    );
    assert_eq!(newer.epoch, 1);
    assert!(r.should_apply(&newer, Some(&r0)));
    let post = stamp(&mut r, S0, 12, 930, b"{}");
    assert_eq!(post.epoch, 2);
    assert!(r.should_apply(&post, Some(&newer)));
}

#[test]
fn fences_are_idempotent_and_close_fences_change_nothing() {
    let mut r = reconciler();
    let open = fence("R", ReplayMode::Fill, 500);
    r.observe(S0, &seq(5), ts_from_millis(500), &open).unwrap();
    r.observe(S0, &seq(6), ts_from_millis(501), &open).unwrap();
    r.observe(S0, &seq(5), ts_from_millis(500), &open).unwrap();
    assert_eq!(r.fence(S0, "R"), Some(&seq(5)));
    let close = Fence::open("R", ReplayMode::Fill, ts_from_millis(500)).close(FenceCounts {
        records: 3,
        shard_records: 1,
    });
    let before = r.clone();
    let seen = r
        .observe(
            S1,
            &seq(9),
            ts_from_millis(900),
            &close.payload(DEFAULT_KEY),
        )
        .unwrap();
    assert_eq!(seen, Observed::Fence(close));
    assert_eq!(r, before);
}

#[test]
fn arrival_times_are_rounded_to_the_nearest_millisecond() {
    let mut r = reconciler();
    // Kinesis sends 1764064800.123; as binary floating point it is 1764064800.12299990654…
    let secs = 1_764_064_800.123_f64;
    let sent = DateTime::from_timestamp(secs.trunc() as i64, (secs.fract() * 1e9) as u32)
        .expect("in range");
    assert_eq!(
        sent.timestamp_subsec_millis(),
        122,
        "truncated: a millisecond early"
    );
    let at = |r: &mut Reconciler, n: u64, ts: DateTime<Utc>| match r
        .observe(S0, &seq(n), ts, b"{}")
        .unwrap()
    {
        Observed::Record(s) => s.version.arrival_ts,
        Observed::Fence(_) => unreachable!(),
    };
    assert_eq!(at(&mut r, 1, sent), ts_from_millis(1_764_064_800_123));
    let ms = |n: i64| ts_from_millis(n);
    let plus_nanos = |base: i64, nanos: i64| ms(base) + chrono::Duration::nanoseconds(nanos);
    assert_eq!(at(&mut r, 2, plus_nanos(5, 499_999)), ms(5));
    assert_eq!(at(&mut r, 3, plus_nanos(5, 500_000)), ms(6));
    assert_eq!(at(&mut r, 4, plus_nanos(5, 999_999)), ms(6));
    assert_eq!(at(&mut r, 5, ms(7)), ms(7));
    // Before 1970 too.
    assert_eq!(at(&mut r, 6, plus_nanos(-2, 600_000)), ms(-1));
}

#[test]
fn state_survives_serialization() {
    let mut r = reconciler().with_key("meta");
    r.add_shard("child", &[S0]);
    r.observe(
        S0,
        &seq(5),
        ts_from_millis(500),
        &Fence::open("R", ReplayMode::Fill, ts_from_millis(500)).payload("meta"),
    )
    .unwrap();
    let text = serde_json::to_string(&r).unwrap();
    let back: Reconciler = serde_json::from_str(&text).unwrap();
    assert_eq!(back, r);
    let s = stamp(&mut r.clone(), "child", 1, 1, b"{}");
    let text = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<Stamp>(&text).unwrap(), s);
    assert_eq!(s.epoch, 1);
}

#[test]
fn records_from_the_record_type_keep_their_sub_sequence() {
    let mut r = reconciler();
    let mut record = Record {
        stream: "ignored".into(),
        shard_id: S0.into(),
        sequence_number: seq(3),
        sub_sequence_number: Some(1),
        partition_key: "k".into(),
        arrival_ts: ts_from_millis(1),
        data: bytes::Bytes::from_static(b"{}"),
        annotations: None,
        probed: None,
    };
    let Observed::Record(first) = r.observe_record(&record).unwrap() else {
        panic!()
    };
    record.sub_sequence_number = Some(2);
    let Observed::Record(second) = r.observe_record(&record).unwrap() else {
        panic!()
    };
    assert_eq!(second.version.stream, "orders");
    assert!(r.should_apply(&second, Some(&first)));
}
