//! The people's view of a status report: per stream a headline, the lease, a table of shards,
//! the last runs, and what needs action.

use flux_stages::archive::status::{ArchiveStatus, LeaseState, StreamStatus};

/// `3d 4h`, `5h 2m`, `4m 10s`, `12s`; negative spans as `-…`.
pub(crate) fn span(seconds: i64) -> String {
    let sign = if seconds < 0 { "-" } else { "" };
    let s = seconds.unsigned_abs();
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let text = if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {sec}s")
    } else {
        format!("{sec}s")
    };
    format!("{sign}{text}")
}

/// Left-aligned columns, two spaces apart.
fn table(rows: &[Vec<String>]) -> Vec<String> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .map(|(i, cell)| format!("{cell:<w$}", w = widths[i]))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        })
        .collect()
}

fn lease_line(s: &StreamStatus) -> String {
    let l = &s.lease;
    let who = format!(
        "run {} (pipeline {})",
        l.run_id.as_deref().unwrap_or("?"),
        l.pipeline.as_deref().unwrap_or("?")
    );
    let when = l.expires_at.as_deref().unwrap_or("?");
    let left = l.expires_in_seconds.map(span).unwrap_or_default();
    match l.state {
        LeaseState::None => "none (no run is archiving this stream)".into(),
        LeaseState::Held => format!("held by {who} until {when} (in {left})"),
        LeaseState::Released => format!("released by hand (last held by {who})"),
        LeaseState::Lapsed => format!("LAPSED: {who} expired at {when} without releasing it"),
    }
}

/// The shared workers (`workers = "shared"`): how many are live and what each holds.
fn workers_line(s: &StreamStatus) -> String {
    let live = s.workers.iter().filter(|w| w.live).count();
    let each: Vec<String> = s
        .workers
        .iter()
        .map(|w| {
            format!(
                "{}{} {} shard{}",
                w.worker,
                if w.live { "" } else { " (lapsed)" },
                w.shards.len(),
                if w.shards.len() == 1 { "" } else { "s" }
            )
        })
        .collect();
    format!("{live} live, sharing the shards: {}", each.join(", "))
}

fn shard_rows(s: &StreamStatus) -> Vec<Vec<String>> {
    let live = s.kinesis.is_some();
    let mut header: Vec<String> = ["shard", "checkpoint", "arrived", "age", "objects", "closed"]
        .map(String::from)
        .to_vec();
    if live {
        header.extend(["behind", "expires in"].map(String::from));
    }
    let mut rows = vec![header];
    for sh in &s.shards {
        let (seq, arrived, age) = match &sh.checkpoint {
            Some(c) => {
                let mut seq = c.sequence_number.clone();
                if seq.len() > 24 {
                    seq = format!("…{}", &seq[seq.len() - 20..]);
                }
                (seq, c.arrival_ts.clone(), span(c.age_seconds))
            }
            None => ("-".into(), "-".into(), "-".into()),
        };
        let closed = match (sh.closed, &sh.kinesis) {
            (Some(true), Some(k)) if !k.in_stream => "gone".into(),
            (Some(true), Some(k)) if k.fully_archived => "yes, done".into(),
            (Some(true), _) => "yes".into(),
            (Some(false), _) => "no".into(),
            (None, _) => "-".into(),
        };
        let mut row = vec![
            sh.shard_id.clone(),
            seq,
            arrived,
            age,
            sh.objects.to_string(),
            closed,
        ];
        if live {
            let k = sh.kinesis.as_ref();
            row.push(
                k.and_then(|k| k.behind_ms)
                    .map(|ms| {
                        if ms < 1000 {
                            format!("{ms}ms")
                        } else {
                            span(ms / 1000)
                        }
                    })
                    .unwrap_or_else(|| "-".into()),
            );
            row.push(
                k.and_then(|k| k.expires_in_seconds)
                    .map(span)
                    .unwrap_or_else(|| "-".into()),
            );
        }
        rows.push(row);
    }
    rows
}

/// Prints the report.
pub(crate) fn print(report: &ArchiveStatus) {
    outln!(
        "archive {} (checked {}): {}",
        report.archive,
        report.checked_at,
        if report.healthy { "OK" } else { "NEEDS ACTION" }
    );
    for s in &report.streams {
        outln!("");
        outln!(
            "stream {}: {}",
            s.stream,
            if s.healthy { "OK" } else { "NEEDS ACTION" }
        );
        outln!("  lease: {}", lease_line(s));
        if !s.workers.is_empty() {
            outln!("  workers: {}", workers_line(s));
        }
        if let Some(k) = &s.kinesis {
            outln!(
                "  kinesis: {} open and {} closed shards, retention {}h, expiry margin {}",
                k.open_shards,
                k.closed_shards,
                k.retention_hours,
                span(k.expiry_margin_seconds)
            );
        }
        for line in table(&shard_rows(s)) {
            outln!("  {line}");
        }
        if s.runs.is_empty() {
            outln!("  runs: none recorded");
        } else {
            outln!(
                "  runs ({} of {}, newest first):",
                s.runs.len(),
                s.runs_total
            );
            let rows: Vec<Vec<String>> = s
                .runs
                .iter()
                .map(|r| {
                    vec![
                        r.run_id.clone(),
                        format!("finished {}", r.finished_at),
                        r.status.clone(),
                        format!("{} records", r.records),
                        format!("{} skipped", r.skipped_already_archived),
                        format!("{} objects", r.objects),
                    ]
                })
                .collect();
            for line in table(&rows) {
                outln!("    {line}");
            }
        }
        let staged = |state: &str| s.staged.iter().filter(|x| x.state == state).count();
        outln!(
            "  gaps: {}; staged: {} awaiting promotion, {} pending, {} dead; orphans: {}; temporary: {}",
            s.gaps.len(),
            staged("awaiting_promotion"),
            staged("pending"),
            staged("dead"),
            s.orphans.len(),
            s.temporary.len()
        );
        for g in &s.gaps {
            outln!(
                "    gap {}: after {} (found {}{})",
                g.shard_id,
                g.checkpoint,
                g.found_at,
                if g.acknowledged { ", acknowledged" } else { "" }
            );
        }
        for t in &s.temporary {
            outln!(
                "    temporary {} ({} bytes, since {})",
                t.key,
                t.bytes,
                t.since.as_deref().unwrap_or("?")
            );
        }
        for p in &s.problems {
            outln!("  ! {}: {}", p.kind, p.message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_like_people_write_them() {
        assert_eq!(span(12), "12s");
        assert_eq!(span(250), "4m 10s");
        assert_eq!(span(5 * 3600 + 120), "5h 2m");
        assert_eq!(span(3 * 86_400 + 4 * 3600 + 59), "3d 4h");
        assert_eq!(span(-90), "-1m 30s");
    }

    #[test]
    fn columns_line_up() {
        let rows = vec![
            vec!["a".to_owned(), "long".to_owned()],
            vec!["longer".to_owned(), "b".to_owned()],
        ];
        assert_eq!(table(&rows), ["a       long", "longer  b"]);
    }
}
