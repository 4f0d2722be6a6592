//! Reproducible-tree cleanup: removes what differs between two builds of the same
//! manifest, then clamps mtimes to `SOURCE_DATE_EPOCH`.
//!
//! Kept on purpose: `/etc/ld.so.cache` (ldconfig writes it from the sorted library set:
//! deterministic), `.pyc` files (written hash-based because `SOURCE_DATE_EPOCH` is set
//! while configuring). Every path is handled with `symlink_metadata`/`lutimes`: nothing is
//! followed, so a symlink in the tree can never make kiln touch a host file.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Timespec, Timestamps};
use thiserror::Error;

/// Why [`normalize`] failed.
#[derive(Debug, Error)]
#[error("normalizing {}: {source}", .path.display())]
pub struct NormalizeError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn err(path: &Path) -> impl FnOnce(io::Error) -> NormalizeError + '_ {
    move |source| NormalizeError {
        path: path.to_path_buf(),
        source,
    }
}

/// Files removed when present (relative to the tree).
const REMOVE_FILES: &[&str] = &[
    "var/lib/systemd/random-seed",
    "var/lib/dbus/machine-id",
    "var/cache/ldconfig/aux-cache",
    "etc/shadow-",
    "etc/gshadow-",
    "etc/passwd-",
    "etc/group-",
    "etc/subuid-",
    "etc/subgid-",
];

/// Directories whose content (not the directory) is removed, except the names listed.
const EMPTY_DIRS: &[(&str, &[&str])] = &[
    ("var/lib/apt/lists", &["lock", "partial"]),
    ("var/cache/man", &[]),
    ("var/log/apt", &[]),
];

/// Removes non-reproducible noise from `tree` and clamps every mtime newer than
/// `source_epoch` to it (see the module documentation).
pub fn normalize(tree: &Path, source_epoch: u64) -> Result<(), NormalizeError> {
    // machine-id: kept, empty (systemd fills it on first boot); dbus's copy becomes the
    // symlink Debian's dbus makes.
    let mid = at(tree, "etc/machine-id");
    if is_file(&mid) && fs::symlink_metadata(&mid).map_err(err(&mid))?.len() > 0 {
        replace_file(&mid, b"")?;
    }
    for f in REMOVE_FILES {
        remove_file(&at(tree, f))?;
    }
    let dbus = at(tree, "var/lib/dbus");
    if is_dir(&dbus) {
        std::os::unix::fs::symlink("/etc/machine-id", dbus.join("machine-id"))
            .map_err(err(&dbus))?;
    }
    for (dir, keep) in EMPTY_DIRS {
        let d = at(tree, dir);
        if !is_dir(&d) {
            continue;
        }
        for e in fs::read_dir(&d).map_err(err(&d))? {
            let e = e.map_err(err(&d))?;
            if keep.iter().any(|k| e.file_name() == *k) {
                continue;
            }
            remove_any(&e.path())?;
        }
    }
    // Backups dpkg and debconf make of their databases.
    for dir in ["var/lib/dpkg", "var/cache/debconf"] {
        let d = at(tree, dir);
        if is_dir(&d) {
            for e in fs::read_dir(&d).map_err(err(&d))? {
                let e = e.map_err(err(&d))?;
                if e.file_name().to_string_lossy().ends_with("-old") {
                    remove_file(&e.path())?;
                }
            }
        }
    }
    // apt's binary caches, and logs (files only; the directories belong to packages).
    remove_matching(&at(tree, "var/cache/apt"), |n| n.ends_with(".bin"))?;
    remove_matching(&at(tree, "var/log"), |_| true)?;
    // Host keys are generated on first boot, never baked in.
    remove_matching(&at(tree, "etc/ssh"), |n| n.starts_with("ssh_host_"))?;

    let shadow = at(tree, "etc/shadow");
    if is_file(&shadow) {
        let text = fs::read_to_string(&shadow).map_err(err(&shadow))?;
        let fixed = fix_shadow(&text, source_epoch / 86_400);
        if fixed != text {
            replace_file(&shadow, fixed.as_bytes())?;
        }
    }
    clamp_mtimes(tree, source_epoch)
}

/// Replaces the file at `path` with one holding `data`, with the same mode and owner:
/// written beside it and renamed over, never through it (the file may be a hard link
/// shared with a tree in the store).
fn replace_file(path: &Path, data: &[u8]) -> Result<(), NormalizeError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = fs::symlink_metadata(path).map_err(err(path))?;
    let tmp = path.with_file_name(format!(
        ".{}.kiln-new",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = fs::remove_file(&tmp);
    fs::write(&tmp, data).map_err(err(&tmp))?;
    std::os::unix::fs::lchown(&tmp, Some(meta.uid()), Some(meta.gid())).map_err(err(&tmp))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(err(&tmp))?;
    fs::rename(&tmp, path).map_err(err(path))
}

/// `tree/rel` when every directory on the way is a real directory (not a symlink, which
/// could lead out of the tree); otherwise a path that does not exist under `tree`, so the
/// caller skips it.
fn at(tree: &Path, rel: &str) -> PathBuf {
    let mut p = tree.to_path_buf();
    let comps: Vec<&str> = rel.split('/').collect();
    for (i, c) in comps.iter().enumerate() {
        p.push(c);
        if i + 1 < comps.len() && !is_dir(&p) {
            return tree.join(".kiln-normalize-skipped");
        }
    }
    p
}

/// Sets the last-change field (3rd) of every entry that has one to `days`.
fn fix_shadow(text: &str, days: u64) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut f: Vec<&str> = line.split(':').collect();
        let days = days.to_string();
        // 0 means "change the password at next login" (force_password_reset): kept.
        if f.len() >= 3 && !f[2].is_empty() && f[2] != "0" {
            f[2] = &days;
            out.push_str(&f.join(":"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

fn is_file(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.is_file())
}

fn is_dir(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}

fn remove_file(p: &Path) -> Result<(), NormalizeError> {
    match fs::symlink_metadata(p) {
        Ok(m) if !m.is_dir() => fs::remove_file(p).map_err(err(p)),
        _ => Ok(()),
    }
}

fn remove_any(p: &Path) -> Result<(), NormalizeError> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).map_err(err(p)),
        Ok(_) => fs::remove_file(p).map_err(err(p)),
        Err(_) => Ok(()),
    }
}

/// Removes the files (not directories) under `dir`, recursively, whose name matches.
fn remove_matching(dir: &Path, pred: impl Fn(&str) -> bool + Copy) -> Result<(), NormalizeError> {
    if !is_dir(dir) {
        return Ok(());
    }
    for e in fs::read_dir(dir).map_err(err(dir))? {
        let e = e.map_err(err(dir))?;
        let p = e.path();
        let t = e.file_type().map_err(err(&p))?;
        if t.is_dir() {
            remove_matching(&p, pred)?;
        } else if pred(&e.file_name().to_string_lossy()) {
            fs::remove_file(&p).map_err(err(&p))?;
        }
    }
    Ok(())
}

/// Lowers every mtime (and atime) newer than `epoch` to `epoch`, without following
/// symlinks; directories after their content.
pub fn clamp_mtimes(tree: &Path, epoch: u64) -> Result<(), NormalizeError> {
    fn walk(p: &Path, epoch: i64) -> Result<(), NormalizeError> {
        let m = fs::symlink_metadata(p).map_err(err(p))?;
        if m.is_dir() {
            for e in fs::read_dir(p).map_err(err(p))? {
                walk(&e.map_err(err(p))?.path(), epoch)?;
            }
        }
        use std::os::unix::fs::MetadataExt;
        if m.mtime() > epoch || m.atime() > epoch {
            let t = Timespec {
                tv_sec: epoch,
                tv_nsec: 0,
            };
            let mtime = if m.mtime() > epoch {
                t
            } else {
                Timespec {
                    tv_sec: m.mtime(),
                    tv_nsec: m.mtime_nsec(),
                }
            };
            rustix::fs::utimensat(
                CWD,
                p,
                &Timestamps {
                    last_access: t,
                    last_modification: mtime,
                },
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| err(p)(e.into()))?;
        }
        Ok(())
    }
    let epoch = i64::try_from(epoch).unwrap_or(i64::MAX);
    walk(tree, epoch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn shadow_last_change_is_fixed() {
        assert_eq!(
            fix_shadow("root:*:19000:0:99999:7:::\nx::\nbad\n", 20000),
            "root:*:20000:0:99999:7:::\nx::\nbad\n"
        );
    }

    #[test]
    fn cleans_and_clamps_without_following_symlinks() {
        let outside = tempfile::tempdir().unwrap();
        let host_file = outside.path().join("host");
        fs::write(&host_file, "x").unwrap();
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for d in [
            "etc/ssh",
            "var/lib/systemd",
            "var/lib/apt/lists/partial",
            "var/log/apt",
        ] {
            fs::create_dir_all(r.join(d)).unwrap();
        }
        fs::write(r.join("etc/machine-id"), "abc\n").unwrap();
        fs::write(r.join("etc/ssh/ssh_host_rsa_key"), "k").unwrap();
        fs::write(r.join("etc/ssh/sshd_config"), "c").unwrap();
        fs::write(r.join("var/lib/apt/lists/foo_Packages"), "p").unwrap();
        fs::write(r.join("var/lib/apt/lists/lock"), "").unwrap();
        fs::write(r.join("var/log/dpkg.log"), "l").unwrap();
        fs::write(r.join("var/log/apt/history.log"), "l").unwrap();
        fs::create_dir_all(r.join("var/lib/dpkg/info")).unwrap();
        fs::write(r.join("var/lib/dpkg/status-old"), "s").unwrap();
        fs::write(r.join("var/lib/dpkg/status"), "s").unwrap();
        std::os::unix::fs::symlink(&host_file, r.join("link")).unwrap();
        let host_mtime = fs::metadata(&host_file).unwrap().mtime();
        // A `var/lib/systemd` leading out of the tree is not followed.
        fs::create_dir_all(r.join("var/lib/dbus")).unwrap();
        let out_dir = outside.path().join("systemd");
        fs::create_dir(&out_dir).unwrap();
        fs::write(out_dir.join("random-seed"), "host").unwrap();
        fs::remove_dir_all(r.join("var/lib/systemd")).unwrap();
        std::os::unix::fs::symlink(&out_dir, r.join("var/lib/systemd")).unwrap();

        normalize(r, 1_000_000).unwrap();

        assert_eq!(fs::read(r.join("etc/machine-id")).unwrap(), b"");
        assert!(!r.join("etc/ssh/ssh_host_rsa_key").exists());
        assert!(r.join("etc/ssh/sshd_config").exists());
        assert!(out_dir.join("random-seed").exists());
        assert_eq!(
            fs::read_link(r.join("var/lib/dbus/machine-id")).unwrap(),
            Path::new("/etc/machine-id")
        );
        assert!(!r.join("var/lib/apt/lists/foo_Packages").exists());
        assert!(r.join("var/lib/apt/lists/lock").exists());
        assert!(r.join("var/lib/apt/lists/partial").is_dir());
        assert!(!r.join("var/log/dpkg.log").exists());
        assert!(r.join("var/log/apt").is_dir());
        assert!(!r.join("var/lib/dpkg/status-old").exists());
        assert!(r.join("var/lib/dpkg/status").exists());
        assert!(!r.join("var/log/apt/history.log").exists());
        for p in [
            "etc",
            "etc/ssh/sshd_config",
            "var/lib/apt/lists",
            "link",
            ".",
        ] {
            let m = fs::symlink_metadata(r.join(p)).unwrap();
            assert_eq!(m.mtime(), 1_000_000, "{p}");
        }
        assert_eq!(fs::metadata(&host_file).unwrap().mtime(), host_mtime);
    }
}
