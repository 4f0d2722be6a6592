//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use kiln_store::{Durability, Sha256Digest, Store, StoreOptions};
use rustix::fs::{self as rfs, AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};

pub fn is_root() -> bool {
    // /proc/self belongs to the process's effective user.
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

pub fn open_nosync(root: &Path) -> Store {
    Store::open_with(
        root,
        StoreOptions {
            durability: Durability::NoSync,
            ..Default::default()
        },
    )
    .unwrap()
}

/// Everything the store promises to preserve about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub content: Option<Sha256Digest>,
    pub target: Option<PathBuf>,
    pub rdev: u64,
    pub mtime: (i64, i64),
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// Index of the first path (in sorted order) sharing this inode, if any.
    pub link_group: Option<String>,
}

pub fn xattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut names = vec![0u8; 4096];
    let n = match rfs::llistxattr(path, &mut names[..]) {
        Ok(n) => n,
        Err(_) => return BTreeMap::new(),
    };
    let mut out = BTreeMap::new();
    for raw in names[..n].split(|&b| b == 0).filter(|b| !b.is_empty()) {
        let name = String::from_utf8(raw.to_vec()).unwrap();
        let mut v = vec![0u8; 4096];
        let len = rfs::lgetxattr(path, name.as_str(), &mut v[..]).unwrap();
        v.truncate(len);
        out.insert(name, v);
    }
    out
}

/// A full description of a tree, keyed by path relative to `root` ("" = the root).
pub fn listing(root: &Path) -> BTreeMap<String, Entry> {
    let mut paths = Vec::new();
    fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, PathBuf)>) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        for n in names {
            let p = dir.join(&n);
            let r = if rel.is_empty() {
                n.clone()
            } else {
                format!("{rel}/{n}")
            };
            out.push((r.clone(), p.clone()));
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                walk(&p, &r, out);
            }
        }
    }
    paths.push((String::new(), root.to_path_buf()));
    walk(root, "", &mut paths);
    let mut inodes: HashMap<u64, String> = HashMap::new();
    let mut out = BTreeMap::new();
    for (rel, p) in paths {
        let md = fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_file() {
            "file"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else if ft.is_fifo() {
            "fifo"
        } else {
            "socket"
        };
        let link_group = if !ft.is_dir() && md.nlink() > 1 {
            Some(
                inodes
                    .entry(md.ino())
                    .or_insert_with(|| rel.clone())
                    .clone(),
            )
        } else {
            None
        };
        out.insert(
            rel,
            Entry {
                kind,
                mode: md.mode(),
                uid: md.uid(),
                gid: md.gid(),
                size: if ft.is_dir() { 0 } else { md.size() },
                content: ft
                    .is_file()
                    .then(|| Sha256Digest::of(&fs::read(&p).unwrap())),
                target: ft.is_symlink().then(|| fs::read_link(&p).unwrap()),
                rdev: md.rdev(),
                mtime: (md.mtime(), md.mtime_nsec()),
                xattrs: xattrs(&p),
                link_group,
            },
        );
    }
    out
}

pub fn set_mtime(path: &Path, sec: i64, nsec: i64) {
    let t = Timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    };
    rfs::utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// Whether the filesystem at `dir` takes `user.*` xattrs.
pub fn user_xattrs_supported(dir: &Path) -> bool {
    let p = dir.join(".xattr-probe");
    fs::write(&p, b"").unwrap();
    let ok = rfs::setxattr(&p, "user.probe", b"1", XattrFlags::empty()).is_ok();
    fs::remove_file(&p).unwrap();
    ok
}

/// A tree with every kind of entry and metadata the store must preserve. Ownership,
/// device nodes and `security.capability` need root and are skipped otherwise.
pub fn make_rich_tree(root: &Path) {
    let root_ = is_root();
    let xa = user_xattrs_supported(root);
    fs::create_dir_all(root.join("a/b")).unwrap();
    fs::create_dir(root.join("empty dir")).unwrap();
    fs::write(root.join("a/f1"), b"hello world\n").unwrap();
    fs::write(root.join("a/empty"), b"").unwrap();
    fs::write(root.join("a/b/big"), vec![7u8; 300_000]).unwrap();
    fs::write(root.join("a/suid"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("a/suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::write(root.join("a/none"), b"secret").unwrap();
    // Unreadable except by root (restoring it as non-root would fail: the store's
    // users run as root, or as root in a user namespace).
    let none_mode = if root_ { 0o000 } else { 0o400 };
    fs::set_permissions(root.join("a/none"), fs::Permissions::from_mode(none_mode)).unwrap();
    fs::write(root.join("ünïcode näme"), b"x").unwrap();
    // Hard links inside the tree, across directories.
    fs::hard_link(root.join("a/f1"), root.join("a/b/f1-link")).unwrap();
    fs::hard_link(root.join("a/f1"), root.join("f1-link2")).unwrap();
    // Symlinks: relative, absolute and dangling, to a directory.
    symlink("f1", root.join("a/link")).unwrap();
    symlink("/nonexistent/target", root.join("dangling")).unwrap();
    symlink("a/b", root.join("dirlink")).unwrap();
    // A sparse file: 8 MiB with 4 KiB of data in the middle.
    {
        let f = fs::File::create(root.join("sparse")).unwrap();
        f.set_len(8 << 20).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(&[1u8; 4096], 4 << 20).unwrap();
    }
    rfs::mknodat(
        CWD,
        root.join("fifo").as_path(),
        FileType::Fifo,
        Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    if xa {
        rfs::setxattr(
            root.join("a/f1").as_path(),
            "user.kiln.test",
            b"value\0with nul",
            XattrFlags::empty(),
        )
        .unwrap();
        rfs::setxattr(
            root.join("a").as_path(),
            "user.dir",
            b"d",
            XattrFlags::empty(),
        )
        .unwrap();
    }
    if root_ {
        fs::create_dir(root.join("dev")).unwrap();
        rfs::mknodat(
            CWD,
            root.join("dev/null").as_path(),
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            rfs::makedev(1, 3),
        )
        .unwrap();
        rfs::mknodat(
            CWD,
            root.join("dev/loop0").as_path(),
            FileType::BlockDevice,
            Mode::from_raw_mode(0o660),
            rfs::makedev(7, 0),
        )
        .unwrap();
        rfs::chownat(
            CWD,
            root.join("dev/loop0").as_path(),
            Some(rfs::Uid::from_raw(0)),
            Some(rfs::Gid::from_raw(6)),
            AtFlags::empty(),
        )
        .unwrap();
        // Owners on a file, a directory, a symlink.
        for (p, u, g) in [("a/f1", 1234, 5678), ("a/b", 42, 43), ("a/link", 7, 8)] {
            rfs::chownat(
                CWD,
                root.join(p).as_path(),
                Some(rfs::Uid::from_raw(u)),
                Some(rfs::Gid::from_raw(g)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .unwrap();
        }
        // A file capability (cap_net_raw, effective), as setcap writes it: VFS v2.
        fs::write(root.join("a/ping"), b"\x7fELF").unwrap();
        fs::set_permissions(root.join("a/ping"), fs::Permissions::from_mode(0o755)).unwrap();
        let mut cap = Vec::new();
        cap.extend_from_slice(&(0x0200_0000u32 | 1).to_le_bytes());
        cap.extend_from_slice(&(1u32 << 13).to_le_bytes());
        cap.extend_from_slice(&0u32.to_le_bytes());
        cap.extend_from_slice(&0u32.to_le_bytes());
        cap.extend_from_slice(&0u32.to_le_bytes());
        rfs::setxattr(
            root.join("a/ping").as_path(),
            "security.capability",
            &cap,
            XattrFlags::empty(),
        )
        .unwrap();
    }
    // Special directory modes, then mtimes (directories last, deepest first).
    fs::set_permissions(root.join("a/b"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::set_permissions(root.join("a"), fs::Permissions::from_mode(0o750)).unwrap();
    let l = listing(root);
    let mut files: Vec<_> = l.iter().filter(|(_, e)| e.kind != "dir").collect();
    files.sort_by_key(|(p, _)| p.to_string());
    for (i, (p, _)) in files.iter().enumerate() {
        set_mtime(&root.join(p), 1_600_000_000 + i as i64, 123_456_789);
    }
    let mut dirs: Vec<_> = l.keys().filter(|p| l[*p].kind == "dir").cloned().collect();
    dirs.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count() + usize::from(!p.is_empty())));
    for (i, p) in dirs.iter().enumerate() {
        set_mtime(&root.join(p), 1_500_000_000 + i as i64, 987_654_321);
    }
}

/// Deterministic pseudo-random bytes.
pub fn det_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

pub fn seed_of(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The content of tree `id`: a deterministic function of the id, with files large
/// enough that a kill often lands in the middle of writing them.
pub fn write_tree_for(dir: &Path, id: &str) {
    let seed = seed_of(id);
    let nfiles = 3 + (seed % 6) as usize;
    fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    for i in 0..nfiles {
        let len = ((seed >> (i * 3)) % 200_000) as usize + 1;
        let p = if i % 2 == 0 {
            dir.join(format!("file{i}"))
        } else {
            dir.join(format!("sub/deeper/file{i}"))
        };
        fs::write(&p, det_bytes(seed + i as u64, len)).unwrap();
    }
    fs::write(dir.join("id"), id).unwrap();
    symlink("file0", dir.join("link")).unwrap();
    fs::hard_link(dir.join("file0"), dir.join("sub/hard")).unwrap();
}

type Stripped = BTreeMap<
    String,
    (
        String,
        Option<Sha256Digest>,
        Option<PathBuf>,
        u64,
        Option<String>,
    ),
>;

fn strip(l: BTreeMap<String, Entry>) -> Stripped {
    l.into_iter()
        .filter(|(p, _)| !p.is_empty())
        .map(|(p, e)| {
            (
                p,
                (
                    e.kind.to_string(),
                    e.content,
                    e.target,
                    e.size,
                    e.link_group,
                ),
            )
        })
        .collect()
}

/// Check a committed tree against [`write_tree_for`] (contents, links, symlinks).
pub fn check_tree_for(dir: &Path, id: &str) -> Result<(), String> {
    static EXPECTED: std::sync::Mutex<BTreeMap<String, Stripped>> =
        std::sync::Mutex::new(BTreeMap::new());
    let want = EXPECTED
        .lock()
        .unwrap()
        .entry(id.to_string())
        .or_insert_with(|| {
            let tmp = tempfile::tempdir().unwrap();
            let expect = tmp.path().join("t");
            fs::create_dir(&expect).unwrap();
            write_tree_for(&expect, id);
            strip(listing(&expect))
        })
        .clone();
    let got = strip(listing(dir));
    if got == want {
        Ok(())
    } else {
        Err(format!("tree {id} differs:\n got {got:?}\nwant {want:?}"))
    }
}
