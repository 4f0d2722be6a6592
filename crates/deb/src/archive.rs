//! Reading `.deb` files and unpacking their contents safely.
//!
//! A `.deb` is an `ar` archive holding `debian-binary` (`2.0\n`), `control.tar[.gz|.xz|.zst]`
//! and `data.tar[.gz|.xz|.zst|.lzma]`, in that order (see deb(5)). Members whose name starts
//! with `_` are non-critical extensions (signatures) and are skipped; anything else is an
//! error that names the member.
//!
//! [`DebArchive::unpack_data`] (and [`unpack_tar`]) extract a data tarball into a directory
//! so that **no entry can create, modify or link anything outside that directory**,
//! whatever the archive contains and whatever symlinks the directory already holds:
//!
//! - Entry names are normalised to root-relative paths (`./etc/x` and `/etc/x` are both
//!   `etc/x`); a `..` component anywhere, a NUL byte or an empty name is refused.
//! - The parent directory of every entry is opened with `openat2(2)` and
//!   `RESOLVE_IN_ROOT`: the kernel resolves every symlink on the way *as if the root were
//!   `/`* (chroot semantics: absolute targets start at the root, `..` stops at the root).
//!   So `lib -> usr/lib` on a merged-usr tree works, while `etc -> /etc` means the tree's
//!   `etc` and `x -> ../../..` means the tree's root. On kernels without `openat2` a
//!   component-by-component walk with the same semantics is used (see [`Resolver`]).
//! - The last component is never followed: whatever is there (a symlink to a host file,
//!   say) is unlinked, then the new file is created with `O_CREAT | O_EXCL | O_NOFOLLOW`
//!   relative to the parent's file descriptor. A directory already there is kept for a
//!   directory entry and is an error for any other entry, as with dpkg. A directory entry
//!   over a symlink that resolves (inside the root) to a directory keeps the symlink, as
//!   dpkg does for merged-usr's `/lib -> usr/lib`.
//! - Hard-link targets are resolved the same way, and the link is made with `linkat(2)`
//!   without `AT_SYMLINK_FOLLOW`, so a hard link to a symlink links the symlink itself.
//! - Symlink entries may point anywhere: a symlink is data, and nothing is ever written
//!   through one except by in-root resolution.
//!
//! Metadata: mode (with setuid/setgid/sticky bits), numeric owner (with
//! [`UnpackOptions::same_owner`]), mtime (including PAX sub-second mtimes) and extended
//! attributes from PAX `SCHILY.xattr.*` records are applied; directory metadata is applied
//! after all entries are written, so directory mtimes are those of the archive.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Timestamps};
use rustix::io::Errno;
use thiserror::Error;

use crate::control::{ControlError, Paragraph, Paragraphs};

/// Largest `debian-binary` member accepted.
const MAX_DEBIAN_BINARY: u64 = 64;
/// Largest decompressed control file accepted (templates with many translations are a few
/// MB; this only stops decompression bombs).
const MAX_CONTROL_FILE: u64 = 64 << 20;
/// Symlinks followed while resolving one path (as the kernel's `MAXSYMLINKS`).
const MAX_SYMLINKS: u32 = 40;

/// An error reading a `.deb` or unpacking its contents.
#[derive(Debug, Error)]
pub enum ArchiveError {
    #[error("cannot open {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("reading the .deb: {0}")]
    Io(#[source] io::Error),
    #[error("not a valid .deb: {0}")]
    Format(String),
    #[error("unsupported .deb format version {found:?} in `debian-binary` (expected \"2.0\\n\")")]
    Version { found: String },
    #[error("unexpected member `{name}` in the .deb: {why}")]
    UnexpectedMember { name: String, why: &'static str },
    #[error("member `{member}`: {source}")]
    Member { member: String, source: io::Error },
    #[error("member `{member}`: entry `{entry}` {why}")]
    ControlEntry {
        member: String,
        entry: String,
        why: &'static str,
    },
    #[error("the .deb has no `control` file in its control member")]
    NoControl,
    #[error("the `control` file of the .deb has no paragraph")]
    EmptyControl,
    #[error("the `control` file of the .deb: {0}")]
    Control(#[from] ControlError),
    #[error("cannot open the target directory {}: {source}", path.display())]
    Root { path: PathBuf, source: io::Error },
    #[error("entry `{entry}` {problem}")]
    Entry {
        entry: String,
        problem: EntryProblem,
    },
    #[error("entry `{entry}`: {action}: {source}")]
    EntryIo {
        entry: String,
        action: &'static str,
        source: io::Error,
    },
}

/// Why an entry of a data tarball was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryProblem {
    /// The entry's name is empty.
    EmptyName,
    /// The entry's name or link target contains a NUL byte.
    Nul,
    /// The entry's name has a `..` component.
    Escapes,
    /// A hard link's target has a `..` component.
    LinkEscapes { target: String },
    /// A symlink or hard link entry has an empty target.
    EmptyLinkTarget,
    /// A hard link's target does not exist inside the target directory.
    LinkTargetMissing { target: String },
    /// A hard link's target is a directory.
    LinkToDirectory { target: String },
    /// A non-directory entry would replace a directory.
    ReplacesDirectory,
    /// A non-directory entry names the target directory itself (`./`).
    ReplacesRoot,
    /// A component of the entry's parent path exists inside the target directory but is
    /// not a directory (a file, or a symlink that does not resolve to a directory inside
    /// the target).
    ParentNotDirectory { parent: String },
    /// The tar entry type is not supported (GNU volume headers, multi-volume, ...).
    UnsupportedType { kind: u8 },
    /// A device node or FIFO, refused by [`SpecialFiles::Error`].
    SpecialFileRefused,
    /// Extended attributes on an entry type they cannot safely be set on.
    XattrsUnsupported { kind: &'static str },
    /// POSIX ACLs (`SCHILY.acl.*`) cannot be honoured.
    AclUnsupported,
    /// A header field is malformed.
    BadHeader { why: String },
}

impl fmt::Display for EntryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryProblem::EmptyName => write!(f, "has an empty name"),
            EntryProblem::Nul => write!(f, "contains a NUL byte in its name or link target"),
            EntryProblem::Escapes => write!(
                f,
                "escapes the target directory (its name has a `..` component)"
            ),
            EntryProblem::LinkEscapes { target } => write!(
                f,
                "is a hard link to `{target}`, which escapes the target directory"
            ),
            EntryProblem::EmptyLinkTarget => write!(f, "is a link with an empty target"),
            EntryProblem::LinkTargetMissing { target } => write!(
                f,
                "is a hard link to `{target}`, which does not exist inside the target directory"
            ),
            EntryProblem::LinkToDirectory { target } => {
                write!(f, "is a hard link to `{target}`, which is a directory")
            }
            EntryProblem::ReplacesDirectory => write!(
                f,
                "would replace a directory that already exists with a non-directory"
            ),
            EntryProblem::ReplacesRoot => write!(
                f,
                "would replace the target directory itself with a non-directory"
            ),
            EntryProblem::ParentNotDirectory { parent } => write!(
                f,
                "has a parent `{parent}` that is not a directory inside the target directory \
                 (a file, or a symlink that does not resolve to a directory inside it)"
            ),
            EntryProblem::UnsupportedType { kind } => {
                write!(f, "has an unsupported tar entry type {:?}", *kind as char)
            }
            EntryProblem::SpecialFileRefused => write!(
                f,
                "is a device node or FIFO, which the unpack options refuse \
                 (use SpecialFiles::Create as root, or SpecialFiles::Skip)"
            ),
            EntryProblem::XattrsUnsupported { kind } => write!(
                f,
                "carries extended attributes on a {kind}, which kiln cannot set \
                 (unpack with `xattrs: false` to ignore them)"
            ),
            EntryProblem::AclUnsupported => write!(
                f,
                "carries POSIX ACLs (SCHILY.acl.*), which kiln does not support"
            ),
            EntryProblem::BadHeader { why } => write!(f, "has a malformed tar header: {why}"),
        }
    }
}

fn entry_err(entry: &str, problem: EntryProblem) -> ArchiveError {
    ArchiveError::Entry {
        entry: entry.to_owned(),
        problem,
    }
}

fn entry_io(entry: &str, action: &'static str, source: impl Into<io::Error>) -> ArchiveError {
    ArchiveError::EntryIo {
        entry: entry.to_owned(),
        action,
        source: source.into(),
    }
}

/// Compression of a `control.tar*` or `data.tar*` member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
    /// Legacy `.lzma` (LZMA-alone), accepted by dpkg for `data.tar` only.
    Lzma,
}

impl Compression {
    fn from_suffix(suffix: &str) -> Option<Compression> {
        match suffix {
            "" => Some(Compression::None),
            ".gz" => Some(Compression::Gzip),
            ".xz" => Some(Compression::Xz),
            ".zst" => Some(Compression::Zstd),
            ".lzma" => Some(Compression::Lzma),
            _ => None,
        }
    }

    /// A decompressing reader over `r`.
    fn reader<'r>(self, r: impl Read + 'r) -> io::Result<Box<dyn Read + 'r>> {
        Ok(match self {
            Compression::None => Box::new(r),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
            Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(r)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
            Compression::Lzma => {
                let stream = liblzma::stream::Stream::new_lzma_decoder(u64::MAX)
                    .map_err(io::Error::other)?;
                Box::new(liblzma::read::XzDecoder::new_stream(r, stream))
            }
        })
    }
}

/// Where a member's bytes are in the `ar` file.
#[derive(Debug, Clone)]
struct Member {
    name: String,
    offset: u64,
    size: u64,
    compression: Compression,
}

/// An opened `.deb`: its control files are read; its data member is read on demand.
pub struct DebArchive<R> {
    reader: R,
    control_member: String,
    data: Member,
    control_files: Vec<(String, Vec<u8>)>,
}

impl<R> fmt::Debug for DebArchive<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DebArchive")
            .field("control_member", &self.control_member)
            .field("data_member", &self.data.name)
            .field(
                "control_files",
                &self
                    .control_files
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// One `ar` member header.
struct ArHeader {
    name: String,
    size: u64,
}

fn format_err(msg: impl Into<String>) -> ArchiveError {
    ArchiveError::Format(msg.into())
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` on a clean EOF before the first byte.
fn read_exact_or_eof(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) if done == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads the next `ar` member header at `pos`; `None` at the end of the archive.
fn read_ar_header(r: &mut impl Read, pos: u64, len: u64) -> Result<Option<ArHeader>, ArchiveError> {
    let mut h = [0u8; 60];
    match read_exact_or_eof(r, &mut h) {
        Ok(false) => return Ok(None),
        Ok(true) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(format_err(format!(
                "truncated: the ar member header at offset {pos} is incomplete"
            )));
        }
        Err(e) => return Err(ArchiveError::Io(e)),
    }
    if &h[58..60] != b"`\n" {
        return Err(format_err(format!(
            "bad ar member header at offset {pos} (wrong magic)"
        )));
    }
    let name = std::str::from_utf8(&h[..16])
        .map_err(|_| format_err(format!("ar member name at offset {pos} is not ASCII")))?
        .trim_end_matches(' ');
    // GNU ar ends names with `/`; dpkg writes them without.
    let name = name.strip_suffix('/').unwrap_or(name).to_owned();
    let size_field = std::str::from_utf8(&h[48..58])
        .unwrap_or("")
        .trim_end_matches(' ');
    let size: u64 = size_field.parse().map_err(|_| {
        format_err(format!(
            "ar member `{name}` has an invalid size field {size_field:?}"
        ))
    })?;
    let start = pos + 60;
    if start.checked_add(size).is_none_or(|end| end > len) {
        return Err(format_err(format!(
            "truncated: ar member `{name}` claims {size} bytes but the file ends {} bytes \
             after its header",
            len.saturating_sub(start)
        )));
    }
    Ok(Some(ArHeader { name, size }))
}

impl DebArchive<BufReader<File>> {
    /// Opens the `.deb` at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ArchiveError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| ArchiveError::Open {
            path: path.to_owned(),
            source,
        })?;
        DebArchive::from_reader(BufReader::with_capacity(128 << 10, file))
    }
}

impl<R: Read + Seek> DebArchive<R> {
    /// Reads the `ar` container from `reader`: checks `debian-binary`, locates the control
    /// and data members and reads the control files.
    pub fn from_reader(mut reader: R) -> Result<Self, ArchiveError> {
        let len = reader.seek(SeekFrom::End(0)).map_err(ArchiveError::Io)?;
        reader.seek(SeekFrom::Start(0)).map_err(ArchiveError::Io)?;
        let mut magic = [0u8; 8];
        match read_exact_or_eof(&mut reader, &mut magic) {
            Ok(true) if &magic == b"!<arch>\n" => {}
            Ok(_) => return Err(format_err("not an ar archive (no `!<arch>` magic)")),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(format_err("not an ar archive (no `!<arch>` magic)"));
            }
            Err(e) => return Err(ArchiveError::Io(e)),
        }
        let mut pos = 8u64;
        let mut control: Option<Member> = None;
        let mut data: Option<Member> = None;
        let mut seen_version = false;
        while let Some(h) = read_ar_header(&mut reader, pos, len)? {
            let offset = pos + 60;
            let next = offset + h.size + (h.size & 1);
            if !seen_version {
                if h.name != "debian-binary" {
                    return Err(ArchiveError::UnexpectedMember {
                        name: h.name,
                        why: "the first member must be `debian-binary`",
                    });
                }
                if h.size > MAX_DEBIAN_BINARY {
                    return Err(ArchiveError::Version {
                        found: format!("<{} bytes>", h.size),
                    });
                }
                let mut v = vec![0u8; h.size as usize];
                reader.read_exact(&mut v).map_err(ArchiveError::Io)?;
                if v != b"2.0\n" {
                    return Err(ArchiveError::Version {
                        found: String::from_utf8_lossy(&v).into_owned(),
                    });
                }
                seen_version = true;
            } else if h.name.starts_with('_') {
                // deb(5): members starting with `_` are non-critical extensions.
            } else if let Some(suffix) = h.name.strip_prefix("control.tar") {
                if control.is_some() {
                    return Err(ArchiveError::UnexpectedMember {
                        name: h.name,
                        why: "a second control member",
                    });
                }
                let compression = match Compression::from_suffix(suffix) {
                    Some(Compression::Lzma) | None => {
                        return Err(ArchiveError::UnexpectedMember {
                            name: h.name,
                            why: "unknown compression (expected control.tar, .gz, .xz or .zst)",
                        });
                    }
                    Some(c) => c,
                };
                control = Some(Member {
                    name: h.name,
                    offset,
                    size: h.size,
                    compression,
                });
            } else if let Some(suffix) = h.name.strip_prefix("data.tar") {
                if control.is_none() {
                    return Err(ArchiveError::UnexpectedMember {
                        name: h.name,
                        why: "the data member comes before the control member",
                    });
                }
                if data.is_some() {
                    return Err(ArchiveError::UnexpectedMember {
                        name: h.name,
                        why: "a second data member",
                    });
                }
                let Some(compression) = Compression::from_suffix(suffix) else {
                    return Err(ArchiveError::UnexpectedMember {
                        name: h.name,
                        why: "unknown or unsupported compression \
                              (expected data.tar, .gz, .xz, .zst or .lzma)",
                    });
                };
                data = Some(Member {
                    name: h.name,
                    offset,
                    size: h.size,
                    compression,
                });
            } else {
                return Err(ArchiveError::UnexpectedMember {
                    name: h.name,
                    why: "not a member of the deb format \
                          (debian-binary, control.tar*, data.tar*, _*)",
                });
            }
            pos = next;
            if pos >= len {
                break;
            }
            reader
                .seek(SeekFrom::Start(pos))
                .map_err(ArchiveError::Io)?;
        }
        if !seen_version {
            return Err(format_err("the ar archive is empty (no `debian-binary`)"));
        }
        let control = control.ok_or_else(|| format_err("no `control.tar*` member"))?;
        let data = data.ok_or_else(|| format_err("no `data.tar*` member"))?;
        let control_files = read_control_member(&mut reader, &control)?;
        Ok(DebArchive {
            reader,
            control_member: control.name,
            data,
            control_files,
        })
    }

    /// The files of the control member (`control`, `md5sums`, `conffiles`, maintainer
    /// scripts, `triggers`, `shlibs`, `symbols`, `templates`, `config`, ...), in archive
    /// order, with their names relative to the member (`./postinst` → `postinst`).
    pub fn control_files(&self) -> &[(String, Vec<u8>)] {
        &self.control_files
    }

    /// One control file by name (`"control"`, `"md5sums"`, `"postinst"`, ...).
    pub fn control_file(&self, name: &str) -> Option<&[u8]> {
        self.control_files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.as_slice())
    }

    /// The package's `control` paragraph.
    pub fn control(&self) -> Result<Paragraph<'_>, ArchiveError> {
        let bytes = self
            .control_file("control")
            .ok_or(ArchiveError::NoControl)?;
        match Paragraphs::new(bytes).next() {
            Some(Ok(p)) => Ok(p),
            Some(Err(e)) => Err(e.into()),
            None => Err(ArchiveError::EmptyControl),
        }
    }

    /// The name of the control member (`control.tar.xz`, ...).
    pub fn control_member(&self) -> &str {
        &self.control_member
    }

    /// The name of the data member (`data.tar.xz`, ...).
    pub fn data_member(&self) -> &str {
        &self.data.name
    }

    /// The compression of the data member.
    pub fn data_compression(&self) -> Compression {
        self.data.compression
    }

    /// Decompressed `data.tar` bytes, as a stream.
    pub fn data_tar(&mut self) -> Result<Box<dyn Read + '_>, ArchiveError> {
        self.reader
            .seek(SeekFrom::Start(self.data.offset))
            .map_err(ArchiveError::Io)?;
        let raw = (&mut self.reader).take(self.data.size);
        self.data
            .compression
            .reader(raw)
            .map_err(|source| ArchiveError::Member {
                member: self.data.name.clone(),
                source,
            })
    }

    /// Extracts the data member into `root` (which must exist); see the module
    /// documentation for the guarantees. Returns the entries installed, in archive order.
    pub fn unpack_data(
        &mut self,
        root: &Path,
        opts: &UnpackOptions,
    ) -> Result<Vec<UnpackedEntry>, ArchiveError> {
        let member = self.data.name.clone();
        let tar = self.data_tar()?;
        unpack_tar_inner(tar, root, opts, Some(&member))
    }
}

fn read_control_member(
    reader: &mut (impl Read + Seek),
    m: &Member,
) -> Result<Vec<(String, Vec<u8>)>, ArchiveError> {
    let member_err = |source: io::Error| ArchiveError::Member {
        member: m.name.clone(),
        source,
    };
    reader
        .seek(SeekFrom::Start(m.offset))
        .map_err(ArchiveError::Io)?;
    let raw = reader.take(m.size);
    let mut archive = tar::Archive::new(m.compression.reader(raw).map_err(member_err)?);
    let mut files = Vec::new();
    for entry in archive.entries().map_err(member_err)? {
        let mut entry = entry.map_err(member_err)?;
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let control_err = |why| ArchiveError::ControlEntry {
            member: m.name.clone(),
            entry: shown.clone(),
            why,
        };
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            continue;
        }
        let comps = normalize(&raw_path).map_err(|_| control_err("has an invalid name"))?;
        if kind.is_dir() {
            if comps.is_empty() {
                continue;
            }
            return Err(control_err("is a subdirectory"));
        }
        if !kind.is_file() && kind != tar::EntryType::Continuous {
            return Err(control_err("is not a regular file"));
        }
        let [name] = comps.as_slice() else {
            return Err(control_err("is not at the top of the control member"));
        };
        let name = std::str::from_utf8(name)
            .map_err(|_| control_err("has a name that is not UTF-8"))?
            .to_owned();
        if entry.size() > MAX_CONTROL_FILE {
            return Err(control_err("is larger than 64 MiB"));
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).map_err(member_err)?;
        files.push((name, bytes));
    }
    Ok(files)
}

/// What to do with device nodes and FIFOs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpecialFiles {
    /// Create them with `mknod(2)` (device nodes need root / `CAP_MKNOD`; failing is an
    /// error).
    #[default]
    Create,
    /// Leave them out (they are not in the returned list).
    Skip,
    /// Refuse the archive.
    Error,
}

/// How paths are resolved inside the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resolver {
    /// `openat2(RESOLVE_IN_ROOT)`, or the component walk where the kernel lacks it.
    #[default]
    Auto,
    /// Only `openat2(RESOLVE_IN_ROOT)` (Linux ≥ 5.6).
    Openat2,
    /// Only kiln's own component-by-component walk with the same semantics (`O_NOFOLLOW`
    /// at each step, symlinks expanded by hand relative to the root). Used where
    /// `openat2` is missing; selectable so tests cover it.
    ComponentWalk,
}

/// Options of [`DebArchive::unpack_data`] and [`unpack_tar`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackOptions {
    /// Give entries the numeric owner recorded in the archive (needs root or
    /// `CAP_CHOWN`). Default: whether the process runs as root.
    pub same_owner: bool,
    /// Set extended attributes recorded as PAX `SCHILY.xattr.*` records. Default: true.
    pub xattrs: bool,
    /// Device nodes and FIFOs. Default: [`SpecialFiles::Create`].
    pub special_files: SpecialFiles,
    /// Path resolution inside the root. Default: [`Resolver::Auto`].
    pub resolver: Resolver,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            same_owner: rustix::process::geteuid().is_root(),
            xattrs: true,
            special_files: SpecialFiles::Create,
            resolver: Resolver::Auto,
        }
    }
}

/// The type of an installed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File,
    /// A directory (also when an existing symlink to a directory was kept in its place).
    Directory,
    Symlink {
        target: PathBuf,
    },
    /// A hard link to `target` (root-relative, normalised).
    HardLink {
        target: PathBuf,
    },
    CharDevice,
    BlockDevice,
    Fifo,
}

/// An entry installed by an unpack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackedEntry {
    /// Root-relative, normalised path (`usr/bin/ls`; `.` for the root itself).
    pub path: PathBuf,
    pub kind: EntryKind,
}

impl UnpackedEntry {
    /// The path as dpkg writes it in `/var/lib/dpkg/info/PKG.list`: `/.` for the root,
    /// `/usr/bin/ls` otherwise.
    pub fn dpkg_path(&self) -> PathBuf {
        if self.path.as_os_str() == "." {
            PathBuf::from("/.")
        } else {
            Path::new("/").join(&self.path)
        }
    }
}

/// Opens the `.deb` at `path` and extracts its data member into `root` with default
/// options.
pub fn unpack_deb(
    path: impl AsRef<Path>,
    root: impl AsRef<Path>,
) -> Result<Vec<UnpackedEntry>, ArchiveError> {
    DebArchive::open(path)?.unpack_data(root.as_ref(), &UnpackOptions::default())
}

/// Extracts an uncompressed tar stream into `root` with the same guarantees as
/// [`DebArchive::unpack_data`].
pub fn unpack_tar(
    tar: impl Read,
    root: &Path,
    opts: &UnpackOptions,
) -> Result<Vec<UnpackedEntry>, ArchiveError> {
    unpack_tar_inner(tar, root, opts, None)
}

/// Splits an entry name into root-relative components: leading `/`, empty and `.`
/// components are dropped; `..`, NUL and an empty name are refused.
fn normalize(raw: &[u8]) -> Result<Vec<Vec<u8>>, EntryProblem> {
    if raw.is_empty() {
        return Err(EntryProblem::EmptyName);
    }
    if raw.contains(&0) {
        return Err(EntryProblem::Nul);
    }
    let mut comps = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(EntryProblem::Escapes),
            c => comps.push(c.to_vec()),
        }
    }
    Ok(comps)
}

fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    if comps.is_empty() {
        return b".".to_vec();
    }
    comps.join(&b'/')
}

fn to_path(bytes: &[u8]) -> PathBuf {
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

/// Metadata of one entry.
#[derive(Debug, Clone)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timestamps,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The path resolver bound to one root directory.
struct Root {
    fd: OwnedFd,
    resolver: Resolver,
    /// Set when `Auto` found the kernel has no `openat2`.
    walk: std::cell::Cell<bool>,
}

impl Root {
    fn open(path: &Path, resolver: Resolver) -> Result<Root, ArchiveError> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ArchiveError::Root {
            path: path.to_owned(),
            source: e.into(),
        })?;
        Ok(Root {
            fd,
            walk: std::cell::Cell::new(resolver == Resolver::ComponentWalk),
            resolver,
        })
    }

    /// Opens the directory `comps` (root-relative; symlinks followed with chroot semantics)
    /// as an `O_PATH` descriptor, for use as the `dirfd` of `*at` calls (the root itself
    /// comes back as a readable descriptor).
    fn open_dir(&self, comps: &[Vec<u8>]) -> io::Result<OwnedFd> {
        if comps.is_empty() {
            return Ok(rustix::io::fcntl_dupfd_cloexec(&self.fd, 0)?);
        }
        let path = join(comps);
        if !self.walk.get() {
            match openat2_in_root(self.fd.as_fd(), &path) {
                Err(Errno::NOSYS) if self.resolver == Resolver::Auto => self.walk.set(true),
                r => return Ok(r?),
            }
        }
        walk_in_root(self.fd.as_fd(), &path)
    }

    /// Opens the parent directory of `comps`, creating missing directories (mode 0755)
    /// like tar does. Directories are only ever created inside directories that were
    /// opened by in-root resolution, and never through a symlink.
    fn open_parent(&self, entry: &str, comps: &[Vec<u8>]) -> Result<OwnedFd, ArchiveError> {
        let parent = &comps[..comps.len().saturating_sub(1)];
        match self.open_dir(parent) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {}
            Err(e) if e.raw_os_error() == Some(Errno::NOTDIR.raw_os_error()) => {
                return Err(self.not_dir_err(entry, parent));
            }
            Err(e) => return Err(entry_io(entry, "opening its parent directory", e)),
        }
        let mut dir = self
            .open_dir(&[])
            .map_err(|e| entry_io(entry, "opening the target directory", e))?;
        for i in 0..parent.len() {
            match self.open_dir(&parent[..=i]) {
                Ok(fd) => dir = fd,
                Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                    match rustix::fs::mkdirat(&dir, parent[i].as_slice(), Mode::from(0o755)) {
                        Ok(()) => {}
                        // Something is there, so the lookup failed through a dangling
                        // symlink: refuse rather than guess.
                        Err(Errno::EXIST) => return Err(self.not_dir_err(entry, &parent[..=i])),
                        Err(e) => {
                            return Err(entry_io(entry, "creating a missing parent directory", e));
                        }
                    }
                    dir = rustix::fs::openat(
                        &dir,
                        parent[i].as_slice(),
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| entry_io(entry, "opening a created parent directory", e))?;
                }
                Err(e) if e.raw_os_error() == Some(Errno::NOTDIR.raw_os_error()) => {
                    return Err(self.not_dir_err(entry, &parent[..=i]));
                }
                Err(e) => return Err(entry_io(entry, "opening its parent directory", e)),
            }
        }
        Ok(dir)
    }

    fn not_dir_err(&self, entry: &str, parent: &[Vec<u8>]) -> ArchiveError {
        entry_err(
            entry,
            EntryProblem::ParentNotDirectory {
                parent: String::from_utf8_lossy(&join(parent)).into_owned(),
            },
        )
    }
}

fn openat2_in_root(root: BorrowedFd<'_>, path: &[u8]) -> Result<OwnedFd, Errno> {
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(
            root,
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            // The kernel asks for a retry when a rename raced with the lookup.
            Err(Errno::AGAIN) if tries < 64 => tries += 1,
            r => return r,
        }
    }
}

/// Resolves `path` below `root` one component at a time, never following a symlink
/// implicitly: each symlink is read and its target spliced into the remaining path,
/// absolute targets restart at `root` and `..` never climbs above `root` (the semantics of
/// `RESOLVE_IN_ROOT`). Returns the directory as an `O_PATH` descriptor.
fn walk_in_root(root: BorrowedFd<'_>, path: &[u8]) -> io::Result<OwnedFd> {
    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut todo: Vec<Vec<u8>> = path
        .split(|&b| b == b'/')
        .rev()
        .map(<[u8]>::to_vec)
        .collect();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        match c.as_slice() {
            b"" | b"." => continue,
            b".." => {
                stack.pop();
                continue;
            }
            _ => {}
        }
        let cur = stack.last().map_or(root, |fd| fd.as_fd());
        let fd = rustix::fs::openat(
            cur,
            c.as_slice(),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let st = rustix::fs::fstat(&fd)?;
        match rustix::fs::FileType::from_raw_mode(st.st_mode) {
            rustix::fs::FileType::Directory => stack.push(fd),
            rustix::fs::FileType::Symlink => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Errno::LOOP.into());
                }
                let target = rustix::fs::readlinkat(&fd, "", Vec::new())?.into_bytes();
                if target.first() == Some(&b'/') {
                    stack.clear();
                }
                todo.extend(target.split(|&b| b == b'/').rev().map(<[u8]>::to_vec));
            }
            _ => return Err(Errno::NOTDIR.into()),
        }
    }
    match stack.pop() {
        Some(fd) => Ok(fd),
        None => Ok(rustix::io::fcntl_dupfd_cloexec(root, 0)?),
    }
}

fn timestamps(secs: i64, nanos: i64) -> Timestamps {
    let t = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: nanos as _,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Parses a PAX time (`1700000000`, `1700000000.5`, `-1.25`).
fn parse_pax_time(v: &[u8]) -> Option<(i64, i64)> {
    let s = std::str::from_utf8(v).ok()?;
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = int.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut nanos: i64 = 0;
    for i in 0..9 {
        nanos = nanos * 10 + frac.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
    }
    if s.starts_with('-') && nanos > 0 {
        Some((secs - 1, 1_000_000_000 - nanos))
    } else {
        Some((secs, nanos))
    }
}

/// What became of an existing object at an entry's name.
enum Existing {
    None,
    Dir,
    Other(rustix::fs::Stat),
}

fn existing(parent: &OwnedFd, name: &[u8], entry: &str) -> Result<Existing, ArchiveError> {
    match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() => Ok(Existing::Dir),
        Ok(st) => Ok(Existing::Other(st)),
        Err(Errno::NOENT) => Ok(Existing::None),
        Err(e) => Err(entry_io(entry, "inspecting what is already there", e)),
    }
}

/// Makes room for a non-directory at `name`: unlinks a non-directory, refuses a directory.
fn clear_for_nondir(parent: &OwnedFd, name: &[u8], entry: &str) -> Result<(), ArchiveError> {
    match existing(parent, name, entry)? {
        Existing::None => Ok(()),
        Existing::Dir => Err(entry_err(entry, EntryProblem::ReplacesDirectory)),
        Existing::Other(_) => rustix::fs::unlinkat(parent, name, AtFlags::empty())
            .map_err(|e| entry_io(entry, "removing what is already there", e)),
    }
}

struct Unpacker<'a> {
    root: Root,
    /// The `.deb` member being unpacked, for error messages.
    member: Option<String>,
    opts: &'a UnpackOptions,
    entries: Vec<UnpackedEntry>,
    index: HashMap<PathBuf, usize>,
    /// Directories whose metadata is applied at the end (last entry wins).
    dirs: HashMap<Vec<Vec<u8>>, Meta>,
    dir_order: Vec<Vec<Vec<u8>>>,
    buf: Vec<u8>,
}

impl Unpacker<'_> {
    /// A failure to read the (decompressed) archive while inside an entry's data.
    fn stream_err(&self, entry: &str, e: io::Error) -> ArchiveError {
        let source = io::Error::new(e.kind(), format!("reading entry `{entry}`: {e}"));
        match &self.member {
            Some(member) => ArchiveError::Member {
                member: member.clone(),
                source,
            },
            None => ArchiveError::Io(source),
        }
    }

    fn record(&mut self, comps: &[Vec<u8>], kind: EntryKind) {
        let path = to_path(&join(comps));
        match self.index.get(&path) {
            Some(&i) => self.entries[i].kind = kind,
            None => {
                self.index.insert(path.clone(), self.entries.len());
                self.entries.push(UnpackedEntry { path, kind });
            }
        }
    }

    fn chown_fd(&self, fd: &OwnedFd, meta: &Meta, entry: &str) -> Result<(), ArchiveError> {
        if self.opts.same_owner {
            rustix::fs::fchown(
                fd,
                Some(rustix::fs::Uid::from_raw(meta.uid)),
                Some(rustix::fs::Gid::from_raw(meta.gid)),
            )
            .map_err(|e| entry_io(entry, "setting its owner", e))?;
        }
        Ok(())
    }

    fn xattrs_fd(&self, fd: &OwnedFd, meta: &Meta, entry: &str) -> Result<(), ArchiveError> {
        if self.opts.xattrs {
            for (k, v) in &meta.xattrs {
                rustix::fs::fsetxattr(fd, k.as_slice(), v, rustix::fs::XattrFlags::empty())
                    .map_err(|e| entry_io(entry, "setting an extended attribute", e))?;
            }
        }
        Ok(())
    }

    /// Owner, mode, xattrs, times, in the order that keeps setuid bits and file
    /// capabilities (`chown` clears both).
    fn finish_fd(&self, fd: &OwnedFd, meta: &Meta, entry: &str) -> Result<(), ArchiveError> {
        self.chown_fd(fd, meta, entry)?;
        rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode & 0o7777))
            .map_err(|e| entry_io(entry, "setting its mode", e))?;
        self.xattrs_fd(fd, meta, entry)?;
        rustix::fs::futimens(fd, &meta.mtime).map_err(|e| entry_io(entry, "setting its mtime", e))
    }

    /// Owner and times of a symlink or special file, without following it.
    fn finish_at(
        &self,
        parent: &OwnedFd,
        name: &[u8],
        meta: &Meta,
        entry: &str,
    ) -> Result<(), ArchiveError> {
        if self.opts.same_owner {
            rustix::fs::chownat(
                parent,
                name,
                Some(rustix::fs::Uid::from_raw(meta.uid)),
                Some(rustix::fs::Gid::from_raw(meta.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| entry_io(entry, "setting its owner", e))?;
        }
        rustix::fs::utimensat(parent, name, &meta.mtime, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| entry_io(entry, "setting its mtime", e))
    }

    fn file(
        &mut self,
        entry: &str,
        comps: &[Vec<u8>],
        meta: &Meta,
        data: &mut dyn Read,
    ) -> Result<(), ArchiveError> {
        let Some(name) = comps.last() else {
            return Err(entry_err(entry, EntryProblem::ReplacesRoot));
        };
        let parent = self.root.open_parent(entry, comps)?;
        clear_for_nondir(&parent, name, entry)?;
        let fd = rustix::fs::openat(
            &parent,
            name.as_slice(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from(0o600),
        )
        .map_err(|e| entry_io(entry, "creating the file", e))?;
        let mut file = File::from(fd);
        loop {
            let n = match data.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.stream_err(entry, e)),
            };
            file.write_all(&self.buf[..n])
                .map_err(|e| entry_io(entry, "writing the file", e))?;
        }
        let fd = OwnedFd::from(file);
        self.finish_fd(&fd, meta, entry)?;
        self.record(comps, EntryKind::File);
        Ok(())
    }

    fn dir(&mut self, entry: &str, comps: &[Vec<u8>], meta: &Meta) -> Result<(), ArchiveError> {
        let Some(name) = comps.last() else {
            self.delay_dir(comps, meta);
            self.record(comps, EntryKind::Directory);
            return Ok(());
        };
        let parent = self.root.open_parent(entry, comps)?;
        match existing(&parent, name, entry)? {
            Existing::Dir => {}
            Existing::Other(st) => {
                let is_link = rustix::fs::FileType::from_raw_mode(st.st_mode)
                    == rustix::fs::FileType::Symlink;
                if is_link && self.root.open_dir(comps).is_ok() {
                    // dpkg keeps a symlink to a directory in place of a directory
                    // (merged-usr `/lib -> usr/lib`); its metadata is not touched.
                    self.record(comps, EntryKind::Directory);
                    return Ok(());
                }
                rustix::fs::unlinkat(&parent, name.as_slice(), AtFlags::empty())
                    .map_err(|e| entry_io(entry, "removing what is already there", e))?;
                self.mkdir(&parent, name, entry)?;
            }
            Existing::None => self.mkdir(&parent, name, entry)?,
        }
        self.delay_dir(comps, meta);
        self.record(comps, EntryKind::Directory);
        Ok(())
    }

    fn mkdir(&self, parent: &OwnedFd, name: &[u8], entry: &str) -> Result<(), ArchiveError> {
        // Owner-writable until the final mode is applied at the end.
        rustix::fs::mkdirat(parent, name, Mode::from(0o700))
            .map_err(|e| entry_io(entry, "creating the directory", e))
    }

    fn delay_dir(&mut self, comps: &[Vec<u8>], meta: &Meta) {
        if self.dirs.insert(comps.to_vec(), meta.clone()).is_none() {
            self.dir_order.push(comps.to_vec());
        }
    }

    fn finish_dirs(&mut self) -> Result<(), ArchiveError> {
        for comps in std::mem::take(&mut self.dir_order) {
            let meta = &self.dirs[&comps];
            let shown = String::from_utf8_lossy(&join(&comps)).into_owned();
            let fd = match comps.split_last() {
                None => self
                    .root
                    .open_dir(&[])
                    .map_err(|e| entry_io(&shown, "opening the directory", e))?,
                Some((name, parent)) => {
                    let parent = self
                        .root
                        .open_dir(parent)
                        .map_err(|e| entry_io(&shown, "opening its parent directory", e))?;
                    rustix::fs::openat(
                        &parent,
                        name.as_slice(),
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| entry_io(&shown, "opening the directory", e))?
                }
            };
            self.finish_fd(&fd, meta, &shown)?;
        }
        Ok(())
    }

    fn symlink(
        &mut self,
        entry: &str,
        comps: &[Vec<u8>],
        target: &[u8],
        meta: &Meta,
    ) -> Result<(), ArchiveError> {
        let Some(name) = comps.last() else {
            return Err(entry_err(entry, EntryProblem::ReplacesRoot));
        };
        if target.is_empty() {
            return Err(entry_err(entry, EntryProblem::EmptyLinkTarget));
        }
        if target.contains(&0) {
            return Err(entry_err(entry, EntryProblem::Nul));
        }
        if self.opts.xattrs && !meta.xattrs.is_empty() {
            return Err(entry_err(
                entry,
                EntryProblem::XattrsUnsupported { kind: "symlink" },
            ));
        }
        let parent = self.root.open_parent(entry, comps)?;
        clear_for_nondir(&parent, name, entry)?;
        rustix::fs::symlinkat(target, &parent, name.as_slice())
            .map_err(|e| entry_io(entry, "creating the symlink", e))?;
        self.finish_at(&parent, name, meta, entry)?;
        self.record(
            comps,
            EntryKind::Symlink {
                target: to_path(target),
            },
        );
        Ok(())
    }

    fn hardlink(
        &mut self,
        entry: &str,
        comps: &[Vec<u8>],
        target_raw: &[u8],
    ) -> Result<(), ArchiveError> {
        let Some(name) = comps.last() else {
            return Err(entry_err(entry, EntryProblem::ReplacesRoot));
        };
        let shown_target = String::from_utf8_lossy(target_raw).into_owned();
        let target = match normalize(target_raw) {
            Ok(t) => t,
            Err(EntryProblem::Escapes) => {
                return Err(entry_err(
                    entry,
                    EntryProblem::LinkEscapes {
                        target: shown_target,
                    },
                ));
            }
            Err(EntryProblem::EmptyName) => {
                return Err(entry_err(entry, EntryProblem::EmptyLinkTarget));
            }
            Err(p) => return Err(entry_err(entry, p)),
        };
        let Some((tname, tparent)) = target.split_last() else {
            return Err(entry_err(
                entry,
                EntryProblem::LinkToDirectory {
                    target: shown_target,
                },
            ));
        };
        let missing = || {
            entry_err(
                entry,
                EntryProblem::LinkTargetMissing {
                    target: shown_target.clone(),
                },
            )
        };
        let tdir = match self.root.open_dir(tparent) {
            Ok(fd) => fd,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(n) if n == Errno::NOENT.raw_os_error() || n == Errno::NOTDIR.raw_os_error()
                ) =>
            {
                return Err(missing());
            }
            Err(e) => return Err(entry_io(entry, "opening the link target's directory", e)),
        };
        let tstat = match existing(&tdir, tname, entry)? {
            Existing::None => return Err(missing()),
            Existing::Dir => {
                return Err(entry_err(
                    entry,
                    EntryProblem::LinkToDirectory {
                        target: shown_target,
                    },
                ));
            }
            Existing::Other(st) => st,
        };
        let parent = self.root.open_parent(entry, comps)?;
        match existing(&parent, name, entry)? {
            Existing::None => {}
            Existing::Dir => return Err(entry_err(entry, EntryProblem::ReplacesDirectory)),
            Existing::Other(st) if st.st_dev == tstat.st_dev && st.st_ino == tstat.st_ino => {
                // Already this very file (a link to itself, or a repeated entry).
                self.record(
                    comps,
                    EntryKind::HardLink {
                        target: to_path(&join(&target)),
                    },
                );
                return Ok(());
            }
            Existing::Other(_) => rustix::fs::unlinkat(&parent, name.as_slice(), AtFlags::empty())
                .map_err(|e| entry_io(entry, "removing what is already there", e))?,
        }
        // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
        rustix::fs::linkat(
            &tdir,
            tname.as_slice(),
            &parent,
            name.as_slice(),
            AtFlags::empty(),
        )
        .map_err(|e| entry_io(entry, "creating the hard link", e))?;
        self.record(
            comps,
            EntryKind::HardLink {
                target: to_path(&join(&target)),
            },
        );
        Ok(())
    }

    fn special(
        &mut self,
        entry: &str,
        comps: &[Vec<u8>],
        kind: tar::EntryType,
        header: &tar::Header,
        meta: &Meta,
    ) -> Result<(), ArchiveError> {
        match self.opts.special_files {
            SpecialFiles::Skip => return Ok(()),
            SpecialFiles::Error => return Err(entry_err(entry, EntryProblem::SpecialFileRefused)),
            SpecialFiles::Create => {}
        }
        let Some(name) = comps.last() else {
            return Err(entry_err(entry, EntryProblem::ReplacesRoot));
        };
        if self.opts.xattrs && !meta.xattrs.is_empty() {
            return Err(entry_err(
                entry,
                EntryProblem::XattrsUnsupported {
                    kind: "device node or FIFO",
                },
            ));
        }
        let bad = |e: io::Error| entry_err(entry, EntryProblem::BadHeader { why: e.to_string() });
        let (file_type, entry_kind, dev) = match kind {
            tar::EntryType::Fifo => (rustix::fs::FileType::Fifo, EntryKind::Fifo, 0),
            _ => {
                let major = header.device_major().map_err(bad)?.unwrap_or(0);
                let minor = header.device_minor().map_err(bad)?.unwrap_or(0);
                let dev = rustix::fs::makedev(major, minor);
                if kind == tar::EntryType::Char {
                    (
                        rustix::fs::FileType::CharacterDevice,
                        EntryKind::CharDevice,
                        dev,
                    )
                } else {
                    (
                        rustix::fs::FileType::BlockDevice,
                        EntryKind::BlockDevice,
                        dev,
                    )
                }
            }
        };
        let parent = self.root.open_parent(entry, comps)?;
        clear_for_nondir(&parent, name, entry)?;
        rustix::fs::mknodat(&parent, name.as_slice(), file_type, Mode::from(0o600), dev)
            .map_err(|e| entry_io(entry, "creating the device node or FIFO", e))?;
        // Owner first (chown clears setuid/setgid), then the mode. `chmodat` has no
        // no-follow variant, but the name was just created by mknodat (which never
        // follows or replaces), so it is that node.
        if self.opts.same_owner {
            rustix::fs::chownat(
                &parent,
                name.as_slice(),
                Some(rustix::fs::Uid::from_raw(meta.uid)),
                Some(rustix::fs::Gid::from_raw(meta.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| entry_io(entry, "setting its owner", e))?;
        }
        rustix::fs::chmodat(
            &parent,
            name.as_slice(),
            Mode::from_raw_mode(meta.mode & 0o7777),
            AtFlags::empty(),
        )
        .map_err(|e| entry_io(entry, "setting its mode", e))?;
        rustix::fs::utimensat(
            &parent,
            name.as_slice(),
            &meta.mtime,
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| entry_io(entry, "setting its mtime", e))?;
        self.record(comps, entry_kind);
        Ok(())
    }
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, shown: &str) -> Result<Meta, ArchiveError> {
    let bad = |e: io::Error| entry_err(shown, EntryProblem::BadHeader { why: e.to_string() });
    let h = entry.header();
    let mode = h.mode().map_err(bad)?;
    let id = |v: u64, what: &str| {
        u32::try_from(v).map_err(|_| {
            entry_err(
                shown,
                EntryProblem::BadHeader {
                    why: format!("{what} {v} is out of range"),
                },
            )
        })
    };
    let uid = id(h.uid().map_err(bad)?, "uid")?;
    let gid = id(h.gid().map_err(bad)?, "gid")?;
    let mtime = h.mtime().map_err(bad)?;
    let mut time = (i64::try_from(mtime).unwrap_or(i64::MAX), 0);
    let mut xattrs = Vec::new();
    if let Some(pax) = entry.pax_extensions().map_err(bad)? {
        for ext in pax {
            let ext = ext.map_err(bad)?;
            let key = ext.key_bytes();
            if key == b"mtime" {
                time = parse_pax_time(ext.value_bytes()).ok_or_else(|| {
                    entry_err(
                        shown,
                        EntryProblem::BadHeader {
                            why: "invalid PAX mtime".into(),
                        },
                    )
                })?;
            } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
            } else if key.starts_with(b"SCHILY.acl.") {
                return Err(entry_err(shown, EntryProblem::AclUnsupported));
            }
        }
    }
    Ok(Meta {
        mode,
        uid,
        gid,
        mtime: timestamps(time.0, time.1),
        xattrs,
    })
}

fn unpack_tar_inner(
    tar: impl Read,
    root: &Path,
    opts: &UnpackOptions,
    member: Option<&str>,
) -> Result<Vec<UnpackedEntry>, ArchiveError> {
    let stream_err = |source: io::Error| match member {
        Some(m) => ArchiveError::Member {
            member: m.to_owned(),
            source,
        },
        None => ArchiveError::Io(source),
    };
    let mut u = Unpacker {
        root: Root::open(root, opts.resolver)?,
        member: member.map(str::to_owned),
        opts,
        entries: Vec::new(),
        index: HashMap::new(),
        dirs: HashMap::new(),
        dir_order: Vec::new(),
        buf: vec![0u8; 256 << 10],
    };
    let mut archive = tar::Archive::new(tar);
    {
        let entries = archive.entries().map_err(stream_err)?;
        for entry in entries {
            let mut entry = entry.map_err(stream_err)?;
            let raw_path = entry.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&raw_path).into_owned();
            let kind = entry.header().entry_type();
            if kind.is_pax_global_extensions() {
                continue;
            }
            let comps = normalize(&raw_path).map_err(|p| entry_err(&shown, p))?;
            let meta = read_meta(&mut entry, &shown)?;
            match kind {
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::GNUSparse => u.file(&shown, &comps, &meta, &mut entry)?,
                tar::EntryType::Directory => u.dir(&shown, &comps, &meta)?,
                tar::EntryType::Symlink => {
                    let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                    u.symlink(&shown, &comps, &target, &meta)?
                }
                tar::EntryType::Link => {
                    let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                    u.hardlink(&shown, &comps, &target)?
                }
                tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                    let header = entry.header().clone();
                    u.special(&shown, &comps, kind, &header, &meta)?
                }
                other => {
                    return Err(entry_err(
                        &shown,
                        EntryProblem::UnsupportedType {
                            kind: other.as_byte(),
                        },
                    ));
                }
            }
        }
    }
    // Read the compressed stream to its end so its integrity check (xz/gzip CRC, zstd
    // checksum) runs and trailing corruption is reported.
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(stream_err)?;
    u.finish_dirs()?;
    Ok(u.entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_paths() {
        let n = |s: &str| normalize(s.as_bytes()).map(|c| String::from_utf8(join(&c)).unwrap());
        assert_eq!(n("./etc/x").unwrap(), "etc/x");
        assert_eq!(n("/etc/x").unwrap(), "etc/x");
        assert_eq!(n("//etc//./x/").unwrap(), "etc/x");
        assert_eq!(n("./").unwrap(), ".");
        assert_eq!(n("../x"), Err(EntryProblem::Escapes));
        assert_eq!(n("./a/../b"), Err(EntryProblem::Escapes));
        assert_eq!(n("a/.."), Err(EntryProblem::Escapes));
        assert_eq!(n(""), Err(EntryProblem::EmptyName));
        assert_eq!(n("a\0b"), Err(EntryProblem::Nul));
        assert_eq!(n("..."), Ok("...".into()));
    }

    #[test]
    fn pax_times() {
        assert_eq!(parse_pax_time(b"1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(
            parse_pax_time(b"1700000000.25"),
            Some((1_700_000_000, 250_000_000))
        );
        assert_eq!(parse_pax_time(b"-1.25"), Some((-2, 750_000_000)));
        assert_eq!(parse_pax_time(b"1.1234567891"), Some((1, 123_456_789)));
        assert_eq!(parse_pax_time(b"x"), None);
        assert_eq!(parse_pax_time(b"1.x"), None);
    }
}
