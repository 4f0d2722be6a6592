//! The conformance list's depsolve, freeze, projects and modules entries against the real
//! Debian archive, through the host's apt sources (one server, one store, so metadata is
//! fetched once per distro). Skipped with a message when the archive cannot be reached,
//! unless `CI` is set: CI machines reach it, so there it is a failure.

mod common;

use common::TestServer;
use serde_json::{Value, json};
use std::time::Instant;

fn ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depsolve_freeze_projects_on_the_live_archive() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let start = Instant::now();
    let r = s.get("/api/v1/projects/info/bash?distro=debian-12").await;
    if r.status != 200 {
        assert!(!ci(), "cannot load the archive: {}", r.text());
        eprintln!("SKIP: the Debian archive is not reachable: {}", r.text());
        return;
    }
    eprintln!("cold metadata load + projects/info: {:?}", start.elapsed());

    // P03
    let j = r.json();
    let p = &j["projects"][0];
    assert_eq!(p["name"], "bash");
    for key in ["summary", "description", "homepage", "upstream_vcs"] {
        assert!(p[key].is_string(), "{key}: {p}");
    }
    let b = &p["builds"][0];
    for key in [
        "arch",
        "build_time",
        "release",
        "changelog",
        "build_config_ref",
        "build_env_ref",
    ] {
        assert!(b[key].is_string(), "{key}: {b}");
    }
    assert!(b["epoch"].is_u64() && b["metadata"].is_object());
    for key in ["license", "version", "source_ref"] {
        assert!(b["source"][key].is_string(), "{key}: {b}");
    }
    assert!(!b["release"].as_str().unwrap().is_empty());

    // B34: the closure of a blueprint, Debian versions split for weldr.
    let web = json!({"name": "web", "description": "d", "version": "0.0.1", "distro": "debian-12",
        "packages": [{"name": "tmux", "version": "*"}, {"name": "bash"}], "modules": [], "groups": []});
    assert_eq!(
        s.post_json("/api/v0/blueprints/new", &web).await.status,
        200
    );
    let j = s.get("/api/v0/blueprints/depsolve/web").await.json();
    assert_eq!(j["errors"], json!([]), "{j}");
    let deps = &j["blueprints"][0]["dependencies"];
    let dep_names = names(deps);
    for want in ["tmux", "bash", "libc6", "libevent-core-2.1-7"] {
        assert!(
            dep_names.iter().any(|n| n == want),
            "{want} not in {dep_names:?}"
        );
    }
    assert_eq!(j["blueprints"][0]["blueprint"]["name"], "web");
    for d in deps.as_array().unwrap() {
        assert!(d["epoch"].is_u64(), "{d}");
        let (v, r) = (
            d["version"].as_str().unwrap(),
            d["release"].as_str().unwrap(),
        );
        assert!(!v.is_empty() && !r.is_empty(), "{d}");
        let full = d["debian_version"].as_str().unwrap();
        let epoch = d["epoch"].as_u64().unwrap();
        let prefix = if epoch > 0 {
            format!("{epoch}:")
        } else {
            String::new()
        };
        assert!(
            full == format!("{prefix}{v}-{r}") || (r == "0" && full == format!("{prefix}{v}")),
            "{d}"
        );
        assert!(matches!(d["arch"].as_str(), Some("amd64" | "all")), "{d}");
        assert!(
            d["checksum"].as_str().unwrap().starts_with("sha256:"),
            "{d}"
        );
        assert!(
            d["remote_location"].as_str().unwrap().ends_with(".deb"),
            "{d}"
        );
    }
    // Warm depsolve latency through the API.
    let mut times = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        let r = s.get("/api/v0/blueprints/depsolve/web").await;
        times.push(t.elapsed());
        assert_eq!(r.status, 200);
    }
    times.sort();
    eprintln!(
        "warm blueprints/depsolve (2 packages): p50 {:?}, max {:?}",
        times[times.len() / 2],
        times[times.len() - 1]
    );
    let dev = s
        .get("/api/v0/blueprints/depsolve/example-development")
        .await
        .json();
    assert_eq!(dev["errors"], json!([]), "{dev}");
    let t = Instant::now();
    let dev = s
        .get("/api/v0/blueprints/depsolve/example-development")
        .await
        .json();
    eprintln!(
        "warm blueprints/depsolve example-development ({} packages): {:?}",
        dev["blueprints"][0]["dependencies"]
            .as_array()
            .unwrap()
            .len(),
        t.elapsed()
    );

    // B36
    let broken = json!({"name": "broken", "distro": "debian-12", "packages": [{"name": "no-such-package-kiln"}]});
    assert_eq!(
        s.post_json("/api/v0/blueprints/new", &broken).await.status,
        200
    );
    let r = s.get("/api/v0/blueprints/depsolve/broken").await;
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["blueprints"][0]["dependencies"], json!([]));
    assert_eq!(j["errors"][0]["id"], "BlueprintsError");
    let msg = j["errors"][0]["msg"].as_str().unwrap();
    assert!(
        msg.starts_with("broken: ") && msg.contains("no-such-package-kiln"),
        "{msg}"
    );

    // B38, B39, B40: versions pinned to what the solver picked; the TOML goes back in.
    let j = s
        .get("/api/v0/blueprints/freeze/web,example-base")
        .await
        .json();
    assert_eq!(j["errors"], json!([]), "{j}");
    let frozen = &j["blueprints"][0]["blueprint"];
    let tmux = deps
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "tmux")
        .unwrap();
    let pinned = frozen["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "tmux")
        .unwrap();
    // EVRA: `[epoch:]version-release.arch`.
    let evra = format!(
        "{}.{}",
        tmux["debian_version"].as_str().unwrap(),
        tmux["arch"].as_str().unwrap()
    );
    assert_eq!(pinned["version"], evra.as_str());
    let r = s.get("/api/v0/blueprints/freeze/web?format=toml").await;
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.contains(&evra), "{text}");
    let r = s
        .get("/api/v0/blueprints/freeze/web,example-base?format=toml")
        .await;
    assert_eq!(
        (r.error_id(), r.error_msg()),
        (
            "HTTPError".into(),
            "toml format only supported when requesting one blueprint".into()
        )
    );
    assert_eq!(
        s.post_toml("/api/v0/blueprints/new", &text).await.status,
        200
    );
    let j = s.get("/api/v0/blueprints/depsolve/web").await.json();
    assert_eq!(j["errors"], json!([]), "a frozen blueprint solves: {j}");
    let again = &j["blueprints"][0]["dependencies"];
    assert_eq!(names(again), dep_names);
    let j = s.get("/api/v0/blueprints/freeze/missing").await.json();
    assert_eq!(j["errors"][0]["id"], "UnknownBlueprint");

    // P01, P02
    let j = s.get("/api/v0/projects/list?distro=debian-12").await.json();
    let total = j["total"].as_u64().unwrap();
    assert!(total > 30_000, "{total}");
    assert_eq!(
        (j["offset"].as_u64(), j["limit"].as_u64()),
        (Some(0), Some(20))
    );
    let first = names(&j["projects"]);
    assert_eq!(first.len(), 20);
    let mut sorted = first.clone();
    sorted.sort();
    assert_eq!(first, sorted);
    let j = s
        .get("/api/v0/projects/list?distro=debian-12&offset=1&limit=1")
        .await
        .json();
    assert_eq!(names(&j["projects"]), [first[1].clone()]);
    assert_eq!(j["total"].as_u64(), Some(total));
    let j = s
        .get("/api/v0/projects/list?distro=debian-12&limit=0")
        .await
        .json();
    assert_eq!(
        (j["projects"].clone(), j["total"].as_u64()),
        (json!([]), Some(total))
    );
    // P04, P06, P07
    let j = s
        .get("/api/v0/projects/info/python3-num*,bash?distro=debian-12")
        .await
        .json();
    let got = names(&j["projects"]);
    assert!(
        got.contains(&"python3-numpy".to_string()) && got.contains(&"bash".to_string()),
        "{got:?}"
    );
    assert_eq!(got[0], "bash");
    let r = s.get("/api/v0/projects/info/nonexistingpkg").await;
    assert_eq!(
        (r.error_id(), r.error_msg()),
        (
            "UnknownProject".into(),
            "No packages have been found.".into()
        )
    );
    let j = s.get("/api/v0/projects/info/bash,nonexisting").await.json();
    assert_eq!(names(&j["projects"]), ["bash"]);
    // P08, P09
    let j = s.get("/api/v0/projects/depsolve/bash").await.json();
    let got = names(&j["projects"]);
    assert!(
        got.contains(&"bash".to_string()) && got.contains(&"libc6".to_string()),
        "{got:?}"
    );
    let r = s.get("/api/v0/projects/depsolve/nonexisting-kiln").await;
    assert_eq!(r.error_id(), "ProjectsError");
    assert!(
        r.error_msg().contains("nonexisting-kiln"),
        "{}",
        r.error_msg()
    );
    // P10, P11, P12, P13
    for path in ["/api/v1/modules/list", "/api/v1/modules/list/"] {
        let j = s.get(path).await.json();
        assert!(j["total"].as_u64().unwrap() > 30_000);
        assert_eq!(j["modules"][0]["group_type"], "rpm");
        assert_eq!(j["modules"].as_array().unwrap().len(), 20);
    }
    let all = s
        .get("/api/v1/modules/list/python3-num*,bash?limit=100")
        .await
        .json();
    let matched = all["total"].as_u64().unwrap();
    assert!(matched >= 2);
    let j = s
        .get("/api/v1/modules/list/python3-num*,bash?offset=1&limit=1")
        .await
        .json();
    assert_eq!(j["total"].as_u64(), Some(matched));
    assert_eq!(j["modules"].as_array().unwrap().len(), 1);
    assert_eq!(j["modules"][0]["name"], all["modules"][1]["name"]);
    let r = s.get("/api/v1/modules/list/nonexisting").await;
    assert_eq!(
        (r.error_id(), r.error_msg()),
        (
            "UnknownModule".into(),
            "No packages have been found.".into()
        )
    );
    let j = s.get("/api/v1/modules/info/bash").await.json();
    let m = &j["modules"][0];
    assert_eq!(m["name"], "bash");
    assert!(
        names(&m["dependencies"]).contains(&"libc6".to_string()),
        "{m}"
    );

    // Debian 13 is served from the same host mirror.
    let t = Instant::now();
    let j = s
        .get("/api/v1/projects/info/bash?distro=debian-13")
        .await
        .json();
    assert_eq!(j["projects"][0]["name"], "bash", "{j}");
    eprintln!("debian-13 metadata load + projects/info: {:?}", t.elapsed());
    s.stop().await;
}
