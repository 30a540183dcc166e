use super::*;
use crate::store::local::LocalStore;

#[tokio::test]
async fn one_holder_at_a_time_and_lapsed_leases_are_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
    let orders = StreamName::parse("orders").unwrap();
    let a = Lease::acquire(&store, &orders, "run-a", "p", Duration::from_secs(60))
        .await
        .unwrap();
    let err = Lease::acquire(&store, &orders, "run-b", "p", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("being archived by run run-a"),
        "{err}"
    );
    a.release().await.unwrap();
    // A TTL long enough that a loaded machine's scheduling delays (CI shares 2 cores) cannot
    // make a renewal (every third of it) late by a whole TTL.
    let b = Lease::acquire(&store, &orders, "run-b", "p", Duration::from_millis(1500))
        .await
        .unwrap();
    // b renews in the background: it stays the holder past its first TTL.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(b.check().is_ok());
    assert!(
        Lease::acquire(&store, &orders, "run-c", "p", Duration::from_secs(60))
            .await
            .is_err()
    );
    // Someone overwrites the lease (as a run would after it lapsed): b notices and stops.
    store
        .put(&lease_key(&orders), Bytes::from_static(b"{}"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(b.check().is_err());
}

/// A lease that another run took over and then released (deleted) is lost too: the renewal's
/// `If-Match` on a missing object answers "not found", which means "not yours" as much as a
/// changed one does.
#[tokio::test]
async fn a_lease_deleted_by_another_run_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
    let orders = StreamName::parse("orders").unwrap();
    let a = Lease::acquire(&store, &orders, "run-a", "p", Duration::from_millis(1500))
        .await
        .unwrap();
    store.delete(&lease_key(&orders)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let err = a.check().unwrap_err().to_string();
    assert!(err.contains("taken by another run"), "{err}");
}

/// A lease left behind by a run that ended without reaching its end (a failed run, a
/// second Ctrl-C) is released by [`release_held_by`] (and [`release_held`], which releases
/// those of every run: not called here, as it would race with the other tests); one whose
/// renewal another run replaced is left alone.
#[tokio::test]
async fn leases_left_by_an_early_exit_are_released() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
    let (a, b) = (
        StreamName::parse("held-a").unwrap(),
        StreamName::parse("held-b").unwrap(),
    );
    let la = Lease::acquire(&store, &a, "run-1", "p", Duration::from_secs(60))
        .await
        .unwrap();
    let lb = Lease::acquire(&store, &b, "run-1", "p", Duration::from_secs(60))
        .await
        .unwrap();
    std::mem::forget(la);
    drop(lb);
    // Another run replaced b's lease: it is not ours any more.
    store
        .put(&lease_key(&b), Bytes::from_static(b"{\"other\":1}"))
        .await
        .unwrap();
    release_held_by("run-1").await;
    assert!(store.get_opt(&lease_key(&a)).await.unwrap().is_none());
    assert!(store.get_opt(&lease_key(&b)).await.unwrap().is_some());
}

/// A failed run releases its own leases, not those another run of the process holds.
#[tokio::test]
async fn a_run_releases_only_its_own_leases() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
    let (a, b) = (
        StreamName::parse("own-a").unwrap(),
        StreamName::parse("own-b").unwrap(),
    );
    let la = Lease::acquire(&store, &a, "run-own-1", "p", Duration::from_secs(60))
        .await
        .unwrap();
    let lb = Lease::acquire(&store, &b, "run-own-2", "p", Duration::from_secs(60))
        .await
        .unwrap();
    std::mem::forget(la);
    release_held_by("run-own-1").await;
    assert!(store.get_opt(&lease_key(&a)).await.unwrap().is_none());
    assert!(store.get_opt(&lease_key(&b)).await.unwrap().is_some());
    lb.release().await.unwrap();
}

#[tokio::test]
async fn a_manual_release_refuses_a_live_lease_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
    let s = StreamName::parse("manual").unwrap();
    assert_eq!(
        release_manually(&store, &s, false).await.unwrap(),
        ManualRelease::NotHeld
    );
    let live = Lease::acquire(&store, &s, "run-live", "p", Duration::from_secs(60))
        .await
        .unwrap();
    let err = release_manually(&store, &s, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("run-live") && err.contains("--force"), "{err}");
    assert!(matches!(
        release_manually(&store, &s, true).await.unwrap(),
        ManualRelease::Forced(_)
    ));
    // The holder notices at its next renewal; another run can take the stream at once.
    assert!(
        Lease::acquire(&store, &s, "run-next", "p", Duration::from_secs(60))
            .await
            .is_ok()
    );
    drop(live);
}
