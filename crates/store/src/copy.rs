//! Materialising a stored tree into a working directory.
//!
//! Every method preserves file types (regular, directory, symlink, character and block
//! devices, FIFOs, sockets), permission bits including setuid/setgid/sticky, owners,
//! all extended attributes (`user.*`, `security.capability`, ACLs, ...), atime and
//! mtime with nanoseconds (directories after their contents), hard links inside the
//! tree, and holes in sparse files.
//!
//! Order of operations per inode: create, write data, `chown` (which clears setuid
//! bits and `security.capability`), `chmod`, xattrs, times.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Gid, Mode, OFlags, SeekFrom, Uid, XattrFlags};
use rustix::io::Errno;
use tracing::debug;

use crate::error::{IoContext, Result, StoreError};
use crate::fsutil::{FileStat, fstat, open_dir, read_names, statat};

/// How file data is materialised by a restore.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RestoreMethod {
    /// Reflink where the filesystem can (btrfs, XFS, bcachefs, ...), otherwise
    /// [`RestoreMethod::CopyFileRange`]. The default.
    #[default]
    Auto,
    /// `FICLONE` every regular file; fails where the filesystem cannot.
    Reflink,
    /// In-kernel copy with `copy_file_range(2)`, skipping holes.
    CopyFileRange,
    /// Plain `read`/`write` through a buffer, skipping holes (baseline).
    ReadWrite,
    /// Hard-link every non-directory to the stored inode. Cheapest, but the restored
    /// files *are* the stored ones: any in-place write, `chmod`, `chown`, `touch` or
    /// xattr change through the restored path changes the stored tree. Only for
    /// consumers that never modify the files (read-only inputs).
    Hardlink,
}

impl fmt::Display for RestoreMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl RestoreMethod {
    /// A short name ("auto", "reflink", "copy_file_range", "read_write", "hardlink").
    pub fn name(self) -> &'static str {
        match self {
            RestoreMethod::Auto => "auto",
            RestoreMethod::Reflink => "reflink",
            RestoreMethod::CopyFileRange => "copy_file_range",
            RestoreMethod::ReadWrite => "read_write",
            RestoreMethod::Hardlink => "hardlink",
        }
    }
}

/// What a restore did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreStats {
    /// Directories created (the root excluded).
    pub dirs: u64,
    /// Regular files created (not counting extra hard links).
    pub files: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Device nodes, FIFOs and sockets created.
    pub specials: u64,
    /// Extra names linked to an inode already restored (or, with
    /// [`RestoreMethod::Hardlink`], to the stored inode).
    pub hardlinks: u64,
    /// Regular files whose data was shared with `FICLONE`.
    pub reflinked: u64,
    /// Bytes of file data copied (not reflinked, holes skipped).
    pub bytes_copied: u64,
}

/// Copy the tree at `src` to `dest`, preserving everything listed in the module docs.
/// `dest` must not exist or be an empty directory (its metadata is then set from
/// `src`'s root).
pub fn copy_tree(src: &Path, dest: &Path, method: RestoreMethod) -> Result<RestoreStats> {
    let src_fd = open_dir(src).ctx("open", src)?;
    match std::fs::create_dir(dest) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let empty = std::fs::read_dir(dest).ctx("read", dest)?.next().is_none();
            if !empty {
                return Err(StoreError::DestinationNotEmpty {
                    path: dest.to_path_buf(),
                });
            }
        }
        Err(e) => return Err(StoreError::io("create", dest, e)),
    }
    let dest_fd = open_dir(dest).ctx("open", dest)?;
    let mut c = Copier {
        method,
        reflink: match method {
            RestoreMethod::Auto | RestoreMethod::Reflink => Reflink::Try,
            _ => Reflink::No,
        },
        src_root: src.to_path_buf(),
        dst_root: dest.to_path_buf(),
        dst_root_fd: open_dir(dest).ctx("open", dest)?,
        links: HashMap::new(),
        rel: PathBuf::new(),
        stats: RestoreStats::default(),
        buf: Vec::new(),
    };
    c.copy_dir_contents(src_fd.as_fd(), dest_fd.as_fd())?;
    let st = fstat(&src_fd).ctx("stat", src)?;
    c.apply_fd_meta(src_fd.as_fd(), dest_fd.as_fd(), &st)?;
    debug!(src = %src.display(), dest = %dest.display(), %method, stats = ?c.stats, "restored tree");
    Ok(c.stats)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Reflink {
    Try,
    No,
}

struct Copier {
    method: RestoreMethod,
    reflink: Reflink,
    src_root: PathBuf,
    dst_root: PathBuf,
    dst_root_fd: OwnedFd,
    /// (dev, ino) of multiply-linked source files -> path of their first copy,
    /// relative to the destination root.
    links: HashMap<(u64, u64), CString>,
    /// Path of the entry being copied, relative to the roots.
    rel: PathBuf,
    stats: RestoreStats,
    buf: Vec<u8>,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Copier {
    fn src_path(&self) -> PathBuf {
        self.src_root.join(&self.rel)
    }

    fn dst_path(&self) -> PathBuf {
        self.dst_root.join(&self.rel)
    }

    fn err(&self, op: &'static str, e: impl Into<io::Error>) -> StoreError {
        StoreError::io(op, self.dst_path(), e.into())
    }

    fn src_err(&self, op: &'static str, e: impl Into<io::Error>) -> StoreError {
        StoreError::io(op, self.src_path(), e.into())
    }

    fn copy_dir_contents(&mut self, sd: BorrowedFd<'_>, dd: BorrowedFd<'_>) -> Result<()> {
        let names = read_names(sd).map_err(|e| self.src_err("read directory", e))?;
        for name in names {
            self.rel.push(OsStr::from_bytes(name.to_bytes()));
            let r = self.copy_entry(sd, dd, &name);
            self.rel.pop();
            r?;
        }
        Ok(())
    }

    fn copy_entry(&mut self, sd: BorrowedFd<'_>, dd: BorrowedFd<'_>, name: &CStr) -> Result<()> {
        let st = statat(sd, name).map_err(|e| self.src_err("stat", e))?;
        let ft = st.file_type();
        if ft == FileType::Directory {
            rfs::mkdirat(dd, name, Mode::from_raw_mode(0o700))
                .map_err(|e| self.err("create directory", e))?;
            let s = rfs::openat(sd, name, DIR_FLAGS, Mode::empty())
                .map_err(|e| self.src_err("open", e))?;
            let d =
                rfs::openat(dd, name, DIR_FLAGS, Mode::empty()).map_err(|e| self.err("open", e))?;
            self.copy_dir_contents(s.as_fd(), d.as_fd())?;
            self.apply_fd_meta(s.as_fd(), d.as_fd(), &st)?;
            self.stats.dirs += 1;
            return Ok(());
        }
        if self.method == RestoreMethod::Hardlink {
            rfs::linkat(sd, name, dd, name, AtFlags::empty())
                .map_err(|e| self.err("hard-link", e))?;
            self.stats.hardlinks += 1;
            return Ok(());
        }
        if st.nlink > 1 && ft != FileType::Directory {
            if let Some(first) = self.links.get(&(st.dev, st.ino)) {
                rfs::linkat(
                    &self.dst_root_fd,
                    first.as_c_str(),
                    dd,
                    name,
                    AtFlags::empty(),
                )
                .map_err(|e| self.err("hard-link", e))?;
                self.stats.hardlinks += 1;
                return Ok(());
            }
            let rel = CString::new(self.rel.as_os_str().as_bytes()).expect("no NUL in a path");
            self.links.insert((st.dev, st.ino), rel);
        }
        match ft {
            FileType::RegularFile => {
                let s = rfs::openat(
                    sd,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| self.src_err("open", e))?;
                let d = rfs::openat(
                    dd,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| self.err("create", e))?;
                self.copy_data(&s, &d, &st)?;
                self.apply_fd_meta(s.as_fd(), d.as_fd(), &st)?;
                self.stats.files += 1;
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(sd, name, Vec::new())
                    .map_err(|e| self.src_err("readlink", e))?;
                rfs::symlinkat(target.as_c_str(), dd, name)
                    .map_err(|e| self.err("create symlink", e))?;
                self.apply_path_meta(dd, name, &st, false)?;
                self.stats.symlinks += 1;
            }
            FileType::CharacterDevice
            | FileType::BlockDevice
            | FileType::Fifo
            | FileType::Socket => {
                rfs::mknodat(dd, name, ft, Mode::from_raw_mode(0o600), st.rdev)
                    .map_err(|e| self.err("create node", e))?;
                self.apply_path_meta(dd, name, &st, true)?;
                self.stats.specials += 1;
            }
            _ => {
                return Err(self.src_err(
                    "copy",
                    io::Error::new(io::ErrorKind::Unsupported, "unknown file type"),
                ));
            }
        }
        Ok(())
    }

    fn copy_data(&mut self, s: &OwnedFd, d: &OwnedFd, st: &FileStat) -> Result<()> {
        if self.reflink == Reflink::Try {
            match rfs::ioctl_ficlone(d, s) {
                Ok(()) => {
                    self.stats.reflinked += 1;
                    return Ok(());
                }
                Err(e) => {
                    if self.method == RestoreMethod::Reflink {
                        return Err(StoreError::Unsupported {
                            method: "reflink",
                            reason: if matches!(e, Errno::OPNOTSUPP | Errno::NOTTY | Errno::XDEV) {
                                "the filesystem cannot share extents (FICLONE); use \
                                 copy_file_range or auto"
                            } else {
                                "FICLONE failed"
                            },
                            path: self.dst_path(),
                        });
                    }
                    if matches!(
                        e,
                        Errno::OPNOTSUPP | Errno::NOTTY | Errno::XDEV | Errno::NOSYS
                    ) {
                        debug!(error = %e, "reflink unsupported here, copying data");
                        self.reflink = Reflink::No;
                    }
                }
            }
        }
        if st.size == 0 {
            return Ok(());
        }
        let sparse = st.blocks * 512 < st.size;
        if !sparse {
            self.copy_range(s, d, 0, st.size)?;
        } else {
            // Copy only the data segments; the holes stay holes.
            let mut off = 0;
            while off < st.size {
                let data = match rfs::seek(s, SeekFrom::Data(off)) {
                    Ok(p) => p,
                    Err(Errno::NXIO) => break,
                    Err(e) => return Err(self.src_err("seek", e)),
                };
                let hole =
                    rfs::seek(s, SeekFrom::Hole(data)).map_err(|e| self.src_err("seek", e))?;
                self.copy_range(s, d, data, hole.min(st.size))?;
                off = hole;
            }
            rfs::ftruncate(d, st.size).map_err(|e| self.err("truncate", e))?;
        }
        Ok(())
    }

    fn copy_range(&mut self, s: &OwnedFd, d: &OwnedFd, start: u64, end: u64) -> Result<()> {
        let mut off = start;
        if self.method != RestoreMethod::ReadWrite {
            while off < end {
                let (mut i, mut o) = (off, off);
                let want = usize::try_from(end - off)
                    .unwrap_or(usize::MAX)
                    .min(1 << 30);
                match rfs::copy_file_range(s, Some(&mut i), d, Some(&mut o), want) {
                    Ok(0) => break, // source shrank under us; the size check below catches it
                    Ok(n) => {
                        off += n as u64;
                        self.stats.bytes_copied += n as u64;
                    }
                    Err(Errno::INTR) => continue,
                    Err(Errno::XDEV | Errno::INVAL | Errno::OPNOTSUPP | Errno::NOSYS) => break,
                    Err(e) => return Err(self.err("copy_file_range", e)),
                }
            }
        }
        if off < end {
            // Fallback (or the ReadWrite method): pread/pwrite.
            if self.buf.is_empty() {
                self.buf = vec![0; 256 * 1024];
            }
            let sf = File::from(s.try_clone().map_err(|e| self.src_err("dup", e))?);
            let df = File::from(d.try_clone().map_err(|e| self.err("dup", e))?);
            use std::os::unix::fs::FileExt;
            while off < end {
                let want = ((end - off) as usize).min(self.buf.len());
                let n = sf
                    .read_at(&mut self.buf[..want], off)
                    .map_err(|e| self.src_err("read", e))?;
                if n == 0 {
                    break;
                }
                df.write_all_at(&self.buf[..n], off)
                    .map_err(|e| self.err("write", e))?;
                off += n as u64;
                self.stats.bytes_copied += n as u64;
            }
        }
        Ok(())
    }

    /// chown, chmod, xattrs, times on an open destination (regular file or directory).
    fn apply_fd_meta(&self, s: BorrowedFd<'_>, d: BorrowedFd<'_>, st: &FileStat) -> Result<()> {
        rfs::fchown(d, Some(Uid::from_raw(st.uid)), Some(Gid::from_raw(st.gid)))
            .map_err(|e| self.err("chown", e))?;
        rfs::fchmod(d, st.perm()).map_err(|e| self.err("chmod", e))?;
        for (name, value) in
            list_xattrs(XSrc::Fd(s)).map_err(|e| self.src_err("list xattrs of", e))?
        {
            rfs::fsetxattr(d, name.as_c_str(), &value, XattrFlags::empty())
                .map_err(|e| self.xattr_err(&name, e))?;
        }
        rfs::futimens(
            d,
            &rfs::Timestamps {
                last_access: st.atime,
                last_modification: st.mtime,
            },
        )
        .map_err(|e| self.err("set times of", e))?;
        Ok(())
    }

    /// The same for symlinks and special files, by name.
    fn apply_path_meta(
        &self,
        dd: BorrowedFd<'_>,
        name: &CStr,
        st: &FileStat,
        chmod: bool,
    ) -> Result<()> {
        rfs::chownat(
            dd,
            name,
            Some(Uid::from_raw(st.uid)),
            Some(Gid::from_raw(st.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.err("chown", e))?;
        if chmod {
            rfs::chmodat(dd, name, st.perm(), AtFlags::empty())
                .map_err(|e| self.err("chmod", e))?;
        }
        let src = self.src_path();
        let xattrs =
            list_xattrs(XSrc::Path(&src)).map_err(|e| self.src_err("list xattrs of", e))?;
        if !xattrs.is_empty() {
            let dst = self.dst_path();
            for (xname, value) in xattrs {
                rfs::lsetxattr(&dst, xname.as_c_str(), &value, XattrFlags::empty())
                    .map_err(|e| self.xattr_err(&xname, e))?;
            }
        }
        rfs::utimensat(
            dd,
            name,
            &rfs::Timestamps {
                last_access: st.atime,
                last_modification: st.mtime,
            },
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.err("set times of", e))?;
        Ok(())
    }

    fn xattr_err(&self, name: &CStr, e: Errno) -> StoreError {
        let e: io::Error = e.into();
        StoreError::io(
            "set extended attribute",
            self.dst_path(),
            io::Error::new(e.kind(), format!("{}: {e}", name.to_string_lossy())),
        )
    }
}

pub(crate) enum XSrc<'a> {
    Fd(BorrowedFd<'a>),
    Path(&'a Path),
}

/// All extended attributes of a file (not following symlinks). A filesystem without
/// xattr support has none.
pub(crate) fn list_xattrs(src: XSrc<'_>) -> io::Result<Vec<(CString, Vec<u8>)>> {
    let list = |buf: &mut [u8]| match src {
        XSrc::Fd(fd) => rfs::flistxattr(fd, buf),
        XSrc::Path(p) => rfs::llistxattr(p, buf),
    };
    let mut names = vec![0u8; 256];
    let len = loop {
        match list(&mut names) {
            Ok(n) => break n,
            Err(Errno::RANGE) => {
                let need = list(&mut [])?;
                names.resize(need.max(names.len() * 2), 0);
            }
            Err(Errno::OPNOTSUPP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    };
    if len == 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut value = vec![0u8; 256];
    for raw in names[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = CString::new(raw).expect("split at NUL");
        let get = |buf: &mut [u8]| match src {
            XSrc::Fd(fd) => rfs::fgetxattr(fd, name.as_c_str(), buf),
            XSrc::Path(p) => rfs::lgetxattr(p, name.as_c_str(), buf),
        };
        let n = loop {
            match get(&mut value) {
                Ok(n) => break Some(n),
                Err(Errno::RANGE) => {
                    let need = get(&mut [])?;
                    value.resize(need.max(value.len() * 2), 0);
                }
                Err(Errno::NODATA) => break None, // removed meanwhile
                Err(e) => return Err(e.into()),
            }
        };
        if let Some(n) = n {
            out.push((name, value[..n].to_vec()));
        }
    }
    Ok(out)
}
