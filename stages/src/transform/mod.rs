//! Transforms: stages between sources and sinks.

pub mod annotate;
pub mod compact;
pub mod filter;
pub mod window;
