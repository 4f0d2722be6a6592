//! The solver's view of the package indexes: every installable package of one
//! architecture, grouped by name (highest version first), and the providers of every
//! virtual name.
//!
//! Built in one pass over the (mmapped) indexes without copying strings: names and
//! versions are `&str` borrowed from the [`Index`]es. Names and solvables are dense
//! `u32` ids so the solver and the apt emulation can use plain vectors as maps.

use ahash::AHashMap;
use kiln_deb::index::{MultiArch, Priority, RelKind};
use kiln_deb::relation::{Op, Relation};
use kiln_deb::version;
use kiln_deb::{Index, Package};
use std::cmp::Ordering;
use std::sync::{Mutex, OnceLock};

/// One installable package version (a "solvable").
#[derive(Clone, Copy)]
pub(crate) struct Solv<'a> {
    pub pkg: Package<'a>,
    pub repo: u32,
    pub index: u32,
    pub name: u32,
}

/// One `Provides:` entry, seen from the provided (virtual) name.
#[derive(Clone, Copy)]
pub(crate) struct Prov<'a> {
    pub solv: u32,
    /// The provided version (`Provides: foo (= 1.0)`), `None` when unversioned.
    pub version: Option<&'a str>,
}

/// How a relation's architecture qualifier restricts what satisfies it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum ArchQual {
    /// No qualifier, `:native` or the native architecture: native and `all` packages.
    Native,
    /// `:any`: only `Multi-Arch: allowed` packages (and their provides).
    Any,
    /// A foreign architecture: nothing of ours satisfies it.
    Foreign,
}

/// The packages of a set of indexes for one architecture.
pub struct Universe<'a> {
    arch: &'a str,
    names: AHashMap<&'a str, u32>,
    name_strs: Vec<&'a str>,
    /// Sorted by name id, then highest version first.
    solvables: Vec<Solv<'a>>,
    /// `solvables[name_start[n]..name_start[n + 1]]` are the versions of name `n`.
    name_start: Vec<u32>,
    /// `provs[prov_start[n]..prov_start[n + 1]]` provide name `n`, by solvable id.
    provs: Vec<Prov<'a>>,
    prov_start: Vec<u32>,
    /// apt's package ids (creation order in its cache), computed on first use.
    rank_scan: Mutex<RankScan>,
    stanza_maps: OnceLock<Vec<Option<StanzaMap>>>,
    /// Where each name's string lives: (index, address). Index builders intern every
    /// string once, at its first occurrence, so within one index the address order is
    /// the order in which the builder first met the name (as a stanza or a relation
    /// target): nearly apt's package id order, for free.
    origin: Vec<(u32, usize)>,
    indexes: Vec<&'a Index>,
}

impl<'a> Universe<'a> {
    /// Collects the packages of `arch` (and `all`) from `indexes`. When the same name,
    /// version and architecture appear in several indexes, the first index wins.
    pub fn new(indexes: &[&'a Index], arch: &'a str) -> Universe<'a> {
        let start = std::time::Instant::now();
        let total: usize = indexes.iter().map(|i| i.len()).sum();
        let mut names: AHashMap<&'a str, u32> = AHashMap::with_capacity(total + total / 4);
        let mut name_strs: Vec<&'a str> = Vec::with_capacity(total + total / 4);
        let mut raw: Vec<Solv<'a>> = Vec::with_capacity(total);
        let mut provs_raw: Vec<(u32, Prov<'a>)> = Vec::with_capacity(total / 4);
        let mut origin: Vec<(u32, usize)> = Vec::with_capacity(total + total / 4);
        let mut intern = |s: &'a str, repo: usize, names: &mut AHashMap<&'a str, u32>| -> u32 {
            let next = name_strs.len() as u32;
            *names.entry(s).or_insert_with(|| {
                name_strs.push(s);
                origin.push((repo as u32, s.as_ptr() as usize));
                next
            })
        };
        for (repo, index) in indexes.iter().enumerate() {
            for (i, pkg) in index.iter().enumerate() {
                let pkg_arch = pkg.arch();
                if pkg_arch != arch && pkg_arch != "all" {
                    continue;
                }
                let name = intern(pkg.name(), repo, &mut names);
                let raw_id = raw.len() as u32;
                raw.push(Solv {
                    pkg,
                    repo: repo as u32,
                    index: i as u32,
                    name,
                });
                // Provides, keyed by the provided name (which may be a new, purely
                // virtual name). Read now, while the record is in cache.
                for rel in pkg.relations(RelKind::Provides).flatten() {
                    let version = match rel.constraint {
                        None => None,
                        Some((Op::Eq, v)) => Some(v),
                        // apt ignores a Provides with another operator.
                        Some(_) => continue,
                    };
                    let provided = intern(rel.name, repo, &mut names);
                    provs_raw.push((
                        provided,
                        Prov {
                            solv: raw_id,
                            version,
                        },
                    ));
                }
            }
        }

        // Group by name, highest version first, then by index precedence; drop the
        // later copies of an identical name + version + architecture.
        let mut order: Vec<u32> = (0..raw.len() as u32).collect();
        order.sort_unstable_by_key(|&k| {
            let s = &raw[k as usize];
            (s.name, s.repo, s.index)
        });
        let mut solvables: Vec<Solv<'a>> = Vec::with_capacity(raw.len());
        let mut raw_to_new: Vec<u32> = vec![u32::MAX; raw.len()];
        let mut i = 0;
        while i < order.len() {
            let name = raw[order[i] as usize].name;
            let mut j = i + 1;
            while j < order.len() && raw[order[j] as usize].name == name {
                j += 1;
            }
            let group = &mut order[i..j];
            if group.len() > 1 {
                group.sort_by(|&a, &b| {
                    version::compare(raw[b as usize].pkg.version(), raw[a as usize].pkg.version())
                });
            }
            let first_new = solvables.len();
            for &k in group.iter() {
                let cand = &raw[k as usize];
                let dup = solvables[first_new..].iter().any(|s: &Solv<'a>| {
                    s.pkg.arch() == cand.pkg.arch()
                        && version::compare(s.pkg.version(), cand.pkg.version()) == Ordering::Equal
                });
                if !dup {
                    raw_to_new[k as usize] = solvables.len() as u32;
                    solvables.push(*cand);
                }
            }
            i = j;
        }
        provs_raw.retain_mut(|(_, p)| {
            p.solv = raw_to_new[p.solv as usize];
            p.solv != u32::MAX
        });
        provs_raw.sort_unstable_by_key(|(n, p)| (*n, p.solv));

        let n_names = name_strs.len();
        let mut name_start = Vec::with_capacity(n_names + 1);
        let mut k = 0usize;
        for n in 0..n_names as u32 {
            name_start.push(k as u32);
            while k < solvables.len() && solvables[k].name == n {
                k += 1;
            }
        }
        name_start.push(k as u32);
        let mut prov_start = Vec::with_capacity(n_names + 1);
        let mut k = 0usize;
        for n in 0..n_names as u32 {
            prov_start.push(k as u32);
            while k < provs_raw.len() && provs_raw[k].0 == n {
                k += 1;
            }
        }
        prov_start.push(k as u32);
        let provs = provs_raw.into_iter().map(|(_, p)| p).collect();
        tracing::debug!(
            packages = solvables.len(),
            names = n_names,
            elapsed = ?start.elapsed(),
            "built the solver universe"
        );
        Universe {
            arch,
            names,
            name_strs,
            solvables,
            name_start,
            provs,
            prov_start,
            rank_scan: Mutex::default(),
            stanza_maps: OnceLock::new(),
            origin,
            indexes: indexes.to_vec(),
        }
    }

    pub fn arch(&self) -> &'a str {
        self.arch
    }

    /// The number of installable package versions.
    pub fn len(&self) -> usize {
        self.solvables.len()
    }

    pub fn is_empty(&self) -> bool {
        self.solvables.is_empty()
    }

    pub(crate) fn name_id(&self, name: &str) -> Option<u32> {
        self.names.get(name).copied()
    }

    pub(crate) fn name_count(&self) -> usize {
        self.name_strs.len()
    }

    pub(crate) fn name(&self, id: u32) -> &'a str {
        self.name_strs.get(id as usize).copied().unwrap_or("")
    }

    pub(crate) fn all_names(&self) -> &[&'a str] {
        &self.name_strs
    }

    pub(crate) fn solv(&self, id: u32) -> &Solv<'a> {
        &self.solvables[id as usize]
    }

    pub(crate) fn solv_count(&self) -> usize {
        self.solvables.len()
    }

    /// The versions of a name, highest first.
    pub(crate) fn versions(&self, name: u32) -> std::ops::Range<u32> {
        let n = name as usize;
        match (self.name_start.get(n), self.name_start.get(n + 1)) {
            (Some(&a), Some(&b)) => a..b,
            _ => 0..0,
        }
    }

    /// apt's candidate of a name: its highest version.
    pub(crate) fn candidate(&self, name: u32) -> Option<u32> {
        let r = self.versions(name);
        (!r.is_empty()).then_some(r.start)
    }

    /// The `Provides:` entries naming `name`, ordered by solvable id.
    pub(crate) fn providers(&self, name: u32) -> &[Prov<'a>] {
        let n = name as usize;
        match (self.prov_start.get(n), self.prov_start.get(n + 1)) {
            (Some(&a), Some(&b)) => &self.provs[a as usize..b as usize],
            _ => &[],
        }
    }

    pub(crate) fn arch_qual(&self, rel: &Relation<'_>) -> ArchQual {
        match rel.arch {
            None | Some("native") => ArchQual::Native,
            Some("any") => ArchQual::Any,
            Some(a) if a == self.arch => ArchQual::Native,
            Some(_) => ArchQual::Foreign,
        }
    }

    /// Whether solvable `s` of the relation's own name satisfies it.
    pub(crate) fn satisfies_real(
        &self,
        s: u32,
        constraint: Option<(Op, &str)>,
        qual: ArchQual,
    ) -> bool {
        let pkg = self.solv(s).pkg;
        match qual {
            ArchQual::Foreign => return false,
            ArchQual::Any if pkg.multi_arch() != MultiArch::Allowed => return false,
            _ => {}
        }
        match constraint {
            None => true,
            Some((op, v)) => op.accepts(version::compare(pkg.version(), v)),
        }
    }

    /// Whether solvable `s` satisfies a relation on `virt` through its Provides.
    /// An unversioned Provides never satisfies a versioned relation.
    pub(crate) fn satisfies_provided(
        &self,
        s: u32,
        virt: u32,
        constraint: Option<(Op, &str)>,
        qual: ArchQual,
    ) -> bool {
        let pkg = self.solv(s).pkg;
        match qual {
            ArchQual::Foreign => return false,
            ArchQual::Any if pkg.multi_arch() != MultiArch::Allowed => return false,
            _ => {}
        }
        let provs = self.providers(virt);
        let first = provs.partition_point(|p| p.solv < s);
        provs[first..]
            .iter()
            .take_while(|p| p.solv == s)
            .any(|p| version_provided(p.version, constraint))
    }

    /// Whether a Provides entry satisfies a relation, leaving the architecture aside.
    pub(crate) fn prov_satisfies(
        &self,
        p: &Prov<'_>,
        constraint: Option<(Op, &str)>,
        qual: ArchQual,
    ) -> bool {
        match qual {
            ArchQual::Foreign => return false,
            ArchQual::Any if self.solv(p.solv).pkg.multi_arch() != MultiArch::Allowed => {
                return false;
            }
            _ => {}
        }
        version_provided(p.version, constraint)
    }

    pub(crate) fn priority(&self, s: u32) -> Priority {
        self.solv(s).pkg.priority()
    }

    /// apt's package id of a name, as a sortable key: the order in which apt's cache
    /// generator first met the name, as a package stanza or as the target of a
    /// relation or Provides. apt breaks ties between otherwise equal providers with it
    /// (the newest id wins).
    ///
    /// Index builders intern each string once, at its first occurrence, so the address
    /// of a name's string tells in which stanza it first appeared; the `Filename` of
    /// each stanza (a unique string, interned in stanza order) locates that stanza by
    /// binary search. Only that stanza's relations are then read, in apt's field order.
    /// Indexes without increasing `Filename` addresses (synthetic ones) fall back to a
    /// resumable scan.
    pub(crate) fn apt_rank(&self, name: u32) -> (u32, u32, u32) {
        // A name first met in a later index may also be a relation target in an earlier
        // one, which its address cannot tell: scan for those (rare).
        if let Some(&(repo, addr)) = self.origin.get(name as usize).filter(|o| o.0 == 0) {
            let maps = self.stanza_maps.get_or_init(|| {
                self.indexes
                    .iter()
                    .map(|index| StanzaMap::new(index))
                    .collect()
            });
            if let (Some(Some(map)), Some(index)) =
                (maps.get(repo as usize), self.indexes.get(repo as usize))
                && let Some((stanza, pos)) = map.rank(index, addr, self.arch)
            {
                return (repo, stanza, pos);
            }
        }
        self.scanned_rank(name)
    }

    /// [`Self::apt_rank`] by scanning the indexes from the start, resumably.
    fn scanned_rank(&self, name: u32) -> (u32, u32, u32) {
        const UNSEEN: (u32, u32, u32) = (u32::MAX, u32::MAX, u32::MAX);
        let mut scan = match self.rank_scan.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if scan.ranks.is_empty() {
            scan.ranks = vec![UNSEEN; self.name_strs.len()];
        }
        while scan.ranks.get(name as usize) == Some(&UNSEEN) && !scan.done {
            let Some(index) = self.indexes.get(scan.repo) else {
                scan.done = true;
                break;
            };
            if scan.pkg as usize >= index.len() {
                scan.repo += 1;
                scan.pkg = 0;
                continue;
            }
            let (repo, stanza) = (scan.repo as u32, scan.pkg);
            let pkg = index.package(stanza);
            scan.pkg += 1;
            let arch = pkg.arch();
            if arch != self.arch && arch != "all" {
                continue;
            }
            for (pos, n) in apt_field_order(pkg).enumerate() {
                if let Some(id) = self.name_id(n)
                    && let Some(r) = scan.ranks.get_mut(id as usize)
                    && *r == UNSEEN
                {
                    *r = (repo, stanza, pos as u32);
                }
            }
        }
        scan.ranks.get(name as usize).copied().unwrap_or(UNSEEN)
    }
}

/// The names of a stanza in the order apt's list parser meets them: the package, then
/// Pre-Depends, Depends, Conflicts, Breaks, Recommends, Suggests, Replaces, Provides.
fn apt_field_order<'a>(pkg: Package<'a>) -> impl Iterator<Item = &'a str> {
    std::iter::once(pkg.name()).chain(
        [
            RelKind::PreDepends,
            RelKind::Depends,
            RelKind::Conflicts,
            RelKind::Breaks,
            RelKind::Recommends,
            RelKind::Suggests,
            RelKind::Replaces,
            RelKind::Provides,
        ]
        .into_iter()
        .flat_map(move |kind| pkg.relations(kind).flatten().map(|r| r.name)),
    )
}

/// The addresses of the `Filename` strings of an index's stanzas, which increase with
/// the stanza number when the index was built from a real Packages file.
struct StanzaMap {
    filenames: Vec<usize>,
}

impl StanzaMap {
    fn new(index: &Index) -> Option<StanzaMap> {
        let filenames: Vec<usize> = index
            .iter()
            .map(|p| p.filename().as_ptr() as usize)
            .collect();
        filenames
            .windows(2)
            .all(|w| w[0] < w[1])
            .then_some(StanzaMap { filenames })
    }

    /// The stanza and position (in apt's field order) where the string at `addr` first
    /// occurs, if it is a package name or a relation target there.
    fn rank(&self, index: &Index, addr: usize, arch: &str) -> Option<(u32, u32)> {
        // Strings interned after stanza i's Filename and before stanza i+1's belong to
        // the relations of stanza i, or to the name (or version, source) of stanza i+1.
        let after = self.filenames.partition_point(|&f| f < addr);
        let find = |stanza: usize| -> Option<(u32, u32)> {
            let pkg = (stanza < index.len()).then(|| index.package(stanza as u32))?;
            let pkg_arch = pkg.arch();
            if pkg_arch != arch && pkg_arch != "all" {
                return None;
            }
            apt_field_order(pkg)
                .position(|n| n.as_ptr() as usize == addr)
                .map(|pos| (stanza as u32, pos as u32))
        };
        // The relations of stanza i come first.
        after.checked_sub(1).and_then(find).or_else(|| find(after))
    }
}

/// An unversioned Provides never satisfies a versioned relation.
fn version_provided(provided: Option<&str>, constraint: Option<(Op, &str)>) -> bool {
    match (constraint, provided) {
        (None, _) => true,
        (Some((op, v)), Some(pv)) => op.accepts(version::compare(pv, v)),
        (Some(_), None) => false,
    }
}

/// State of the resumable apt package id scan.
#[derive(Default)]
struct RankScan {
    ranks: Vec<(u32, u32, u32)>,
    repo: usize,
    pkg: u32,
    done: bool,
}

#[cfg(test)]
mod rank_tests {
    use super::*;
    use std::io::Read;

    /// The stanza-local apt ids agree with a full scan on real data. Needs the host's
    /// bookworm lists; run with `cargo test --release -- --ignored`.
    #[test]
    #[ignore]
    fn stanza_local_ranks_agree_with_the_scan() {
        // apt names its lists after the mirror; find them by suffix instead.
        let files: Vec<std::path::PathBuf> = ["bookworm", "bookworm-updates", "bookworm-security"]
            .iter()
            .filter_map(|suite| {
                let suffix = format!("_dists_{suite}_main_binary-amd64_Packages.lz4");
                std::fs::read_dir("/var/lib/apt/lists")
                    .ok()?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .find(|p| p.to_string_lossy().ends_with(&suffix))
            })
            .collect();
        if files.len() != 3 {
            eprintln!("SKIP: no bookworm apt lists");
            return;
        }
        let idx: Vec<Index> = files
            .iter()
            .map(|f| {
                let raw = std::fs::read(f).unwrap();
                let mut out = Vec::new();
                lz4_flex::frame::FrameDecoder::new(&raw[..])
                    .read_to_end(&mut out)
                    .unwrap();
                let mut b = kiln_deb::IndexBuilder::new();
                b.add_packages(&out).unwrap();
                Index::from_bytes(b.finish()).unwrap()
            })
            .collect();
        let refs: Vec<&Index> = idx.iter().collect();
        let u = Universe::new(&refs, "amd64");
        let n = u.name_count() as u32;
        let mut exact: Vec<u32> = (0..n).collect();
        exact.sort_by_key(|&x| u.scanned_rank(x));
        let mut pos = vec![(0, 0, 0); n as usize];
        for x in 0..n {
            pos[x as usize] = u.apt_rank(x);
        }
        let inversions: Vec<_> = exact
            .windows(2)
            .filter(|w| pos[w[0] as usize] > pos[w[1] as usize])
            .map(|w| (u.name(w[0]), u.name(w[1])))
            .collect();
        assert!(inversions.is_empty(), "{inversions:?}");
    }
}
