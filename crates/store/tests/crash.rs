//! Crash safety: a child process writes trees and blobs (and runs GC) in a loop and is
//! killed with SIGKILL at random moments; after every kill, every visible object must be
//! complete and valid, and opening the store must clean `tmp/`.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use kiln_store::{BlobSlot, CommitMeta, Sha256Digest};

const CHILD_ENV: &str = "KILN_STORE_CRASH_CHILD";
const KILLS: usize = 20;
const NBLOBS: u64 = 24;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn blob_data(k: u64) -> Vec<u8> {
    det_bytes(1000 + k, (seed_of(&k.to_string()) % 400_000) as usize + 1)
}

/// The content a tree id must have: `t<n>` is written directly, `c-t<n>` is a copy of
/// `t<n>` made by restoring it.
fn source_id(id: &str) -> &str {
    id.strip_prefix("c-").unwrap_or(id)
}

fn child(root: &Path) -> ! {
    let store = open_nosync(root);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        ^ (u64::from(std::process::id()) << 32);
    let mut rng = Rng(seed | 1);
    loop {
        let r = rng.next();
        match r % 10 {
            0..=4 => {
                let id = format!("t{}", (r >> 8) % 12);
                if !store.has_tree(&id) {
                    let b = store.begin_tree().unwrap();
                    write_tree_for(b.path(), &id);
                    store.commit_tree(b, &id, CommitMeta::new("test")).unwrap();
                }
            }
            5..=7 => {
                let k = (r >> 8) % NBLOBS;
                let data = blob_data(k);
                let sha = Sha256Digest::of(&data);
                if let BlobSlot::Writer(mut w) =
                    store.blob_writer(&sha, Some(data.len() as u64)).unwrap()
                {
                    let start = w.offset() as usize;
                    // Sometimes give up halfway, leaving a partial download.
                    let end = if r.is_multiple_of(3) {
                        (start + data.len()) / 2
                    } else {
                        data.len()
                    };
                    for chunk in data[start..end].chunks(16 * 1024) {
                        w.write_all(chunk).unwrap();
                    }
                    if end == data.len() {
                        w.commit().unwrap();
                    }
                }
            }
            8 => {
                let budget = 500_000 + (r >> 8) % 3_000_000;
                store.gc(budget).unwrap();
            }
            _ => {
                let src = format!("t{}", (r >> 8) % 12);
                let id = format!("c-{src}");
                if store.has_tree(&src) && !store.has_tree(&id) {
                    // The parent may be evicted between the check and the restore.
                    if let Ok(b) = store.begin_tree_from(&src) {
                        store.commit_tree(b, &id, CommitMeta::new("copy")).unwrap();
                    }
                }
            }
        }
    }
}

/// Check the raw store, before any `Store::open` can clean it: everything visible
/// must be complete.
fn check_visible(root: &Path, expected_blobs: &BTreeMap<String, usize>) -> (usize, usize) {
    let mut trees = 0;
    for e in fs::read_dir(root.join("trees")).unwrap() {
        let e = e.unwrap();
        let id = e.file_name().into_string().unwrap();
        let meta_path = e.path().join("meta.json");
        let meta: serde_json::Value = serde_json::from_slice(
            &fs::read(&meta_path).unwrap_or_else(|err| panic!("tree {id} has no meta.json: {err}")),
        )
        .unwrap_or_else(|err| panic!("tree {id}: bad meta.json: {err}"));
        assert_eq!(meta["id"], id.as_str());
        check_tree_for(&e.path().join("data"), source_id(&id)).unwrap();
        trees += 1;
    }
    let mut blobs = 0;
    for e in fs::read_dir(root.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        let data = fs::read(e.path()).unwrap();
        assert_eq!(
            Sha256Digest::of(&data).to_hex(),
            name,
            "blob content does not match its name"
        );
        assert_eq!(
            expected_blobs.get(&name),
            Some(&data.len()),
            "unexpected blob"
        );
        blobs += 1;
    }
    // Partial downloads are prefixes of the right data.
    for e in fs::read_dir(root.join("tmp")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if let Some(hex) = name
            .strip_prefix("blob-")
            .and_then(|n| n.strip_suffix(".partial"))
        {
            let want = (0..NBLOBS)
                .map(blob_data)
                .find(|d| Sha256Digest::of(d).to_hex() == hex)
                .expect("partial of a known blob");
            let got = fs::read(root.join("tmp").join(&name)).unwrap();
            assert!(
                got.len() <= want.len() && want.starts_with(&got),
                "bad partial"
            );
        }
    }
    (trees, blobs)
}

#[test]
fn sigkill_at_random_moments_leaves_no_incomplete_object() {
    if let Ok(root) = std::env::var(CHILD_ENV) {
        child(Path::new(&root));
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    open_nosync(&root);
    let expected_blobs: BTreeMap<String, usize> = (0..NBLOBS)
        .map(|k| {
            let d = blob_data(k);
            (Sha256Digest::of(&d).to_hex(), d.len())
        })
        .collect();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let exe = std::env::current_exe().unwrap();
    let (mut max_trees, mut max_blobs, mut leftovers, mut dead_locks) = (0, 0, 0, 0);
    for _ in 0..KILLS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "sigkill_at_random_moments_leaves_no_incomplete_object",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &root)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(10 + rng.next() % 140));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child exited early (see its output above)"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let (t, b) = check_visible(&root, &expected_blobs);
        max_trees = max_trees.max(t);
        max_blobs = max_blobs.max(b);
        // What the killed child left in tmp/: its lock file, and often a tree being
        // built or a GC victim being deleted.
        for e in fs::read_dir(root.join("tmp")).unwrap() {
            let n = e.unwrap().file_name().into_string().unwrap();
            if n.starts_with("p-") {
                if n.ends_with(".lock") {
                    dead_locks += 1;
                } else {
                    leftovers += 1;
                }
            }
        }

        // Opening cleans up after the dead child; what is visible is still valid.
        let store = open_nosync(&root);
        let own = format!("p-{}.lock", store.owner_token());
        for e in fs::read_dir(root.join("tmp")).unwrap() {
            let n = e.unwrap().file_name().into_string().unwrap();
            assert!(
                n == own || (n.starts_with("blob-") && n.ends_with(".partial")),
                "tmp/{n} was not cleaned"
            );
        }
        for o in store.objects().unwrap() {
            if o.kind == kiln_store::ObjectKind::Tree {
                let t = store.lookup_tree(&o.id).unwrap().expect("listed tree");
                check_tree_for(&t.path(), source_id(&o.id)).unwrap();
            }
        }
        assert!(store.verify().unwrap().bad_blobs.is_empty());
    }
    eprintln!(
        "{KILLS} kills in {:?}: up to {max_trees} trees and {max_blobs} blobs visible, \
         {dead_locks} dead lock files and {leftovers} work entries cleaned",
        started.elapsed()
    );
    assert!(
        max_trees > 0 && max_blobs > 0,
        "the children committed nothing"
    );
    assert!(dead_locks > 0, "no child got as far as opening the store");
}
