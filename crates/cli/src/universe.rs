//! Loading the package universe of a distro: host configuration, sources, metadata.

use crate::Context;
use anyhow::{Context as _, Result};
use kiln_repo::{Distro, HostConfig, LoadOptions, MetadataCache, SourceStore, Universe};
use std::path::Path;
use std::time::{Duration, Instant};

/// The apt configuration kiln reads mirrors from.
const APT_ROOT: &str = "/etc/apt";

pub fn host_config(ctx: &Context) -> Result<HostConfig> {
    // An explicit --config must exist (loading reports it); the default one is optional.
    let config = (ctx.config_explicit || ctx.config.exists()).then_some(ctx.config.as_path());
    Ok(HostConfig::load(Path::new(APT_ROOT), config)?)
}

pub fn source_store(ctx: &Context) -> Result<SourceStore> {
    let host = host_config(ctx)?;
    let system = kiln_repo::system_source_configs(&host)?;
    Ok(SourceStore::new(&ctx.state, system))
}

/// The distro to use: the one asked for, else the blueprint's, else the host's when it
/// is a supported Debian release, else `debian-12`.
pub fn pick_distro(asked: Option<&str>, blueprint: Option<&str>) -> Result<Distro> {
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

/// The loaded metadata and how long loading took.
pub struct Loaded {
    pub universe: Universe,
    pub elapsed: Duration,
}

pub fn load(ctx: &Context, distro: Distro, arch: &str) -> Result<Loaded> {
    let store = source_store(ctx)?;
    let sources = store.sources_for(distro)?;
    let cache = MetadataCache::new(ctx.store.join("repo-cache"));
    let spinner = crate::progress::spinner(format!(
        "loading {} metadata from {} source(s)",
        distro.name(),
        sources.len()
    ));
    let opts = LoadOptions {
        offline: ctx.offline,
        progress: Some(crate::progress::metadata_progress(spinner.clone())),
        ..LoadOptions::default()
    };
    let start = Instant::now();
    let universe = cache
        .load_blocking(&sources, arch, &opts)
        .with_context(|| format!("cannot load the package metadata of {}", distro.name()));
    spinner.finish_and_clear();
    let universe = universe?;
    for w in &universe.warnings {
        eprintln!("warning: {w}");
    }
    Ok(Loaded {
        universe,
        elapsed: start.elapsed(),
    })
}
