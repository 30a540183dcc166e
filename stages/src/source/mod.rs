//! Sources: where records enter a pipeline.

pub mod archive;
pub mod file;
pub mod lines;
