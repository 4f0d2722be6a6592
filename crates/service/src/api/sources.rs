//! `/projects/source/*`: package sources (kiln-repo's `SourceStore`: the read-only system
//! sources of the host's Debian mirror, and user sources in `<state>/sources/`).
//!
//! Both API versions key sources by id; v0 entries leave the `id` field out (a source
//! pushed through v0 with only a `name` gets that name as its id).

use super::{
    ApiResult, Format, Params, Query, Shared, Ver, blocking, body_text, content_type, json,
    list_param, ok, param, read_body, toml_reply,
};
use crate::error::{ApiError, ErrorEntry};
use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use kiln_repo::{RepoError, SourceConfig, SourceStore};
use serde_json::{Map, Value, json as j};

/// The source store; without a usable host mirror only the user sources.
fn store(state: &Shared) -> SourceStore {
    let env = state.packages.env();
    match env.source_store() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("no system sources: {e}");
            SourceStore::new(&env.state, Vec::new())
        }
    }
}

fn valid_id(id: &str) -> bool {
    kiln_repo::validate_id(id).is_ok()
}

fn internal(e: RepoError) -> ApiError {
    ApiError::internal(e)
}

pub async fn list(State(state): State<Shared>) -> ApiResult {
    blocking(move || {
        let ids = store(&state).list().map_err(internal)?;
        Ok(json(&j!({ "sources": ids })))
    })
    .await
}

fn source_value(s: &SourceConfig, v: Ver) -> Value {
    let mut value = serde_json::to_value(s).unwrap_or_default();
    if v.0 == 0
        && let Value::Object(m) = &mut value
    {
        m.remove("id");
    }
    value
}

pub async fn info(
    State(state): State<Shared>,
    Extension(v): Extension<Ver>,
    params: Params,
    uri: Uri,
) -> ApiResult {
    let ids = list_param(&params, "ids")?;
    let format = Query::parse(&uri)?.format()?;
    if !ids.iter().all(|i| i == "*" || valid_id(i)) {
        return Err(ApiError::invalid_chars());
    }
    blocking(move || {
        let store = store(&state);
        let mut found: Vec<SourceConfig> = Vec::new();
        let mut errors = Vec::new();
        if ids.iter().any(|i| i == "*") {
            found = store.all().map_err(internal)?;
        } else {
            for id in &ids {
                match store.info(id) {
                    Ok(s) => found.push(s),
                    Err(RepoError::UnknownSource { .. } | RepoError::InvalidSourceId { .. }) => {
                        errors.push(ErrorEntry::new(
                            "UnknownSource",
                            format!("{id} is not a valid source"),
                        ))
                    }
                    Err(e) => return Err(internal(e)),
                }
            }
        }
        match format {
            Format::Json => {
                let map: Map<String, Value> = found
                    .iter()
                    .map(|s| (s.id.clone(), source_value(s, v)))
                    .collect();
                Ok(json(&j!({ "sources": map, "errors": errors })))
            }
            Format::Toml => {
                if !errors.is_empty() {
                    return Err(ApiError {
                        status: StatusCode::BAD_REQUEST,
                        errors,
                    });
                }
                let mut table = toml::Table::new();
                for s in &found {
                    let value = toml::Value::try_from(s)
                        .map_err(|e| ApiError::internal(format!("cannot write source: {e}")))?;
                    table.insert(s.id.clone(), value);
                }
                let text = toml::to_string(&table)
                    .map_err(|e| ApiError::internal(format!("cannot write sources: {e}")))?;
                Ok(toml_reply(text))
            }
        }
    })
    .await
}

fn parse_error(msg: impl std::fmt::Display) -> ApiError {
    ApiError::bad("ProjectsError", format!("Problem parsing POST body: {msg}"))
}

/// The source object of a request body: bare fields or a single `[ID]` table.
fn source_object(text: &str, ct: &str) -> Result<Map<String, Value>, ApiError> {
    let value: Value = match ct {
        "application/json" => serde_json::from_str(text).map_err(parse_error)?,
        "text/x-toml" | "application/toml" | "text/toml" => {
            let t: toml::Table = toml::from_str(text).map_err(parse_error)?;
            serde_json::to_value(t).map_err(parse_error)?
        }
        _ => return Err(parse_error("source must be in json or toml format")),
    };
    let Value::Object(map) = value else {
        return Err(parse_error("expected a table of source fields"));
    };
    if map.contains_key("url") || map.contains_key("type") || map.contains_key("name") {
        return Ok(map);
    }
    let mut entries: Vec<(String, Value)> = map.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    match entries.into_iter().next() {
        Some((id, Value::Object(mut inner))) => {
            inner.entry("id").or_insert(Value::String(id));
            Ok(inner)
        }
        _ => Err(parse_error("expected a table of source fields")),
    }
}

pub async fn new(
    State(state): State<Shared>,
    Extension(v): Extension<Ver>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let ct = content_type(&headers)
        .ok_or_else(|| ApiError::bad("HTTPError", "malformed Content-Type header"))?;
    let bytes = read_body(&state, body).await?;
    let text = body_text(&bytes, "ProjectsError")?;
    if text.trim().is_empty() {
        return Err(ApiError::bad("ProjectsError", "Missing source"));
    }
    let mut obj = source_object(&text, &ct)?;
    let has = |obj: &Map<String, Value>, k: &str| {
        obj.get(k)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    if v.0 >= 1 && !has(&obj, "id") {
        return Err(parse_error("'id' field is missing from request"));
    }
    for key in ["name", "type", "url"] {
        if !has(&obj, key) {
            return Err(parse_error(format!(
                "'{key}' field is missing from request"
            )));
        }
    }
    if !has(&obj, "id")
        && let Some(name) = obj.get("name").cloned()
    {
        obj.insert("id".into(), name);
    }
    let id = obj
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(Value::Array(distros)) = obj.get("distros") {
        let invalid: Vec<String> = distros
            .iter()
            .map(|d| {
                d.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| d.to_string())
            })
            .filter(|d| kiln_repo::Distro::parse(d).is_err())
            .collect();
        if !invalid.is_empty() {
            return Err(ApiError::bad(
                "ProjectsError",
                format!("Invalid distributions: {}", invalid.join(",")),
            ));
        }
    }
    let text = serde_json::to_string(&Value::Object(obj)).map_err(parse_error)?;
    let stored = blocking(move || {
        let store = store(&state);
        if store.list().map_err(internal)?.contains(&id) && store.info(&id).is_ok_and(|s| s.system)
        {
            return Err(system_source(&id, "changed"));
        }
        let cfg = SourceConfig::parse(&text).map_err(parse_error)?;
        let r = store.add(cfg).map_err(|e| match e {
            RepoError::SystemSource { id } => system_source(&id, "changed"),
            RepoError::InvalidSourceId { .. } => ApiError::invalid_chars(),
            e => ApiError::bad("ProjectsError", e.to_string()),
        })?;
        state.packages.invalidate();
        Ok(r)
    })
    .await?;
    tracing::info!(source = %stored.id, "source saved");
    Ok(ok())
}

fn system_source(id: &str, what: &str) -> ApiError {
    ApiError::bad(
        "SystemSource",
        format!("{id} is a system source, it cannot be {what}."),
    )
}

pub async fn delete(State(state): State<Shared>, params: Params) -> ApiResult {
    let id = param(&params, "id")?;
    if !valid_id(&id) {
        return Err(ApiError::invalid_chars());
    }
    blocking(move || {
        store(&state).delete(&id).map_err(|e| match e {
            RepoError::SystemSource { id } => system_source(&id, "deleted"),
            RepoError::UnknownSource { id } => {
                ApiError::bad("UnknownSource", format!("{id} is not a valid source."))
            }
            e => ApiError::internal(e),
        })?;
        state.packages.invalidate();
        tracing::info!(source = %id, "source deleted");
        Ok(ok())
    })
    .await
}
