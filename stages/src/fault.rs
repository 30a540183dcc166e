//! Crash points for tests (like failpoints): with `FLUX_FAULT=<point>:<n>` in the environment the
//! process aborts — no destructors, no flushing, as if killed — the n-th time it reaches
//! `<point>`. Without the variable, [`hit`] costs one relaxed load. The points are named where
//! they are placed (`before_object`, `mid_multipart`, `after_object`, `after_checkpoint`,
//! `before_manifest`); tests use them to prove that a rerun after a crash at any of them leaves
//! every record archived exactly once.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

static PLAN: OnceLock<Option<(String, u64)>> = OnceLock::new();
static SEEN: AtomicU64 = AtomicU64::new(0);

/// Marks a crash point.
pub fn hit(point: &str) {
    let plan = PLAN.get_or_init(|| {
        let spec = std::env::var("FLUX_FAULT").ok()?;
        let (name, n) = spec.split_once(':')?;
        Some((name.to_owned(), n.parse().ok()?))
    });
    if let Some((name, n)) = plan
        && name == point
        && SEEN.fetch_add(1, Ordering::SeqCst) + 1 == *n
    {
        eprintln!("FLUX_FAULT: crashing at {point} #{n}");
        std::process::abort();
    }
}
