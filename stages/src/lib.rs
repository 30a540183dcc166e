//! flux-stages: the record, the stage contracts, and every stage kind of flux-engine.
//!
//! The engine (crate `flux-engine`) reads pipeline files, compiles them into a DAG and runs it;
//! everything a stage does lives here, one file per stage kind, reached through [`registry`].

// `print!`/`eprint!` panic when the reader of the pipe has gone away (`| head`); stages report
// through tracing or their errors.
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

pub mod archive;
pub mod aws;
pub mod channel;
pub mod expr;
pub mod expr_regex;
pub mod fault;
pub mod gzip;
pub mod json;
pub mod local_path;
pub mod names;
pub mod problems;
pub mod record;
pub mod registry;
pub mod replay;
pub mod sink;
pub mod source;
pub mod sql;
pub mod stage;
pub mod store;
pub mod transform;
pub mod units;
