//! Helpers of the build tests that install real packages: the closure of a package list
//! from the real archive (through the kiln binary: `KILN_BIN`, else `cargo run`) and the
//! `.deb` files, verified by sha256.

use sha2::{Digest, Sha256};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn sha256_file(p: &Path) -> String {
    let mut f = fs::File::open(p).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub fn depsolve(packages: &str) -> serde_json::Value {
    let mut cmd = match std::env::var_os("KILN_BIN") {
        Some(bin) => Command::new(bin),
        None => {
            let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            c.args(["run", "-q", "-p", "kiln-cli", "--"]);
            c
        }
    };
    let out = cmd
        .args([
            "depsolve",
            "--json",
            "--distro",
            "debian-12",
            "--packages",
            packages,
        ])
        .output()
        .expect("running kiln depsolve");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn download(solution: &serde_json::Value, dir: &Path) -> Vec<PathBuf> {
    let mut debs = Vec::new();
    for p in solution["packages"].as_array().unwrap() {
        let url = p["url"].as_str().unwrap();
        let sha = p["sha256"].as_str().unwrap();
        let path = dir.join(url.rsplit('/').next().unwrap());
        if !path.exists() || sha256_file(&path) != sha {
            let st = Command::new("curl")
                .args(["-sSfL", "--retry", "3", "-o"])
                .arg(&path)
                .arg(url)
                .status()
                .unwrap();
            assert!(st.success(), "downloading {url}");
        }
        assert_eq!(sha256_file(&path), sha, "{url}");
        debs.push(path);
    }
    debs
}
