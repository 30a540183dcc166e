use super::reader::Alive;
use super::resume::retention_warning;
use super::*;

#[test]
fn the_lag_is_known_only_once_every_shard_being_read_reported() {
    let mut behind = std::collections::HashMap::new();
    behind.insert("shard-0".to_owned(), 0);
    assert_eq!(lag_behind_tip(&behind, 2), None, "shard-1 has not reported");
    behind.insert("shard-1".to_owned(), 1500);
    assert_eq!(lag_behind_tip(&behind, 2), Some(1500));
    behind.insert("shard-1".to_owned(), 0);
    assert_eq!(lag_behind_tip(&behind, 2), Some(0));
}

#[test]
fn warns_only_past_retention_minus_a_quarter() {
    let day = chrono::Duration::hours(24);
    assert_eq!(
        retention_warning("s", chrono::Duration::hours(17), day),
        None
    );
    assert_eq!(
        retention_warning("s", chrono::Duration::hours(18), day),
        None
    );
    let w = retention_warning("orders", chrono::Duration::hours(19), day).expect("warning");
    assert!(w.contains("stream orders was last advanced 19h ago"), "{w}");
    assert!(w.contains("keeps records for 24h"), "{w}");
    assert!(w.contains("at least every 18h"), "{w}");
}

/// A reader aborted at the end of the run (as `run` aborts those still waiting) still
/// counts its life, so the waiting share is at most 100 %.
#[tokio::test]
async fn an_aborted_reader_counts_its_time_alive() {
    let timing = Arc::new(Timing::default());
    let t = timing.clone();
    let task = tokio::spawn(async move {
        let _alive = Alive::new(t.clone());
        let called = Instant::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
        Timing::add(&t.in_calls, called.elapsed());
        std::future::pending::<()>().await;
    });
    while timing.in_calls.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    task.abort();
    let _ = task.await;
    assert!(Timing::secs(&timing.alive) >= Timing::secs(&timing.in_calls));
}
