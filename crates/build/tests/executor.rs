//! The executor on a tiny manifest that needs no packages: `hostname` + `tree.normalize`
//! in pipeline `os`, `archive.tar` of it in pipeline `tar`.

use kiln_build::events::Event;
use kiln_build::executor::{BuildError, BuildOptions, StageStatus, build};
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

/// `manifest("one")` with a second `hostname` stage in pipeline `os`.
fn manifest_two_hostnames(second: &str) -> Manifest {
    let mut m = manifest("one");
    let mut extra = m.pipelines[0].stages[0].clone();
    extra.options = serde_json::json!({ "hostname": second });
    m.pipelines[0].stages.insert(1, extra);
    m
}

#[test]
fn stage_logs_and_timings() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let out = tmp.path().join("out");
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let r = build(
        &manifest("one"),
        &store,
        &BuildOptions {
            on_event: Some(Box::new(move |e| ev.lock().unwrap().push(e.clone()))),
            ..opts(&out)
        },
    )
    .unwrap();
    let logs: Vec<_> = r.stages.iter().map(|s| s.log.clone().unwrap()).collect();
    assert_eq!(
        logs,
        [
            out.join("logs/os-0-hostname.log"),
            out.join("logs/os-1-tree.normalize.log"),
            out.join("logs/tar-0-archive.tar.log"),
        ]
    );
    let hostname_log = std::fs::read_to_string(&logs[0]).unwrap();
    assert!(hostname_log.contains(&r.stages[0].id), "{hostname_log}");
    assert!(
        hostname_log.contains("setting the hostname to \"one\""),
        "{hostname_log}"
    );
    assert!(hostname_log.lines().last().unwrap().starts_with("# ok in "));
    let tar_log = std::fs::read_to_string(&logs[2]).unwrap();
    assert!(tar_log.contains("wrote root.tar: "), "{tar_log}");
    assert!(r.stages.iter().all(|s| s.seconds > 0.0), "{:?}", r.stages);
    let done: Vec<(f64, Option<String>)> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::StageDone { seconds, log, .. } => Some((*seconds, log.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(done.len(), 3);
    for (s, (seconds, log)) in r.stages.iter().zip(&done) {
        assert_eq!(*seconds, s.seconds);
        assert_eq!(
            log.as_deref(),
            Some(&*s.log.as_ref().unwrap().to_string_lossy())
        );
    }

    // Cached: the logs of the run that made the trees stay.
    let again = build(&manifest("one"), &store, &opts(&out)).unwrap();
    assert!(again.ran().is_empty());
    assert_eq!(std::fs::read_to_string(&logs[0]).unwrap(), hostname_log);
    // Cached into another output directory: a note, not a stale log.
    let out2 = tmp.path().join("out2");
    build(&manifest("one"), &store, &opts(&out2)).unwrap();
    let note = std::fs::read_to_string(out2.join("logs/os-0-hostname.log")).unwrap();
    assert!(note.contains("# cached"), "{note}");
}

#[test]
fn failing_stage_is_named_shows_output_keeps_tree_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let store_dir = tmp.path().join("store");
    let store = Store::open(&store_dir).unwrap();
    let out = tmp.path().join("out");
    let bad = manifest_two_hostnames("bad name!");
    let ids = bad.stage_ids(kiln_build::stages::version).unwrap();

    // --keep-failed: the error names the stage, shows its output and where its tree is.
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let err = build(
        &bad,
        &store,
        &BuildOptions {
            keep_failed: true,
            on_event: Some(Box::new(move |e| ev.lock().unwrap().push(e.clone()))),
            ..opts(&out)
        },
    )
    .unwrap_err();
    let text = err.to_string();
    let BuildError::Stage(f) = err else {
        panic!("not a stage error: {text}");
    };
    assert_eq!(
        (f.pipeline.as_str(), f.index, f.kind.as_str()),
        ("os", 1, "hostname")
    );
    assert_eq!(f.id, ids[0].stages[1]);
    assert!(
        text.starts_with("pipeline \"os\", stage 1 (hostname) failed: invalid hostname"),
        "{text}"
    );
    assert!(
        text.contains("setting the hostname to \"bad name!\""),
        "{text}"
    );
    let kept = out.join("failed-os-1");
    assert_eq!(f.kept.as_deref(), Some(kept.as_path()));
    assert!(text.contains(&kept.display().to_string()), "{text}");
    // The working tree as the failed stage left it: its parent's content.
    assert_eq!(std::fs::read(kept.join("etc/hostname")).unwrap(), b"one\n");
    let log = std::fs::read_to_string(out.join("logs/os-1-hostname.log")).unwrap();
    assert!(log.contains("# failed after"), "{log}");
    assert!(text.contains("logs/os-1-hostname.log"), "{text}");
    assert!(events.lock().unwrap().iter().any(|e| matches!(
        e,
        Event::StageFailed { pipeline, index: 1, kept: Some(_), .. } if pipeline == "os"
    )));

    // Nothing of the failed stage is in the store, the stage before it is, and no
    // working directory is left behind.
    assert!(store.has_tree(&ids[0].stages[0]));
    assert!(!store.has_tree(&ids[0].stages[1]));
    let leftovers = || -> Vec<String> {
        std::fs::read_dir(store_dir.join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".lock"))
            .collect()
    };
    assert!(leftovers().is_empty(), "{:?}", leftovers());

    // Without --keep-failed the tree is removed; the run resumed after stage 0.
    let out2 = tmp.path().join("out2");
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let BuildError::Stage(f) = build(
        &bad,
        &store,
        &BuildOptions {
            on_event: Some(Box::new(move |e| ev.lock().unwrap().push(e.clone()))),
            ..opts(&out2)
        },
    )
    .unwrap_err() else {
        panic!("not a stage error");
    };
    assert!(f.kept.is_none());
    assert!(!out2.join("failed-os-1").exists());
    assert!(leftovers().is_empty(), "{:?}", leftovers());
    assert!(events.lock().unwrap().iter().any(|e| matches!(
        e,
        Event::StageDone { index: 0, cached: true, pipeline, .. } if pipeline == "os"
    )));

    // Fixed: the build resumes from the committed stage 0.
    let r = build(&manifest_two_hostnames("two"), &store, &opts(&out)).unwrap();
    assert_eq!(r.stages[0].status, StageStatus::Cached);
    assert_eq!(r.stages[0].id, ids[0].stages[0]);
    assert_eq!(
        r.ran(),
        ["os/hostname", "os/tree.normalize", "tar/archive.tar"]
    );
    assert_eq!(r.stages[1].index, 1);
    assert_eq!(tar_entries(&out.join("root.tar"))[1].2, b"two\n");
}

/// A stage restored with hard links (`hostname` is one) replaces files instead of writing
/// through them: the parent's stored tree keeps its content.
#[test]
fn hardlink_restored_stages_leave_the_parent_tree_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let out = tmp.path().join("out");
    let m = manifest_two_hostnames("two");
    let report = build(&m, &store, &opts(&out)).unwrap();
    let first = store.lookup_tree(&report.stages[0].id).unwrap().unwrap();
    let second = store.lookup_tree(&report.stages[1].id).unwrap().unwrap();
    let read =
        |t: &kiln_store::TreeRef| std::fs::read_to_string(t.path().join("etc/hostname")).unwrap();
    assert_eq!(read(&first), "one\n");
    assert_eq!(read(&second), "two\n");
    use std::os::unix::fs::MetadataExt;
    let ino = |t: &kiln_store::TreeRef| {
        std::fs::metadata(t.path().join("etc"))
            .map(|m| m.ino())
            .unwrap()
    };
    assert_ne!(ino(&first), ino(&second), "directories are never shared");
}
