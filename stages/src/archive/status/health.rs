//! What needs action: the rules that turn a stream's state into [`Problem`]s (and
//! `flux-engine status` into exit code 1). Problems found while reading (corrupt objects) and
//! by the Kinesis probe (gaps about to be found, records about to expire, a missing stream) are
//! already in the list; this adds the ones the archive's state shows.

use super::{LeaseState, Problem, StreamStatus};

/// Adds the archive's problems to `status` and sets `healthy`.
pub fn judge(status: &mut StreamStatus) {
    let mut found = Vec::new();
    for gap in status.gaps.iter().filter(|g| !g.acknowledged) {
        found.push(Problem {
            kind: "gap",
            shard_id: Some(gap.shard_id.clone()),
            message: format!(
                "records of shard {} after {} expired before they were archived (found {}; oldest then available {}); \
                 the archive cannot hold them. Once dealt with, --ack-gaps-until {} stops this report",
                gap.shard_id, gap.checkpoint, gap.found_at, gap.oldest_available, gap.found_at
            ),
        });
    }
    if status.lease.state == LeaseState::Lapsed {
        found.push(Problem {
            kind: "lease_lapsed",
            shard_id: None,
            message: format!(
                "the lease of run {} (pipeline {}) expired at {} without being released: that run was killed or lost. \
                 The next run takes it over; `flux-engine lease release <archive> --stream {}` clears it now",
                status.lease.run_id.as_deref().unwrap_or("?"),
                status.lease.pipeline.as_deref().unwrap_or("?"),
                status.lease.expires_at.as_deref().unwrap_or("?"),
                status.stream
            ),
        });
    }
    if !status.orphans.is_empty() {
        found.push(Problem {
            kind: "orphans",
            shard_id: None,
            message: format!(
                "{} data object(s) lie past their shard's checkpoint or belong to a shard without one (first: {}); \
                 the next archival run deletes them and archives their records again from its input — \
                 if the input no longer holds them (a deleted or restored checkpoint), restore the checkpoint first",
                status.orphans.len(),
                status.orphans[0]
            ),
        });
    }
    status.problems.extend(found);
    status.healthy = status.problems.is_empty();
}

#[cfg(test)]
mod tests {
    use super::super::*;

    fn empty() -> StreamStatus {
        StreamStatus {
            stream: "orders".into(),
            healthy: true,
            lease: LeaseStatus {
                state: LeaseState::None,
                run_id: None,
                pipeline: None,
                expires_at: None,
                expires_in_seconds: None,
            },
            workers: vec![],
            shards: vec![],
            runs: vec![],
            runs_total: 0,
            gaps: vec![],
            staged: vec![],
            orphans: vec![],
            temporary: vec![],
            kinesis: None,
            problems: vec![],
        }
    }

    #[test]
    fn gaps_lapsed_leases_and_orphans_need_action_acknowledged_gaps_and_held_leases_do_not() {
        let mut s = empty();
        super::judge(&mut s);
        assert!(s.healthy);

        let gap = |ack| GapStatus {
            key: "k".into(),
            shard_id: "s-1".into(),
            checkpoint: "5".into(),
            oldest_available: "9".into(),
            found_at: "2026-01-01T00:00:00.000Z".into(),
            acknowledged: ack,
        };
        let mut s = empty();
        s.gaps = vec![gap(true)];
        s.lease.state = LeaseState::Held;
        super::judge(&mut s);
        assert!(s.healthy, "{:?}", s.problems);

        let mut s = empty();
        s.gaps = vec![gap(false)];
        s.lease.state = LeaseState::Lapsed;
        s.orphans = vec!["stream=orders/x".into()];
        super::judge(&mut s);
        let kinds: Vec<_> = s.problems.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, ["gap", "lease_lapsed", "orphans"]);
        assert!(!s.healthy);
        assert!(s.problems[1].message.contains("lease release"));
    }
}
