//! The replay protocol (DESIGN §5): how replayed records and live records settle to one state in
//! every cooperating consumer. docs/replay-protocol.md states it for consumers in any language;
//! this module is the reference implementation.
//!
//! - [`wire`]: the formats: fences ([`Fence::payload`]), the replay annotation ([`Replayed`]) and
//!   [`parse_marker`], which recognises either in a payload.
//! - [`version`]: [`Version`] and [`Lineage::compare`], what "newer" means across shards.
//! - [`reconciler`]: [`Reconciler`], which stamps each record, and the rule that applies a record
//!   when its [`Stamp`] outranks the stored one.
//!
//! A consumer that keeps the newest status per order:
//!
//! ```
//! use std::collections::HashMap;
//! use flux_stages::record::{SequenceNumber, ts_from_millis};
//! use flux_stages::replay::{Fence, Observed, Reconciler, ReplayMode, Stamp, DEFAULT_KEY};
//!
//! let mut reconciler = Reconciler::new("orders");
//! reconciler.add_shard("shardId-000000000000", &[]);
//! let mut state: HashMap<String, (Stamp, serde_json::Value)> = HashMap::new();
//!
//! let fence = Fence::open("INC-7", ReplayMode::Overwrite, ts_from_millis(2_000));
//! let shard = [
//!     (1, br#"{"order_id":"o-1","status":"paid"}"#.to_vec()),
//!     (2, fence.payload(DEFAULT_KEY)),
//!     (3, br#"{"order_id":"o-1","status":"shipped"}"#.to_vec()),
//! ];
//! for (n, data) in shard {
//!     let seq = SequenceNumber::from_u64(n);
//!     match reconciler.observe("shardId-000000000000", &seq, ts_from_millis(1_000 * n as i64), &data)? {
//!         Observed::Fence(_) => {}
//!         Observed::Record(stamp) => {
//!             let value: serde_json::Value = serde_json::from_slice(&data)?;
//!             let key = value["order_id"].as_str().unwrap_or_default().to_owned();
//!             if reconciler.should_apply(&stamp, state.get(&key).map(|(s, _)| s)) {
//!                 state.insert(key, (stamp, value));
//!             }
//!         }
//!     }
//! }
//! assert_eq!(state["o-1"].1["status"], "shipped");
//! assert_eq!(state["o-1"].0.epoch, 1); // arrived after the fence of INC-7
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod reconciler;
pub mod version;
pub mod wire;

pub use reconciler::{Observed, Reconciler, Stamp};
pub use version::{Lineage, Version};
pub use wire::{
    DEFAULT_KEY, Fence, FenceCounts, FencePhase, Marker, MarkerError, ReplayMode, ReplayTag,
    Replayed, marker_of_member, parse_marker,
};
