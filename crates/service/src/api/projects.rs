//! `/projects/*` (except sources), `/modules/*` and `/distros/list`: what the sources of a
//! distro offer, from the warm universe. A Debian binary package is a weldr "project" and
//! a "module" (group type `rpm`, which is what clients know).

use super::{ApiResult, Params, Query, Shared, blocking, json, list_param, page};
use crate::error::ApiError;
use crate::packages::{Loaded, debian_arch, host_arch, split_version};
use axum::extract::State;
use axum::http::Uri;
use kiln_compose::Distro;
use serde_json::{Value, json as j};
use std::sync::Arc;

/// `?distro=` and `?arch=` (default: the host's).
fn target(q: &Query) -> Result<(Distro, &'static str), ApiError> {
    let arch = match q.get("arch").filter(|a| !a.is_empty()) {
        Some(a) => debian_arch(a)
            .ok_or_else(|| ApiError::bad("DistroError", format!("Invalid architecture: {a}")))?,
        None => host_arch(),
    };
    let distro = match q.get("distro").filter(|d| !d.is_empty()) {
        Some(d) => Distro::parse(d)
            .map_err(|_| ApiError::bad("DistroError", format!("Invalid distro: {d}")))?,
        None => kiln_compose::pick_distro(None, None)
            .map_err(|e| ApiError::bad("DistroError", e.to_string()))?,
    };
    Ok((distro, arch))
}

async fn load(state: &Shared, q: &Query, error_id: &'static str) -> Result<Arc<Loaded>, ApiError> {
    let (distro, arch) = target(q)?;
    state
        .packages
        .get(distro, arch)
        .await
        .map_err(|e| ApiError::bad(error_id, format!("msg: {e}")))
}

/// A project (package name) with all its builds, newest first.
fn project(loaded: &Loaded, name: &str, builds: &[(u32, u32)]) -> Value {
    let newest = loaded.package(builds[0]);
    let builds: Vec<Value> = builds
        .iter()
        .map(|&at| {
            let p = loaded.package(at);
            let (epoch, version, release) = split_version(p.version());
            j!({
                "arch": p.arch(),
                "build_time": loaded.release_date(at.0),
                "epoch": epoch,
                "release": release,
                "changelog": "CHANGELOG_NEEDED",
                "build_config_ref": "BUILD_CONFIG_REF",
                "build_env_ref": "BUILD_ENV_REF",
                "metadata": {},
                "source": {
                    "license": "",
                    "version": version,
                    "source_ref": "SOURCE_REF",
                    "metadata": {
                        "source_package": p.source_name(),
                        "source_version": p.source_version(),
                    },
                },
                "debian_version": p.version(),
                "source_id": loaded.universe.repos[at.0 as usize].source_id,
            })
        })
        .collect();
    j!({
        "name": name,
        "summary": newest.summary(),
        "description": newest.summary(),
        "homepage": newest.homepage(),
        "upstream_vcs": "UPSTREAM_VCS",
        "section": newest.section(),
        "builds": builds,
    })
}

pub async fn projects_list(State(state): State<Shared>, uri: Uri) -> ApiResult {
    let q = Query::parse(&uri)?;
    let (offset, limit) = q.paging()?;
    let loaded = load(&state, &q, "ProjectsError").await?;
    blocking(move || {
        let total = loaded.names.len();
        let start = offset.min(total);
        let end = start.saturating_add(limit).min(total);
        let projects: Vec<Value> = loaded.names[start..end]
            .iter()
            .map(|(name, builds)| project(&loaded, name, builds))
            .collect();
        Ok(json(&j!({
            "total": total,
            "offset": offset,
            "limit": limit,
            "projects": projects,
        })))
    })
    .await
}

pub async fn no_projects() -> ApiError {
    ApiError::bad("UnknownProject", "No packages specified.")
}

pub async fn no_modules() -> ApiError {
    ApiError::bad("UnknownModule", "No packages specified.")
}

/// The names matching `patterns`, or `unknown_id` "No packages have been found.".
fn matches(
    loaded: &Loaded,
    patterns: &[String],
    unknown_id: &'static str,
) -> Result<Vec<usize>, ApiError> {
    let patterns: Vec<String> = patterns
        .iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    let hits: Vec<usize> = loaded
        .names
        .iter()
        .enumerate()
        .filter(|(_, (name, _))| {
            patterns
                .iter()
                .any(|p| p == name || kiln_depsolve::name_matches(p, name))
        })
        .map(|(i, _)| i)
        .collect();
    if hits.is_empty() {
        return Err(ApiError::bad(unknown_id, "No packages have been found."));
    }
    Ok(hits)
}

pub async fn projects_info(State(state): State<Shared>, params: Params, uri: Uri) -> ApiResult {
    let names = list_param(&params, "names")?;
    let q = Query::parse(&uri)?;
    let loaded = load(&state, &q, "ProjectsError").await?;
    blocking(move || {
        let hits = matches(&loaded, &names, "UnknownProject")?;
        let projects: Vec<Value> = hits
            .iter()
            .map(|&i| project(&loaded, &loaded.names[i].0, &loaded.names[i].1))
            .collect();
        Ok(json(&j!({ "projects": projects })))
    })
    .await
}

pub async fn projects_depsolve(State(state): State<Shared>, params: Params, uri: Uri) -> ApiResult {
    let names = list_param(&params, "names")?;
    let q = Query::parse(&uri)?;
    let loaded = load(&state, &q, "ProjectsError").await?;
    blocking(move || {
        let specs = names
            .iter()
            .map(|n| n.trim())
            .filter(|n| !n.is_empty())
            .map(kiln_depsolve::PackageSpec::new)
            .collect();
        let deps = loaded
            .depsolve(specs)
            .map_err(|e| ApiError::bad("ProjectsError", format!("BadRequest: {e}")))?;
        Ok(json(&j!({ "projects": deps })))
    })
    .await
}

async fn modules_list_of(state: Shared, names: Option<Vec<String>>, uri: Uri) -> ApiResult {
    let q = Query::parse(&uri)?;
    let (offset, limit) = q.paging()?;
    let loaded = load(&state, &q, "ModulesError").await?;
    blocking(move || {
        let all: Vec<usize> = match &names {
            Some(n) => matches(&loaded, n, "UnknownModule")?,
            None => (0..loaded.names.len()).collect(),
        };
        let modules: Vec<Value> = page(&all, offset, limit)
            .into_iter()
            .map(|i| j!({ "name": loaded.names[i].0, "group_type": "rpm" }))
            .collect();
        Ok(json(&j!({
            "total": all.len(),
            "offset": offset,
            "limit": limit,
            "modules": modules,
        })))
    })
    .await
}

pub async fn modules_list_all(State(state): State<Shared>, uri: Uri) -> ApiResult {
    modules_list_of(state, None, uri).await
}

pub async fn modules_list(State(state): State<Shared>, params: Params, uri: Uri) -> ApiResult {
    let names = list_param(&params, "names")?;
    modules_list_of(state, Some(names), uri).await
}

pub async fn modules_info(State(state): State<Shared>, params: Params, uri: Uri) -> ApiResult {
    let names = list_param(&params, "names")?;
    let q = Query::parse(&uri)?;
    let loaded = load(&state, &q, "ModulesError").await?;
    blocking(move || {
        let hits = matches(&loaded, &names, "UnknownModule")?;
        let mut modules = Vec::with_capacity(hits.len());
        for i in hits {
            let (name, builds) = &loaded.names[i];
            let mut m = project(&loaded, name, builds);
            let deps = loaded
                .depsolve(vec![kiln_depsolve::PackageSpec::new(name.clone())])
                .map_err(|e| {
                    ApiError::bad(
                        "ModulesError",
                        format!("Cannot depsolve package {name}: {e}"),
                    )
                })?;
            m["dependencies"] = serde_json::to_value(deps).unwrap_or_default();
            modules.push(m);
        }
        Ok(json(&j!({ "modules": modules })))
    })
    .await
}

pub async fn distros_list(uri: Uri) -> ApiResult {
    let q = Query::parse(&uri)?;
    if let Some(a) = q.get("arch").filter(|a| !a.is_empty())
        && debian_arch(a).is_none()
    {
        return Ok(json(&j!({ "distros": [] })));
    }
    let distros: Vec<&str> = Distro::ALL.iter().map(|d| d.name()).collect();
    Ok(json(&j!({ "distros": distros })))
}
