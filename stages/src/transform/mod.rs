//! Transforms: stages between sources and sinks.

pub mod annotate;
pub mod filter;
pub mod window;
