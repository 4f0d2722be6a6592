//! Dependency solving for kiln: which packages `apt-get install` would put on an empty
//! system.
//!
//! Given the package indexes of the configured sources (index 0 has the highest
//! precedence) and a request (package names with optional version globs), [`solve`]
//! computes the closure to install, aiming at exactly what
//! `apt-get -s -o Dir::State::status=<empty> install PKGS` selects.
//!
//! The solving is done by [resolvo](https://docs.rs/resolvo) (CDCL SAT) with a Debian
//! dependency provider (`provider.rs`). apt however is not a SAT solver: it walks the
//! dependencies depth-first, in command-line order, and takes the first installable
//! alternative of each or-group as it meets it, which is order dependent; it then drops
//! new packages nothing needs any more (left over from alternatives it gave up) and, when
//! its walk ends with conflicts, lets a score-based problem resolver give packages up.
//! To get apt's choices rather than just *a* valid set, an emulation of that pass
//! (`apt.rs`) runs first, and its picks steer resolvo (preferred candidates, union order
//! and soft requirements). resolvo still checks the result, finds a solution when the
//! emulation ends broken, and explains requests that cannot be satisfied.
//!
//! Differences from apt that remain by design: resolvo may use an older version (from
//! another index) when the candidate cannot work, where apt only ever considers
//! candidates and refuses; and when apt's marking ends broken, only the core of apt's
//! problem resolver is emulated (conflicts decided by apt's scores, then dependents of
//! dropped packages dropped), the rest is resolvo's choice.

mod apt;
mod glob;
mod provider;
mod universe;

pub use glob::name_matches;
use provider::{DebProvider, RequestSpec, SetDef, SetKind, sid, sid_u32};
use resolvo::{ConditionalRequirement, Problem, Requirement, Solver, UnsolvableOrCancelled};
use std::time::Instant;
use thiserror::Error;
pub use universe::Universe;

/// What to install. The order of `packages` matters as it does on apt's command line:
/// apt installs the dependencies of the requested packages one after the other.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub packages: Vec<PackageSpec>,
    /// Install Recommends too (best effort, as apt does), off by default.
    pub recommends: bool,
}

/// One requested package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSpec {
    pub name: String,
    /// A version or a glob (`2.4.*`, `1:1.2-3`, `*`), matched against the full version
    /// and against the version without its epoch.
    pub version: Option<String>,
}

impl PackageSpec {
    pub fn new(name: impl Into<String>) -> Self {
        PackageSpec {
            name: name.into(),
            version: None,
        }
    }

    pub fn with_version(name: impl Into<String>, version: impl Into<String>) -> Self {
        PackageSpec {
            name: name.into(),
            version: Some(version.into()),
        }
    }
}

impl Request {
    /// A request for the latest versions of some packages, without Recommends.
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        Request {
            packages: names.into_iter().map(PackageSpec::new).collect(),
            recommends: false,
        }
    }
}

/// The packages to install, sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Solution {
    pub packages: Vec<Selected>,
}

/// One package of a solution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Selected {
    /// Position of the index in the slice given to [`solve`].
    pub repo: usize,
    /// Position of the package in that index.
    pub index: u32,
}

impl Selected {
    /// The package record.
    pub fn package<'a>(&self, indexes: &[&'a kiln_deb::Index]) -> Option<kiln_deb::Package<'a>> {
        let index = indexes.get(self.repo)?;
        (self.index < index.len() as u32).then(|| index.package(self.index))
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SolveError {
    #[error(
        "package {package} is not in any configured source{}",
        suggest(suggestions)
    )]
    UnknownPackage {
        package: String,
        suggestions: Vec<String>,
    },
    #[error(
        "package {package} is a virtual package provided by: {}; select one of them explicitly",
        providers.join(", ")
    )]
    VirtualPackage {
        package: String,
        providers: Vec<String>,
    },
    #[error(
        "no version of package {package} matches {glob:?} (available: {})",
        if available.is_empty() { "none".to_string() } else { available.join(", ") }
    )]
    NoMatchingVersion {
        package: String,
        glob: String,
        available: Vec<String>,
    },
    #[error("the requested packages cannot be installed together:\n{explanation}")]
    Unsatisfiable { explanation: String },
    #[error("internal solver error: {0}")]
    Internal(String),
}

fn suggest(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", s.join(", "))
    }
}

/// Solves `request` against `indexes` for architecture `arch` (plus `all`).
pub fn solve(
    indexes: &[&kiln_deb::Index],
    arch: &str,
    request: &Request,
) -> Result<Solution, SolveError> {
    Universe::new(indexes, arch).solve(request)
}

impl<'a> Universe<'a> {
    /// Solves a request; a universe can serve any number of requests.
    pub fn solve(&self, request: &Request) -> Result<Solution, SolveError> {
        let start = Instant::now();
        let specs = self.resolve_request(request)?;
        // The emulation recurses like apt (up to a depth of 1000): give it a roomy stack
        // whatever thread we are called on.
        let apt = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("kiln-apt-mark".into())
                .stack_size(64 << 20)
                .spawn_scoped(scope, || apt::mark(self, &specs, request.recommends))
                .ok()
                .and_then(|handle| handle.join().ok())
        })
        .unwrap_or_else(|| apt::mark(self, &specs, request.recommends));
        tracing::debug!(
            picked = apt.installed.len(),
            broken = apt.broken,
            elapsed = ?start.elapsed(),
            "apt marking pass"
        );
        let solution = self.run_resolvo(specs, &apt)?;
        tracing::debug!(packages = solution.len(), elapsed = ?start.elapsed(), "solved");
        let mut out: Vec<(&str, Selected)> = solution
            .into_iter()
            .map(|s| {
                let solv = self.solv(s);
                (
                    solv.pkg.name(),
                    Selected {
                        repo: solv.repo as usize,
                        index: solv.index,
                    },
                )
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        Ok(Solution {
            packages: out.into_iter().map(|(_, s)| s).collect(),
        })
    }

    /// Maps requested names to packages: real names first, then a virtual name with a
    /// single provider, as apt does.
    fn resolve_request(&self, request: &Request) -> Result<Vec<RequestSpec>, SolveError> {
        let mut specs = Vec::with_capacity(request.packages.len());
        for spec in &request.packages {
            let name = spec.name.trim();
            // `pkg:amd64`, `pkg:native`, `pkg:all` and `pkg:any` name our package.
            let name = match name.split_once(':') {
                Some((base, qual))
                    if qual == self.arch() || matches!(qual, "native" | "all" | "any") =>
                {
                    base
                }
                _ => name,
            };
            let Some(id) = self.name_id(name) else {
                return Err(SolveError::UnknownPackage {
                    package: name.to_string(),
                    suggestions: self.close_names(name),
                });
            };
            let id = if self.versions(id).is_empty() {
                let mut providers: Vec<u32> = Vec::new();
                for p in self.providers(id) {
                    let n = self.solv(p.solv).name;
                    if !providers.contains(&n) {
                        providers.push(n);
                    }
                }
                match providers.as_slice() {
                    [] => {
                        return Err(SolveError::UnknownPackage {
                            package: name.to_string(),
                            suggestions: self.close_names(name),
                        });
                    }
                    [only] if spec.version.is_none() => *only,
                    [_] => {
                        return Err(SolveError::NoMatchingVersion {
                            package: name.to_string(),
                            glob: spec.version.clone().unwrap_or_default(),
                            available: Vec::new(),
                        });
                    }
                    many => {
                        let mut providers: Vec<String> =
                            many.iter().map(|&n| self.name(n).to_string()).collect();
                        providers.sort();
                        return Err(SolveError::VirtualPackage {
                            package: name.to_string(),
                            providers,
                        });
                    }
                }
            } else {
                id
            };
            let versions = self.versions(id);
            let allowed: Vec<u32> = match &spec.version {
                None => versions.clone().collect(),
                Some(g) => versions
                    .clone()
                    .filter(|&s| {
                        let pkg = &self.solv(s).pkg;
                        glob::version_arch_matches(g.trim(), pkg.version(), pkg.arch())
                    })
                    .collect(),
            };
            if allowed.is_empty() {
                return Err(SolveError::NoMatchingVersion {
                    package: name.to_string(),
                    glob: spec.version.clone().unwrap_or_default(),
                    available: versions
                        .map(|s| self.solv(s).pkg.version().to_string())
                        .collect(),
                });
            }
            specs.push(RequestSpec {
                name: id,
                glob: spec.version.as_ref().map(|g| g.trim().to_string()),
                allowed,
            });
        }
        Ok(specs)
    }

    /// Up to five known package names within a small edit distance.
    fn close_names(&self, name: &str) -> Vec<String> {
        let max = if name.len() <= 4 { 1 } else { 2 };
        let mut found: Vec<(usize, &str)> = self
            .all_names()
            .iter()
            .filter(|n| n.len().abs_diff(name.len()) <= max)
            .filter_map(|n| glob::edit_distance(name, n, max).map(|d| (d, *n)))
            .collect();
        found.sort();
        found.dedup();
        found
            .into_iter()
            .take(5)
            .map(|(_, n)| n.to_string())
            .collect()
    }

    fn run_resolvo(
        &self,
        specs: Vec<RequestSpec>,
        apt: &apt::Marked,
    ) -> Result<Vec<u32>, SolveError> {
        let mut provider = DebProvider::new(self, specs);
        let mut preferred = vec![false; self.solv_count()];
        for &s in &apt.installed {
            preferred[s as usize] = true;
        }
        provider.set_preferred(preferred);
        let requirements: Vec<ConditionalRequirement> = (0..provider.requests.len())
            .map(|i| {
                let def = SetDef {
                    name: provider.requests[i].name,
                    kind: SetKind::Request { spec: i as u32 },
                    neg: provider::Negation::No,
                };
                Requirement::Single(provider.intern_set(def)).into()
            })
            .collect();
        let mut solver = Solver::new(provider);
        let problem = Problem::new()
            .requirements(requirements)
            .soft_requirements(apt.installed.iter().map(|&s| sid(s)).collect::<Vec<_>>());
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| solver.solve(problem)));
        match result {
            Ok(Ok(ids)) => Ok(ids.into_iter().map(sid_u32).collect()),
            Ok(Err(UnsolvableOrCancelled::Unsolvable(conflict))) => {
                Err(SolveError::Unsatisfiable {
                    explanation: conflict.display_user_friendly(&solver).to_string(),
                })
            }
            Ok(Err(UnsolvableOrCancelled::Cancelled(_))) => {
                Err(SolveError::Internal("the solver was cancelled".into()))
            }
            Err(_) => Err(SolveError::Internal("the solver panicked".into())),
        }
    }
}
