//! flux-engine's integration tests, as one test binary: the real `flux-engine` binary (built by
//! cargo for this test target, `CARGO_BIN_EXE_flux-engine`) run as a user runs it, against
//! fixtures, goldens and the emulators that `tests/emulators.sh` starts (`tests/run.sh` does);
//! and the embeddable runtime in process. One module per area; shared helpers in [`support`].

mod support;

mod archive_local;
mod arrival_time;
mod backpressure;
mod clean_exit;
mod cli;
mod cluster;
mod compact;
mod ddl_cli;
mod ddl_drill_apply;
mod ddl_duckdb;
mod ddl_golden;
mod ddl_kinesis;
mod golden;
mod kinesis_archive;
mod kinesis_replay;
mod kinesis_workers;
mod packaging;
mod serve;
mod serve_browser;
mod sql_docs;
mod status;
