//! Which objects and records a bounded read takes: objects chosen by their partition folders,
//! records then filtered exactly.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::SeqBounds;
use crate::archive::layout::{self, DataObject};
use crate::names::StreamName;
use crate::record::Record;
use crate::store::ObjectStore;

/// The bounds a record must fall in.
#[derive(Clone)]
pub(super) struct Bounds {
    pub(super) from: Option<DateTime<Utc>>,
    pub(super) to: Option<DateTime<Utc>>,
    pub(super) shards: Option<Vec<String>>,
    pub(super) sequences: Arc<std::collections::BTreeMap<String, SeqBounds>>,
}

impl Bounds {
    fn object_may_hold(&self, obj: &DataObject) -> bool {
        let hour_end = obj.hour + Duration::hours(1);
        let in_range = match (self.sequences.get(obj.shard_id.as_str()), &obj.range) {
            (Some((from, to)), Some((first, last))) => {
                from.as_ref().is_none_or(|f| last >= f) && to.as_ref().is_none_or(|t| first <= t)
            }
            _ => true,
        };
        in_range
            && self.from.is_none_or(|f| hour_end > f)
            && self.to.is_none_or(|t| obj.hour < t)
            && self
                .shards
                .as_ref()
                .is_none_or(|s| s.iter().any(|x| x == obj.shard_id.as_str()))
    }

    pub(super) fn holds(&self, r: &Record) -> bool {
        let in_range = self.sequences.is_empty()
            || self.sequences.get(&*r.shard_id).is_none_or(|(from, to)| {
                from.as_ref().is_none_or(|f| r.sequence_number >= *f)
                    && to.as_ref().is_none_or(|t| r.sequence_number <= *t)
            });
        in_range
            && self.from.is_none_or(|f| r.arrival_ts >= f)
            && self.to.is_none_or(|t| r.arrival_ts < t)
            && self
                .shards
                .as_ref()
                .is_none_or(|s| s.iter().any(|x| **x == *r.shard_id))
    }
}

/// Lists the data objects of `stream` that may hold records within the bounds, in read order.
pub(super) async fn plan_objects(
    store: &Arc<dyn ObjectStore>,
    stream: &StreamName,
    bounds: &Bounds,
) -> anyhow::Result<(Vec<DataObject>, usize, ObjectSizes)> {
    let listed = store.list(&layout::stream_prefix(stream)).await?;
    let sizes: ObjectSizes = Arc::new(listed.iter().map(|m| (m.key.clone(), m.size)).collect());
    let all: Vec<DataObject> = listed
        .iter()
        .filter_map(|m| layout::parse_data_key(stream, &m.key))
        .collect();
    let total = all.len();
    let mut chosen: Vec<DataObject> = all
        .into_iter()
        .filter(|o| bounds.object_may_hold(o))
        .collect();
    chosen.sort_by(|a, b| {
        (a.hour, &a.shard_id, a.range.as_ref().map(|r| &r.0))
            .cmp(&(b.hour, &b.shard_id, b.range.as_ref().map(|r| &r.0)))
            .then_with(|| a.key.cmp(&b.key))
    });
    Ok((chosen, total, sizes))
}

/// The stored size of each listed object, by key.
pub(super) type ObjectSizes = Arc<std::collections::HashMap<String, u64>>;
