//! The `kiln` binary as a user meets it, without the network: errors on bad input,
//! custom sources management, blueprint checking.

use std::path::Path;
use std::process::{Command, Output};

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

fn kiln(dir: &Path, args: &[&str]) -> Output {
    // Mirrors on a closed loopback port: nothing here may reach a real archive.
    let config = dir.join("kiln.toml");
    if !config.exists() {
        std::fs::write(
            &config,
            "[mirrors]\ndebian = \"http://127.0.0.1:9/debian\"\ndebian-security = \"http://127.0.0.1:9/debian-security\"\n",
        )
        .unwrap();
    }
    Command::new(KILN)
        .arg("--store")
        .arg(dir.join("store"))
        .arg("--state")
        .arg(dir.join("state"))
        .arg("--config")
        .arg(&config)
        .args(args)
        .output()
        .expect("run kiln")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn malformed_blueprint_names_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let bp = dir.path().join("bad.toml");
    std::fs::write(
        &bp,
        "name = \"x\"\n\n[[packages]]\nname = \"nginx\"\nversoin = \"1.*\"\n",
    )
    .unwrap();
    let out = kiln(dir.path(), &["depsolve", bp.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("line 5"), "{err}");
    assert!(err.contains("versoin"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    std::fs::write(&bp, "name = \"bad name!\"\n").unwrap();
    let out = kiln(dir.path(), &["blueprint", "check", bp.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("name"), "{}", stderr(&out));
}

#[test]
fn blueprint_check_normalises() {
    let dir = tempfile::tempdir().unwrap();
    let bp = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/example-http-server.toml");
    let out = kiln(dir.path(), &["blueprint", "check", bp.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("name = \"example-http-server\""));
    let out = kiln(
        dir.path(),
        &["blueprint", "check", "--json", bp.to_str().unwrap()],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["packages"][0]["name"], "apache2");
}

#[test]
fn unreachable_mirror_without_cache_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = kiln(
        dir.path(),
        &["depsolve", "--distro", "debian-12", "--packages", "hello"],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("127.0.0.1:9"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // Nothing that looks like cached metadata was left behind.
    let idx = dir.path().join("store/repo-cache/index");
    assert!(!idx.exists() || std::fs::read_dir(idx).unwrap().next().is_none());
}

#[test]
fn custom_sources_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = kiln(d, &["local", "sources", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "debian\ndebian-updates\ndebian-security\n");

    let src = d.join("mine.toml");
    std::fs::write(
        &src,
        "id = \"mine\"\nname = \"My repo\"\ntype = \"deb\"\nurl = \"http://127.0.0.1:9/repo\"\nsuite = \"stable\"\ncheck_gpg = false\n",
    )
    .unwrap();
    let out = kiln(d, &["local", "sources", "add", src.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&kiln(d, &["local", "sources", "list"])).ends_with("mine\n"));

    let out = kiln(d, &["local", "sources", "info", "mine", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sources"]["mine"]["url"], "http://127.0.0.1:9/repo/");
    assert_eq!(v["sources"]["mine"]["system"], false);
    let out = kiln(d, &["local", "sources", "info", "debian"]);
    assert!(stdout(&out).contains("system = true"), "{}", stdout(&out));

    // System sources are read-only; ids cannot escape the state directory.
    assert!(
        !kiln(d, &["local", "sources", "delete", "debian"])
            .status
            .success()
    );
    std::fs::write(
        &src,
        "id = \"../evil\"\ntype = \"deb\"\nurl = \"http://127.0.0.1:9/x\"\n",
    )
    .unwrap();
    let out = kiln(d, &["local", "sources", "add", src.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(!d.join("evil.toml").exists() && !d.join("state/evil.toml").exists());

    assert!(
        kiln(d, &["local", "sources", "delete", "mine"])
            .status
            .success()
    );
    let out = kiln(d, &["local", "sources", "delete", "mine"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("mine"));
}

#[test]
fn store_status_and_gc_on_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let out = kiln(dir.path(), &["store", "status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["total"]["count"], 0);
    assert!(v["budget_bytes"].as_u64().unwrap() > 0);
    let out = kiln(dir.path(), &["store", "gc", "--budget", "0", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["evicted"].as_array().unwrap().len(), 0);
}
