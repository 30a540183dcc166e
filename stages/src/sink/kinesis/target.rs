//! The target stream, through aws-sdk-kinesis: its open shards (ListShards), single puts (for
//! fences) and PutRecords calls.

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use super::batch::Entry;
use super::shards::{ShardRange, parse_hash_key};
use crate::aws::describe;

/// The outcome of one entry of a PutRecords call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written to this shard.
    Written {
        /// The shard it landed on.
        shard_id: String,
    },
    /// Refused; `throttled` when the code is `ProvisionedThroughputExceededException`.
    Failed {
        /// The error code, e.g. `InternalFailure`.
        code: String,
        /// True for throttling.
        throttled: bool,
    },
}

/// A stream to write to.
#[derive(Clone)]
pub struct Target {
    client: Client,
    stream: String,
}

impl Target {
    /// `stream` is a name or an ARN.
    pub fn new(client: Client, stream: String) -> Self {
        Target { client, stream }
    }

    fn by_arn(&self) -> bool {
        self.stream.starts_with("arn:")
    }

    /// The open shards (no ending sequence number) with their hash key ranges.
    pub async fn open_shards(&self) -> anyhow::Result<Vec<ShardRange>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let req = match &token {
                Some(t) => self.client.list_shards().next_token(t),
                None if self.by_arn() => self.client.list_shards().stream_arn(&self.stream),
                None => self.client.list_shards().stream_name(&self.stream),
            };
            let page = req.send().await.map_err(|e| {
                anyhow::anyhow!("ListShards on stream {}: {}", self.stream, describe(&e))
            })?;
            for s in page.shards() {
                let closed = s
                    .sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .is_some();
                if closed {
                    continue;
                }
                let Some(range) = s.hash_key_range() else {
                    anyhow::bail!("ListShards: shard {} has no hash key range", s.shard_id());
                };
                let parse = |t: &str| parse_hash_key(t).map_err(anyhow::Error::msg);
                out.push(ShardRange {
                    id: s.shard_id().to_owned(),
                    start: parse(range.starting_hash_key())?,
                    end: parse(range.ending_hash_key())?,
                });
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// PutRecord with an explicit hash key; returns (shard id, sequence number).
    pub async fn put_one(
        &self,
        data: Vec<u8>,
        key: &str,
        hash: u128,
    ) -> anyhow::Result<(String, String)> {
        let req = self
            .client
            .put_record()
            .data(Blob::new(data))
            .partition_key(key)
            .explicit_hash_key(hash.to_string());
        let req = if self.by_arn() {
            req.stream_arn(&self.stream)
        } else {
            req.stream_name(&self.stream)
        };
        let out = req.send().await.map_err(|e| {
            anyhow::anyhow!("PutRecord on stream {}: {}", self.stream, describe(&e))
        })?;
        Ok((out.shard_id().to_owned(), out.sequence_number().to_owned()))
    }

    /// One PutRecords call; one outcome per entry, in order. Whole-call errors (after the SDK's
    /// retries) are errors.
    pub async fn put_records(&self, entries: &[Entry]) -> anyhow::Result<Vec<Outcome>> {
        let mut req = self.client.put_records();
        req = if self.by_arn() {
            req.stream_arn(&self.stream)
        } else {
            req.stream_name(&self.stream)
        };
        for e in entries {
            let mut b = PutRecordsRequestEntry::builder()
                .data(Blob::new(e.record.data.to_vec()))
                .partition_key(&e.key);
            if let Some(h) = e.explicit {
                b = b.explicit_hash_key(h.to_string());
            }
            req = req.records(b.build()?);
        }
        let out = req.send().await.map_err(|e| {
            anyhow::anyhow!("PutRecords on stream {}: {}", self.stream, describe(&e))
        })?;
        if out.records().len() != entries.len() {
            anyhow::bail!(
                "PutRecords on stream {}: {} results for {} entries",
                self.stream,
                out.records().len(),
                entries.len()
            );
        }
        Ok(out
            .records()
            .iter()
            .map(|r| match (r.error_code(), r.shard_id()) {
                (None, Some(shard)) => Outcome::Written {
                    shard_id: shard.to_owned(),
                },
                (code, _) => {
                    let code = code.unwrap_or("NoShardId").to_owned();
                    Outcome::Failed {
                        throttled: code == "ProvisionedThroughputExceededException",
                        code,
                    }
                }
            })
            .collect())
    }
}
