//! flux-engine: declarative pipelines over AWS Kinesis and its S3 archive.
//!
//! A pipeline file is loaded ([`config`]), compiled into a checked DAG ([`compile`]) and run on
//! tokio with bounded channels ([`runtime`]); [`cli`] is the command line around them.

// `print!`/`eprint!` panic when the reader of the pipe has gone away (`| head`); the commands
// print through `cli::output`.
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

pub mod cli;
pub mod cluster;
pub mod compile;
pub mod config;
pub mod diagnostic;
pub mod metrics;
pub mod runtime;
pub mod serve;
