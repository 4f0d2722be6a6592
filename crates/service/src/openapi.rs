//! The OpenAPI document of the API, generated from the router's route table so that the
//! two cannot drift apart: `crates/service/openapi.json` is this document, checked in and
//! served at `/api/openapi.json`; a test fails when they differ (`KILN_BLESS=1 cargo test
//! -p kiln-service openapi` rewrites the file).

use serde_json::{Map, Value, json};

/// What the document says about one route (path relative to `/api/vN`).
struct Doc {
    summary: &'static str,
    tag: &'static str,
    query: &'static [&'static str],
    body: bool,
    reply: &'static str,
}

fn doc(path: &str) -> Doc {
    let d = |summary, tag, query: &'static [&'static str], body, reply| Doc {
        summary,
        tag,
        query,
        body,
        reply,
    };
    const PAGE: &[&str] = &["offset", "limit"];
    const FORMAT: &[&str] = &["format"];
    const TARGET: &[&str] = &["distro", "arch"];
    const TARGET_PAGE: &[&str] = &["distro", "arch", "offset", "limit"];
    match path {
        "/api/status" => d("Server status", "server", &[], false, "Status"),
        "/api/openapi.json" => d("This document", "server", &[], false, "Any"),
        "/blueprints/list" => d(
            "Names of the committed blueprints",
            "blueprints",
            PAGE,
            false,
            "BlueprintList",
        ),
        "/blueprints/info/{names}" => d(
            "Blueprints (workspace copy first), as JSON or TOML",
            "blueprints",
            FORMAT,
            false,
            "BlueprintInfo",
        ),
        "/blueprints/changes/{names}" => d(
            "History of blueprints, newest first",
            "blueprints",
            PAGE,
            false,
            "BlueprintChanges",
        ),
        "/blueprints/change/{name}/{commit}" => d(
            "A blueprint as it was at a commit",
            "blueprints",
            FORMAT,
            false,
            "Blueprint",
        ),
        "/blueprints/diff/{name}/{from}/{to}" => d(
            "Differences between two versions (NEWEST, WORKSPACE or a commit)",
            "blueprints",
            &[],
            false,
            "BlueprintDiff",
        ),
        "/blueprints/freeze/{names}" => d(
            "Blueprints with every package pinned to the solved version",
            "blueprints",
            FORMAT,
            false,
            "BlueprintFreeze",
        ),
        "/blueprints/depsolve/{names}" => d(
            "The packages a blueprint resolves to",
            "blueprints",
            &[],
            false,
            "BlueprintDepsolve",
        ),
        "/blueprints/new" => d(
            "Commit a blueprint (JSON or TOML body)",
            "blueprints",
            &[],
            true,
            "Status",
        ),
        "/blueprints/workspace" => d(
            "Save a blueprint to the workspace (JSON or TOML body)",
            "blueprints",
            &[],
            true,
            "Status",
        ),
        "/blueprints/workspace/{name}" => {
            d("Drop a workspace copy", "blueprints", &[], false, "Status")
        }
        "/blueprints/delete/{name}" => d(
            "Delete a blueprint (its history stays)",
            "blueprints",
            &[],
            false,
            "Status",
        ),
        "/blueprints/undo/{name}/{commit}" => d(
            "Commit the blueprint as it was at a commit",
            "blueprints",
            &[],
            false,
            "Status",
        ),
        "/blueprints/tag/{name}" => d(
            "Tag the newest commit with the next revision",
            "blueprints",
            &[],
            false,
            "Status",
        ),
        "/projects/list" => d(
            "All packages",
            "projects",
            TARGET_PAGE,
            false,
            "ProjectList",
        ),
        "/projects/info" | "/projects/depsolve" => {
            d("Error: no packages given", "projects", &[], false, "Error")
        }
        "/projects/info/{names}" => d(
            "Packages by name or glob",
            "projects",
            TARGET,
            false,
            "ProjectInfo",
        ),
        "/projects/depsolve/{names}" => d(
            "The closure of some packages",
            "projects",
            TARGET,
            false,
            "ProjectDepsolve",
        ),
        "/projects/source/list" => d("Source ids", "sources", &[], false, "SourceList"),
        "/projects/source/info/{ids}" => d(
            "Sources by id (`*` for all), as JSON or TOML",
            "sources",
            FORMAT,
            false,
            "SourceInfo",
        ),
        "/projects/source/new" => d(
            "Add or replace a user source (JSON or TOML body)",
            "sources",
            &[],
            true,
            "Status",
        ),
        "/projects/source/delete/{id}" => {
            d("Delete a user source", "sources", &[], false, "Status")
        }
        "/modules/list" => d(
            "All package names",
            "modules",
            TARGET_PAGE,
            false,
            "ModuleList",
        ),
        "/modules/list/{names}" => d(
            "Package names matching names or globs",
            "modules",
            TARGET_PAGE,
            false,
            "ModuleList",
        ),
        "/modules/info" => d("Error: no packages given", "modules", &[], false, "Error"),
        "/modules/info/{names}" => d(
            "Packages with their dependencies",
            "modules",
            TARGET,
            false,
            "ModuleInfo",
        ),
        "/distros/list" => d(
            "Distributions kiln builds",
            "distros",
            &["arch"],
            false,
            "DistroList",
        ),
        "/compose" => d(
            "Start a compose of a committed blueprint (kiln: `compose_types` for several image types from one depsolve; `?test=1` fails and `?test=2` finishes at once, without a build)",
            "compose",
            &["test"],
            true,
            "ComposeStarted",
        ),
        "/compose/types" => d("Image types", "compose", TARGET, false, "ComposeTypes"),
        "/compose/queue" => d(
            "Waiting (`new`) and running (`run`) composes",
            "compose",
            &[],
            false,
            "ComposeQueue",
        ),
        "/compose/finished" => d(
            "Finished composes",
            "compose",
            &[],
            false,
            "ComposeFinished",
        ),
        "/compose/failed" => d("Failed composes", "compose", &[], false, "ComposeFailed"),
        "/compose/status/{ids}" => d(
            "Composes by id (`*` for all), filtered by blueprint, status and type",
            "compose",
            &["blueprint", "status", "type"],
            false,
            "ComposeStatus",
        ),
        "/compose/info/{id}" => d(
            "A compose: blueprint, depsolved packages, state, failure",
            "compose",
            &[],
            false,
            "ComposeInfo",
        ),
        "/compose/cancel/{id}" => d(
            "Cancel a waiting compose (off the queue) or stop a running build",
            "compose",
            &[],
            false,
            "ComposeCanceled",
        ),
        "/compose/delete/{ids}" => d(
            "Delete finished or failed composes and their files",
            "compose",
            &[],
            false,
            "ComposeDeleted",
        ),
        "/compose/log/{id}" => d(
            "The tail of the build log (live while the build runs)",
            "compose",
            &["size"],
            false,
            "@text/plain",
        ),
        "/compose/logs/{id}" => d(
            "The logs as a tar (`<id>-logs.tar`: logs/build.log, logs/progress.jsonl, one log per stage)",
            "compose",
            &[],
            false,
            "@application/x-tar",
        ),
        "/compose/metadata/{id}" => d(
            "The manifest (`<id>.json`) and the frozen blueprint as a tar (`<id>-metadata.tar`)",
            "compose",
            &[],
            false,
            "@application/x-tar",
        ),
        "/compose/results/{id}" => d(
            "Metadata, logs and images as a tar (`<id>.tar`)",
            "compose",
            &[],
            false,
            "@application/x-tar",
        ),
        "/compose/image/{id}" => d(
            "The image file (`Content-Disposition: attachment; filename=<id>-<file>`; kiln: `?type=` picks one of the compose's types)",
            "compose",
            &["type"],
            false,
            "@application/octet-stream",
        ),
        "/compose/events/{id}" => d(
            "kiln: the build's progress as server-sent events (`event: progress` with a kiln-build event as JSON, from the first; `event: status` at the start and when the compose ends)",
            "compose",
            &[],
            false,
            "@text/event-stream",
        ),
        _ => d("", "other", &[], false, "Any"),
    }
}

fn query_param(name: &str) -> Value {
    let (desc, schema) = match name {
        "offset" => (
            "First item to return",
            json!({"type": "integer", "minimum": 0, "default": 0}),
        ),
        "limit" => (
            "Most items to return",
            json!({"type": "integer", "minimum": 0, "default": 20}),
        ),
        "format" => (
            "Reply format",
            json!({"type": "string", "enum": ["json", "toml"], "default": "json"}),
        ),
        "distro" => (
            "Distribution (default: the host's)",
            json!({"type": "string", "example": "debian-12"}),
        ),
        "arch" => (
            "Architecture (default: the host's)",
            json!({"type": "string", "example": "amd64"}),
        ),
        "test" => (
            "1: the compose fails at once, 2: it finishes at once (no build)",
            json!({"type": "integer", "enum": [1, 2]}),
        ),
        "size" => (
            "KiB of the log's tail (default 1024)",
            json!({"type": "integer", "minimum": 0}),
        ),
        "blueprint" => ("Only composes of this blueprint", json!({"type": "string"})),
        "status" => (
            "Only composes in this state",
            json!({"type": "string", "enum": ["WAITING", "RUNNING", "FINISHED", "FAILED"]}),
        ),
        "type" => (
            "Only this image type",
            json!({"type": "string", "example": "qcow2"}),
        ),
        _ => ("", json!({"type": "string"})),
    };
    json!({"name": name, "in": "query", "required": false, "description": desc, "schema": schema})
}

fn path_param(name: &str) -> Value {
    let desc = match name {
        "version" => "API version",
        "names" | "ids" => "Comma-separated list (the commas may be percent-encoded)",
        "commit" => "A commit id (40 hex digits)",
        "from" | "to" => "NEWEST, WORKSPACE or a commit id",
        _ => "A name: letters, digits, '.', '_' and '-'",
    };
    let schema = if name == "version" {
        json!({"type": "string", "enum": ["0", "1"]})
    } else {
        json!({"type": "string", "pattern": "^[A-Za-z0-9._,*-]+$"})
    };
    json!({"name": name, "in": "path", "required": true, "description": desc, "schema": schema})
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn operation(method: &str, relative: &str, template_params: &[String]) -> Value {
    let d = doc(relative);
    let mut params: Vec<Value> = template_params.iter().map(|p| path_param(p)).collect();
    params.extend(d.query.iter().map(|q| query_param(q)));
    let mut op = Map::new();
    op.insert("summary".into(), json!(d.summary));
    op.insert("tags".into(), json!([d.tag]));
    op.insert(
        "operationId".into(),
        json!(format!(
            "{method}{}",
            relative
                .split(['/', '{', '}', '.'])
                .filter(|s| !s.is_empty())
                .map(|s| {
                    let mut c = s.chars();
                    c.next()
                        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                        .unwrap_or_default()
                })
                .collect::<String>()
        )),
    );
    if !params.is_empty() {
        op.insert("parameters".into(), Value::Array(params));
    }
    if d.body && relative == "/compose" {
        op.insert(
            "requestBody".into(),
            json!({"required": true, "content": {"application/json": {"schema": reference("ComposeRequest")}}}),
        );
    } else if d.body {
        op.insert(
            "requestBody".into(),
            json!({
                "required": true,
                "content": {
                    "application/json": {"schema": reference("Object")},
                    "text/x-toml": {"schema": {"type": "string"}},
                }
            }),
        );
    }
    let mut ok = match d.reply.strip_prefix('@') {
        Some(media) => json!({ media: {"schema": {"type": "string", "format": "binary"}} }),
        None => json!({"application/json": {"schema": reference(d.reply)}}),
    };
    if d.query.contains(&"format") {
        ok["text/x-toml"] = json!({"schema": {"type": "string"}});
    }
    op.insert(
        "responses".into(),
        json!({
            "200": {"description": "Success", "content": ok},
            "400": {"description": "A weldr error", "content": {"application/json": {"schema": reference("Error")}}},
            "404": {"description": "Unknown route", "content": {"application/json": {"schema": reference("Error")}}},
        }),
    );
    Value::Object(op)
}

fn schemas() -> Value {
    let obj = json!({"type": "object", "additionalProperties": true});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let errors = json!({"type": "array", "items": reference("ErrorEntry")});
    let paged = |key: &str, items: Value| {
        json!({"type": "object", "required": ["total", "offset", "limit", key], "properties": {
            "total": {"type": "integer"}, "offset": {"type": "integer"}, "limit": {"type": "integer"},
            key: {"type": "array", "items": items}}})
    };
    let mut all = json!({
        "Any": {},
        "Object": obj,
        "ErrorEntry": {"type": "object", "required": ["id", "msg"], "properties": {
            "id": {"type": "string"}, "msg": {"type": "string"}, "code": {"type": "integer"}}},
        "Error": {"type": "object", "required": ["status", "errors"], "properties": {
            "status": {"type": "boolean", "const": false}, "errors": errors}},
        "Status": {"type": "object", "properties": {
            "status": {"type": "boolean"}, "api": {"type": "string"}, "db_supported": {"type": "boolean"},
            "db_version": {"type": "string"}, "schema_version": {"type": "string"},
            "backend": {"type": "string"}, "build": {"type": "string"}, "msgs": strings}},
        "Blueprint": {"type": "object", "required": ["name", "packages", "modules", "groups"], "additionalProperties": true, "properties": {
            "name": {"type": "string"}, "description": {"type": "string"}, "version": {"type": "string"},
            "distro": {"type": "string"}, "architecture": {"type": "string"},
            "packages": {"type": "array", "items": reference("Package")},
            "modules": {"type": "array", "items": reference("Package")},
            "groups": {"type": "array", "items": obj},
            "customizations": obj}},
        "Package": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"}, "version": {"type": "string"}}},
        "BlueprintList": paged("blueprints", json!({"type": "string"})),
        "BlueprintInfo": {"type": "object", "properties": {
            "blueprints": {"type": "array", "items": reference("Blueprint")},
            "changes": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "changed": {"type": "boolean"}}}},
            "errors": errors}},
        "Change": {"type": "object", "required": ["commit", "timestamp", "message", "revision"], "properties": {
            "commit": {"type": "string"}, "timestamp": {"type": "string"}, "message": {"type": "string"},
            "revision": {"type": ["integer", "null"]}}},
        "BlueprintChanges": {"type": "object", "properties": {
            "blueprints": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "total": {"type": "integer"},
                "changes": {"type": "array", "items": reference("Change")}}}},
            "errors": errors, "offset": {"type": "integer"}, "limit": {"type": "integer"}}},
        "BlueprintDiff": {"type": "object", "properties": {"diff": {"type": "array", "items": {
            "type": "object", "properties": {"old": {"type": ["object", "null"]}, "new": {"type": ["object", "null"]}}}}}},
        "Dependency": {"type": "object", "required": ["name", "epoch", "version", "release", "arch"], "properties": {
            "name": {"type": "string"}, "epoch": {"type": "integer"},
            "version": {"type": "string", "description": "Upstream part of the Debian version"},
            "release": {"type": "string", "description": "Debian revision (\"0\" for native packages)"},
            "arch": {"type": "string"}, "remote_location": {"type": "string"},
            "checksum": {"type": "string"}, "debian_version": {"type": "string"},
            "size": {"type": "integer"}, "source": {"type": "string"}}},
        "BlueprintFreeze": {"type": "object", "properties": {
            "blueprints": {"type": "array", "items": {"type": "object", "properties": {"blueprint": reference("Blueprint")}}},
            "errors": errors}},
        "BlueprintDepsolve": {"type": "object", "properties": {
            "blueprints": {"type": "array", "items": {"type": "object", "properties": {
                "blueprint": reference("Blueprint"),
                "dependencies": {"type": "array", "items": reference("Dependency")}}}},
            "errors": errors}},
        "Project": {"type": "object", "properties": {
            "name": {"type": "string"}, "summary": {"type": "string"}, "description": {"type": "string"},
            "homepage": {"type": "string"}, "upstream_vcs": {"type": "string"},
            "builds": {"type": "array", "items": obj}}},
        "ProjectList": paged("projects", reference("Project")),
        "ProjectInfo": {"type": "object", "properties": {"projects": {"type": "array", "items": reference("Project")}}},
        "ProjectDepsolve": {"type": "object", "properties": {"projects": {"type": "array", "items": reference("Dependency")}}},
        "ModuleList": paged("modules", json!({"type": "object", "properties": {
            "name": {"type": "string"}, "group_type": {"type": "string"}}})),
        "ModuleInfo": {"type": "object", "properties": {"modules": {"type": "array", "items": reference("Project")}}},
        "SourceList": {"type": "object", "properties": {"sources": strings}},
        "Source": {"type": "object", "additionalProperties": true, "properties": {
            "id": {"type": "string"}, "name": {"type": "string"},
            "type": {"type": "string", "enum": ["yum-baseurl", "deb", "deb-flat"]},
            "url": {"type": "string"}, "check_gpg": {"type": "boolean"}, "check_ssl": {"type": "boolean"},
            "gpgkeys": strings, "system": {"type": "boolean"}, "distros": strings,
            "suite": {"type": "string"}, "components": strings}},
        "SourceInfo": {"type": "object", "properties": {
            "sources": {"type": "object", "additionalProperties": reference("Source")}, "errors": errors}},
        "DistroList": {"type": "object", "properties": {"distros": strings}},
    });
    if let (Some(all), Value::Object(more)) = (all.as_object_mut(), compose_schemas()) {
        all.extend(more);
    }
    all
}

/// The schemas of the compose routes.
fn compose_schemas() -> Value {
    let obj = json!({"type": "object", "additionalProperties": true});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let errors = json!({"type": "array", "items": reference("ErrorEntry")});
    json!({
        "ComposeRequest": {"type": "object", "required": ["blueprint_name"], "properties": {
            "blueprint_name": {"type": "string"},
            "compose_type": {"type": "string", "example": "qcow2"},
            "compose_types": {"type": "array", "items": {"type": "string"},
                "description": "kiln: more image types, built from the same depsolve and OS tree (their file names must differ)"},
            "branch": {"type": "string"},
            "size": {"type": "integer", "description": "Requested image size in bytes"},
            "ostree": obj,
            "upload": {"type": "object", "description": "v1: {image_name, provider, settings}, stored and listed in `uploads` (secrets stripped)", "properties": {
                "image_name": {"type": "string"}, "provider": {"type": "string"}, "settings": obj}}}},
        "ComposeStarted": {"type": "object", "required": ["status", "build_id"], "properties": {
            "status": {"type": "boolean"}, "build_id": {"type": "string", "format": "uuid"}, "warnings": strings}},
        "ComposeTypes": {"type": "object", "properties": {"types": {"type": "array", "items": {
            "type": "object", "properties": {"name": {"type": "string"}, "enabled": {"type": "boolean"}}}}}},
        "Failure": {"type": "object", "required": ["message"], "description": "kiln: why a compose failed", "properties": {
            "pipeline": {"type": "string"}, "stage": {"type": "string"}, "message": {"type": "string"}}},
        "Upload": {"type": "object", "properties": {
            "uuid": {"type": "string"}, "status": {"type": "string"}, "provider_name": {"type": "string"},
            "image_name": {"type": "string"}, "creation_time": {"type": "number"}, "settings": obj}},
        "ComposeEntry": {"type": "object", "required": ["id", "blueprint", "version", "compose_type", "image_size", "queue_status", "job_created"], "properties": {
            "id": {"type": "string", "format": "uuid"}, "blueprint": {"type": "string"}, "version": {"type": "string"},
            "compose_type": {"type": "string"},
            "compose_types": {"type": "array", "items": {"type": "string"}, "description": "kiln: every image type of the compose"},
            "image_size": {"type": "integer"},
            "queue_status": {"type": "string", "enum": ["WAITING", "RUNNING", "FINISHED", "FAILED"]},
            "job_created": {"type": "number"}, "job_started": {"type": "number"}, "job_finished": {"type": "number"},
            "failure": reference("Failure"),
            "uploads": {"type": "array", "items": reference("Upload"), "description": "v1 only"}}},
        "ComposeQueue": {"type": "object", "properties": {
            "new": {"type": "array", "items": reference("ComposeEntry")},
            "run": {"type": "array", "items": reference("ComposeEntry")}}},
        "ComposeFinished": {"type": "object", "properties": {"finished": {"type": "array", "items": reference("ComposeEntry")}}},
        "ComposeFailed": {"type": "object", "properties": {"failed": {"type": "array", "items": reference("ComposeEntry")}}},
        "ComposeStatus": {"type": "object", "properties": {"uuids": {"type": "array", "items": reference("ComposeEntry")}}},
        "ComposeInfo": {"type": "object", "description": "A compose entry whose `blueprint` is the blueprint itself", "properties": {
            "id": {"type": "string", "format": "uuid"}, "compose_type": {"type": "string"},
            "compose_types": {"type": "array", "items": {"type": "string"}},
            "queue_status": {"type": "string"}, "image_size": {"type": "integer"},
            "failure": reference("Failure"), "uploads": {"type": "array", "items": reference("Upload")},
            "config": {"type": "string"}, "commit": {"type": "string"}, "blueprint": reference("Blueprint"),
            "deps": {"type": "object", "properties": {"packages": {"type": "array", "items": reference("Dependency")}}},
            "images": {"type": "array", "items": {"type": "object", "properties": {
                "type": {"type": "string"}, "filename": {"type": "string"}, "mime": {"type": "string"}}}}}},
        "ComposeCanceled": {"type": "object", "properties": {"uuid": {"type": "string"}, "status": {"type": "boolean"}}},
        "ComposeDeleted": {"type": "object", "properties": {
            "uuids": {"type": "array", "items": {"type": "object", "properties": {
                "uuid": {"type": "string"}, "status": {"type": "boolean"}}}},
            "errors": errors}},
    })
}

/// The whole document.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    // Routes present in both versions are documented once, as `/api/v{version}/...`.
    let table = crate::api::route_table();
    for (method, path) in &table {
        let (doc_path, relative, mut params) = if let Some(rest) = path.strip_prefix("/api/v0") {
            (
                format!("/api/v{{version}}{rest}"),
                rest.to_string(),
                vec!["version".to_string()],
            )
        } else if let Some(rest) = path.strip_prefix("/api/v1") {
            if table
                .iter()
                .any(|(m, p)| m == method && *p == format!("/api/v0{rest}"))
            {
                continue;
            }
            (path.clone(), rest.to_string(), Vec::new())
        } else {
            (path.clone(), path.clone(), Vec::new())
        };
        params.extend(
            relative
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .map(str::to_string),
        );
        let entry = paths
            .entry(doc_path)
            .or_insert_with(|| Value::Object(Map::new()));
        entry[*method] = operation(method, &relative, &params);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "kiln weldr API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The weldr API of osbuild-composer as kiln serves it (blueprints, \
                sources, projects, modules, distros), over a unix socket (default \
                /run/weldr/api.socket) and optionally loopback TCP. Errors are \
                {\"status\": false, \"errors\": [{\"id\", \"msg\"}]}. Debian versions are split \
                into epoch, version (upstream) and release (revision).",
        },
        "paths": paths,
        "components": {"schemas": schemas()},
    })
}

#[cfg(test)]
mod tests {
    /// The checked-in document is the generated one.
    #[test]
    fn openapi_in_sync() {
        let want = serde_json::to_string_pretty(&super::document()).unwrap() + "\n";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
        if std::env::var_os("KILN_BLESS").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap();
        assert!(
            have == want,
            "crates/service/openapi.json is out of date: run KILN_BLESS=1 cargo test -p kiln-service openapi"
        );
        assert!(
            crate::api::OPENAPI == have,
            "the served document is stale: rebuild kiln-service"
        );
    }

    /// Every route is documented with a summary, and every documented path is routed.
    #[test]
    fn every_route_documented() {
        let doc = super::document();
        let paths = doc["paths"].as_object().unwrap();
        let mut documented = 0;
        for (path, ops) in paths {
            for (method, op) in ops.as_object().unwrap() {
                documented += 1;
                assert!(
                    !op["summary"].as_str().unwrap().is_empty(),
                    "{method} {path} has no summary"
                );
            }
        }
        let table = crate::api::route_table();
        let v1_only = table
            .iter()
            .filter(|(m, p)| {
                p.starts_with("/api/v1")
                    && !table
                        .iter()
                        .any(|(m2, p2)| m2 == m && *p2 == p.replacen("/api/v1", "/api/v0", 1))
            })
            .count();
        let v0 = table
            .iter()
            .filter(|(_, p)| p.starts_with("/api/v0"))
            .count();
        assert_eq!(documented, 2 + v0 + v1_only);
    }
}
