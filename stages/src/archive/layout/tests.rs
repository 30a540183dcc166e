use super::*;
use crate::record::parse_ts;

#[test]
fn keys_round_trip() {
    let ts = parse_ts("2026-11-25T07:59:59.999Z").unwrap();
    let key = data_key(
        &stream("orders"),
        hour_of(ts),
        &ShardId::parse("shardId-000000000001").unwrap(),
        &SequenceNumber::parse("10").unwrap(),
        &SequenceNumber::parse("20").unwrap(),
    );
    assert_eq!(
        key,
        "stream=orders/dt=2026-11-25/hour=07/shard=shardId-000000000001/10-20.json.gz"
    );
    let parsed = parse_data_key(&stream("orders"), &key).unwrap();
    assert_eq!(parsed.hour, parse_ts("2026-11-25T07:00:00Z").unwrap());
    assert_eq!(parsed.shard_id.as_str(), "shardId-000000000001");
    assert_eq!(parsed.range.unwrap().1.as_str(), "20");
    assert!(parsed.gzip);
}

fn stream(name: &str) -> StreamName {
    StreamName::parse(name).unwrap()
}

#[test]
fn foreign_names_are_read_by_folders() {
    let o = stream("o");
    let p = parse_data_key(
        &o,
        "stream=o/dt=2026-01-02/hour=23/shard=s1/part-1-9.jsonl.gz",
    )
    .unwrap();
    assert_eq!(p.range.unwrap().0.as_str(), "1");
    let p = parse_data_key(
        &o,
        "stream=o/dt=2026-01-02/hour=23/shard=s1/anything.ndjson",
    )
    .unwrap();
    assert!(p.range.is_none() && !p.gzip);
    assert!(parse_data_key(&o, "stream=o/dt=2026-01-02/hour=23/shard=s1/x.parquet").is_none());
    assert!(parse_data_key(&o, "stream=o/dt=2026-01-02/hour=24/shard=s1/x.json").is_none());
    assert!(parse_data_key(&o, "stream=o/dt=2026-01-02/shard=s1/x.json").is_none());
}

#[test]
fn listings_are_scoped_to_exactly_one_stream() {
    let orders = stream("orders");
    // Another stream whose folder extends this one's name, or nested folders, never count.
    assert!(
        parse_data_key(
            &orders,
            "stream=orders/x/dt=2026-01-02/hour=23/shard=s1/1-2.json.gz"
        )
        .is_none()
    );
    assert!(
        parse_data_key(
            &orders,
            "stream=orders2/dt=2026-01-02/hour=23/shard=s1/1-2.json.gz"
        )
        .is_none()
    );
    assert!(
        parse_data_key(
            &orders,
            "stream=orders/dt=2026-01-02/hour=23/shard=a/b/1-2.json.gz"
        )
        .is_none()
    );
    assert!(
        parse_data_key(
            &orders,
            "stream=orders/dt=2026-01-02/hour=23/shard=s1/1-2.json.gz~tmp"
        )
        .is_none()
    );
    let cp = checkpoint_prefix(&orders);
    assert_eq!(
        parse_checkpoint_key(&orders, &format!("{cp}.hidden.json"))
            .unwrap()
            .as_str(),
        ".hidden"
    );
    assert!(parse_checkpoint_key(&orders, &format!("{cp}x/s.json")).is_none());
    assert!(parse_checkpoint_key(&orders, "_flux/checkpoints/stream=orders2/s.json").is_none());
}

#[test]
fn object_names_fit_for_every_legal_sequence_number() {
    let o = stream(&"s".repeat(128));
    let shard = ShardId::parse(&"d".repeat(128)).unwrap();
    for digits in [1, 56, 100, 115, 120, 128, 129] {
        let first = SequenceNumber::parse(&"9".repeat(digits)).unwrap();
        let last = SequenceNumber::parse(&format!("1{}", "0".repeat(digits - 1))).unwrap();
        let key = data_key(&o, hour_of(Utc::now()), &shard, &first, &last);
        assert!(
            key.split('/').all(|seg| seg.len() <= MAX_FILE_NAME),
            "{key}"
        );
        let parsed = parse_data_key(&o, &key).unwrap();
        assert_eq!(
            parsed.range,
            Some((first.clone(), last.clone())),
            "{digits} digits"
        );
        let file = object_file_name(&first, &last);
        let staged = staged_key(&o, &shard, "20261203T101010Z-0123abcd", &file);
        assert!(
            staged.split('/').all(|seg| seg.len() <= MAX_FILE_NAME),
            "{staged}"
        );
        assert_eq!(parse_staged_key(&o, &staged).unwrap().range, (first, last));
    }
}

#[test]
fn hex_and_decimal_convert_exactly() {
    assert_eq!(decimal_to_hex("255"), "ff");
    assert_eq!(decimal_to_hex("0"), "0");
    assert_eq!(hex_to_decimal("ff").unwrap(), "255");
    let big = "49590338271490256608559692538361571095921575989136588898";
    assert_eq!(hex_to_decimal(&decimal_to_hex(big)).unwrap(), big);
    assert!(hex_to_decimal("xyz").is_none());
}
