//! `systemd.units`: enables, disables and masks systemd units with the tree's own
//! `systemctl` (which works offline on a tree that is not running) in the sandbox with
//! the tree as `/`. Options: `{"enabled": ["nginx"], "disabled": ["apt-daily.timer"],
//! "masked": ["ctrl-alt-del.target"]}`.
//!
//! Names without a unit type get `.service`, as with systemctl. Every unit must have a unit
//! file (or alias) in the tree's unit directories (`/etc/systemd/system`,
//! `/usr/local/lib/systemd/system`, `/usr/lib/systemd/system`); a template instance
//! `getty@tty2.service` counts when `getty@.service` is there. An unknown unit is an error
//! naming it, for masking too (masking a unit that does not exist is almost always a typo).
//! Order: enable, then disable, then mask, each list in its order.

use serde::Deserialize;

use super::StageContext;
use super::treefs::{self, Tree};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default)]
    enabled: Vec<String>,
    #[serde(default)]
    disabled: Vec<String>,
    #[serde(default)]
    masked: Vec<String>,
}

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let opts: Options = treefs::options("systemd.units", ctx)?;
    let tree = Tree::open(ctx.tree)?;
    let mut todo: Vec<(&str, String)> = Vec::new();
    for (verb, list) in [
        ("enable", &opts.enabled),
        ("disable", &opts.disabled),
        ("mask", &opts.masked),
    ] {
        for u in list {
            let unit = treefs::checked_unit(u)?;
            if !treefs::unit_exists(&tree, &unit)? {
                return Err(format!(
                    "cannot {verb} unit {unit:?}: it is not installed in the image (no unit file in {}); \
                     install the package that ships it or add the unit with [[customizations.files]]",
                    treefs::UNIT_DIRS[..3].join(", ")
                ));
            }
            todo.push((verb, unit));
        }
    }
    if todo.is_empty() {
        return Ok(());
    }
    if !tree.is_executable("/usr/bin/systemctl") && !tree.is_executable("/bin/systemctl") {
        return Err("systemd units need systemd in the image (systemctl is missing)".into());
    }
    let sb = ctx.chroot_sandbox();
    for (verb, unit) in &todo {
        treefs::run(
            ctx,
            &sb,
            &format!("systemctl {verb} {unit}"),
            "systemctl",
            &[verb, "--", unit],
        )?;
        let done = if *verb == "mask" {
            "masked"
        } else {
            &format!("{verb}d")
        };
        (ctx.log)(&format!("{done} {unit}"));
    }
    Ok(())
}
