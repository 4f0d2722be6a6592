//! The executor on a tiny manifest that needs no packages: `hostname` + `tree.normalize`
//! in pipeline `os`, `archive.tar` of it in pipeline `tar`.

use kiln_build::executor::{BuildOptions, build};
use kiln_manifest::Manifest;
use kiln_store::Store;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};

fn manifest(hostname: &str) -> Manifest {
    let json = serde_json::json!({
        "version": 1,
        "pipelines": [
            {
                "name": "os",
                "source_epoch": 1_700_000_000u64,
                "stages": [
                    {"kind": "hostname", "options": {"hostname": hostname}},
                    {"kind": "tree.normalize"}
                ]
            },
            {
                "name": "tar",
                "source_epoch": 1_700_000_000u64,
                "stages": [
                    {
                        "kind": "archive.tar",
                        "options": {"filename": "root.tar"},
                        "inputs": {"tree": {"type": "pipeline", "name": "os"}}
                    }
                ]
            }
        ],
        "exports": [{"pipeline": "tar", "filename": "root.tar", "mime": "application/x-tar"}]
    });
    Manifest::from_json(json.to_string().as_bytes()).unwrap()
}

fn opts(out: &Path) -> BuildOptions {
    BuildOptions {
        output: Some(out.to_path_buf()),
        ..BuildOptions::default()
    }
}

fn tar_entries(path: &Path) -> Vec<(String, u64, Vec<u8>)> {
    let mut a = tar::Archive::new(std::fs::File::open(path).unwrap());
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let p = e.path().unwrap().display().to_string();
            let mtime = e.header().mtime().unwrap();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (p, mtime, data)
        })
        .collect()
}

#[test]
fn cached_stages_incremental_rebuild_and_reproducible_tar() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let out = tmp.path().join("out");

    // First build: everything runs; events are reported.
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let first = build(
        &manifest("one"),
        &store,
        &BuildOptions {
            on_event: Some(Box::new(move |e| ev.lock().unwrap().push(e.to_json_line()))),
            ..opts(&out)
        },
    )
    .unwrap();
    assert_eq!(
        first.ran(),
        ["os/hostname", "os/tree.normalize", "tar/archive.tar"]
    );
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(r#""event":"stage-done""#))
    );
    let tar1 = std::fs::read(out.join("root.tar")).unwrap();
    let entries = tar_entries(&out.join("root.tar"));
    let names: Vec<&str> = entries.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(names, ["etc", "etc/hostname"]);
    assert_eq!(entries[1].2, b"one\n");
    assert!(entries.iter().all(|(_, m, _)| *m <= 1_700_000_000));

    // Second build: nothing runs, same output.
    std::fs::remove_file(out.join("root.tar")).unwrap();
    let second = build(&manifest("one"), &store, &opts(&out)).unwrap();
    assert!(second.ran().is_empty(), "{:?}", second.ran());
    assert_eq!(std::fs::read(out.join("root.tar")).unwrap(), tar1);

    // Only the hostname changes: it and what follows run again.
    let third = build(&manifest("two"), &store, &opts(&out)).unwrap();
    assert_eq!(
        third.ran(),
        ["os/hostname", "os/tree.normalize", "tar/archive.tar"]
    );
    assert_eq!(tar_entries(&out.join("root.tar"))[1].2, b"two\n");

    // --no-cache runs everything.
    let fourth = build(
        &manifest("two"),
        &store,
        &BuildOptions {
            no_cache: true,
            ..opts(&out)
        },
    )
    .unwrap();
    assert_eq!(fourth.ran().len(), 3);

    // An empty store, a later wall-clock time: byte-identical archive.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let store2 = Store::open(tmp.path().join("store2")).unwrap();
    let out2 = tmp.path().join("out2");
    let again = build(&manifest("one"), &store2, &opts(&out2)).unwrap();
    assert_eq!(again.ran().len(), 3);
    assert_eq!(std::fs::read(out2.join("root.tar")).unwrap(), tar1);
}

#[test]
fn options_change_of_last_stage_reruns_only_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let out = tmp.path().join("out");
    build(&manifest("one"), &store, &opts(&out)).unwrap();
    let mut m = manifest("one");
    m.pipelines[1].stages[0].options = serde_json::json!({"filename": "other.tar"});
    m.exports[0].filename = "other.tar".into();
    let r = build(&m, &store, &opts(&out)).unwrap();
    assert_eq!(r.ran(), ["tar/archive.tar"]);
    assert!(out.join("other.tar").is_file());
}

#[test]
fn unknown_stage_and_failing_stage_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let mut m = manifest("one");
    m.pipelines[0].stages[0].kind = "nope".into();
    assert!(build(&m, &store, &BuildOptions::default()).is_err());
    let bad = manifest("not a hostname!");
    let err = build(&bad, &store, &BuildOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("hostname"), "{err}");
}
