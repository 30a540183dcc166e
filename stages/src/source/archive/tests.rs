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
