use super::*;
use crate::record::{SequenceNumber, parse_ts};

fn rec(data: &str) -> Record {
    Record {
        stream: "orders".into(),
        shard_id: "shardId-000000000002".into(),
        sequence_number: SequenceNumber::from_u64(42),
        sub_sequence_number: None,
        partition_key: "c-1".into(),
        arrival_ts: parse_ts("2026-11-25T10:00:00.123Z").unwrap(),
        data: bytes::Bytes::copy_from_slice(data.as_bytes()),
        annotations: None,
        probed: None,
    }
}

fn config(json: Value) -> AnnotateConfig {
    serde_json::from_value(json).unwrap()
}

#[test]
fn appends_fields_and_replay_origin() {
    let a = Annotate::new(&config(serde_json::json!({
        "fields": {"ticket": "INC-1", "shard": "{{ record.shard_id }}", "n": 3},
        "replay": {"id": "INC-1", "mode": "overwrite"}
    })))
    .unwrap();
    let out = a
        .annotate(&rec(r#"{"order_id":"o-1","total":1.50}"#))
        .unwrap();
    let text = std::str::from_utf8(&out.data).unwrap();
    assert!(
        text.starts_with(r#"{"order_id":"o-1","total":1.50,"_flux":{"#),
        "{text}"
    );
    let v: Value = serde_json::from_str(text).unwrap();
    assert_eq!(v["_flux"]["ticket"], "INC-1");
    assert_eq!(v["_flux"]["shard"], "shardId-000000000002");
    assert_eq!(v["_flux"]["n"], 3);
    assert_eq!(v["_flux"]["replay"]["mode"], "overwrite");
    assert_eq!(v["_flux"]["origin"]["sequence_number"], "42");
    assert_eq!(
        v["_flux"]["origin"]["arrival_ts"],
        "2026-11-25T10:00:00.123Z"
    );
}

#[test]
fn a_replayed_copy_keeps_its_origin_and_fences_are_not_replayed() {
    let mut a = Annotate::new(&config(serde_json::json!({
        "replay": {"id": "INC-2", "mode": "fill"}
    })))
    .unwrap();
    let copy = r#"{"order_id":"o-1","_flux":{"replay":{"id":"INC-1","mode":"overwrite"},"origin":{"stream":"orders","shard_id":"shardId-000000000000","sequence_number":"7","arrival_ts":"2026-11-24T08:00:00.000Z"}}}"#;
    let fence = crate::replay::Fence::open(
        "INC-1",
        ReplayMode::Overwrite,
        parse_ts("2026-11-25T09:00:00Z").unwrap(),
    );
    let batch = Arc::new(vec![
        rec(copy),
        rec(std::str::from_utf8(&fence.payload("_flux")).unwrap()),
        rec(r#"{"_flux":{"replay":{"id":"X","mode":"fill"}}}"#),
    ]);
    let mut emit = Emit::default();
    a.process(&batch, &mut emit).unwrap();
    assert_eq!(emit.records.len(), 1);
    let v: Value = serde_json::from_slice(&emit.records[0].data).unwrap();
    assert_eq!(v["_flux"]["replay"]["id"], "INC-2");
    assert_eq!(v["_flux"]["origin"]["sequence_number"], "7");
    assert_eq!(v["_flux"]["origin"]["shard_id"], "shardId-000000000000");
    assert_eq!(
        v["_flux"]["origin"]["arrival_ts"],
        "2026-11-24T08:00:00.000Z"
    );
    let reasons: Vec<_> = emit.rejected.iter().map(|r| r.reason.as_str()).collect();
    assert!(
        reasons[0].contains("a fence of replay `INC-1` is not a record to replay"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("broken replay annotation"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("without `_flux.origin`"), "{reasons:?}");
}

#[test]
fn merging_keeps_every_byte_it_does_not_replace() {
    let a = Annotate::new(&config(serde_json::json!({"fields": {"b": 2, "n": "new"}}))).unwrap();
    let payload = "{ \"x\" : 1.10, \"\\u0061\": 1e2,\n \"_flux\" : { \"f\": 0.1000000000000000055511151231257827, \"n\": [1.0] , \"n\": 0 } }\n";
    let out = a.annotate(&rec(payload)).unwrap();
    assert_eq!(
        std::str::from_utf8(&out.data).unwrap(),
        "{ \"x\" : 1.10, \"\\u0061\": 1e2,\n \"_flux\" : { \"f\": 0.1000000000000000055511151231257827, \"n\": \"new\" , \"n\": \"new\" ,\"b\":2} }\n"
    );
}

#[test]
fn merges_into_an_existing_annotation() {
    let a = Annotate::new(&config(serde_json::json!({"fields": {"b": 2}}))).unwrap();
    let out = a
        .annotate(&rec(r#"{"x":1,"_flux":{"a":1},"y":[1]}"#))
        .unwrap();
    assert_eq!(
        std::str::from_utf8(&out.data).unwrap(),
        r#"{"x":1,"_flux":{"a":1,"b":2},"y":[1]}"#
    );
    let out = a.annotate(&rec("{}")).unwrap();
    assert_eq!(
        std::str::from_utf8(&out.data).unwrap(),
        r#"{"_flux":{"b":2}}"#
    );
}

#[test]
fn non_objects_are_rejected_with_a_reason() {
    let mut a = Annotate::new(&config(serde_json::json!({"fields": {"b": 2}}))).unwrap();
    let batch = Arc::new(vec![
        rec("[1]"),
        rec("hello"),
        rec(r#"{"_flux":1}"#),
        rec("{}"),
    ]);
    let mut emit = Emit::default();
    a.process(&batch, &mut emit).unwrap();
    assert_eq!(emit.records.len(), 1);
    let reasons: Vec<_> = emit.rejected.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(reasons[0], "payload is JSON but not an object");
    assert!(reasons[1].starts_with("payload is not JSON"));
    assert!(reasons[2].contains("not an object"));
}

#[test]
fn missing_template_variables_are_errors() {
    let a = Annotate::new(&config(
        serde_json::json!({"fields": {"x": "{{ record.nope }}"}}),
    ))
    .unwrap();
    assert!(a.annotate(&rec("{}")).is_err());
    assert!(Annotate::new(&config(serde_json::json!({}))).is_err());
}
