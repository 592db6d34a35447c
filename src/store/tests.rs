//! The contract every store keeps, run against each implementation; then what
//! only the file store can meet (someone else's file, a newer format).

use std::sync::Arc;

use redb::{Database, TableDefinition};

use super::memory::MemoryStore;
use super::{EventLog, IdLog, KvStore, RedbStore, Restored, SimLog, StateError};

/// Writes through every tenant of `store`, then checks what `reopen` restores.
async fn contract<S>(store: S, key: [u8; 32], reopen: impl FnOnce(S) -> (S, Restored))
where
    S: IdLog + EventLog + SimLog + KvStore + Clone,
{
    for i in 0..10u64 {
        IdLog::record(&store, i, vec![i as u8]);
        EventLog::record(&store, i + 1, format!("e{i}").into(), (i + 1).saturating_sub(3).max(1));
    }
    IdLog::prune(&store, 3);
    SimLog::record(&store, 1, 7, Some(Arc::new(b"kept".to_vec())));
    SimLog::record(&store, 1, 8, Some(Arc::new(b"gone".to_vec())));
    SimLog::record(&store, 1, 8, None);
    store.commit().await.unwrap();
    store.write("bot", "k", Some(b"v".to_vec())).await.unwrap();
    store.write("bot", "gone", Some(b"x".to_vec())).await.unwrap();
    store.write("bot", "gone", None).await.unwrap();
    store.write("botty", "k", Some(b"other".to_vec())).await.unwrap();

    let (store, restored) = reopen(store);
    assert_eq!(restored.key, key, "the registry key survives");
    assert_eq!(restored.ids.iter().map(|(s, _)| *s).collect::<Vec<_>>(), (3..10).collect::<Vec<_>>());
    assert!(restored.next_serial >= 10);
    // Whole batches may be kept or dropped; the bus trims to its buffer size.
    assert!(restored.events.iter().map(|(s, _)| *s).collect::<Vec<_>>().ends_with(&[7, 8, 9, 10]));
    assert!(restored.next_seq >= 11);
    assert_eq!(restored.sim, vec![((1, 7), b"kept".to_vec())]);
    let kv = store.load("bot").await.unwrap();
    assert_eq!(kv.into_iter().collect::<Vec<_>>(), vec![("k".to_string(), b"v".to_vec())]);
}

#[tokio::test]
async fn the_memory_store_keeps_the_contract() {
    let store = MemoryStore::default();
    let key = store.restored().key;
    contract(store, key, |s| {
        let r = s.restored();
        (s, r)
    })
    .await;
}

#[tokio::test]
async fn the_file_store_keeps_the_contract_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let (store, restored) = RedbStore::open(dir.path()).unwrap();
    let path = dir.path().to_owned();
    contract(store, restored.key, move |s| {
        s.close().unwrap();
        drop(s);
        RedbStore::open(&path).unwrap()
    })
    .await;
}

/// Fifty waiters, each with a record of its own, share commits: a commit
/// takes everything queued while the one before it ran.
#[tokio::test]
async fn waiters_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = RedbStore::open(dir.path()).unwrap();
    let before = store.commits();
    let waiters = (0..50u64).map(|i| {
        let store = store.clone();
        async move {
            IdLog::record(&store, i, vec![i as u8]);
            IdLog::commit(&store).await
        }
    });
    for outcome in futures::future::join_all(waiters).await {
        outcome.unwrap();
    }
    let commits = store.commits() - before;
    assert!((1..50).contains(&commits), "{commits} commits for 50 waiters");
    store.close().unwrap();
    drop(store);
    let (_, restored) = RedbStore::open(dir.path()).unwrap();
    assert_eq!(restored.ids.len(), 50, "every waiter's record is durable");
}

/// Sim messages across many chunks and commits, as the world writes them:
/// new ones at the top, the oldest forgotten, one changed in place; the
/// reopened file holds exactly the ones still kept, in order.
#[tokio::test]
async fn sim_messages_survive_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = RedbStore::open(dir.path()).unwrap();
    let mut expected = std::collections::BTreeMap::new();
    for n in 0..2_000i64 {
        SimLog::record(&store, 2, n, Some(Arc::new(n.to_le_bytes().to_vec())));
        expected.insert((2, n), n.to_le_bytes().to_vec());
        if n >= 700 {
            SimLog::record(&store, 2, n - 700, None);
            expected.remove(&(2, n - 700));
        }
        if n % 97 == 0 {
            IdLog::commit(&store).await.unwrap();
        }
    }
    SimLog::record(&store, 1, 5, Some(Arc::new(b"another account".to_vec())));
    SimLog::record(&store, 2, 1_500, Some(Arc::new(b"recalled".to_vec())));
    expected.insert((1, 5), b"another account".to_vec());
    expected.insert((2, 1_500), b"recalled".to_vec());
    IdLog::commit(&store).await.unwrap();
    drop(store);
    let (_, restored) = RedbStore::open(dir.path()).unwrap();
    assert_eq!(restored.sim, expected.into_iter().collect::<Vec<_>>());
}

/// A file of the first format, a row per sim message, opens with its
/// messages (moved into chunks once) and keeps them across a reopen.
#[test]
fn a_first_format_file_keeps_its_sim_messages() {
    let dir = tempfile::tempdir().unwrap();
    drop(RedbStore::open(dir.path()).unwrap());
    {
        let db = Database::create(dir.path().join("botbridge.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        let old = TableDefinition::<(i64, i64), &[u8]>::new("sim_messages");
        let mut table = txn.open_table(old).unwrap();
        table.insert((1, 300), b"b".as_slice()).unwrap();
        table.insert((1, 7), b"a".as_slice()).unwrap();
        drop(table);
        txn.commit().unwrap();
    }
    let want = vec![((1, 7), b"a".to_vec()), ((1, 300), b"b".to_vec())];
    let (store, restored) = RedbStore::open(dir.path()).unwrap();
    assert_eq!(restored.sim, want);
    drop(store);
    let (_, restored) = RedbStore::open(dir.path()).unwrap();
    assert_eq!(restored.sim, want, "moved, not copied twice");
}

/// A kv write is never durable before an ID recorded earlier: both are in
/// one ordered pipeline, so a commit that holds the write holds the ID.
#[tokio::test]
async fn a_kv_write_commits_what_was_recorded_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = RedbStore::open(dir.path()).unwrap();
    IdLog::record(&store, 7, b"an id a bot was given".to_vec());
    store.write("bot", "k", Some(b"refers to it".to_vec())).await.unwrap();
    // No close: what is on disk now is what a crash would leave.
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(dir.path().join("botbridge.redb"), copy.path().join("botbridge.redb")).unwrap();
    let (copied, restored) = RedbStore::open(copy.path()).unwrap();
    assert_eq!(restored.ids, vec![(7, b"an id a bot was given".to_vec())]);
    assert_eq!(copied.load("bot").await.unwrap().get("k").map(Vec::as_slice), Some(b"refers to it".as_slice()));
    drop(store);
}

#[test]
fn foreign_corrupt_and_newer_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("botbridge.redb"), b"this is not a database at all, not even close").unwrap();
    assert!(matches!(RedbStore::open(dir.path()), Err(StateError::Corrupt { .. })), "garbage");

    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::create(dir.path().join("botbridge.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(TableDefinition::<&str, u64>::new("orders")).unwrap().insert("x", 1).unwrap();
        txn.commit().unwrap();
    }
    assert!(matches!(RedbStore::open(dir.path()), Err(StateError::Foreign { .. })), "another program's redb");

    let dir = tempfile::tempdir().unwrap();
    drop(RedbStore::open(dir.path()).unwrap());
    {
        let db = Database::create(dir.path().join("botbridge.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        let meta = TableDefinition::<&str, &[u8]>::new("meta");
        txn.open_table(meta).unwrap().insert("format", 99u32.to_le_bytes().as_slice()).unwrap();
        txn.commit().unwrap();
    }
    let err = RedbStore::open(dir.path()).err().expect("newer refused");
    assert!(matches!(err, StateError::Newer { found: 99, .. }), "{err}");
}
