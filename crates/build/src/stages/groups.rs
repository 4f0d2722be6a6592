//! `groups`: creates groups with the tree's own `groupadd` (package `passwd`), in the
//! sandbox with the tree as `/`.
//!
//! Options:
//! `{"groups": [{"name": "admins", "gid": 1500, "system": false, "sudo": false}]}`
//! (`gid`, `system` and `sudo` optional).
//!
//! - A group that already exists is kept when it has the requested gid (or none was
//!   requested); with another gid it is an error.
//! - `system: true` makes a system group (`groupadd --system`, gid from the system range).
//! - `sudo: true` also grants the group full sudo rights with
//!   `/etc/sudoers.d/kiln-group-NAME` (`%NAME ALL=(ALL:ALL) ALL`, 0440, checked with the
//!   tree's `visudo -c`); the tree must have sudo. kiln-distro uses it for `wheel`, the
//!   administrators' group of osbuild blueprints, which Debian does not have.
//!
//! `groupadd` replaces `/etc/group` and `/etc/gshadow` by rename, but rewrites the backups
//! (`/etc/group-`, ...) in place: they are removed first, so a backup shared with a stored
//! tree is never written through ([`remove_account_backups`]).

use serde::Deserialize;

use super::StageContext;
use super::treefs::{self, Meta, Tree, plain_field};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    groups: Vec<Group>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    name: String,
    #[serde(default)]
    gid: Option<u32>,
    #[serde(default)]
    system: bool,
    #[serde(default)]
    sudo: bool,
}

/// The backups that shadow's tools rewrite in place (`fopen(name, "w")`).
const BACKUPS: &[&str] = &[
    "/etc/passwd-",
    "/etc/shadow-",
    "/etc/group-",
    "/etc/gshadow-",
    "/etc/subuid-",
    "/etc/subgid-",
];

/// Removes the account file backups before shadow's tools run (see the module
/// documentation); the tools write fresh ones, which `tree.normalize` removes.
pub fn remove_account_backups(tree: &Tree) -> Result<(), String> {
    for b in BACKUPS {
        tree.remove(b)?;
    }
    Ok(())
}

/// Checks a user or group name as `useradd`/`groupadd` would take it safely.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && plain_field(name)
        && name.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_alphanumeric() || b"_.-".contains(&b) || (b == b'$' && i == name.len() - 1)
        })
        && !name.bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} name {name:?}: use up to 32 letters, digits, '_', '.' and '-', not starting with '-' and not all digits"
        ))
    }
}

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let opts: Options = treefs::options("groups", ctx)?;
    let tree = Tree::open(ctx.tree)?;
    for g in &opts.groups {
        check_name("group", &g.name)?;
    }
    if !tree.is_executable("/usr/sbin/groupadd") {
        return Err("groups: /usr/sbin/groupadd is not in the image (package passwd)".into());
    }
    remove_account_backups(&tree)?;
    let sb = ctx.chroot_sandbox();
    for g in &opts.groups {
        let acc = tree.accounts()?;
        match (acc.group(&g.name), g.gid) {
            (Some(have), Some(want)) if have.gid != want => {
                return Err(format!(
                    "group {:?} already exists in the image with gid {}, not the requested {want}",
                    g.name, have.gid
                ));
            }
            (Some(have), _) => {
                (ctx.log)(&format!("group {} exists (gid {}), kept", g.name, have.gid));
            }
            (None, gid) => {
                if let Some(gid) = gid
                    && let Some(other) = acc.group_by_gid(gid)
                {
                    return Err(format!(
                        "cannot create group {:?} with gid {gid}: group {:?} already has it",
                        g.name, other.name
                    ));
                }
                let gid_s = gid.map(|g| g.to_string());
                let mut args: Vec<&str> = Vec::new();
                if let Some(s) = &gid_s {
                    args.extend(["--gid", s]);
                }
                if g.system {
                    args.push("--system");
                }
                args.extend(["--", &g.name]);
                treefs::run(
                    ctx,
                    &sb,
                    &format!("creating group {}", g.name),
                    "groupadd",
                    &args,
                )?;
                let made = tree.accounts()?;
                let gid = made.group(&g.name).map(|x| x.gid).ok_or_else(|| {
                    format!(
                        "groupadd succeeded but group {} is not in /etc/group",
                        g.name
                    )
                })?;
                (ctx.log)(&format!("created group {} (gid {gid})", g.name));
            }
        }
        if g.sudo {
            grant_sudo(ctx, &tree, &sb, &g.name)?;
        }
    }
    Ok(())
}

fn grant_sudo(
    ctx: &mut StageContext<'_>,
    tree: &Tree,
    sb: &kiln_sandbox::Sandbox,
    group: &str,
) -> Result<(), String> {
    if tree.resolve_type("/etc/sudoers.d")? != Some(rustix::fs::FileType::Directory)
        || !tree.is_executable("/usr/sbin/visudo")
    {
        return Err(format!(
            "group {group}: sudo rights need the sudo package in the image (/etc/sudoers.d or visudo is missing)"
        ));
    }
    // sudo skips drop-ins whose names contain '.'.
    let file = format!("/etc/sudoers.d/kiln-group-{}", group.replace('.', "_"));
    let text = format!(
        "# Written by kiln: members of {group} may run any command as any user.\n%{group} ALL=(ALL:ALL) ALL\n"
    );
    tree.write(&file, text.as_bytes(), Meta::root(0o440))?;
    treefs::run(
        ctx,
        sb,
        &format!("checking {file}"),
        "visudo",
        &["-c", "-q", "-f", &file],
    )?;
    (ctx.log)(&format!("group {group}: sudo rights in {file}"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["wheel", "alice", "a.b", "x_1", "machine$"] {
            assert!(check_name("user", ok).is_ok(), "{ok}");
        }
        for bad in ["", "-rf", "a:b", "a b", "1234", "a\nb", &"x".repeat(33)] {
            assert!(check_name("user", bad).is_err(), "{bad}");
        }
    }
}
