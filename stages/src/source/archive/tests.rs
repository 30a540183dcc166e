use super::*;

#[test]
fn an_arrival_merge_of_many_shards_reads_in_smaller_batches() {
    // 4 shards: 4 × 4 × 1024 records, within the read-ahead.
    assert_eq!(reader_batch(Order::Arrival, 4, 2, 1024), 1024);
    // 200 shards: 65536 / (200 × 4) = 81 records per batch.
    assert_eq!(reader_batch(Order::Arrival, 200, 2, 1024), 81);
    assert_eq!(reader_batch(Order::Arrival, 5000, 2, 1024), 16);
    assert_eq!(reader_batch(Order::Shard, 200, 2, 1024), 1024);
    assert_eq!(reader_batch(Order::Interleaved, 200, 2, 1024), 1024);
}

#[test]
fn an_interleaved_read_starts_the_largest_shards_first() {
    let object = |shard: &str, key: &str| DataObject {
        key: key.into(),
        hour: chrono::DateTime::UNIX_EPOCH,
        shard_id: crate::names::ShardId::parse(shard).unwrap(),
        range: None,
        gzip: true,
    };
    let mut lists = vec![
        vec![object("s0", "a"), object("s0", "b")],
        vec![object("s1", "c")],
        vec![object("s2", "d"), object("s2", "e")],
        vec![object("s3", "f")],
    ];
    let sizes: bounds::ObjectSizes = Arc::new(
        [
            ("a", 30),
            ("b", 26),
            ("c", 56),
            ("d", 40),
            ("e", 27),
            ("f", 46),
        ]
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect(),
    );
    largest_first(&mut lists, &sizes);
    let order: Vec<&str> = lists.iter().map(|l| l[0].shard_id.as_str()).collect();
    // 67, 56 (s0 before s1: equal sizes keep shard id order), 56, 46.
    assert_eq!(order, ["s2", "s0", "s1", "s3"]);
    // Each shard's objects keep their order.
    assert_eq!(lists[0][1].key, "e");
}
