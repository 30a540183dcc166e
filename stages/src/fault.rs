//! Crash points for tests (like failpoints): with `FLUX_FAULT=<point>:<n>` in the environment the
//! process aborts — no destructors, no flushing, as if killed — the n-th time it reaches
//! `<point>`. Without the variable, [`hit`] costs one relaxed load. The points are named where
//! they are placed (`before_object`, `mid_multipart`, `after_object`, `after_checkpoint`,
//! `after_promote`, `before_manifest`); tests use them to prove that a rerun after a crash at any
//! of them leaves every record archived exactly once.
//!
//! With `FLUX_FAULT=<point>:<n>:stop` the process stops itself instead (SIGSTOP, as a long GC
//! pause, a frozen VM or a stopped container would), and goes on where it was when a test sends
//! SIGCONT: the pause-safety tests use it to play a writer that lost its lease without knowing.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

static PLAN: OnceLock<Option<(String, u64, bool)>> = OnceLock::new();
static SEEN: AtomicU64 = AtomicU64::new(0);

/// Marks a crash point.
pub fn hit(point: &str) {
    let plan = PLAN.get_or_init(|| {
        let spec = std::env::var("FLUX_FAULT").ok()?;
        let mut parts = spec.split(':');
        let name = parts.next()?;
        let n = parts.next()?.parse().ok()?;
        let stop = parts.next() == Some("stop");
        Some((name.to_owned(), n, stop))
    });
    if let Some((name, n, stop)) = plan
        && name == point
        && SEEN.fetch_add(1, Ordering::SeqCst) + 1 == *n
    {
        if *stop {
            note(format_args!("FLUX_FAULT: stopping at {point} #{n}"));
            // `kill` of procps: the crate forbids `unsafe`, and this is for tests only.
            let _ = std::process::Command::new("kill")
                .args(["-STOP", &std::process::id().to_string()])
                .status();
            // The stop reaches every thread at its next entry into the kernel: sleep, so that
            // this one cannot run ahead (into the next step of the write path) before it does;
            // the sleep's rest passes after SIGCONT.
            std::thread::sleep(std::time::Duration::from_millis(300));
            note(format_args!("FLUX_FAULT: continued at {point} #{n}"));
            return;
        }
        note(format_args!("FLUX_FAULT: crashing at {point} #{n}"));
        std::process::abort();
    }
}

/// A line on standard error (never a panic when it is closed).
fn note(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{args}");
}
