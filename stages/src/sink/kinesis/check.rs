//! Checking each record before it is sent: the replay annotation (with fences), the partition
//! and explicit hash keys, the API limits; the target shard.

use super::*;

impl KinesisSink {
    /// Checks one record and turns it into an entry; the error is the dead-letter reason.
    pub(super) fn prepare(&self, r: &Record, map: &ShardMap) -> Result<Entry, String> {
        if self.config.fences {
            self.check_annotation(r)?;
        }
        let key = match &self.partition {
            None => r.partition_key.to_string(),
            Some(e) => e
                .eval(r)
                .map_err(|e| format!("partition_key: {e}"))?
                .ok_or("partition_key: the path selects nothing in this record")?,
        };
        let explicit = match &self.explicit {
            None => None,
            Some(e) => {
                let text = e
                    .eval(r)
                    .map_err(|e| format!("explicit_hash_key: {e}"))?
                    .ok_or("explicit_hash_key: the path selects nothing in this record")?;
                Some(parse_hash_key(&text)?)
            }
        };
        batch::check(r.data.len(), &key)?;
        let shard = map.route(&key, explicit);
        Ok(Entry {
            record: r.clone(),
            key,
            explicit,
            shard,
        })
    }

    /// With fences, a record must carry this replay's annotation: one without it would look like
    /// a live write after the fence to every consumer (docs/replay-protocol.md, Limits).
    pub(super) fn check_annotation(&self, r: &Record) -> Result<(), String> {
        let under = &self.config.under;
        let id = self.config.replay_id.as_deref().unwrap_or_default();
        match parse_marker(&r.data, under) {
            // The record's own id is payload content: not repeated.
            Ok(Marker::Replayed(m)) if m.replay.id != id => Err(format!(
                "the record is annotated for another replay than {id:?}, the one this sink writes"
            )),
            Ok(Marker::Replayed(m)) if Some(m.replay.mode) != self.config.mode => Err(format!(
                "the record's replay mode is {:?}, this sink's `mode` is {:?}",
                m.replay.mode,
                self.config.mode.unwrap_or(m.replay.mode)
            )),
            Ok(Marker::Replayed(_)) => Ok(()),
            Ok(Marker::Fence(_)) => {
                Err("the record is a fence of a replay; fences are not replayed".into())
            }
            Ok(Marker::Live) if !is_json_object(&r.data) => Err(format!(
                "the payload is not a JSON object, so it cannot carry `{under}.replay`; with fences = true every record must; binary records can be replayed only with fences = false"
            )),
            Ok(Marker::Live) => Err(format!(
                "the record has no `{under}.replay` annotation; with fences = true every record must carry it (put an `annotate` transform with `replay = {{ id = \"{id}\", mode = … }}` before this sink)"
            )),
            Err(e) => Err(format!("malformed replay annotation: {e}")),
        }
    }
}

fn is_json_object(data: &[u8]) -> bool {
    data.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok()
}
