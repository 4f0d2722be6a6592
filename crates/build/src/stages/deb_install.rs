//! `deb.install`: installs the `.deb` files of input `packages` (a dependency-closed set)
//! into the (empty) tree and configures them in the sandbox. Options: `{"arch": "amd64"}`.

use super::StageContext;
use crate::debinstall::{InstallOptions, install};

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let debs = ctx.input_files("packages")?.to_vec();
    let arch = ctx
        .options
        .get("arch")
        .and_then(|v| v.as_str())
        .unwrap_or("amd64");
    let opts = InstallOptions {
        arch: arch.to_owned(),
        source_date_epoch: ctx.source_epoch,
        bwrap: ctx.bwrap.clone(),
        ..InstallOptions::default()
    };
    let report = install(ctx.tree, &debs, &opts).map_err(|e| e.to_string())?;
    for line in &report.log {
        (ctx.log)(line);
    }
    (ctx.log)(&format!(
        "installed {} packages ({} entries): unpack {:.1}s, configure {:.1}s",
        report.packages.len(),
        report.entries,
        report.unpack_time.as_secs_f64(),
        report.configure_time.as_secs_f64()
    ));
    Ok(())
}
