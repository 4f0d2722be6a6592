//! Crash safety of a whole build: `kiln build-manifest` of a minimal bookworm tar is
//! killed with SIGKILL at 20 pseudo-random moments (while downloading, installing,
//! committing, archiving, exporting), each kill followed by the next attempt on the same
//! store; then a build runs to the end. Its `root.tar` must equal the one of an
//! uninterrupted build in another store, `kiln store verify` must find nothing damaged,
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

    let store = dir.path().join("store");
    let output = dir.path().join("out");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut killed = 0;
    for i in 0..20 {
        let mut child = build(&store, &output);
        // Early kills hit downloads and the first stages; later ones the rest. Each
        // attempt resumes from what the previous ones committed, so it is shorter.
        let wait = Duration::from_millis(rng.below(full.as_millis() as u64 * 2 / 3 + 1));
        std::thread::sleep(wait);
        match child.try_wait().unwrap() {
            Some(status) => {
                assert!(status.success(), "attempt {i} failed on its own");
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
    eprintln!("{killed} of 20 attempts killed");
    assert!(killed >= 10, "too few attempts were interrupted ({killed})");

    let last = build(&store, &output).wait_with_output().unwrap();
    assert!(
        last.status.success(),
        "{}",
        String::from_utf8_lossy(&last.stderr)
    );
    assert_eq!(sha256(&output.join("root.tar")), expected);

    let verify = kiln(&store)
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
