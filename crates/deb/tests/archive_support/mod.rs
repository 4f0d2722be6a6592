//! Helpers for the `archive` tests: a raw tar writer that can write any name or link
//! target (the `tar` crate's safe setters refuse `..`), an `ar` writer, `.deb` assembly,
//! host sentinels, and a tree snapshot for comparing two unpacked directories.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Metadata of one raw tar entry.
#[derive(Clone, Debug)]
pub struct Attrs {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

impl Default for Attrs {
    fn default() -> Self {
        Attrs {
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
        }
    }
}

/// A tar stream written header by header.
#[derive(Default)]
pub struct RawTar {
    out: Vec<u8>,
}

impl RawTar {
    pub fn new() -> RawTar {
        RawTar::default()
    }

    fn pad(&mut self) {
        let rem = self.out.len() % 512;
        if rem != 0 {
            self.out.resize(self.out.len() + 512 - rem, 0);
        }
    }

    /// Writes one header (with GNU long-name/long-link records when needed) and its data.
    pub fn raw(&mut self, kind: u8, name: &[u8], link: &[u8], attrs: &Attrs, data: &[u8]) {
        if name.len() > 99 {
            let mut n = name.to_vec();
            n.push(0);
            self.raw(b'L', b"././@LongLink", b"", &Attrs::default(), &n);
        }
        if link.len() > 99 {
            let mut l = link.to_vec();
            l.push(0);
            self.raw(b'K', b"././@LongLink", b"", &Attrs::default(), &l);
        }
        let mut h = tar::Header::new_gnu();
        {
            let g = h.as_gnu_mut().unwrap();
            let n = &name[..name.len().min(99)];
            g.name[..n.len()].copy_from_slice(n);
            let l = &link[..link.len().min(99)];
            g.linkname[..l.len()].copy_from_slice(l);
        }
        h.set_mode(attrs.mode);
        h.set_uid(attrs.uid);
        h.set_gid(attrs.gid);
        h.set_mtime(attrs.mtime);
        h.set_size(data.len() as u64);
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_cksum();
        self.out.extend_from_slice(h.as_bytes());
        self.out.extend_from_slice(data);
        self.pad();
    }

    /// A device-node header.
    pub fn device(&mut self, kind: u8, name: &str, attrs: &Attrs, major: u32, minor: u32) {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_mode(attrs.mode);
        h.set_uid(attrs.uid);
        h.set_gid(attrs.gid);
        h.set_mtime(attrs.mtime);
        h.set_size(0);
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        self.out.extend_from_slice(h.as_bytes());
    }

    /// A PAX extended header applying to the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) {
        let mut body = Vec::new();
        for (k, v) in records {
            // "LEN key=value\n", where LEN counts itself.
            let rest = k.len() + v.len() + 3;
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            body.extend_from_slice(format!("{len} {k}=").as_bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        self.raw(b'x', b"././@PaxHeader", b"", &Attrs::default(), &body);
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        let a = Attrs {
            mode: 0o755,
            ..Attrs::default()
        };
        self.raw(b'5', name.as_bytes(), b"", &a, b"");
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.raw(b'0', name.as_bytes(), b"", &Attrs::default(), data);
        self
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let a = Attrs {
            mode: 0o777,
            ..Attrs::default()
        };
        self.raw(b'2', name.as_bytes(), target.as_bytes(), &a, b"");
        self
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(
            b'1',
            name.as_bytes(),
            target.as_bytes(),
            &Attrs::default(),
            b"",
        );
        self
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.out);
        out.resize(out.len() + 1024, 0);
        out
    }
}

/// An `ar` archive of `members`, as dpkg writes it.
pub fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        let header = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            name,
            0,
            0,
            0,
            "100644",
            data.len()
        );
        assert_eq!(header.len(), 60);
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 1).unwrap()
}

pub const CONTROL: &str = "Package: kiln-test\nVersion: 1.0-1\nArchitecture: all\n\
Maintainer: kiln <kiln@example.org>\nDescription: test package\n kiln test\n";

/// A gzip `control.tar.gz` with `./control` (and `./postinst`).
pub fn control_tar_gz() -> Vec<u8> {
    let mut t = RawTar::new();
    t.dir("./");
    t.file("./control", CONTROL.as_bytes());
    t.raw(
        b'0',
        b"./postinst",
        b"",
        &Attrs {
            mode: 0o755,
            ..Attrs::default()
        },
        b"#!/bin/sh\nexit 0\n",
    );
    gzip(&t.finish())
}

/// A `.deb` whose data member is `data_tar` compressed with xz.
pub fn deb_with_data(data_tar: &[u8]) -> Vec<u8> {
    ar(&[
        ("debian-binary", b"2.0\n"),
        ("control.tar.gz", &control_tar_gz()),
        ("data.tar.xz", &xz(data_tar)),
    ])
}

/// Writes `bytes` as a file in `dir` and returns its path.
pub fn write_deb(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    p
}

/// A file outside the unpack root whose content and mtime must never change, in a
/// directory that must gain no entries.
pub struct Sentinel {
    pub dir: PathBuf,
    pub file: PathBuf,
    content: Vec<u8>,
    mtime: (i64, i64),
    listing: Vec<PathBuf>,
}

fn list(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

impl Sentinel {
    pub fn new(dir: &Path) -> Sentinel {
        fs::create_dir_all(dir).unwrap();
        let file = dir.join("sentinel");
        let content = b"host data, do not touch\n".to_vec();
        fs::write(&file, &content).unwrap();
        // An old mtime, so that any write would visibly change it.
        let f = fs::File::options().write(true).open(&file).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
            .unwrap();
        let m = fs::metadata(&file).unwrap();
        Sentinel {
            dir: dir.to_owned(),
            file,
            content,
            mtime: (m.mtime(), m.mtime_nsec()),
            listing: list(dir),
        }
    }

    #[track_caller]
    pub fn assert_untouched(&self) {
        let m = fs::symlink_metadata(&self.file).unwrap();
        assert!(m.file_type().is_file(), "sentinel replaced");
        assert_eq!(
            fs::read(&self.file).unwrap(),
            self.content,
            "sentinel modified"
        );
        assert_eq!(
            (m.mtime(), m.mtime_nsec()),
            self.mtime,
            "sentinel mtime changed"
        );
        assert_eq!(m.nlink(), 1, "sentinel gained a hard link");
        assert_eq!(
            list(&self.dir),
            self.listing,
            "host directory gained entries"
        );
    }
}

/// One entry of a tree, as compared between two unpacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub rdev: u64,
    pub content: Option<Vec<u8>>,
    pub link: Option<PathBuf>,
    /// Index of the first path sharing this inode (hard links), by sorted path order.
    pub inode_group: Option<PathBuf>,
}

/// Every entry under `root` (including `.`), keyed by relative path.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), PathBuf> = BTreeMap::new();
    let mut stack = vec![PathBuf::from(".")];
    let mut paths = Vec::new();
    while let Some(rel) = stack.pop() {
        let abs = root.join(&rel);
        let m = fs::symlink_metadata(&abs).unwrap();
        if m.file_type().is_dir() {
            for e in fs::read_dir(&abs).unwrap() {
                let e = e.unwrap();
                stack.push(if rel.as_os_str() == "." {
                    PathBuf::from(e.file_name())
                } else {
                    rel.join(e.file_name())
                });
            }
        }
        paths.push(rel);
    }
    paths.sort();
    for rel in paths {
        let abs = root.join(&rel);
        let m = fs::symlink_metadata(&abs).unwrap();
        let ft = m.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_file() {
            "file"
        } else if ft.is_fifo() {
            "fifo"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else {
            "other"
        };
        let inode_group = if !ft.is_dir() && m.nlink() > 1 {
            Some(
                inodes
                    .entry((m.dev(), m.ino()))
                    .or_insert_with(|| rel.clone())
                    .clone(),
            )
        } else {
            None
        };
        let node = Node {
            kind,
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            size: if ft.is_dir() { 0 } else { m.size() },
            mtime: m.mtime(),
            rdev: m.rdev(),
            content: ft.is_file().then(|| fs::read(&abs).unwrap()),
            link: ft.is_symlink().then(|| fs::read_link(&abs).unwrap()),
            inode_group,
        };
        out.insert(rel, node);
    }
    out
}

/// Asserts two snapshots are identical, reporting every difference.
#[track_caller]
pub fn assert_same_tree(
    expected: &BTreeMap<PathBuf, Node>,
    actual: &BTreeMap<PathBuf, Node>,
    what: &str,
) {
    let mut diffs = Vec::new();
    for (p, e) in expected {
        match actual.get(p) {
            None => diffs.push(format!("missing {}", p.display())),
            Some(a) if a != e => {
                diffs.push(format!("{}: expected {e:?}\n     got {a:?}", p.display()))
            }
            _ => {}
        }
    }
    for p in actual.keys() {
        if !expected.contains_key(p) {
            diffs.push(format!("extra {}", p.display()));
        }
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} differences:\n{}",
        diffs.len(),
        diffs
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

pub fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// `dpkg-deb -x deb dir`.
pub fn dpkg_deb_extract(deb: &Path, dir: &Path) {
    let out = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dpkg-deb -x {}: {}",
        deb.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Removes a directory (made at a host path by a test) when dropped, even on panic.
pub struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A unique name for things placed at absolute host paths.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

pub fn os(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}
