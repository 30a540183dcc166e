//! The end-of-run table a person reads: one row per stage, then what each sink reported.

use std::fmt::Write;

use super::RunSummary;

/// Bytes with a binary unit, e.g. `12.3 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The end-of-run table: records in/out, bytes, dead letters and seconds per stage, then what
/// each sink reported.
pub fn summary(report: &RunSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:<20} {:<9} {:>12} {:>12} {:>11} {:>11} {:>8} {:>10} {:>8}",
        "role",
        "stage",
        "type",
        "records in",
        "records out",
        "bytes in",
        "bytes out",
        "dead",
        "skipped",
        "seconds"
    );
    for s in &report.stages {
        let _ = writeln!(
            out,
            "{:<10} {:<20} {:<9} {:>12} {:>12} {:>11} {:>11} {:>8} {:>10} {:>8.2}",
            s.role.noun(),
            s.id,
            s.kind,
            s.counters.records_in,
            s.counters.records_out,
            human_bytes(s.counters.bytes_in),
            human_bytes(s.counters.bytes_out),
            s.counters.dead_lettered,
            s.counters.skipped,
            s.seconds
        );
    }
    for s in &report.stages {
        for l in &s.report {
            let _ = writeln!(out, "{}: {l}", s.id);
        }
    }
    let _ = writeln!(out, "total {:.2}s", report.seconds);
    out
}
