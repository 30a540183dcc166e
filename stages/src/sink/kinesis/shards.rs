//! Which shard Kinesis puts a record on: the MD5 of the partition key as a 128-bit big-endian
//! integer (or the explicit hash key), inside the hash-key ranges of the open shards.

use md5::{Digest, Md5};

/// The hash key Kinesis derives from a partition key.
pub fn hash_key(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// Parses an explicit hash key (a decimal integer in 0 ..= 2^128 - 1).
pub fn parse_hash_key(text: &str) -> Result<u128, String> {
    text.trim()
        .parse::<u128>()
        .map_err(|_| "the explicit hash key is not a decimal integer in 0..2^128-1".to_owned())
}

/// One open shard of the target stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRange {
    /// Its id, e.g. `shardId-000000000001`.
    pub id: String,
    /// First hash key it holds.
    pub start: u128,
    /// Last hash key it holds (inclusive).
    pub end: u128,
}

/// The open shards of a stream, sorted by hash range, for routing records.
#[derive(Debug, Clone, Default)]
pub struct ShardMap {
    shards: Vec<ShardRange>,
}

impl ShardMap {
    /// A map of `shards` (any order). Errors when ranges overlap or leave holes.
    pub fn new(mut shards: Vec<ShardRange>) -> Result<ShardMap, String> {
        if shards.is_empty() {
            return Err("the stream has no open shard".into());
        }
        shards.sort_by_key(|s| s.start);
        let mut next: Option<u128> = Some(0);
        for s in &shards {
            if Some(s.start) != next || s.end < s.start {
                return Err(format!(
                    "the open shards' hash key ranges do not cover 0..2^128-1 exactly (at {})",
                    s.id
                ));
            }
            next = s.end.checked_add(1);
        }
        if next.is_some() {
            return Err("the open shards' hash key ranges end before 2^128-1".into());
        }
        Ok(ShardMap { shards })
    }

    /// The shards, by hash range.
    pub fn shards(&self) -> &[ShardRange] {
        &self.shards
    }

    /// The index (into [`ShardMap::shards`]) of the shard holding `hash`.
    pub fn index_of(&self, hash: u128) -> usize {
        // Ranges cover everything: the last range starting at or below `hash`.
        self.shards
            .partition_point(|s| s.start <= hash)
            .saturating_sub(1)
    }

    /// The index of the shard a record with this key (and optional explicit hash key) lands on.
    pub fn route(&self, partition_key: &str, explicit: Option<u128>) -> usize {
        self.index_of(explicit.unwrap_or_else(|| hash_key(partition_key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` equal ranges, as CreateStream makes them.
    fn even(n: u128) -> ShardMap {
        let width = u128::MAX / n + 1;
        ShardMap::new(
            (0..n)
                .map(|i| ShardRange {
                    id: format!("shardId-{i:012}"),
                    start: i * width,
                    end: if i == n - 1 {
                        u128::MAX
                    } else {
                        (i + 1) * width - 1
                    },
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn md5_hash_keys_match_kinesis() {
        // MD5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(hash_key("a"), 0x0cc175b9c0f1b6a831c399e269772661);
        assert_eq!(
            parse_hash_key("340282366920938463463374607431768211455"),
            Ok(u128::MAX)
        );
        assert!(parse_hash_key("340282366920938463463374607431768211456").is_err());
        assert!(parse_hash_key("-1").is_err());
    }

    #[test]
    fn routes_like_the_file_source_for_even_ranges() {
        for n in 2..6usize {
            let map = even(n as u128);
            for k in 0..200 {
                let key = format!("key-{k}");
                assert_eq!(
                    map.route(&key, None),
                    crate::source::file::shard_index(&key, n),
                    "{key} over {n} shards"
                );
            }
        }
    }

    #[test]
    fn range_edges_and_explicit_keys() {
        let map = even(3);
        let s = map.shards().to_vec();
        assert_eq!(map.index_of(0), 0);
        assert_eq!(map.index_of(s[0].end), 0);
        assert_eq!(map.index_of(s[1].start), 1);
        assert_eq!(map.index_of(u128::MAX), 2);
        assert_eq!(map.route("whatever", Some(s[2].start)), 2);
    }

    #[test]
    fn uneven_ranges_after_a_split_and_bad_maps() {
        let map = ShardMap::new(vec![
            ShardRange {
                id: "c".into(),
                start: 1000,
                end: u128::MAX,
            },
            ShardRange {
                id: "a".into(),
                start: 0,
                end: 9,
            },
            ShardRange {
                id: "b".into(),
                start: 10,
                end: 999,
            },
        ])
        .unwrap();
        assert_eq!(map.shards()[map.index_of(9)].id, "a");
        assert_eq!(map.shards()[map.index_of(10)].id, "b");
        assert_eq!(map.shards()[map.index_of(1000)].id, "c");
        let hole = ShardMap::new(vec![
            ShardRange {
                id: "a".into(),
                start: 0,
                end: 9,
            },
            ShardRange {
                id: "c".into(),
                start: 11,
                end: u128::MAX,
            },
        ]);
        assert!(hole.is_err());
        assert!(ShardMap::new(vec![]).is_err());
    }
}
