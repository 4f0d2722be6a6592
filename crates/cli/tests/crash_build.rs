//! Crash safety of a whole build: `kiln build-manifest` of a minimal bookworm tar is
//! killed with SIGKILL at pseudo-random moments (while downloading, installing,
//! committing, archiving, exporting), each kill followed by the next attempt on the same
//! store until one runs to the end, then again from an empty store until a dozen kills
//! landed. Every finished `root.tar` must equal the one of an uninterrupted build in
//! another store, `kiln store verify` must find nothing damaged,
//! and no file in the output directory may look like a finished `root.tar` unless it is
//! one.
//!
//! Uses the real archive through the host's apt sources, root and bubblewrap, as the
//! rest of the build tests.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn kiln(store: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.arg("--store")
        .arg(store)
        .env("SOURCE_DATE_EPOCH", "1700000000");
    c
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[test]
fn sigkill_at_random_moments_then_an_identical_build() {
    let dir = tempfile::tempdir().unwrap();
    let bp = dir.path().join("bp.toml");
    std::fs::write(
        &bp,
        "name = \"crash\"\n[customizations]\nhostname = \"crash\"\n",
    )
    .unwrap();
    let meta = dir.path().join("meta");
    let manifest = dir.path().join("m.json");
    let out = kiln(&meta)
        .args(["manifest", "--type", "tar", "--distro", "debian-12"])
        .arg(&bp)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&manifest, &out.stdout).unwrap();

    let build = |store: &Path, output: &Path| {
        kiln(store)
            .arg("build-manifest")
            .arg(&manifest)
            .arg("--output")
            .arg(output)
            .args(["--progress", "none"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };

    // The reference, and how long a build takes.
    let reference_store = dir.path().join("ref-store");
    let reference_out = dir.path().join("ref-out");
    let t = Instant::now();
    let r = build(&reference_store, &reference_out)
        .wait_with_output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let full = t.elapsed();
    let expected = sha256(&reference_out.join("root.tar"));
    eprintln!("uninterrupted build: {:.1}s", full.as_secs_f64());

    // Kills come in rounds. A round starts from an empty store and kills attempts at
    // random moments until one runs to the end; each attempt resumes from what the
    // killed ones committed, so a round holds only a few kills before the store has
    // everything. Rounds repeat until enough kills landed: counting on a fixed number
    // of attempts in one store made the count depend on the machine's speed.
    const KILLS: u32 = 12;
    const MAX_ATTEMPTS: u32 = 60;
    let output = dir.path().join("out");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut killed, mut attempts, mut round) = (0, 0, 0);
    let mut store = dir.path().join("store-0");
    while killed < KILLS {
        assert!(
            attempts < MAX_ATTEMPTS,
            "only {killed} of {attempts} attempts were interrupted"
        );
        attempts += 1;
        let mut child = build(&store, &output);
        // Early kills hit downloads and the first stages; later ones the rest.
        let wait = Duration::from_millis(rng.below(full.as_millis() as u64 * 2 / 3 + 1));
        std::thread::sleep(wait);
        match child.try_wait().unwrap() {
            Some(status) => {
                let rest = child.wait_with_output().unwrap();
                assert!(
                    status.success(),
                    "attempt {attempts} failed on its own: {}",
                    String::from_utf8_lossy(&rest.stderr)
                );
                assert_eq!(sha256(&output.join("root.tar")), expected);
                verify_store(&store);
                round += 1;
                store = dir.path().join(format!("store-{round}"));
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                killed += 1;
            }
        }
        // Whatever sits in the output directory under the final name is complete.
        let tar = output.join("root.tar");
        if tar.exists() {
            assert_eq!(
                sha256(&tar),
                expected,
                "a killed build left a wrong root.tar"
            );
        }
    }
    eprintln!("{killed} of {attempts} attempts killed, {round} rounds completed before the last");

    // The last round ends with a build run to the end on what the kills left.
    let last = build(&store, &output).wait_with_output().unwrap();
    assert!(
        last.status.success(),
        "{}",
        String::from_utf8_lossy(&last.stderr)
    );
    assert_eq!(sha256(&output.join("root.tar")), expected);
    verify_store(&store);
}

/// `kiln store verify` finds every blob of the store intact.
fn verify_store(store: &Path) {
    let verify = kiln(store)
        .args(["store", "verify", "--json"])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(report["bad_blobs"], serde_json::json!([]));
    assert!(report["blobs_checked"].as_u64().unwrap() > 50);
}
