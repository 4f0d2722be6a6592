//! `files`: writes files into the tree (in Rust, not in the sandbox). Options:
//! `{"files": [{"path": "/etc/motd", "data": "Hello\n", "mode": "0644", "user": "root",
//! "group": "root"}]}` (all but `path` optional; no `data` means an empty file).
//!
//! Paths resolve inside the tree (see [`super::treefs`]): a symlink on the way is followed
//! as in a chroot, one climbing above the root is an error. A file there (or a symlink:
//! it is replaced, not followed) is replaced by a new file renamed over it, never written
//! through; a directory there is an error. Missing parent directories are created 0755
//! root:root. Defaults: mode 0644, root:root; owners given by name come from the tree's
//! `/etc/passwd` and `/etc/group`.

use serde::Deserialize;

use super::StageContext;
use super::treefs::{self, Meta, OwnerSpec, Tree};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    files: Vec<File>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    path: String,
    #[serde(default)]
    data: String,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    user: Option<OwnerSpec>,
    #[serde(default)]
    group: Option<OwnerSpec>,
}

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let opts: Options = treefs::options("files", ctx)?;
    let tree = Tree::open(ctx.tree)?;
    let acc = tree.accounts()?;
    for f in &opts.files {
        let at = |e: String| format!("file {}: {e}", f.path);
        let meta = Meta {
            mode: f
                .mode
                .as_deref()
                .map(treefs::parse_mode)
                .transpose()
                .map_err(at)?
                .unwrap_or(0o644),
            uid: f
                .user
                .as_ref()
                .map(|u| acc.uid(u))
                .transpose()
                .map_err(at)?
                .unwrap_or(0),
            gid: f
                .group
                .as_ref()
                .map(|g| acc.gid(g))
                .transpose()
                .map_err(at)?
                .unwrap_or(0),
        };
        // Errors from here on name the path themselves.
        tree.entry(&f.path, true)?.write(f.data.as_bytes(), meta)?;
        (ctx.log)(&format!(
            "wrote {} ({} bytes, {:04o} {}:{})",
            f.path,
            f.data.len(),
            meta.mode,
            meta.uid,
            meta.gid
        ));
    }
    Ok(())
}
