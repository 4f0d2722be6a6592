//! Listing, status, LRU garbage collection and verification.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use crate::digest::Sha256Digest;
use crate::error::{IoContext, Result, StoreError};
use crate::fsutil::{self, LockKind};
use crate::object::read_meta;
use crate::store::{Budget, ObjectKind, Store, list_dir, open_lock_file};

/// One object of the store, as listed by [`Store::objects`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObjectInfo {
    /// What it is.
    pub kind: ObjectKind,
    /// Its id (stage id, artifact id, or sha256 hex for blobs and partials).
    pub id: String,
    /// Bytes allocated on disk.
    pub bytes: u64,
    /// Last use (commit, lookup, open, pin).
    #[serde(with = "unix_secs")]
    pub last_used: SystemTime,
    /// The stage kind or artifact type (trees and artifacts only).
    pub label: Option<String>,
}

/// Count and size of one kind of object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KindStatus {
    /// How many.
    pub count: u64,
    /// Bytes allocated on disk.
    pub bytes: u64,
}

impl KindStatus {
    fn add(&mut self, bytes: u64) {
        self.count += 1;
        self.bytes += bytes;
    }
}

/// What [`Store::status`] reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoreStatus {
    /// The store's root.
    pub path: PathBuf,
    /// The configured budget.
    pub budget: Budget,
    /// The budget in bytes (`u64::MAX` when unlimited).
    pub budget_bytes: u64,
    /// All objects together.
    pub total: KindStatus,
    /// Committed stage trees.
    pub trees: KindStatus,
    /// Artifacts.
    pub artifacts: KindStatus,
    /// Verified downloads.
    pub blobs: KindStatus,
    /// Interrupted downloads.
    pub partials: KindStatus,
    /// Trees by stage kind.
    pub tree_kinds: BTreeMap<String, KindStatus>,
    /// Free bytes on the store's filesystem (for unprivileged users).
    pub fs_available: u64,
}

/// What [`Store::gc`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// The budget enforced.
    pub budget: u64,
    /// Bytes before.
    pub before: u64,
    /// Bytes after.
    pub after: u64,
    /// Objects removed, least recently used first.
    pub evicted: Vec<ObjectInfo>,
    /// Objects that would have been removed but are pinned by a running build.
    pub pinned: Vec<ObjectInfo>,
}

/// What [`Store::verify`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Blobs hashed.
    pub blobs_checked: u64,
    /// Trees and artifacts whose metadata was checked.
    pub objects_checked: u64,
    /// Blobs whose content did not match their name (removed unless pinned).
    pub bad_blobs: Vec<String>,
}

mod unix_secs {
    use std::time::{SystemTime, UNIX_EPOCH};

    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(
            t.duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
        )
    }
}

enum Evict {
    Done,
    Pinned,
    /// Used after it was listed: it is no longer least recently used.
    Used,
    /// Someone else removed it.
    Gone,
}

impl Store {
    /// Every object with its size and last use: O(number of objects), no tree walk
    /// (sizes were measured at commit).
    pub fn objects(&self) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        for kind in [ObjectKind::Tree, ObjectKind::Artifact] {
            let dir = self.kind_dir(kind);
            for id in list_dir(&dir)? {
                let meta_path = dir.join(&id).join("meta.json");
                let meta = match read_meta(&meta_path, kind, &id) {
                    Ok(m) => m,
                    Err(e) if e.io_kind() == Some(io::ErrorKind::NotFound) => continue,
                    Err(e) => {
                        debug!(error = %e, "skipping unreadable object");
                        continue;
                    }
                };
                let Ok(st) = fsutil::lstat(&meta_path) else {
                    continue;
                };
                out.push(ObjectInfo {
                    kind,
                    id,
                    bytes: meta.size + st.disk_bytes(),
                    last_used: st.mtime_system(),
                    label: Some(meta.kind),
                });
            }
        }
        let blobs = self.kind_dir(ObjectKind::Blob);
        for id in list_dir(&blobs)? {
            if let Ok(st) = fsutil::lstat(&blobs.join(&id)) {
                out.push(ObjectInfo {
                    kind: ObjectKind::Blob,
                    id,
                    bytes: st.disk_bytes(),
                    last_used: st.mtime_system(),
                    label: None,
                });
            }
        }
        let tmp = self.path("tmp");
        for name in list_dir(&tmp)? {
            let Some(hex) = name
                .strip_prefix("blob-")
                .and_then(|n| n.strip_suffix(".partial"))
            else {
                continue;
            };
            if let Ok(st) = fsutil::lstat(&tmp.join(&name)) {
                out.push(ObjectInfo {
                    kind: ObjectKind::Partial,
                    id: hex.to_string(),
                    bytes: st.disk_bytes(),
                    last_used: st.mtime_system(),
                    label: None,
                });
            }
        }
        Ok(out)
    }

    /// Counts and sizes by kind, the budget, the path.
    pub fn status(&self) -> Result<StoreStatus> {
        let cfg = self.config()?;
        let mut s = StoreStatus {
            path: self.root().to_path_buf(),
            budget: cfg.budget,
            budget_bytes: self.budget_bytes()?,
            total: KindStatus::default(),
            trees: KindStatus::default(),
            artifacts: KindStatus::default(),
            blobs: KindStatus::default(),
            partials: KindStatus::default(),
            tree_kinds: BTreeMap::new(),
            fs_available: rustix::fs::statvfs(self.root())
                .map(|v| v.f_bavail.saturating_mul(v.f_frsize))
                .unwrap_or(0),
        };
        for o in self.objects()? {
            s.total.add(o.bytes);
            match o.kind {
                ObjectKind::Tree => {
                    s.trees.add(o.bytes);
                    s.tree_kinds
                        .entry(o.label.clone().unwrap_or_default())
                        .or_default()
                        .add(o.bytes);
                }
                ObjectKind::Artifact => s.artifacts.add(o.bytes),
                ObjectKind::Blob => s.blobs.add(o.bytes),
                ObjectKind::Partial => s.partials.add(o.bytes),
            }
        }
        Ok(s)
    }

    /// Enforce the configured budget (see [`Store::gc`]). The executor calls this
    /// after each build.
    pub fn gc_to_budget(&self) -> Result<GcReport> {
        self.gc(self.budget_bytes()?)
    }

    /// Evict least-recently-used objects (trees, artifacts, blobs and partial
    /// downloads alike) until the store uses at most `budget` bytes. Objects pinned by
    /// a running build (a live [`crate::ObjectRef`], [`crate::BlobRef`], open blob or
    /// blob writer, in any process) are skipped. One GC runs at a time (`gc.lock`);
    /// builds go on meanwhile.
    pub fn gc(&self, budget: u64) -> Result<GcReport> {
        let lock_path = self.path("gc.lock");
        let lock = open_lock_file(&lock_path)?;
        fsutil::lock_wait(&lock, LockKind::Exclusive).ctx("lock", &lock_path)?;
        let mut objs = self.objects()?;
        objs.sort_by(|a, b| a.last_used.cmp(&b.last_used).then(a.id.cmp(&b.id)));
        let before: u64 = objs.iter().map(|o| o.bytes).sum();
        let mut report = GcReport {
            budget,
            before,
            after: before,
            ..GcReport::default()
        };
        for o in objs {
            if report.after <= budget {
                break;
            }
            match self.evict(&o)? {
                Evict::Done => {
                    debug!(kind = %o.kind, id = %o.id, bytes = o.bytes, "evicted");
                    report.after -= o.bytes;
                    report.evicted.push(o);
                }
                Evict::Gone => report.after -= o.bytes,
                Evict::Pinned => report.pinned.push(o),
                Evict::Used => {}
            }
        }
        if !report.evicted.is_empty() {
            info!(
                evicted = report.evicted.len(),
                freed = report.before - report.after,
                after = report.after,
                budget,
                "store garbage-collected"
            );
        }
        Ok(report)
    }

    fn evict(&self, o: &ObjectInfo) -> Result<Evict> {
        // The file whose flock pins the object, and what to remove.
        let (lock_path, target) = match o.kind {
            ObjectKind::Tree | ObjectKind::Artifact => {
                let dir = self.kind_dir(o.kind).join(&o.id);
                (dir.join("meta.json"), dir)
            }
            ObjectKind::Blob => {
                let p = self.kind_dir(ObjectKind::Blob).join(&o.id);
                (p.clone(), p)
            }
            ObjectKind::Partial => {
                let p = self.path("tmp").join(format!("blob-{}.partial", o.id));
                (p.clone(), p)
            }
        };
        let f = match File::open(&lock_path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Evict::Gone),
            Err(e) => return Err(StoreError::io("open", &lock_path, e)),
        };
        if !fsutil::lock_try(&f, LockKind::Exclusive).ctx("lock", &lock_path)? {
            return Ok(Evict::Pinned);
        }
        if !fsutil::same_file(&f, &lock_path).ctx("stat", &lock_path)? {
            return Ok(Evict::Gone);
        }
        if fsutil::fstat(&f).ctx("stat", &lock_path)?.mtime_system() > o.last_used {
            return Ok(Evict::Used);
        }
        match o.kind {
            ObjectKind::Blob | ObjectKind::Partial => {
                std::fs::remove_file(&target)
                    .or_else(crate::store::ignore_not_found)
                    .ctx("remove", &target)?;
            }
            ObjectKind::Tree | ObjectKind::Artifact => {
                // One rename takes it out of sight; deleting the content may take a while.
                let q = self.tmp_name("gc");
                match std::fs::rename(&target, &q) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Evict::Gone),
                    Err(e) => return Err(StoreError::io("move aside", &target, e)),
                }
                drop(f);
                fsutil::remove_all(&q).ctx("remove", &q)?;
            }
        }
        Ok(Evict::Done)
    }

    /// Check the whole store: hash every blob against its name and read every tree's
    /// and artifact's metadata. Damaged objects are removed (blobs only when not
    /// pinned). Reads every blob: for `kiln store verify`, not for every build.
    pub fn verify(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        for kind in [ObjectKind::Tree, ObjectKind::Artifact] {
            for id in list_dir(&self.kind_dir(kind))? {
                report.objects_checked += 1;
                // A lookup removes what it finds damaged.
                let _ = self.lookup(kind, &id)?;
            }
        }
        let blobs = self.kind_dir(ObjectKind::Blob);
        let mut buf = vec![0u8; 1 << 20];
        for name in list_dir(&blobs)? {
            let path = blobs.join(&name);
            let Ok(expected) = Sha256Digest::from_hex(&name) else {
                continue;
            };
            let mut f = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("open", &path, e)),
            };
            report.blobs_checked += 1;
            let mut h = Sha256::new();
            loop {
                let n = f.read(&mut buf).ctx("read", &path)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            if Sha256Digest::from_hasher(h) != expected {
                warn!(path = %path.display(), "blob content does not match its sha256");
                report.bad_blobs.push(name.clone());
                if fsutil::lock_try(&f, LockKind::Exclusive).ctx("lock", &path)?
                    && fsutil::same_file(&f, &path).ctx("stat", &path)?
                {
                    std::fs::remove_file(&path)
                        .or_else(crate::store::ignore_not_found)
                        .ctx("remove", &path)?;
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn handles_are_send_and_sync() {
        fn f<T: Send + Sync>() {}
        f::<crate::Store>();
        f::<crate::ObjectRef>();
        f::<crate::ObjectBuilder>();
        f::<crate::BlobWriter>();
        f::<crate::BlobRef>();
    }
}
