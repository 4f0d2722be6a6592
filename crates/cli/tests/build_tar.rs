//! End to end against the real archive (the host's apt sources): `kiln build --type tar`
//! of a minimal bookworm, built again warm (no stage runs), then with another hostname
//! (only `hostname` and what follows run), then from an empty store (byte-identical tar).
//!
//! Needs network, root and bubblewrap (CI has them: it runs with the rest of the tests):
//! `cargo test -p kiln-cli --test build_tar -- --nocapture`

use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn blueprint(dir: &Path, hostname: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{hostname}.toml"));
    std::fs::write(
        &path,
        format!(
            "name = \"tar-e2e\"\n\n[[packages]]\nname = \"systemd-sysv\"\n\n\
             [customizations]\nhostname = \"{hostname}\"\n"
        ),
    )
    .unwrap();
    path
}

/// Runs `kiln build` and returns the `pipeline/stage` of the stages that ran.
fn build(store: &Path, bp: &Path, out: &Path) -> Vec<String> {
    let start = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("--store")
        .arg(store)
        .arg("build")
        .arg(bp)
        .args([
            "--type",
            "tar",
            "--distro",
            "debian-12",
            "--progress",
            "json",
        ])
        .arg("--output")
        .arg(out)
        // The same manifest whatever the archive's Release dates say.
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("build took {:.1}s", start.elapsed().as_secs_f64());
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "stage-done" && e["cached"] == false)
        .map(|e| {
            format!(
                "{}/{}",
                e["pipeline"].as_str().unwrap(),
                e["stage"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn tar_of_minimal_bookworm() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let out = tmp.path().join("out");
    let one = blueprint(tmp.path(), "one");

    let ran = build(&store, &one, &out);
    assert_eq!(ran, ["os/deb.install", "os/hostname", "tar/archive.tar"]);
    let tar1 = std::fs::read(out.join("root.tar")).unwrap();

    let warm = Instant::now();
    assert!(build(&store, &one, &out).is_empty());
    eprintln!("warm build: {:.2}s", warm.elapsed().as_secs_f64());

    let two = blueprint(tmp.path(), "two");
    assert_eq!(
        build(&store, &two, &out),
        ["os/hostname", "tar/archive.tar"]
    );

    let store2 = tmp.path().join("store2");
    let out2 = tmp.path().join("out2");
    assert_eq!(build(&store2, &one, &out2).len(), 3);
    assert!(
        std::fs::read(out2.join("root.tar")).unwrap() == tar1,
        "the tar differs between two builds with empty stores"
    );
}
