//! `/compose/*`: start, types, queue, finished, failed, status, info, cancel, delete, log,
//! logs, metadata, results, image, and the kiln extension `events` (server-sent events of
//! a build's progress). Shapes, error ids and messages are osbuild-composer's (the
//! conformance list, K01–K30); kiln adds `compose_types` (several image types from one
//! depsolve) to the start request and to every entry, and `failure` (the failed stage and
//! why) to failed entries.

use super::{
    ApiResult, Params, Query, Shared, Ver, blocking, content_type, json, param, read_body,
};
use crate::api::blueprints::{bp_json, frozen, target};
use crate::compose::{self, Composes, Failure, Row, Status, parse_id};
use crate::error::{ApiError, ErrorEntry};
use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json as j};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e)
}

fn not_valid_build(id: &str) -> ApiError {
    ApiError::bad("UnknownUUID", format!("{id} is not a valid build uuid"))
}

fn doesnt_exist(id: &str) -> ApiError {
    ApiError::bad("UnknownUUID", format!("Compose {id} doesn't exist"))
}

/// The compose of the `{id}` path parameter: `UnknownUUID` when it is not a UUID or
/// unknown (`unknown` gives the message for that case).
async fn lookup(
    state: &Shared,
    params: &Params,
    unknown: fn(&str) -> ApiError,
) -> Result<Row, ApiError> {
    let raw = param(params, "id")?;
    let Some(id) = parse_id(&raw) else {
        return Err(not_valid_build(&raw));
    };
    let composes = state.composes.clone();
    let row = blocking(move || composes.get(&id).map_err(internal)).await?;
    row.ok_or_else(|| unknown(&raw))
}

/// Settings keys that are secrets: never shown.
const SECRETS: &[&str] = &[
    "secretAccessKey",
    "sessionToken",
    "storageAccessKey",
    "password",
    "private_key",
    "credentials",
    "client_secret",
];

const PROVIDERS: &[&str] = &[
    "aws",
    "aws.s3",
    "generic.s3",
    "azure",
    "gcp",
    "vmware",
    "oci",
    "container",
];

/// The v1 `uploads` list of a compose. kiln has no uploader yet: an upload follows its
/// compose while it waits, runs or fails, and stays WAITING after the image is built.
fn uploads(row: &Row) -> Value {
    let Some(up) = row.upload.as_object() else {
        return j!([]);
    };
    let mut settings = up.get("settings").cloned().unwrap_or_else(|| j!({}));
    if let Some(s) = settings.as_object_mut() {
        s.retain(|k, _| !SECRETS.contains(&k.as_str()));
    }
    let status = match row.status {
        Status::Finished => "WAITING",
        s => s.as_str(),
    };
    j!([{
        "uuid": up.get("uuid").cloned().unwrap_or(Value::Null),
        "status": status,
        "provider_name": up.get("provider").cloned().unwrap_or(Value::Null),
        "image_name": up.get("image_name").cloned().unwrap_or(Value::Null),
        "creation_time": row.created,
        "settings": settings,
    }])
}

/// A queue/finished/failed/status entry.
fn entry(row: &Row, v: Ver) -> Value {
    let mut e = j!({
        "id": row.id,
        "blueprint": row.blueprint_name,
        "version": row.blueprint_version,
        "compose_type": row.types.first().cloned().unwrap_or_default(),
        "compose_types": row.types,
        "image_size": row.image_size,
        "queue_status": row.status.as_str(),
        "job_created": row.created,
    });
    if let Some(t) = row.started {
        e["job_started"] = j!(t);
    }
    if let Some(t) = row.finished {
        e["job_finished"] = j!(t);
    }
    if let Some(f) = &row.failure {
        e["failure"] = j!(f);
    }
    if v.0 >= 1 {
        e["uploads"] = uploads(row);
    }
    e
}

async fn all(state: &Shared) -> Result<Vec<Row>, ApiError> {
    let composes = state.composes.clone();
    blocking(move || composes.all().map_err(internal)).await
}

// ---- start -----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartRequest {
    blueprint_name: String,
    #[serde(default)]
    compose_type: String,
    /// kiln: more image types built from the same depsolve and OS tree.
    #[serde(default)]
    compose_types: Vec<String>,
    #[serde(default)]
    branch: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    ostree: Option<Value>,
    #[serde(default)]
    upload: Option<Value>,
}

fn check_upload(up: &Value) -> Result<(), ApiError> {
    let bad = |m: String| ApiError::bad("UploadError", m);
    let obj = up
        .as_object()
        .ok_or_else(|| bad("upload must be an object".into()))?;
    let provider = obj
        .get("provider")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("upload: 'provider' is missing".into()))?;
    if !PROVIDERS.contains(&provider) {
        return Err(bad(format!(
            "unexpected provider name: {provider} (known: {})",
            PROVIDERS.join(", ")
        )));
    }
    if obj.get("image_name").is_some_and(|n| !n.is_string()) {
        return Err(bad("upload: 'image_name' must be a string".into()));
    }
    if obj.get("settings").is_some_and(|s| !s.is_object()) {
        return Err(bad("upload: 'settings' must be an object".into()));
    }
    Ok(())
}

pub async fn start(
    State(state): State<Shared>,
    Extension(v): Extension<Ver>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> ApiResult {
    let q = Query::parse(&uri)?;
    if content_type(&headers).as_deref() != Some("application/json") {
        return Err(ApiError::bad(
            "MissingPost",
            "blueprint must be json: send the compose request with Content-Type: application/json",
        ));
    }
    let bytes = read_body(&state, body).await?;
    if bytes.is_empty() {
        return Err(ApiError::bad("MissingPost", "Missing POST body"));
    }
    let req: StartRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad("ComposeError", format!("Problem parsing POST body: {e}")))?;
    if !crate::history::valid_name(&req.blueprint_name) {
        return Err(ApiError::invalid_chars());
    }
    if req
        .branch
        .as_deref()
        .is_some_and(|b| !b.is_empty() && !crate::history::valid_name(b))
    {
        return Err(ApiError::invalid_chars());
    }
    let test = match q.get("test") {
        None | Some("") | Some("0") => 0,
        Some("1") => 1,
        Some("2") => 2,
        Some(other) => {
            return Err(ApiError::bad(
                "ComposeError",
                format!("test must be 1 (fail at once) or 2 (finish at once), not {other:?}"),
            ));
        }
    };
    let mut types: Vec<String> = Vec::new();
    for t in std::iter::once(&req.compose_type).chain(&req.compose_types) {
        if !t.is_empty() && !types.contains(t) {
            types.push(t.clone());
        }
    }
    if types.is_empty() {
        return Err(ApiError::bad(
            "ComposeError",
            "Failed to get compose type \"\": invalid image type: (give compose_type)",
        ));
    }
    let mut filenames: Vec<(&str, &str)> = Vec::new();
    for t in &types {
        let Some(it) = kiln_distro::image_type(t) else {
            return Err(ApiError::bad(
                "ComposeError",
                format!("Failed to get compose type \"{t}\": invalid image type: {t}"),
            ));
        };
        if let Some((other, _)) = filenames.iter().find(|(_, f)| *f == it.filename) {
            return Err(ApiError::bad(
                "ComposeError",
                format!(
                    "image types {other} and {t} both make {}: start them as separate composes",
                    it.filename
                ),
            ));
        }
        filenames.push((it.name, it.filename));
    }
    if let Some(o) = &req.ostree
        && ["ref", "parent", "url"]
            .iter()
            .any(|k| o[k].as_str().is_some_and(|s| !s.is_empty()))
    {
        return Err(ApiError::bad(
            "OSTreeOptionsError",
            "ostree options given, but kiln makes no ostree image types",
        ));
    }
    // Uploads are a v1 feature; v0 ignores them, as osbuild-composer does.
    let upload = match (&req.upload, v.0) {
        (Some(up), 1..) => {
            check_upload(up)?;
            let mut up = up.clone();
            up["uuid"] = j!(compose::new_id().map_err(internal)?);
            up
        }
        _ => Value::Null,
    };

    let name = req.blueprint_name.clone();
    let history = state.history.clone();
    let bp = blocking(move || history.committed(&name).map_err(internal)).await?;
    let Some(bp) = bp else {
        return Err(ApiError::bad(
            "UnknownBlueprint",
            format!("Unknown blueprint name: {}", req.blueprint_name),
        ));
    };
    let (distro, arch) = target(&bp).map_err(|e| ApiError::bad("ComposeError", e))?;
    kiln_distro::plan(&bp, &types)
        .map_err(|e| ApiError::bad("ManifestCreationFailed", e.to_string()))?;
    let default_size = kiln_distro::image_type(&types[0])
        .map(|t| t.default_size)
        .unwrap_or_default();
    let id = compose::new_id().map_err(internal)?;
    let mut row = Row {
        id: id.clone(),
        blueprint_name: bp.name.clone(),
        blueprint_version: bp.version.clone().unwrap_or_default(),
        blueprint: bp_json(&bp),
        frozen: Value::Null,
        deps: j!([]),
        types,
        distro: distro.name().to_string(),
        arch: arch.to_string(),
        status: Status::Waiting,
        image_size: req.size.unwrap_or(0).max(default_size),
        created: compose::db::now(),
        started: None,
        finished: None,
        failure: None,
        upload,
        attempts: 0,
        test: test != 0,
        pid: None,
    };
    let composes = state.composes.clone();
    let dir = composes.dir(&id);
    if test != 0 {
        // As osbuild-composer's test mode: no build, the end state at once.
        row.started = Some(row.created);
        row.finished = Some(row.created);
        if test == 1 {
            row.status = Status::Failed;
            row.failure = Some(Failure::message(
                "test compose: failed on request (?test=1)",
            ));
        } else {
            row.status = Status::Finished;
        }
        let line = format!(
            "test compose {id} ({}): {}\n",
            row.types.join(", "),
            row.status.as_str()
        );
        blocking(move || {
            let logs = dir.join("logs");
            std::fs::create_dir_all(&logs).map_err(internal)?;
            std::fs::write(logs.join("build.log"), line).map_err(internal)?;
            composes.add(&row).map_err(internal)
        })
        .await?;
        return Ok(started(&id));
    }

    let loaded = state
        .packages
        .get(distro, arch)
        .await
        .map_err(|e| ApiError::bad("ComposeError", format!("{e}")))?;
    // composer-cli sends 0 for "the type's default".
    let options = kiln_distro::ImageOptions {
        size: req.size.filter(|s| *s > 0),
    };
    let work = move || -> Result<(), ApiError> {
        let bp_model = bp;
        let epoch = std::env::var("SOURCE_DATE_EPOCH").ok();
        let manifest = kiln_compose::manifest_with(
            &loaded.universe,
            &bp_model,
            distro,
            arch,
            &row.types,
            epoch.as_deref(),
            &options,
        )
        .map_err(|e| match e {
            kiln_compose::ComposeError::Depsolve(_)
            | kiln_compose::ComposeError::Package { .. } => {
                ApiError::bad("DepsolveError", format!("{}: {e}", bp_model.name))
            }
            e => ApiError::bad("ManifestCreationFailed", e.to_string()),
        })?;
        let deps = loaded
            .depsolve(kiln_compose::blueprint_specs(&bp_model))
            .map_err(|e| ApiError::bad("DepsolveError", format!("{}: {e}", bp_model.name)))?;
        let pinned = frozen(bp_model, &deps).map_err(|e| ApiError::bad("DepsolveError", e))?;
        row.frozen = bp_json(&pinned);
        row.deps = serde_json::to_value(&deps).map_err(internal)?;
        std::fs::create_dir_all(&dir).map_err(internal)?;
        write_synced(
            &dir.join("manifest.json"),
            manifest.to_pretty_json().as_bytes(),
        )
        .map_err(internal)?;
        composes.add(&row).map_err(internal)
    };
    blocking(work).await?;
    Ok(started(&id))
}

fn started(id: &str) -> Response {
    json(&j!({ "status": true, "build_id": id, "warnings": [] }))
}

fn write_synced(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

// ---- listings --------------------------------------------------------------------------

pub async fn types(uri: Uri) -> ApiResult {
    let q = Query::parse(&uri)?;
    if let Some(d) = q.get("distro").filter(|d| !d.is_empty()) {
        kiln_compose::Distro::parse(d)
            .map_err(|_| ApiError::bad("DistroError", format!("Invalid distro: {d}")))?;
    }
    if let Some(a) = q.get("arch").filter(|a| !a.is_empty())
        && crate::packages::debian_arch(a).is_none()
    {
        return Err(ApiError::bad(
            "DistroError",
            format!("Invalid architecture: {a}"),
        ));
    }
    let types: Vec<Value> = kiln_distro::IMAGE_TYPES
        .iter()
        .map(|t| j!({ "name": t.name, "enabled": true }))
        .collect();
    Ok(json(&j!({ "types": types })))
}

pub async fn queue(State(state): State<Shared>, Extension(v): Extension<Ver>) -> ApiResult {
    let rows = all(&state).await?;
    let pick = |s: Status| -> Vec<Value> {
        rows.iter()
            .filter(|r| r.status == s)
            .map(|r| entry(r, v))
            .collect()
    };
    Ok(json(
        &j!({ "new": pick(Status::Waiting), "run": pick(Status::Running) }),
    ))
}

pub async fn finished(State(state): State<Shared>, Extension(v): Extension<Ver>) -> ApiResult {
    let rows = all(&state).await?;
    let list: Vec<Value> = rows
        .iter()
        .filter(|r| r.status == Status::Finished)
        .map(|r| entry(r, v))
        .collect();
    Ok(json(&j!({ "finished": list })))
}

pub async fn failed(State(state): State<Shared>, Extension(v): Extension<Ver>) -> ApiResult {
    let rows = all(&state).await?;
    let list: Vec<Value> = rows
        .iter()
        .filter(|r| r.status == Status::Failed)
        .map(|r| entry(r, v))
        .collect();
    Ok(json(&j!({ "failed": list })))
}

pub async fn status(
    State(state): State<Shared>,
    Extension(v): Extension<Ver>,
    params: Params,
    uri: Uri,
) -> ApiResult {
    let ids = param(&params, "ids")?;
    let q = Query::parse(&uri)?;
    let rows = all(&state).await?;
    let wanted: Option<Vec<String>> = if ids == "*" {
        None
    } else {
        // Ids that are not UUIDs match nothing (lorax answers an empty list).
        Some(ids.split(',').filter_map(parse_id).collect())
    };
    let blueprint = q.get("blueprint").filter(|s| !s.is_empty());
    let status = q.get("status").filter(|s| !s.is_empty());
    let kind = q.get("type").filter(|s| !s.is_empty());
    let mut list: Vec<&Row> = rows
        .iter()
        .filter(|r| wanted.as_ref().is_none_or(|w| w.contains(&r.id)))
        .filter(|r| blueprint.is_none_or(|b| r.blueprint_name == b))
        .filter(|r| status.is_none_or(|s| r.status.as_str().eq_ignore_ascii_case(s)))
        .filter(|r| kind.is_none_or(|t| r.types.iter().any(|x| x == t)))
        .collect();
    list.sort_by(|a, b| a.id.cmp(&b.id));
    let list: Vec<Value> = list.into_iter().map(|r| entry(r, v)).collect();
    Ok(json(&j!({ "uuids": list })))
}

pub async fn info(
    State(state): State<Shared>,
    Extension(v): Extension<Ver>,
    params: Params,
) -> ApiResult {
    let row = lookup(&state, &params, not_valid_build).await?;
    let mut info = entry(&row, v);
    info["config"] = j!("");
    info["commit"] = j!("");
    info["blueprint"] = row.blueprint.clone();
    info["deps"] = j!({ "packages": row.deps });
    info["images"] = j!(row
        .types
        .iter()
        .filter_map(|t| kiln_distro::image_type(t))
        .map(|t| j!({"type": t.name, "filename": t.filename, "mime": t.mime}))
        .collect::<Vec<_>>());
    Ok(json(&info))
}

// ---- cancel, delete --------------------------------------------------------------------

pub async fn cancel(State(state): State<Shared>, params: Params) -> ApiResult {
    let row = lookup(&state, &params, doesnt_exist).await?;
    let composes = state.composes.clone();
    let id = row.id.clone();
    let done = blocking(move || composes.cancel(&id).map_err(internal)).await?;
    if !done {
        return Err(ApiError::bad(
            "BuildInWrongState",
            format!("Build {} is not in WAITING or RUNNING.", row.id),
        ));
    }
    Ok(json(&j!({ "uuid": row.id, "status": true })))
}

pub async fn delete(State(state): State<Shared>, params: Params) -> ApiResult {
    let ids = param(&params, "ids")?;
    let composes = state.composes.clone();
    let (uuids, errors) = blocking(move || {
        let mut uuids = Vec::new();
        let mut errors = Vec::new();
        for raw in ids.split(',') {
            let Some(id) = parse_id(raw) else {
                errors.push(ErrorEntry::new(
                    "UnknownUUID",
                    format!("{raw} is not a valid uuid"),
                ));
                continue;
            };
            match composes.get(&id).map_err(internal)? {
                None => errors.push(ErrorEntry::new(
                    "UnknownUUID",
                    format!("compose {raw} doesn't exist"),
                )),
                Some(_) if composes.delete(&id).map_err(internal)? => {
                    uuids.push(j!({ "uuid": id, "status": true }));
                }
                Some(_) => errors.push(ErrorEntry::new(
                    "BuildInWrongState",
                    format!("Compose {id} is not in FINISHED or FAILED."),
                )),
            }
        }
        Ok((uuids, errors))
    })
    .await?;
    Ok(json(&j!({ "uuids": uuids, "errors": errors })))
}

// ---- logs and files --------------------------------------------------------------------

/// The last `kib` KiB of a file, from the start of a line.
fn tail(path: &Path, kib: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let want = kib.saturating_mul(1024);
    let start = len.saturating_sub(want);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.take(want).read_to_end(&mut buf)?;
    if start > 0
        && let Some(nl) = buf.iter().position(|b| *b == b'\n')
    {
        buf.drain(..=nl);
    }
    Ok(buf)
}

pub async fn log(State(state): State<Shared>, params: Params, uri: Uri) -> ApiResult {
    let row = lookup(&state, &params, doesnt_exist).await?;
    let q = Query::parse(&uri)?;
    let kib = match q.get("size").filter(|s| !s.is_empty()) {
        None => 1024,
        Some(s) => s.parse::<u64>().map_err(|_| {
            ApiError::bad(
                "ComposeError",
                format!("size must be a number of kilobytes, not {s:?}"),
            )
        })?,
    };
    if row.status == Status::Waiting {
        // composer-cli prints this body and exits 0: HTTP 200, as osbuild-composer.
        let mut resp = ApiError::bad(
            "BuildInWrongState",
            format!("Build {} has not started yet. No logs to view.", row.id),
        )
        .into_response();
        *resp.status_mut() = StatusCode::OK;
        return Ok(resp);
    }
    let path = state.composes.dir(&row.id).join("logs/build.log");
    let text = blocking(move || match tail(&path, kib) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(internal(e)),
    })
    .await?;
    let body = if text.is_empty() {
        b"The compose result is empty.\n".to_vec()
    } else {
        text
    };
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(resp)
}

/// A tar member: a file on disk or bytes.
enum Member {
    File(PathBuf),
    Data(Vec<u8>),
}

/// Streams a tar of `members` without holding it in memory (images are GBs).
fn tar_reply(filename: String, members: Vec<(String, Member)>) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::task::spawn_blocking(move || {
        let writer = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let mut b = tar::Builder::new(writer);
        b.mode(tar::HeaderMode::Complete);
        let result = (|| -> std::io::Result<()> {
            for (name, m) in members {
                match m {
                    Member::File(p) => {
                        let mut f = std::fs::File::open(&p)?;
                        b.append_file(&name, &mut f)?;
                    }
                    Member::Data(d) => {
                        let mut h = tar::Header::new_gnu();
                        h.set_size(d.len() as u64);
                        h.set_mode(0o644);
                        h.set_mtime(compose::db::now() as u64);
                        h.set_cksum();
                        b.append_data(&mut h, &name, d.as_slice())?;
                    }
                }
            }
            b.into_inner()?.flush_out()
        })();
        if let Err(e) = result {
            tracing::warn!("writing a compose tarball failed: {e}");
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename={filename}")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

const CHUNK: usize = 1 << 16;

struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }

    fn flush_out(mut self) -> std::io::Result<()> {
        self.send()
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// The files under `<dir>/logs/`, as `logs/<name>` members.
fn log_members(dir: &Path) -> Vec<(String, Member)> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir.join("logs")) {
        let mut names: Vec<_> = rd
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            out.push((
                format!("logs/{}", e.file_name().to_string_lossy()),
                Member::File(e.path()),
            ));
        }
    }
    out
}

/// The metadata members: the manifest as `<id>.json` and the frozen blueprint (the
/// committed one for test composes, which are not depsolved).
fn metadata_members(row: &Row, dir: &Path) -> Vec<(String, Member)> {
    let mut out = Vec::new();
    let manifest = dir.join("manifest.json");
    if manifest.exists() {
        out.push((format!("{}.json", row.id), Member::File(manifest)));
    }
    let (bp, name) = if row.frozen.is_null() {
        (&row.blueprint, "blueprint")
    } else {
        (&row.frozen, "frozen")
    };
    let toml = serde_json::from_value::<kiln_blueprint::Blueprint>(bp.clone())
        .ok()
        .and_then(|b| b.to_toml().ok())
        .unwrap_or_default();
    out.push((
        format!("{}-{name}.toml", row.id),
        Member::Data(toml.into_bytes()),
    ));
    out
}

fn ended(row: &Row) -> bool {
    matches!(row.status, Status::Finished | Status::Failed)
}

fn wrong_state(row: &Row) -> ApiError {
    ApiError::bad(
        "BuildInWrongState",
        format!(
            "Build {} is in wrong state: {}",
            row.id,
            row.status.as_str()
        ),
    )
}

pub async fn logs(State(state): State<Shared>, params: Params) -> ApiResult {
    let row = lookup(&state, &params, doesnt_exist).await?;
    if !ended(&row) {
        return Err(ApiError::bad(
            "BuildInWrongState",
            format!("Build {} not in FINISHED or FAILED state.", row.id),
        ));
    }
    let dir = state.composes.dir(&row.id);
    Ok(tar_reply(format!("{}-logs.tar", row.id), log_members(&dir)))
}

pub async fn metadata(State(state): State<Shared>, params: Params) -> ApiResult {
    let row = lookup(&state, &params, doesnt_exist).await?;
    if !ended(&row) {
        return Err(wrong_state(&row));
    }
    let dir = state.composes.dir(&row.id);
    let members = metadata_members(&row, &dir);
    Ok(tar_reply(format!("{}-metadata.tar", row.id), members))
}

pub async fn results(State(state): State<Shared>, params: Params) -> ApiResult {
    let row = lookup(&state, &params, doesnt_exist).await?;
    if !ended(&row) {
        return Err(wrong_state(&row));
    }
    let dir = state.composes.dir(&row.id);
    let mut members = metadata_members(&row, &dir);
    members.extend(log_members(&dir));
    for t in &row.types {
        if let Some(it) = kiln_distro::image_type(t) {
            let p = dir.join(it.filename);
            if p.is_file() {
                members.push((format!("{}-{}", row.id, it.filename), Member::File(p)));
            }
        }
    }
    Ok(tar_reply(format!("{}.tar", row.id), members))
}

pub async fn image(State(state): State<Shared>, params: Params, uri: Uri) -> ApiResult {
    let row = lookup(&state, &params, doesnt_exist).await?;
    let q = Query::parse(&uri)?;
    if row.status != Status::Finished {
        return Err(wrong_state(&row));
    }
    // kiln: `?type=` picks one of the compose's image types (default: compose_type).
    let kind = match q.get("type").filter(|t| !t.is_empty()) {
        Some(t) if row.types.iter().any(|x| x == t) => t.to_string(),
        Some(t) => {
            return Err(ApiError::bad(
                "ComposeError",
                format!(
                    "compose {} has no image of type {t} (it has: {})",
                    row.id,
                    row.types.join(", ")
                ),
            ));
        }
        None => row.types.first().cloned().unwrap_or_default(),
    };
    let Some(it) = kiln_distro::image_type(&kind) else {
        return Err(internal(format!(
            "unknown image type {kind} in compose {}",
            row.id
        )));
    };
    let path = state.composes.dir(&row.id).join(it.filename);
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            return Err(ApiError::internal(format!(
                "Error accessing image file for compose {}: {e}",
                row.id
            )));
        }
    };
    let len = file.metadata().await.map_err(internal)?.len();
    let stream = futures_util::stream::unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; CHUNK];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<Bytes, std::io::Error>(Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(it.mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) =
        HeaderValue::from_str(&format!("attachment; filename={}-{}", row.id, it.filename))
    {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

// ---- live progress ---------------------------------------------------------------------

fn sse(event: &str, data: &str) -> Bytes {
    let mut s = format!("event: {event}\n");
    for line in data.lines() {
        s.push_str("data: ");
        s.push_str(line);
        s.push('\n');
    }
    s.push('\n');
    Bytes::from(s)
}

fn status_event(row: &Row) -> Bytes {
    sse(
        "status",
        &j!({ "id": row.id, "queue_status": row.status.as_str(), "failure": row.failure })
            .to_string(),
    )
}

/// kiln: the build's progress events as server-sent events (`event: progress`, the JSON
/// of a kiln-build event, from the first), then `event: status` when the compose ends.
pub async fn events(State(state): State<Shared>, params: Params) -> ApiResult {
    let row = lookup(&state, &params, doesnt_exist).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let composes = state.composes.clone();
    tokio::spawn(relay(composes, row, tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

async fn relay(
    composes: Arc<Composes>,
    mut row: Row,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let id = row.id.clone();
    let progress = composes.dir(&id).join("logs/progress.jsonl");
    if tx.send(Ok(status_event(&row))).await.is_err() {
        return;
    }
    let mut relayed = false;
    loop {
        match row.status {
            Status::Waiting | Status::Running => {
                if let Some(running) = composes.running(&id) {
                    let (lines, mut rx) = running.subscribe(&progress);
                    drop(running);
                    for l in lines {
                        if tx.send(Ok(sse("progress", &l))).await.is_err() {
                            return;
                        }
                    }
                    relayed = true;
                    loop {
                        match rx.recv().await {
                            Ok((_, line)) => {
                                if tx.send(Ok(sse("progress", &line))).await.is_err() {
                                    return;
                                }
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                                let note = Bytes::from(format!(": {n} event(s) dropped\n\n"));
                                if tx.send(Ok(note)).await.is_err() {
                                    return;
                                }
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                        }
                    }
                } else {
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
            Status::Finished | Status::Failed => {
                if !relayed {
                    let text = tokio::fs::read_to_string(&progress)
                        .await
                        .unwrap_or_default();
                    for l in text.lines() {
                        if tx.send(Ok(sse("progress", l))).await.is_err() {
                            return;
                        }
                    }
                }
                let _ = tx.send(Ok(status_event(&row))).await;
                return;
            }
        }
        let c = composes.clone();
        let i = id.clone();
        row = match tokio::task::spawn_blocking(move || c.get(&i)).await {
            Ok(Ok(Some(r))) => r,
            // Deleted, or the table cannot be read: the stream ends.
            _ => return,
        };
    }
}
