//! Helpers shared by the image tests of the `kiln` binary.

use std::path::Path;
use std::process::Command;

/// Runs `cmd`, fails the test with its output unless it succeeds, returns its stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The sha256 of a file, in hex (sha256sum: files are GBs).
#[allow(dead_code)] // not every test binary that includes this module compares images
pub fn sha256(path: &Path) -> String {
    run(Command::new("sha256sum").arg(path))
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}
