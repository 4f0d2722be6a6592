//! Warm package universes: the loaded metadata of each (distro, arch), kept between
//! requests and reloaded when it is older than the refresh interval or when the sources
//! changed; plus the weldr shapes of Debian packages (`version`/`release` split from the
//! Debian version, as the conformance notes say).

use kiln_compose::{Distro, Env};
use kiln_deb::version::Version;
use kiln_depsolve::{PackageSpec, Request};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One loaded universe and a by-name table of its packages.
pub struct Loaded {
    pub distro: Distro,
    pub arch: String,
    pub universe: kiln_repo::Universe,
    /// Every package name, sorted, with its builds (repo, index), newest version first.
    pub names: Vec<(String, Vec<(u32, u32)>)>,
    loaded_at: Instant,
    generation: u64,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("distro", &self.distro)
            .field("arch", &self.arch)
            .field("packages", &self.universe.package_count())
            .finish()
    }
}

impl Loaded {
    fn new(distro: Distro, arch: &str, universe: kiln_repo::Universe, generation: u64) -> Loaded {
        let mut by_name: HashMap<&str, Vec<(u32, u32)>> = HashMap::new();
        for (r, repo) in universe.repos.iter().enumerate() {
            for (i, p) in repo.index.iter().enumerate() {
                if p.arch() == arch || p.arch() == "all" {
                    by_name
                        .entry(p.name())
                        .or_default()
                        .push((r as u32, i as u32));
                }
            }
        }
        let mut names: Vec<(String, Vec<(u32, u32)>)> = by_name
            .into_iter()
            .map(|(name, mut builds)| {
                builds.sort_by(|a, b| {
                    let pa = universe.repos[a.0 as usize].index.package(a.1);
                    let pb = universe.repos[b.0 as usize].index.package(b.1);
                    kiln_deb::version::compare(pb.version(), pa.version())
                });
                builds.dedup_by(|a, b| {
                    let pa = universe.repos[a.0 as usize].index.package(a.1);
                    let pb = universe.repos[b.0 as usize].index.package(b.1);
                    pa.version() == pb.version() && pa.arch() == pb.arch()
                });
                (name.to_string(), builds)
            })
            .collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        Loaded {
            distro,
            arch: arch.to_string(),
            universe,
            names,
            loaded_at: Instant::now(),
            generation,
        }
    }

    pub fn package(&self, at: (u32, u32)) -> kiln_deb::Package<'_> {
        self.universe.repos[at.0 as usize].index.package(at.1)
    }

    /// Names matching any of `patterns` (globs), sorted.
    pub fn matching<'a>(
        &'a self,
        patterns: &[String],
    ) -> impl Iterator<Item = &'a (String, Vec<(u32, u32)>)> + 'a {
        let patterns = patterns.to_vec();
        self.names.iter().filter(move |(name, _)| {
            patterns
                .iter()
                .any(|p| p == name || kiln_depsolve::name_matches(p, name))
        })
    }

    /// The newest `Date` of the Release files of `repo`, for `build_time`.
    pub fn release_date(&self, repo: u32) -> String {
        self.universe.repos[repo as usize]
            .release_info
            .date
            .and_then(|d| d.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| crate::history::iso8601(d.as_secs() as i64))
            .unwrap_or_default()
    }

    /// Resolves `specs` (no Recommends, nothing added): what the weldr depsolve routes
    /// report.
    pub fn depsolve(&self, specs: Vec<PackageSpec>) -> Result<Vec<Dependency>, String> {
        if specs.is_empty() {
            return Ok(Vec::new());
        }
        let _permit = SolvePermit::acquire();
        let repos = &self.universe.repos;
        let indexes: Vec<&kiln_deb::Index> = repos.iter().map(|r| &r.index).collect();
        let request = Request {
            packages: specs,
            recommends: false,
        };
        let solution =
            kiln_depsolve::solve(&indexes, &self.arch, &request).map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(solution.packages.len());
        for sel in &solution.packages {
            let Some(pkg) = sel.package(&indexes) else {
                return Err("internal error: the solver returned an unknown package".into());
            };
            let repo = &repos[sel.repo];
            out.push(Dependency::new(pkg, &repo.base_url, &repo.source_id));
        }
        Ok(out)
    }
}

/// At most one solve per core at a time, across the server. Each solve builds its own
/// solver state over the whole universe; more solves at once than cores only queue for
/// the CPU while holding that memory (50 concurrent depsolves peaked at 1 GiB of RSS).
struct SolvePermit;

static SOLVES: (std::sync::Mutex<usize>, std::sync::Condvar) =
    (std::sync::Mutex::new(0), std::sync::Condvar::new());

impl SolvePermit {
    fn acquire() -> SolvePermit {
        let limit = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (count, freed) = &SOLVES;
        let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= limit {
            n = freed.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        SolvePermit
    }
}

impl Drop for SolvePermit {
    fn drop(&mut self) {
        let (count, freed) = &SOLVES;
        *count.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        freed.notify_one();
    }
}

/// One package of a depsolve, in weldr's field names.
#[derive(Debug, Clone, Serialize)]
pub struct Dependency {
    pub name: String,
    pub epoch: u64,
    /// The upstream part of the Debian version.
    pub version: String,
    /// The Debian revision (`"0"` for native packages).
    pub release: String,
    pub arch: String,
    pub remote_location: String,
    /// `sha256:<hex>`.
    pub checksum: String,
    /// The Debian version as apt writes it (`[epoch:]upstream[-revision]`).
    pub debian_version: String,
    pub size: u64,
    /// The kiln source the package comes from.
    pub source: String,
}

impl Dependency {
    fn new(pkg: kiln_deb::Package<'_>, base_url: &str, source: &str) -> Dependency {
        let (epoch, version, release) = split_version(pkg.version());
        Dependency {
            name: pkg.name().to_string(),
            epoch,
            version,
            release,
            arch: pkg.arch().to_string(),
            remote_location: format!("{base_url}{}", pkg.filename()),
            checksum: pkg
                .sha256_hex()
                .map(|h| format!("sha256:{h}"))
                .unwrap_or_default(),
            debian_version: pkg.version().to_string(),
            size: pkg.size(),
            source: source.to_string(),
        }
    }
}

/// A Debian version as weldr's `epoch`, `version`, `release`: the revision is what follows
/// the last `-`; native packages get release `"0"` so clients never print `name-1.0-.all`.
pub fn split_version(v: &str) -> (u64, String, String) {
    let parsed = Version::parse(v);
    let release = if parsed.revision.is_empty() {
        "0"
    } else {
        parsed.revision
    };
    (
        parsed.epoch,
        parsed.upstream.to_string(),
        release.to_string(),
    )
}

#[derive(Debug, thiserror::Error)]
pub enum PackagesError {
    #[error("{0}")]
    Compose(#[from] Box<kiln_compose::ComposeError>),
    #[error("internal error: {0}")]
    Internal(String),
}

/// One universe's slot: loads of one (distro, arch) are serialised on its mutex.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Loaded>>>>;

/// The warm universes of the server.
pub struct Packages {
    env: Env,
    refresh: Duration,
    generation: AtomicU64,
    slots: std::sync::Mutex<HashMap<(Distro, String), Slot>>,
}

impl std::fmt::Debug for Packages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packages")
            .field("store", &self.env.store)
            .field("refresh", &self.refresh)
            .finish()
    }
}

impl Packages {
    pub fn new(env: Env, refresh: Duration) -> Packages {
        Packages {
            env,
            refresh,
            generation: AtomicU64::new(0),
            slots: std::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn env(&self) -> &Env {
        &self.env
    }

    /// Forgets every loaded universe at its next use (sources changed).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The loaded universe of `distro`/`arch`: the warm one when it is fresh, else a
    /// reload (one at a time per key; concurrent callers wait for it). When a reload
    /// fails and an older universe exists, the older one is used (with a warning in the
    /// log).
    pub async fn get(&self, distro: Distro, arch: &str) -> Result<Arc<Loaded>, PackagesError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry((distro, arch.to_string())).or_default().clone()
        };
        let mut guard = slot.lock().await;
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some(l) = guard.as_ref()
            && l.generation == generation
            && l.loaded_at.elapsed() < self.refresh
        {
            return Ok(l.clone());
        }
        let env = self.env.clone();
        let arch_owned = arch.to_string();
        let start = Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            kiln_compose::load(&env, distro, &arch_owned, None)
                .map(|u| Loaded::new(distro, &arch_owned, u, generation))
                .map_err(Box::new)
        })
        .await
        .map_err(|e| PackagesError::Internal(format!("metadata loader failed: {e}")))?;
        match result {
            Ok(loaded) => {
                for w in &loaded.universe.warnings {
                    tracing::warn!(distro = %distro, "{w}");
                }
                tracing::info!(
                    distro = %distro,
                    arch,
                    packages = loaded.universe.package_count(),
                    ms = start.elapsed().as_millis() as u64,
                    "package metadata loaded"
                );
                let loaded = Arc::new(loaded);
                *guard = Some(loaded.clone());
                Ok(loaded)
            }
            Err(e) => match guard.as_ref() {
                Some(old) if old.generation == generation => {
                    tracing::warn!(distro = %distro, "reloading metadata failed, using the previous load: {e}");
                    Ok(old.clone())
                }
                _ => Err(e.into()),
            },
        }
    }
}

/// Debian's name for an architecture given the way clients write it (`x86_64` → `amd64`).
pub fn debian_arch(arch: &str) -> Option<&'static str> {
    let a = match arch {
        "x86_64" | "amd64" => "amd64",
        "aarch64" | "arm64" => "arm64",
        "armhf" | "armv7hl" => "armhf",
        "i386" | "i686" => "i386",
        "ppc64el" | "ppc64le" => "ppc64el",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        _ => return None,
    };
    Some(a)
}

/// The architecture of this machine, in Debian's spelling.
pub fn host_arch() -> &'static str {
    debian_arch(std::env::consts::ARCH).unwrap_or("amd64")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_split_like_the_conformance_notes() {
        assert_eq!(
            split_version("1:2.38.1-5+deb12u2"),
            (1, "2.38.1".into(), "5+deb12u2".into())
        );
        assert_eq!(
            split_version("5.2.15-2+b2"),
            (0, "5.2.15".into(), "2+b2".into())
        );
        assert_eq!(split_version("1.0"), (0, "1.0".into(), "0".into()));
        assert_eq!(split_version("2:1.2-3-4"), (2, "1.2-3".into(), "4".into()));
    }

    #[test]
    fn no_more_solves_at_once_than_cores() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let limit = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (now, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..4 * limit {
                s.spawn(|| {
                    let _p = SolvePermit::acquire();
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    now.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        let peak = peak.load(Ordering::SeqCst);
        assert!(
            (1..=limit).contains(&peak),
            "{peak} solves at once, limit {limit}"
        );
    }
}
