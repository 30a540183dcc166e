use super::*;

#[test]
fn sink_line_shows_share_rate_retries_and_eta_once_known() {
    let mut p = Figures {
        records: 1200,
        bytes: Some(3 * 1024 * 1024),
        ..Default::default()
    };
    assert_eq!(sink_line(&p), "1200 records written, 3.0 MiB");
    p.rate = Some(400.0);
    p.throttled = 3;
    p.retried = 5;
    assert_eq!(
        sink_line(&p),
        "1200 records written, 3.0 MiB, 400 records/s, 3 throttled, 5 retried"
    );
    p.expected = Some(5000);
    assert_eq!(
        sink_line(&p),
        "1200 of 5000 records written (24 %), 3.0 MiB, 400 records/s, 3 throttled, 5 retried, ETA 10s"
    );
    p.bytes = None;
    assert_eq!(
        sink_line(&p),
        "1200 of 5000 records written (24 %), 400 records/s, 3 throttled, 5 retried, ETA 10s"
    );
    p.records = 5000;
    assert!(!sink_line(&p).contains("ETA"), "{}", sink_line(&p));
}

#[test]
fn a_source_line_shows_the_lag_when_known() {
    let stage = |behind_ms| StageSnapshot {
        id: "s".into(),
        role: Role::Source,
        kind: "kinesis".into(),
        counters: crate::runtime::Counters {
            records_out: 2000,
            bytes_out: 2048,
            ..Default::default()
        },
        counts_delivered: false,
        behind_ms,
        expected_in: None,
        checkpoint_age_ms: None,
        finished: false,
        objects: None,
    };
    let line = |behind_ms| source_line(&source_figures(&stage(behind_ms), Duration::from_secs(5)));
    assert_eq!(line(None), "2000 records, 2.0 KiB, 400 records/s");
    assert_eq!(
        line(Some(0)),
        "2000 records, 2.0 KiB, 400 records/s, at the tip"
    );
    assert_eq!(
        line(Some(3250)),
        "2000 records, 2.0 KiB, 400 records/s, 3.2 s behind the tip"
    );
    assert_eq!(
        line(Some(3_725_000)),
        "2000 records, 2.0 KiB, 400 records/s, 1h02m behind the tip"
    );
    // A finished source says so instead of a rate that would only decay.
    let mut done = stage(None);
    done.finished = true;
    let f = source_figures(&done, Duration::from_secs(5));
    assert_eq!(f.rate, None);
    assert_eq!(source_line(&f), "2000 records, 2.0 KiB, done");
    let f = source_figures(&stage(Some(3250)), Duration::from_secs(5));
    assert_eq!(
        (f.records, f.bytes, f.rate, f.behind_ms),
        (2000, Some(2048), Some(400.0), Some(3250))
    );
}

#[test]
fn eta_is_rounded_up_and_readable() {
    assert_eq!(eta(0.2), "1s");
    assert_eq!(eta(59.0), "59s");
    assert_eq!(eta(185.0), "3m05s");
    assert_eq!(eta(3725.0), "1h02m");
}
