//! `deb.install`: installs the `.deb` files of input `packages` (a dependency-closed set)
//! into the (empty) tree and configures them in the sandbox. Options: `{"arch": "amd64"}`.

use super::StageContext;
use crate::debinstall::{InstallOptions, install_with_log};

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
    // Lines go to the stage log as they come, so a failing maintainer script's output is
    // in the log and in the error.
    let report =
        install_with_log(ctx.tree, &debs, &opts, &mut *ctx.log).map_err(|e| e.to_string())?;
    (ctx.log)(&format!(
        "installed {} packages ({} entries): unpack {:.1}s, configure {:.1}s",
        report.packages.len(),
        report.entries,
        report.unpack_time.as_secs_f64(),
        report.configure_time.as_secs_f64()
    ));
    Ok(())
}
