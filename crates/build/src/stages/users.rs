//! `users`: creates or modifies users with the tree's own `useradd`, `usermod` and
//! `chage` (package `passwd`) in the sandbox with the tree as `/`, and writes their SSH
//! keys.
//!
//! Options:
//!
//! ```json
//! {"default_shell": "/bin/bash",
//!  "users": [{"name": "alice", "uid": 1000, "gid": 1000, "description": "Alice",
//!             "home": "/home/alice", "shell": "/bin/zsh", "groups": ["sudo"],
//!             "password": "$6$...", "keys": ["ssh-ed25519 AAAA... alice@host"],
//!             "expiredate": 20000, "force_password_reset": true}]}
//! ```
//!
//! Everything but `name` is optional. Users are handled in order:
//!
//! - **New user**: `useradd --no-log-init --create-home` (home from `/etc/skel`) with the
//!   given fields; `shell` defaults to `default_shell` when set (else the tree's
//!   `/etc/default/useradd`). A `gid` that no group has yet gets a group named after the
//!   user with that gid; without `gid`, an existing group named after the user becomes the
//!   primary group, else `useradd` makes one.
//! - **Existing user** (`root`, a package's user): `usermod` sets the given fields
//!   (supplementary groups are added to, not replaced). A different `uid` is an error.
//! - `password` must be a crypt(3) hash (kiln-distro hashes plain-text passwords); no
//!   password leaves a new account locked (`!`), which still allows SSH key logins.
//! - `expiredate` (days since 1970-01-01) → `chage --expiredate`; `force_password_reset`
//!   → `chage --lastday 0`.
//! - `keys` are added to `~/.ssh/authorized_keys` (keys already there are kept, none is
//!   written twice); `.ssh` is 0700 and the file 0600, both owned by the user and the
//!   user's primary group. A `.ssh` that is a symlink is refused.
//!
//! Supplementary groups must exist (see the `groups` stage); the shell must be an
//! executable in the tree. shadow's tools date `/etc/shadow`'s last-change field from
//! `SOURCE_DATE_EPOCH`, so the stage requires the pipeline to have one. `--no-log-init`
//! keeps `/var/log/lastlog` and `faillog` (rewritten in place otherwise) untouched; the
//! account backups are removed first (see [`super::groups`]).

use serde::Deserialize;

use super::StageContext;
use super::groups::{check_name, remove_account_backups};
use super::treefs::{self, Meta, Tree, plain_field};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    users: Vec<User>,
    #[serde(default)]
    default_shell: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct User {
    name: String,
    #[serde(default)]
    uid: Option<u32>,
    #[serde(default)]
    gid: Option<u32>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    home: Option<String>,
    #[serde(default)]
    shell: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    expiredate: Option<i64>,
    #[serde(default)]
    force_password_reset: bool,
}

fn check_user(u: &User, tree: &Tree) -> Result<(), String> {
    check_name("user", &u.name)?;
    let who = &u.name;
    if let Some(d) = &u.description
        && !plain_field(d.trim_start_matches('-'))
    {
        return Err(format!(
            "user {who}: the description may not contain ':' or control characters"
        ));
    }
    for (what, p) in [("home", &u.home), ("shell", &u.shell)] {
        if let Some(p) = p {
            treefs::components(p).map_err(|e| format!("user {who}: {what}: {e}"))?;
            if !plain_field(p) {
                return Err(format!("user {who}: invalid {what} {p:?}"));
            }
        }
    }
    if let Some(s) = &u.shell
        && !tree.is_executable(s)
    {
        return Err(format!(
            "user {who}: the shell {s} is not an executable in the image; install the package that provides it"
        ));
    }
    if let Some(p) = &u.password
        && (!p.starts_with('$') || !plain_field(p) || p.contains(char::is_whitespace))
    {
        return Err(format!(
            "user {who}: the password must be a crypt(3) hash such as \"$6$...\" (plain text is hashed by kiln-distro)"
        ));
    }
    for k in &u.keys {
        if k.trim().is_empty() || k.contains(['\n', '\r', '\0']) {
            return Err(format!(
                "user {who}: an SSH key must be one non-empty line, got {k:?}"
            ));
        }
    }
    for g in &u.groups {
        check_name("group", g).map_err(|e| format!("user {who}: {e}"))?;
    }
    if let Some(e) = u.expiredate
        && e < -1
    {
        return Err(format!("user {who}: invalid expiredate {e}"));
    }
    Ok(())
}

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let opts: Options = treefs::options("users", ctx)?;
    if ctx.source_epoch.is_none() {
        return Err(
            "the users stage needs the pipeline's source_epoch (shadow dates password changes with SOURCE_DATE_EPOCH)"
                .into(),
        );
    }
    let tree = Tree::open(ctx.tree)?;
    for tool in ["useradd", "usermod", "chage", "groupadd"] {
        if !tree.is_executable(&format!("/usr/sbin/{tool}"))
            && !tree.is_executable(&format!("/usr/bin/{tool}"))
        {
            return Err(format!(
                "users: {tool} is not in the image (package passwd)"
            ));
        }
    }
    if let Some(s) = &opts.default_shell {
        treefs::components(s).map_err(|e| format!("default_shell: {e}"))?;
    }
    for u in &opts.users {
        check_user(u, &tree)?;
    }
    remove_account_backups(&tree)?;
    let sb = ctx.chroot_sandbox();
    for u in &opts.users {
        one_user(ctx, &tree, &sb, u, opts.default_shell.as_deref())?;
    }
    Ok(())
}

fn one_user(
    ctx: &mut StageContext<'_>,
    tree: &Tree,
    sb: &kiln_sandbox::Sandbox,
    u: &User,
    default_shell: Option<&str>,
) -> Result<(), String> {
    let who = u.name.as_str();
    let acc = tree.accounts()?;
    for g in &u.groups {
        if acc.group(g).is_none() {
            return Err(format!(
                "user {who}: supplementary group {g:?} does not exist in the image; create it with [[customizations.group]]"
            ));
        }
    }
    let uid_s = u.uid.map(|v| v.to_string());
    let gid_s = u.gid.map(|v| v.to_string());
    let groups = u.groups.join(",");
    let mut args: Vec<&str> = Vec::new();
    let existing = acc.user(who).cloned();
    match &existing {
        Some(have) => {
            if let Some(uid) = u.uid
                && uid != have.uid
            {
                return Err(format!(
                    "user {who} already exists in the image with uid {}; changing it to {uid} is not supported",
                    have.uid
                ));
            }
            if let Some(gid) = u.gid {
                if acc.group_by_gid(gid).is_none() {
                    return Err(format!(
                        "user {who}: no group has gid {gid}; create it with [[customizations.group]]"
                    ));
                }
                args.extend(["--gid", gid_s.as_deref().unwrap_or_default()]);
            }
        }
        None => {
            args.extend(["--no-log-init", "--create-home"]);
            if let Some(s) = &uid_s {
                args.extend(["--uid", s]);
            }
            match u.gid {
                Some(gid) => {
                    if acc.group_by_gid(gid).is_none() {
                        if let Some(g) = acc.group(who) {
                            return Err(format!(
                                "user {who}: no group has gid {gid}, and the group {who} that kiln would create with it exists with gid {}",
                                g.gid
                            ));
                        }
                        treefs::run(
                            ctx,
                            sb,
                            &format!("creating group {who} (gid {gid}) for user {who}"),
                            "groupadd",
                            &["--gid", gid_s.as_deref().unwrap_or_default(), "--", who],
                        )?;
                    }
                    args.extend(["--gid", gid_s.as_deref().unwrap_or_default()]);
                }
                None if acc.group(who).is_some() => args.extend(["--gid", who]),
                None => {}
            }
            if u.shell.is_none()
                && let Some(s) = default_shell
            {
                args.extend(["--shell", s]);
            }
        }
    }
    if let Some(d) = &u.description {
        args.extend(["--comment", d]);
    }
    if let Some(h) = &u.home {
        args.extend(["--home", h]);
    }
    if let Some(s) = &u.shell {
        args.extend(["--shell", s]);
    }
    if let Some(p) = &u.password {
        args.extend(["--password", p]);
    }
    if !u.groups.is_empty() {
        if existing.is_some() {
            args.push("--append");
        }
        args.extend(["--groups", &groups]);
    }
    if existing.is_none() {
        args.extend(["--", who]);
        treefs::run(ctx, sb, &format!("creating user {who}"), "useradd", &args)?;
        (ctx.log)(&format!("created user {who}"));
    } else if !args.is_empty() {
        args.extend(["--", who]);
        treefs::run(ctx, sb, &format!("modifying user {who}"), "usermod", &args)?;
        (ctx.log)(&format!("modified existing user {who}"));
    } else {
        (ctx.log)(&format!("user {who} exists"));
    }

    if let Some(days) = u.expiredate {
        let d = days.to_string();
        treefs::run(
            ctx,
            sb,
            &format!("setting the expiry date of {who}"),
            "chage",
            &["--expiredate", &d, "--", who],
        )?;
    }
    if u.force_password_reset {
        treefs::run(
            ctx,
            sb,
            &format!("forcing a password change for {who}"),
            "chage",
            &["--lastday", "0", "--", who],
        )?;
    }
    if !u.keys.is_empty() {
        write_keys(ctx, tree, u)?;
    }
    Ok(())
}

fn write_keys(ctx: &mut StageContext<'_>, tree: &Tree, u: &User) -> Result<(), String> {
    let who = &u.name;
    let acc = tree.accounts()?;
    let entry = acc
        .user(who)
        .ok_or_else(|| format!("user {who} is not in /etc/passwd"))?;
    let home = entry.home.trim_end_matches('/');
    treefs::components(if home.is_empty() { "/" } else { home })
        .map_err(|e| format!("user {who}: home directory: {e}"))?;
    if tree.resolve_type(if home.is_empty() { "/" } else { home })?
        != Some(rustix::fs::FileType::Directory)
    {
        return Err(format!(
            "user {who}: the home directory {home} does not exist in the image, so SSH keys cannot be installed"
        ));
    }
    let owner = Meta {
        mode: 0o700,
        uid: entry.uid,
        gid: entry.gid,
    };
    let ssh_dir = format!("{home}/.ssh");
    let dir = tree.entry(&ssh_dir, false)?;
    match dir.file_type()? {
        None => dir.mkdir(owner)?,
        Some(rustix::fs::FileType::Directory) => {}
        Some(_) => {
            return Err(format!(
                "user {who}: {ssh_dir} exists and is not a directory; refusing to write SSH keys through it"
            ));
        }
    }
    let path = format!("{ssh_dir}/authorized_keys");
    let file = tree.entry(&path, false)?;
    let mut text = match file.file_type()? {
        None => String::new(),
        Some(rustix::fs::FileType::RegularFile) => tree.read_string(&path)?.unwrap_or_default(),
        Some(_) => {
            return Err(format!(
                "user {who}: {path} exists and is not a regular file"
            ));
        }
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let mut added = 0;
    for k in &u.keys {
        let k = k.trim();
        if !text.lines().any(|l| l.trim() == k) {
            text.push_str(k);
            text.push('\n');
            added += 1;
        }
    }
    file.write(
        text.as_bytes(),
        Meta {
            mode: 0o600,
            ..owner
        },
    )?;
    (ctx.log)(&format!("{path}: {added} key(s) added"));
    Ok(())
}
