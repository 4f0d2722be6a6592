//! kiln-compose: from a blueprint to a pinned manifest, shared by the CLI and the service.
//!
//! [`Env`] says where kiln keeps its caches, state and configuration; [`load`] loads the
//! package universe of a distro (host apt configuration, system and custom sources,
//! verified metadata); [`resolve`] depsolves a blueprint's packages together with the
//! image type's own and the distro's base set (Essential and Priority: required, as
//! debootstrap's minbase); [`manifest`] puts it together with `kiln-distro`.

use kiln_blueprint::Blueprint;
use kiln_depsolve::{PackageSpec, Request};
use kiln_distro::ResolvedPackage;
use kiln_manifest::Manifest;
pub use kiln_repo::{Distro, ProgressFn, Universe};
use kiln_repo::{HostConfig, LoadOptions, MetadataCache, SourceStore};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// The apt configuration kiln reads mirrors from.
const APT_ROOT: &str = "/etc/apt";

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error(transparent)]
    Repo(Box<kiln_repo::RepoError>),
    #[error("cannot load the package metadata of {distro}: {source}")]
    Load {
        distro: String,
        #[source]
        source: Box<kiln_repo::RepoError>,
    },
    #[error(transparent)]
    Depsolve(Box<kiln_depsolve::SolveError>),
    #[error(transparent)]
    Distro(#[from] kiln_distro::DistroError),
    #[error("package {name} {version}: {message}")]
    Package {
        name: String,
        version: String,
        message: String,
    },
    #[error("SOURCE_DATE_EPOCH={0:?} is not a number of seconds")]
    Epoch(String),
    #[error("no Release file has a Date; set SOURCE_DATE_EPOCH")]
    NoEpoch,
}

impl From<kiln_repo::RepoError> for ComposeError {
    fn from(e: kiln_repo::RepoError) -> Self {
        ComposeError::Repo(Box::new(e))
    }
}

impl From<kiln_depsolve::SolveError> for ComposeError {
    fn from(e: kiln_depsolve::SolveError) -> Self {
        ComposeError::Depsolve(Box::new(e))
    }
}

/// Where kiln keeps things, and whether it may use the network.
#[derive(Debug, Clone)]
pub struct Env {
    /// Caches: metadata in `repo-cache/`, the content-addressed store in `objects/`.
    pub store: PathBuf,
    /// Custom sources (and the service's state).
    pub state: PathBuf,
    /// kiln's configuration file, when there is one to read (it must then exist).
    pub config: Option<PathBuf>,
    /// Use cached metadata only.
    pub offline: bool,
}

impl Env {
    /// The content-addressed store of downloads, stage trees and artifacts.
    pub fn objects(&self) -> PathBuf {
        self.store.join("objects")
    }

    pub fn host_config(&self) -> Result<HostConfig, ComposeError> {
        Ok(HostConfig::load(
            Path::new(APT_ROOT),
            self.config.as_deref(),
        )?)
    }

    /// The system sources of every distro plus the custom ones in the state directory.
    pub fn source_store(&self) -> Result<SourceStore, ComposeError> {
        let host = self.host_config()?;
        let system = kiln_repo::system_source_configs(&host)?;
        Ok(SourceStore::new(&self.state, system))
    }
}

/// The distro to use: the one asked for, else the blueprint's, else the host's when it
/// is a supported Debian release, else `debian-12`.
pub fn pick_distro(asked: Option<&str>, blueprint: Option<&str>) -> Result<Distro, ComposeError> {
    let name = asked
        .or(blueprint.filter(|d| !d.is_empty()))
        .map(str::to_string)
        .or_else(host_distro)
        .unwrap_or_else(|| "debian-12".to_string());
    Ok(Distro::parse(&name)?)
}

fn host_distro() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .map(|v| v.trim_matches('"').to_string())
    };
    let name = format!("{}-{}", field("ID")?, field("VERSION_ID")?);
    Distro::parse(&name).is_ok().then_some(name)
}

/// Loads (fetching and verifying what changed) the metadata of every source of `distro`.
pub fn load(
    env: &Env,
    distro: Distro,
    arch: &str,
    progress: Option<ProgressFn>,
) -> Result<Universe, ComposeError> {
    let store = env.source_store()?;
    let sources = store.sources_for(distro)?;
    let cache = MetadataCache::new(env.store.join("repo-cache"));
    let opts = LoadOptions {
        offline: env.offline,
        progress,
        ..LoadOptions::default()
    };
    cache
        .load_blocking(&sources, arch, &opts)
        .map_err(|source| ComposeError::Load {
            distro: distro.name().to_owned(),
            source: Box::new(source),
        })
}

/// A request for `name` or `name` at versions matching `glob`.
pub fn spec(name: &str, glob: Option<&str>) -> PackageSpec {
    match glob {
        Some(g) => PackageSpec::with_version(name, g),
        None => PackageSpec::new(name),
    }
}

/// The complete set to install for `specs` (the blueprint's and the image type's
/// packages) plus the base system (Essential and Priority: required packages of `arch`).
pub fn resolve(
    universe: &Universe,
    arch: &str,
    mut specs: Vec<PackageSpec>,
) -> Result<Vec<ResolvedPackage>, ComposeError> {
    let repos = &universe.repos;
    let indexes: Vec<&kiln_deb::Index> = repos.iter().map(|r| &r.index).collect();
    let asked: BTreeSet<String> = specs.iter().map(|s| s.name.clone()).collect();
    let mut base = BTreeSet::new();
    for index in &indexes {
        for p in index.iter() {
            if (p.essential() || p.priority() == kiln_deb::index::Priority::Required)
                && (p.arch() == arch || p.arch() == "all")
                && !asked.contains(p.name())
            {
                base.insert(p.name().to_owned());
            }
        }
    }
    specs.extend(base.into_iter().map(PackageSpec::new));
    let request = Request {
        packages: specs,
        recommends: false,
    };
    let solution = kiln_depsolve::solve(&indexes, arch, &request)?;
    let mut packages = Vec::with_capacity(solution.packages.len());
    for sel in &solution.packages {
        let Some(pkg) = sel.package(&indexes) else {
            unreachable!("the solver returned a package that is not in the indexes");
        };
        let repo = &repos[sel.repo];
        let Some(sha256) = pkg.sha256_hex() else {
            return Err(ComposeError::Package {
                name: pkg.name().to_owned(),
                version: pkg.version().to_owned(),
                message: "no SHA256 in the archive's index; kiln cannot verify it".into(),
            });
        };
        packages.push(ResolvedPackage {
            name: pkg.name().to_owned(),
            version: pkg.version().to_owned(),
            sha256,
            url: format!("{}{}", repo.base_url, pkg.filename()),
            size: pkg.size(),
        });
    }
    Ok(packages)
}

/// `SOURCE_DATE_EPOCH` for a new manifest: `from_env` (the `SOURCE_DATE_EPOCH` variable)
/// if set, else the newest `Date` of the Release files the packages come from, so that the
/// same archive snapshot gives the same manifest and no file is dated after the archive.
pub fn source_epoch(universe: &Universe, from_env: Option<&str>) -> Result<u64, ComposeError> {
    if let Some(v) = from_env {
        return v
            .trim()
            .parse::<u64>()
            .map_err(|_| ComposeError::Epoch(v.to_owned()));
    }
    universe
        .repos
        .iter()
        .filter_map(|r| r.release_info.date)
        .filter_map(|d| d.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .max()
        .ok_or(ComposeError::NoEpoch)
}

/// The blueprint's package requests.
pub fn blueprint_specs(bp: &Blueprint) -> Vec<PackageSpec> {
    bp.package_specs()
        .into_iter()
        .map(|(name, glob)| spec(name, glob))
        .collect()
}

/// What to build: the manifest for `image_types` of `bp` (one depsolve per OS variant and
/// one for the build root; one OS tree shared by every type of a variant), from an
/// already loaded universe.
pub fn manifest(
    universe: &Universe,
    bp: &Blueprint,
    distro: Distro,
    arch: &str,
    image_types: &[String],
    epoch_env: Option<&str>,
) -> Result<Manifest, ComposeError> {
    manifest_with(
        universe,
        bp,
        distro,
        arch,
        image_types,
        epoch_env,
        &kiln_distro::ImageOptions::default(),
    )
}

/// [`manifest`] with the options of the request (the disk size).
pub fn manifest_with(
    universe: &Universe,
    bp: &Blueprint,
    distro: Distro,
    arch: &str,
    image_types: &[String],
    epoch_env: Option<&str>,
    options: &kiln_distro::ImageOptions,
) -> Result<Manifest, ComposeError> {
    let plan = kiln_distro::plan(bp, image_types)?;
    let mut resolved = kiln_distro::Resolved::default();
    for (variant, extra) in &plan.os {
        let mut specs = blueprint_specs(bp);
        let asked: BTreeSet<String> = specs.iter().map(|s| s.name.clone()).collect();
        specs.extend(
            extra
                .iter()
                .filter(|n| !asked.contains(*n))
                .map(|n| PackageSpec::new(n.clone())),
        );
        resolved
            .os
            .insert(*variant, resolve(universe, arch, specs)?);
    }
    if let Some(build) = &plan.build {
        let specs = build.iter().map(|n| PackageSpec::new(n.clone())).collect();
        resolved.build = resolve(universe, arch, specs)?;
    }
    let epoch = source_epoch(universe, epoch_env)?;
    Ok(kiln_distro::manifest_with(
        bp,
        distro.name(),
        arch,
        image_types,
        &resolved,
        epoch,
        options,
    )?)
}
