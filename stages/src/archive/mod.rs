//! The archive layout (DESIGN §4): data objects in `stream=/dt=/hour=/shard=` folders, per-shard
//! checkpoints and run manifests under `_flux/`, all in the object store beside the data.

pub mod layout;
pub mod lease;
pub mod state;
pub mod status;
pub mod workers;
