//! Sources: where records enter a pipeline.

pub mod archive;
pub mod file;
pub mod kinesis;
pub mod kpl;
pub mod lines;
pub mod ordered;
pub mod read_ahead;
