//! Sinks: where records leave a pipeline.

pub mod archive;
pub mod ddl;
pub mod file;
pub mod kinesis;
