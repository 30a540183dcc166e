use std::collections::HashMap;

use super::*;
use crate::record::{SequenceNumber, ts_from_millis};

/// A deterministic pseudo-random source (no dependency).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Records over 3 shards, each shard in sequence order with non-decreasing times, interleaved.
fn generate(seed: u64, n: usize, keys: u64) -> Vec<Record> {
    let mut rng = Lcg(seed);
    let mut seq = [1000u64, 5000, 9000];
    let mut ms = 1_000_000i64;
    (0..n)
        .map(|_| {
            ms += rng.next(3) as i64;
            let s = rng.next(3) as usize;
            seq[s] += 1 + rng.next(5);
            let key = rng.next(keys);
            let payload = match rng.next(50) {
                0 => "not json".to_owned(),
                1 => format!(r#"{{"customer_id":{key},"deleted":true}}"#),
                _ => format!(
                    r#"{{"customer_id":"c-{key}","deleted":{},"pad":"{}"}}"#,
                    rng.next(10) == 0,
                    "x".repeat(rng.next(200) as usize)
                ),
            };
            Record {
                stream: "orders".into(),
                shard_id: format!("shardId-00000000000{s}").into(),
                sequence_number: SequenceNumber::from_u64(seq[s]),
                sub_sequence_number: None,
                partition_key: format!("c-{key}").into(),
                arrival_ts: ts_from_millis(ms),
                data: bytes::Bytes::from(payload),
                annotations: None,
                probed: None,
            }
        })
        .collect()
}

fn config(extra: serde_json::Value) -> CompactConfig {
    let mut base =
        serde_json::json!({"key": "$.data.customer_id", "on_missing_key": "dead_letter"});
    base.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(base).unwrap()
}

/// Runs the transform over batches of 100; returns (output, rejected count, spilled runs).
fn run(cfg: &CompactConfig, input: &[Record]) -> (Vec<Record>, usize, u64) {
    let mut c = Compact::new(cfg, Default::default());
    let mut rejected = 0;
    for (i, chunk) in input.chunks(100).enumerate() {
        let mut emit = Emit::default();
        // Every other batch is shared with another reader: its records are cloned, not moved.
        let batch = Arc::new(chunk.to_vec());
        let other_reader = (i % 2 == 1).then(|| batch.clone());
        c.process(batch, &mut emit).unwrap();
        if let Some(kept) = other_reader {
            assert_eq!(kept.as_slice(), chunk, "a shared batch is left as it was");
        }
        assert!(emit.records.is_empty());
        rejected += emit.rejected.len();
        let mut emit = Emit::default();
        c.barrier(1, &mut emit).unwrap();
        assert!(emit.records.is_empty(), "barriers do not flush");
    }
    let mut out = Vec::new();
    loop {
        let mut emit = Emit::default();
        let drain = c.finish(&mut emit).unwrap();
        assert!(emit.records.len() <= OUT_BATCH);
        out.extend(emit.records);
        if drain == Drain::Done {
            break;
        }
    }
    let spilled = c.spilled().0;
    assert!(c.spill.is_none(), "the spill folder is gone at the end");
    (out, rejected, spilled)
}

/// [`generate`], with some records turned into what replays leave in an archive: copies of an
/// earlier record of the same key (its payload plus `_flux.replay` and `_flux.origin`, the
/// earlier record's position), and fences.
fn generate_with_replays(seed: u64, n: usize, keys: u64) -> Vec<Record> {
    let mut rng = Lcg(seed ^ 0x5eed);
    let mut records = generate(seed, n, keys);
    for i in 1..records.len() {
        match rng.next(20) {
            0 => {
                let j = rng.next(i as u64) as usize;
                let original = records[j].clone();
                let origin = crate::replay::Version::of(&original);
                let replayed = crate::replay::Replayed {
                    replay: crate::replay::ReplayTag {
                        id: format!("R{}", rng.next(3)),
                        mode: crate::replay::ReplayMode::Overwrite,
                    },
                    origin,
                };
                let data = crate::transform::annotate::add_to_object(
                    &original.data,
                    "_flux",
                    replayed.members(),
                );
                if let Ok(data) = data {
                    records[i].data = bytes::Bytes::from(data);
                }
            }
            1 => {
                let fence = crate::replay::Fence::open(
                    "R0",
                    crate::replay::ReplayMode::Fill,
                    ts_from_millis(5),
                );
                records[i].data = bytes::Bytes::from(fence.payload("_flux"));
            }
            _ => {}
        }
    }
    records
}

/// The obvious implementation: last by sequence number within a shard... all monotone here, so
/// by (arrival, shard, sequence), a replayed copy by its origin's (and below the original it
/// copies); then drop tombstones; then sort by the same order. Fences are left out.
fn reference(input: &[Record], tombstones: bool, keep: bool) -> (Vec<Record>, usize) {
    let mut last: HashMap<String, &Record> = HashMap::new();
    let mut missing = 0;
    let version = |r: &Record| {
        let own = (
            r.arrival_ts,
            r.shard_id.to_string(),
            r.sequence_number.clone(),
        );
        match crate::replay::parse_marker(&r.data, "_flux") {
            Ok(crate::replay::Marker::Replayed(c)) => {
                let o = c.origin;
                ((o.arrival_ts, o.shard_id, o.sequence_number), false, own)
            }
            _ => (own.clone(), true, own),
        }
    };
    for r in input {
        if let Ok(crate::replay::Marker::Fence(_)) = crate::replay::parse_marker(&r.data, "_flux") {
            continue;
        }
        let v: Option<serde_json::Value> = serde_json::from_slice(&r.data).ok();
        let key = match v.as_ref().and_then(|v| v.get("customer_id")) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => {
                missing += 1;
                continue;
            }
            Some(other) => other.to_string(),
        };
        match last.get(&key) {
            Some(old) if version(old) >= version(r) => {}
            _ => {
                last.insert(key, r);
            }
        }
    }
    let mut out: Vec<Record> = last
        .into_values()
        .filter(|r| {
            let deleted = serde_json::from_slice::<serde_json::Value>(&r.data)
                .ok()
                .is_some_and(|v| v["deleted"] == serde_json::Value::Bool(true));
            !tombstones || keep || !deleted
        })
        .cloned()
        .collect();
    out.sort_by_key(version);
    (out, missing)
}

#[test]
fn equals_the_reference_with_and_without_spilling() {
    for seed in [1, 2, 3] {
        let input = generate(seed, 8000, 1500);
        for (tomb, keep) in [(false, false), (true, false), (true, true)] {
            let mut extra = serde_json::json!({});
            if tomb {
                extra["tombstone"] = "@.data.deleted == true".into();
                extra["keep_tombstones"] = keep.into();
            }
            let (expected, missing) = reference(&input, tomb, keep);
            let (mem, rejected, spilled) = run(&config(extra.clone()), &input);
            assert_eq!(spilled, 0);
            assert_eq!(rejected, missing);
            assert_eq!(mem, expected, "seed {seed} tombstones {tomb} keep {keep}");
            extra["memory_limit"] = "64KiB".into();
            let (spill, rejected, spilled) = run(&config(extra), &input);
            assert!(spilled > merge::FAN_IN as u64, "{spilled} runs");
            assert_eq!(rejected, missing);
            assert_eq!(spill, expected, "spilled: seed {seed} tombstones {tomb}");
        }
    }
}

/// The records as an `archive` source that notes `cfg`'s probe reads them back from their
/// envelopes; most of them carry the note.
fn read_with_notes(cfg: &CompactConfig, input: &[Record]) -> Vec<Record> {
    let probe = cfg.probe().expect("a key path into the payload");
    let mut interner = crate::record::Interner::default();
    let read: Vec<Record> = input
        .iter()
        .map(|r| {
            let mut line = Vec::new();
            r.write_envelope(&mut line);
            Record::parse_envelope_probed(&line[..line.len() - 1], &mut interner, Some(&probe))
                .unwrap()
        })
        .collect();
    let noted = read.iter().filter(|r| r.probed.is_some()).count();
    assert!(noted * 2 > read.len(), "{noted} of {} noted", read.len());
    assert_eq!(read, input, "the records read back are the records written");
    read
}

#[test]
fn replayed_copies_rank_by_origin_and_fences_are_left_out() {
    for seed in [4, 5] {
        let input = generate_with_replays(seed, 6000, 400);
        let copies = input
            .iter()
            .filter(|r| {
                matches!(
                    crate::replay::parse_marker(&r.data, "_flux"),
                    Ok(crate::replay::Marker::Replayed(_))
                )
            })
            .count();
        assert!(copies > 100, "{copies} copies");
        let (expected, missing) = reference(&input, false, false);
        let (mem, rejected, spilled) = run(&config(serde_json::json!({})), &input);
        assert_eq!((spilled, rejected), (0, missing));
        assert_eq!(mem, expected, "seed {seed}");
        // Read from the archive by a source that notes the key and `_flux` for this stage.
        let noted = read_with_notes(&config(serde_json::json!({})), &input);
        let (from_notes, rejected, _) = run(&config(serde_json::json!({})), &noted);
        assert_eq!(rejected, missing);
        assert_eq!(from_notes, expected, "from notes: seed {seed}");
        let (spill, rejected, spilled) = run(
            &config(serde_json::json!({"memory_limit": "64KiB"})),
            &input,
        );
        assert!(spilled > 1, "{spilled} runs");
        assert_eq!(rejected, missing);
        assert_eq!(spill, expected, "spilled: seed {seed}");
    }
}

#[test]
fn a_copy_never_outranks_a_newer_original_write() {
    let rec = |shard: &str, seq: u64, ms: i64, data: &str| Record {
        stream: "orders".into(),
        shard_id: shard.into(),
        sequence_number: SequenceNumber::from_u64(seq),
        sub_sequence_number: None,
        partition_key: "k".into(),
        arrival_ts: ts_from_millis(ms),
        data: bytes::Bytes::from(data.to_owned()),
        annotations: None,
        probed: None,
    };
    let paid = rec("s0", 1, 1000, r#"{"customer_id":"o-1","status":"paid"}"#);
    let lost = rec("s1", 1, 2000, r#"{"customer_id":"o-1","status":"lost"}"#);
    // A replay at 9000 wrote a copy of `paid` into s0.
    let copy = rec(
        "s0",
        7,
        9000,
        &format!(
            r#"{{"customer_id":"o-1","status":"paid","_flux":{{"replay":{{"id":"R","mode":"overwrite"}},"origin":{}}}}}"#,
            serde_json::to_string(&crate::replay::Version::of(&paid)).unwrap()
        ),
    );
    let fence = rec(
        "s1",
        5,
        8999,
        &String::from_utf8(
            crate::replay::Fence::open(
                "R",
                crate::replay::ReplayMode::Overwrite,
                ts_from_millis(8999),
            )
            .payload("_flux"),
        )
        .unwrap(),
    );
    let input = [paid, lost.clone(), fence, copy];
    let metrics = Arc::new(crate::stage::StageMetrics::default());
    let mut c = Compact::new(&config(serde_json::json!({})), metrics.clone());
    let mut emit = Emit::default();
    c.process(Arc::new(input.to_vec()), &mut emit).unwrap();
    assert!(
        emit.rejected.is_empty(),
        "the fence is not a record without a key"
    );
    assert_eq!(crate::stage::StageMetrics::get(&metrics.skipped), 1);
    let mut emit = Emit::default();
    assert_eq!(c.finish(&mut emit).unwrap(), Drain::Done);
    assert_eq!(emit.records, vec![lost]);
}

#[test]
fn missing_keys_are_errors_naming_the_record() {
    let input = generate(4, 200, 10);
    let mut c = Compact::new(
        &config(serde_json::json!({"on_missing_key": "error"})),
        Default::default(),
    );
    let err = c
        .process(Arc::new(input), &mut Emit::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("orders shardId-"), "{err}");
    assert!(
        err.contains("key path `$.data.customer_id` selects no value"),
        "{err}"
    );
}

#[test]
fn partition_key_and_general_paths() {
    let input = generate(5, 500, 30);
    let (by_pk, rejected, _) = run(&config(serde_json::json!({"key": "partition_key"})), &input);
    assert_eq!(rejected, 0);
    assert_eq!(by_pk.len(), 30);
    // A bracketed path goes through the general JSONPath and gives the same result.
    let fast = run(&config(serde_json::json!({})), &input).0;
    let general = run(
        &config(serde_json::json!({"key": "$['data']['customer_id']"})),
        &input,
    )
    .0;
    assert_eq!(fast, general);
}

#[test]
fn per_window_compacts_each_window() {
    let mut input = generate(6, 1000, 300);
    let mut pairs = std::collections::HashSet::new();
    for (i, r) in input.iter_mut().enumerate() {
        let w = if i < 500 { "w1" } else { "w2" };
        r.annotate("window", serde_json::json!({"start": w, "end": w}));
        pairs.insert((w, r.partition_key.clone()));
    }
    let cfg = config(serde_json::json!({"key": "partition_key", "per_window": true}));
    let (out, _, _) = run(&cfg, &input);
    assert_eq!(out.len(), pairs.len());
    assert!(out.len() > 300);
    let (spilled_out, _, runs) = run(
        &config(
            serde_json::json!({"key": "partition_key", "per_window": true, "memory_limit": "64KiB"}),
        ),
        &input,
    );
    assert!(runs > 0);
    assert_eq!(out, spilled_out);
    // Without the annotation: rejected like a missing key.
    let (_, rejected, _) = run(&cfg, &generate(6, 50, 5));
    assert_eq!(rejected, 50);
}

#[test]
fn config_checks() {
    let bad = |v: serde_json::Value| {
        serde_json::from_value::<CompactConfig>(v)
            .map_err(|e| e.to_string())
            .and_then(|c| crate::problems::Problems::first(|p| c.check(p)))
            .unwrap_err()
    };
    assert!(
        bad(serde_json::json!({"key": "$.data.x", "memory_limit": "1KiB"})).contains("at least")
    );
    assert!(
        bad(serde_json::json!({"key": "$.data.x", "keep_tombstones": true}))
            .contains("needs `tombstone`")
    );
    assert!(bad(serde_json::json!({"key": "data.x"})).contains("invalid JSONPath"));
    assert!(
        bad(serde_json::json!({"key": "$.x", "tombstone": "@.a = 1"})).contains("invalid filter")
    );
}
