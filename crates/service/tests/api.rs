//! The weldr conformance list (`shared/reference/weldr-conformance.md`, ids in comments)
//! against a real server on a temporary unix socket and loopback TCP: everything that
//! needs no package archive. Depsolve, freeze and projects are in `archive.rs`.

mod common;

use common::{TestServer, b1, git};
use serde_json::json;

const V: [&str; 2] = ["/api/v0", "/api/v1"];

async fn server() -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    (dir, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_wide_behaviour() {
    let (_dir, s) = server().await;
    // S01
    let r = s.get("/api/status").await;
    assert_eq!(r.status, 200);
    assert!(
        r.content_type.starts_with("application/json"),
        "{}",
        r.content_type
    );
    let j = r.json();
    assert_eq!(j["api"], "1");
    assert_eq!(j["db_supported"], true);
    assert!(j["db_version"].is_string() && j["schema_version"].is_string());
    assert_eq!(j["backend"], "osbuild-composer");
    assert!(j["build"].is_string());
    assert_eq!(j["msgs"], json!([]));
    // S02
    let r = s.post("/api/status", "application/json", "{}").await;
    assert_eq!(r.status, 405);
    assert_eq!(
        r.json(),
        json!({"status": false, "errors": [{"id": "HTTPError", "code": 405, "msg": "Method Not Allowed"}]})
    );
    // S03
    let r = s.get("/marmalade").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"status": false, "errors": [{"id": "HTTPError", "code": 404, "msg": "Not Found"}]})
    );
    // Versions above 1 do not exist.
    assert_eq!(s.get("/api/v2/blueprints/list").await.status, 404);
    // S04
    for v in V {
        assert_eq!(
            s.get(&format!("{v}/blueprints/info/")).await.error_id(),
            "HTTPError"
        );
        assert_eq!(s.get(&format!("{v}/blueprints/info/")).await.status, 404);
        assert_eq!(
            s.get(&format!("{v}/projects/source/info/")).await.status,
            404
        );
        assert_eq!(
            s.delete(&format!("{v}/projects/source/delete/"))
                .await
                .status,
            404
        );
    }
    // S05: non-ASCII names and junk query values.
    let r = s.get("/api/v0/blueprints/info/%EF%BD%86%EF%BD%95").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_id(), "InvalidChars");
    assert!(
        r.error_msg().contains("Invalid characters in"),
        "{}",
        r.error_msg()
    );
    let r = s
        .get("/api/v0/blueprints/info/example-base?format=%EF%BD%8A")
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error_msg().contains("Invalid characters in"));
    let r = s.get("/api/v0/blueprints/list?branch=%FF").await;
    assert_eq!(r.error_id(), "InvalidChars");
    let r = s.get("/api/v0/blueprints/info/%FF%FE").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_id(), "InvalidChars");
    // The same API over loopback TCP.
    let r = s.request_tcp("GET", "/api/status").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["api"], "1");
    // The OpenAPI document is served.
    let r = s.get("/api/openapi.json").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), kiln_service::api::OPENAPI);
    assert!(r.json()["paths"]["/api/v{version}/blueprints/list"]["get"].is_object());
    // The socket is rw for owner and group only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&s.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_loopback_tcp_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let env = kiln_service::Env {
        store: dir.path().join("store"),
        state: dir.path().join("state"),
        config: None,
        offline: true,
    };
    let mut config = kiln_service::Config::new(env);
    config.socket = None;
    config.listen = Some("0.0.0.0:0".parse().unwrap());
    let err = kiln_service::Server::bind(config).await.unwrap_err();
    assert!(err.to_string().contains("not a loopback address"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_and_listing() {
    let (_dir, s) = server().await;
    // The Debian examples are there out of the box. B01
    let r = s.get("/api/v0/blueprints/list").await;
    let j = r.json();
    let names: Vec<&str> = j["blueprints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(names.contains(&"example-http-server"), "{names:?}");
    assert!(names.contains(&"example-development"), "{names:?}");
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let total = j["total"].as_u64().unwrap();
    assert_eq!(total as usize, kiln_service::EXAMPLES.len());
    assert_eq!(
        (j["offset"].as_u64(), j["limit"].as_u64()),
        (Some(0), Some(20))
    );
    // B02
    let j = s.get("/api/v1/blueprints/list?limit=0").await.json();
    assert_eq!(j["blueprints"], json!([]));
    assert_eq!(
        (j["total"].as_u64(), j["limit"].as_u64()),
        (Some(total), Some(0))
    );
    // B03
    let j = s
        .get("/api/v1/blueprints/list?offset=1&limit=1")
        .await
        .json();
    assert_eq!(j["blueprints"], json!([names[1]]));
    assert_eq!(j["total"].as_u64(), Some(total));
    let r = s.get("/api/v1/blueprints/list?limit=x").await;
    assert_eq!(r.error_id(), "BadLimitOrOffset");
    // An example as TOML parses back.
    let r = s
        .get("/api/v0/blueprints/info/example-http-server?format=toml")
        .await;
    assert_eq!(r.status, 200);
    let bp = kiln_blueprint::Blueprint::from_toml_validated(&r.text()).unwrap();
    assert_eq!(bp.distro.as_deref(), Some("debian-12"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_info_workspace_delete() {
    let (_dir, s) = server().await;
    let v = "/api/v0";
    // B04
    let r = s.post_json(&format!("{v}/blueprints/new"), &b1()).await;
    assert_eq!((r.status, r.json()), (200, json!({"status": true})));
    // B10
    let j = s.get(&format!("{v}/blueprints/info/bp1")).await.json();
    assert_eq!(j["changes"], json!([{"name": "bp1", "changed": false}]));
    assert_eq!(j["errors"], json!([]));
    let bp = &j["blueprints"][0];
    assert_eq!(bp["name"], "bp1");
    assert_eq!(bp["version"], "0.0.1");
    assert_eq!(bp["description"], "d");
    assert_eq!(bp["packages"], json!([{"name": "bash", "version": "*"}]));
    assert_eq!(
        (bp["modules"].clone(), bp["groups"].clone()),
        (json!([]), json!([]))
    );
    // B05: TOML, then B09: same version again is bumped, a new one kept.
    let toml = "name = \"bp2\"\ndescription = \"d\"\nversion = \"0.0.1\"\n\n[[packages]]\nname = \"bash\"\nversion = \"*\"\n";
    assert_eq!(
        s.post_toml(&format!("{v}/blueprints/new"), toml)
            .await
            .status,
        200
    );
    assert_eq!(
        s.post_toml(&format!("{v}/blueprints/new"), toml)
            .await
            .status,
        200
    );
    let j = s.get(&format!("{v}/blueprints/info/bp2")).await.json();
    assert_eq!(j["blueprints"][0]["version"], "0.0.2");
    let r = s
        .post_toml(
            &format!("{v}/blueprints/new"),
            &toml.replace("0.0.1", "1.4.0"),
        )
        .await;
    assert_eq!(r.status, 200);
    let j = s.get(&format!("{v}/blueprints/info/bp2")).await.json();
    assert_eq!(j["blueprints"][0]["version"], "1.4.0");
    // B06, B07, B08
    for ct in ["application/json", "text/x-toml"] {
        let r = s.post(&format!("{v}/blueprints/new"), ct, "").await;
        assert_eq!(
            (r.status, r.error_id(), r.error_msg()),
            (400, "BlueprintsError".into(), "Missing blueprint".into())
        );
    }
    let r = s
        .post(
            &format!("{v}/blueprints/new"),
            "application/json",
            "{\"name\": \"x\", ",
        )
        .await;
    assert_eq!((r.status, r.error_id()), (400, "BlueprintsError".into()));
    let r = s
        .post_toml(&format!("{v}/blueprints/new"), "name = \"x\"\n[[packages\n")
        .await;
    assert_eq!((r.status, r.error_id()), (400, "BlueprintsError".into()));
    let r = s
        .post_json(&format!("{v}/blueprints/new"), &json!({"name": ""}))
        .await;
    assert_eq!(
        (r.error_id(), r.error_msg()),
        (
            "InvalidChars".into(),
            "Invalid characters in API path".into()
        )
    );
    // Strict parsing: an unknown key is an error, not silently dropped.
    let r = s
        .post_json(
            &format!("{v}/blueprints/new"),
            &json!({"name": "x", "packagez": []}),
        )
        .await;
    assert_eq!(r.error_id(), "BlueprintsError");
    // B43
    let r = s
        .post_json(
            &format!("{v}/blueprints/new"),
            &json!({"name": "x", "distro": "fedora-99"}),
        )
        .await;
    assert_eq!(r.error_id(), "BlueprintsError");
    assert!(
        r.error_msg()
            .contains("'fedora-99' is not a valid distribution"),
        "{}",
        r.error_msg()
    );
    // B11 and S08: a list, with the comma percent-encoded too.
    for path in ["bp2,bp1", "bp2%2Cbp1", "bp2%2cbp1"] {
        let j = s.get(&format!("{v}/blueprints/info/{path}")).await.json();
        let got: Vec<&str> = j["blueprints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["name"].as_str().unwrap())
            .collect();
        assert_eq!(got, ["bp1", "bp2"], "{path}");
        assert_eq!(j["changes"].as_array().unwrap().len(), 2);
    }
    // B12
    let r = s.get(&format!("{v}/blueprints/info/missing")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"blueprints": [], "changes": [], "errors": [{"id": "UnknownBlueprint", "msg": "missing: "}]})
    );
    // B13, B14
    let r = s.get(&format!("{v}/blueprints/info/bp1?format=toml")).await;
    assert_eq!(r.status, 200);
    let bp = kiln_blueprint::Blueprint::from_toml(&r.text()).unwrap();
    assert_eq!(
        (bp.name.as_str(), bp.version.as_deref()),
        ("bp1", Some("0.0.1"))
    );
    let r = s
        .get(&format!("{v}/blueprints/info/missing?format=toml"))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["status"], false);
    let r = s
        .get(&format!("{v}/blueprints/info/bp1,bp2?format=toml"))
        .await;
    assert_eq!(r.error_id(), "HTTPError");
    let r = s.get(&format!("{v}/blueprints/info/bp1?format=son")).await;
    assert_eq!(
        (r.error_id(), r.error_msg()),
        (
            "InvalidChars".into(),
            "invalid format parameter: son".into()
        )
    );
    // B15
    let mut ws = b1();
    ws["packages"] = json!([{"name": "systemd", "version": "123"}]);
    ws["version"] = json!("0.3.0");
    assert_eq!(
        s.post_json(&format!("{v}/blueprints/workspace"), &ws)
            .await
            .status,
        200
    );
    let j = s.get(&format!("{v}/blueprints/info/bp1")).await.json();
    assert_eq!(j["changes"], json!([{"name": "bp1", "changed": true}]));
    assert_eq!(j["blueprints"][0]["packages"][0]["name"], "systemd");
    let j = s.get(&format!("{v}/blueprints/changes/bp1")).await.json();
    assert_eq!(j["blueprints"][0]["total"], 1);
    // B26
    let j = s
        .get(&format!("{v}/blueprints/diff/bp1/NEWEST/WORKSPACE"))
        .await
        .json();
    let diff = j["diff"].as_array().unwrap();
    assert!(
        diff.contains(
            &json!({"old": null, "new": {"Package": {"name": "systemd", "version": "123"}}})
        ),
        "{j}"
    );
    assert!(
        diff.contains(&json!({"old": {"Package": {"name": "bash", "version": "*"}}, "new": null})),
        "{j}"
    );
    assert!(
        diff.contains(&json!({"old": {"Version": "0.0.1"}, "new": {"Version": "0.3.0"}})),
        "{j}"
    );
    // B16
    let r = s
        .post(&format!("{v}/blueprints/workspace"), "application/json", "")
        .await;
    assert_eq!((r.status, r.error_msg()), (400, "Missing blueprint".into()));
    let r = s
        .post(&format!("{v}/blueprints/workspace"), "text/x-toml", "[[x")
        .await;
    assert_eq!((r.status, r.error_id()), (400, "BlueprintsError".into()));
    // B17, B18
    assert_eq!(
        s.delete(&format!("{v}/blueprints/workspace/bp1"))
            .await
            .json(),
        json!({"status": true})
    );
    let j = s.get(&format!("{v}/blueprints/info/bp1")).await.json();
    assert_eq!(j["changes"], json!([{"name": "bp1", "changed": false}]));
    assert_eq!(j["blueprints"][0]["packages"][0]["name"], "bash");
    let r = s.delete(&format!("{v}/blueprints/workspace/missing")).await;
    assert_eq!((r.status, r.json()["status"].clone()), (400, json!(false)));
    // B25
    let j = s
        .get(&format!("{v}/blueprints/diff/bp1/NEWEST/WORKSPACE"))
        .await
        .json();
    assert_eq!(j, json!({"diff": []}));
    // B28
    let r = s
        .get(&format!("{v}/blueprints/diff/missing/NEWEST/WORKSPACE"))
        .await;
    assert_eq!(r.error_id(), "UnknownBlueprint");
    // A workspace copy is dropped by a push.
    assert_eq!(
        s.post_json(&format!("{v}/blueprints/workspace"), &ws)
            .await
            .status,
        200
    );
    assert_eq!(
        s.post_json(&format!("{v}/blueprints/new"), &ws)
            .await
            .status,
        200
    );
    let j = s.get(&format!("{v}/blueprints/info/bp1")).await.json();
    assert_eq!(j["changes"], json!([{"name": "bp1", "changed": false}]));
    // B19, B20, B24, B41
    assert_eq!(
        s.delete(&format!("{v}/blueprints/delete/bp1")).await.json(),
        json!({"status": true})
    );
    let list = s.get(&format!("{v}/blueprints/list")).await.json();
    assert!(
        !list["blueprints"]
            .as_array()
            .unwrap()
            .contains(&json!("bp1"))
    );
    let j = s.get(&format!("{v}/blueprints/info/bp1")).await.json();
    assert_eq!(j["errors"][0]["id"], "UnknownBlueprint");
    let r = s.delete(&format!("{v}/blueprints/delete/missing")).await;
    assert_eq!(
        (r.status, r.error_id(), r.error_msg()),
        (
            400,
            "BlueprintsError".into(),
            "Unknown blueprint: missing".into()
        )
    );
    assert_eq!(
        s.post(&format!("{v}/blueprints/tag/bp1"), "application/json", "")
            .await
            .error_id(),
        "BlueprintsError"
    );
    assert_eq!(
        s.get(&format!("{v}/blueprints/diff/bp1/NEWEST/WORKSPACE"))
            .await
            .error_id(),
        "UnknownBlueprint"
    );
    assert_eq!(
        s.post_json(&format!("{v}/blueprints/new"), &b1())
            .await
            .status,
        200
    );
    let j = s.get(&format!("{v}/blueprints/changes/bp1")).await.json();
    assert_eq!(j["blueprints"][0]["total"], 3, "{j}");
    // Wrong content types.
    let r = s
        .post(&format!("{v}/blueprints/new"), "text/plain", "name = \"x\"")
        .await;
    assert_eq!(r.error_id(), "BlueprintsError");
    let r = s
        .request("POST", &format!("{v}/blueprints/new"), None, b"{}".to_vec())
        .await;
    assert_eq!(r.error_msg(), "missing Content-Type header");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_changes_undo_tag_diff() {
    let (_dir, s) = server().await;
    let v = "/api/v1";
    let mut bp = b1();
    assert_eq!(
        s.post_json(&format!("{v}/blueprints/new"), &bp)
            .await
            .status,
        200
    );
    bp["packages"] = json!([{"name": "bash", "version": "*"}, {"name": "tmux"}]);
    bp["version"] = json!("0.1.0");
    assert_eq!(
        s.post_json(&format!("{v}/blueprints/new"), &bp)
            .await
            .status,
        200
    );
    // B21: newest first, messages as lorax wrote them.
    let j = s.get(&format!("{v}/blueprints/changes/bp1")).await.json();
    assert_eq!(j["errors"], json!([]));
    assert_eq!(
        (j["offset"].as_u64(), j["limit"].as_u64()),
        (Some(0), Some(20))
    );
    let entry = &j["blueprints"][0];
    assert_eq!(
        (entry["name"].clone(), entry["total"].clone()),
        (json!("bp1"), json!(2))
    );
    let changes = entry["changes"].as_array().unwrap();
    assert_eq!(changes[0]["message"], "Recipe bp1, version 0.1.0 saved.");
    assert_eq!(changes[1]["message"], "Recipe bp1, version 0.0.1 saved.");
    for c in changes {
        let commit = c["commit"].as_str().unwrap();
        assert!(commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(c["revision"], json!(null));
        let ts = c["timestamp"].as_str().unwrap();
        assert!(
            ts.len() == 20 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
            "{ts}"
        );
    }
    let newest = changes[0]["commit"].as_str().unwrap().to_string();
    let oldest = changes[1]["commit"].as_str().unwrap().to_string();
    // B22, paging of changes.
    let j = s
        .get(&format!("{v}/blueprints/changes/bp1?limit=0"))
        .await
        .json();
    assert_eq!(j["blueprints"][0]["changes"], json!([]));
    assert_eq!(
        (j["blueprints"][0]["total"].clone(), j["limit"].clone()),
        (json!(2), json!(0))
    );
    let j = s
        .get(&format!("{v}/blueprints/changes/bp1?offset=1&limit=1"))
        .await
        .json();
    assert_eq!(j["blueprints"][0]["changes"][0]["commit"], oldest.as_str());
    // B23
    let j = s
        .get(&format!("{v}/blueprints/changes/missing"))
        .await
        .json();
    assert_eq!(j["blueprints"], json!([]));
    assert_eq!(
        j["errors"],
        json!([{"id": "UnknownBlueprint", "msg": "missing"}])
    );
    // B27: between two commits.
    let j = s
        .get(&format!("{v}/blueprints/diff/bp1/{oldest}/{newest}"))
        .await
        .json();
    let diff = j["diff"].as_array().unwrap();
    assert!(
        diff.contains(&json!({"old": null, "new": {"Package": {"name": "tmux"}}})),
        "{j}"
    );
    assert!(
        diff.contains(&json!({"old": {"Version": "0.0.1"}, "new": {"Version": "0.1.0"}})),
        "{j}"
    );
    let r = s
        .get(&format!(
            "{v}/blueprints/diff/bp1/{}/NEWEST",
            "0".repeat(40)
        ))
        .await;
    assert_eq!(r.error_id(), "UnknownCommit");
    // B42: the blueprint at a commit, v1 only.
    let j = s
        .get(&format!("{v}/blueprints/change/bp1/{oldest}"))
        .await
        .json();
    assert_eq!(
        (
            j["version"].clone(),
            j["packages"].as_array().unwrap().len()
        ),
        (json!("0.0.1"), 1)
    );
    let r = s
        .get(&format!("{v}/blueprints/change/bp1/{oldest}?format=toml"))
        .await;
    assert!(r.text().contains("version = \"0.0.1\""), "{}", r.text());
    assert_eq!(
        s.get(&format!("/api/v0/blueprints/change/bp1/{oldest}"))
            .await
            .status,
        404
    );
    // B32: tags become revisions; tagging twice is a no-op.
    assert_eq!(
        s.post(&format!("{v}/blueprints/tag/bp1"), "application/json", "")
            .await
            .json(),
        json!({"status": true})
    );
    assert_eq!(
        s.post(&format!("{v}/blueprints/tag/bp1"), "application/json", "")
            .await
            .status,
        200
    );
    let j = s.get(&format!("{v}/blueprints/changes/bp1")).await.json();
    assert_eq!(j["blueprints"][0]["changes"][0]["revision"], 1);
    assert_eq!(j["blueprints"][0]["changes"][1]["revision"], json!(null));
    // B29: undo is a new commit with the old content.
    let r = s
        .post(
            &format!("{v}/blueprints/undo/bp1/{oldest}"),
            "application/json",
            "",
        )
        .await;
    assert_eq!(r.json(), json!({"status": true}));
    let j = s.get(&format!("{v}/blueprints/changes/bp1")).await.json();
    assert_eq!(j["blueprints"][0]["total"], 3);
    assert_eq!(
        j["blueprints"][0]["changes"][0]["message"],
        format!("bp1.toml reverted to commit {oldest}")
    );
    let j = s.get(&format!("{v}/blueprints/info/bp1")).await.json();
    assert_eq!(
        j["blueprints"][0]["packages"],
        json!([{"name": "bash", "version": "*"}])
    );
    assert_eq!(j["blueprints"][0]["version"], "0.0.1");
    // The next tag numbers the undo commit 2.
    assert_eq!(
        s.post(&format!("{v}/blueprints/tag/bp1"), "application/json", "")
            .await
            .status,
        200
    );
    let j = s.get(&format!("{v}/blueprints/changes/bp1")).await.json();
    let revs: Vec<_> = j["blueprints"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["revision"].clone())
        .collect();
    assert_eq!(revs, [json!(2), json!(1), json!(null)]);
    // B30, B31, B33
    let r = s
        .post(
            &format!("{v}/blueprints/undo/bp1/{}", "a".repeat(40)),
            "application/json",
            "",
        )
        .await;
    assert_eq!(
        (r.status, r.error_id(), r.error_msg()),
        (400, "UnknownCommit".into(), "Unknown commit".into())
    );
    let r = s
        .post(
            &format!("{v}/blueprints/undo/missing/{oldest}"),
            "application/json",
            "",
        )
        .await;
    assert_eq!(
        (r.error_id(), r.error_msg()),
        ("UnknownCommit".into(), "Unknown blueprint".into())
    );
    let r = s
        .post(
            &format!("{v}/blueprints/tag/missing"),
            "application/json",
            "",
        )
        .await;
    assert_eq!(
        (r.error_id(), r.error_msg()),
        ("BlueprintsError".into(), "Unknown blueprint".into())
    );

    // The repository is plain git: log, show, tags, fsck.
    let log = git(&s.state, &["log", "--format=%s", "master"]);
    let subjects: Vec<&str> = log.lines().collect();
    assert_eq!(subjects[0], format!("bp1.toml reverted to commit {oldest}"));
    assert_eq!(subjects[1], "Recipe bp1, version 0.1.0 saved.");
    assert_eq!(subjects[2], "Recipe bp1, version 0.0.1 saved.");
    assert_eq!(
        *subjects.last().unwrap(),
        "Initial Recipe repository commit"
    );
    let shown = git(&s.state, &["show", "master:bp1.toml"]);
    assert!(
        kiln_blueprint::Blueprint::from_toml(&shown).is_ok(),
        "{shown}"
    );
    let tags = git(&s.state, &["tag", "--list"]);
    assert_eq!(
        tags.lines().collect::<Vec<_>>(),
        ["master/bp1.toml/r1", "master/bp1.toml/r2"]
    );
    assert_eq!(
        git(&s.state, &["rev-parse", "master/bp1.toml/r1^{commit}"]).trim(),
        newest
    );
    assert_eq!(
        git(&s.state, &["symbolic-ref", "HEAD"]).trim(),
        "refs/heads/master"
    );
    git(&s.state, &["fsck", "--strict"]);

    // Restart on the same state: blueprints and history remain.
    let state = s.state.clone();
    let store = s.store.clone();
    s.stop().await;
    let dir = state.parent().unwrap().to_path_buf();
    let s = TestServer::start_with(&dir, store, |_| {}).await;
    let j = s.get(&format!("{v}/blueprints/changes/bp1")).await.json();
    assert_eq!(j["blueprints"][0]["total"], 3);
    assert_eq!(j["blueprints"][0]["changes"][0]["revision"], 2);
    let j = s
        .get(&format!("{v}/blueprints/list?limit=100"))
        .await
        .json();
    assert!(j["blueprints"].as_array().unwrap().contains(&json!("bp1")));
    assert!(
        j["blueprints"]
            .as_array()
            .unwrap()
            .contains(&json!("example-http-server"))
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_examples_stay_deleted_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    assert_eq!(
        s.delete("/api/v0/blueprints/delete/example-atlas")
            .await
            .status,
        200
    );
    s.stop().await;
    let s = TestServer::start(dir.path()).await;
    let j = s.get("/api/v0/blueprints/list?limit=100").await.json();
    assert!(
        !j["blueprints"]
            .as_array()
            .unwrap()
            .contains(&json!("example-atlas"))
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), dir.path().join("store"), |c| {
        c.max_body = 64 << 10;
    })
    .await;
    let v = "/api/v0";
    // Encoded slashes and dot names in every kind of path parameter.
    for path in [
        format!("{v}/blueprints/info/..%2Fx"),
        format!("{v}/blueprints/info/%2E%2E"),
        format!("{v}/blueprints/info/a%2F..%2F..%2Fetc"),
        format!("{v}/blueprints/changes/..%2F..%2Fetc%2Fpasswd"),
        format!("{v}/blueprints/freeze/..%2Fx"),
        format!("{v}/blueprints/depsolve/..%2Fx"),
        format!("{v}/blueprints/diff/..%2Fx/NEWEST/WORKSPACE"),
        format!("{v}/blueprints/diff/bp/..%2F..%2FHEAD/WORKSPACE"),
        "/api/v1/blueprints/change/example-base/..%2F..%2Fconfig".to_string(),
    ] {
        let r = s.get(&path).await;
        assert_eq!(
            (r.status, r.error_id()),
            (400, "InvalidChars".to_string()),
            "{path}"
        );
    }
    for path in [
        format!("{v}/blueprints/delete/..%2F..%2Fblueprints.git"),
        format!("{v}/blueprints/workspace/..%2Fsources%2Fx"),
        format!("{v}/projects/source/delete/..%2F..%2Fetc%2Fpasswd"),
        format!("{v}/projects/source/delete/.."),
    ] {
        let r = s.delete(&path).await;
        assert_eq!(
            (r.status, r.error_id()),
            (400, "InvalidChars".to_string()),
            "{path}"
        );
    }
    for path in [
        format!("{v}/blueprints/undo/example-base/..%2F..%2Fx"),
        format!("{v}/blueprints/tag/..%2Fx"),
    ] {
        let r = s.post(&path, "application/json", "").await;
        assert_eq!(
            (r.status, r.error_id()),
            (400, "InvalidChars".to_string()),
            "{path}"
        );
    }
    // Literal dot segments do not route anywhere.
    assert_eq!(
        s.get(&format!("{v}/blueprints/info/../../x")).await.status,
        404
    );
    // Names in bodies.
    for name in ["../x", "a/b", "..", "x y", "ｆｕｌｌ"] {
        for route in ["new", "workspace"] {
            let r = s
                .post_json(&format!("{v}/blueprints/{route}"), &json!({"name": name}))
                .await;
            assert_eq!(
                (r.status, r.error_id()),
                (400, "InvalidChars".to_string()),
                "{route} {name}"
            );
        }
    }
    let r = s
        .post_json(&format!("{v}/projects/source/new"), &json!({"name": "../x", "url": "http://127.0.0.1:9/d", "type": "deb", "check_gpg": false}))
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    // Nothing was written outside the state directory's own files.
    let mut found = Vec::new();
    for e in walk(dir.path()) {
        found.push(e);
    }
    assert!(
        !found
            .iter()
            .any(|p| p.ends_with("x.toml") || p.ends_with("x")),
        "{found:?}"
    );
    // Oversized bodies are refused (the limit is 64 KiB here, 1 MiB by default).
    let big = format!(
        "{{\"name\": \"big\", \"description\": \"{}\"}}",
        "x".repeat(100 << 10)
    );
    let r = s
        .post(
            &format!("{v}/blueprints/new"),
            "application/json",
            big.clone(),
        )
        .await;
    assert_eq!((r.status, r.error_id()), (413, "HTTPError".to_string()));
    let r = s
        .post(&format!("{v}/projects/source/new"), "application/json", big)
        .await;
    assert_eq!(r.status, 413);
    // Garbage does not hurt the server.
    let r = s
        .post(
            &format!("{v}/blueprints/new"),
            "application/json",
            vec![0xff, 0xfe, 0x00, 0x01],
        )
        .await;
    assert_eq!(r.status, 400);
    let r = s
        .post(
            &format!("{v}/blueprints/new"),
            "application/json",
            "[1, 2, 3]",
        )
        .await;
    assert_eq!(r.error_id(), "BlueprintsError");
    let r = s
        .post(
            &format!("{v}/blueprints/new"),
            "application/json",
            "{\"name\": \"deep\", \"customizations\": ".to_string() + &"[".repeat(60_000),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(s.get("/api/status").await.status, 200);
    s.stop().await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && !p.ends_with("objects") {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_lose_nothing() {
    let (_dir, s) = server().await;
    let s = std::sync::Arc::new(s);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut bp = b1();
            // No version: every push bumps the previous one.
            bp.as_object_mut().unwrap().remove("version");
            bp["name"] = json!("busy");
            bp["description"] = json!(format!("push {i}"));
            let r = s.post_json("/api/v1/blueprints/new", &bp).await;
            assert_eq!(r.status, 200, "{}", r.text());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let j = s
        .get("/api/v1/blueprints/changes/busy?limit=100")
        .await
        .json();
    assert_eq!(j["blueprints"][0]["total"], 50, "{j}");
    // Every push bumped the version once: 0.0.1 .. 0.0.50, each exactly once.
    let mut versions: Vec<u32> = j["blueprints"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let m = c["message"].as_str().unwrap();
            let v = m.strip_prefix("Recipe busy, version 0.0.").unwrap();
            v.strip_suffix(" saved.").unwrap().parse().unwrap()
        })
        .collect();
    versions.sort();
    assert_eq!(versions, (1..=50).collect::<Vec<_>>());
    let log = git(&s.state, &["log", "--format=%s", "master"]);
    assert_eq!(
        log.lines()
            .filter(|l| l.starts_with("Recipe busy,"))
            .count(),
        50
    );
    git(&s.state, &["fsck", "--strict"]);
    std::sync::Arc::try_unwrap(s).ok().unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources() {
    let (_dir, s) = server().await;
    let system: Vec<String> = s.get("/api/v1/projects/source/list").await.json()["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    // R10: v0, keyed by name.
    let src = json!({"name": "local", "url": "http://127.0.0.1:9/debian", "type": "yum-baseurl", "check_ssl": true, "check_gpg": false});
    let r = s.post_json("/api/v0/projects/source/new", &src).await;
    assert_eq!(r.json(), json!({"status": true}), "{}", r.text());
    // R01
    let j = s.get("/api/v0/projects/source/list").await.json();
    assert!(j["sources"].as_array().unwrap().contains(&json!("local")));
    // R02/R03: v0 entries have no id, v1 entries do.
    let j = s.get("/api/v0/projects/source/info/local").await.json();
    let e = &j["sources"]["local"];
    assert_eq!(
        (
            e["name"].clone(),
            e["system"].clone(),
            e["check_gpg"].clone()
        ),
        (json!("local"), json!(false), json!(false))
    );
    assert_eq!(e["url"], "http://127.0.0.1:9/debian/");
    assert!(e.get("id").is_none(), "{j}");
    assert_eq!(j["errors"], json!([]));
    let j = s.get("/api/v1/projects/source/info/local").await.json();
    assert_eq!(j["sources"]["local"]["id"], "local");
    // R11: v1 TOML as a single [id] table, and bare with id.
    let toml = "[other]\nname = \"Other\"\nurl = \"http://127.0.0.1:9/other\"\ntype = \"deb\"\ncheck_gpg = false\n";
    assert_eq!(
        s.post_toml("/api/v1/projects/source/new", toml)
            .await
            .status,
        200
    );
    let toml2 = "id = \"third\"\nname = \"Third\"\nurl = \"http://127.0.0.1:9/third\"\ntype = \"deb-flat\"\ncheck_gpg = false\n";
    let r = s.post_toml("/api/v1/projects/source/new", toml2).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // R05, R04, R06
    let j = s
        .get("/api/v1/projects/source/info/local,other")
        .await
        .json();
    assert_eq!(j["sources"].as_object().unwrap().len(), 2);
    let j = s
        .get("/api/v1/projects/source/info/local%2Cthird")
        .await
        .json();
    assert_eq!(j["sources"].as_object().unwrap().len(), 2);
    let j = s.get("/api/v1/projects/source/info/*").await.json();
    assert_eq!(j["sources"].as_object().unwrap().len(), system.len() + 3);
    let r = s
        .get("/api/v1/projects/source/info/other?format=toml")
        .await;
    let t: toml::Table = toml::from_str(&r.text()).unwrap();
    assert_eq!(t["other"]["name"].as_str(), Some("Other"));
    // R16: replacing a user source.
    let r = s
        .post_toml(
            "/api/v1/projects/source/new",
            &toml.replace("\"Other\"", "\"Other 2\""),
        )
        .await;
    assert_eq!(r.status, 200);
    let j = s.get("/api/v1/projects/source/info/other").await.json();
    assert_eq!(j["sources"]["other"]["name"], "Other 2");
    // R07, R08, R09
    let r = s.get("/api/v1/projects/source/info/unknown").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"sources": {}, "errors": [{"id": "UnknownSource", "msg": "unknown is not a valid source"}]})
    );
    let r = s
        .get("/api/v1/projects/source/info/unknown?format=toml")
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error_msg().contains("is not a valid source"));
    let r = s.get("/api/v1/projects/source/info/local?format=son").await;
    assert_eq!(
        (r.error_id(), r.error_msg()),
        (
            "InvalidChars".into(),
            "invalid format parameter: son".into()
        )
    );
    // R12, R13, R14, R20
    let r = s
        .post("/api/v1/projects/source/new", "application/json", "")
        .await;
    assert_eq!(
        (r.error_id(), r.error_msg()),
        ("ProjectsError".into(), "Missing source".into())
    );
    let r = s
        .post_json(
            "/api/v0/projects/source/new",
            &json!({"name": "x", "type": "deb"}),
        )
        .await;
    assert_eq!(
        (r.error_id(), r.error_msg()),
        (
            "ProjectsError".into(),
            "Problem parsing POST body: 'url' field is missing from request".into()
        )
    );
    let r = s
        .post_json(
            "/api/v0/projects/source/new",
            &json!({"url": "http://127.0.0.1:9/x", "type": "deb"}),
        )
        .await;
    assert_eq!(
        r.error_msg(),
        "Problem parsing POST body: 'name' field is missing from request"
    );
    let r = s
        .post_json(
            "/api/v1/projects/source/new",
            &json!({"name": "x", "url": "http://127.0.0.1:9/x", "type": "deb"}),
        )
        .await;
    assert_eq!(
        r.error_msg(),
        "Problem parsing POST body: 'id' field is missing from request"
    );
    let r = s
        .post(
            "/api/v1/projects/source/new",
            "application/json",
            "{\"id\": ",
        )
        .await;
    assert_eq!((r.status, r.error_id()), (400, "ProjectsError".into()));
    let r = s.post_toml("/api/v1/projects/source/new", "[x\nurl=").await;
    assert_eq!((r.status, r.error_id()), (400, "ProjectsError".into()));
    let r = s.post_json("/api/v1/projects/source/new", &json!({"id": "d", "name": "d", "url": "http://127.0.0.1:9/x", "type": "deb", "check_gpg": false, "distros": ["fedora-41"]})).await;
    assert_eq!(
        (r.error_id(), r.error_msg()),
        (
            "ProjectsError".into(),
            "Invalid distributions: fedora-41".into()
        )
    );
    // check_gpg without keys is refused by kiln-repo, with its message.
    let r = s
        .post_json(
            "/api/v1/projects/source/new",
            &json!({"id": "k", "name": "k", "url": "http://127.0.0.1:9/x", "type": "deb"}),
        )
        .await;
    assert_eq!(r.error_id(), "ProjectsError");
    // R17, R18
    assert_eq!(
        s.delete("/api/v1/projects/source/delete/other")
            .await
            .json(),
        json!({"status": true})
    );
    let j = s.get("/api/v1/projects/source/list").await.json();
    assert!(!j["sources"].as_array().unwrap().contains(&json!("other")));
    let r = s.delete("/api/v1/projects/source/delete/unknown").await;
    assert_eq!(
        (r.error_id(), r.error_msg()),
        (
            "UnknownSource".into(),
            "unknown is not a valid source.".into()
        )
    );
    // R15, R19: only when the host has a Debian mirror (system sources).
    if let Some(sys) = system.first() {
        let j = s
            .get(&format!("/api/v0/projects/source/info/{sys}"))
            .await
            .json();
        assert_eq!(j["sources"][sys]["system"], true);
        let r = s.post_json("/api/v1/projects/source/new", &json!({"id": sys, "name": "x", "url": "http://127.0.0.1:9/x", "type": "deb", "check_gpg": false})).await;
        assert_eq!(
            (r.error_id(), r.error_msg()),
            (
                "SystemSource".into(),
                format!("{sys} is a system source, it cannot be changed.")
            )
        );
        let r = s
            .delete(&format!("/api/v1/projects/source/delete/{sys}"))
            .await;
        assert_eq!(r.error_id(), "SystemSource");
    } else {
        eprintln!("no system sources on this host: R15/R19 skipped");
    }
    // User sources are files in the state directory.
    assert!(s.state.join("sources/local.toml").is_file());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_errors_without_the_archive() {
    let (_dir, s) = server().await;
    for v in V {
        // P05, P14
        for path in ["projects/info", "projects/info/"] {
            let r = s.get(&format!("{v}/{path}")).await;
            assert_eq!(
                (r.status, r.error_id(), r.error_msg()),
                (
                    400,
                    "UnknownProject".into(),
                    "No packages specified.".into()
                ),
                "{path}"
            );
        }
        for path in ["modules/info", "modules/info/"] {
            let r = s.get(&format!("{v}/{path}")).await;
            assert_eq!(
                (r.error_id(), r.error_msg()),
                ("UnknownModule".into(), "No packages specified.".into())
            );
        }
        // P15
        for path in [
            "projects/list",
            "projects/info/bash",
            "projects/depsolve/bash",
            "modules/list",
            "modules/info/bash",
        ] {
            let r = s.get(&format!("{v}/{path}?distro=fedora-41")).await;
            assert_eq!(
                (r.error_id(), r.error_msg()),
                ("DistroError".into(), "Invalid distro: fedora-41".into()),
                "{path}"
            );
        }
        let r = s.get(&format!("{v}/projects/list?arch=vax")).await;
        assert_eq!(r.error_id(), "DistroError");
    }
    // P16: v1 only.
    let j = s.get("/api/v1/distros/list").await.json();
    assert_eq!(j, json!({"distros": ["debian-12", "debian-13"]}));
    assert_eq!(s.get("/api/v0/distros/list").await.status, 404);
    // B37 needs no archive.
    let j = s.get("/api/v0/blueprints/depsolve/missing").await.json();
    assert_eq!(
        j["errors"],
        json!([{"id": "UnknownBlueprint", "msg": "missing: blueprint not found"}])
    );
    // B35: no packages, no archive needed.
    let r = s
        .post_json(
            "/api/v0/blueprints/new",
            &json!({"name": "empty", "distro": "debian-12"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let j = s.get("/api/v0/blueprints/depsolve/empty").await.json();
    assert_eq!(j["errors"], json!([]));
    assert_eq!(j["blueprints"][0]["dependencies"], json!([]));
    assert_eq!(j["blueprints"][0]["blueprint"]["name"], "empty");
    s.stop().await;
}
