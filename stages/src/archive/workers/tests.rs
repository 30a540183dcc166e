use super::*;
use crate::archive::lease::Lease;
use crate::archive::state::{Checkpoint, write_checkpoint};
use crate::store::local::LocalStore;

fn local() -> (tempfile::TempDir, Arc<dyn ObjectStore>, StreamName) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
    (dir, store, StreamName::parse("orders").unwrap())
}

/// Every worker the tests name, as if all were live.
fn live() -> BTreeSet<String> {
    ["run-a", "run-b", "run-ends"].map(String::from).into()
}

fn shard(i: u32) -> String {
    format!("shardId-{i:012}")
}

fn views(ids: &[(&str, &[&str])]) -> Vec<ShardView> {
    ids.iter()
        .map(|(id, parents)| ShardView {
            id: (*id).to_owned(),
            parents: parents.iter().map(|p| (*p).to_owned()).collect(),
        })
        .collect()
}

#[tokio::test]
async fn a_shard_has_one_holder_a_lapsed_one_is_taken_over_and_its_holder_learns_it_lost_it() {
    let (_dir, store, orders) = local();
    let ttl = Duration::from_secs(60);
    let mut a = Workers::join(store.clone(), orders.clone(), "run-a", "p", ttl)
        .await
        .unwrap();
    let mut b = Workers::join(store.clone(), orders.clone(), "run-b", "p", ttl)
        .await
        .unwrap();
    assert!(a.take(&shard(0), &live()).await.unwrap());
    assert!(!b.take(&shard(0), &live()).await.unwrap(), "held by a");
    // A look older than a's joining does not make a's lease look lapsed: a's heartbeat is
    // read before its lease is taken over.
    assert!(
        !b.take(&shard(0), &live_of(&["run-b"])).await.unwrap(),
        "held by a, which b's look had not seen yet"
    );
    assert!(b.take(&shard(1), &live()).await.unwrap());
    // The others learn the leases from the heartbeats.
    a.heartbeat().await.unwrap();
    b.heartbeat().await.unwrap();
    let both = views(&[(&shard(0), &[]), (&shard(1), &[])]);
    let closed: Vec<String> = Vec::new();
    let look = a.look(both.clone(), &closed).await.unwrap();
    assert_eq!(look.workers, live_of(&["run-a", "run-b"]));
    assert_eq!(holder(&look, 0), Some("run-a"));
    assert_eq!(holder(&look, 1), Some("run-b"));
    assert!(a.lost(&look).is_empty());

    // a's heartbeat lapses (written by hand with a past expiry, as a paused a would leave it):
    // its leases are free, and a learns at its next look that it lost what b took.
    let beat = format!("{}run-a.json", worker_prefix(&orders));
    let lapsed = Holder {
        worker: "run-a".into(),
        pipeline: "p".into(),
        expires_at: format_ts(&(Utc::now() - chrono::Duration::seconds(1))),
        shards: vec![shard(0)],
    };
    store
        .put(&beat, Bytes::from(serde_json::to_vec(&lapsed).unwrap()))
        .await
        .unwrap();
    let look = b.look(both.clone(), &closed).await.unwrap();
    assert_eq!(look.workers, live_of(&["run-b"]));
    assert_eq!(
        holder(&look, 0),
        None,
        "a's lease lapsed with its heartbeat"
    );
    assert!(
        b.take(&shard(0), &look.workers).await.unwrap(),
        "a lapsed lease is free"
    );
    b.heartbeat().await.unwrap();
    // a goes on: its heartbeat is live again, but b's claims shard 0 too, and the lease
    // names b.
    a.heartbeat().await.unwrap();
    let look = a.look(both.clone(), &closed).await.unwrap();
    assert_eq!(holder(&look, 0), Some("run-b"));
    assert_eq!(a.lost(&look), [shard(0)]);
    assert!(!a.holds(&shard(0)));
    // a's release of what it lost leaves b's lease alone.
    a.release(&shard(0)).await.unwrap();
    a.heartbeat().await.unwrap();
    let look = a.look(both.clone(), &closed).await.unwrap();
    assert_eq!(holder(&look, 0), Some("run-b"));
    b.release(&shard(0)).await.unwrap();
    b.heartbeat().await.unwrap();
    let look = a.look(both, &closed).await.unwrap();
    assert_eq!(holder(&look, 0), None);
}

fn live_of(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

fn holder(look: &Look, i: u32) -> Option<&str> {
    look.leases.get(&shard(i)).map(String::as_str)
}

#[tokio::test]
async fn shared_workers_and_a_single_worker_run_refuse_each_other() {
    let (_dir, store, orders) = local();
    let lease = Lease::acquire(&store, &orders, "run-single", "p", Duration::from_secs(60))
        .await
        .unwrap();
    let err = Workers::join(
        store.clone(),
        orders.clone(),
        "run-a",
        "p",
        Duration::from_secs(60),
    )
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("workers = \"single\""), "{err}");
    assert!(err.contains("run-single"), "{err}");
    lease.release().await.unwrap();
    Workers::join(
        store.clone(),
        orders.clone(),
        "run-a",
        "p",
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let live = live_workers(&store, &orders).await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].worker, "run-a");
}

#[tokio::test]
async fn a_closed_shard_is_done_once_its_checkpoint_reaches_its_last_record() {
    let (_dir, store, orders) = local();
    let mut w = Workers::join(
        store.clone(),
        orders.clone(),
        "run-a",
        "p",
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let (parent, child, empty) = (shard(0), shard(1), shard(2));
    let shards = views(&[(&parent, &[]), (&empty, &[]), (&child, &[&parent])]);
    let closed = vec![parent.clone(), empty.clone()];
    let last = SequenceNumber::parse("500").unwrap();
    w.record_end(&parent, Some(&last)).await.unwrap();
    w.record_end(&empty, None).await.unwrap();
    let look = w.look(shards.clone(), &closed).await.unwrap();
    assert_eq!(
        look.done,
        [empty.clone()].into(),
        "the parent's end is not archived yet"
    );
    let ids = |l: &Look| {
        plan::readable(l)
            .iter()
            .map(|s| s.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&look), std::slice::from_ref(&parent));
    let cp = |seq: &str| Checkpoint {
        stream: "orders".into(),
        shard_id: parent.clone(),
        sequence_number: seq.into(),
        arrival_ts: "2026-12-01T00:00:00.000Z".into(),
        object: "x".into(),
        staged: None,
        run_id: "run-a".into(),
        updated_at: "2026-12-01T00:00:00.000Z".into(),
    };
    let id = ShardId::parse(&parent).unwrap();
    let etag = write_checkpoint(&store, &orders, &id, &cp("499"), None)
        .await
        .unwrap();
    assert!(!w.archived_to(&parent, Some(&last)).await.unwrap());
    assert!(w.look(shards.clone(), &closed).await.unwrap().done.len() == 1);
    write_checkpoint(&store, &orders, &id, &cp("500"), Some(&etag))
        .await
        .unwrap();
    assert!(w.archived_to(&parent, Some(&last)).await.unwrap());
    let look = w.look(shards, &closed).await.unwrap();
    assert_eq!(look.done, [parent, empty].into());
    assert_eq!(ids(&look), [child]);
}

#[tokio::test]
async fn a_run_that_ends_without_releasing_gives_its_leases_and_heartbeat_back() {
    let (_dir, store, orders) = local();
    let mut w = Workers::join(
        store.clone(),
        orders.clone(),
        "run-ends",
        "p",
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert!(w.take(&shard(3), &live()).await.unwrap());
    w.heartbeat().await.unwrap();
    crate::archive::lease::release_held_by("run-ends").await;
    assert!(live_workers(&store, &orders).await.unwrap().is_empty());
    assert!(
        store
            .list(&shard_lease_prefix(&orders))
            .await
            .unwrap()
            .is_empty()
    );
}
