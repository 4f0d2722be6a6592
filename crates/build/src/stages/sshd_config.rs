//! `sshd.config`: OpenSSH server settings as the drop-in
//! `/etc/ssh/sshd_config.d/50-kiln.conf`. Options (all optional):
//! `{"password_authentication": false, "kbd_interactive_authentication": false,
//!   "client_alive_interval": 120, "permit_root_login": "prohibit-password"}`.
//!
//! sshd keeps the *first* value it reads for a keyword, and Debian's `sshd_config` reads
//! `sshd_config.d/*.conf` (in name order) at its top. So the stage checks that the tree's
//! `sshd_config` has that `Include`, and that no drop-in sorting before `50-kiln.conf`
//! sets one of the same keywords: either would make the setting silently ineffective.

use serde::Deserialize;

use super::StageContext;
use super::treefs::{self, Meta, Tree};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default)]
    password_authentication: Option<bool>,
    #[serde(default)]
    kbd_interactive_authentication: Option<bool>,
    #[serde(default)]
    client_alive_interval: Option<u32>,
    #[serde(default)]
    permit_root_login: Option<String>,
}

/// The drop-in the stage writes.
pub const DROP_IN: &str = "/etc/ssh/sshd_config.d/50-kiln.conf";

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let opts: Options = treefs::options("sshd.config", ctx)?;
    let mut settings: Vec<(&str, String)> = Vec::new();
    if let Some(b) = opts.password_authentication {
        settings.push(("PasswordAuthentication", yes_no(b)));
    }
    if let Some(b) = opts.kbd_interactive_authentication {
        settings.push(("KbdInteractiveAuthentication", yes_no(b)));
    }
    if let Some(n) = opts.client_alive_interval {
        settings.push(("ClientAliveInterval", n.to_string()));
    }
    if let Some(p) = &opts.permit_root_login {
        if !matches!(
            p.as_str(),
            "yes" | "no" | "prohibit-password" | "without-password" | "forced-commands-only"
        ) {
            return Err(format!(
                "invalid permit_root_login {p:?}: use yes, no, prohibit-password or forced-commands-only"
            ));
        }
        settings.push(("PermitRootLogin", p.clone()));
    }
    if settings.is_empty() {
        return Err("sshd.config: no setting given".into());
    }
    let tree = Tree::open(ctx.tree)?;
    let main = tree.read_string("/etc/ssh/sshd_config")?.ok_or(
        "sshd settings need openssh-server in the image (/etc/ssh/sshd_config is missing)",
    )?;
    let includes = main.lines().any(|l| {
        let mut w = l.split_whitespace();
        w.next().is_some_and(|k| k.eq_ignore_ascii_case("include"))
            && w.any(|p| {
                p.starts_with("/etc/ssh/sshd_config.d/") || p.starts_with("sshd_config.d/")
            })
    });
    if !includes {
        return Err(
            "the image's /etc/ssh/sshd_config does not include /etc/ssh/sshd_config.d/*.conf, so a drop-in would be ignored"
                .into(),
        );
    }
    // Drop-ins read before ours win; refuse rather than be ignored.
    let earlier: Vec<String> = tree
        .list("/etc/ssh/sshd_config.d")?
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.ends_with(".conf") && n.as_str() < "50-kiln.conf")
        .collect();
    for name in earlier {
        let path = format!("/etc/ssh/sshd_config.d/{name}");
        let text = tree.read_string(&path).ok().flatten().unwrap_or_default();
        for line in text.lines() {
            let Some(k) = line.split_whitespace().next() else {
                continue;
            };
            if let Some((key, _)) = settings.iter().find(|(s, _)| s.eq_ignore_ascii_case(k)) {
                return Err(format!(
                    "{path} sets {key} before kiln's {DROP_IN} is read, so the blueprint's value would be ignored"
                ));
            }
        }
    }
    let mut text = String::from("# Written by kiln from the blueprint's sshd customization.\n");
    for (k, v) in &settings {
        text.push_str(&format!("{k} {v}\n"));
    }
    tree.write(DROP_IN, text.as_bytes(), Meta::root(0o644))?;
    (ctx.log)(&format!("{DROP_IN}: {} setting(s)", settings.len()));
    Ok(())
}
