//! Directory objects: stage trees and artifacts.
//!
//! An object is built in `tmp/p-<token>.<n>-build/data/`, its `meta.json` is written
//! next to `data/`, and the whole directory is renamed to `trees/<id>` (or
//! `artifacts/<id>`) with one `renameat2(RENAME_NOREPLACE)`. Whatever is visible under
//! `trees/` is therefore complete; a directory there without a readable `meta.json`
//! can only come from outside damage and is removed when seen.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{self as rfs, CWD, RenameFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::copy::{RestoreMethod, RestoreStats, copy_tree};
use crate::error::{IoContext, Result, StoreError};
use crate::fsutil::{self, LockKind};
use crate::store::{FORMAT_VERSION, ObjectKind, Store, read_all, touch_fd};

/// What the caller says about an object it commits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CommitMeta {
    /// The stage kind (`org.kiln.apt`, ...) for trees, the artifact type (`qcow2`, ...)
    /// for artifacts. Shown by `status`.
    pub kind: String,
    /// Anything else worth keeping with the object (timings, the stage's options, ...).
    pub extra: serde_json::Value,
}

impl CommitMeta {
    /// Metadata with only a kind.
    pub fn new(kind: impl Into<String>) -> Self {
        CommitMeta {
            kind: kind.into(),
            extra: serde_json::Value::Null,
        }
    }
}

/// The `meta.json` of a committed object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// On-disk format version.
    pub format: u32,
    /// "tree" or "artifact".
    pub object: ObjectKind,
    /// The object's id (its directory name).
    pub id: String,
    /// See [`CommitMeta::kind`].
    pub kind: String,
    /// Bytes allocated on disk by `data/` (each inode counted once), measured at commit.
    pub size: u64,
    /// Number of entries under `data/`.
    pub entries: u64,
    /// Commit time, seconds since the Unix epoch.
    pub created: u64,
    /// See [`CommitMeta::extra`].
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub extra: serde_json::Value,
}

/// A work directory that becomes an object when committed; removed when dropped
/// uncommitted.
#[derive(Debug)]
pub struct ObjectBuilder {
    _store: Store,
    dir: PathBuf,
    data: PathBuf,
    armed: bool,
}

/// A stage tree being built.
pub type TreeBuilder = ObjectBuilder;

impl ObjectBuilder {
    /// The directory to fill (initially empty, mode 0755).
    pub fn path(&self) -> &Path {
        &self.data
    }

    /// Move the content out of the store instead of discarding it (for example to keep
    /// a failed stage's tree for inspection). `dest` must not exist and must be on the
    /// store's filesystem.
    pub fn persist(mut self, dest: &Path) -> Result<()> {
        std::fs::rename(&self.data, dest).ctx("move", dest)?;
        let _ = fsutil::remove_all(&self.dir);
        self.armed = false;
        Ok(())
    }
}

impl Drop for ObjectBuilder {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = fsutil::remove_all(&self.dir)
        {
            tracing::warn!(path = %self.dir.display(), error = %e, "cannot remove work directory");
        }
    }
}

/// A committed object, pinned (GC will not evict it) for as long as this value lives.
#[derive(Debug)]
pub struct ObjectRef {
    kind: ObjectKind,
    dir: PathBuf,
    meta: ObjectMeta,
    last_used: SystemTime,
    _pin: File,
}

/// A committed stage tree.
pub type TreeRef = ObjectRef;
/// A committed artifact.
pub type ArtifactRef = ObjectRef;

impl ObjectRef {
    /// The object's id.
    pub fn id(&self) -> &str {
        &self.meta.id
    }

    /// Tree or artifact.
    pub fn kind(&self) -> ObjectKind {
        self.kind
    }

    /// The object's content, to be read only: never modify anything under it.
    pub fn path(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Its metadata.
    pub fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    /// When it was last looked up (or committed).
    pub fn last_used(&self) -> SystemTime {
        self.last_used
    }

    /// Commit time.
    pub fn created(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.meta.created)
    }

    /// Materialise the content into `dest` (missing or an empty directory).
    pub fn restore(&self, dest: &Path, method: RestoreMethod) -> Result<RestoreStats> {
        copy_tree(&self.path(), dest, method)
    }
}

/// Check that `id` can be used as a directory name.
pub(crate) fn validate_id(id: &str) -> Result<()> {
    let bad = |reason| {
        Err(StoreError::InvalidId {
            id: id.to_string(),
            reason,
        })
    };
    if id.is_empty() {
        return bad("empty");
    }
    if id.len() > 128 {
        return bad("longer than 128 characters");
    }
    if id.starts_with('.') {
        return bad("starts with '.'");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("contains a character other than A-Z a-z 0-9 . _ -");
    }
    Ok(())
}

/// Whether the object directory `dir` is complete: a valid `meta.json` and `data/`.
pub(crate) fn is_complete(dir: &Path, kind: ObjectKind, id: &str) -> bool {
    validate_id(id).is_ok()
        && read_meta(&dir.join("meta.json"), kind, id).is_ok()
        && dir.join("data").is_dir()
}

/// Read and check a `meta.json`.
pub(crate) fn read_meta(path: &Path, kind: ObjectKind, id: &str) -> Result<ObjectMeta> {
    let f = File::open(path).ctx("open", path)?;
    parse_meta(&f, path, kind, id)
}

fn parse_meta(f: &File, path: &Path, kind: ObjectKind, id: &str) -> Result<ObjectMeta> {
    let data = read_all(f).ctx("read", path)?;
    let meta: ObjectMeta = serde_json::from_slice(&data).map_err(|e| StoreError::CorruptMeta {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if meta.id != id || meta.object != kind || meta.format != FORMAT_VERSION {
        return Err(StoreError::CorruptMeta {
            path: path.to_path_buf(),
            reason: format!(
                "it describes {} {} (format {}), expected {kind} {id} (format {FORMAT_VERSION})",
                meta.object, meta.id, meta.format
            ),
        });
    }
    Ok(meta)
}

enum Lookup {
    Found(ObjectRef),
    Absent,
    /// Being removed by a GC, or replaced under our feet.
    Busy,
}

impl Store {
    /// Start a new stage tree in a fresh empty directory under `tmp/`.
    pub fn begin_tree(&self) -> Result<TreeBuilder> {
        self.begin_object()
    }

    /// Start a new artifact (the files of an export) under `tmp/`.
    pub fn begin_artifact(&self) -> Result<ObjectBuilder> {
        self.begin_object()
    }

    fn begin_object(&self) -> Result<ObjectBuilder> {
        let dir = self.tmp_name("build");
        std::fs::create_dir(&dir).ctx("create directory", &dir)?;
        let data = dir.join("data");
        let b = ObjectBuilder {
            _store: self.clone(),
            dir,
            data,
            armed: true,
        };
        std::fs::create_dir(&b.data).ctx("create directory", &b.data)?;
        Ok(b)
    }

    /// Commit a built tree as `trees/<id>` and return it pinned. If the id is already
    /// committed (another process built the same stage meanwhile), theirs is kept, ours
    /// is discarded, and theirs is returned: the first commit wins and neither fails.
    pub fn commit_tree(&self, builder: TreeBuilder, id: &str, meta: CommitMeta) -> Result<TreeRef> {
        self.commit_object(ObjectKind::Tree, builder, id, meta)
    }

    /// Commit an artifact as `artifacts/<id>`; see [`Store::commit_tree`].
    pub fn commit_artifact(
        &self,
        builder: ObjectBuilder,
        id: &str,
        meta: CommitMeta,
    ) -> Result<ArtifactRef> {
        self.commit_object(ObjectKind::Artifact, builder, id, meta)
    }

    /// Look a tree up, pin it and record the use. `None` if absent, or if it was damaged
    /// (then it is removed) or is being evicted at this very moment.
    pub fn lookup_tree(&self, id: &str) -> Result<Option<TreeRef>> {
        self.lookup(ObjectKind::Tree, id)
    }

    /// Look an artifact up; see [`Store::lookup_tree`].
    pub fn lookup_artifact(&self, id: &str) -> Result<Option<ArtifactRef>> {
        self.lookup(ObjectKind::Artifact, id)
    }

    /// Whether a tree is committed (no pin, no use recorded).
    pub fn has_tree(&self, id: &str) -> bool {
        validate_id(id).is_ok()
            && self
                .kind_dir(ObjectKind::Tree)
                .join(id)
                .join("meta.json")
                .is_file()
    }

    /// Materialise tree `id` into `dest` (missing, or an empty directory) with the
    /// store's restore method.
    pub fn restore_tree(&self, id: &str, dest: &Path) -> Result<RestoreStats> {
        self.restore_tree_with(id, dest, self.inner.opts.restore_method)
    }

    /// [`Store::restore_tree`] with an explicit method.
    pub fn restore_tree_with(
        &self,
        id: &str,
        dest: &Path,
        method: RestoreMethod,
    ) -> Result<RestoreStats> {
        let t = self.lookup_tree(id)?.ok_or_else(|| StoreError::NotFound {
            kind: "tree",
            id: id.to_string(),
            root: self.root().to_path_buf(),
        })?;
        t.restore(dest, method)
    }

    /// Start a tree from a committed one: a new builder holding a copy of `parent`.
    pub fn begin_tree_from(&self, parent: &str) -> Result<TreeBuilder> {
        self.begin_tree_from_with(parent, self.inner.opts.restore_method)
    }

    /// [`Store::begin_tree_from`] with an explicit method. With
    /// [`RestoreMethod::Hardlink`] the caller promises never to modify a file of the tree
    /// in place (only to create, replace by rename, or remove entries), since the files
    /// are the stored ones.
    pub fn begin_tree_from_with(&self, parent: &str, method: RestoreMethod) -> Result<TreeBuilder> {
        let b = self.begin_tree()?;
        self.restore_tree_with(parent, b.path(), method)?;
        Ok(b)
    }

    fn commit_object(
        &self,
        kind: ObjectKind,
        mut builder: ObjectBuilder,
        id: &str,
        cm: CommitMeta,
    ) -> Result<ObjectRef> {
        validate_id(id)?;
        let started = std::time::Instant::now();
        let (size, entries) = fsutil::disk_usage(&builder.data).ctx("measure", &builder.data)?;
        let now = SystemTime::now();
        let meta = ObjectMeta {
            format: FORMAT_VERSION,
            object: kind,
            id: id.to_string(),
            kind: cm.kind,
            size,
            entries,
            created: now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs(),
            extra: cm.extra,
        };
        let meta_path = builder.dir.join("meta.json");
        {
            let mut f = File::create(&meta_path).ctx("create", &meta_path)?;
            f.write_all(&serde_json::to_vec_pretty(&meta).expect("serialisable"))
                .ctx("write", &meta_path)?;
            fsutil::set_times(&f, now).ctx("set times of", &meta_path)?;
        }
        // Pin before the object becomes visible, so a GC can never take it between our
        // rename and our return.
        let pin = File::open(&meta_path).ctx("open", &meta_path)?;
        fsutil::lock_wait(&pin, LockKind::Shared).ctx("lock", &meta_path)?;
        if self.durable() {
            fsutil::syncfs(&builder.dir).ctx("sync", &builder.dir)?;
        }
        let parent = self.kind_dir(kind);
        let dest = parent.join(id);
        for attempt in 0.. {
            match rfs::renameat_with(CWD, &builder.dir, CWD, &dest, RenameFlags::NOREPLACE) {
                Ok(()) => {
                    builder.armed = false;
                    if self.durable() {
                        fsutil::fsync_dir(&parent).ctx("sync", &parent)?;
                    }
                    debug!(%kind, id, size, entries, elapsed = ?started.elapsed(), "committed");
                    return Ok(ObjectRef {
                        kind,
                        dir: dest,
                        meta,
                        last_used: now,
                        _pin: pin,
                    });
                }
                Err(Errno::EXIST | Errno::NOTEMPTY) => match self.lookup_once(kind, id)? {
                    Lookup::Found(theirs) => {
                        debug!(%kind, id, "already committed by someone else; keeping theirs");
                        drop(builder);
                        return Ok(theirs);
                    }
                    // Theirs was damaged (and is now removed) or is being evicted: retry.
                    Lookup::Absent | Lookup::Busy if attempt < 1000 => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    _ => {
                        return Err(StoreError::Busy {
                            path: dest,
                            what: "the object stays locked by another process",
                        });
                    }
                },
                Err(e) => return Err(StoreError::io("rename into place", &dest, e.into())),
            }
        }
        unreachable!()
    }

    pub(crate) fn lookup(&self, kind: ObjectKind, id: &str) -> Result<Option<ObjectRef>> {
        validate_id(id)?;
        for _ in 0..100 {
            match self.lookup_once(kind, id)? {
                Lookup::Found(r) => return Ok(Some(r)),
                Lookup::Absent => return Ok(None),
                // A GC holds it to delete it, or it was replaced: look again.
                Lookup::Busy => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        Ok(None)
    }

    fn lookup_once(&self, kind: ObjectKind, id: &str) -> Result<Lookup> {
        let dir = self.kind_dir(kind).join(id);
        let meta_path = dir.join("meta.json");
        let f = match File::open(&meta_path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if fsutil::lstat(&dir).is_ok() {
                    self.quarantine(kind, id, "meta.json missing")?;
                }
                return Ok(Lookup::Absent);
            }
            Err(e) => return Err(StoreError::io("open", &meta_path, e)),
        };
        if !fsutil::lock_try(&f, LockKind::Shared).ctx("lock", &meta_path)? {
            return Ok(Lookup::Busy);
        }
        if !fsutil::same_file(&f, &meta_path).ctx("stat", &meta_path)? {
            return Ok(Lookup::Busy);
        }
        let meta = match parse_meta(&f, &meta_path, kind, id) {
            Ok(m) => m,
            Err(e) => {
                drop(f);
                self.quarantine(kind, id, &e.to_string())?;
                return Ok(Lookup::Absent);
            }
        };
        if !dir.join("data").is_dir() {
            drop(f);
            self.quarantine(kind, id, "data/ missing")?;
            return Ok(Lookup::Absent);
        }
        let last_used = touch_fd(&f, &meta_path);
        Ok(Lookup::Found(ObjectRef {
            kind,
            dir,
            meta,
            last_used,
            _pin: f,
        }))
    }
}
