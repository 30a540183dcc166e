use super::*;
use proptest::prelude::*;

fn shards(n: usize) -> Vec<ShardView> {
    (0..n)
        .map(|i| ShardView {
            id: format!("shardId-{i:012}"),
            parents: Vec::new(),
        })
        .collect()
}

/// Every worker in turn looks, gives up (at once, as if its records were archived) and takes
/// (winning only free shards), until a whole round changes nothing; returns the rounds used.
fn settle(look: &mut Look, workers: &[&str]) -> usize {
    for round in 1..=50 {
        let mut changed = false;
        for me in workers {
            let p = plan(me, look, &BTreeSet::new());
            for s in &p.release {
                assert_eq!(
                    look.leases.remove(s).as_deref(),
                    Some(*me),
                    "{me} released {s}"
                );
                changed = true;
            }
            for s in &p.take {
                if !look.leases.contains_key(s) {
                    look.leases.insert(s.clone(), (*me).to_owned());
                    changed = true;
                }
            }
        }
        if !changed {
            return round;
        }
    }
    panic!("no settled state after 50 rounds: {:?}", look.leases);
}

fn counts(look: &Look) -> BTreeMap<String, usize> {
    let mut c: BTreeMap<String, usize> = look.workers.iter().map(|w| (w.clone(), 0)).collect();
    for w in look.leases.values() {
        *c.entry(w.clone()).or_default() += 1;
    }
    c
}

fn with_workers(look: &mut Look, ws: &[&str]) {
    look.workers = ws.iter().map(|w| (*w).to_owned()).collect();
}

#[test]
fn twelve_shards_on_three_workers_settle_as_four_each_and_a_fourth_gets_three() {
    let mut look = Look {
        shards: shards(12),
        ..Look::default()
    };
    with_workers(&mut look, &["a", "b", "c"]);
    settle(&mut look, &["a", "b", "c"]);
    assert_eq!(
        counts(&look).values().copied().collect::<Vec<_>>(),
        [4, 4, 4]
    );
    with_workers(&mut look, &["a", "b", "c", "d"]);
    settle(&mut look, &["a", "b", "c", "d"]);
    assert_eq!(
        counts(&look).values().copied().collect::<Vec<_>>(),
        [3, 3, 3, 3]
    );
}

#[test]
fn thirteen_shards_on_four_workers_leave_nobody_below_the_floor() {
    let mut look = Look {
        shards: shards(13),
        ..Look::default()
    };
    with_workers(&mut look, &["a", "b", "c"]);
    settle(&mut look, &["a", "b", "c"]);
    with_workers(&mut look, &["a", "b", "c", "d"]);
    settle(&mut look, &["a", "b", "c", "d"]);
    let mut c: Vec<usize> = counts(&look).values().copied().collect();
    c.sort();
    assert_eq!(c, [3, 3, 3, 4]);
}

#[test]
fn the_shards_of_a_worker_that_died_are_taken_over() {
    let mut look = Look {
        shards: shards(12),
        ..Look::default()
    };
    with_workers(&mut look, &["a", "b", "c"]);
    settle(&mut look, &["a", "b", "c"]);
    // c stops renewing: its heartbeat and its leases lapse.
    look.leases.retain(|_, w| w != "c");
    with_workers(&mut look, &["a", "b"]);
    settle(&mut look, &["a", "b"]);
    assert_eq!(look.leases.len(), 12);
    assert_eq!(counts(&look).values().copied().collect::<Vec<_>>(), [6, 6]);
}

#[test]
fn a_child_waits_for_its_parents_and_a_parent_gone_from_the_stream_does_not_hold_it() {
    let view = |id: &str, parents: &[&str]| ShardView {
        id: id.to_owned(),
        parents: parents.iter().map(|p| (*p).to_owned()).collect(),
    };
    let mut look = Look {
        shards: vec![
            view("p1", &[]),
            view("p2", &[]),
            view("merged", &["p1", "p2"]),
            view("orphan", &["expired"]),
        ],
        ..Look::default()
    };
    let ids = |l: &Look| readable(l).iter().map(|s| s.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&look), ["p1", "p2", "orphan"]);
    look.done.insert("p1".into());
    assert_eq!(ids(&look), ["p2", "orphan"]);
    look.done.insert("p2".into());
    assert_eq!(ids(&look), ["merged", "orphan"]);
}

#[test]
fn a_shard_being_given_up_is_neither_kept_nor_taken_again() {
    let mut look = Look {
        shards: shards(2),
        ..Look::default()
    };
    with_workers(&mut look, &["a"]);
    look.leases
        .insert("shardId-000000000000".into(), "a".into());
    let giving_up: BTreeSet<String> = ["shardId-000000000000".to_owned()].into();
    let p = plan("a", &look, &giving_up);
    assert_eq!(p.take, ["shardId-000000000001"]);
    assert!(p.release.is_empty());
}

proptest! {
    /// Any number of shards and workers, any order of joining and leaving: the workers settle
    /// with every readable shard held by exactly one of them, each holding between the floor
    /// and the ceiling of its share.
    #[test]
    fn workers_settle_on_a_fair_share(
        n in 0usize..40,
        steps in proptest::collection::vec((any::<bool>(), 0usize..6), 1..6),
    ) {
        let names = ["a", "b", "c", "d", "e", "f"];
        let mut look = Look { shards: shards(n), ..Look::default() };
        let mut live: BTreeSet<&str> = ["a"].into();
        for (join, who) in steps {
            if join {
                live.insert(names[who]);
            } else if live.len() > 1 {
                live.remove(names[who]);
                look.leases.retain(|_, w| w != names[who]);
            }
            let ws: Vec<&str> = live.iter().copied().collect();
            with_workers(&mut look, &ws);
            settle(&mut look, &ws);
            prop_assert_eq!(look.leases.len(), n);
            let (floor, ceil) = (n / ws.len(), n.div_ceil(ws.len()));
            for (w, c) in counts(&look) {
                prop_assert!(c >= floor && c <= ceil, "{w} holds {c}, share {floor}..={ceil}");
            }
        }
    }
}
