//! `timezone`: sets the system time zone. Options: `{"zone": "Europe/Paris"}`.
//!
//! The zone must be a TZif file under the tree's `/usr/share/zoneinfo` (package
//! `tzdata`). `/etc/localtime` becomes the symlink `/usr/share/zoneinfo/ZONE` (as tzdata's
//! own postinst makes it) and `/etc/timezone` holds the name, both replaced, never
//! written through.

use serde::Deserialize;

use super::StageContext;
use super::treefs::{self, Meta, Tree};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    zone: String,
}

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let opts: Options = treefs::options("timezone", ctx)?;
    let zone = opts.zone.as_str();
    let valid = !zone.is_empty()
        && zone.len() <= 255
        && !zone.starts_with('/')
        && zone
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b))
        && zone
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if !valid {
        return Err(format!(
            "invalid time zone name {zone:?}: use an Area/City name such as \"Europe/Berlin\", or \"UTC\""
        ));
    }
    let tree = Tree::open(ctx.tree)?;
    if tree.resolve_type("/usr/share/zoneinfo")? != Some(rustix::fs::FileType::Directory) {
        return Err(
            "timezone: /usr/share/zoneinfo is not in the image; the time zone needs the tzdata package"
                .into(),
        );
    }
    let file = format!("/usr/share/zoneinfo/{zone}");
    let data = match tree.read(&file) {
        Ok(Some(d)) => d,
        Ok(None) | Err(_) => {
            return Err(format!(
                "unknown time zone {zone:?}: {file} is not in the image's tzdata (names look like \"Europe/Berlin\", \"America/New_York\", \"UTC\")"
            ));
        }
    };
    if !data.starts_with(b"TZif") {
        return Err(format!(
            "unknown time zone {zone:?}: {file} is not a time zone file"
        ));
    }
    tree.entry("/etc/localtime", true)?.symlink(&file)?;
    tree.write(
        "/etc/timezone",
        format!("{zone}\n").as_bytes(),
        Meta::root(0o644),
    )?;
    (ctx.log)(&format!("/etc/localtime -> {file}, /etc/timezone: {zone}"));
    Ok(())
}
