use super::*;

#[tokio::test]
async fn put_get_list_delete() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    store
        .put("a/b/c.json", Bytes::from_static(b"x"))
        .await
        .unwrap();
    store
        .put("a/d.json", Bytes::from_static(b"yy"))
        .await
        .unwrap();
    store.put("z.json", Bytes::from_static(b"z")).await.unwrap();
    assert_eq!(store.get("a/b/c.json").await.unwrap().as_ref(), b"x");
    let keys: Vec<_> = store
        .list("a/")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(keys, ["a/b/c.json", "a/d.json"]);
    assert_eq!(store.list("").await.unwrap().len(), 3);
    assert_eq!(store.list("a/b").await.unwrap().len(), 1);
    store.delete("a/d.json").await.unwrap();
    store.delete("a/d.json").await.unwrap();
    assert!(matches!(
        store.get("a/d.json").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.get_opt("nope").await.unwrap().is_none());
    assert!(store.get("../etc/passwd").await.is_err());
}

#[tokio::test]
async fn conditional_writes_compare_and_swap() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let t1 = store
        .put_if("cp.json", Bytes::from_static(b"1"), PutCondition::IfAbsent)
        .await
        .unwrap();
    assert!(matches!(
        store
            .put_if("cp.json", Bytes::from_static(b"x"), PutCondition::IfAbsent)
            .await,
        Err(StoreError::Conflict(_))
    ));
    let t2 = store
        .put_if(
            "cp.json",
            Bytes::from_static(b"2"),
            PutCondition::IfMatch(t1.clone()),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .put_if(
                "cp.json",
                Bytes::from_static(b"3"),
                PutCondition::IfMatch(t1)
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    let (body, tag) = store.get_with_etag("cp.json").await.unwrap();
    assert_eq!((body.as_ref(), tag), (&b"2"[..], t2));
    assert!(
        store
            .list("")
            .await
            .unwrap()
            .iter()
            .all(|m| !m.key.contains(".lock"))
    );
}

#[test]
fn a_held_lock_names_its_holder_and_is_released_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let lock = lock_path(dir.path(), "_flux/checkpoints/stream=o/s.json");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    let held = LockFile::acquire(&lock, "k", std::time::Duration::from_secs(1)).unwrap();
    // A second open file description (as another process would have) must wait, and
    // gives up naming the holder.
    let err = LockFile::acquire(&lock, "k", std::time::Duration::from_millis(50))
        .err()
        .unwrap();
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    drop(held);
    assert!(LockFile::acquire(&lock, "k", std::time::Duration::from_millis(50)).is_ok());
}

#[tokio::test]
async fn names_starting_with_a_dot_are_listed_and_lock_files_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    store
        .put_if(
            "cp/.hidden.json",
            Bytes::from_static(b"1"),
            PutCondition::IfAbsent,
        )
        .await
        .unwrap();
    store
        .put("cp/...json", Bytes::from_static(b"2"))
        .await
        .unwrap();
    let keys: Vec<_> = store
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(keys, ["cp/...json", "cp/.hidden.json"]);
    assert!(store.put("a/./b", Bytes::new()).await.is_err());
}
