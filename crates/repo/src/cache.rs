//! Loading sources into package indexes, through an on-disk metadata cache.
//!
//! Layout of the cache directory:
//!
//! - `release/<source key>.release`: the verified Release content of a source (one header
//!   line, one JSON line, then the Release bytes). `<source key>` hashes the source's URL,
//!   suite, components and architecture. The header also records the SHA256 of the signed
//!   file(s) as fetched, the trust settings they were verified with (check_gpg, the
//!   keyrings' bytes, the fingerprint filter), until when that verification holds (key and
//!   signature expiry) and the HTTP validators (`ETag`, `Last-Modified`) of `InRelease`.
//! - `index/<sha256>.idx`: the binary index (`kiln_deb::IndexBuilder`) of one Packages
//!   file, named by the SHA256 of the uncompressed Packages file as listed in the Release
//!   (content-addressed, so unchanged Packages files are reused across Release updates and
//!   sources).
//! - `lock`: `flock`ed (exclusively) by whoever writes or deletes a cache file, so that
//!   several kiln processes can share the cache. Readers take no lock: files are never
//!   changed in place.
//!
//! Every file is written to a temporary file in the same directory, fsynced and renamed;
//! the Release entry is written only after all its indexes exist, so an entry never looks
//! complete when it is not. An index that fails `Index::open` is deleted and rebuilt.
//!
//! # Warm loads
//!
//! `InRelease` is requested conditionally (`If-None-Match` / `If-Modified-Since`). When
//! the server answers 304, or the fetched file has the same SHA256 as the cached one, and
//! the trust settings are unchanged and the verification has not expired, neither the
//! signatures are verified again nor the Release parsed again; `Valid-Until` and `Date`
//! are still checked against now.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use kiln_deb::{Index, IndexBuilder};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::RepoError;
use crate::fetch::{Fetcher, Got, Validators, decompress};
use crate::openpgp::{self, Keyring, VerifyError};
use crate::release::{ReleaseInfo, WantedPackages};
use crate::source::{KeySource, Source};
use crate::util::{format_time, hex, sha256_hex, write_atomic};

/// The largest InRelease/Release/Release.gpg/key file kiln downloads.
const MAX_RELEASE: u64 = 64 << 20;
/// The largest decompressed Packages file when the Release does not give its size.
const MAX_PACKAGES: u64 = 4 << 30;
const RELEASE_MAGIC: &str = "kiln-release-cache 1";
/// How far a Release file's `Date` may be ahead of now.
const MAX_FUTURE: Duration = Duration::from_secs(24 * 3600);

/// What [`LoadOptions::progress`] is told while loading.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProgressEvent {
    /// A download's body starts; `total` is its size when the server gives it. Repeated
    /// when a download is retried.
    FetchStarted { url: String, total: Option<u64> },
    /// A download completed with `bytes` bytes.
    Fetched { url: String, bytes: u64 },
    /// A downloaded Packages file (e.g. `main/binary-amd64/Packages`) is being
    /// verified, decompressed and indexed.
    Indexing { source_id: String, path: String },
    /// The load is over (successfully or not); the last event.
    Done,
}

/// A progress callback; called from the loader's threads, so it should be quick.
pub type ProgressFn = Arc<dyn Fn(ProgressEvent) + Send + Sync>;

/// Options of [`MetadataCache::load`].
#[derive(Clone)]
pub struct LoadOptions {
    /// The time signatures, keys, `Valid-Until` and `Date` are checked against (default:
    /// now).
    pub now: Option<SystemTime>,
    /// Do not use the network: load from the cache only.
    pub offline: bool,
    /// How many downloads run at once (default 4).
    pub concurrency: usize,
    /// Told about downloads and index builds, e.g. to show a progress bar.
    pub progress: Option<ProgressFn>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            now: None,
            offline: false,
            concurrency: 4,
            progress: None,
        }
    }
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("now", &self.now)
            .field("offline", &self.offline)
            .field("concurrency", &self.concurrency)
            .field("progress", &self.progress.as_ref().map(|_| "Fn"))
            .finish()
    }
}

/// One loaded Packages file of one source.
pub struct LoadedRepo {
    pub source_id: String,
    /// A package's download URL is `base_url` + its `Filename`.
    pub base_url: String,
    /// The Packages file this index was built from, e.g. `main/binary-amd64/Packages`.
    pub packages_path: String,
    pub index: Index,
    pub release_info: Arc<ReleaseInfo>,
    /// True when the Release was not (re)fetched: offline use of the cache.
    pub stale: bool,
}

impl std::fmt::Debug for LoadedRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedRepo")
            .field("source_id", &self.source_id)
            .field("base_url", &self.base_url)
            .field("packages_path", &self.packages_path)
            .field("packages", &self.index.len())
            .field("stale", &self.stale)
            .finish()
    }
}

/// What a load did, for diagnostics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LoadStats {
    /// Release files whose signatures were verified (or, without check_gpg, that were
    /// parsed) because they were new or changed.
    pub releases_verified: usize,
    /// Release files found unchanged (HTTP 304, or the same bytes as the cached copy,
    /// with the same trust settings), whose cached verification and parse were reused.
    pub releases_reused: usize,
    /// Of those, how many the server answered with HTTP 304 Not Modified.
    pub not_modified: usize,
    /// Packages files downloaded and indexed.
    pub indexes_built: usize,
}

impl LoadStats {
    fn add(&mut self, o: &LoadStats) {
        self.releases_verified += o.releases_verified;
        self.releases_reused += o.releases_reused;
        self.not_modified += o.not_modified;
        self.indexes_built += o.indexes_built;
    }
}

/// Everything the solver gets: one index per Packages file, and warnings for the user.
#[derive(Debug, Default)]
pub struct Universe {
    pub repos: Vec<LoadedRepo>,
    pub warnings: Vec<String>,
    pub stats: LoadStats,
}

impl Universe {
    /// The number of packages over all indexes.
    pub fn package_count(&self) -> usize {
        self.repos.iter().map(|r| r.index.len()).sum()
    }
}

/// The metadata cache and loader.
#[derive(Clone)]
pub struct MetadataCache {
    dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ReleaseHeader {
    identity: String,
    url: String,
    release_sha256: String,
    signed_by: Vec<String>,
    verified: bool,
    /// When these Release bytes were first fetched (seconds since the epoch).
    fetched_at: u64,
    /// The cache keys of the indexes this Release needs (for [`MetadataCache::prune`]).
    #[serde(default)]
    indexes: Vec<String>,
    /// SHA256 of the signed file(s) as fetched (see [`RawRelease::sha256`]).
    #[serde(default)]
    raw_sha256: String,
    /// What the entry was verified with (see [`Trust`]).
    #[serde(default)]
    trust: String,
    /// Until when the verification holds (seconds since the epoch; `None`: no expiry).
    #[serde(default)]
    verified_until: Option<u64>,
    /// HTTP validators of `url`.
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    last_modified: Option<String>,
}

/// What one source contributes: its indexes, warnings and statistics.
#[derive(Default)]
struct SourceLoad {
    repos: Vec<LoadedRepo>,
    warnings: Vec<String>,
    stats: LoadStats,
}

struct CachedRelease {
    header: ReleaseHeader,
    payload: Vec<u8>,
    info: Arc<ReleaseInfo>,
}

/// The trust settings of a source: check_gpg, the key fingerprint filter and the bytes of
/// its keys. `id` hashes them all; the keys are parsed only when a signature must be
/// verified.
struct Trust {
    id: String,
    keys: Vec<(KeySource, Vec<u8>)>,
}

/// The signed file(s) as fetched, not yet verified.
enum RawKind {
    InRelease(Vec<u8>),
    /// `Release`, and `Release.gpg` when check_gpg is on.
    Detached {
        release: Vec<u8>,
        signature: Option<Vec<u8>>,
    },
}

struct RawRelease {
    /// The URL of `InRelease` or `Release`.
    url: String,
    kind: RawKind,
    validators: Validators,
}

impl RawRelease {
    /// The SHA256 of what was fetched: of `InRelease`, or of `Release` and `Release.gpg`.
    fn sha256(&self) -> String {
        match &self.kind {
            RawKind::InRelease(b) => sha256_hex(b),
            RawKind::Detached { release, signature } => {
                let mut h = Sha256::new();
                h.update(b"detached\n");
                h.update(sha256_hex(release));
                h.update(b"\n");
                if let Some(s) = signature {
                    h.update(sha256_hex(s));
                }
                hex(&h.finalize())
            }
        }
    }
}

enum FetchedRelease {
    /// HTTP 304 to the conditional request for the cached `InRelease`.
    NotModified,
    Raw(RawRelease),
}

/// A verified (or, without check_gpg, unverified) Release.
struct Checked {
    payload: Vec<u8>,
    signed_by: Vec<String>,
    expires: Option<SystemTime>,
}

fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `2d 3h 10min` for messages.
fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins) = (s / 86400, (s % 86400) / 3600, (s % 3600) / 60);
    let mut out = Vec::new();
    if days > 0 {
        out.push(format!("{days}d"));
    }
    if hours > 0 {
        out.push(format!("{hours}h"));
    }
    if mins > 0 || out.is_empty() {
        out.push(format!("{mins}min"));
    }
    out.join(" ")
}

/// An exclusive `flock` on `<cache>/lock`, released on drop. Blocks: take it only on a
/// blocking thread.
struct CacheLock {
    _file: std::fs::File,
}

fn lock_cache(dir: &Path) -> Result<CacheLock, RepoError> {
    std::fs::create_dir_all(dir).map_err(|e| RepoError::write(dir, e))?;
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| RepoError::write(&path, e))?;
    file.lock().map_err(|e| RepoError::write(&path, e))?;
    Ok(CacheLock { _file: file })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RepoError> + Send + 'static,
) -> Result<T, RepoError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RepoError::Internal(format!("a blocking task failed: {e}")))?
}

impl MetadataCache {
    /// A cache in `dir` (e.g. `<store>/repo-cache`); created on first write.
    pub fn new(dir: impl Into<PathBuf>) -> MetadataCache {
        MetadataCache { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn release_path(&self, source: &Source, arch: &str) -> PathBuf {
        let key = sha256_hex(source.cache_identity(arch).as_bytes());
        self.dir
            .join("release")
            .join(format!("{}.release", &key[..32]))
    }

    fn index_path(&self, key: &str) -> PathBuf {
        self.dir.join("index").join(format!("{key}.idx"))
    }

    /// Loads `sources` for `arch`: fetches and verifies each Release, and loads each
    /// Packages file's index from the cache or builds it. With the mirror unreachable, a
    /// source falls back to its cached metadata (with a warning in [`Universe::warnings`]).
    ///
    /// Several processes may load into the same cache directory at once.
    pub async fn load(
        &self,
        sources: &[Source],
        arch: &str,
        opts: &LoadOptions,
    ) -> Result<Universe, RepoError> {
        let result = self.load_inner(sources, arch, opts).await;
        if let Some(p) = &opts.progress {
            p(ProgressEvent::Done);
        }
        result
    }

    async fn load_inner(
        &self,
        sources: &[Source],
        arch: &str,
        opts: &LoadOptions,
    ) -> Result<Universe, RepoError> {
        let start = Instant::now();
        let fetcher = Fetcher::new(opts.concurrency, opts.progress.clone());
        let now = opts.now.unwrap_or_else(SystemTime::now);
        let results: Vec<Result<SourceLoad, RepoError>> =
            futures_util::stream::iter(sources.iter().map(|s| {
                let fetcher = fetcher.clone();
                async move { self.load_source(&fetcher, s, arch, now, opts).await }
            }))
            .buffered(opts.concurrency.max(1))
            .collect()
            .await;
        let mut universe = Universe::default();
        for r in results {
            let load = r?;
            universe.repos.extend(load.repos);
            universe.warnings.extend(load.warnings);
            universe.stats.add(&load.stats);
        }
        tracing::debug!(
            sources = sources.len(),
            indexes = universe.repos.len(),
            packages = universe.package_count(),
            stats = ?universe.stats,
            ms = start.elapsed().as_millis() as u64,
            "loaded repository metadata"
        );
        Ok(universe)
    }

    /// [`MetadataCache::load`] on its own runtime, for callers without one. Must not be
    /// called from inside a tokio runtime.
    pub fn load_blocking(
        &self,
        sources: &[Source],
        arch: &str,
        opts: &LoadOptions,
    ) -> Result<Universe, RepoError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| RepoError::Internal(format!("cannot start a runtime: {e}")))?;
        rt.block_on(self.load(sources, arch, opts))
    }

    async fn load_source(
        &self,
        fetcher: &Fetcher,
        source: &Source,
        arch: &str,
        now: SystemTime,
        opts: &LoadOptions,
    ) -> Result<SourceLoad, RepoError> {
        let start = Instant::now();
        let cached = self.read_release(source, arch).await;
        if opts.offline {
            let Some(c) = cached else {
                return Err(RepoError::Fetch {
                    source_id: source.id.clone(),
                    url: source.release_dir(),
                    message: "offline, and nothing is cached for this source".into(),
                    attempts: 0,
                });
            };
            return Ok(SourceLoad {
                repos: self.load_cached(source, arch, c).await?,
                ..SourceLoad::default()
            });
        }
        // Open the cached indexes while the Release is fetched: they are what is needed
        // when it has not changed (or changed without touching these Packages files).
        let preopened = cached
            .as_ref()
            .map(|c| self.preopen_indexes(source, arch, &c.info));
        match self
            .load_online(fetcher, source, arch, now, opts, cached.as_ref(), preopened)
            .await
        {
            Ok(loaded) => {
                tracing::debug!(
                    source = %source.id,
                    ms = start.elapsed().as_millis() as u64,
                    "source loaded"
                );
                Ok(loaded)
            }
            Err(e) if e.is_network() => {
                let Some(c) = cached else { return Err(e) };
                let when = format_time(UNIX_EPOCH + Duration::from_secs(c.header.fetched_at));
                let expired = match c.info.valid_until {
                    Some(v) if v <= now => {
                        format!(" (its Valid-Until, {}, has passed)", format_time(v))
                    }
                    _ => String::new(),
                };
                match self.load_cached(source, arch, c).await {
                    Ok(repos) => {
                        let w = format!(
                            "source {}: the mirror is unreachable ({e}); using the metadata cached on {when}{expired}",
                            source.id
                        );
                        tracing::warn!("{w}");
                        Ok(SourceLoad {
                            repos,
                            warnings: vec![w],
                            stats: LoadStats::default(),
                        })
                    }
                    Err(cache_err) => {
                        tracing::debug!("cache fallback failed: {cache_err}");
                        Err(e)
                    }
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Opens the indexes a cached Release refers to, on a blocking thread; indexes that
    /// do not open are left out.
    fn preopen_indexes(
        &self,
        source: &Source,
        arch: &str,
        info: &ReleaseInfo,
    ) -> tokio::task::JoinHandle<HashMap<String, Index>> {
        let keys: Vec<(String, PathBuf)> = info
            .packages_files(&source.layout, arch)
            .unwrap_or_default()
            .iter()
            .filter_map(|w| w.cache_key())
            .map(|k| {
                let p = self.index_path(&k);
                (k, p)
            })
            .collect();
        tokio::task::spawn_blocking(move || {
            keys.into_iter()
                .filter_map(|(k, p)| Index::open(&p).ok().map(|i| (k, i)))
                .collect()
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn load_online(
        &self,
        fetcher: &Fetcher,
        source: &Source,
        arch: &str,
        now: SystemTime,
        opts: &LoadOptions,
        cached: Option<&CachedRelease>,
        preopened: Option<tokio::task::JoinHandle<HashMap<String, Index>>>,
    ) -> Result<SourceLoad, RepoError> {
        let t = Instant::now();
        let trust = self.trust(fetcher, source).await?;
        // A cached entry whose verification can stand in for a new one, should the fetched
        // file be the same.
        let reusable = cached.filter(|c| {
            c.header.trust == trust.id
                && c.header.verified == source.check_gpg
                && !c.header.raw_sha256.is_empty()
                && c.header.verified_until.is_none_or(|u| u > epoch_secs(now))
        });
        let inrelease_url = format!("{}InRelease", source.release_dir());
        let validators = reusable
            .filter(|c| c.header.url == inrelease_url)
            .map(|c| Validators {
                etag: c.header.etag.clone(),
                last_modified: c.header.last_modified.clone(),
            })
            .filter(|v| !v.is_empty());
        let fetched = fetch_release(fetcher, source, validators.as_ref()).await?;
        let mut stats = LoadStats::default();
        let (info, header, payload) = match fetched {
            FetchedRelease::NotModified => {
                let c = reusable.ok_or_else(|| {
                    RepoError::Internal("HTTP 304 without a cached Release".into())
                })?;
                stats.releases_reused += 1;
                stats.not_modified += 1;
                (c.info.clone(), c.header.clone(), None)
            }
            FetchedRelease::Raw(raw) => {
                let raw_sha256 = raw.sha256();
                match reusable
                    .filter(|c| c.header.raw_sha256 == raw_sha256 && c.header.url == raw.url)
                {
                    Some(c) => {
                        stats.releases_reused += 1;
                        let mut header = c.header.clone();
                        header.etag = raw.validators.etag;
                        header.last_modified = raw.validators.last_modified;
                        (c.info.clone(), header, None)
                    }
                    None => {
                        stats.releases_verified += 1;
                        let url = raw.url.clone();
                        let validators = raw.validators.clone();
                        let checked = self.check_release(source, &trust, raw, now).await?;
                        let release_sha256 = sha256_hex(&checked.payload);
                        let info = ReleaseInfo::parse(
                            &checked.payload,
                            release_sha256.clone(),
                            checked.signed_by.clone(),
                        )
                        .map_err(|message| RepoError::Release {
                            source_id: source.id.clone(),
                            url: url.clone(),
                            message,
                        })?;
                        let header = ReleaseHeader {
                            identity: source.cache_identity(arch),
                            url,
                            release_sha256,
                            signed_by: checked.signed_by,
                            verified: source.check_gpg,
                            fetched_at: epoch_secs(now),
                            indexes: Vec::new(),
                            raw_sha256,
                            trust: trust.id.clone(),
                            verified_until: checked.expires.map(epoch_secs),
                            etag: validators.etag,
                            last_modified: validators.last_modified,
                        };
                        (Arc::new(info), header, Some(checked.payload))
                    }
                }
            }
        };
        tracing::debug!(
            source = %source.id,
            reused = stats.releases_reused,
            ms = t.elapsed().as_millis() as u64,
            "release fetched and verified"
        );
        let url = &header.url;
        if source.check_gpg
            && let Some(until) = info.valid_until
            && until <= now
        {
            return Err(RepoError::ReleaseExpired {
                source_id: source.id.clone(),
                url: url.clone(),
                valid_until: format_time(until),
            });
        }
        // As apt does, whether or not the file is signed.
        if let Some(date) = info.date
            && let Ok(ahead) = date.duration_since(now)
            && ahead > MAX_FUTURE
        {
            return Err(RepoError::ReleaseNotYetValid {
                source_id: source.id.clone(),
                url: url.clone(),
                date: format_time(date),
                remaining: format_duration(ahead - MAX_FUTURE),
            });
        }
        let mut warnings = Vec::new();
        if let crate::source::Layout::Dists { suite, .. } = &source.layout {
            let names = [info.suite.as_deref(), info.codename.as_deref()];
            if names.iter().any(Option::is_some) && !names.contains(&Some(suite.as_str())) {
                let w = format!(
                    "source {}: conflicting distribution: {} is for {} (Suite) / {} (Codename), not {suite}",
                    source.id,
                    url,
                    info.suite.as_deref().unwrap_or("-"),
                    info.codename.as_deref().unwrap_or("-"),
                );
                tracing::warn!("{w}");
                warnings.push(w);
            }
        }
        let wanted =
            info.packages_files(&source.layout, arch)
                .map_err(|what| RepoError::NoPackages {
                    source_id: source.id.clone(),
                    url: url.clone(),
                    what,
                })?;
        let index_keys: Vec<String> = wanted.iter().filter_map(|w| w.cache_key()).collect();
        let mut preopened = match preopened {
            Some(h) => h.await.unwrap_or_default(),
            None => HashMap::new(),
        };
        let results: Vec<Result<(LoadedRepo, bool), RepoError>> =
            futures_util::stream::iter(wanted.into_iter().map(|w| {
                let info = info.clone();
                let open = w.cache_key().and_then(|k| preopened.remove(&k));
                async move { self.packages(fetcher, source, info, w, open).await }
            }))
            .buffered(opts.concurrency.max(1))
            .collect()
            .await;
        let mut repos = Vec::new();
        for r in results {
            let (repo, built) = r?;
            stats.indexes_built += usize::from(built);
            repos.push(repo);
        }
        let mut header = header;
        header.indexes = index_keys;
        if cached.is_none_or(|c| c.header != header) {
            let payload = match payload {
                Some(p) => p,
                None => reusable.map(|c| c.payload.clone()).unwrap_or_default(),
            };
            self.write_release(source, arch, &header, payload).await?;
        }
        Ok(SourceLoad {
            repos,
            warnings,
            stats,
        })
    }

    /// The source's trust settings, with the bytes of its keys (from files, inline keys
    /// and key URLs).
    async fn trust(&self, fetcher: &Fetcher, source: &Source) -> Result<Trust, RepoError> {
        let mut h = Sha256::new();
        h.update(b"kiln-trust 1\n");
        if !source.check_gpg {
            h.update(b"check_gpg=false\n");
            return Ok(Trust {
                id: hex(&h.finalize()),
                keys: Vec::new(),
            });
        }
        if source.keys.is_empty() {
            return Err(RepoError::NoKeys {
                source_id: source.id.clone(),
            });
        }
        h.update(b"check_gpg=true\n");
        for f in &source.key_fingerprints {
            h.update(format!("fpr {}\n", f.to_ascii_uppercase()));
        }
        let mut keys = Vec::new();
        for k in &source.keys {
            let key_err = |message: String| RepoError::Key {
                source_id: source.id.clone(),
                key: k.describe(),
                message,
            };
            let bytes = match k {
                KeySource::File(p) => std::fs::read(p).map_err(|e| key_err(e.to_string()))?,
                KeySource::Armored(a) => a.clone().into_bytes(),
                KeySource::Url(u) => fetcher
                    .get(&source.id, u, source.check_ssl, MAX_RELEASE)
                    .await?
                    .ok_or_else(|| key_err("not found (HTTP 404)".into()))?,
            };
            h.update(format!("key {} {}\n", k.describe(), bytes.len()));
            h.update(&bytes);
            keys.push((k.clone(), bytes));
        }
        Ok(Trust {
            id: hex(&h.finalize()),
            keys,
        })
    }

    /// Verifies (with check_gpg) and unwraps a fetched Release, on a blocking thread.
    async fn check_release(
        &self,
        source: &Source,
        trust: &Trust,
        raw: RawRelease,
        now: SystemTime,
    ) -> Result<Checked, RepoError> {
        let source = source.clone();
        let keys = trust.keys.clone();
        blocking(move || {
            let keyring = if source.check_gpg {
                Some(keyring(&source, &keys)?)
            } else {
                None
            };
            verify_release(&source, keyring.as_ref(), raw, now)
        })
        .await
    }

    /// Loads one Packages file: `open` (its index, already opened), from its cached index,
    /// or by download + verification + index build (then the flag is true).
    async fn packages(
        &self,
        fetcher: &Fetcher,
        source: &Source,
        info: Arc<ReleaseInfo>,
        wanted: WantedPackages,
        open: Option<Index>,
    ) -> Result<(LoadedRepo, bool), RepoError> {
        let dir_url = source.release_dir();
        let key = wanted.cache_key().ok_or_else(|| RepoError::NoPackages {
            source_id: source.id.clone(),
            url: dir_url.clone(),
            what: wanted.path.clone(),
        })?;
        let path = self.index_path(&key);
        let make = |index: Index| LoadedRepo {
            source_id: source.id.clone(),
            base_url: source.package_base(),
            packages_path: wanted.path.clone(),
            index,
            release_info: info.clone(),
            stale: false,
        };
        if let Some(index) = open {
            return Ok((make(index), false));
        }
        if let Some(index) = open_index(&self.dir, &path).await {
            tracing::debug!(source = %source.id, file = %wanted.path, "index from cache");
            return Ok((make(index), false));
        }

        let mut last_missing = None;
        for cand in &wanted.candidates {
            let plain_url = format!("{dir_url}{}", cand.path);
            let mut body = None;
            if info.acquire_by_hash {
                let parent = cand.path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                let prefix = if parent.is_empty() {
                    String::new()
                } else {
                    format!("{parent}/")
                };
                let by_hash = format!("{dir_url}{prefix}by-hash/SHA256/{}", cand.entry.sha256);
                body = fetcher
                    .get(&source.id, &by_hash, source.check_ssl, cand.entry.size)
                    .await?
                    .map(|b| (by_hash, b));
            }
            if body.is_none() {
                body = fetcher
                    .get(&source.id, &plain_url, source.check_ssl, cand.entry.size)
                    .await?
                    .map(|b| (plain_url.clone(), b));
            }
            let Some((url, bytes)) = body else {
                last_missing = Some(plain_url);
                continue;
            };
            if let Some(p) = &fetcher.progress {
                p(ProgressEvent::Indexing {
                    source_id: source.id.clone(),
                    path: wanted.path.clone(),
                });
            }
            let t = Instant::now();
            let source_id = source.id.clone();
            let cand_owned = cand.clone();
            let uncompressed = wanted.uncompressed.clone();
            let index_path = path.clone();
            let cache_dir = self.dir.clone();
            let built = blocking(move || {
                build_index(
                    &source_id,
                    &url,
                    &cand_owned,
                    uncompressed.as_ref(),
                    &bytes,
                    &cache_dir,
                    &index_path,
                )
            })
            .await?;
            tracing::debug!(
                source = %source.id,
                file = %cand.path,
                packages = built.len(),
                ms = t.elapsed().as_millis() as u64,
                "verified, decompressed and indexed"
            );
            return Ok((make(built), true));
        }
        Err(RepoError::HttpStatus {
            source_id: source.id.clone(),
            url: last_missing.unwrap_or(dir_url),
            status: 404,
            attempts: 1,
        })
    }

    async fn load_cached(
        &self,
        source: &Source,
        arch: &str,
        cached: CachedRelease,
    ) -> Result<Vec<LoadedRepo>, RepoError> {
        let info = cached.info;
        let wanted =
            info.packages_files(&source.layout, arch)
                .map_err(|what| RepoError::NoPackages {
                    source_id: source.id.clone(),
                    url: cached.header.url.clone(),
                    what,
                })?;
        let paths: Vec<PathBuf> = wanted
            .iter()
            .map(|w| self.index_path(&w.cache_key().unwrap_or_default()))
            .collect();
        let source_id = source.id.clone();
        let indexes = blocking(move || {
            paths
                .iter()
                .map(|path| {
                    Index::open(path).map_err(|e| RepoError::Index {
                        source_id: source_id.clone(),
                        url: path.display().to_string(),
                        source: e,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
        Ok(wanted
            .into_iter()
            .zip(indexes)
            .map(|(w, index)| LoadedRepo {
                source_id: source.id.clone(),
                base_url: source.package_base(),
                packages_path: w.path,
                index,
                release_info: info.clone(),
                stale: true,
            })
            .collect())
    }

    /// Deletes indexes that no cached Release refers to and leftover temporary files,
    /// except files changed in the last hour (a concurrent load may be about to refer to
    /// them). Returns how many files were removed. Waits for other processes' writes to
    /// the cache to finish.
    pub fn prune(&self) -> Result<usize, RepoError> {
        if !self.dir.exists() {
            return Ok(0);
        }
        let _lock = lock_cache(&self.dir)?;
        let grace = Duration::from_secs(3600);
        let recent = |p: &Path| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_none_or(|age| age < grace)
        };
        let list = |dir: &Path| -> Result<Vec<PathBuf>, RepoError> {
            match std::fs::read_dir(dir) {
                Ok(rd) => Ok(rd.filter_map(|e| e.ok()).map(|e| e.path()).collect()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(RepoError::io(dir, e)),
            }
        };
        let is_tmp = |p: &Path| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".tmp-"))
        };
        let mut keep = std::collections::HashSet::new();
        let mut removed = 0;
        for p in list(&self.dir.join("release"))? {
            if is_tmp(&p) {
                if !recent(&p) && std::fs::remove_file(&p).is_ok() {
                    removed += 1;
                }
                continue;
            }
            let Ok(bytes) = std::fs::read(&p) else {
                continue;
            };
            let mut lines = bytes.splitn(3, |&b| b == b'\n');
            let (Some(magic), Some(json)) = (lines.next(), lines.next()) else {
                continue;
            };
            if magic != RELEASE_MAGIC.as_bytes() {
                continue;
            }
            if let Ok(h) = serde_json::from_slice::<ReleaseHeader>(json) {
                keep.extend(h.indexes);
            }
        }
        for p in list(&self.dir.join("index"))? {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let key = name.strip_suffix(".idx").unwrap_or(name);
            if (is_tmp(&p) || !keep.contains(key))
                && !recent(&p)
                && std::fs::remove_file(&p).is_ok()
            {
                removed += 1;
            }
        }
        tracing::debug!(removed, "pruned the metadata cache");
        Ok(removed)
    }

    async fn read_release(&self, source: &Source, arch: &str) -> Option<CachedRelease> {
        let path = self.release_path(source, arch);
        let identity = source.cache_identity(arch);
        let check_gpg = source.check_gpg;
        let dir = self.dir.clone();
        blocking(move || {
            let parse = |bytes: &[u8]| {
                let nl = bytes.iter().position(|&b| b == b'\n')?;
                if &bytes[..nl] != RELEASE_MAGIC.as_bytes() {
                    return None;
                }
                let rest = &bytes[nl + 1..];
                let nl2 = rest.iter().position(|&b| b == b'\n')?;
                let header: ReleaseHeader = serde_json::from_slice(&rest[..nl2]).ok()?;
                let payload = rest[nl2 + 1..].to_vec();
                if header.identity != identity
                    || (check_gpg && !header.verified)
                    || sha256_hex(&payload) != header.release_sha256
                {
                    return None;
                }
                let info = ReleaseInfo::parse(
                    &payload,
                    header.release_sha256.clone(),
                    header.signed_by.clone(),
                )
                .ok()?;
                Some(CachedRelease {
                    header,
                    payload,
                    info: Arc::new(info),
                })
            };
            let Ok(bytes) = std::fs::read(&path) else {
                return Ok(None);
            };
            let parsed = parse(&bytes);
            if parsed.is_none() {
                // Delete it, unless another process has just replaced it.
                let _lock = lock_cache(&dir)?;
                if std::fs::read(&path).is_ok_and(|now| now == bytes) {
                    tracing::warn!(path = %path.display(), "discarding an unusable cache entry");
                    let _ = std::fs::remove_file(&path);
                }
            }
            Ok(parsed)
        })
        .await
        .unwrap_or_else(|e| {
            tracing::warn!("cannot read the cached Release: {e}");
            None
        })
    }

    async fn write_release(
        &self,
        source: &Source,
        arch: &str,
        header: &ReleaseHeader,
        payload: Vec<u8>,
    ) -> Result<(), RepoError> {
        let mut bytes = Vec::with_capacity(payload.len() + 1024);
        bytes.extend_from_slice(RELEASE_MAGIC.as_bytes());
        bytes.push(b'\n');
        bytes.extend_from_slice(
            serde_json::to_string(header)
                .map_err(|e| RepoError::Internal(e.to_string()))?
                .as_bytes(),
        );
        bytes.push(b'\n');
        bytes.extend_from_slice(&payload);
        let path = self.release_path(source, arch);
        let dir = self.dir.clone();
        blocking(move || {
            let _lock = lock_cache(&dir)?;
            write_atomic(&path, &bytes)
        })
        .await
    }
}

/// Opens a cached index; a corrupt one is deleted (and `None` returned) so that it is
/// rebuilt.
async fn open_index(cache_dir: &Path, path: &Path) -> Option<Index> {
    let path = path.to_path_buf();
    let cache_dir = cache_dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        if !path.exists() {
            return None;
        }
        match Index::open(&path) {
            Ok(i) => Some(i),
            Err(e) => {
                // Delete it, unless another process has just replaced it with a good one.
                let _lock = lock_cache(&cache_dir).ok()?;
                if let Ok(i) = Index::open(&path) {
                    return Some(i);
                }
                tracing::warn!(path = %path.display(), "discarding a corrupt cached index: {e}");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// Verifies a downloaded Packages file against the Release, decompresses it, builds its
/// index and stores it atomically at `index_path` (under the cache lock, unless another
/// process has stored it meanwhile).
fn build_index(
    source_id: &str,
    url: &str,
    cand: &crate::release::Candidate,
    uncompressed: Option<&crate::release::FileEntry>,
    bytes: &[u8],
    cache_dir: &Path,
    index_path: &Path,
) -> Result<Index, RepoError> {
    let mismatch = |expected: String, actual: String| RepoError::Mismatch {
        source_id: source_id.to_string(),
        url: url.to_string(),
        expected,
        actual,
    };
    if bytes.len() as u64 != cand.entry.size {
        return Err(mismatch(
            format!("{} bytes", cand.entry.size),
            format!(
                "{} bytes (the mirror may be syncing; retry later)",
                bytes.len()
            ),
        ));
    }
    let actual = sha256_hex(bytes);
    if actual != cand.entry.sha256 {
        return Err(mismatch(
            format!("SHA256 {}", cand.entry.sha256),
            format!("SHA256 {actual} (the mirror may be syncing; retry later)"),
        ));
    }
    let limit = uncompressed.map(|u| u.size).unwrap_or(MAX_PACKAGES);
    let text =
        decompress(cand.compression, bytes, limit).map_err(|message| RepoError::Decompress {
            source_id: source_id.to_string(),
            url: url.to_string(),
            message,
        })?;
    if let Some(u) = uncompressed {
        let actual = sha256_hex(&text);
        if text.len() as u64 != u.size || actual != u.sha256 {
            return Err(mismatch(
                format!("decompressed: {} bytes, SHA256 {}", u.size, u.sha256),
                format!("{} bytes, SHA256 {actual}", text.len()),
            ));
        }
    }
    let mut builder = IndexBuilder::new();
    builder.add_packages(&text).map_err(|e| RepoError::Index {
        source_id: source_id.to_string(),
        url: url.to_string(),
        source: e,
    })?;
    drop(text);
    let bytes = builder.finish();
    {
        let _lock = lock_cache(cache_dir)?;
        // The same content (the name is its hash) may have been stored by another process
        // meanwhile; replacing it is harmless but needless.
        if !index_path.exists() {
            write_atomic(index_path, &bytes)?;
        }
    }
    match Index::open(index_path) {
        Ok(i) => Ok(i),
        // Not ours and corrupt: ours is good.
        Err(_) => Index::from_bytes(bytes),
    }
    .map_err(|e| RepoError::Index {
        source_id: source_id.to_string(),
        url: index_path.display().to_string(),
        source: e,
    })
}

/// The keyring of a source from its keys' bytes.
fn keyring(source: &Source, keys: &[(KeySource, Vec<u8>)]) -> Result<Keyring, RepoError> {
    let mut keyring = Keyring::new();
    for (k, bytes) in keys {
        keyring
            .add_bytes(bytes, &k.describe())
            .map_err(|message| RepoError::Key {
                source_id: source.id.clone(),
                key: k.describe(),
                message,
            })?;
    }
    keyring.retain_fingerprints(&source.key_fingerprints);
    if keyring.is_empty() {
        return Err(RepoError::Key {
            source_id: source.id.clone(),
            key: source
                .keys
                .iter()
                .map(KeySource::describe)
                .collect::<Vec<_>>()
                .join(", "),
            message: format!(
                "none of the keys has a fingerprint listed in Signed-By ({})",
                source.key_fingerprints.join(", ")
            ),
        });
    }
    Ok(keyring)
}

/// Verifies a fetched Release with `keyring` (or, without one, only unwraps it).
fn verify_release(
    source: &Source,
    keyring: Option<&Keyring>,
    raw: RawRelease,
    now: SystemTime,
) -> Result<Checked, RepoError> {
    let url = raw.url;
    let map_verify = |e: VerifyError| match e {
        VerifyError::NotSigned(detail) => RepoError::Unsigned {
            source_id: source.id.clone(),
            url: url.clone(),
            detail: format!("{url}: {detail}"),
        },
        VerifyError::Malformed(m) => RepoError::BadSignature {
            source_id: source.id.clone(),
            url: url.clone(),
            reasons: vec![m],
        },
        VerifyError::UnknownKey { key_ids } => RepoError::UnknownKey {
            source_id: source.id.clone(),
            url: url.clone(),
            key_ids,
            keyrings: keyring.map(|k| k.origins.clone()).unwrap_or_default(),
        },
        VerifyError::Rejected { reasons } => RepoError::BadSignature {
            source_id: source.id.clone(),
            url: url.clone(),
            reasons,
        },
    };
    let unverified = |payload| Checked {
        payload,
        signed_by: Vec::new(),
        expires: None,
    };
    let verified = |v: openpgp::Verified| Checked {
        payload: v.payload,
        signed_by: v.signers,
        expires: v.expires,
    };
    match (raw.kind, keyring) {
        (RawKind::InRelease(bytes), Some(k)) => openpgp::verify_cleartext(&bytes, k, now)
            .map(verified)
            .map_err(map_verify),
        (RawKind::InRelease(bytes), None) => openpgp::cleartext_payload_unverified(&bytes)
            .map(unverified)
            .map_err(map_verify),
        (
            RawKind::Detached {
                release,
                signature: Some(sig),
            },
            Some(k),
        ) => openpgp::verify_detached(&release, &sig, k, now)
            .map(verified)
            .map_err(map_verify),
        (RawKind::Detached { release, .. }, None) => Ok(unverified(release)),
        (RawKind::Detached { .. }, Some(_)) => Err(RepoError::Internal(format!(
            "{url}: no signature to verify"
        ))),
    }
}

/// Fetches `InRelease` (conditionally with `validators`), or `Release` (+ `Release.gpg`
/// with check_gpg).
async fn fetch_release(
    fetcher: &Fetcher,
    source: &Source,
    validators: Option<&Validators>,
) -> Result<FetchedRelease, RepoError> {
    let dir = source.release_dir();
    let inrelease_url = format!("{dir}InRelease");
    match fetcher
        .fetch(
            &source.id,
            &inrelease_url,
            source.check_ssl,
            MAX_RELEASE,
            validators,
        )
        .await?
    {
        Got::NotModified => return Ok(FetchedRelease::NotModified),
        Got::Body { bytes, validators } => {
            return Ok(FetchedRelease::Raw(RawRelease {
                url: inrelease_url,
                kind: RawKind::InRelease(bytes),
                validators,
            }));
        }
        Got::NotFound => {}
    }
    let release_url = format!("{dir}Release");
    let Some(release) = fetcher
        .get(&source.id, &release_url, source.check_ssl, MAX_RELEASE)
        .await?
    else {
        return Err(RepoError::Release {
            source_id: source.id.clone(),
            url: dir,
            message:
                "neither InRelease nor Release exists (HTTP 404); check the source's URL and suite"
                    .into(),
        });
    };
    let signature = if source.check_gpg {
        let sig_url = format!("{dir}Release.gpg");
        let Some(sig) = fetcher
            .get(&source.id, &sig_url, source.check_ssl, MAX_RELEASE)
            .await?
        else {
            return Err(RepoError::Unsigned {
                source_id: source.id.clone(),
                url: release_url.clone(),
                detail: format!("{dir} has no InRelease and no Release.gpg"),
            });
        };
        Some(sig)
    } else {
        None
    };
    Ok(FetchedRelease::Raw(RawRelease {
        url: release_url,
        kind: RawKind::Detached { release, signature },
        validators: Validators::default(),
    }))
}
