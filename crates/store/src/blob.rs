//! Blobs: downloads named by their sha256, verified before they become visible.
//!
//! A download is written to `tmp/blob-<hex>.partial`, flock-ed exclusively by its
//! writer (two processes fetching the same file wait for each other instead of both
//! downloading it). On commit the length and sha256 are checked, the file is fsynced
//! and renamed to `blobs/sha256/<hex>`. An interrupted download stays as a partial file
//! and the next writer continues from its length (HTTP `Range: bytes=<offset>-`).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, CWD, RenameFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};
use tracing::debug;

use crate::digest::Sha256Digest;
use crate::error::{IoContext, Result, StoreError};
use crate::fsutil::{self, LockKind};
use crate::store::{ObjectKind, Store, touch_fd};

/// What [`Store::blob_writer`] found.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per download; boxing would only cost callers
pub enum BlobSlot {
    /// The blob is already in the store (perhaps committed by another process while we
    /// waited for its download to finish): nothing to download.
    Present(PathBuf),
    /// Write the blob's bytes from [`BlobWriter::offset`] on, then commit.
    Writer(BlobWriter),
}

/// Writes one blob. Dropping it without [`BlobWriter::commit`] keeps the partial
/// download for a later resume.
#[derive(Debug)]
pub struct BlobWriter {
    _store: Store,
    sha256: Sha256Digest,
    size: Option<u64>,
    file: File,
    partial: PathBuf,
    dest: PathBuf,
    hasher: Sha256,
    len: u64,
    resumed_from: u64,
    /// Non-zero once more bytes than announced were offered: the total offered.
    overflow: u64,
    durable: bool,
}

/// A blob pinned against eviction for as long as this value lives.
#[derive(Debug)]
pub struct BlobRef {
    path: PathBuf,
    file: File,
}

impl BlobRef {
    /// The blob's path (read only).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open, pinned file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The open, pinned file (the pin lasts as long as the file stays open).
    pub fn into_file(self) -> File {
        self.file
    }
}

impl BlobWriter {
    /// The blob being written.
    pub fn sha256(&self) -> &Sha256Digest {
        &self.sha256
    }

    /// Bytes already written: continue the download from this offset.
    pub fn offset(&self) -> u64 {
        self.len
    }

    /// How many bytes an earlier, interrupted download had left.
    pub fn resumed_from(&self) -> u64 {
        self.resumed_from
    }

    /// The path of the partial download (never visible as a blob).
    pub fn partial_path(&self) -> &Path {
        &self.partial
    }

    /// Start over from byte 0 (for a server that ignored the Range request).
    pub fn restart(&mut self) -> Result<()> {
        self.file.set_len(0).ctx("truncate", &self.partial)?;
        self.file
            .seek(SeekFrom::Start(0))
            .ctx("seek", &self.partial)?;
        self.hasher = Sha256::new();
        self.len = 0;
        self.overflow = 0;
        Ok(())
    }

    /// Verify size and sha256, fsync and move into place. On a sha256 mismatch (or more
    /// bytes than announced) the partial file is deleted and nothing is left; with
    /// fewer bytes than announced it is kept so that the download can be resumed.
    pub fn commit(mut self) -> Result<PathBuf> {
        let hex = self.sha256.to_hex();
        if let Some(expected) = self.size
            && (self.len != expected || self.overflow > 0)
        {
            let short = self.len < expected && self.overflow == 0;
            if !short {
                self.remove_partial();
            }
            return Err(StoreError::SizeMismatch {
                sha256: hex,
                expected,
                actual: self.len.max(self.overflow),
                hint: if short {
                    "The partial download was kept; resume it from its end."
                } else {
                    "The partial download was discarded."
                },
            });
        }
        let actual = Sha256Digest::from_hasher(std::mem::take(&mut self.hasher));
        if actual != self.sha256 {
            self.remove_partial();
            return Err(StoreError::HashMismatch {
                expected: hex,
                actual: actual.to_hex(),
                size: self.len,
            });
        }
        if self.durable {
            self.file.sync_all().ctx("sync", &self.partial)?;
        }
        touch_fd(&self.file, &self.partial);
        match rfs::renameat_with(CWD, &self.partial, CWD, &self.dest, RenameFlags::NOREPLACE) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                // An identical blob arrived by another way (put by a process not going
                // through the partial file's lock): keep that one.
                self.remove_partial();
            }
            Err(e) => return Err(StoreError::io("rename into place", &self.dest, e.into())),
        }
        if self.durable
            && let Some(parent) = self.dest.parent()
        {
            fsutil::fsync_dir(parent).ctx("sync", parent)?;
        }
        debug!(sha256 = %hex, size = self.len, "blob committed");
        Ok(self.dest.clone())
    }

    /// Give up and delete the partial download.
    pub fn discard(self) -> Result<()> {
        std::fs::remove_file(&self.partial)
            .or_else(crate::store::ignore_not_found)
            .ctx("remove", &self.partial)
    }

    fn remove_partial(&self) {
        if let Err(e) = std::fs::remove_file(&self.partial) {
            tracing::warn!(path = %self.partial.display(), error = %e, "cannot remove partial download");
        }
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(size) = self.size
            && self.len + buf.len() as u64 > size
        {
            // Remember the smallest total the sender tried to write (reported by commit).
            self.overflow = self.overflow.max(self.len + buf.len() as u64);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "blob {}: more data than the announced {size} bytes",
                    self.sha256
                ),
            ));
        }
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Store {
    /// Where blob `sha256` lives (whether or not it is there).
    pub fn blob_location(&self, sha256: &Sha256Digest) -> PathBuf {
        self.kind_dir(ObjectKind::Blob).join(sha256.to_hex())
    }

    /// Whether the blob is in the store (no use recorded).
    pub fn has_blob(&self, sha256: &Sha256Digest) -> bool {
        self.blob_location(sha256).is_file()
    }

    /// The blob's path if present, recording the use. The path is not pinned: use
    /// [`Store::pin_blob`] or [`Store::open_blob`] while a GC may run.
    pub fn blob_path(&self, sha256: &Sha256Digest) -> Option<PathBuf> {
        let p = self.blob_location(sha256);
        let now = fsutil::system_to_timespec(std::time::SystemTime::now());
        match rfs::utimensat(
            CWD,
            &p,
            &rfs::Timestamps {
                last_access: now,
                last_modification: now,
            },
            rfs::AtFlags::SYMLINK_NOFOLLOW,
        ) {
            Ok(()) => Some(p),
            Err(Errno::NOENT) => None,
            Err(_) => p.is_file().then_some(p),
        }
    }

    /// Open a blob for reading, pinned for as long as the file stays open.
    pub fn open_blob(&self, sha256: &Sha256Digest) -> Result<Option<File>> {
        Ok(self.pin_blob(sha256)?.map(BlobRef::into_file))
    }

    /// Pin a blob (record its use, keep GC away) and return its path and open file.
    pub fn pin_blob(&self, sha256: &Sha256Digest) -> Result<Option<BlobRef>> {
        let path = self.blob_location(sha256);
        for _ in 0..100 {
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(StoreError::io("open", &path, e)),
            };
            if fsutil::lock_try(&file, LockKind::Shared).ctx("lock", &path)?
                && fsutil::same_file(&file, &path).ctx("stat", &path)?
            {
                touch_fd(&file, &path);
                return Ok(Some(BlobRef { path, file }));
            }
            // Being evicted right now.
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Ok(None)
    }

    /// Get a writer for blob `sha256` of `size` bytes (if known), or learn that it is
    /// already present. An earlier interrupted download is resumed: its bytes are
    /// re-hashed and [`BlobWriter::offset`] says where to continue. Waits while another
    /// writer (thread or process) holds the same blob's partial download. Do not ask for
    /// a second writer of the same blob while holding one in the same thread.
    pub fn blob_writer(&self, sha256: &Sha256Digest, size: Option<u64>) -> Result<BlobSlot> {
        let hex = sha256.to_hex();
        let dest = self.blob_location(sha256);
        let partial = self.path("tmp").join(format!("blob-{hex}.partial"));
        loop {
            if let Some(p) = self.blob_path(sha256) {
                return Ok(BlobSlot::Present(p));
            }
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&partial)
                .ctx("open", &partial)?;
            fsutil::lock_wait(&file, LockKind::Exclusive).ctx("lock", &partial)?;
            if !fsutil::same_file(&file, &partial).ctx("stat", &partial)? {
                continue; // committed or removed while we waited
            }
            if let Some(p) = self.blob_path(sha256) {
                let _ = std::fs::remove_file(&partial);
                return Ok(BlobSlot::Present(p));
            }
            let mut len = file.metadata().ctx("stat", &partial)?.len();
            if size.is_some_and(|s| len > s) {
                file.set_len(0).ctx("truncate", &partial)?;
                len = 0;
            }
            // Re-hash what an earlier attempt wrote.
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut done = 0u64;
            file.seek(SeekFrom::Start(0)).ctx("seek", &partial)?;
            while done < len {
                let n = file.read(&mut buf).ctx("read", &partial)?;
                if n == 0 {
                    break;
                }
                let n = n.min((len - done) as usize);
                hasher.update(&buf[..n]);
                done += n as u64;
            }
            if done != len {
                file.set_len(done).ctx("truncate", &partial)?;
            }
            file.seek(SeekFrom::Start(done)).ctx("seek", &partial)?;
            if done > 0 {
                debug!(sha256 = %hex, offset = done, "resuming partial download");
            }
            return Ok(BlobSlot::Writer(BlobWriter {
                _store: self.clone(),
                sha256: *sha256,
                size,
                file,
                partial,
                dest,
                hasher,
                len: done,
                resumed_from: done,
                overflow: 0,
                durable: self.durable(),
            }));
        }
    }

    /// Store the bytes `reader` yields as blob `sha256` (verified), unless already
    /// present. The reader starts at byte 0, so a partial download is started over.
    pub fn put_blob_from_reader(
        &self,
        sha256: &Sha256Digest,
        size: Option<u64>,
        mut reader: impl Read,
    ) -> Result<PathBuf> {
        match self.blob_writer(sha256, size)? {
            BlobSlot::Present(p) => Ok(p),
            BlobSlot::Writer(mut w) => {
                if w.offset() > 0 {
                    w.restart()?;
                }
                if let Err(e) = io::copy(&mut reader, &mut w) {
                    if w.overflow > 0 {
                        return w.commit(); // reports the size mismatch, removes the partial
                    }
                    return Err(StoreError::io("download into", w.partial.clone(), e));
                }
                w.commit()
            }
        }
    }

    /// Store `data` as a blob and return its digest.
    pub fn put_blob_bytes(&self, data: &[u8]) -> Result<Sha256Digest> {
        let d = Sha256Digest::of(data);
        self.put_blob_from_reader(&d, Some(data.len() as u64), data)?;
        Ok(d)
    }
}
