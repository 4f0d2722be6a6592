//! Trees and artifacts: commit, lookup, restore round trips, concurrent commits,
//! damage detection, tmp cleanup, locks.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Barrier};

use common::*;
use kiln_store::{
    CommitMeta, ObjectKind, RestoreMethod, Store, StoreError, StoreOptions, copy_tree,
};

#[test]
fn commit_lookup_restore_round_trip_preserves_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap(); // Durability::Full
    let b = store.begin_tree().unwrap();
    assert!(b.path().starts_with(store.root().join("tmp")));
    make_rich_tree(b.path());
    let before = listing(b.path());
    let t = store
        .commit_tree(
            b,
            "stage-1",
            CommitMeta {
                kind: "org.kiln.test".into(),
                extra: serde_json::json!({"seconds": 1.5}),
            },
        )
        .unwrap();
    assert_eq!(t.id(), "stage-1");
    assert_eq!(t.meta().kind, "org.kiln.test");
    assert_eq!(t.meta().extra["seconds"], 1.5);
    assert_eq!(t.meta().entries, before.len() as u64 - 1);
    assert!(t.meta().size > 300_000, "size {}", t.meta().size);
    assert_eq!(t.path(), store.root().join("trees/stage-1/data"));
    // The committed tree is exactly what was built.
    assert_eq!(listing(&t.path()), before);
    drop(t);

    let again = store.lookup_tree("stage-1").unwrap().expect("committed");
    assert_eq!(again.meta().kind, "org.kiln.test");
    assert!(store.lookup_tree("stage-2").unwrap().is_none());
    assert!(store.has_tree("stage-1"));

    for method in [
        RestoreMethod::Auto,
        RestoreMethod::CopyFileRange,
        RestoreMethod::ReadWrite,
        RestoreMethod::Hardlink,
    ] {
        let dest = tmp.path().join(format!("restored-{method}"));
        let stats = store.restore_tree_with("stage-1", &dest, method).unwrap();
        let mut after = listing(&dest);
        let mut before = before.clone();
        if method == RestoreMethod::Hardlink {
            // Every file is now also linked from the store: compare without link groups.
            for e in after.values_mut().chain(before.values_mut()) {
                e.link_group = None;
            }
        }
        for (path, e) in &before {
            assert_eq!(after.get(path), Some(e), "{method}: {path:?} differs");
        }
        assert_eq!(after.len(), before.len(), "{method}");
        if method == RestoreMethod::Hardlink {
            // Shares inodes with the store.
            let a = fs::metadata(dest.join("a/b/big")).unwrap();
            let s = fs::metadata(store.root().join("trees/stage-1/data/a/b/big")).unwrap();
            assert_eq!(a.ino(), s.ino());
        } else {
            assert_eq!(stats.hardlinks, 2, "{method}: {stats:?}");
            // Independent copies: writing one does not touch the store.
            fs::write(dest.join("a/b/big"), b"changed").unwrap();
            let stored = fs::read(store.root().join("trees/stage-1/data/a/b/big")).unwrap();
            assert_eq!(stored.len(), 300_000);
            // Holes stay holes.
            let sp = fs::metadata(dest.join("sparse")).unwrap();
            assert_eq!(sp.len(), 8 << 20);
            assert!(
                sp.blocks() * 512 < 1 << 20,
                "{method}: sparse file was filled in"
            );
        }
    }

    // Restoring into a non-empty directory is refused; into an empty one works.
    let dest = tmp.path().join("restored-auto");
    let err = store.restore_tree("stage-1", &dest).unwrap_err();
    assert!(
        matches!(err, StoreError::DestinationNotEmpty { .. }),
        "{err}"
    );
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    store.restore_tree("stage-1", &empty).unwrap();
    assert_eq!(listing(&empty), before);

    // Reflink: works on a CoW filesystem, otherwise a clear error.
    let dest = tmp.path().join("reflinked");
    match store.restore_tree_with("stage-1", &dest, RestoreMethod::Reflink) {
        Ok(stats) => {
            assert!(stats.reflinked > 0);
            assert_eq!(listing(&dest), before);
        }
        Err(e) => assert!(matches!(e, StoreError::Unsupported { .. }), "{e}"),
    }

    // A missing tree is a NotFound error naming it.
    let err = store
        .restore_tree("nope", &tmp.path().join("x"))
        .unwrap_err();
    assert!(
        err.to_string().contains("tree nope is not in the store"),
        "{err}"
    );
}

#[test]
fn begin_tree_from_parent_and_copy_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_nosync(tmp.path());
    let b = store.begin_tree().unwrap();
    write_tree_for(b.path(), "parent");
    store
        .commit_tree(b, "parent", CommitMeta::new("a"))
        .unwrap();
    let child = store.begin_tree_from("parent").unwrap();
    check_tree_for(child.path(), "parent").unwrap();
    fs::write(child.path().join("added"), b"child").unwrap();
    let c = store
        .commit_tree(child, "child", CommitMeta::new("b"))
        .unwrap();
    assert!(c.path().join("added").exists());
    // The parent is unchanged.
    check_tree_for(
        &store.lookup_tree("parent").unwrap().unwrap().path(),
        "parent",
    )
    .unwrap();
    // copy_tree is usable on its own (e.g. for exports).
    let out = tmp.path().join("export");
    copy_tree(&c.path(), &out, RestoreMethod::Auto).unwrap();
    assert_eq!(listing(&out), listing(&c.path()));
}

#[test]
fn artifacts_work_like_trees() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_nosync(tmp.path());
    let b = store.begin_artifact().unwrap();
    fs::write(b.path().join("disk.qcow2"), det_bytes(1, 100_000)).unwrap();
    let a = store
        .commit_artifact(b, "img-1", CommitMeta::new("qcow2"))
        .unwrap();
    assert_eq!(a.kind(), ObjectKind::Artifact);
    assert_eq!(a.path(), store.root().join("artifacts/img-1/data"));
    assert!(store.lookup_tree("img-1").unwrap().is_none());
    let a2 = store.lookup_artifact("img-1").unwrap().unwrap();
    assert_eq!(
        fs::read(a2.path().join("disk.qcow2")).unwrap(),
        det_bytes(1, 100_000)
    );
}

#[test]
fn dropped_builder_leaves_nothing_and_persist_moves_out() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_nosync(&tmp.path().join("s"));
    let b = store.begin_tree().unwrap();
    fs::write(b.path().join("x"), b"x").unwrap();
    let dir = b.path().parent().unwrap().to_path_buf();
    drop(b);
    assert!(!dir.exists());
    let b = store.begin_tree().unwrap();
    fs::write(b.path().join("x"), b"kept").unwrap();
    let kept = tmp.path().join("failed-stage");
    b.persist(&kept).unwrap();
    assert_eq!(fs::read(kept.join("x")).unwrap(), b"kept");
    assert_eq!(tmp_entries(&store), vec![own_lock(&store)]);
}

#[test]
fn invalid_ids_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_nosync(tmp.path());
    for id in ["", ".hidden", "a/b", "..", "x y", &"a".repeat(129)] {
        let b = store.begin_tree().unwrap();
        let err = store.commit_tree(b, id, CommitMeta::new("k")).unwrap_err();
        assert!(matches!(err, StoreError::InvalidId { .. }), "{id:?}: {err}");
        assert!(store.lookup_tree(id).is_err());
    }
    let b = store.begin_tree().unwrap();
    store
        .commit_tree(b, "sha256-0123abcd_x.y", CommitMeta::new("k"))
        .unwrap();
}

#[test]
fn concurrent_commits_of_one_id_first_wins_without_error() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    open_nosync(&root);
    for round in 0..10 {
        let id = format!("same-{round}");
        let barrier = Arc::new(Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|writer| {
                let (root, id, barrier) = (root.clone(), id.clone(), barrier.clone());
                std::thread::spawn(move || {
                    // A separate Store per thread: separate lock files, as processes have.
                    let store = open_nosync(&root);
                    let b = store.begin_tree().unwrap();
                    write_tree_for(b.path(), &id);
                    fs::write(b.path().join("writer"), format!("{writer}")).unwrap();
                    barrier.wait();
                    let t = store.commit_tree(b, &id, CommitMeta::new("k")).unwrap();
                    let w: u32 = fs::read_to_string(t.path().join("writer"))
                        .unwrap()
                        .parse()
                        .unwrap();
                    check_tree_for(&t.path(), &id).unwrap_or_else(|e| {
                        // the writer marker is the only allowed difference
                        assert!(e.contains("writer"), "{e}");
                    });
                    w
                })
            })
            .collect();
        let winners: Vec<u32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        // Everyone got the same (winning) tree.
        assert!(winners.iter().all(|w| *w == winners[0]), "{winners:?}");
    }
    let store = open_nosync(&root);
    assert_eq!(store.status().unwrap().trees.count, 10);
    // The losers' work directories are gone.
    assert_eq!(tmp_entries(&store), vec![own_lock(&store)]);
}

#[test]
fn damaged_objects_are_detected_and_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    {
        let store = open_nosync(root);
        for id in ["good", "no-meta", "bad-meta", "wrong-id", "no-data"] {
            let b = store.begin_tree().unwrap();
            write_tree_for(b.path(), id);
            store.commit_tree(b, id, CommitMeta::new("k")).unwrap();
        }
        let t = root.join("trees");
        fs::remove_file(t.join("no-meta/meta.json")).unwrap();
        fs::write(t.join("bad-meta/meta.json"), b"{\"format\": 1, \"trunc").unwrap();
        let m = fs::read_to_string(t.join("wrong-id/meta.json")).unwrap();
        fs::write(
            t.join("wrong-id/meta.json"),
            m.replace("\"wrong-id\"", "\"other\""),
        )
        .unwrap();
        fs::remove_dir_all(t.join("no-data/data")).unwrap();
        // Found at lookup:
        assert!(store.lookup_tree("bad-meta").unwrap().is_none());
        assert!(!t.join("bad-meta").exists());
        assert!(store.lookup_tree("wrong-id").unwrap().is_none());
        assert!(store.lookup_tree("no-data").unwrap().is_none());
        assert!(!t.join("no-data").exists());
        // A stray file where blobs live:
        fs::write(root.join("blobs/sha256/not-a-digest"), b"x").unwrap();
    }
    // Found at open:
    let store = open_nosync(root);
    assert!(!root.join("trees/no-meta").exists());
    assert!(!root.join("blobs/sha256/not-a-digest").exists());
    let ids: Vec<_> = store.objects().unwrap().into_iter().map(|o| o.id).collect();
    assert_eq!(ids, vec!["good".to_string()]);
    check_tree_for(&store.lookup_tree("good").unwrap().unwrap().path(), "good").unwrap();
    // Committing a fresh copy of a removed id works.
    let b = store.begin_tree().unwrap();
    write_tree_for(b.path(), "no-meta");
    store
        .commit_tree(b, "no-meta", CommitMeta::new("k"))
        .unwrap();
}

#[test]
fn tmp_leftovers_of_dead_owners_are_removed_live_ones_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let live = open_nosync(root);
    let live_builder = live.begin_tree().unwrap();
    fs::write(live_builder.path().join("f"), b"x").unwrap();
    let t = root.join("tmp");
    // A dead owner: lock file present but not locked, with work in progress.
    fs::write(t.join("p-dead1.lock"), b"").unwrap();
    fs::create_dir_all(t.join("p-dead1.0-build/data/sub")).unwrap();
    fs::write(t.join("p-dead1.3-store-json"), b"{").unwrap();
    // An orphan: entries without any lock file.
    fs::create_dir_all(t.join("p-gone.7-gc/data")).unwrap();
    // A partial download: kept for resuming.
    fs::write(t.join(format!("blob-{}.partial", "ab".repeat(32))), b"12").unwrap();
    let other = open_nosync(root);
    let mut left = tmp_entries(&other);
    left.sort();
    let mut want = vec![
        own_lock(&live),
        own_lock(&other),
        format!("blob-{}.partial", "ab".repeat(32)),
        live_builder
            .path()
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string(),
    ];
    want.sort();
    assert_eq!(left, want);
    drop(live_builder);
    drop(live);
    drop(other);
    // Every handle is gone: a new open finds only partials besides its own lock.
    let s = open_nosync(root);
    let mut left = tmp_entries(&s);
    left.sort();
    let mut want = vec![own_lock(&s), format!("blob-{}.partial", "ab".repeat(32))];
    want.sort();
    assert_eq!(left, want);
}

#[test]
fn exclusive_open_excludes_shared_users() {
    let tmp = tempfile::tempdir().unwrap();
    let shared = open_nosync(tmp.path());
    let err = Store::open_exclusive(tmp.path(), StoreOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::Busy { .. }), "{err}");
    assert!(shared.clear().is_err());
    let b = shared.begin_tree().unwrap();
    shared.commit_tree(b, "t", CommitMeta::new("k")).unwrap();
    shared.put_blob_bytes(b"blob").unwrap();
    drop(shared);
    let ex = Store::open_exclusive(tmp.path(), StoreOptions::default()).unwrap();
    let err = Store::open(tmp.path()).unwrap_err();
    assert!(matches!(err, StoreError::Busy { .. }), "{err}");
    assert!(err.to_string().contains("exclusively"), "{err}");
    ex.clear().unwrap();
    assert_eq!(ex.status().unwrap().total.count, 0);
}

#[test]
fn store_files_and_config() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_nosync(tmp.path());
    let tag = fs::read_to_string(tmp.path().join("CACHEDIR.TAG")).unwrap();
    assert!(tag.starts_with("Signature: 8a477f597d28d172789f06886806bc55"));
    let cfg = store.config().unwrap();
    assert_eq!(cfg.format, kiln_store::FORMAT_VERSION);
    assert_eq!(cfg.budget, kiln_store::Budget::Auto);
    let auto = store.budget_bytes().unwrap();
    assert!(auto > 0 && auto <= kiln_store::DEFAULT_BUDGET_CAP);
    store.set_budget(kiln_store::Budget::Bytes(12345)).unwrap();
    assert_eq!(open_nosync(tmp.path()).budget_bytes().unwrap(), 12345);
    // A store from a newer kiln is refused with a clear message.
    fs::write(
        tmp.path().join("store.json"),
        br#"{"format": 99, "budget": "auto"}"#,
    )
    .unwrap();
    let err = Store::open(tmp.path()).unwrap_err();
    assert!(
        matches!(err, StoreError::UnsupportedFormat { found: 99, .. }),
        "{err}"
    );
}

fn own_lock(store: &Store) -> String {
    format!("p-{}.lock", store.owner_token())
}

fn tmp_entries(store: &Store) -> Vec<String> {
    fs::read_dir(store.root().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}
