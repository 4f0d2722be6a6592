//! The weldr API: routing, request parsing shared by the routes, and replies.
//!
//! Every route exists under `/api/v0` and `/api/v1` (a few are v1 only); `/api/status`
//! and `/api/openapi.json` are unversioned. Unknown paths answer 404 and known paths with
//! the wrong method 405, both as weldr `HTTPError`s.

pub mod blueprints;
pub mod compose;
pub mod projects;
pub mod sources;

use crate::error::{ApiError, JSON};
use crate::history::History;
use crate::packages::Packages;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::Arc;

/// Everything a request handler needs.
#[derive(Debug)]
pub struct AppState {
    pub history: Arc<History>,
    pub packages: Arc<Packages>,
    pub composes: Arc<crate::compose::Composes>,
    /// The largest request body accepted, in bytes.
    pub max_body: usize,
    /// Reported as `build` by `/api/status`.
    pub build: String,
}

pub type Shared = Arc<AppState>;

/// The API version of the route a request came in on (0 or 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ver(pub u8);

/// The OpenAPI document of this API (checked in, kept in sync with the routes by a test).
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// The routes of one API version, recorded as they are added so that tests can compare
/// them with the OpenAPI document.
struct Routes {
    version: u8,
    router: Router<Shared>,
    table: Vec<(&'static str, String)>,
}

macro_rules! method {
    ($fn:ident, $axum:ident, $name:literal) => {
        fn $fn<H, T>(&mut self, path: &'static str, v1_only: bool, handler: H) -> &mut Self
        where
            H: Handler<T, Shared>,
            T: 'static,
        {
            if v1_only && self.version < 1 {
                return self;
            }
            let router = std::mem::take(&mut self.router);
            self.router = router.route(path, axum::routing::$axum(handler));
            self.table.push(($name, path.to_string()));
            self
        }
    };
}

impl Routes {
    method!(get, get, "get");
    method!(post, post, "post");
    method!(delete, delete, "delete");

    /// A second path for a route (`/modules/list/`), not listed in the table.
    fn alias<H, T>(&mut self, path: &'static str, handler: H) -> &mut Self
    where
        H: Handler<T, Shared>,
        T: 'static,
    {
        let router = std::mem::take(&mut self.router);
        self.router = router.route(path, axum::routing::get(handler));
        self
    }
}

fn versioned(version: u8) -> Routes {
    use blueprints as b;
    use compose as c;
    use projects as p;
    use sources as s;
    let mut r = Routes {
        version,
        router: Router::new(),
        table: Vec::new(),
    };
    r.get("/blueprints/list", false, b::list)
        .get("/blueprints/info/{names}", false, b::info)
        .get("/blueprints/changes/{names}", false, b::changes)
        .get("/blueprints/change/{name}/{commit}", true, b::change)
        .get("/blueprints/diff/{name}/{from}/{to}", false, b::diff)
        .get("/blueprints/freeze/{names}", false, b::freeze)
        .get("/blueprints/depsolve/{names}", false, b::depsolve)
        .post("/blueprints/new", false, b::new)
        .post("/blueprints/workspace", false, b::workspace)
        .delete("/blueprints/workspace/{name}", false, b::delete_workspace)
        .delete("/blueprints/delete/{name}", false, b::delete)
        .post("/blueprints/undo/{name}/{commit}", false, b::undo)
        .post("/blueprints/tag/{name}", false, b::tag)
        .get("/projects/list", false, p::projects_list)
        .get("/projects/info", false, p::no_projects)
        .get("/projects/info/{names}", false, p::projects_info)
        .get("/projects/depsolve", false, p::no_projects)
        .get("/projects/depsolve/{names}", false, p::projects_depsolve)
        .get("/projects/source/list", false, s::list)
        .get("/projects/source/info/{ids}", false, s::info)
        .post("/projects/source/new", false, s::new)
        .delete("/projects/source/delete/{id}", false, s::delete)
        .get("/modules/list", false, p::modules_list_all)
        .get("/modules/list/{names}", false, p::modules_list)
        .get("/modules/info", false, p::no_modules)
        .get("/modules/info/{names}", false, p::modules_info)
        .get("/distros/list", true, p::distros_list)
        .post("/compose", false, c::start)
        .get("/compose/types", false, c::types)
        .get("/compose/queue", false, c::queue)
        .get("/compose/finished", false, c::finished)
        .get("/compose/failed", false, c::failed)
        .get("/compose/status/{ids}", false, c::status)
        .get("/compose/info/{id}", false, c::info)
        .delete("/compose/cancel/{id}", false, c::cancel)
        .delete("/compose/delete/{ids}", false, c::delete)
        .get("/compose/log/{id}", false, c::log)
        .get("/compose/logs/{id}", false, c::logs)
        .get("/compose/metadata/{id}", false, c::metadata)
        .get("/compose/results/{id}", false, c::results)
        .get("/compose/image/{id}", false, c::image)
        .get("/compose/events/{id}", true, c::events);
    r.alias("/projects/list/", p::projects_list)
        .alias("/projects/info/", p::no_projects)
        .alias("/projects/depsolve/", p::no_projects)
        .alias("/modules/list/", p::modules_list_all)
        .alias("/modules/info/", p::no_modules);
    r
}

/// The documented routes: `(method, path)` with axum's `{param}` syntax, for both
/// versions (`/api/v0/...`, `/api/v1/...`) and the unversioned ones.
pub fn route_table() -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("get", "/api/status".to_string()),
        ("get", "/api/openapi.json".to_string()),
    ];
    for v in [0u8, 1] {
        for (m, p) in versioned(v).table {
            out.push((m, format!("/api/v{v}{p}")));
        }
    }
    out
}

/// The whole application.
pub fn router(state: Shared) -> Router {
    let mut app = Router::new()
        .route("/api/status", axum::routing::get(status))
        .route("/api/openapi.json", axum::routing::get(openapi));
    for v in [0u8, 1] {
        let routes = versioned(v).router.layer(axum::Extension(Ver(v)));
        app = app.nest(&format!("/api/v{v}"), routes);
    }
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> ApiError {
    ApiError::http(StatusCode::METHOD_NOT_ALLOWED)
}

async fn status(State(state): State<Shared>) -> Response {
    #[derive(Serialize)]
    struct Status<'a> {
        api: &'a str,
        db_supported: bool,
        db_version: &'a str,
        schema_version: &'a str,
        backend: &'a str,
        build: &'a str,
        msgs: Vec<String>,
    }
    json(&Status {
        api: "1",
        db_supported: true,
        db_version: "0",
        schema_version: "0",
        // What clients compare with (weldr-client's status test); kiln is a drop-in.
        backend: "osbuild-composer",
        build: &state.build,
        msgs: Vec::new(),
    })
}

async fn openapi() -> Response {
    let mut resp = OPENAPI.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    resp
}

// ---- replies ---------------------------------------------------------------------------

pub type ApiResult = Result<Response, ApiError>;

/// A JSON reply (HTTP 200).
pub fn json<T: Serialize + ?Sized>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut resp = body.into_response();
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
            resp
        }
        Err(e) => ApiError::internal(format!("cannot serialise the reply: {e}")).into_response(),
    }
}

/// `{"status": true}`.
pub fn ok() -> Response {
    json(&serde_json::json!({ "status": true }))
}

/// A TOML reply.
pub fn toml_reply(text: String) -> Response {
    let mut resp = text.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/x-toml; charset=utf-8"),
    );
    resp
}

/// Runs blocking work (git, solving, files) off the async threads; a panic becomes a 500.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(ApiError::internal(format!("request worker failed: {e}"))),
    }
}

// ---- requests --------------------------------------------------------------------------

pub type Params = Result<RawPathParams, RawPathParamsRejection>;

/// A path parameter, percent-decoded. Text that is not UTF-8 once decoded is an
/// `InvalidChars` error.
pub fn param(params: &Params, key: &str) -> Result<String, ApiError> {
    let params = params.as_ref().map_err(|_| ApiError::invalid_chars())?;
    params
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
        .ok_or_else(ApiError::not_found)
}

/// A comma-separated list of names (the separator may be percent-encoded: cockpit sends
/// `a%2Cb`). Empty items are kept so that validation rejects them.
pub fn list_param(params: &Params, key: &str) -> Result<Vec<String>, ApiError> {
    Ok(param(params, key)?.split(',').map(str::to_string).collect())
}

/// Checks blueprint names (weldr's `^[a-zA-Z0-9._-]+$`): `InvalidChars` otherwise.
pub fn check_names(names: &[String]) -> Result<(), ApiError> {
    if names.iter().all(|n| crate::history::valid_name(n)) {
        Ok(())
    } else {
        Err(ApiError::invalid_chars())
    }
}

/// The decoded query parameters of a request.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `?a=b&c=d` (`+` is a space). A value that is not UTF-8 once decoded, or has
    /// characters outside printable ASCII, is an `InvalidChars` error.
    pub fn parse(uri: &Uri) -> Result<Query, ApiError> {
        let mut out = Vec::new();
        let Some(q) = uri.query() else {
            return Ok(Query(out));
        };
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| -> Result<String, ApiError> {
                let s = s.replace('+', " ");
                let d = percent_encoding::percent_decode_str(&s)
                    .decode_utf8()
                    .map_err(|_| {
                        ApiError::bad("InvalidChars", "Invalid characters in API query")
                    })?;
                if d.chars().any(|c| !(' '..='~').contains(&c)) {
                    return Err(ApiError::bad(
                        "InvalidChars",
                        "Invalid characters in API query",
                    ));
                }
                Ok(d.into_owned())
            };
            out.push((decode(k)?, decode(v)?));
        }
        Ok(Query(out))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `offset` (default 0) and `limit` (default 20).
    pub fn paging(&self) -> Result<(usize, usize), ApiError> {
        let num = |key: &str, default: usize| -> Result<usize, ApiError> {
            match self.get(key) {
                None | Some("") => Ok(default),
                Some(v) => v.parse::<usize>().map_err(|_| {
                    ApiError::bad(
                        "BadLimitOrOffset",
                        format!("BadRequest: {key} must be a non-negative integer, not {v:?}"),
                    )
                }),
            }
        };
        Ok((num("offset", 0)?, num("limit", 20)?))
    }

    /// `format`: `json` (default) or `toml`; anything else is `InvalidChars`.
    pub fn format(&self) -> Result<Format, ApiError> {
        match self.get("format") {
            None | Some("") | Some("json") => Ok(Format::Json),
            Some("toml") => Ok(Format::Toml),
            Some(other) => Err(ApiError::bad(
                "InvalidChars",
                format!("invalid format parameter: {other}"),
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Toml,
}

/// `items[offset..offset + limit]`, clamped.
pub fn page<T: Clone>(items: &[T], offset: usize, limit: usize) -> Vec<T> {
    let start = offset.min(items.len());
    let end = start.saturating_add(limit).min(items.len());
    items[start..end].to_vec()
}

/// The media type of the request (`application/json`, `text/x-toml`), lowercased, without
/// parameters.
pub fn content_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        v.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

/// Reads the request body, at most `state.max_body` bytes (413 beyond).
pub async fn read_body(state: &AppState, body: Body) -> Result<Bytes, ApiError> {
    crate::body::read_limited(body, state.max_body).await
}

/// A body as UTF-8 text.
pub fn body_text(bytes: &Bytes, id: &'static str) -> Result<String, ApiError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::bad(id, "the request body is not UTF-8"))
}
