//! Small filesystem helpers: stat, flock, fsync, atomic writes, removal, disk usage.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{self as rfs, AtFlags, Dir, FileType, FlockOperation, Mode, OFlags, Timespec};
use rustix::io::Errno;

/// The parts of `struct stat` the store uses, in portable integer types.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileStat {
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: u64,
    pub blocks: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
}

impl FileStat {
    // The field types of `struct stat` differ between architectures.
    #[allow(clippy::useless_conversion)]
    pub fn from_raw(st: &rfs::Stat) -> Self {
        FileStat {
            dev: u64::from(st.st_dev),
            ino: u64::from(st.st_ino),
            nlink: u64::from(st.st_nlink),
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: u64::from(st.st_rdev),
            size: u64::try_from(st.st_size).unwrap_or(0),
            blocks: u64::try_from(st.st_blocks).unwrap_or(0),
            atime: Timespec {
                tv_sec: st.st_atime,
                tv_nsec: i64::try_from(st.st_atime_nsec).unwrap_or(0),
            },
            mtime: Timespec {
                tv_sec: st.st_mtime,
                tv_nsec: i64::try_from(st.st_mtime_nsec).unwrap_or(0),
            },
        }
    }

    pub fn file_type(&self) -> FileType {
        FileType::from_raw_mode(self.mode)
    }

    pub fn perm(&self) -> Mode {
        Mode::from_raw_mode(self.mode & 0o7777)
    }

    /// Bytes allocated on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.blocks * 512
    }

    pub fn mtime_system(&self) -> SystemTime {
        timespec_to_system(self.mtime)
    }
}

pub(crate) fn timespec_to_system(t: Timespec) -> SystemTime {
    if t.tv_sec >= 0 {
        UNIX_EPOCH + Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(t.tv_sec.unsigned_abs())
    }
}

pub(crate) fn system_to_timespec(t: SystemTime) -> Timespec {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

pub(crate) fn lstat(path: &Path) -> io::Result<FileStat> {
    Ok(FileStat::from_raw(&rfs::lstat(path)?))
}

pub(crate) fn fstat(fd: impl AsFd) -> io::Result<FileStat> {
    Ok(FileStat::from_raw(&rfs::fstat(fd)?))
}

pub(crate) fn statat(dir: BorrowedFd<'_>, name: &std::ffi::CStr) -> io::Result<FileStat> {
    Ok(FileStat::from_raw(&rfs::statat(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW,
    )?))
}

/// Set a file's mtime (and atime) to `t`. Used to record "last used".
pub(crate) fn set_times(fd: impl AsFd, t: SystemTime) -> io::Result<()> {
    let ts = system_to_timespec(t);
    rfs::futimens(
        fd,
        &rfs::Timestamps {
            last_access: ts,
            last_modification: ts,
        },
    )?;
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LockKind {
    Shared,
    Exclusive,
}

/// Take a flock, waiting for it. Retries on EINTR.
pub(crate) fn lock_wait(file: &File, kind: LockKind) -> io::Result<()> {
    let op = match kind {
        LockKind::Shared => FlockOperation::LockShared,
        LockKind::Exclusive => FlockOperation::LockExclusive,
    };
    loop {
        match rfs::flock(file, op) {
            Err(Errno::INTR) => continue,
            r => return r.map_err(Into::into),
        }
    }
}

/// Try to take a flock without waiting: `Ok(false)` if someone else holds a
/// conflicting one.
pub(crate) fn lock_try(file: &File, kind: LockKind) -> io::Result<bool> {
    let op = match kind {
        LockKind::Shared => FlockOperation::NonBlockingLockShared,
        LockKind::Exclusive => FlockOperation::NonBlockingLockExclusive,
    };
    loop {
        match rfs::flock(file, op) {
            Ok(()) => return Ok(true),
            Err(Errno::WOULDBLOCK) => return Ok(false),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether `path` (not followed if a symlink) is the inode `file` has open.
/// After locking a file found by name, this tells whether the name still refers to it
/// (someone may have unlinked or replaced it between our open and our lock).
pub(crate) fn same_file(file: &File, path: &Path) -> io::Result<bool> {
    let a = fstat(file)?;
    match lstat(path) {
        Ok(b) => Ok(a.dev == b.dev && a.ino == b.ino),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rfs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

pub(crate) fn fsync_dir(path: &Path) -> io::Result<()> {
    let fd = open_dir(path)?;
    rfs::fsync(&fd)?;
    Ok(())
}

/// Flush every dirty page of the filesystem holding `path`: one call instead of an
/// fsync per file of a tree.
pub(crate) fn syncfs(path: &Path) -> io::Result<()> {
    let fd = open_dir(path)?;
    rfs::syncfs(&fd)?;
    Ok(())
}

/// Write `data` to `dest` atomically: written to `tmp`, fsynced if `durable`, renamed.
pub(crate) fn write_atomic(tmp: &Path, dest: &Path, data: &[u8], durable: bool) -> io::Result<()> {
    let r = (|| {
        let mut f = File::create(tmp)?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        drop(f);
        std::fs::rename(tmp, dest)?;
        if durable && let Some(parent) = dest.parent() {
            fsync_dir(parent)?;
        }
        Ok(())
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    r
}

/// Entry names of a directory, without `.` and `..`.
pub(crate) fn read_names(dir: BorrowedFd<'_>) -> io::Result<Vec<CString>> {
    let mut d = Dir::read_from(dir)?;
    let mut names = Vec::new();
    while let Some(e) = d.read() {
        let e = e?;
        let n = e.file_name();
        let b = n.to_bytes();
        if b == b"." || b == b".." {
            continue;
        }
        names.push(n.to_owned());
    }
    Ok(names)
}

/// Remove a file or a directory tree. A missing path is not an error; directories
/// without write or search permission are fixed up first when not running as root.
pub(crate) fn remove_all(path: &Path) -> io::Result<()> {
    let st = match lstat(path) {
        Ok(st) => st,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if st.file_type() != FileType::Directory {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        };
    }
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            make_dirs_writable(path);
            match std::fs::remove_dir_all(path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                r => r,
            }
        }
        Err(e) => Err(e),
    }
}

fn make_dirs_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(st) = lstat(path) else { return };
    if st.file_type() != FileType::Directory {
        return;
    }
    let _ = std::fs::set_permissions(
        path,
        std::fs::Permissions::from_mode((st.mode & 0o7777) | 0o700),
    );
    if let Ok(rd) = std::fs::read_dir(path) {
        for e in rd.flatten() {
            make_dirs_writable(&e.path());
        }
    }
}

/// Bytes allocated by a tree (each inode counted once, directories included) and its
/// number of entries (the root excluded).
pub(crate) fn disk_usage(root: &Path) -> io::Result<(u64, u64)> {
    fn walk(
        dir: BorrowedFd<'_>,
        seen: &mut HashSet<(u64, u64)>,
        bytes: &mut u64,
        entries: &mut u64,
    ) -> io::Result<()> {
        for name in read_names(dir)? {
            let st = statat(dir, &name)?;
            *entries += 1;
            if st.nlink <= 1
                || st.file_type() == FileType::Directory
                || seen.insert((st.dev, st.ino))
            {
                *bytes += st.disk_bytes();
            }
            if st.file_type() == FileType::Directory {
                let sub = rfs::openat(
                    dir,
                    &name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                walk(sub.as_fd(), seen, bytes, entries)?;
            }
        }
        Ok(())
    }
    let fd = open_dir(root)?;
    let mut bytes = fstat(&fd)?.disk_bytes();
    let mut entries = 0;
    walk(fd.as_fd(), &mut HashSet::new(), &mut bytes, &mut entries)?;
    Ok((bytes, entries))
}
