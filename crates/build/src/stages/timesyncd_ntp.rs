//! `timesyncd.ntp`: NTP servers for systemd-timesyncd. Options:
//! `{"servers": ["0.pool.ntp.org", "ntp.example.com"]}`.
//!
//! Writes the drop-in `/etc/systemd/timesyncd.conf.d/50-kiln.conf` (`[Time]`, `NTP=` the
//! servers in order). The tree must have systemd-timesyncd (its unit file), which the
//! package's postinst already enabled.

use serde::Deserialize;

use super::StageContext;
use super::treefs::{self, Meta, Tree};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    servers: Vec<String>,
}

/// The drop-in the stage writes.
pub const DROP_IN: &str = "/etc/systemd/timesyncd.conf.d/50-kiln.conf";

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let opts: Options = treefs::options("timesyncd.ntp", ctx)?;
    if opts.servers.is_empty() {
        return Err("timesyncd.ntp: no servers given".into());
    }
    for s in &opts.servers {
        let ok = !s.is_empty()
            && s.len() <= 253
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b));
        if !ok {
            return Err(format!(
                "invalid NTP server {s:?}: use a host name or an IP address"
            ));
        }
    }
    let tree = Tree::open(ctx.tree)?;
    if !treefs::unit_exists(&tree, "systemd-timesyncd.service")? {
        return Err(
            "NTP servers need systemd-timesyncd in the image (systemd-timesyncd.service is missing); add the package systemd-timesyncd"
                .into(),
        );
    }
    let text = format!(
        "# Written by kiln from the blueprint's timezone.ntpservers.\n[Time]\nNTP={}\n",
        opts.servers.join(" ")
    );
    tree.write(DROP_IN, text.as_bytes(), Meta::root(0o644))?;
    (ctx.log)(&format!("{DROP_IN}: NTP={}", opts.servers.join(" ")));
    Ok(())
}
