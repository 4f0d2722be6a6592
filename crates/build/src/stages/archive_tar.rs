//! `archive.tar`: writes the tree of input `tree` as a reproducible tar archive named by
//! option `filename` into the stage's tree.
//!
//! Reproducible: entries in pre-order with the names of each directory sorted bytewise
//! (as GNU tar's `--sort=name`), mtimes clamped to the pipeline's `SOURCE_DATE_EPOCH`,
//! numeric uid/gid only (no user or group names), no atime/ctime, hard links as link
//! entries to the first path, and a pax extended header only for entries with xattrs
//! (`SCHILY.xattr.*`, as GNU tar and bsdtar write them).

use super::StageContext;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let src = ctx.input_tree("tree")?.to_path_buf();
    let filename = ctx.option_str("filename")?.to_owned();
    let filename = filename.as_str();
    if filename.is_empty() || filename.contains('/') || filename == "." || filename == ".." {
        return Err(format!(
            "invalid filename {filename:?}: a plain file name is expected"
        ));
    }
    let epoch = ctx.source_epoch.unwrap_or(0);
    let out = ctx.tree.join(filename);
    (ctx.log)(&format!(
        "archiving {} into {filename} (mtimes clamped to {epoch})",
        src.display()
    ));
    let file = File::create(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let w = write_tar(&src, BufWriter::with_capacity(1 << 20, file), epoch)
        .map_err(|e| format!("cannot archive {}: {e}", src.display()))?;
    let file = w
        .into_inner()
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    file.sync_all()
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    (ctx.log)(&format!("wrote {filename}: {size} bytes"));
    Ok(())
}

/// Writes the reproducible archive of `root` (not including `root` itself) to `w`.
pub fn write_tar<W: Write>(root: &Path, w: W, epoch: u64) -> io::Result<W> {
    let mut b = tar::Builder::new(w);
    let mut links = HashMap::new();
    walk(&mut b, root, Path::new(""), epoch, &mut links)?;
    b.into_inner()
}

fn walk<W: Write>(
    b: &mut tar::Builder<W>,
    root: &Path,
    rel: &Path,
    epoch: u64,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    let mut names = fs::read_dir(root.join(rel))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<Vec<OsString>>>()?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let relp = rel.join(&name);
        let full = root.join(&relp);
        let md = fs::symlink_metadata(&full)?;
        append_entry(b, &full, &relp, &md, epoch, links)?;
        if md.is_dir() {
            walk(b, root, &relp, epoch, links)?;
        }
    }
    Ok(())
}

fn append_entry<W: Write>(
    b: &mut tar::Builder<W>,
    full: &Path,
    relp: &Path,
    md: &fs::Metadata,
    epoch: u64,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    let ft = md.file_type();
    if ft.is_socket() {
        return Ok(()); // tar cannot hold sockets; nothing in a tree should be one
    }
    let mut h = tar::Header::new_gnu();
    h.set_mode(md.mode() & 0o7777);
    h.set_uid(u64::from(md.uid()));
    h.set_gid(u64::from(md.gid()));
    h.set_mtime((md.mtime().max(0) as u64).min(epoch));
    h.set_size(0);
    let xattrs = read_xattrs(full)?;
    if !xattrs.is_empty() {
        append_pax(b, relp, &xattrs)?;
    }
    if ft.is_file() && md.nlink() > 1 {
        let key = (md.dev(), md.ino());
        if let Some(first) = links.get(&key) {
            h.set_entry_type(tar::EntryType::Link);
            return b.append_link(&mut h, relp, first);
        }
        links.insert(key, relp.to_path_buf());
    }
    if ft.is_dir() {
        h.set_entry_type(tar::EntryType::Directory);
        b.append_data(&mut h, relp, io::empty())
    } else if ft.is_file() {
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(md.len());
        b.append_data(&mut h, relp, File::open(full)?)
    } else if ft.is_symlink() {
        h.set_entry_type(tar::EntryType::Symlink);
        let target = fs::read_link(full)?;
        b.append_link(&mut h, relp, target)
    } else {
        h.set_entry_type(if ft.is_char_device() {
            tar::EntryType::Char
        } else if ft.is_block_device() {
            tar::EntryType::Block
        } else {
            tar::EntryType::Fifo
        });
        if ft.is_char_device() || ft.is_block_device() {
            h.set_device_major(rustix::fs::major(md.rdev()))?;
            h.set_device_minor(rustix::fs::minor(md.rdev()))?;
        }
        b.append_data(&mut h, relp, io::empty())
    }
}

/// The extended attributes of `path` (not following a symlink), sorted by name.
fn read_xattrs(path: &Path) -> io::Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let len = match rustix::fs::llistxattr_query(path) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    if len == 0 {
        return Ok(out);
    }
    let mut list = vec![0u8; len];
    let n = rustix::fs::llistxattr(path, &mut list[..])?;
    for name in list[..n].split(|&c| c == 0).filter(|n| !n.is_empty()) {
        let name_os = std::ffi::OsStr::from_bytes(name);
        let vlen = rustix::fs::lgetxattr_query(path, name_os)?;
        let mut value = vec![0u8; vlen];
        let m = rustix::fs::lgetxattr(path, name_os, &mut value[..])?;
        value.truncate(m);
        out.insert(name.to_vec(), value);
    }
    Ok(out)
}

/// A pax extended header (`x`) carrying `SCHILY.xattr.NAME=VALUE` records.
fn append_pax<W: Write>(
    b: &mut tar::Builder<W>,
    relp: &Path,
    xattrs: &BTreeMap<Vec<u8>, Vec<u8>>,
) -> io::Result<()> {
    let mut data = Vec::new();
    for (k, v) in xattrs {
        let body_len = b" SCHILY.xattr.".len() + k.len() + 1 + v.len() + 1;
        // The record length counts its own decimal digits.
        let mut len = body_len + 1;
        while len.to_string().len() + body_len != len {
            len = len.to_string().len() + body_len;
        }
        data.extend_from_slice(len.to_string().as_bytes());
        data.extend_from_slice(b" SCHILY.xattr.");
        data.extend_from_slice(k);
        data.push(b'=');
        data.extend_from_slice(v);
        data.push(b'\n');
    }
    let mut h = tar::Header::new_ustar();
    let base = relp
        .file_name()
        .map(|n| n.as_bytes().iter().take(80).copied().collect::<Vec<u8>>())
        .unwrap_or_default();
    let mut name = b"PaxHeaders/".to_vec();
    name.extend_from_slice(&base);
    h.as_old_mut().name[..name.len()].copy_from_slice(&name);
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(data.len() as u64);
    h.set_cksum();
    b.append(&h, &data[..])
}
