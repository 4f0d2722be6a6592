//! The store's error type.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Result alias used throughout the crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything that can go wrong in the store. Every variant names the object and/or
/// the path involved, and most say what to do about it.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A system call on a path failed.
    #[error("store: cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done ("create", "rename", "read", ...).
        op: &'static str,
        /// The path it was done on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A downloaded blob does not have the sha256 it was announced with.
    #[error(
        "blob sha256 mismatch: expected {expected}, got {actual} ({size} bytes); the \
         download is corrupt or the checksum in the manifest is wrong. The partial download \
         was discarded; retry the download, or fix the source's checksum"
    )]
    HashMismatch {
        /// The sha256 the caller asked for.
        expected: String,
        /// The sha256 of the bytes written.
        actual: String,
        /// How many bytes were written.
        size: u64,
    },

    /// A downloaded blob does not have the size it was announced with.
    #[error(
        "blob {sha256}: expected {expected} bytes, got {actual}; the download is truncated \
         or the size in the manifest is wrong. {hint}"
    )]
    SizeMismatch {
        /// The blob's expected sha256.
        sha256: String,
        /// The size the caller announced.
        expected: u64,
        /// The size actually written.
        actual: u64,
        /// What happened to the partial data.
        hint: &'static str,
    },

    /// A sha256 given as text is not 64 hex digits.
    #[error("invalid sha256 {value:?}: expected 64 hexadecimal digits")]
    InvalidDigest {
        /// The text given.
        value: String,
    },

    /// An object id cannot be used as a store name.
    #[error(
        "invalid object id {id:?}: {reason} (ids are 1-128 characters of A-Z a-z 0-9 . _ - \
         and do not start with '.')"
    )]
    InvalidId {
        /// The id given.
        id: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// The object asked for is not in the store.
    #[error("{kind} {id} is not in the store at {}", root.display())]
    NotFound {
        /// "tree", "artifact" or "blob".
        kind: &'static str,
        /// Its id.
        id: String,
        /// The store's root.
        root: PathBuf,
    },

    /// The store was written by a newer kiln.
    #[error(
        "the store at {} has format version {found}, this kiln understands version {supported}; \
         upgrade kiln or use another --store directory",
        path.display()
    )]
    UnsupportedFormat {
        /// The store's `store.json`.
        path: PathBuf,
        /// The version found there.
        found: u32,
        /// The version this code writes.
        supported: u32,
    },

    /// A metadata file cannot be parsed.
    #[error("corrupt store metadata {}: {reason}", path.display())]
    CorruptMeta {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// Another process holds a lock this operation cannot wait for.
    #[error("store {} is busy: {what}", path.display())]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// Who holds it and what to do.
        what: &'static str,
    },

    /// A restore destination is not an empty directory.
    #[error(
        "cannot restore into {}: it exists and is not an empty directory; remove it or choose \
         another destination",
        path.display()
    )]
    DestinationNotEmpty {
        /// The destination.
        path: PathBuf,
    },

    /// A restore method was asked for that the filesystem cannot do.
    #[error("cannot restore with {method}: {reason} ({})", path.display())]
    Unsupported {
        /// The method asked for.
        method: &'static str,
        /// Why not.
        reason: &'static str,
        /// Where it failed.
        path: PathBuf,
    },

    /// An operation needs the store opened with [`crate::Store::open_exclusive`].
    #[error("{op} needs exclusive access to the store at {}; open it exclusively (no other kiln may use it meanwhile)", path.display())]
    NotExclusive {
        /// The operation.
        op: &'static str,
        /// The store root.
        path: PathBuf,
    },
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The underlying I/O error kind, if this is an I/O error.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            StoreError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

/// Attach an operation and a path to an I/O result.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| StoreError::io(op, path, e))
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| StoreError::io(op, path, e.into()))
    }
}
