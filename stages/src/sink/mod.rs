//! Sinks: where records leave a pipeline.

pub mod archive;
pub mod file;
pub mod kinesis;
