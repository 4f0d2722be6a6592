//! End to end against the real Debian archive, through the host's configured mirror:
//! `kiln depsolve` (which fetches, verifies and indexes the metadata itself) must give
//! exactly the packages and versions that `apt-get -s` gives on an empty system, with apt
//! reading freshly downloaded lists of the same sources in a private directory.
//!
//! Skipped (with a message) when the mirror cannot be reached, unless `CI` is set: CI
//! machines reach the archive, so there a failure to fetch is a failure.

use std::path::Path;
use std::process::Command;

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

/// Requests checked here; the full list of 30+ runs in kiln-depsolve's parity test.
const REQUESTS: &[&str] = &[
    "hello",
    "nginx php-fpm",
    "postgresql",
    "postfix dovecot-imapd",
    "openssh-server sudo linux-image-amd64 systemd-sysv",
    "build-essential git",
];

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn kiln(&self, args: &[&str]) -> std::process::Output {
        let d = self.dir.path();
        Command::new(KILN)
            .arg("--store")
            .arg(d.join("store"))
            .arg("--state")
            .arg(d.join("state"))
            .arg("--config")
            .arg(d.join("kiln.toml"))
            .args(args)
            .output()
            .expect("run kiln")
    }

    fn apt_opts(&self) -> Vec<String> {
        let d = self.dir.path();
        [
            format!(
                "Dir::Etc::SourceList={}",
                d.join("apt/sources.list").display()
            ),
            format!("Dir::Etc::SourceParts={}", d.join("apt/empty").display()),
            format!("Dir::State::Lists={}", d.join("apt/lists").display()),
            format!("Dir::State::status={}", d.join("apt/status").display()),
            format!("Dir::Cache={}", d.join("apt/cache").display()),
            "Debug::NoLocking=1".into(),
            "APT::Install-Recommends=false".into(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect()
    }
}

fn ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

#[test]
fn depsolve_matches_apt_on_the_live_archive() {
    if Command::new("apt-get").arg("--version").output().is_err() {
        assert!(!ci(), "apt-get is required in CI");
        eprintln!("SKIP: apt-get not found");
        return;
    }
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
    };
    std::fs::write(env.dir.path().join("kiln.toml"), "").unwrap();

    // kiln's view of the debian-12 sources, turned into an apt sources.list.
    let out = env.kiln(&["local", "sources", "info", "*", "--json"]);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!ci(), "kiln sources info failed: {err}");
        eprintln!("SKIP: no Debian mirror configured on this host: {err}");
        return;
    }
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut list = String::new();
    for (_, s) in info["sources"].as_object().unwrap() {
        let suite = s["suite"]
            .as_str()
            .unwrap()
            .replace("{codename}", "bookworm");
        let comps: Vec<&str> = s["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let keys: Vec<&str> = s["gpgkeys"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|k| k.as_str())
            .filter(|k| Path::new(k).is_file())
            .collect();
        let signed = if keys.is_empty() {
            String::new()
        } else {
            format!(" signed-by={}", keys.join(","))
        };
        list += &format!(
            "deb [arch=amd64{signed}] {} {suite} {}\n",
            s["url"].as_str().unwrap(),
            comps.join(" ")
        );
    }
    let apt = env.dir.path().join("apt");
    for d in ["empty", "lists/partial", "cache/archives/partial"] {
        std::fs::create_dir_all(apt.join(d)).unwrap();
    }
    std::fs::write(apt.join("sources.list"), &list).unwrap();
    std::fs::write(apt.join("status"), "").unwrap();

    // apt first, then kiln: kiln re-checks InRelease on every run, so an archive update
    // in between shows up as a difference only in the rare case it lands between the two.
    let update = Command::new("apt-get")
        .args(env.apt_opts())
        .args(["-qq", "update"])
        .output()
        .unwrap();
    if !update.status.success() {
        let err = String::from_utf8_lossy(&update.stderr);
        assert!(!ci(), "apt-get update failed: {err}");
        eprintln!("SKIP: the mirror is unreachable: {err}");
        return;
    }

    for request in REQUESTS {
        let pkgs: Vec<&str> = request.split_whitespace().collect();
        let apt_out = Command::new("apt-get")
            .args(env.apt_opts())
            .arg("-s")
            .arg("install")
            .args(&pkgs)
            .output()
            .unwrap();
        assert!(
            apt_out.status.success(),
            "apt-get -s install {request} failed"
        );
        let mut want: Vec<String> = String::from_utf8_lossy(&apt_out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("Inst "))
            .map(|l| {
                let mut it = l.split_whitespace();
                let name = it.next().unwrap();
                let version = it.next().unwrap().trim_start_matches('(');
                format!("{name}={version}")
            })
            .collect();
        let by_name = |l: &String| l.split('=').next().unwrap_or_default().to_string();
        want.sort_by_key(by_name);

        let out = env.kiln(&[
            "depsolve",
            "--distro",
            "debian-12",
            "--packages",
            &pkgs.join(","),
        ]);
        assert!(
            out.status.success(),
            "kiln depsolve {request} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        let mut sorted = got.clone();
        sorted.sort_by_key(by_name);
        assert_eq!(got, sorted, "kiln's output must be sorted by name");
        if got != want {
            let only_kiln: Vec<_> = got.iter().filter(|p| !want.contains(p)).collect();
            let only_apt: Vec<_> = want.iter().filter(|p| !got.contains(p)).collect();
            panic!(
                "{request}: kiln and apt differ\n only kiln: {only_kiln:?}\n only apt: {only_apt:?}"
            );
        }
        eprintln!("{request}: {} packages, identical to apt", got.len());
    }

    // --json carries what a manifest needs: a URL and a sha256 for every package.
    let out = env.kiln(&[
        "depsolve",
        "--distro",
        "debian-12",
        "--json",
        "--packages",
        "hello",
    ]);
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pkgs = json["packages"].as_array().unwrap();
    assert!(pkgs.iter().any(|p| p["name"] == "hello"));
    for p in pkgs {
        assert_eq!(p["sha256"].as_str().unwrap().len(), 64, "{p}");
        assert!(p["url"].as_str().unwrap().ends_with(".deb"), "{p}");
        assert!(p["size"].as_u64().unwrap() > 0);
        assert!(!p["release"].as_str().unwrap().is_empty());
    }
}
