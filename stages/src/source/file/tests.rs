use super::*;

#[test]
fn shards_follow_the_md5_hash_ranges() {
    // MD5("a") = 0cc175b9…: in the first of 4 ranges; MD5("b") = 92eb5ffe…: in the third.
    assert_eq!(shard_index("a", 4), 0);
    assert_eq!(shard_index("b", 4), 2);
    assert_eq!(shard_index("anything", 1), 0);
}

#[test]
fn data_lines_get_keys_or_are_rejected() {
    let parser = DataLineParser {
        stream: "orders".into(),
        shard_ids: vec!["s0".into()],
        key: KeyRule::Path(ValuePath::compile("$.customer_id").unwrap()),
        default_key: None,
        arrival: Some(ValuePath::compile("$.created_at").unwrap()),
        started: crate::record::ts_from_millis(0),
    };
    let mut out = Parsed::default();
    parser.parse(
        1,
        br#"{"customer_id":"c-1","created_at":"2026-11-25T09:00:00.5009Z"}"#,
        &mut out,
    );
    parser.parse(2, b"not json", &mut out);
    parser.parse(3, br#"{"customer_id":"c-2"}"#, &mut out);
    assert_eq!(out.records.len(), 1);
    assert_eq!(out.records[0].partition_key, "c-1");
    assert_eq!(
        crate::record::format_ts(&out.records[0].arrival_ts),
        "2026-11-25T09:00:00.500Z"
    );
    assert_eq!(out.rejected.len(), 2);
    assert!(
        out.rejected[0].reason.contains("not JSON"),
        "{}",
        out.rejected[0].reason
    );
    assert!(
        out.rejected[1].reason.contains("arrival time"),
        "{}",
        out.rejected[1].reason
    );
    assert_eq!(out.rejected[0].record.data.as_ref(), b"not json");
}

#[test]
fn numeric_partition_keys_keep_their_exact_text() {
    let parser = DataLineParser {
        stream: "orders".into(),
        shard_ids: (0..4).map(|i| Arc::from(shard_id(i))).collect(),
        key: KeyRule::Path(ValuePath::compile("$.customer_id").unwrap()),
        default_key: None,
        arrival: None,
        started: crate::record::ts_from_millis(0),
    };
    let mut out = Parsed::default();
    for line in [
        r#"{"customer_id":12345678901234567890123}"#,
        r#"{"customer_id":12345678901234567890124}"#,
        r#"{"customer_id": 1.50 }"#,
        r#"{"customer_id":-0}"#,
        r#"{"customer_id":{"b":1e2,"a":[10000000000000000000001]}}"#,
    ] {
        parser.parse(1, line.as_bytes(), &mut out);
    }
    let keys: Vec<&str> = out
        .records
        .iter()
        .map(|r| r.partition_key.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "12345678901234567890123",
            "12345678901234567890124",
            "1.50",
            "-0",
            r#"{"a":[10000000000000000000001],"b":1e2}"#
        ]
    );
    // The shard follows the key's exact text too.
    assert_eq!(
        out.records[0].shard_id.as_ref(),
        shard_id(shard_index("12345678901234567890123", 4))
    );
}
