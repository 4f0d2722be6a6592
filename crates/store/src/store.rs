//! The [`Store`] handle: opening, layout, configuration, locks and start-up cleanup.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{self as rfs, CWD, RenameFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::copy::RestoreMethod;
use crate::error::{IoContext, Result, StoreError};
use crate::fsutil::{self, LockKind};

/// The on-disk format version this code reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// The default size budget is 10% of the store's filesystem, at most this.
pub const DEFAULT_BUDGET_CAP: u64 = 20 << 30;

const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by kiln (the kiln image builder's store).\n\
# For information about cache directory tags, see https://bford.info/cachedir/\n";

/// The kinds of object a store holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    /// A committed stage output tree (`trees/<stage-id>/`).
    Tree,
    /// A build artifact (`artifacts/<id>/`).
    Artifact,
    /// A verified download (`blobs/sha256/<hex>`).
    Blob,
    /// An interrupted download kept for resuming (`tmp/blob-<hex>.partial`); never
    /// visible as a blob, but it takes space and is evicted like the rest.
    Partial,
}

impl ObjectKind {
    /// "tree", "artifact", "blob", "partial".
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Tree => "tree",
            ObjectKind::Artifact => "artifact",
            ObjectKind::Blob => "blob",
            ObjectKind::Partial => "partial",
        }
    }

    pub(crate) fn dir_name(self) -> &'static str {
        match self {
            ObjectKind::Tree => "trees",
            ObjectKind::Artifact => "artifacts",
            ObjectKind::Blob => "blobs/sha256",
            ObjectKind::Partial => "tmp",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How hard a commit works to survive a power loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// Data reaches the disk before an object becomes visible: blobs are fsynced; a
    /// tree is flushed with one `syncfs(2)` (much cheaper than an fsync per file) before
    /// its rename; directories are fsynced after renames. The default.
    #[default]
    Full,
    /// Atomic renames only: a killed process never leaves a half object, but after a
    /// power loss a visible object may have lost data. For tests and throw-away stores.
    NoSync,
}

/// Options of an opened store (not persisted).
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreOptions {
    /// See [`Durability`].
    pub durability: Durability,
    /// The method [`Store::restore_tree`] uses.
    pub restore_method: RestoreMethod,
}

/// The store's size budget, persisted in `store.json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Budget {
    /// 10% of the filesystem holding the store, at most [`DEFAULT_BUDGET_CAP`] (20 GiB).
    #[default]
    Auto,
    /// A fixed number of bytes.
    Bytes(u64),
    /// No eviction.
    Unlimited,
}

/// Contents of `store.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreConfig {
    /// On-disk format version ([`FORMAT_VERSION`]).
    pub format: u32,
    /// The size budget that [`Store::gc_to_budget`] enforces.
    #[serde(default)]
    pub budget: Budget,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            format: FORMAT_VERSION,
            budget: Budget::Auto,
        }
    }
}

/// A content-addressed store rooted at a directory. Cheap to clone; `Send + Sync`.
///
/// Layout:
///
/// ```text
/// <root>/store.json          format version and size budget
/// <root>/CACHEDIR.TAG        so backup tools skip the store
/// <root>/store.lock          flock: LOCK_SH by every open store, LOCK_EX for exclusive use
/// <root>/gc.lock             flock: LOCK_EX while a GC runs
/// <root>/blobs/sha256/<hex>  verified downloads (flock LOCK_SH on the file = pinned)
/// <root>/trees/<id>/meta.json + data/      committed stage trees (meta.json locked = pinned)
/// <root>/artifacts/<id>/meta.json + data/  build artifacts
/// <root>/tmp/p-<token>.lock  one per open store, flock LOCK_EX while its process lives
/// <root>/tmp/p-<token>.*     work in progress of that store (removed once it is dead)
/// <root>/tmp/blob-<hex>.partial  interrupted downloads, resumable
/// ```
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub root: PathBuf,
    pub opts: StoreOptions,
    pub token: String,
    pub exclusive: bool,
    seq: AtomicU64,
    _owner_lock: File,
    _store_lock: File,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.inner.root)
            .field("token", &self.inner.token)
            .field("exclusive", &self.inner.exclusive)
            .finish()
    }
}

static PROCESS_SEQ: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// Open (creating if needed) the store at `root` with default options, for shared
    /// use. Cleans up what dead processes left in `tmp/` and removes damaged objects.
    pub fn open(root: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(root, StoreOptions::default())
    }

    /// [`Store::open`] with options.
    pub fn open_with(root: impl AsRef<Path>, opts: StoreOptions) -> Result<Store> {
        Store::open_impl(root.as_ref(), opts, false)
    }

    /// Open the store for exclusive use (no other process may have it open; fails with
    /// [`StoreError::Busy`] otherwise). Needed by [`Store::clear`].
    pub fn open_exclusive(root: impl AsRef<Path>, opts: StoreOptions) -> Result<Store> {
        Store::open_impl(root.as_ref(), opts, true)
    }

    fn open_impl(root: &Path, opts: StoreOptions, exclusive: bool) -> Result<Store> {
        for sub in ["", "blobs/sha256", "trees", "artifacts", "tmp"] {
            let p = root.join(sub);
            std::fs::create_dir_all(&p).ctx("create directory", &p)?;
        }
        let root = std::fs::canonicalize(root).ctx("resolve", root)?;
        let lock_path = root.join("store.lock");
        let store_lock = open_lock_file(&lock_path)?;
        let kind = if exclusive {
            LockKind::Exclusive
        } else {
            LockKind::Shared
        };
        if !fsutil::lock_try(&store_lock, kind).ctx("lock", &lock_path)? {
            return Err(StoreError::Busy {
                path: lock_path,
                what: if exclusive {
                    "other kiln processes are using it; retry when they have finished"
                } else {
                    "another kiln process has it open exclusively (maintenance); retry when it \
                     has finished"
                },
            });
        }
        let (token, owner_lock) = acquire_owner(&root.join("tmp"))?;
        let inner = Inner {
            root,
            opts,
            token,
            exclusive,
            seq: AtomicU64::new(0),
            _owner_lock: owner_lock,
            _store_lock: store_lock,
        };
        let store = Store {
            inner: Arc::new(inner),
        };
        store.init_files()?;
        store.clean_tmp()?;
        store.remove_damaged()?;
        debug!(root = %store.root().display(), token = %store.inner.token, "store opened");
        Ok(store)
    }

    /// The store's root directory (absolute).
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The token naming this handle's work in `tmp/` (`tmp/p-<token>.lock`,
    /// `tmp/p-<token>.*`).
    pub fn owner_token(&self) -> &str {
        &self.inner.token
    }

    /// The options this handle was opened with.
    pub fn options(&self) -> StoreOptions {
        self.inner.opts
    }

    /// Whether this handle holds the store exclusively.
    pub fn is_exclusive(&self) -> bool {
        self.inner.exclusive
    }

    pub(crate) fn durable(&self) -> bool {
        self.inner.opts.durability == Durability::Full
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.inner.root.join(rel)
    }

    pub(crate) fn kind_dir(&self, kind: ObjectKind) -> PathBuf {
        self.inner.root.join(kind.dir_name())
    }

    /// A fresh name under `tmp/` owned by this store handle.
    pub(crate) fn tmp_name(&self, what: &str) -> PathBuf {
        let n = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        self.inner
            .root
            .join("tmp")
            .join(format!("p-{}.{n}-{what}", self.inner.token))
    }

    fn init_files(&self) -> Result<()> {
        let tag = self.path("CACHEDIR.TAG");
        if !tag.exists() {
            fsutil::write_atomic(
                &self.tmp_name("tag"),
                &tag,
                CACHEDIR_TAG.as_bytes(),
                self.durable(),
            )
            .ctx("write", &tag)?;
        }
        let cfg_path = self.path("store.json");
        if !cfg_path.exists() {
            // Two processes may initialise at once: create without replacing.
            let tmp = self.tmp_name("store-json");
            let data = serde_json::to_vec_pretty(&StoreConfig::default()).expect("serialisable");
            std::fs::write(&tmp, data).ctx("write", &tmp)?;
            match rfs::renameat_with(CWD, &tmp, CWD, &cfg_path, RenameFlags::NOREPLACE) {
                Ok(()) => {}
                Err(Errno::EXIST) => {
                    let _ = std::fs::remove_file(&tmp);
                }
                Err(e) => return Err(StoreError::io("create", &cfg_path, e.into())),
            }
        }
        let cfg = self.config()?;
        if cfg.format != FORMAT_VERSION {
            return Err(StoreError::UnsupportedFormat {
                path: cfg_path,
                found: cfg.format,
                supported: FORMAT_VERSION,
            });
        }
        Ok(())
    }

    /// The persisted configuration (`store.json`).
    pub fn config(&self) -> Result<StoreConfig> {
        let p = self.path("store.json");
        let data = std::fs::read(&p).ctx("read", &p)?;
        serde_json::from_slice(&data).map_err(|e| StoreError::CorruptMeta {
            path: p,
            reason: format!("{e}; delete the file to reset the store's settings"),
        })
    }

    /// Persist a new size budget.
    pub fn set_budget(&self, budget: Budget) -> Result<()> {
        let mut cfg = self.config()?;
        cfg.budget = budget;
        let p = self.path("store.json");
        let data = serde_json::to_vec_pretty(&cfg).expect("serialisable");
        fsutil::write_atomic(&self.tmp_name("store-json"), &p, &data, self.durable())
            .ctx("write", &p)
    }

    /// The budget in bytes that [`Store::gc_to_budget`] enforces (`u64::MAX` when
    /// unlimited).
    pub fn budget_bytes(&self) -> Result<u64> {
        Ok(match self.config()?.budget {
            Budget::Bytes(n) => n,
            Budget::Unlimited => u64::MAX,
            Budget::Auto => {
                let st = rfs::statvfs(self.root()).ctx("statvfs", self.root())?;
                let total = st.f_blocks.saturating_mul(st.f_frsize);
                (total / 10).min(DEFAULT_BUDGET_CAP)
            }
        })
    }

    /// Remove what dead store handles left in `tmp/`.
    ///
    /// Every handle owns `tmp/p-<token>.lock`, flock-ed exclusively for its life (the
    /// kernel drops the lock when the process dies, even by SIGKILL), and names all its
    /// work `tmp/p-<token>.*`. A lock we can take belongs to a dead handle: its entries
    /// and then the lock file are removed. Entries whose lock file is gone are removed
    /// too. Partial downloads (`blob-*.partial`) are kept for resuming.
    fn clean_tmp(&self) -> Result<()> {
        let tmp = self.path("tmp");
        let names = list_dir(&tmp)?;
        let own = format!("p-{}.", self.inner.token);
        let mut live_tokens = std::collections::HashSet::new();
        for name in &names {
            let Some(tok) = name
                .strip_prefix("p-")
                .and_then(|n| n.strip_suffix(".lock"))
            else {
                continue;
            };
            if name.starts_with(&own) {
                live_tokens.insert(tok.to_string());
                continue;
            }
            let lock_path = tmp.join(name);
            let f = match File::open(&lock_path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("open", &lock_path, e)),
            };
            if !fsutil::lock_try(&f, LockKind::Exclusive).ctx("lock", &lock_path)? {
                live_tokens.insert(tok.to_string());
                continue;
            }
            if !fsutil::same_file(&f, &lock_path).ctx("stat", &lock_path)? {
                continue;
            }
            let prefix = format!("p-{tok}.");
            for entry in names
                .iter()
                .filter(|n| n.starts_with(&prefix) && *n != name)
            {
                debug!(entry, "removing leftover of a dead process");
                fsutil::remove_all(&tmp.join(entry)).ctx("remove", tmp.join(entry))?;
            }
            std::fs::remove_file(&lock_path)
                .or_else(ignore_not_found)
                .ctx("remove", &lock_path)?;
        }
        // Entries whose owner's lock file no longer exists.
        for name in &names {
            let Some(rest) = name.strip_prefix("p-") else {
                continue;
            };
            let Some((tok, suffix)) = rest.split_once('.') else {
                continue;
            };
            if suffix == "lock" {
                continue;
            }
            if live_tokens.contains(tok) || tmp.join(format!("p-{tok}.lock")).exists() {
                continue;
            }
            debug!(entry = name, "removing orphaned temporary entry");
            fsutil::remove_all(&tmp.join(name)).ctx("remove", tmp.join(name))?;
        }
        Ok(())
    }

    /// Remove objects that cannot be complete: tree and artifact directories without
    /// their `meta.json`, and files in `blobs/sha256/` whose names are not digests.
    fn remove_damaged(&self) -> Result<()> {
        for kind in [ObjectKind::Tree, ObjectKind::Artifact] {
            let dir = self.kind_dir(kind);
            for name in list_dir(&dir)? {
                let ok = crate::object::validate_id(&name).is_ok()
                    && dir.join(&name).join("meta.json").is_file();
                if !ok {
                    self.quarantine(kind, &name, "no meta.json")?;
                }
            }
        }
        let blobs = self.kind_dir(ObjectKind::Blob);
        for name in list_dir(&blobs)? {
            if crate::Sha256Digest::from_hex(&name).is_err()
                || name.bytes().any(|b| b.is_ascii_uppercase())
            {
                warn!(name, "removing a stray file from the blob directory");
                fsutil::remove_all(&blobs.join(&name)).ctx("remove", blobs.join(&name))?;
            }
        }
        Ok(())
    }

    /// Take a damaged object out of sight and delete it.
    pub(crate) fn quarantine(&self, kind: ObjectKind, id: &str, reason: &str) -> Result<()> {
        let dir = self.kind_dir(kind).join(id);
        let q = self.tmp_name("bad");
        match std::fs::rename(&dir, &q) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::io("move aside", &dir, e)),
        }
        // Between our check and the rename, another process may have removed the damaged
        // object and committed a good one under the same id: put that one back.
        if crate::object::is_complete(&q, kind, id) {
            debug!(%kind, id, "moved a complete object aside by mistake; putting it back");
            if rfs::renameat_with(CWD, &q, CWD, &dir, RenameFlags::NOREPLACE).is_ok() {
                return Ok(());
            }
        } else {
            warn!(%kind, id, reason, "removing an incomplete or damaged object");
        }
        fsutil::remove_all(&q).ctx("remove", &q)
    }

    /// Remove every object (trees, artifacts, blobs, partial downloads). Needs a store
    /// opened with [`Store::open_exclusive`].
    pub fn clear(&self) -> Result<()> {
        if !self.inner.exclusive {
            return Err(StoreError::NotExclusive {
                op: "clearing the store",
                path: self.root().to_path_buf(),
            });
        }
        for kind in [ObjectKind::Tree, ObjectKind::Artifact, ObjectKind::Blob] {
            let dir = self.kind_dir(kind);
            for name in list_dir(&dir)? {
                let q = self.tmp_name("clear");
                std::fs::rename(dir.join(&name), &q).ctx("move aside", dir.join(&name))?;
                fsutil::remove_all(&q).ctx("remove", &q)?;
            }
        }
        let tmp = self.path("tmp");
        for name in list_dir(&tmp)? {
            if name.starts_with("blob-") {
                fsutil::remove_all(&tmp.join(&name)).ctx("remove", tmp.join(&name))?;
            }
        }
        Ok(())
    }
}

pub(crate) fn ignore_not_found(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

pub(crate) fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .ctx("open", path)
}

/// Names in a directory (UTF-8 only; others are skipped with a warning).
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).ctx("read directory", dir)? {
        let e = e.ctx("read directory", dir)?;
        match e.file_name().into_string() {
            Ok(s) => out.push(s),
            Err(n) => warn!(dir = %dir.display(), name = ?n, "ignoring a non-UTF-8 name"),
        }
    }
    Ok(out)
}

/// Create and lock `tmp/p-<token>.lock`. The lock is taken on the opened file and then
/// checked to still be the one named so: a cleaner may have removed a file of the same
/// name between our open and our lock (it only ever removes lock files it holds).
fn acquire_owner(tmp: &Path) -> Result<(String, File)> {
    loop {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let token = format!(
            "{:x}{:x}{:x}",
            std::process::id(),
            nanos & 0xffff_ffff_ffff,
            PROCESS_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = tmp.join(format!("p-{token}.lock"));
        let f = open_lock_file(&path)?;
        if !fsutil::lock_try(&f, LockKind::Exclusive).ctx("lock", &path)? {
            continue;
        }
        if fsutil::same_file(&f, &path).ctx("stat", &path)? {
            return Ok((token, f));
        }
    }
}

/// Read a whole small file from an open handle.
pub(crate) fn read_all(mut f: &File) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    f.read_to_end(&mut v)?;
    Ok(v)
}

pub(crate) fn touch_fd(f: impl AsFd, path: &Path) -> SystemTime {
    let now = SystemTime::now();
    if let Err(e) = fsutil::set_times(f, now) {
        debug!(path = %path.display(), error = %e, "cannot record last use");
    }
    now
}
