//! The tree of a customization stage, handled safely: shared by `groups`, `users`,
//! `files`, `timezone`, ... (not a stage itself).
//!
//! - **Paths resolve inside the tree.** Every path is absolute *in the tree*. Its
//!   directories are walked one component at a time from a descriptor of the tree's root
//!   (`openat(O_PATH | O_NOFOLLOW)`; a symlink is read and its target spliced into the rest
//!   of the path): an absolute target starts again at the tree's root, as in a chroot, so
//!   `/var/run -> /run` or a hostile `/etc/x -> /etc` mean the tree's directories, never
//!   the host's. A symlink whose `..` climbs above the root is refused: on the booted
//!   system it would quietly mean `/`, in a build it means the tree or the path is not what
//!   it seems. The last component is never followed. Missing parents, when asked for, are
//!   created like `mkdir -p` does (never what a dangling symlink points to). Reads resolve
//!   the whole path with `openat2(RESOLVE_IN_ROOT)`.
//! - **Files are replaced, never written through.** A stage's tree may share inodes with
//!   a stored tree (hard links): new content goes to a new file beside the old one, gets
//!   its owner and mode, and is renamed over it. [`Tree::unshare`] gives a file that a
//!   sandboxed tool is about to rewrite in place an inode of its own.
//! - **Owners by name come from the tree's** `/etc/passwd` and `/etc/group`
//!   ([`Accounts`]), never the host's.
//! - Sandboxed commands run with the tree as `/` ([`chroot_sandbox`], [`run`]), no network,
//!   `SOURCE_DATE_EPOCH` set, every output line in the stage log.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use kiln_sandbox::{Output, Sandbox, Stream};
use rustix::fs::{self as rfs, AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Uid};
use rustix::io::Errno;
use serde::Deserialize;

use super::StageContext;

/// Symlinks followed while resolving one path (the kernel's `MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// An open stage tree.
pub struct Tree {
    root: OwnedFd,
    path: PathBuf,
}

/// Ownership and permissions of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Meta {
    /// `mode`, owned by root.
    pub fn root(mode: u32) -> Meta {
        Meta {
            mode,
            uid: 0,
            gid: 0,
        }
    }
}

/// Splits an absolute in-tree path into its components; `.`, `..`, empty components and
/// NUL bytes are refused.
pub fn components(path: &str) -> Result<Vec<&str>, String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("path {path:?} is not absolute"));
    };
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let comps: Vec<&str> = rest.split('/').collect();
    if comps
        .iter()
        .any(|c| c.is_empty() || *c == "." || *c == ".." || c.contains('\0'))
    {
        return Err(format!(
            "path {path:?} is not canonical (no `.`, `..`, `//`, trailing `/` or NUL allowed)"
        ));
    }
    Ok(comps)
}

fn errno(what: &str, path: &str, e: Errno) -> String {
    format!("{what} {path}: {}", std::io::Error::from(e))
}

impl Tree {
    /// Opens the tree at `path` (a directory on the host).
    pub fn open(path: &Path) -> Result<Tree, String> {
        let root = rfs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("cannot open the tree {}: {e}", path.display()))?;
        Ok(Tree {
            root,
            path: path.to_path_buf(),
        })
    }

    /// The tree's host path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens directory `comps` (in-tree, symlinks followed inside the tree) as an `O_PATH`
    /// descriptor. With `create`, missing directories are made (root, 0755). `shown` is
    /// the path named in errors.
    fn open_dir(&self, comps: &[&str], create: bool, shown: &str) -> Result<OwnedFd, String> {
        // The resolved directories below the root, with their names.
        let mut stack: Vec<(OwnedFd, String)> = Vec::new();
        // Components still to walk, and whether each comes from a symlink's target.
        let mut todo: Vec<(Vec<u8>, bool)> = comps
            .iter()
            .rev()
            .map(|c| (c.as_bytes().to_vec(), false))
            .collect();
        let mut links = 0;
        let here = |stack: &[(OwnedFd, String)]| -> String {
            let mut s = String::new();
            for (_, n) in stack {
                s.push('/');
                s.push_str(n);
            }
            if s.is_empty() { "/".into() } else { s }
        };
        while let Some((c, from_link)) = todo.pop() {
            match c.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    if stack.pop().is_none() {
                        return Err(format!(
                            "{shown}: a symlink on the way leads above the root of the tree; \
                             refusing to follow it (paths must stay inside the image)"
                        ));
                    }
                    continue;
                }
                _ => {}
            }
            let name = String::from_utf8_lossy(&c).into_owned();
            let cur = stack.last().map_or(self.root.as_fd(), |(fd, _)| fd.as_fd());
            let at = format!("{}/{name}", here(&stack).trim_end_matches('/'));
            match rfs::openat(
                cur,
                c.as_slice(),
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => {
                    let st = rfs::fstat(&fd).map_err(|e| errno("cannot inspect", &at, e))?;
                    match FileType::from_raw_mode(st.st_mode) {
                        FileType::Directory => stack.push((fd, name)),
                        FileType::Symlink => {
                            links += 1;
                            if links > MAX_SYMLINKS {
                                return Err(format!("{shown}: too many levels of symlinks"));
                            }
                            let target = rfs::readlinkat(cur, c.as_slice(), Vec::new())
                                .map_err(|e| errno("cannot read the symlink", &at, e))?;
                            let target = target.as_bytes();
                            if target.starts_with(b"/") {
                                stack.clear();
                            }
                            for part in target.split(|&b| b == b'/').rev() {
                                todo.push((part.to_vec(), true));
                            }
                        }
                        _ => {
                            return Err(format!("{shown}: {at} exists and is not a directory"));
                        }
                    }
                }
                // Like `mkdir -p`: never create what a dangling symlink points to.
                Err(Errno::NOENT) if create && !from_link => {
                    match rfs::mkdirat(cur, c.as_slice(), Mode::from(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(errno("cannot create the directory", &at, e)),
                    }
                    let fd = rfs::openat(
                        cur,
                        c.as_slice(),
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| errno("cannot open the new directory", &at, e))?;
                    // Not the umask's choice.
                    rfs::fchmod(&fd, Mode::from(0o755))
                        .map_err(|e| errno("cannot chmod", &at, e))?;
                    stack.push((fd, name));
                }
                Err(Errno::NOENT) => {
                    return Err(format!(
                        "{shown}: directory {at} does not exist in the image"
                    ));
                }
                Err(e) => return Err(errno("cannot open", &at, e)),
            }
        }
        match stack.pop() {
            Some((fd, _)) => Ok(fd),
            None => rustix::io::fcntl_dupfd_cloexec(&self.root, 0)
                .map_err(|e| format!("cannot duplicate the tree descriptor: {e}")),
        }
    }

    /// The entry `path` (absolute in the tree): its parent directory resolved inside the
    /// tree (created, root 0755, when `create_parents`), its last component not followed.
    pub fn entry(&self, path: &str, create_parents: bool) -> Result<Entry, String> {
        let comps = components(path)?;
        let Some((name, parents)) = comps.split_last() else {
            return Err(format!("path {path:?} names the root directory"));
        };
        let dir = self.open_dir(parents, create_parents, path)?;
        Ok(Entry {
            dir,
            name: (*name).to_owned(),
            path: path.to_owned(),
        })
    }

    /// Reads `path`, every symlink (the last one too) resolved inside the tree; `None`
    /// when it does not exist. A directory is an error.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        components(path)?;
        let fd = match rfs::openat2(
            &self.root,
            path.trim_start_matches('/'),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(None),
            Err(e) => return Err(errno("cannot open", path, e)),
        };
        let mut f = std::fs::File::from(fd);
        let meta = f
            .metadata()
            .map_err(|e| format!("cannot inspect {path}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("{path} is not a regular file"));
        }
        let mut data = Vec::new();
        f.read_to_end(&mut data)
            .map_err(|e| format!("cannot read {path}: {e}"))?;
        Ok(Some(data))
    }

    /// [`read`](Self::read) as UTF-8 text (invalid bytes replaced).
    pub fn read_string(&self, path: &str) -> Result<Option<String>, String> {
        Ok(self
            .read(path)?
            .map(|d| String::from_utf8_lossy(&d).into_owned()))
    }

    /// What `path` resolves to inside the tree (every symlink followed), `None` when
    /// nothing is there.
    pub fn resolve_type(&self, path: &str) -> Result<Option<FileType>, String> {
        components(path)?;
        match rfs::openat2(
            &self.root,
            path.trim_start_matches('/'),
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(fd) => {
                let st = rfs::fstat(&fd).map_err(|e| errno("cannot inspect", path, e))?;
                Ok(Some(FileType::from_raw_mode(st.st_mode)))
            }
            Err(Errno::NOENT) | Err(Errno::NOTDIR) | Err(Errno::LOOP) => Ok(None),
            Err(e) => Err(errno("cannot open", path, e)),
        }
    }

    /// The names in directory `dir` (resolved inside the tree), sorted; `None` when there
    /// is no such directory.
    pub fn list(&self, dir: &str) -> Result<Option<Vec<String>>, String> {
        if self.resolve_type(dir)? != Some(FileType::Directory) {
            return Ok(None);
        }
        let comps = components(dir)?;
        let fd = self.open_dir(&comps, false, dir)?;
        let fd = rfs::openat(
            &fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| errno("cannot open the directory", dir, e))?;
        let d = rfs::Dir::read_from(&fd).map_err(|e| errno("cannot read the directory", dir, e))?;
        let mut names = Vec::new();
        for e in d {
            let e = e.map_err(|e| errno("cannot read the directory", dir, e))?;
            let n = e.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(String::from_utf8_lossy(n).into_owned());
            }
        }
        names.sort();
        Ok(Some(names))
    }

    /// Whether `path` resolves to an executable regular file.
    pub fn is_executable(&self, path: &str) -> bool {
        components(path).is_ok()
            && rfs::openat2(
                &self.root,
                path.trim_start_matches('/'),
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            )
            .ok()
            .and_then(|fd| rfs::fstat(&fd).ok())
            .is_some_and(|st| {
                FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
                    && st.st_mode & 0o111 != 0
            })
    }

    /// Replaces `path` with a regular file holding `data` (missing parents are created,
    /// root 0755).
    pub fn write(&self, path: &str, data: &[u8], meta: Meta) -> Result<(), String> {
        self.entry(path, true)?.write(data, meta)
    }

    /// Gives `path` (not followed) an inode of its own when it is a regular file with
    /// other hard links, keeping content, owner, mode and times; for files that a
    /// sandboxed tool is about to rewrite in place.
    pub fn unshare(&self, path: &str) -> Result<(), String> {
        let e = match self.entry(path, false) {
            Ok(e) => e,
            Err(_) => return Ok(()),
        };
        let Some(st) = e.stat()? else { return Ok(()) };
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile || st.st_nlink < 2 {
            return Ok(());
        }
        let fd = rfs::openat(
            &e.dir,
            e.name.as_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|err| errno("cannot open", path, err))?;
        let mut data = Vec::new();
        std::fs::File::from(fd)
            .read_to_end(&mut data)
            .map_err(|err| format!("cannot read {path}: {err}"))?;
        let meta = Meta {
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
        };
        let times = rfs::Timestamps {
            last_access: rfs::Timespec {
                tv_sec: st.st_atime as _,
                tv_nsec: st.st_atime_nsec as _,
            },
            last_modification: rfs::Timespec {
                tv_sec: st.st_mtime as _,
                tv_nsec: st.st_mtime_nsec as _,
            },
        };
        e.write_with(&data, meta, Some(&times))
    }

    /// Removes `path` (not followed) when it is there and not a directory.
    pub fn remove(&self, path: &str) -> Result<(), String> {
        match self.entry(path, false) {
            Ok(e) => e.remove(),
            Err(_) => Ok(()),
        }
    }

    /// The tree's `/etc/passwd` and `/etc/group`.
    pub fn accounts(&self) -> Result<Accounts, String> {
        Accounts::parse(
            &self.read_string("/etc/passwd")?.unwrap_or_default(),
            &self.read_string("/etc/group")?.unwrap_or_default(),
        )
    }
}

/// A path in the tree: its resolved parent directory and its (unfollowed) name.
pub struct Entry {
    dir: OwnedFd,
    name: String,
    path: String,
}

impl Entry {
    /// The path as given.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn dirfd(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// `lstat` of the entry, `None` when nothing is there.
    pub fn stat(&self) -> Result<Option<rfs::Stat>, String> {
        match rfs::statat(self.dirfd(), self.name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(errno("cannot inspect", &self.path, e)),
        }
    }

    /// The type of what is there (not followed).
    pub fn file_type(&self) -> Result<Option<FileType>, String> {
        Ok(self.stat()?.map(|st| FileType::from_raw_mode(st.st_mode)))
    }

    fn temp_name(&self) -> String {
        format!(".{}.kiln-new", self.name)
    }

    fn refuse_dir(&self) -> Result<(), String> {
        if self.file_type()? == Some(FileType::Directory) {
            return Err(format!("{} exists and is a directory", self.path));
        }
        Ok(())
    }

    /// Replaces whatever is there (not a directory) with a regular file.
    pub fn write(&self, data: &[u8], meta: Meta) -> Result<(), String> {
        self.write_with(data, meta, None)
    }

    fn write_with(
        &self,
        data: &[u8],
        meta: Meta,
        times: Option<&rfs::Timestamps>,
    ) -> Result<(), String> {
        self.refuse_dir()?;
        let tmp = self.temp_name();
        let _ = rfs::unlinkat(self.dirfd(), tmp.as_str(), AtFlags::empty());
        let fd = rfs::openat(
            self.dirfd(),
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from(0o600),
        )
        .map_err(|e| errno("cannot create a new file for", &self.path, e))?;
        let result = (|| -> Result<(), String> {
            let mut f = std::fs::File::from(fd);
            f.write_all(data)
                .map_err(|e| format!("cannot write {}: {e}", self.path))?;
            // chown first: it clears setuid/setgid bits.
            rfs::fchown(
                &f,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
            )
            .map_err(|e| errno("cannot chown", &self.path, e))?;
            rfs::fchmod(&f, Mode::from(meta.mode & 0o7777))
                .map_err(|e| errno("cannot chmod", &self.path, e))?;
            if let Some(t) = times {
                rfs::futimens(&f, t)
                    .map_err(|e| errno("cannot set the times of", &self.path, e))?;
            }
            rfs::renameat(self.dirfd(), tmp.as_str(), self.dirfd(), self.name.as_str())
                .map_err(|e| errno("cannot rename the new file over", &self.path, e))
        })();
        if result.is_err() {
            let _ = rfs::unlinkat(self.dirfd(), tmp.as_str(), AtFlags::empty());
        }
        result
    }

    /// Replaces whatever is there (not a directory) with a symlink to `target`.
    pub fn symlink(&self, target: &str) -> Result<(), String> {
        self.refuse_dir()?;
        let tmp = self.temp_name();
        let _ = rfs::unlinkat(self.dirfd(), tmp.as_str(), AtFlags::empty());
        rfs::symlinkat(target, self.dirfd(), tmp.as_str())
            .map_err(|e| errno("cannot create a symlink for", &self.path, e))?;
        rfs::renameat(self.dirfd(), tmp.as_str(), self.dirfd(), self.name.as_str()).map_err(|e| {
            let _ = rfs::unlinkat(self.dirfd(), tmp.as_str(), AtFlags::empty());
            errno("cannot rename the new symlink over", &self.path, e)
        })
    }

    /// Creates the directory (it must not exist) with `meta`.
    pub fn mkdir(&self, meta: Meta) -> Result<(), String> {
        rfs::mkdirat(self.dirfd(), self.name.as_str(), Mode::from(0o700))
            .map_err(|e| errno("cannot create the directory", &self.path, e))?;
        self.set_dir_meta(Some(meta.mode), Some(meta.uid), Some(meta.gid))
    }

    /// Changes the owner and mode of an existing directory (never through a symlink).
    pub fn set_dir_meta(
        &self,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<(), String> {
        let fd = rfs::openat(
            self.dirfd(),
            self.name.as_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| errno("cannot open the directory", &self.path, e))?;
        if uid.is_some() || gid.is_some() {
            rfs::fchown(&fd, uid.map(Uid::from_raw), gid.map(Gid::from_raw))
                .map_err(|e| errno("cannot chown", &self.path, e))?;
        }
        if let Some(m) = mode {
            rfs::fchmod(&fd, Mode::from(m & 0o7777))
                .map_err(|e| errno("cannot chmod", &self.path, e))?;
        }
        Ok(())
    }

    /// Removes what is there unless it is a directory; nothing there is fine.
    pub fn remove(&self) -> Result<(), String> {
        match self.file_type()? {
            None => Ok(()),
            Some(FileType::Directory) => Err(format!("{} is a directory", self.path)),
            Some(_) => rfs::unlinkat(self.dirfd(), self.name.as_str(), AtFlags::empty())
                .map_err(|e| errno("cannot remove", &self.path, e)),
        }
    }
}

/// A line of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

/// A line of `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// The accounts of a tree.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    pub users: Vec<PasswdEntry>,
    pub groups: Vec<GroupEntry>,
}

impl Accounts {
    /// Parses `passwd` and `group` text (malformed lines are errors: a tree whose
    /// account files are damaged must not get owners guessed).
    pub fn parse(passwd: &str, group: &str) -> Result<Accounts, String> {
        let mut acc = Accounts::default();
        for (i, line) in passwd.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let f: Vec<&str> = line.split(':').collect();
            let bad = || format!("/etc/passwd line {}: malformed entry {line:?}", i + 1);
            if f.len() != 7 {
                return Err(bad());
            }
            acc.users.push(PasswdEntry {
                name: f[0].to_owned(),
                uid: f[2].parse().map_err(|_| bad())?,
                gid: f[3].parse().map_err(|_| bad())?,
                home: f[5].to_owned(),
                shell: f[6].to_owned(),
            });
        }
        for (i, line) in group.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let f: Vec<&str> = line.split(':').collect();
            let bad = || format!("/etc/group line {}: malformed entry {line:?}", i + 1);
            if f.len() != 4 {
                return Err(bad());
            }
            acc.groups.push(GroupEntry {
                name: f[0].to_owned(),
                gid: f[2].parse().map_err(|_| bad())?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect(),
            });
        }
        Ok(acc)
    }

    pub fn user(&self, name: &str) -> Option<&PasswdEntry> {
        self.users.iter().find(|u| u.name == name)
    }

    pub fn group(&self, name: &str) -> Option<&GroupEntry> {
        self.groups.iter().find(|g| g.name == name)
    }

    pub fn group_by_gid(&self, gid: u32) -> Option<&GroupEntry> {
        self.groups.iter().find(|g| g.gid == gid)
    }

    /// The uid of `owner` (a numeric id is taken as it is).
    pub fn uid(&self, owner: &OwnerSpec) -> Result<u32, String> {
        match owner {
            OwnerSpec::Id(id) => Ok(*id),
            OwnerSpec::Name(n) => self
                .user(n)
                .map(|u| u.uid)
                .ok_or_else(|| format!("user {n:?} does not exist in the image's /etc/passwd")),
        }
    }

    /// The gid of `owner` (a numeric id is taken as it is).
    pub fn gid(&self, owner: &OwnerSpec) -> Result<u32, String> {
        match owner {
            OwnerSpec::Id(id) => Ok(*id),
            OwnerSpec::Name(n) => self
                .group(n)
                .map(|g| g.gid)
                .ok_or_else(|| format!("group {n:?} does not exist in the image's /etc/group")),
        }
    }
}

/// An owner in stage options: a name (looked up in the tree) or a numeric id.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OwnerSpec {
    Id(u32),
    Name(String),
}

/// Parses an octal mode string (`"0755"`, `"644"`, `"1777"`).
pub fn parse_mode(s: &str) -> Result<u32, String> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!("mode {s:?} is not an octal mode such as \"0644\""));
    }
    let m = u32::from_str_radix(s, 8).map_err(|_| format!("invalid mode {s:?}"))?;
    if m > 0o7777 {
        return Err(format!("mode {s:?} is larger than 07777"));
    }
    Ok(m)
}

/// Parses stage options into `T`, naming the stage in the error.
pub fn options<T: serde::de::DeserializeOwned>(
    kind: &str,
    ctx: &StageContext<'_>,
) -> Result<T, String> {
    T::deserialize(ctx.options).map_err(|e| format!("invalid {kind} options: {e}"))
}

/// Runs `cmd args` in `sb`, every output line to the stage log; the error starts with
/// `what`.
pub fn run(
    ctx: &mut StageContext<'_>,
    sb: &Sandbox,
    what: &str,
    cmd: &str,
    args: &[&str],
) -> Result<Output, String> {
    let log = &mut *ctx.log;
    sb.run_streaming(cmd, args, |s, l| match s {
        Stream::Stdout => log(l),
        Stream::Stderr => log(&format!("stderr: {l}")),
    })
    .map_err(|e| format!("{what}: {e}"))
}

/// Whether `s` is safe as one field of a colon-separated account file and as a command
/// argument (no `:`, no control characters, no leading `-`).
pub fn plain_field(s: &str) -> bool {
    !s.starts_with('-') && !s.contains(':') && !s.chars().any(char::is_control)
}

/// The unit file directories of the system manager, in systemd's order.
pub const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// Whether a unit file (or alias symlink) named `unit` exists in the tree; a template
/// instance `a@b.service` counts when `a@.service` exists.
pub fn unit_exists(tree: &Tree, unit: &str) -> Result<bool, String> {
    let mut names = vec![unit.to_owned()];
    if let Some((prefix, rest)) = unit.split_once('@')
        && let Some((_, suffix)) = rest.rsplit_once('.')
        && !rest.starts_with('.')
    {
        names.push(format!("{prefix}@.{suffix}"));
    }
    for dir in UNIT_DIRS {
        for n in &names {
            let e = match tree.entry(&format!("{dir}/{n}"), false) {
                Ok(e) => e,
                Err(_) => continue,
            };
            if e.file_type()?.is_some() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// A unit name with `.service` added when it has no unit type suffix (as `systemctl`).
pub fn unit_name(unit: &str) -> String {
    const TYPES: &[&str] = &[
        "service",
        "socket",
        "target",
        "device",
        "mount",
        "automount",
        "swap",
        "timer",
        "path",
        "slice",
        "scope",
    ];
    match unit.rsplit_once('.') {
        Some((_, t)) if TYPES.contains(&t) => unit.to_owned(),
        _ => format!("{unit}.service"),
    }
}

/// Checks a unit name (letters, digits, `:-_.@\`), then [`unit_name`].
pub fn checked_unit(unit: &str) -> Result<String, String> {
    if unit.is_empty()
        || unit.len() > 255
        || unit.starts_with('-')
        || !unit
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":-_.@\\".contains(&b))
    {
        return Err(format!("{unit:?} is not a valid systemd unit name"));
    }
    Ok(unit_name(unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_checked() {
        assert_eq!(components("/etc/x").unwrap(), ["etc", "x"]);
        assert!(components("/").unwrap().is_empty());
        for bad in ["etc", "/etc/../x", "/etc//x", "/etc/", "/./x"] {
            assert!(components(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn modes_and_units() {
        assert_eq!(parse_mode("0755").unwrap(), 0o755);
        assert_eq!(parse_mode("644").unwrap(), 0o644);
        assert!(parse_mode("0855").is_err());
        assert!(parse_mode("").is_err());
        assert_eq!(unit_name("sshd"), "sshd.service");
        assert_eq!(unit_name("fstrim.timer"), "fstrim.timer");
        assert_eq!(unit_name("foo.bar"), "foo.bar.service");
        assert!(checked_unit("--now").is_err());
        assert!(checked_unit("a b").is_err());
    }

    #[test]
    fn accounts_parse() {
        let a = Accounts::parse(
            "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n",
            "root:x:0:\nsudo:x:27:alice,bob\n",
        )
        .unwrap();
        assert_eq!(a.user("alice").unwrap().uid, 1000);
        assert_eq!(a.group("sudo").unwrap().members, ["alice", "bob"]);
        assert_eq!(a.gid(&OwnerSpec::Name("sudo".into())).unwrap(), 27);
        assert_eq!(a.uid(&OwnerSpec::Id(5)).unwrap(), 5);
        assert!(a.uid(&OwnerSpec::Name("nobody".into())).is_err());
        assert!(Accounts::parse("broken\n", "").is_err());
    }

    #[test]
    fn paths_stay_in_the_tree() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        // Absolute: the tree's /usr, never the host's.
        symlink("/usr", root.join("abs")).unwrap();
        symlink("../../../../../..", root.join("up")).unwrap();
        let t = Tree::open(&root).unwrap();
        t.write("/lib/x", b"1", Meta::root(0o644)).unwrap();
        assert_eq!(std::fs::read(root.join("usr/lib/x")).unwrap(), b"1");
        t.write("/abs/lib/y", b"2", Meta::root(0o600)).unwrap();
        assert_eq!(std::fs::read(root.join("usr/lib/y")).unwrap(), b"2");
        let e = t.write("/up/tmp/z", b"3", Meta::root(0o644)).unwrap_err();
        assert!(e.contains("above the root"), "{e}");
        // A symlink as the last component is replaced, not followed.
        std::fs::write(d.path().join("outside"), b"host").unwrap();
        symlink(d.path().join("outside"), root.join("usr/lib/link")).unwrap();
        t.write("/usr/lib/link", b"new", Meta::root(0o644)).unwrap();
        assert_eq!(std::fs::read(d.path().join("outside")).unwrap(), b"host");
        assert_eq!(std::fs::read(root.join("usr/lib/link")).unwrap(), b"new");
        // Hard links are broken, not written through.
        std::fs::write(d.path().join("stored"), b"stored").unwrap();
        std::fs::hard_link(d.path().join("stored"), root.join("usr/lib/hl")).unwrap();
        t.write("/usr/lib/hl", b"changed", Meta::root(0o644))
            .unwrap();
        assert_eq!(std::fs::read(d.path().join("stored")).unwrap(), b"stored");
        std::fs::hard_link(d.path().join("stored"), root.join("usr/lib/hl2")).unwrap();
        t.unshare("/usr/lib/hl2").unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(d.path().join("stored")).unwrap().nlink(),
            1
        );
        assert_eq!(std::fs::read(root.join("usr/lib/hl2")).unwrap(), b"stored");
        assert_eq!(t.read("/lib/x").unwrap().unwrap(), b"1");
        assert_eq!(t.read("/nope").unwrap(), None);
    }
}
