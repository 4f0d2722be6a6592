//! `/blueprints/*`: list, info, changes, change, diff, freeze, depsolve, new, workspace,
//! delete, undo, tag.

use super::{
    ApiResult, Format, Params, Query, Shared, blocking, body_text, check_names, content_type, json,
    list_param, ok, page, param, read_body, toml_reply,
};
use crate::error::{ApiError, ErrorEntry};
use crate::history::{Change, HistoryError};
use crate::packages::{Dependency, debian_arch, host_arch};
use axum::body::Body;
use axum::extract::{State, rejection::RawPathParamsRejection};
use axum::http::{HeaderMap, Uri};
use kiln_blueprint::{Blueprint, Package};
use kiln_compose::Distro;
use serde::Serialize;
use serde_json::{Value, json as j};

/// The errors of the history store as weldr reports them.
fn history_err(e: HistoryError) -> ApiError {
    match e {
        HistoryError::InvalidName => ApiError::invalid_chars(),
        HistoryError::UnknownBlueprint(n) => {
            ApiError::bad("BlueprintsError", format!("Unknown blueprint: {n}"))
        }
        HistoryError::NoHistory => ApiError::bad("BlueprintsError", "Unknown blueprint"),
        HistoryError::UnknownCommit => ApiError::bad("UnknownCommit", "Unknown commit"),
        e @ (HistoryError::Corrupt { .. } | HistoryError::Serialize { .. }) => {
            ApiError::bad("BlueprintsError", e.to_string())
        }
        e @ (HistoryError::Git { .. } | HistoryError::Io { .. }) => ApiError::internal(e),
    }
}

/// A blueprint as the weldr API shows it: `packages`, `modules` and `groups` always
/// present (clients index them without checking).
pub fn bp_json(bp: &Blueprint) -> Value {
    let mut v = serde_json::to_value(bp).unwrap_or_else(|_| j!({ "name": bp.name }));
    if let Value::Object(map) = &mut v {
        for key in ["packages", "modules", "groups"] {
            map.entry(key).or_insert_with(|| Value::Array(Vec::new()));
        }
        map.entry("version")
            .or_insert_with(|| Value::String(String::new()));
        map.entry("description")
            .or_insert_with(|| Value::String(String::new()));
    }
    v
}

fn to_toml(bp: &Blueprint) -> Result<String, ApiError> {
    bp.to_toml()
        .map_err(|e| ApiError::internal(format!("cannot write blueprint {}: {e}", bp.name)))
}

pub async fn list(State(state): State<Shared>, uri: Uri) -> ApiResult {
    let q = Query::parse(&uri)?;
    let (offset, limit) = q.paging()?;
    let history = state.history.clone();
    let names = blocking(move || history.list().map_err(history_err)).await?;
    Ok(json(&j!({
        "blueprints": page(&names, offset, limit),
        "total": names.len(),
        "offset": offset,
        "limit": limit,
    })))
}

pub async fn info(
    State(state): State<Shared>,
    params: Result<axum::extract::RawPathParams, RawPathParamsRejection>,
    uri: Uri,
) -> ApiResult {
    let mut names = list_param(&params, "names")?;
    check_names(&names)?;
    let q = Query::parse(&uri)?;
    let format = q.format()?;
    names.sort();
    names.dedup();
    let history = state.history.clone();
    let found = blocking(move || {
        names
            .into_iter()
            .map(|n| history.get(&n).map(|r| (n, r)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(history_err)
    })
    .await?;
    let mut blueprints = Vec::new();
    let mut changes = Vec::new();
    let mut errors = Vec::new();
    for (name, r) in found {
        match r {
            Some((bp, changed)) => {
                changes.push(j!({ "name": bp.name, "changed": changed }));
                blueprints.push(bp);
            }
            None => errors.push(ErrorEntry::new("UnknownBlueprint", format!("{name}: "))),
        }
    }
    match format {
        Format::Json => Ok(json(&j!({
            "blueprints": blueprints.iter().map(bp_json).collect::<Vec<_>>(),
            "changes": changes,
            "errors": errors,
        }))),
        Format::Toml => {
            if blueprints.len() > 1 {
                return Err(ApiError::bad(
                    "HTTPError",
                    "toml format only supported when requesting one blueprint",
                ));
            }
            if !errors.is_empty() {
                return Err(ApiError {
                    status: axum::http::StatusCode::BAD_REQUEST,
                    errors,
                });
            }
            match blueprints.first() {
                Some(bp) => Ok(toml_reply(to_toml(bp)?)),
                None => Err(ApiError::invalid_chars()),
            }
        }
    }
}

pub async fn changes(State(state): State<Shared>, params: Params, uri: Uri) -> ApiResult {
    let names = list_param(&params, "names")?;
    check_names(&names)?;
    let q = Query::parse(&uri)?;
    let (offset, limit) = q.paging()?;
    let history = state.history.clone();
    let found = blocking(move || {
        names
            .into_iter()
            .map(|n| history.changes(&n).map(|r| (n, r)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(history_err)
    })
    .await?;
    #[derive(Serialize)]
    struct Entry {
        name: String,
        changes: Vec<Change>,
        total: usize,
    }
    let mut blueprints = Vec::new();
    let mut errors = Vec::new();
    for (name, r) in found {
        match r {
            Some(all) => blueprints.push(Entry {
                changes: page(&all, offset, limit),
                total: all.len(),
                name,
            }),
            None => errors.push(ErrorEntry::new("UnknownBlueprint", name)),
        }
    }
    Ok(json(&j!({
        "blueprints": blueprints,
        "errors": errors,
        "offset": offset,
        "limit": limit,
    })))
}

/// The name and commit parameters of `change` and `undo`, checked.
fn name_commit(params: &Params) -> Result<(String, String), ApiError> {
    let name = param(params, "name")?;
    let commit = param(params, "commit")?;
    check_names(&[name.clone(), commit.clone()])?;
    Ok((name, commit))
}

/// `undo` and `change` report a blueprint without history as an unknown commit.
fn commit_err(e: HistoryError) -> ApiError {
    match e {
        HistoryError::NoHistory => ApiError::bad("UnknownCommit", "Unknown blueprint"),
        e => history_err(e),
    }
}

pub async fn change(State(state): State<Shared>, params: Params, uri: Uri) -> ApiResult {
    let (name, commit) = name_commit(&params)?;
    let format = Query::parse(&uri)?.format()?;
    let history = state.history.clone();
    let bp = blocking(move || history.at_commit(&name, &commit).map_err(commit_err)).await?;
    match format {
        Format::Json => Ok(json(&bp_json(&bp))),
        Format::Toml => Ok(toml_reply(to_toml(&bp)?)),
    }
}

pub async fn diff(State(state): State<Shared>, params: Params) -> ApiResult {
    let name = param(&params, "name")?;
    let from = param(&params, "from")?;
    let to = param(&params, "to")?;
    check_names(&[name.clone(), from.clone(), to.clone()])?;
    let history = state.history.clone();
    let (old, new) = blocking(move || {
        let committed = history.committed(&name).map_err(history_err)?;
        let workspace = history.workspace(&name).map_err(history_err)?;
        if committed.is_none() && workspace.is_none() {
            return Err(ApiError::bad(
                "UnknownBlueprint",
                format!("Unknown blueprint name: {name}"),
            ));
        }
        let pick = |which: &str| -> Result<Blueprint, ApiError> {
            match which {
                "NEWEST" => committed
                    .clone()
                    .ok_or_else(|| ApiError::bad("UnknownCommit", format!("{name} has no commit"))),
                "WORKSPACE" => workspace
                    .clone()
                    .or_else(|| committed.clone())
                    .ok_or_else(|| ApiError::bad("UnknownCommit", "no workspace copy")),
                commit => history.at_commit(&name, commit).map_err(|e| match e {
                    HistoryError::NoHistory | HistoryError::UnknownCommit => ApiError::bad(
                        "UnknownCommit",
                        format!("Unknown commit {commit} of blueprint {name}"),
                    ),
                    e => history_err(e),
                }),
            }
        };
        Ok((pick(&from)?, pick(&to)?))
    })
    .await?;
    Ok(json(
        &j!({ "diff": blueprint_diff(&bp_json(&old), &bp_json(&new)) }),
    ))
}

/// The differences between two blueprints, as lorax reports them: `Name`, `Description`,
/// `Version`, then `Module`, `Package` and `Group` entries by name, then
/// `Customizations.<key>` (lists of tables by their key field).
pub fn blueprint_diff(old: &Value, new: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for (key, title) in [
        ("name", "Name"),
        ("description", "Description"),
        ("version", "Version"),
    ] {
        let (o, n) = (field(old, key), field(new, key));
        if o != n {
            out.push(j!({ "old": { title: o }, "new": { title: n } }));
        }
    }
    for (key, title) in [
        ("modules", "Module"),
        ("packages", "Package"),
        ("groups", "Group"),
    ] {
        out.extend(diff_lists(
            title,
            "name",
            &list_of(old, key),
            &list_of(new, key),
        ));
    }
    let empty = serde_json::Map::new();
    let oc = old
        .get("customizations")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let nc = new
        .get("customizations")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut keys: Vec<&String> = oc.keys().chain(nc.keys()).collect();
    keys.sort_by_key(|k| k.to_lowercase());
    keys.dedup();
    for k in keys {
        let title = format!("Customizations.{k}");
        match (oc.get(k), nc.get(k)) {
            (None, Some(n)) => out.push(j!({ "old": null, "new": { &title: n } })),
            (Some(o), None) => out.push(j!({ "old": { &title: o }, "new": null })),
            (Some(o), Some(n)) if o != n => {
                let key_field = match (o, n) {
                    (Value::Array(a), Value::Array(b)) => a
                        .iter()
                        .chain(b)
                        .next()
                        .and_then(Value::as_object)
                        .and_then(|first| {
                            ["name", "user", "mountpoint", "path", "id"]
                                .into_iter()
                                .find(|f| first.contains_key(*f))
                        }),
                    _ => None,
                };
                match key_field {
                    Some(f) => out.extend(diff_lists(
                        &title,
                        f,
                        o.as_array().map_or(&[][..], Vec::as_slice),
                        n.as_array().map_or(&[][..], Vec::as_slice),
                    )),
                    None => out.push(j!({ "old": { &title: o }, "new": { &title: n } })),
                }
            }
            _ => {}
        }
    }
    out
}

fn field(v: &Value, key: &str) -> Value {
    v.get(key).cloned().unwrap_or(Value::String(String::new()))
}

fn list_of(v: &Value, key: &str) -> Vec<Value> {
    v.get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn diff_lists(title: &str, key: &str, old: &[Value], new: &[Value]) -> Vec<Value> {
    let id = |v: &Value| {
        v.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let find = |items: &[Value], k: &str| items.iter().find(|v| id(v) == k).cloned();
    let sorted = |items: &mut Vec<String>| {
        items.sort_by_key(|n| n.to_lowercase());
        items.dedup();
    };
    let old_ids: Vec<String> = old.iter().map(id).collect();
    let new_ids: Vec<String> = new.iter().map(id).collect();
    let mut added: Vec<String> = new_ids
        .iter()
        .filter(|n| !old_ids.contains(n))
        .cloned()
        .collect();
    let mut removed: Vec<String> = old_ids
        .iter()
        .filter(|n| !new_ids.contains(n))
        .cloned()
        .collect();
    let mut same: Vec<String> = new_ids
        .iter()
        .filter(|n| old_ids.contains(n))
        .cloned()
        .collect();
    sorted(&mut added);
    sorted(&mut removed);
    sorted(&mut same);
    let mut out = Vec::new();
    for n in added {
        out.push(j!({ "old": null, "new": { title: find(new, &n) } }));
    }
    for n in removed {
        out.push(j!({ "old": { title: find(old, &n) }, "new": null }));
    }
    for n in same {
        let (o, nw) = (find(old, &n), find(new, &n));
        if o != nw {
            out.push(j!({ "old": { title: o }, "new": { title: nw } }));
        }
    }
    out
}

/// The distro and Debian architecture a blueprint is solved for: its own, else the
/// host's.
pub(crate) fn target(bp: &Blueprint) -> Result<(Distro, &'static str), String> {
    let distro = match bp.distro.as_deref().filter(|d| !d.is_empty()) {
        Some(d) => Distro::parse(d).map_err(|_| format!("'{d}' is not a valid distribution"))?,
        None => kiln_compose::pick_distro(None, None).map_err(|e| e.to_string())?,
    };
    let arch = match bp.architecture.as_deref().filter(|a| !a.is_empty()) {
        Some(a) => debian_arch(a).ok_or_else(|| format!("'{a}' is not a valid architecture"))?,
        None => host_arch(),
    };
    Ok((distro, arch))
}

/// The closure of a blueprint's packages (nothing added), on the warm universe.
async fn solve(state: &Shared, bp: &Blueprint) -> Result<Vec<Dependency>, String> {
    let (distro, arch) = target(bp)?;
    let specs = kiln_compose::blueprint_specs(bp);
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let loaded = state
        .packages
        .get(distro, arch)
        .await
        .map_err(|e| e.to_string())?;
    match tokio::task::spawn_blocking(move || loaded.depsolve(specs)).await {
        Ok(r) => r,
        Err(e) => Err(format!("internal error: the solver failed: {e}")),
    }
}

/// The blueprints of `names` (workspace copies first), or an `UnknownBlueprint` error per
/// missing name.
async fn lookup(
    state: &Shared,
    names: Vec<String>,
) -> Result<Vec<(String, Option<Blueprint>)>, ApiError> {
    let history = state.history.clone();
    blocking(move || {
        names
            .into_iter()
            .map(|n| history.get(&n).map(|r| (n, r.map(|(bp, _)| bp))))
            .collect::<Result<Vec<_>, _>>()
            .map_err(history_err)
    })
    .await
}

pub async fn depsolve(State(state): State<Shared>, params: Params) -> ApiResult {
    let names = list_param(&params, "names")?;
    check_names(&names)?;
    let mut blueprints = Vec::new();
    let mut errors = Vec::new();
    for (name, bp) in lookup(&state, names).await? {
        let Some(bp) = bp else {
            errors.push(ErrorEntry::new(
                "UnknownBlueprint",
                format!("{name}: blueprint not found"),
            ));
            continue;
        };
        let dependencies = match solve(&state, &bp).await {
            Ok(d) => d,
            Err(e) => {
                errors.push(ErrorEntry::new("BlueprintsError", format!("{name}: {e}")));
                Vec::new()
            }
        };
        blueprints.push(j!({ "blueprint": bp_json(&bp), "dependencies": dependencies }));
    }
    Ok(json(&j!({ "blueprints": blueprints, "errors": errors })))
}

/// `bp` with every package and module pinned to the version the solver picked (globs in
/// names expanded), as weldr's `[epoch:]version-release.arch`: the Debian version and the
/// architecture, which a depsolve accepts back as a version.
pub(crate) fn frozen(mut bp: Blueprint, deps: &[Dependency]) -> Result<Blueprint, String> {
    let expand = |list: &[Package]| -> Result<Vec<Package>, String> {
        let mut out: Vec<Package> = Vec::new();
        for p in list {
            let hits: Vec<&Dependency> = if p.name.contains(['*', '?', '[']) {
                deps.iter()
                    .filter(|d| kiln_depsolve::name_matches(&p.name, &d.name))
                    .collect()
            } else {
                let d = deps
                    .iter()
                    .find(|d| d.name == p.name)
                    .ok_or_else(|| format!("{} missing from depsolve results", p.name))?;
                vec![d]
            };
            for d in hits {
                if !out.iter().any(|o| o.name == d.name) {
                    out.push(Package {
                        name: d.name.clone(),
                        version: Some(format!("{}.{}", d.debian_version, d.arch)),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    };
    bp.packages = expand(&bp.packages)?;
    bp.modules = expand(&bp.modules)?;
    Ok(bp)
}

pub async fn freeze(State(state): State<Shared>, params: Params, uri: Uri) -> ApiResult {
    let names = list_param(&params, "names")?;
    check_names(&names)?;
    let format = Query::parse(&uri)?.format()?;
    let mut blueprints = Vec::new();
    let mut errors = Vec::new();
    for (name, bp) in lookup(&state, names).await? {
        let Some(bp) = bp else {
            errors.push(ErrorEntry::new(
                "UnknownBlueprint",
                format!("{name}: blueprint not found"),
            ));
            continue;
        };
        match solve(&state, &bp).await.and_then(|d| frozen(bp, &d)) {
            Ok(f) => blueprints.push(f),
            Err(e) => errors.push(ErrorEntry::new("BlueprintsError", format!("{name}: {e}"))),
        }
    }
    match format {
        Format::Json => Ok(json(&j!({
            "blueprints": blueprints.iter().map(|b| j!({ "blueprint": bp_json(b) })).collect::<Vec<_>>(),
            "errors": errors,
        }))),
        Format::Toml => match blueprints.as_slice() {
            [] if errors.is_empty() => Ok(toml_reply(String::new())),
            [] => Err(ApiError {
                status: axum::http::StatusCode::BAD_REQUEST,
                errors,
            }),
            [one] => Ok(toml_reply(to_toml(one)?)),
            _ => Err(ApiError::bad(
                "HTTPError",
                "toml format only supported when requesting one blueprint",
            )),
        },
    }
}

/// Parses a pushed blueprint (JSON or TOML by Content-Type) and checks its name.
async fn parse_body(
    state: &Shared,
    headers: &HeaderMap,
    body: Body,
) -> Result<Blueprint, ApiError> {
    let ct = content_type(headers)
        .ok_or_else(|| ApiError::bad("BlueprintsError", "missing Content-Type header"))?;
    let bytes = read_body(state, body).await?;
    let text = body_text(&bytes, "BlueprintsError")?;
    if text.trim().is_empty() {
        return Err(ApiError::bad("BlueprintsError", "Missing blueprint"));
    }
    let parsed = match ct.as_str() {
        "application/json" => Blueprint::from_json(&text),
        "text/x-toml" | "application/toml" | "text/toml" => Blueprint::from_toml(&text),
        _ => {
            return Err(ApiError::bad(
                "BlueprintsError",
                "blueprint must be in json or toml format",
            ));
        }
    };
    let bp = parsed.map_err(|e| {
        ApiError::bad(
            "BlueprintsError",
            format!(
                "400 Bad Request: The browser (or proxy) sent a request that this server could not understand: {e}"
            ),
        )
    })?;
    check_names(std::slice::from_ref(&bp.name))?;
    Ok(bp)
}

fn hash_passwords(bp: &mut Blueprint) -> Result<(), ApiError> {
    bp.hash_passwords()
        .map_err(|e| ApiError::bad("BlueprintsError", e.to_string()))
}

pub async fn new(State(state): State<Shared>, headers: HeaderMap, body: Body) -> ApiResult {
    let mut bp = parse_body(&state, &headers, body).await?;
    if let Some(d) = bp.distro.as_deref().filter(|d| !d.is_empty())
        && Distro::parse(d).is_err()
    {
        let arch = bp.architecture.as_deref().unwrap_or(host_arch());
        return Err(ApiError::bad(
            "BlueprintsError",
            format!("'{d}' is not a valid distribution (architecture '{arch}')"),
        ));
    }
    bp.validate()
        .map_err(|e| ApiError::bad("BlueprintsError", e.to_string()))?;
    hash_passwords(&mut bp)?;
    let history = state.history.clone();
    blocking(move || history.push(bp).map_err(history_err)).await?;
    Ok(ok())
}

pub async fn workspace(State(state): State<Shared>, headers: HeaderMap, body: Body) -> ApiResult {
    let mut bp = parse_body(&state, &headers, body).await?;
    hash_passwords(&mut bp)?;
    let history = state.history.clone();
    blocking(move || history.save_workspace(&bp).map_err(history_err)).await?;
    Ok(ok())
}

pub async fn delete_workspace(State(state): State<Shared>, params: Params) -> ApiResult {
    let name = param(&params, "name")?;
    check_names(std::slice::from_ref(&name))?;
    let history = state.history.clone();
    blocking(move || history.delete_workspace(&name).map_err(history_err)).await?;
    Ok(ok())
}

pub async fn delete(State(state): State<Shared>, params: Params) -> ApiResult {
    let name = param(&params, "name")?;
    check_names(std::slice::from_ref(&name))?;
    let history = state.history.clone();
    blocking(move || history.delete(&name).map_err(history_err)).await?;
    Ok(ok())
}

pub async fn undo(State(state): State<Shared>, params: Params) -> ApiResult {
    let (name, commit) = name_commit(&params)?;
    let history = state.history.clone();
    blocking(move || history.undo(&name, &commit).map_err(commit_err)).await?;
    Ok(ok())
}

pub async fn tag(State(state): State<Shared>, params: Params) -> ApiResult {
    let name = param(&params, "name")?;
    check_names(std::slice::from_ref(&name))?;
    let history = state.history.clone();
    blocking(move || history.tag(&name).map_err(history_err)).await?;
    Ok(ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_like_lorax() {
        let old = j!({"name": "bp", "description": "d", "version": "0.0.1",
            "packages": [{"name": "httpd", "version": "2.4.*"}, {"name": "tmux"}],
            "modules": [], "groups": []});
        let new = j!({"name": "bp", "description": "d", "version": "0.3.0",
            "packages": [{"name": "systemd", "version": "123"}, {"name": "tmux"}],
            "modules": [], "groups": [],
            "customizations": {"hostname": "h"}});
        let d = blueprint_diff(&old, &new);
        assert_eq!(
            d,
            vec![
                j!({"old": {"Version": "0.0.1"}, "new": {"Version": "0.3.0"}}),
                j!({"old": null, "new": {"Package": {"name": "systemd", "version": "123"}}}),
                j!({"old": {"Package": {"name": "httpd", "version": "2.4.*"}}, "new": null}),
                j!({"old": null, "new": {"Customizations.hostname": "h"}}),
            ]
        );
        assert!(blueprint_diff(&old, &old).is_empty());
    }
}
