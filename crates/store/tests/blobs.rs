//! Blobs: verified puts, mismatches that leave nothing, resumable downloads, pins.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use kiln_store::{BlobSlot, Sha256Digest, Store, StoreError};

fn tmp_names(store: &Store) -> Vec<String> {
    let own = format!("p-{}.lock", store.owner_token());
    fs::read_dir(store.root().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| *n != own)
        .collect()
}

fn blob_names(store: &Store) -> Vec<String> {
    fs::read_dir(store.root().join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

#[test]
fn put_then_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap(); // durable
    let data = det_bytes(1, 1_000_000);
    let sha = Sha256Digest::of(&data);
    assert!(!store.has_blob(&sha));
    assert!(store.blob_path(&sha).is_none());
    assert!(store.open_blob(&sha).unwrap().is_none());
    let path = store
        .put_blob_from_reader(&sha, Some(data.len() as u64), &data[..])
        .unwrap();
    assert_eq!(path, store.root().join("blobs/sha256").join(sha.to_hex()));
    assert!(store.has_blob(&sha));
    assert_eq!(store.blob_path(&sha).unwrap(), path);
    let mut back = Vec::new();
    store
        .open_blob(&sha)
        .unwrap()
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, data);
    // Putting it again is a no-op that does not read the reader.
    struct Panics;
    impl Read for Panics {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            panic!("read although present")
        }
    }
    store.put_blob_from_reader(&sha, None, Panics).unwrap();
    assert!(matches!(
        store.blob_writer(&sha, None).unwrap(),
        BlobSlot::Present(_)
    ));
    // No size given: only the hash is checked.
    let d2 = b"no size".to_vec();
    let s2 = Sha256Digest::of(&d2);
    store.put_blob_from_reader(&s2, None, &d2[..]).unwrap();
    assert_eq!(fs::read(store.blob_path(&s2).unwrap()).unwrap(), d2);
    assert!(tmp_names(&store).is_empty());
}

#[test]
fn hash_mismatch_is_an_error_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_nosync(tmp.path());
    let claimed = Sha256Digest::of(b"what the manifest says");
    let actual = Sha256Digest::of(b"what the server sent");
    let err = store
        .put_blob_from_reader(&claimed, Some(20), &b"what the server sent"[..])
        .unwrap_err();
    match &err {
        StoreError::HashMismatch {
            expected,
            actual: a,
            size,
        } => {
            assert_eq!(*expected, claimed.to_hex());
            assert_eq!(*a, actual.to_hex());
            assert_eq!(*size, 20);
        }
        e => panic!("{e}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&claimed.to_hex()) && msg.contains(&actual.to_hex()),
        "{msg}"
    );
    assert!(!store.has_blob(&claimed) && !store.has_blob(&actual));
    assert!(blob_names(&store).is_empty());
    assert!(tmp_names(&store).is_empty(), "{:?}", tmp_names(&store));
}

#[test]
fn size_mismatch_too_long_leaves_nothing_too_short_is_resumable() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_nosync(tmp.path());
    let data = det_bytes(2, 10_000);
    let sha = Sha256Digest::of(&data);
    // More bytes than announced: refused as soon as they arrive, nothing kept.
    let mut long = data.clone();
    long.extend_from_slice(b"trailing garbage");
    let err = store
        .put_blob_from_reader(&sha, Some(10_000), &long[..])
        .unwrap_err();
    assert!(
        matches!(err, StoreError::SizeMismatch { expected: 10_000, actual, .. } if actual > 10_000),
        "{err}"
    );
    assert!(blob_names(&store).is_empty() && tmp_names(&store).is_empty());
    // Fewer bytes: an error, the partial stays (not as a blob) and can be resumed.
    let err = store
        .put_blob_from_reader(&sha, Some(10_000), &data[..6000])
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SizeMismatch {
                expected: 10_000,
                actual: 6000,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("kept"), "{err}");
    assert!(!store.has_blob(&sha));
    let BlobSlot::Writer(mut w) = store.blob_writer(&sha, Some(10_000)).unwrap() else {
        panic!("present")
    };
    assert_eq!(w.offset(), 6000);
    w.write_all(&data[6000..]).unwrap();
    w.commit().unwrap();
    assert_eq!(fs::read(store.blob_path(&sha).unwrap()).unwrap(), data);
}

#[test]
fn interrupted_download_resumes_from_its_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let data = det_bytes(3, 3_000_000);
    let sha = Sha256Digest::of(&data);
    {
        let store = open_nosync(tmp.path());
        let BlobSlot::Writer(mut w) = store.blob_writer(&sha, Some(data.len() as u64)).unwrap()
        else {
            panic!()
        };
        assert_eq!((w.offset(), w.resumed_from()), (0, 0));
        w.write_all(&data[..1_234_567]).unwrap();
        assert!(w.partial_path().exists());
        // Interrupted: the writer is dropped without commit (or the process dies).
    }
    let store = open_nosync(tmp.path()); // a new process
    assert!(
        !store.has_blob(&sha),
        "a partial download must never look like a blob"
    );
    assert_eq!(
        store.status().unwrap().partials.count,
        1,
        "partials are counted"
    );
    let BlobSlot::Writer(mut w) = store.blob_writer(&sha, Some(data.len() as u64)).unwrap() else {
        panic!()
    };
    assert_eq!(w.offset(), 1_234_567);
    assert_eq!(w.resumed_from(), 1_234_567);
    // The fetcher asks for `Range: bytes=1234567-` and writes the rest.
    w.write_all(&data[w.offset() as usize..]).unwrap();
    let p = w.commit().unwrap();
    assert_eq!(fs::read(p).unwrap(), data);
    assert!(tmp_names(&store).is_empty());

    // A partial with wrong bytes (e.g. the file changed on the server): the final
    // check catches it, nothing is left, and a fresh download then works.
    let sha2 = Sha256Digest::of(&data[..100_000]);
    let BlobSlot::Writer(mut w) = store.blob_writer(&sha2, Some(100_000)).unwrap() else {
        panic!()
    };
    w.write_all(&det_bytes(99, 50_000)).unwrap();
    drop(w);
    let BlobSlot::Writer(mut w) = store.blob_writer(&sha2, Some(100_000)).unwrap() else {
        panic!()
    };
    assert_eq!(w.offset(), 50_000);
    w.write_all(&data[50_000..100_000]).unwrap();
    assert!(matches!(w.commit(), Err(StoreError::HashMismatch { .. })));
    assert!(tmp_names(&store).is_empty());
    let BlobSlot::Writer(mut w) = store.blob_writer(&sha2, Some(100_000)).unwrap() else {
        panic!()
    };
    assert_eq!(w.offset(), 0);
    w.write_all(&data[..100_000]).unwrap();
    w.commit().unwrap();
    // restart() for servers that ignore Range.
    let sha3 = Sha256Digest::of(b"0123456789");
    let BlobSlot::Writer(mut w) = store.blob_writer(&sha3, Some(10)).unwrap() else {
        panic!()
    };
    w.write_all(b"01234").unwrap();
    drop(w);
    let BlobSlot::Writer(mut w) = store.blob_writer(&sha3, Some(10)).unwrap() else {
        panic!()
    };
    w.restart().unwrap();
    w.write_all(b"0123456789").unwrap();
    w.commit().unwrap();
    // discard() forgets a partial.
    let sha4 = Sha256Digest::of(b"never");
    let BlobSlot::Writer(mut w) = store.blob_writer(&sha4, None).unwrap() else {
        panic!()
    };
    w.write_all(b"nev").unwrap();
    w.discard().unwrap();
    assert!(tmp_names(&store).is_empty());
}

#[test]
fn second_writer_waits_for_the_first_and_finds_the_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let data = det_bytes(4, 500_000);
    let sha = Sha256Digest::of(&data);
    let store = open_nosync(&root);
    let BlobSlot::Writer(mut w) = store.blob_writer(&sha, Some(500_000)).unwrap() else {
        panic!()
    };
    w.write_all(&data[..1000]).unwrap();
    let waiter = std::thread::spawn(move || {
        let other = open_nosync(&root); // as another process would
        let t = std::time::Instant::now();
        let slot = other.blob_writer(&sha, Some(500_000)).unwrap();
        (matches!(slot, BlobSlot::Present(_)), t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));
    w.write_all(&data[1000..]).unwrap();
    w.commit().unwrap();
    let (present, waited) = waiter.join().unwrap();
    assert!(present, "the waiting writer must see the committed blob");
    assert!(waited >= Duration::from_millis(150), "{waited:?}");
}

#[test]
fn blob_digest_parsing() {
    let d = Sha256Digest::of(b"x");
    assert_eq!(d.to_hex().parse::<Sha256Digest>().unwrap(), d);
    assert_eq!(format!("sha256:{d}").parse::<Sha256Digest>().unwrap(), d);
    let err = "abc".parse::<Sha256Digest>().unwrap_err();
    assert!(err.to_string().contains("64 hexadecimal digits"), "{err}");
}
