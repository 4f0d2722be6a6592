//! Size budget: LRU eviction across kinds, pins, status figures.

mod common;

use std::fs;
use std::io::Write;
use std::time::Duration;

use common::*;
use kiln_store::{BlobSlot, Budget, CommitMeta, ObjectKind, Sha256Digest, Store};

fn tree(store: &Store, id: &str, kind: &str) {
    let b = store.begin_tree().unwrap();
    fs::write(b.path().join("payload"), det_bytes(seed_of(id), 64 * 1024)).unwrap();
    store.commit_tree(b, id, CommitMeta::new(kind)).unwrap();
}

fn tick() {
    std::thread::sleep(Duration::from_millis(2));
}

fn ids(v: &[kiln_store::ObjectInfo]) -> Vec<String> {
    v.iter().map(|o| o.id.clone()).collect()
}

#[test]
fn lru_order_pins_budget_and_status() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_nosync(tmp.path());
    for (i, id) in ["t0", "t1", "t2", "t3", "t4"].iter().enumerate() {
        tree(
            &store,
            id,
            if i % 2 == 0 {
                "org.kiln.a"
            } else {
                "org.kiln.b"
            },
        );
    }
    let b0 = store.put_blob_bytes(&det_bytes(100, 64 * 1024)).unwrap();
    let b1 = store.put_blob_bytes(&det_bytes(101, 64 * 1024)).unwrap();

    // Status: counts and bytes add up, per kind and per stage kind.
    let objs = store.objects().unwrap();
    let t_bytes = objs.iter().find(|o| o.id == "t0").unwrap().bytes;
    let b_bytes = objs
        .iter()
        .find(|o| o.kind == ObjectKind::Blob)
        .unwrap()
        .bytes;
    assert!(t_bytes >= 64 * 1024 && b_bytes >= 64 * 1024);
    for o in &objs {
        let want = if o.kind == ObjectKind::Tree {
            t_bytes
        } else {
            b_bytes
        };
        assert_eq!(o.bytes, want, "{o:?}");
    }
    let st = store.status().unwrap();
    assert_eq!(st.path, store.root());
    assert_eq!((st.trees.count, st.trees.bytes), (5, 5 * t_bytes));
    assert_eq!((st.blobs.count, st.blobs.bytes), (2, 2 * b_bytes));
    assert_eq!((st.artifacts.count, st.partials.count), (0, 0));
    assert_eq!(st.total.count, 7);
    assert_eq!(st.total.bytes, 5 * t_bytes + 2 * b_bytes);
    assert_eq!(st.tree_kinds["org.kiln.a"].count, 3);
    assert_eq!(st.tree_kinds["org.kiln.b"].bytes, 2 * t_bytes);
    assert_eq!(st.budget, Budget::Auto);
    // The meta file records size and kind; status does not walk trees.
    let meta: serde_json::Value =
        serde_json::from_slice(&fs::read(tmp.path().join("trees/t1/meta.json")).unwrap()).unwrap();
    assert_eq!(meta["kind"], "org.kiln.b");
    assert_eq!(meta["object"], "tree");
    assert!(meta["size"].as_u64().unwrap() >= 64 * 1024);
    assert!(meta["created"].as_u64().unwrap() > 1_700_000_000);

    // Uses, oldest first: b0, t3 (and kept pinned), t1, b1, t4, t0, t2.
    tick();
    drop(store.pin_blob(&b0).unwrap().unwrap());
    tick();
    let pinned = store.lookup_tree("t3").unwrap().unwrap();
    for id in ["t1", "b1", "t4", "t0", "t2"] {
        tick();
        if id == "b1" {
            assert!(store.blob_path(&b1).is_some());
        } else {
            drop(store.lookup_tree(id).unwrap().unwrap());
        }
    }

    // Nothing to do under budget.
    let r = store.gc(u64::MAX).unwrap();
    assert!(r.evicted.is_empty() && r.pinned.is_empty());

    // Down to 4 trees: b0, (t3 pinned: skipped), t1, b1 go.
    let r = store.gc(4 * t_bytes).unwrap();
    assert_eq!(ids(&r.evicted), vec![b0.to_hex(), "t1".into(), b1.to_hex()]);
    assert_eq!(ids(&r.pinned), vec!["t3".to_string()]);
    assert_eq!(r.before, 5 * t_bytes + 2 * b_bytes);
    assert_eq!(r.after, 4 * t_bytes);
    assert!(!store.has_blob(&b0) && !store.has_blob(&b1) && !store.has_tree("t1"));
    // The pinned tree is intact and still usable.
    assert_eq!(
        fs::read(pinned.path().join("payload")).unwrap(),
        det_bytes(seed_of("t3"), 64 * 1024)
    );
    let st = store.status().unwrap();
    assert_eq!((st.total.count, st.total.bytes), (4, 4 * t_bytes));

    // Unpinned, t3 is now the least recently used.
    drop(pinned);
    let r = store.gc(2 * t_bytes).unwrap();
    assert_eq!(ids(&r.evicted), vec!["t3".to_string(), "t4".to_string()]);
    assert_eq!(r.after, 2 * t_bytes);
    assert!(store.has_tree("t0") && store.has_tree("t2"));

    // The configured budget (here: everything must go), but an open blob, a blob
    // writer's partial download and a pinned tree stay.
    let b2 = store.put_blob_bytes(b"kept open").unwrap();
    let open = store.open_blob(&b2).unwrap().unwrap();
    let partial_sha = Sha256Digest::of(b"partial");
    let BlobSlot::Writer(mut w) = store.blob_writer(&partial_sha, None).unwrap() else {
        panic!()
    };
    w.write_all(b"part").unwrap();
    let t0 = store.lookup_tree("t0").unwrap().unwrap();
    store.set_budget(Budget::Bytes(0)).unwrap();
    let r = store.gc_to_budget().unwrap();
    assert_eq!(r.budget, 0);
    assert_eq!(ids(&r.evicted), vec!["t2".to_string()]);
    let mut p = ids(&r.pinned);
    p.sort();
    let mut want = vec!["t0".to_string(), b2.to_hex(), partial_sha.to_hex()];
    want.sort();
    assert_eq!(p, want);
    drop((open, t0));
    // An abandoned partial download is evicted like the rest.
    drop(w);
    let r = store.gc(0).unwrap();
    assert_eq!(r.after, 0);
    assert_eq!(r.evicted.len(), 3);
    assert!(r.evicted.iter().any(|o| o.kind == ObjectKind::Partial));
    assert_eq!(store.status().unwrap().total.count, 0);
}

#[test]
fn gc_runs_while_another_handle_pins() {
    // Pins are flocks: they hold across processes (here: separate handles).
    let tmp = tempfile::tempdir().unwrap();
    let a = open_nosync(tmp.path());
    let b = open_nosync(tmp.path());
    tree(&a, "x", "k");
    tree(&a, "y", "k");
    let pin = b.lookup_tree("x").unwrap().unwrap();
    let r = a.gc(0).unwrap();
    assert_eq!(ids(&r.evicted), vec!["y".to_string()]);
    assert_eq!(ids(&r.pinned), vec!["x".to_string()]);
    assert!(pin.path().join("payload").exists());
    drop(pin);
    assert_eq!(ids(&a.gc(0).unwrap().evicted), vec!["x".to_string()]);
    // What GC moved aside was deleted.
    let left: Vec<_> = fs::read_dir(tmp.path().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn verify_finds_and_removes_corrupt_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_nosync(tmp.path());
    let good = store.put_blob_bytes(b"good").unwrap();
    let bad = store.put_blob_bytes(b"bad").unwrap();
    fs::write(store.blob_location(&bad), b"bit rot").unwrap();
    tree(&store, "t", "k");
    let r = store.verify().unwrap();
    assert_eq!(r.blobs_checked, 2);
    assert_eq!(r.objects_checked, 1);
    assert_eq!(r.bad_blobs, vec![bad.to_hex()]);
    assert!(store.has_blob(&good) && !store.has_blob(&bad));
}
