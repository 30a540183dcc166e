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

/// The most shards [`even_shards`] makes (Kinesis' own limit per stream is lower unless raised).
pub const MAX_OFFLINE_SHARDS: u32 = 100_000;

/// `n` open shards with equal hash key ranges, as CreateStream makes them: shard `i` starts at
/// ⌊i · 2^128 / n⌋. For a dry run without Kinesis (`run --dry-run --shards N`).
pub fn even_shards(n: u32) -> Result<Vec<ShardRange>, String> {
    if !(1..=MAX_OFFLINE_SHARDS).contains(&n) {
        return Err(format!(
            "the number of shards must be in 1..={MAX_OFFLINE_SHARDS}, found {n}"
        ));
    }
    if n == 1 {
        return Ok(vec![ShardRange {
            id: format!("shardId-{:012}", 0),
            start: 0,
            end: u128::MAX,
        }]);
    }
    let n = u128::from(n);
    // 2^128 = q·n + r (q fits: n >= 2), with 0 <= r < n (2^128 itself does not fit in a u128).
    let (mut q, mut r) = (u128::MAX / n, u128::MAX % n + 1);
    if r == n {
        q += 1;
        r = 0;
    }
    // ⌊i · 2^128 / n⌋ = i·q + ⌊i·r / n⌋ (i·r < n² fits).
    let start = |i: u128| i * q + i * r / n;
    Ok((0..n)
        .map(|i| ShardRange {
            id: format!("shardId-{i:012}"),
            start: start(i),
            end: if i + 1 == n {
                u128::MAX
            } else {
                start(i + 1) - 1
            },
        })
        .collect())
}

/// The open shards in a saved ListShards or DescribeStream response, as the AWS CLI prints it
/// (`aws kinesis list-shards --stream-name S > shards.json`): `{"Shards": [...]}` or
/// `{"StreamDescription": {"Shards": [...]}}`. Closed shards (with an
/// `EndingSequenceNumber`) are left out, as the sink does with a live listing.
pub fn shards_from_json(text: &str) -> Result<Vec<ShardRange>, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Listing {
        shards: Option<Vec<Shard>>,
        stream_description: Option<Box<Listing>>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Shard {
        shard_id: String,
        hash_key_range: HashKeyRange,
        #[serde(default)]
        sequence_number_range: Option<SequenceNumberRange>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct HashKeyRange {
        starting_hash_key: String,
        ending_hash_key: String,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct SequenceNumberRange {
        #[serde(default)]
        ending_sequence_number: Option<String>,
    }
    let listing: Listing = serde_json::from_str(text).map_err(|e| {
        format!(
            "not a ListShards or DescribeStream response ({}): expected {{\"Shards\": [{{\"ShardId\", \"HashKeyRange\": {{…}}}}, …]}}",
            crate::json::error_reason(&e)
        )
    })?;
    let shards = match listing {
        Listing {
            shards: Some(s), ..
        } => s,
        Listing {
            stream_description: Some(d),
            ..
        } => d.shards.unwrap_or_default(),
        _ => return Err("no `Shards` list (expected the output of `aws kinesis list-shards` or `describe-stream`)".into()),
    };
    let mut out = Vec::new();
    for s in shards {
        let closed = s
            .sequence_number_range
            .is_some_and(|r| r.ending_sequence_number.is_some());
        if closed {
            continue;
        }
        let key = |t: &str, what: &str| {
            parse_hash_key(t).map_err(|e| format!("shard {}: {what}: {e}", s.shard_id))
        };
        out.push(ShardRange {
            start: key(&s.hash_key_range.starting_hash_key, "StartingHashKey")?,
            end: key(&s.hash_key_range.ending_hash_key, "EndingHashKey")?,
            id: s.shard_id,
        });
    }
    ShardMap::new(out.clone())?;
    Ok(out)
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
    fn even_shards_split_the_hash_space_as_create_stream_does() {
        // Known values of streams created with 2 and 3 shards.
        let two = even_shards(2).unwrap();
        assert_eq!(two[1].start, 1u128 << 127);
        let three = even_shards(3).unwrap();
        assert_eq!(three[1].start, 113427455640312821154458202477256070485);
        assert_eq!(three[2].start, 226854911280625642308916404954512140970);
        for n in [1, 2, 3, 7, 500, MAX_OFFLINE_SHARDS] {
            let shards = even_shards(n).unwrap();
            assert_eq!(shards.len(), n as usize);
            ShardMap::new(shards).unwrap();
        }
        assert!(even_shards(0).is_err());
        assert!(even_shards(MAX_OFFLINE_SHARDS + 1).is_err());
    }

    #[test]
    fn saved_listings_give_the_open_shards() {
        let listing = r#"{"Shards": [
            {"ShardId": "shardId-000000000000", "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "340282366920938463463374607431768211455"},
             "SequenceNumberRange": {"StartingSequenceNumber": "1", "EndingSequenceNumber": "9"}},
            {"ShardId": "shardId-000000000001", "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "170141183460469231731687303715884105727"},
             "SequenceNumberRange": {"StartingSequenceNumber": "10"}, "ParentShardId": "shardId-000000000000"},
            {"ShardId": "shardId-000000000002", "HashKeyRange": {"StartingHashKey": "170141183460469231731687303715884105728", "EndingHashKey": "340282366920938463463374607431768211455"}}
        ], "NextToken": null}"#;
        let open = shards_from_json(listing).unwrap();
        let ids: Vec<&str> = open.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["shardId-000000000001", "shardId-000000000002"]);
        let described = format!(
            r#"{{"StreamDescription": {}}}"#,
            listing.replace(r#", "NextToken": null"#, "")
        );
        assert_eq!(shards_from_json(&described).unwrap(), open);
        // A hole, a bad key, not a listing.
        let hole = listing.replace(
            "170141183460469231731687303715884105728",
            "170141183460469231731687303715884105729",
        );
        assert!(
            shards_from_json(&hole)
                .unwrap_err()
                .contains("do not cover")
        );
        let bad = listing.replace(
            r#""StartingHashKey": "0", "EndingHashKey": "1701"#,
            r#""StartingHashKey": "x", "EndingHashKey": "1701"#,
        );
        assert!(
            shards_from_json(&bad)
                .unwrap_err()
                .contains("shard shardId-000000000001: StartingHashKey")
        );
        assert!(
            shards_from_json("[]")
                .unwrap_err()
                .contains("not a ListShards")
        );
        assert!(shards_from_json("{}").unwrap_err().contains("no `Shards`"));
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
