use super::*;
use crate::record::SequenceNumber;
use bytes::Bytes;

fn rec(n: u64, arrival_ms: i64, key: &str, data: &str) -> Record {
    Record {
        stream: Arc::from("s"),
        shard_id: Arc::from("shardId-000000000000"),
        sequence_number: SequenceNumber::from_u64(n),
        sub_sequence_number: None,
        partition_key: key.into(),
        arrival_ts: ts_from_millis(arrival_ms),
        data: Bytes::from(data.to_owned()),
        annotations: None,
        probed: None,
    }
}

fn window(toml_text: &str) -> Box<dyn StatefulTransform> {
    let cfg: WindowConfig = toml::from_str(toml_text).expect("config");
    cfg.build().expect("build")
}

/// Runs batches through, then the end; returns (seq, window start ms, end ms) per output
/// record, late record seqs, and the skipped count.
fn run(
    w: &mut Box<dyn StatefulTransform>,
    batches: Vec<Vec<Record>>,
) -> (Vec<(u64, i64, i64)>, Vec<u64>, usize) {
    let mut out = Vec::new();
    let mut late = Vec::new();
    let mut skipped = 0;
    let mut take = |emit: Emit| {
        for r in emit.records {
            let (s, e) = window_of(&r).expect("annotated");
            out.push((
                r.sequence_number.as_str().parse().unwrap(),
                s.timestamp_millis(),
                e.timestamp_millis(),
            ));
        }
        late.extend(
            emit.rejected
                .iter()
                .map(|r| r.record.sequence_number.as_str().parse::<u64>().unwrap()),
        );
        skipped += emit.skipped;
    };
    for b in batches {
        let mut emit = Emit::default();
        w.process(Arc::new(b), &mut emit).unwrap();
        take(emit);
    }
    let mut emit = Emit::default();
    w.finish(&mut emit).unwrap();
    take(emit);
    (out, late, skipped)
}

#[test]
fn tumbling_windows_close_when_the_watermark_passes() {
    let mut w = window("size = \"10s\"");
    let mut emit = Emit::default();
    w.process(
        Arc::new(vec![rec(1, 1_000, "a", "{}"), rec(2, 9_999, "a", "{}")]),
        &mut emit,
    )
    .unwrap();
    assert!(emit.records.is_empty(), "window [0,10s) still open");
    w.process(Arc::new(vec![rec(3, 10_000, "a", "{}")]), &mut emit)
        .unwrap();
    let got: Vec<_> = emit.records.iter().map(|r| window_of(r).unwrap()).collect();
    assert_eq!(got.len(), 2, "the first window closed as a unit");
    assert_eq!(got[0].0.timestamp_millis(), 0);
    assert_eq!(got[0].1.timestamp_millis(), 10_000);
    let (rest, late, _) = run(&mut w, vec![]);
    assert_eq!(rest, vec![(3, 10_000, 20_000)]);
    assert!(late.is_empty());
}

#[test]
fn sliding_windows_hold_each_record_once_per_window() {
    let mut w = window("size = \"10s\"\nslide = \"5s\"");
    let (out, _, _) = run(
        &mut w,
        vec![vec![rec(1, 7_000, "a", "{}"), rec(2, 12_000, "a", "{}")]],
    );
    // 7s is in [0,10) and [5,15); 12s in [5,15) and [10,20). Windows in order of end.
    assert_eq!(
        out,
        vec![
            (1, 0, 10_000),
            (1, 5_000, 15_000),
            (2, 5_000, 15_000),
            (2, 10_000, 20_000)
        ]
    );
}

#[test]
fn late_records_go_to_dead_letter_or_are_counted() {
    let batches = || {
        vec![
            vec![rec(1, 1_000, "a", "{}"), rec(2, 25_000, "a", "{}")],
            vec![rec(3, 2_000, "a", "{}"), rec(4, 21_000, "a", "{}")],
        ]
    };
    let (out, late, skipped) = run(&mut window("size = \"10s\""), batches());
    assert_eq!(late, vec![3], "[0,10s) closed at watermark 25s");
    assert_eq!(skipped, 0);
    assert_eq!(out.len(), 3);
    let (_, late, skipped) = run(&mut window("size = \"10s\"\nlate = \"drop\""), batches());
    assert!(late.is_empty());
    assert_eq!(skipped, 1);
    // With 20s of allowed lateness, record 3 still joins its window.
    let (out, late, _) = run(
        &mut window("size = \"10s\"\nallowed_lateness = \"20s\""),
        batches(),
    );
    assert!(late.is_empty());
    assert_eq!(&out[..2], &[(1, 0, 10_000), (3, 0, 10_000)]);
}

#[test]
fn sessions_per_key_merge_and_close_after_the_gap() {
    let mut w = window("gap = \"5s\"\nkey = \"partition_key\"");
    let (out, late, _) = run(
        &mut w,
        vec![vec![
            rec(1, 0, "a", "{}"),
            rec(2, 3_000, "a", "{}"),
            rec(3, 1_000, "b", "{}"),
            rec(4, 20_000, "a", "{}"),
            // 9s is more than 5s after a's first session and before 20s - 5s: its own
            // session [9s, 14s) closed when the watermark reached 20s, so it is late.
            rec(5, 9_000, "a", "{}"),
            // 18s is within 5s of 20s: it joins (and extends back) that session.
            rec(6, 18_000, "a", "{}"),
        ]],
    );
    assert_eq!(
        out,
        vec![
            (3, 1_000, 6_000),
            (1, 0, 8_000),
            (2, 0, 8_000),
            (4, 18_000, 25_000),
            (6, 18_000, 25_000)
        ]
    );
    assert_eq!(late, vec![5]);
}

#[test]
fn event_time_comes_from_the_payload() {
    let mut w = window("size = \"1h\"\ntime = \"$.data.at\"");
    let (out, late, _) = run(
        &mut w,
        vec![vec![
            rec(1, 0, "a", r#"{"at":"2026-11-25T10:59:59.999Z"}"#),
            rec(2, 0, "a", r#"{"at":1795604400000}"#),
            rec(3, 0, "a", r#"{"no":"time"}"#),
        ]],
    );
    let h10 = parse_ts("2026-11-25T10:00:00Z").unwrap().timestamp_millis();
    assert_eq!(
        out,
        vec![
            (1, h10, h10 + 3_600_000),
            (2, h10 + 3_600_000, h10 + 7_200_000)
        ]
    );
    assert_eq!(
        late,
        vec![3],
        "no event time: dead-lettered with the reason"
    );
}

#[test]
fn bad_settings_say_what_is_wrong() {
    let err = |t: &str| {
        let c = toml::from_str::<WindowConfig>(t).unwrap();
        crate::problems::Problems::first(|p| c.check(p)).unwrap_err()
    };
    assert!(err("").contains("missing `size`"));
    assert!(err("size = \"1m\"\ngap = \"1m\"").contains("not both"));
    assert!(err("size = \"1m\"\nslide = \"2m\"").contains("must not be longer"));
    assert!(err("slide = \"1m\"").contains("needs `size`"));
    assert!(err("size = \"1m\"\nkey = \"partition_key\"").contains("session windows"));
    assert!(err("size = \"1m\"\ntime = \"data.at\"").contains("`time`"));
}

/// Event times at the edge of (or outside) the representable range are dead-lettered, and
/// do not move the watermark: records after them are not taken for late.
#[test]
fn out_of_range_event_times_are_dead_lettered_and_keep_the_watermark() {
    let cfg: WindowConfig = serde_json::from_str(r#"{"size": "1h", "time": "$.data.t"}"#).unwrap();
    let mut w = cfg.build().unwrap();
    let batch = Arc::new(vec![
        rec(1, 0, "k", r#"{"t": 9223372036854775807}"#),
        rec(2, 0, "k", r#"{"t": -9223372036854775808}"#),
        rec(3, 0, "k", r#"{"t": 253402300799999}"#),
        rec(4, 0, "k", r#"{"t": "9999-12-31T23:30:00-01:00"}"#),
        rec(5, 0, "k", r#"{"t": 1.5}"#),
        rec(6, 0, "k", r#"{"t": 1764064800000}"#),
        rec(7, 0, "k", r#"{"t": "2026-11-25T10:30:00Z"}"#),
    ]);
    let mut emit = Emit::default();
    w.process(batch, &mut emit).unwrap();
    w.finish(&mut emit).unwrap();
    let rejected: Vec<u64> = emit
        .rejected
        .iter()
        .map(|r| r.record.sequence_number.as_str().parse().unwrap())
        .collect();
    assert_eq!(rejected, [1, 2, 3, 4, 5]);
    assert!(
        emit.rejected
            .iter()
            .all(|r| !r.reason.contains("9223372036854775807"))
    );
    assert_eq!(
        emit.records.len(),
        2,
        "the in-range records are windowed, not late"
    );
}

#[test]
fn spans_longer_than_a_century_are_refused() {
    let cfg: WindowConfig = serde_json::from_str(r#"{"size": "36526d"}"#).unwrap();
    assert!(
        crate::problems::Problems::first(|p| cfg.check(p))
            .unwrap_err()
            .contains("`size`")
    );
}
