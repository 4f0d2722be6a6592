//! Composes against a real `kiln serve` process on a temporary unix socket: the test
//! composes (`?test=1|2`), listings and filters, error ids, tarballs, delete, the
//! failure reason of a failed build, and (with the real archive, through the host's apt
//! configuration) real `tar` builds: kill -9 of the server during a build with another
//! compose waiting, the restart that resumes it, the image download, the live events,
//! and cancel of a running build (its processes must be gone).
//!
//! The kiln binary is `KILN_BIN` (scripts/test sets it), else `target/debug/kiln` next
//! to this test, built first when missing.

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn kiln_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("KILN_BIN") {
        return PathBuf::from(p);
    }
    // target/debug/deps/compose-HASH -> target/debug/kiln
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("kiln");
    if !bin.exists() {
        let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "-q", "-p", "kiln-cli"])
            .status()
            .unwrap();
        assert!(st.success(), "cargo build -p kiln-cli");
    }
    bin
}

struct Server {
    child: Child,
    socket: PathBuf,
    state: PathBuf,
}

impl Server {
    /// `kiln serve` with state under `dir` and the given store; `fake_build` replaces the
    /// binary the workers run (KILN_BIN of the server).
    fn start(dir: &Path, store: &Path, fake_build: Option<&Path>) -> Server {
        let socket = dir.join("run/api.socket");
        let state = dir.join("state");
        let mut cmd = Command::new(kiln_bin());
        cmd.arg("--store")
            .arg(store)
            .arg("--state")
            .arg(&state)
            .arg("serve")
            .arg("--socket")
            .arg(&socket)
            .args(["--no-examples", "--workers", "1"])
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(f) = fake_build {
            cmd.env("KILN_BIN", f);
        }
        let child = cmd.spawn().expect("start kiln serve");
        let deadline = Instant::now() + Duration::from_secs(60);
        while UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "kiln serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server {
            child,
            socket,
            state,
        }
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn req(&self, method: &str, path: &str, ct: Option<&str>, body: &[u8]) -> Reply {
        let mut s = UnixStream::connect(&self.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(ct) = ct {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        Reply::parse(&raw)
    }

    fn get(&self, path: &str) -> Reply {
        self.req("GET", path, None, b"")
    }

    fn delete(&self, path: &str) -> Reply {
        self.req("DELETE", path, None, b"")
    }

    fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.req(
            "POST",
            path,
            Some("application/json"),
            body.to_string().as_bytes(),
        )
    }

    fn push(&self, toml: &str) {
        let r = self.req(
            "POST",
            "/api/v1/blueprints/new",
            Some("text/x-toml"),
            toml.as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }

    /// Starts a compose and returns its id.
    fn compose(&self, query: &str, body: Value) -> String {
        let r = self.post_json(&format!("/api/v1/compose{query}"), &body);
        assert_eq!(r.status, 200, "{}", r.text());
        let j = r.json();
        assert_eq!(j["status"], true, "{j}");
        j["build_id"].as_str().unwrap().to_string()
    }

    fn state_of(&self, id: &str) -> String {
        let j = self.get(&format!("/api/v1/compose/status/{id}")).json();
        j["uuids"][0]["queue_status"]
            .as_str()
            .unwrap_or("GONE")
            .to_string()
    }

    fn wait_for(&self, what: &str, timeout: Duration, mut f: impl FnMut(&Server) -> bool) {
        let deadline = Instant::now() + timeout;
        while !f(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn parse(raw: &[u8]) -> Reply {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("HTTP head");
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let mut body = raw[end + 4..].to_vec();
        if headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v == "chunked")
        {
            body = dechunk(&body);
        }
        Reply {
            status: status.parse().unwrap(),
            headers,
            body,
        }
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// `(status, first error id, first error msg)` of a weldr error.
    fn error(&self) -> (u16, String, String) {
        let j = self.json();
        assert_eq!(j["status"], false, "{j}");
        (
            self.status,
            j["errors"][0]["id"].as_str().unwrap().to_string(),
            j["errors"][0]["msg"].as_str().unwrap().to_string(),
        )
    }

    /// The member names of a tar reply.
    fn tar_names(&self) -> Vec<String> {
        let mut a = tar::Archive::new(self.body.as_slice());
        a.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap().trim(), 16).unwrap();
        b = &b[nl + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// Processes whose command line contains `needle` (a compose id is in its build's
/// output path), with their process groups.
fn processes_with(needle: &str) -> Vec<(i32, i32)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmd).contains(needle) {
            out.push((pid, pgid_of(pid).unwrap_or(0)));
        }
    }
    out
}

/// The process group of a live process (`None` for zombies: they run nothing, and who
/// reaps them is up to init).
fn pgid_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid pgrp ...
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut f = rest.split(' ');
    if f.next()? == "Z" {
        return None;
    }
    f.nth(1)?.parse().ok()
}

/// Processes in process group `pgid`.
fn group_members(pgid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| pgid_of(*pid) == Some(pgid))
        .collect()
}

const BP1: &str =
    "name = \"bp1\"\ndescription = \"d\"\nversion = \"0.0.1\"\n\n[[packages]]\nname = \"bash\"\n";

#[test]
fn test_composes_listings_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let s = Server::start(tmp.path(), &store, None);
    s.push(BP1);
    let req = json!({"blueprint_name": "bp1", "compose_type": "tar", "branch": "master"});

    // K01
    let types = s.get("/api/v1/compose/types").json();
    let names: Vec<&str> = types["types"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["enabled"] == true)
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"tar") && names.contains(&"qcow2"),
        "{types}"
    );
    assert_eq!(
        s.get("/api/v0/compose/types?distro=nope").error(),
        (400, "DistroError".into(), "Invalid distro: nope".into())
    );

    // K03: test composes end at once.
    let done = s.compose("?test=2", req.clone());
    let failed = s.compose("?test=1", req.clone());
    let fin = s.get("/api/v1/compose/finished").json();
    assert_eq!(fin["finished"].as_array().unwrap().len(), 1, "{fin}");
    let e = &fin["finished"][0];
    assert_eq!(e["id"], done.as_str());
    assert_eq!(e["blueprint"], "bp1");
    assert_eq!(e["version"], "0.0.1");
    assert_eq!(e["compose_type"], "tar");
    assert_eq!(e["queue_status"], "FINISHED");
    assert!(e["job_created"].is_number() && e["job_finished"].is_number());
    assert_eq!(e["uploads"], json!([]));
    let f = s.get("/api/v1/compose/failed").json();
    assert_eq!(f["failed"][0]["id"], failed.as_str());
    assert!(
        f["failed"][0]["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("test=1")
    );
    // K10: nothing queued; v0 entries have no uploads.
    let q = s.get("/api/v0/compose/queue").json();
    assert_eq!(q, json!({"new": [], "run": []}));
    assert!(
        s.get("/api/v0/compose/finished").json()["finished"][0]
            .get("uploads")
            .is_none()
    );

    // K12/K13: status lists, percent-encoded commas, filters, `*`.
    let st = |q: &str| -> Vec<String> {
        let j = s.get(&format!("/api/v1/compose/status/{q}")).json();
        j["uuids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };
    let mut both = vec![done.clone(), failed.clone()];
    both.sort();
    assert_eq!(st("*"), both);
    assert_eq!(st(&format!("{done}%2C{failed}")), both);
    assert_eq!(st("*?status=FINISHED"), vec![done.clone()]);
    assert_eq!(st("*?status=FAILED&blueprint=bp1"), vec![failed.clone()]);
    assert_eq!(st("*?blueprint=other"), Vec::<String>::new());
    assert_eq!(st("*?type=qcow2"), Vec::<String>::new());
    assert_eq!(st("*?type=tar&name=ignored").len(), 2);
    // K14
    assert_eq!(st("not-a-uuid"), Vec::<String>::new());

    // K15/K16
    let info = s.get(&format!("/api/v1/compose/info/{done}")).json();
    assert_eq!(info["id"], done.as_str());
    assert_eq!(info["blueprint"]["name"], "bp1");
    assert!(info["blueprint"]["packages"].is_array());
    assert!(info["deps"]["packages"].is_array());
    assert_eq!(info["queue_status"], "FINISHED");
    assert_eq!(info["config"], "");
    let unknown = "01234567-89ab-4def-8123-456789abcdef";
    assert_eq!(
        s.get(&format!("/api/v1/compose/info/{unknown}")).error(),
        (
            400,
            "UnknownUUID".into(),
            format!("{unknown} is not a valid build uuid")
        )
    );
    // Ids that try to leave the state directory are refused before any file is touched.
    for bad in ["..%2Fx", "..%2F..%2Fetc%2Fpasswd", "%2E%2E", "x%00y"] {
        for route in ["info", "log", "logs", "metadata", "results", "image"] {
            let (code, id, _) = s.get(&format!("/api/v1/compose/{route}/{bad}")).error();
            assert_eq!((code, id.as_str()), (400, "UnknownUUID"), "{route}/{bad}");
        }
    }
    let raw = s.get("/api/v1/compose/image/../../x");
    assert_eq!(raw.status, 404, "{}", raw.text());

    // K04/K05, MissingPost, uploads (K09).
    assert_eq!(
        s.post_json(
            "/api/v1/compose",
            &json!({"blueprint_name": "nope", "compose_type": "tar"})
        )
        .error(),
        (
            400,
            "UnknownBlueprint".into(),
            "Unknown blueprint name: nope".into()
        )
    );
    assert_eq!(
        s.post_json(
            "/api/v1/compose",
            &json!({"blueprint_name": "bp1", "compose_type": "floppy"})
        )
        .error(),
        (
            400,
            "ComposeError".into(),
            "Failed to get compose type \"floppy\": invalid image type: floppy".into()
        )
    );
    let r = s.req(
        "POST",
        "/api/v1/compose",
        Some("text/x-toml"),
        b"blueprint_name = \"bp1\"",
    );
    assert_eq!(r.error().1, "MissingPost");
    assert_eq!(
        s.post_json(
            "/api/v1/compose",
            &json!({"blueprint_name": "bp1", "compose_type": "tar", "upload": {"provider": "floppy"}})
        )
        .error()
        .1,
        "UploadError"
    );
    let up = s.compose(
        "?test=2",
        json!({"blueprint_name": "bp1", "compose_type": "tar", "compose_types": ["qcow2"],
            "size": 5368709120_u64,
            "upload": {"image_name": "img", "provider": "aws",
                "settings": {"region": "r", "accessKeyID": "a", "secretAccessKey": "SECRET"}}}),
    );
    let e = s.get(&format!("/api/v1/compose/status/{up}")).json()["uuids"][0].clone();
    assert_eq!(e["compose_types"], json!(["tar", "qcow2"]));
    // K07
    assert_eq!(e["image_size"], 5368709120_u64);
    let u = &e["uploads"][0];
    assert_eq!(u["provider_name"], "aws");
    assert_eq!(u["image_name"], "img");
    assert_eq!(u["settings"]["region"], "r");
    assert!(u["settings"].get("secretAccessKey").is_none(), "{u}");
    assert!(!e.to_string().contains("SECRET"));

    // K17-K25 for a test compose.
    assert!(
        s.get(&format!("/api/v1/compose/log/{done}"))
            .text()
            .contains("FINISHED")
    );
    let logs = s.get(&format!("/api/v1/compose/logs/{done}"));
    assert_eq!(logs.status, 200);
    assert_eq!(logs.header("content-type"), "application/x-tar");
    assert_eq!(
        logs.header("content-disposition"),
        format!("attachment; filename={done}-logs.tar")
    );
    assert_eq!(logs.tar_names(), vec!["logs/build.log".to_string()]);
    let meta = s.get(&format!("/api/v1/compose/metadata/{done}"));
    assert_eq!(meta.tar_names(), vec![format!("{done}-blueprint.toml")]);
    let (code, id, msg) = s.get(&format!("/api/v1/compose/image/{done}")).error();
    assert_eq!((code, id.as_str()), (500, "InternalServerError"));
    assert!(
        msg.contains("Error accessing image file for compose"),
        "{msg}"
    );
    assert_eq!(
        s.get(&format!("/api/v1/compose/log/{unknown}")).error(),
        (
            400,
            "UnknownUUID".into(),
            format!("Compose {unknown} doesn't exist")
        )
    );

    // K27/K28
    assert_eq!(
        s.delete(&format!("/api/v1/compose/cancel/{done}")).error(),
        (
            400,
            "BuildInWrongState".into(),
            format!("Build {done} is not in WAITING or RUNNING.")
        )
    );
    assert_eq!(
        s.delete(&format!("/api/v1/compose/cancel/{unknown}"))
            .error()
            .1,
        "UnknownUUID"
    );

    // Survives kill -9.
    let (state, socket) = (s.state.clone(), s.socket.clone());
    s.kill9();
    let s = Server::start(tmp.path(), &store, None);
    assert_eq!((s.state.clone(), s.socket.clone()), (state, socket));
    assert_eq!(s.state_of(&done), "FINISHED");
    assert_eq!(s.state_of(&failed), "FAILED");
    assert_eq!(s.state_of(&up), "FINISHED");

    // K29/K30
    let dir = s.state.join("composes").join(&done);
    assert!(dir.exists());
    let r = s
        .delete(&format!(
            "/api/v1/compose/delete/{done},not-a-uuid,{unknown}"
        ))
        .json();
    assert_eq!(r["uuids"], json!([{"uuid": done, "status": true}]));
    let errs: Vec<&str> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(errs, ["UnknownUUID", "UnknownUUID"]);
    assert!(!dir.exists(), "the compose's files are still there");
    assert_eq!(s.state_of(&done), "GONE");
    assert_eq!(
        s.get(&format!("/api/v1/compose/info/{done}")).error().1,
        "UnknownUUID"
    );
}

/// A build that fails at a stage: the stage and the error are in status and info; cancel
/// of a waiting compose and of a running build. The workers run a stand-in for `kiln
/// build-manifest` that reports a failed stage (after sleeping while `hold` exists).
#[test]
fn failed_stage_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = tmp.path().join("fake-kiln");
    let hold = tmp.path().join("hold");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\nif [ -e {} ]; then sleep 600; fi\n", hold.display())
            + "echo '{\"event\":\"stage-start\",\"pipeline\":\"os\",\"stage\":\"deb.install\",\"index\":0,\"total\":2,\"id\":\"x\"}'\n\
         echo '{\"event\":\"stage-failed\",\"pipeline\":\"os\",\"stage\":\"deb.install\",\"index\":0,\"total\":2,\"id\":\"x\",\"seconds\":0.5,\"message\":\"dpkg: error processing package bash\"}'\n\
         echo 'error: stage deb.install failed' >&2\n\
         exit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let s = Server::start(tmp.path(), &tmp.path().join("store"), Some(&fake));
    s.push(BP1);
    let req = json!({"blueprint_name": "bp1", "compose_type": "tar"});

    // Cancel: of a waiting compose (off the queue), of a running build (its process
    // group, here the shell and its sleep, is gone).
    std::fs::write(&hold, "").unwrap();
    let run = s.compose("", req.clone());
    let wait = s.compose("", req.clone());
    s.wait_for("the stand-in to run", Duration::from_secs(60), |s| {
        s.state_of(&run) == "RUNNING" && !processes_with(&run).is_empty()
    });
    assert_eq!(s.state_of(&wait), "WAITING");
    let pgid = processes_with(&run)[0].1;
    assert!(group_members(pgid).len() >= 2, "sh and sleep");
    assert_eq!(
        s.delete(&format!("/api/v1/compose/cancel/{wait}")).json(),
        json!({"uuid": wait, "status": true})
    );
    let e = s.get(&format!("/api/v1/compose/status/{wait}")).json()["uuids"][0].clone();
    assert_eq!(e["queue_status"], "FAILED");
    assert_eq!(e["failure"]["message"], "canceled before it started");
    assert_eq!(
        s.delete(&format!("/api/v1/compose/cancel/{run}")).json()["status"],
        true
    );
    assert_eq!(s.state_of(&run), "FAILED");
    assert!(group_members(pgid).is_empty(), "{:?}", group_members(pgid));
    assert_eq!(
        s.get("/api/v1/compose/queue").json(),
        json!({"new": [], "run": []})
    );
    std::fs::remove_file(&hold).unwrap();

    // A real compose: depsolved against the archive, manifest written, then "built".
    let id = s.compose("", json!({"blueprint_name": "bp1", "compose_type": "tar"}));
    s.wait_for("the build to fail", Duration::from_secs(60), |s| {
        s.state_of(&id) == "FAILED"
    });
    let want = json!({"pipeline": "os", "stage": "deb.install",
        "message": "dpkg: error processing package bash"});
    let e = s.get(&format!("/api/v1/compose/status/{id}")).json()["uuids"][0].clone();
    assert_eq!(e["failure"], want);
    let info = s.get(&format!("/api/v0/compose/info/{id}")).json();
    assert_eq!(info["failure"], want);
    // The depsolve of the committed blueprint is in the info.
    assert!(
        info["deps"]["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "bash"),
        "{info}"
    );
    let log = s.get(&format!("/api/v1/compose/log/{id}")).text();
    assert!(
        log.contains("[os 1/2] deb.install: FAILED after 0.5s: dpkg: error"),
        "{log}"
    );
    assert!(log.contains("error: stage deb.install failed"), "{log}");
    let meta = s.get(&format!("/api/v1/compose/metadata/{id}"));
    assert_eq!(
        meta.tar_names(),
        vec![format!("{id}.json"), format!("{id}-frozen.toml")]
    );
    // K06: a blueprint that cannot be solved is refused with one DepsolveError.
    s.push("name = \"broken\"\n\n[[packages]]\nname = \"no-such-package-kiln\"\n");
    let r = s
        .post_json(
            "/api/v1/compose",
            &json!({"blueprint_name": "broken", "compose_type": "tar"}),
        )
        .json();
    assert_eq!(r["status"], false);
    assert_eq!(r["errors"].as_array().unwrap().len(), 1);
    assert_eq!(r["errors"][0]["id"], "DepsolveError");
    assert!(r.get("build_id").is_none());
}

fn tar_blueprint(name: &str, extra: &str) -> String {
    format!(
        "name = \"{name}\"\nversion = \"0.0.1\"\n\n[[packages]]\nname = \"systemd-sysv\"\n{extra}\n\
         [customizations]\nhostname = \"{name}\"\n"
    )
}

/// Real builds of a minimal bookworm `tar`: kill -9 of the server while one runs and
/// another waits, the restart (re-queued, resumed, finished, image served), live events,
/// cancel of a running build (no process left), delete.
#[test]
fn real_builds_survive_kill9_and_cancel() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let s = Server::start(tmp.path(), &store, None);
    s.push(&tar_blueprint("tar-a", ""));
    s.push(&tar_blueprint("tar-c", "\n[[packages]]\nname = \"less\"\n"));
    let a = s.compose(
        "",
        json!({"blueprint_name": "tar-a", "compose_type": "tar"}),
    );
    let c = s.compose(
        "",
        json!({"blueprint_name": "tar-c", "compose_type": "tar"}),
    );
    let t = s.compose(
        "?test=2",
        json!({"blueprint_name": "tar-a", "compose_type": "tar"}),
    );

    s.wait_for(
        "compose a to install packages",
        Duration::from_secs(600),
        |s| {
            s.get(&format!("/api/v1/compose/log/{a}"))
                .text()
                .contains("deb.install ...")
        },
    );
    assert_eq!(s.state_of(&a), "RUNNING");
    assert_eq!(s.state_of(&c), "WAITING");
    // K17: a waiting compose's log is an error in a 200.
    let r = s.get(&format!("/api/v1/compose/log/{c}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["errors"][0]["id"], "BuildInWrongState");
    let q = s.get("/api/v1/compose/queue").json();
    assert_eq!(q["run"][0]["id"], a.as_str());
    assert_eq!(q["new"][0]["id"], c.as_str());
    assert!(!processes_with(&a).is_empty(), "no build process for {a}");

    s.kill9();
    // The build dies with the server.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !processes_with(&a).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the build outlived the server: {:?}",
            processes_with(&a)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let s = Server::start(tmp.path(), &store, None);
    let st = s.state_of(&a);
    assert!(st == "WAITING" || st == "RUNNING", "a is {st}");
    assert_eq!(s.state_of(&c), "WAITING");
    assert_eq!(s.state_of(&t), "FINISHED");
    s.wait_for("compose a to finish", Duration::from_secs(900), |s| {
        let st = s.state_of(&a);
        assert_ne!(
            st,
            "FAILED",
            "{}",
            s.get(&format!("/api/v1/compose/log/{a}")).text()
        );
        st == "FINISHED"
    });
    let log = s.get(&format!("/api/v1/compose/log/{a}?size=1000")).text();
    let (_, second) = log
        .split_once("attempt 2 resumes")
        .expect("no second attempt");
    // It resumed from the store: the downloads of the first attempt were kept.
    for l in second.lines().filter(|l| l.starts_with("fetched ")) {
        assert!(l.starts_with("fetched 0/0 "), "downloaded again: {l}");
    }
    assert!(second.contains("[tar 1/1] archive.tar"), "{second}");

    // K24: the image.
    let img = s.get(&format!("/api/v1/compose/image/{a}"));
    assert_eq!(img.status, 200);
    assert_eq!(
        img.header("content-disposition"),
        format!("attachment; filename={a}-root.tar")
    );
    assert_eq!(img.header("content-type"), "application/x-tar");
    let file = std::fs::metadata(s.state.join("composes").join(&a).join("root.tar")).unwrap();
    assert_eq!(img.body.len() as u64, file.len());
    assert_eq!(&img.body[257..262], b"ustar");
    let mut a_tar = tar::Archive::new(img.body.as_slice());
    let hostname = a_tar
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_string_lossy().trim_start_matches("./") == "etc/hostname")
        .map(|mut e| {
            let mut s = String::new();
            e.read_to_string(&mut s).unwrap();
            s
        });
    assert_eq!(hostname.as_deref().map(str::trim), Some("tar-a"));
    drop(img);

    // Events of a finished compose: every progress event, then the end state.
    let ev = s.get(&format!("/api/v1/compose/events/{a}"));
    assert_eq!(ev.header("content-type"), "text/event-stream");
    let ev = ev.text();
    assert!(ev.contains("\"event\":\"stage-done\""), "{ev}");
    assert!(ev.contains("\"pipeline\":\"tar\""), "{ev}");
    assert!(
        ev.trim_end().ends_with("\"queue_status\":\"FINISHED\"}"),
        "{ev}"
    );

    // Results: manifest, frozen blueprint, logs, image.
    let res = s.get(&format!("/api/v1/compose/results/{a}")).tar_names();
    for want in [
        format!("{a}.json"),
        format!("{a}-frozen.toml"),
        "logs/build.log".into(),
        format!("{a}-root.tar"),
    ] {
        assert!(res.contains(&want), "{want} not in {res:?}");
    }

    // c runs next (it installs one more package, so deb.install runs again): cancel it.
    s.wait_for(
        "compose c to install packages",
        Duration::from_secs(600),
        |s| {
            s.get(&format!("/api/v1/compose/log/{c}"))
                .text()
                .contains("deb.install ...")
        },
    );
    let procs = processes_with(&c);
    assert!(!procs.is_empty(), "no build process for {c}");
    let pgid = procs[0].1;
    let r = s.delete(&format!("/api/v1/compose/cancel/{c}")).json();
    assert_eq!(r, json!({"uuid": c, "status": true}));
    let e = s.get(&format!("/api/v1/compose/status/{c}")).json()["uuids"][0].clone();
    assert_eq!(e["queue_status"], "FAILED");
    assert_eq!(e["failure"]["message"], "canceled");
    assert!(processes_with(&c).is_empty(), "{:?}", processes_with(&c));
    assert!(group_members(pgid).is_empty(), "{:?}", group_members(pgid));
    assert_eq!(
        s.get("/api/v1/compose/queue").json(),
        json!({"new": [], "run": []})
    );

    // K29: delete removes the files.
    let dir = s.state.join("composes").join(&a);
    let r = s.delete(&format!("/api/v1/compose/delete/{a}")).json();
    assert_eq!(r["uuids"][0]["status"], true);
    assert!(!dir.exists());
}
