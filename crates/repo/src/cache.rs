//! Loading sources into package indexes, through an on-disk metadata cache.
//!
//! Layout of the cache directory:
//!
//! - `release/<source key>.release`: the verified Release content of a source (one header
//!   line, one JSON line, then the Release bytes). `<source key>` hashes the source's URL,
//!   suite, components and architecture.
//! - `index/<sha256>.idx`: the binary index (`kiln_deb::IndexBuilder`) of one Packages
//!   file, named by the SHA256 of the uncompressed Packages file as listed in the Release
//!   (content-addressed, so unchanged Packages files are reused across Release updates and
//!   sources).
//!
//! Every file is written to a temporary file in the same directory, fsynced and renamed;
//! the Release entry is written only after all its indexes exist, so an entry never looks
//! complete when it is not. An index that fails `Index::open` is deleted and rebuilt.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures_util::StreamExt;
use kiln_deb::{Index, IndexBuilder};
use serde::{Deserialize, Serialize};

use crate::error::RepoError;
use crate::fetch::{Fetcher, decompress};
use crate::openpgp::{self, Keyring, VerifyError};
use crate::release::{ReleaseInfo, WantedPackages};
use crate::source::{KeySource, Source};
use crate::util::{format_time, sha256_hex, write_atomic};

/// The largest InRelease/Release/Release.gpg/key file kiln downloads.
const MAX_RELEASE: u64 = 64 << 20;
/// The largest decompressed Packages file when the Release does not give its size.
const MAX_PACKAGES: u64 = 4 << 30;
const RELEASE_MAGIC: &str = "kiln-release-cache 1";

/// Options of [`MetadataCache::load`].
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The time signatures, keys and `Valid-Until` are checked against (default: now).
    pub now: Option<SystemTime>,
    /// Do not use the network: load from the cache only.
    pub offline: bool,
    /// How many downloads run at once (default 4).
    pub concurrency: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            now: None,
            offline: false,
            concurrency: 4,
        }
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

/// Everything the solver gets: one index per Packages file, and warnings for the user.
#[derive(Debug, Default)]
pub struct Universe {
    pub repos: Vec<LoadedRepo>,
    pub warnings: Vec<String>,
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

#[derive(Debug, Serialize, Deserialize)]
struct ReleaseHeader {
    identity: String,
    url: String,
    release_sha256: String,
    signed_by: Vec<String>,
    verified: bool,
    fetched_at: u64,
    /// The cache keys of the indexes this Release needs (for [`MetadataCache::prune`]).
    #[serde(default)]
    indexes: Vec<String>,
}

/// What one source contributes: its indexes and warnings.
type SourceLoad = (Vec<LoadedRepo>, Vec<String>);

struct CachedRelease {
    header: ReleaseHeader,
    info: ReleaseInfo,
}

struct FetchedRelease {
    url: String,
    payload: Vec<u8>,
    signed_by: Vec<String>,
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
    pub async fn load(
        &self,
        sources: &[Source],
        arch: &str,
        opts: &LoadOptions,
    ) -> Result<Universe, RepoError> {
        let start = Instant::now();
        let fetcher = Fetcher::new(opts.concurrency)?;
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
            let (repos, warnings) = r?;
            universe.repos.extend(repos);
            universe.warnings.extend(warnings);
        }
        tracing::debug!(
            sources = sources.len(),
            indexes = universe.repos.len(),
            packages = universe.package_count(),
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
        let cached = self.read_release(source, arch);
        if opts.offline {
            let Some(c) = cached else {
                return Err(RepoError::Fetch {
                    source_id: source.id.clone(),
                    url: source.release_dir(),
                    message: "offline, and nothing is cached for this source".into(),
                });
            };
            return Ok((self.load_cached(source, arch, c)?, Vec::new()));
        }
        match self
            .load_online(fetcher, source, arch, now, opts, cached.as_ref())
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
                let when = format_time(
                    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(c.header.fetched_at),
                );
                let expired = match c.info.valid_until {
                    Some(v) if v <= now => {
                        format!(" (its Valid-Until, {}, has passed)", format_time(v))
                    }
                    _ => String::new(),
                };
                match self.load_cached(source, arch, c) {
                    Ok(repos) => {
                        let w = format!(
                            "source {}: the mirror is unreachable ({e}); using the metadata cached on {when}{expired}",
                            source.id
                        );
                        tracing::warn!("{w}");
                        Ok((repos, vec![w]))
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

    async fn load_online(
        &self,
        fetcher: &Fetcher,
        source: &Source,
        arch: &str,
        now: SystemTime,
        opts: &LoadOptions,
        cached: Option<&CachedRelease>,
    ) -> Result<SourceLoad, RepoError> {
        let keyring = if source.check_gpg {
            Some(self.keyring(fetcher, source).await?)
        } else {
            None
        };
        let t = Instant::now();
        let fetched = fetch_release(fetcher, source, keyring.as_ref(), now).await?;
        let release_sha256 = sha256_hex(&fetched.payload);
        let unchanged = cached.is_some_and(|c| {
            c.header.release_sha256 == release_sha256 && c.header.verified == source.check_gpg
        });
        let info = ReleaseInfo::parse(
            &fetched.payload,
            release_sha256.clone(),
            fetched.signed_by.clone(),
        )
        .map_err(|message| RepoError::Release {
            source_id: source.id.clone(),
            url: fetched.url.clone(),
            message,
        })?;
        tracing::debug!(
            source = %source.id,
            unchanged,
            ms = t.elapsed().as_millis() as u64,
            "release fetched and verified"
        );
        if source.check_gpg
            && let Some(until) = info.valid_until
            && until <= now
        {
            return Err(RepoError::ReleaseExpired {
                source_id: source.id.clone(),
                url: fetched.url.clone(),
                valid_until: format_time(until),
            });
        }
        let mut warnings = Vec::new();
        if let crate::source::Layout::Dists { suite, .. } = &source.layout {
            let names = [info.suite.as_deref(), info.codename.as_deref()];
            if names.iter().any(Option::is_some) && !names.contains(&Some(suite.as_str())) {
                let w = format!(
                    "source {}: conflicting distribution: {} is for {} (Suite) / {} (Codename), not {suite}",
                    source.id,
                    fetched.url,
                    info.suite.as_deref().unwrap_or("-"),
                    info.codename.as_deref().unwrap_or("-"),
                );
                tracing::warn!("{w}");
                warnings.push(w);
            }
        }
        let info = Arc::new(info);
        let wanted =
            info.packages_files(&source.layout, arch)
                .map_err(|what| RepoError::NoPackages {
                    source_id: source.id.clone(),
                    url: fetched.url.clone(),
                    what,
                })?;
        let index_keys: Vec<String> = wanted.iter().filter_map(|w| w.cache_key()).collect();
        let results: Vec<Result<LoadedRepo, RepoError>> =
            futures_util::stream::iter(wanted.into_iter().map(|w| {
                let info = info.clone();
                async move { self.packages(fetcher, source, info, w).await }
            }))
            .buffered(opts.concurrency.max(1))
            .collect()
            .await;
        let repos = results.into_iter().collect::<Result<Vec<_>, _>>()?;
        if !unchanged {
            let header = ReleaseHeader {
                identity: source.cache_identity(arch),
                url: fetched.url.clone(),
                release_sha256,
                signed_by: fetched.signed_by.clone(),
                verified: source.check_gpg,
                fetched_at: now
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
                indexes: index_keys,
            };
            self.write_release(source, arch, &header, &fetched.payload)?;
        }
        Ok((repos, warnings))
    }

    /// The source's keyring, from files, inline keys and key URLs.
    async fn keyring(&self, fetcher: &Fetcher, source: &Source) -> Result<Keyring, RepoError> {
        if source.keys.is_empty() {
            return Err(RepoError::NoKeys {
                source_id: source.id.clone(),
            });
        }
        let mut keyring = Keyring::new();
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
            keyring.add_bytes(&bytes, &k.describe()).map_err(key_err)?;
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

    /// Loads one Packages file: from its cached index, or by download + verification +
    /// index build.
    async fn packages(
        &self,
        fetcher: &Fetcher,
        source: &Source,
        info: Arc<ReleaseInfo>,
        wanted: WantedPackages,
    ) -> Result<LoadedRepo, RepoError> {
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
        if let Some(index) = open_index(&path).await {
            tracing::debug!(source = %source.id, file = %wanted.path, "index from cache");
            return Ok(make(index));
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
            let t = Instant::now();
            let source_id = source.id.clone();
            let cand_owned = cand.clone();
            let uncompressed = wanted.uncompressed.clone();
            let index_path = path.clone();
            let built = tokio::task::spawn_blocking(move || {
                build_index(
                    &source_id,
                    &url,
                    &cand_owned,
                    uncompressed.as_ref(),
                    &bytes,
                    &index_path,
                )
            })
            .await
            .map_err(|e| RepoError::Internal(format!("index build task failed: {e}")))??;
            tracing::debug!(
                source = %source.id,
                file = %cand.path,
                packages = built.len(),
                ms = t.elapsed().as_millis() as u64,
                "verified, decompressed and indexed"
            );
            return Ok(make(built));
        }
        Err(RepoError::HttpStatus {
            source_id: source.id.clone(),
            url: last_missing.unwrap_or(dir_url),
            status: 404,
        })
    }

    fn load_cached(
        &self,
        source: &Source,
        arch: &str,
        cached: CachedRelease,
    ) -> Result<Vec<LoadedRepo>, RepoError> {
        let info = Arc::new(cached.info);
        let wanted =
            info.packages_files(&source.layout, arch)
                .map_err(|what| RepoError::NoPackages {
                    source_id: source.id.clone(),
                    url: cached.header.url.clone(),
                    what,
                })?;
        let mut repos = Vec::new();
        for w in wanted {
            let key = w.cache_key().unwrap_or_default();
            let path = self.index_path(&key);
            let index = Index::open(&path).map_err(|e| RepoError::Index {
                source_id: source.id.clone(),
                url: path.display().to_string(),
                source: e,
            })?;
            repos.push(LoadedRepo {
                source_id: source.id.clone(),
                base_url: source.package_base(),
                packages_path: w.path.clone(),
                index,
                release_info: info.clone(),
                stale: true,
            });
        }
        Ok(repos)
    }

    /// Deletes indexes that no cached Release refers to and leftover temporary files,
    /// except files changed in the last hour (a concurrent load may be about to refer to
    /// them). Returns how many files were removed.
    pub fn prune(&self) -> Result<usize, RepoError> {
        let grace = std::time::Duration::from_secs(3600);
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
        let mut keep = std::collections::HashSet::new();
        let mut removed = 0;
        for p in list(&self.dir.join("release"))? {
            let is_tmp = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".tmp-"));
            if is_tmp {
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
            if !keep.contains(key) && !recent(&p) && std::fs::remove_file(&p).is_ok() {
                removed += 1;
            }
        }
        tracing::debug!(removed, "pruned the metadata cache");
        Ok(removed)
    }

    fn read_release(&self, source: &Source, arch: &str) -> Option<CachedRelease> {
        let path = self.release_path(source, arch);
        let bytes = std::fs::read(&path).ok()?;
        let parsed = (|| {
            let nl = bytes.iter().position(|&b| b == b'\n')?;
            if &bytes[..nl] != RELEASE_MAGIC.as_bytes() {
                return None;
            }
            let rest = &bytes[nl + 1..];
            let nl2 = rest.iter().position(|&b| b == b'\n')?;
            let header: ReleaseHeader = serde_json::from_slice(&rest[..nl2]).ok()?;
            let payload = &rest[nl2 + 1..];
            if header.identity != source.cache_identity(arch)
                || (source.check_gpg && !header.verified)
                || sha256_hex(payload) != header.release_sha256
            {
                return None;
            }
            let info = ReleaseInfo::parse(
                payload,
                header.release_sha256.clone(),
                header.signed_by.clone(),
            )
            .ok()?;
            Some(CachedRelease { header, info })
        })();
        if parsed.is_none() {
            tracing::warn!(path = %path.display(), "discarding a corrupt cache entry");
            let _ = std::fs::remove_file(&path);
        }
        parsed
    }

    fn write_release(
        &self,
        source: &Source,
        arch: &str,
        header: &ReleaseHeader,
        payload: &[u8],
    ) -> Result<(), RepoError> {
        let mut bytes = Vec::with_capacity(payload.len() + 512);
        bytes.extend_from_slice(RELEASE_MAGIC.as_bytes());
        bytes.push(b'\n');
        bytes.extend_from_slice(
            serde_json::to_string(header)
                .map_err(|e| RepoError::Internal(e.to_string()))?
                .as_bytes(),
        );
        bytes.push(b'\n');
        bytes.extend_from_slice(payload);
        write_atomic(&self.release_path(source, arch), &bytes)
    }
}

/// Opens a cached index; a corrupt one is deleted (and `None` returned) so that it is
/// rebuilt.
async fn open_index(path: &Path) -> Option<Index> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        if !path.exists() {
            return None;
        }
        match Index::open(&path) {
            Ok(i) => Some(i),
            Err(e) => {
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
/// index and stores it atomically at `index_path`.
fn build_index(
    source_id: &str,
    url: &str,
    cand: &crate::release::Candidate,
    uncompressed: Option<&crate::release::FileEntry>,
    bytes: &[u8],
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
    write_atomic(index_path, &bytes)?;
    Index::open(index_path).map_err(|e| RepoError::Index {
        source_id: source_id.to_string(),
        url: index_path.display().to_string(),
        source: e,
    })
}

/// Fetches `InRelease` (or `Release` + `Release.gpg`) and verifies it.
async fn fetch_release(
    fetcher: &Fetcher,
    source: &Source,
    keyring: Option<&Keyring>,
    now: SystemTime,
) -> Result<FetchedRelease, RepoError> {
    let dir = source.release_dir();
    let inrelease_url = format!("{dir}InRelease");
    let map_verify = |url: &str, e: VerifyError| match e {
        VerifyError::NotSigned(detail) => RepoError::Unsigned {
            source_id: source.id.clone(),
            url: url.to_string(),
            detail: format!("{url}: {detail}"),
        },
        VerifyError::Malformed(m) => RepoError::BadSignature {
            source_id: source.id.clone(),
            url: url.to_string(),
            reasons: vec![m],
        },
        VerifyError::UnknownKey { key_ids } => RepoError::UnknownKey {
            source_id: source.id.clone(),
            url: url.to_string(),
            key_ids,
            keyrings: keyring.map(|k| k.origins.clone()).unwrap_or_default(),
        },
        VerifyError::Rejected { reasons } => RepoError::BadSignature {
            source_id: source.id.clone(),
            url: url.to_string(),
            reasons,
        },
    };
    if let Some(bytes) = fetcher
        .get(&source.id, &inrelease_url, source.check_ssl, MAX_RELEASE)
        .await?
    {
        return match keyring {
            Some(k) => {
                let v = openpgp::verify_cleartext(&bytes, k, now)
                    .map_err(|e| map_verify(&inrelease_url, e))?;
                Ok(FetchedRelease {
                    url: inrelease_url,
                    payload: v.payload,
                    signed_by: v.signers,
                })
            }
            None => Ok(FetchedRelease {
                payload: openpgp::cleartext_payload_unverified(&bytes)
                    .map_err(|e| map_verify(&inrelease_url, e))?,
                url: inrelease_url,
                signed_by: Vec::new(),
            }),
        };
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
    let Some(k) = keyring else {
        return Ok(FetchedRelease {
            url: release_url,
            payload: release,
            signed_by: Vec::new(),
        });
    };
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
    let v = openpgp::verify_detached(&release, &sig, k, now)
        .map_err(|e| map_verify(&release_url, e))?;
    Ok(FetchedRelease {
        url: release_url,
        payload: v.payload,
        signed_by: v.signers,
    })
}
