//! Loading the package universe of a distro for the CLI: kiln-compose does the work; this
//! adds the spinner and prints the warnings.

use crate::Context;
use anyhow::Result;
pub use kiln_compose::pick_distro;
use kiln_compose::{Distro, Env};
use kiln_repo::{SourceStore, Universe};
use std::time::{Duration, Instant};

/// The compose environment of the CLI's options.
pub fn env(ctx: &Context) -> Env {
    // An explicit --config must exist (loading reports it); the default one is optional.
    let config = (ctx.config_explicit || ctx.config.exists()).then(|| ctx.config.clone());
    Env {
        store: ctx.store.clone(),
        state: ctx.state.clone(),
        config,
        offline: ctx.offline,
    }
}

pub fn source_store(ctx: &Context) -> Result<SourceStore> {
    Ok(env(ctx).source_store()?)
}

/// The loaded metadata and how long loading took.
pub struct Loaded {
    pub universe: Universe,
    pub elapsed: Duration,
}

pub fn load(ctx: &Context, distro: Distro, arch: &str) -> Result<Loaded> {
    let env = env(ctx);
    let sources = env.source_store()?.sources_for(distro)?.len();
    let spinner = crate::progress::spinner(format!(
        "loading {} metadata from {sources} source(s)",
        distro.name()
    ));
    let start = Instant::now();
    let universe = kiln_compose::load(
        &env,
        distro,
        arch,
        Some(crate::progress::metadata_progress(spinner.clone())),
    );
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
