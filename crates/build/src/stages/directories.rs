//! `directories`: creates directories in the tree (in Rust, not in the sandbox). Options:
//! `{"directories": [{"path": "/srv/data", "mode": "0750", "user": "alice",
//! "group": 1000, "ensure_parents": true}]}` (all but `path` optional).
//!
//! Paths resolve inside the tree (see [`super::treefs`]): a symlink on the way is followed
//! as in a chroot, one climbing above the root is an error, and the last component is never
//! followed (a symlink there is an error). Owners given by name come from the tree's
//! `/etc/passwd` and `/etc/group`. A new directory is 0755 root:root unless told otherwise;
//! an existing one gets only the mode and owners that are given. Missing parents are an
//! error unless `ensure_parents`, which creates them 0755 root:root.

use serde::Deserialize;

use super::StageContext;
use super::treefs::{self, Meta, OwnerSpec, Tree};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    directories: Vec<Directory>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Directory {
    path: String,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    user: Option<OwnerSpec>,
    #[serde(default)]
    group: Option<OwnerSpec>,
    #[serde(default)]
    ensure_parents: bool,
}

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let opts: Options = treefs::options("directories", ctx)?;
    let tree = Tree::open(ctx.tree)?;
    let acc = tree.accounts()?;
    for d in &opts.directories {
        let at = |e: String| format!("directory {}: {e}", d.path);
        let mode = d
            .mode
            .as_deref()
            .map(treefs::parse_mode)
            .transpose()
            .map_err(at)?;
        let uid = d
            .user
            .as_ref()
            .map(|u| acc.uid(u))
            .transpose()
            .map_err(at)?;
        let gid = d
            .group
            .as_ref()
            .map(|g| acc.gid(g))
            .transpose()
            .map_err(at)?;
        // Errors from here on name the path themselves.
        let entry = tree.entry(&d.path, d.ensure_parents).map_err(|e| {
            if e.contains("does not exist") && !d.ensure_parents {
                format!("{e} (set ensure_parents = true to create it)")
            } else {
                e
            }
        })?;
        match entry.file_type()? {
            None => {
                entry.mkdir(Meta {
                    mode: mode.unwrap_or(0o755),
                    uid: uid.unwrap_or(0),
                    gid: gid.unwrap_or(0),
                })?;
                (ctx.log)(&format!("created {}", d.path));
            }
            Some(rustix::fs::FileType::Directory) => {
                entry.set_dir_meta(mode, uid, gid)?;
                (ctx.log)(&format!("{} exists; mode and owners set", d.path));
            }
            Some(rustix::fs::FileType::Symlink) => {
                return Err(format!(
                    "directory {}: the image has a symlink there; refusing to follow it",
                    d.path
                ));
            }
            Some(_) => {
                return Err(format!("directory {}: the image has a file there", d.path));
            }
        }
    }
    Ok(())
}
