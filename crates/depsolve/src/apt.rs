//! An emulation of apt's marking pass (`pkgDepCache::MarkInstall` with auto-install, as
//! run by `apt-get install` on an empty system), used to learn apt's *choices*.
//!
//! apt is greedy and order dependent: it marks the requested packages, then walks each
//! one's dependencies depth-first in field order (Pre-Depends, Depends, then Recommends
//! when enabled) and, for each or-group not yet satisfied by a marked package, marks the
//! first installable candidate of the group (providers sorted like apt's
//! `CompareProviders`). Only candidate versions (the highest version of each name, or the
//! version selected by a glob) are considered. A package whose own critical dependencies
//! cannot be met by any candidate is discarded and the next alternative is tried.
//!
//! The result steers resolvo (preferred candidates and soft requirements); when apt's
//! walk ends with broken packages (apt would then run its problem resolver), resolvo
//! repairs the set instead.

use crate::provider::RequestSpec;
use crate::universe::{ArchQual, Universe};
use kiln_deb::index::RelKind;
use kiln_deb::relation::Relation;

pub(crate) struct Marked {
    /// The marked solvables, in marking order.
    pub installed: Vec<u32>,
    /// Whether apt's pass left unmet dependencies or conflicts behind.
    pub broken: bool,
}

struct State<'u, 'a> {
    u: &'u Universe<'a>,
    recommends: bool,
    /// Candidate solvable per name (`None`: no candidate or discarded).
    cand: Vec<Option<u32>>,
    marked: Vec<bool>,
    protected: Vec<bool>,
    /// Names in the order they were first marked (each once).
    order: Vec<u32>,
    ever_marked: Vec<bool>,
}

/// apt gives up beyond a depth of 3000; we stop earlier to stay well within a small
/// thread stack (real dependency chains are a few dozen deep).
const MAX_DEPTH: u32 = 1000;

pub(crate) fn mark(u: &Universe<'_>, specs: &[RequestSpec], recommends: bool) -> Marked {
    let n = u.name_count();
    let mut st = State {
        u,
        recommends,
        cand: (0..n as u32).map(|name| u.candidate(name)).collect(),
        marked: vec![false; n],
        protected: vec![false; n],
        order: Vec::new(),
        ever_marked: vec![false; n],
    };
    // TryToInstall: select the candidate, protect and mark without dependencies.
    for spec in specs {
        let Some(&first) = spec.allowed.first() else {
            continue;
        };
        st.cand[spec.name as usize] = Some(first);
        st.protected[spec.name as usize] = true;
        st.mark_install(spec.name, false, 0, true);
    }
    // doAutoInstall: install their dependencies, in the order of the request (apt
    // 2.6 follows its command line).
    let mut names: Vec<u32> = Vec::with_capacity(specs.len());
    for spec in specs {
        if !names.contains(&spec.name) {
            names.push(spec.name);
        }
    }
    for name in names {
        st.mark_install(name, true, 0, true);
    }
    // DoAutomaticRemove: new installs that nothing needs any more (left behind by
    // alternatives that were tried and given up) are not installed after all.
    st.sweep(specs);
    if st.broken() {
        // apt would now run its problem resolver (pkgProblemResolver).
        st.repair();
        st.sweep(specs);
    }
    let installed: Vec<u32> = st
        .order
        .iter()
        .copied()
        .filter(|&name| st.marked[name as usize])
        .filter_map(|name| st.cand[name as usize])
        .collect();
    let broken = st.broken();
    Marked { installed, broken }
}

impl State<'_, '_> {
    fn critical_kinds(&self) -> &'static [RelKind] {
        &[RelKind::PreDepends, RelKind::Depends]
    }

    /// Whether a marked package satisfies one alternative.
    fn alt_installed(&self, alt: &Relation<'_>) -> bool {
        let Some(target) = self.u.name_id(alt.name) else {
            return false;
        };
        let qual = self.u.arch_qual(alt);
        if qual == ArchQual::Foreign {
            return false;
        }
        if self.marked[target as usize]
            && let Some(c) = self.cand[target as usize]
            && self.u.satisfies_real(c, alt.constraint, qual)
        {
            return true;
        }
        self.u.providers(target).iter().any(|p| {
            let name = self.u.solv(p.solv).name as usize;
            self.marked[name]
                && self.cand[name] == Some(p.solv)
                && self.u.prov_satisfies(p, alt.constraint, qual)
        })
    }

    fn group_installed(&self, group: &[Relation<'_>]) -> bool {
        group.iter().any(|alt| self.alt_installed(alt))
    }

    /// The candidate versions satisfying one alternative: the target's own candidate,
    /// then providers' candidates (unsorted, see `sort_alternative`).
    fn alt_candidates(&self, alt: &Relation<'_>) -> Vec<u32> {
        let mut list: Vec<u32> = Vec::new();
        let Some(target) = self.u.name_id(alt.name) else {
            return list;
        };
        let qual = self.u.arch_qual(alt);
        if qual == ArchQual::Foreign {
            return list;
        }
        if let Some(c) = self.cand[target as usize]
            && self.u.satisfies_real(c, alt.constraint, qual)
        {
            list.push(c);
        }
        for p in self.u.providers(target) {
            let name = self.u.solv(p.solv).name as usize;
            if self.cand[name] == Some(p.solv)
                && !list.contains(&p.solv)
                && self.u.prov_satisfies(p, alt.constraint, qual)
            {
                list.push(p.solv);
            }
        }
        list
    }

    /// Sorts the candidates of one alternative like apt's `CompareProviders`: protected
    /// packages, the package of the relation's own name, Essential ones, by Priority,
    /// then the newest apt package id. Done only for the alternatives apt gets to.
    fn sort_alternative(&self, alt: &Relation<'_>, list: &mut [u32]) {
        if list.len() < 2 {
            return;
        }
        let target = self.u.name_id(alt.name);
        list.sort_by(|&a, &b| {
            let (sa, sb) = (self.u.solv(a), self.u.solv(b));
            let key = |s: &crate::universe::Solv<'_>, id: u32| {
                (
                    !self.protected[s.name as usize],
                    Some(s.name) != target,
                    !s.pkg.essential(),
                    self.u.priority(id),
                )
            };
            key(sa, a)
                .cmp(&key(sb, b))
                .then_with(|| self.u.apt_rank(sb.name).cmp(&self.u.apt_rank(sa.name)))
        });
    }

    /// `getAllPossibleSolutions`, per alternative and unsorted, without the protected
    /// packages that are not to be installed; and the number of distinct solutions.
    fn group_candidates(&self, group: &[Relation<'_>]) -> (Vec<Vec<u32>>, Vec<u32>) {
        let mut distinct: Vec<u32> = Vec::new();
        let per_alt = group
            .iter()
            .map(|alt| {
                let mut list = self.alt_candidates(alt);
                list.retain(|&s| {
                    let name = self.u.solv(s).name as usize;
                    !self.protected[name] || self.marked[name]
                });
                for &s in &list {
                    if !distinct.contains(&s) {
                        distinct.push(s);
                    }
                }
                list
            })
            .collect();
        (per_alt, distinct)
    }

    /// `IsInstallOkDependenciesSatisfiableByCandidates`.
    fn deps_satisfiable(&self, s: u32) -> bool {
        let pkg = self.u.solv(s).pkg;
        for &kind in self.critical_kinds() {
            for group in pkg.relations(kind) {
                let group: Vec<Relation<'_>> = group.collect();
                if self.group_installed(&group) {
                    continue;
                }
                if group.iter().all(|alt| self.alt_candidates(alt).is_empty()) {
                    return false;
                }
            }
        }
        true
    }

    fn inst_broken(&self, name: u32) -> bool {
        let Some(s) = self.cand[name as usize] else {
            return false;
        };
        let pkg = self.u.solv(s).pkg;
        self.critical_kinds().iter().any(|&kind| {
            pkg.relations(kind)
                .any(|g| !self.group_installed(&g.collect::<Vec<_>>()))
        })
    }

    fn set_marked(&mut self, name: u32) {
        let ni = name as usize;
        self.marked[ni] = true;
        if !self.ever_marked[ni] {
            self.ever_marked[ni] = true;
            self.order.push(name);
        }
    }

    fn discard(&mut self, name: u32) {
        self.marked[name as usize] = false;
        self.cand[name as usize] = None;
    }

    /// `pkgDepCache::MarkInstall`.
    fn mark_install(&mut self, name: u32, auto_inst: bool, depth: u32, from_user: bool) -> bool {
        let ni = name as usize;
        if depth > MAX_DEPTH {
            return false;
        }
        // IsModeChangeOk: only the user can change a protected package's mode.
        if !from_user && !self.marked[ni] && self.protected[ni] {
            return false;
        }
        let Some(cv) = self.cand[ni] else {
            return false;
        };
        if !self.protected[ni] && self.marked[ni] && !self.inst_broken(name) {
            return true;
        }
        // IsInstallOk.
        if auto_inst && !self.deps_satisfiable(cv) {
            if !self.protected[ni] {
                self.cand[ni] = None;
            }
            return false;
        }
        if from_user {
            self.set_marked(name);
        }
        let fail_early = !self.protected[ni] && !from_user;
        let mut failed = false;
        let mut to_install: Vec<(bool, Vec<Relation<'_>>)> = Vec::new();
        if auto_inst {
            let pkg = self.u.solv(cv).pkg;
            let propagate = self.protected[ni];
            let mut kinds = vec![RelKind::PreDepends, RelKind::Depends];
            if self.recommends {
                kinds.push(RelKind::Recommends);
            }
            for kind in kinds {
                for group in pkg.relations(kind) {
                    let group: Vec<Relation<'_>> = group.collect();
                    if self.group_installed(&group) && !propagate {
                        continue;
                    }
                    to_install.push((kind != RelKind::Recommends, group));
                }
            }
            // MarkInstall_RemoveConflictsIfNotUpgradeable.
            for kind in [RelKind::Conflicts, RelKind::Breaks] {
                for rel in pkg.relations(kind).flatten() {
                    for other in self.conflicting(name, &rel) {
                        let on = self.u.solv(other).name as usize;
                        if self.marked[on] && self.protected[on] {
                            // MarkKeep refuses: only the user may change it.
                            failed = true;
                            continue;
                        }
                        self.marked[on] = false;
                        if propagate {
                            self.cand[on] = None;
                            self.protected[on] = true;
                        }
                    }
                }
            }
            if failed && fail_early {
                return false;
            }
        }
        if !from_user {
            self.set_marked(name);
        }
        if !auto_inst {
            return !failed;
        }

        // ScopedProtected: the package is protected while its dependencies are marked.
        let already = self.protected[ni];
        self.protected[ni] = true;
        for (critical, group) in to_install {
            if self.group_installed(&group) {
                if !already || !critical {
                    continue;
                }
                let (_, sols) = self.group_candidates(&group);
                if let [only] = sols[..] {
                    let on = self.u.solv(only).name;
                    if !self.protected[on as usize] {
                        self.protected[on as usize] = true;
                        if !self.mark_install(on, true, depth + 1, false) {
                            failed = true;
                        }
                    }
                }
                continue;
            }
            let (per_alt, distinct) = self.group_candidates(&group);
            let single = distinct.len() == 1;
            let mut found = false;
            'alternatives: for (alt, mut sols) in group.iter().zip(per_alt) {
                self.sort_alternative(alt, &mut sols);
                for s in sols {
                    let on = self.u.solv(s).name;
                    if self.cand[on as usize] != Some(s) {
                        continue;
                    }
                    if already && critical && single {
                        if !self.mark_install(on, false, depth + 1, false) {
                            continue;
                        }
                        self.protected[on as usize] = true;
                    }
                    if !self.mark_install(on, true, depth + 1, false) {
                        continue;
                    }
                    found = true;
                    break 'alternatives;
                }
            }
            if !found && critical {
                failed = true;
                if !already && !from_user {
                    break;
                }
            }
        }
        if !already {
            self.protected[ni] = false;
        }
        if failed && fail_early {
            self.discard(name);
            return false;
        }
        !failed
    }

    /// The candidates that a Conflicts/Breaks relation of `own` hits, itself excluded.
    fn conflicting(&self, own: u32, rel: &Relation<'_>) -> Vec<u32> {
        let Some(target) = self.u.name_id(rel.name) else {
            return Vec::new();
        };
        if self.u.arch_qual(rel) == ArchQual::Foreign {
            return Vec::new();
        }
        let mut out = Vec::new();
        if target != own
            && let Some(c) = self.cand[target as usize]
            && self.u.satisfies_real(c, rel.constraint, ArchQual::Native)
        {
            out.push(c);
        }
        for p in self.u.providers(target) {
            let name = self.u.solv(p.solv).name;
            if name != own
                && self.cand[name as usize] == Some(p.solv)
                && !out.contains(&p.solv)
                && self.u.prov_satisfies(p, rel.constraint, ArchQual::Native)
            {
                out.push(p.solv);
            }
        }
        out
    }

    /// `pkgDepCache::MarkAndSweep` on the marked packages: what is reachable from the
    /// roots (the requested packages, Essential ones, protected ones and
    /// `APT::NeverAutoRemove` kernels and firmware) through Pre-Depends, Depends and
    /// Recommends (`APT::AutoRemove::RecommendsImportant`; Debian sets
    /// `SuggestsImportant` to false). Every alternative of an or-group is followed.
    fn mark_and_sweep(&self, specs: &[RequestSpec]) -> Vec<bool> {
        let n = self.marked.len();
        let mut reached = vec![false; n];
        let mut stack: Vec<u32> = Vec::new();
        let requested: Vec<u32> = specs.iter().map(|s| s.name).collect();
        for &name in &self.order {
            let ni = name as usize;
            let Some(cv) = self.cand[ni].filter(|_| self.marked[ni]) else {
                continue;
            };
            if requested.contains(&name)
                || self.u.solv(cv).pkg.essential()
                || self.protected[ni]
                || never_auto_remove(self.u.name(name))
            {
                stack.push(name);
            }
        }
        while let Some(name) = stack.pop() {
            let ni = name as usize;
            if reached[ni] {
                continue;
            }
            reached[ni] = true;
            let Some(cv) = self.cand[ni] else {
                continue;
            };
            let pkg = self.u.solv(cv).pkg;
            for kind in [RelKind::PreDepends, RelKind::Depends, RelKind::Recommends] {
                for alt in pkg.relations(kind).flatten() {
                    let Some(target) = self.u.name_id(alt.name) else {
                        continue;
                    };
                    let qual = self.u.arch_qual(&alt);
                    let ti = target as usize;
                    if self.marked[ti]
                        && !reached[ti]
                        && self.cand[ti]
                            .is_some_and(|c| self.u.satisfies_real(c, alt.constraint, qual))
                    {
                        stack.push(target);
                    }
                    for p in self.u.providers(target) {
                        let owner = self.u.solv(p.solv).name;
                        let oi = owner as usize;
                        if self.marked[oi]
                            && !reached[oi]
                            && self.cand[oi] == Some(p.solv)
                            && self.u.prov_satisfies(p, alt.constraint, qual)
                        {
                            stack.push(owner);
                        }
                    }
                }
            }
        }
        reached
    }

    /// Unmarks what [`Self::mark_and_sweep`] finds unreachable.
    fn sweep(&mut self, specs: &[RequestSpec]) {
        let kept = self.mark_and_sweep(specs);
        for (m, k) in self.marked.iter_mut().zip(kept) {
            *m &= k;
        }
    }

    /// A much simplified pkgProblemResolver, for a marking that ended broken. Scores
    /// are computed like apt's `MakeScores`; each broken package (highest score first)
    /// that Conflicts/Breaks a marked package keeps its place if it scores higher than
    /// that package (which is then not installed), else gives it up, protected packages
    /// never giving way. Then packages whose dependencies are no longer met are not
    /// installed either, until nothing changes. What remains broken is left to resolvo.
    fn repair(&mut self) {
        let scores = self.scores();
        let mut by_score: Vec<u32> = self.order.clone();
        by_score.sort_by_key(|&n| std::cmp::Reverse(scores[n as usize]));
        loop {
            let mut changed = false;
            for &name in &by_score {
                let ni = name as usize;
                let Some(cv) = self.cand[ni].filter(|_| self.marked[ni]) else {
                    continue;
                };
                let pkg = self.u.solv(cv).pkg;
                for kind in [RelKind::Conflicts, RelKind::Breaks] {
                    for rel in pkg.relations(kind).flatten() {
                        for other in self.conflicting(name, &rel) {
                            let oi = self.u.solv(other).name as usize;
                            if !self.marked[oi] || !self.marked[ni] {
                                continue;
                            }
                            let loser = match (self.protected[ni], self.protected[oi]) {
                                (true, true) => continue,
                                (true, false) => oi,
                                (false, true) => ni,
                                (false, false) if scores[ni] <= scores[oi] => ni,
                                (false, false) => oi,
                            };
                            self.marked[loser] = false;
                            changed = true;
                        }
                    }
                }
            }
            for &name in &by_score {
                let ni = name as usize;
                if self.marked[ni] && !self.protected[ni] && self.inst_broken(name) {
                    self.marked[ni] = false;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// `pkgProblemResolver::MakeScores` over the marked packages.
    fn scores(&self) -> Vec<i64> {
        const PRIO: [i64; 6] = [0, 3, 2, 1, -1, -2];
        let n = self.marked.len();
        let mut scores = vec![0i64; n];
        let install = |name: usize| self.cand[name].filter(|_| self.marked[name]);
        let weight = |kind: RelKind| match kind {
            RelKind::Depends | RelKind::PreDepends | RelKind::Recommends => 1,
            RelKind::Conflicts | RelKind::Breaks => -1,
            _ => 0,
        };
        for &name in &self.order {
            let ni = name as usize;
            let Some(cv) = install(ni) else { continue };
            let pkg = self.u.solv(cv).pkg;
            if pkg.essential() {
                scores[ni] += 100;
            }
            scores[ni] += PRIO[(pkg.priority() as usize).min(5)];
            for kind in [
                RelKind::PreDepends,
                RelKind::Depends,
                RelKind::Recommends,
                RelKind::Conflicts,
                RelKind::Breaks,
            ] {
                let w = weight(kind);
                for alt in pkg.relations(kind).flatten() {
                    let Some(t) = self.u.name_id(alt.name) else {
                        continue;
                    };
                    let ti = t as usize;
                    if t != name
                        && (alt.constraint.is_none()
                            || install(ti).is_some_and(|c| {
                                self.u.satisfies_real(c, alt.constraint, ArchQual::Native)
                            }))
                    {
                        scores[ti] += w;
                    }
                    let mut seen: Vec<u32> = Vec::new();
                    for p in self.u.providers(t) {
                        let owner = self.u.solv(p.solv).name;
                        if owner != name
                            && install(owner as usize) == Some(p.solv)
                            && self.u.prov_satisfies(p, alt.constraint, ArchQual::Native)
                            && !seen.contains(&owner)
                        {
                            seen.push(owner);
                            scores[owner as usize] += w;
                        }
                    }
                }
            }
        }
        let old = scores.clone();
        // One level of inheritance from the packages depending on each package.
        for &name in &self.order {
            let ni = name as usize;
            let Some(cv) = install(ni) else { continue };
            if old[ni] <= 0 {
                continue;
            }
            let pkg = self.u.solv(cv).pkg;
            for kind in [RelKind::PreDepends, RelKind::Depends, RelKind::Recommends] {
                for alt in pkg.relations(kind).flatten() {
                    if let Some(t) = self.u.name_id(alt.name)
                        && install(t as usize).is_some()
                    {
                        scores[t as usize] += old[ni];
                    }
                }
            }
        }
        // Providers of important names become important.
        let mut seen_names: Vec<bool> = vec![false; n];
        for &name in &self.order {
            let ni = name as usize;
            if std::mem::replace(&mut seen_names[ni], true) {
                continue;
            }
            let transfer = (scores[ni] - old[ni]).abs();
            if transfer == 0 {
                continue;
            }
            let mut seen: Vec<u32> = Vec::new();
            for p in self.u.providers(name) {
                let owner = self.u.solv(p.solv).name;
                if install(owner as usize) == Some(p.solv) && !seen.contains(&owner) {
                    seen.push(owner);
                    scores[owner as usize] += transfer;
                }
            }
        }
        for &name in &self.order {
            let ni = name as usize;
            if self.protected[ni] {
                scores[ni] += 10000;
            }
            if install(ni).is_some_and(|c| self.u.solv(c).pkg.essential()) {
                scores[ni] += 5000;
            }
        }
        scores
    }

    /// Whether the marked set has unmet dependencies or conflicts.
    fn broken(&self) -> bool {
        for &name in &self.order {
            let ni = name as usize;
            let Some(s) = self.cand[ni].filter(|_| self.marked[ni]) else {
                continue;
            };
            if self.inst_broken(name) {
                return true;
            }
            let pkg = self.u.solv(s).pkg;
            for kind in [RelKind::Conflicts, RelKind::Breaks] {
                for rel in pkg.relations(kind).flatten() {
                    if self
                        .conflicting(name, &rel)
                        .iter()
                        .any(|&o| self.marked[self.u.solv(o).name as usize])
                    {
                        return true;
                    }
                }
            }
        }
        false
    }
}

/// Debian's `APT::NeverAutoRemove` patterns (/etc/apt/apt.conf.d/01autoremove):
/// `^firmware-linux.*`, `^linux-firmware$`, `^linux-image-[a-z0-9]*$` and
/// `^linux-image-[a-z0-9]*-[a-z0-9]*$`.
fn never_auto_remove(name: &str) -> bool {
    let alnum = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if name.starts_with("firmware-linux") || name == "linux-firmware" {
        return true;
    }
    match name.strip_prefix("linux-image-") {
        Some(rest) => match rest.split_once('-') {
            None => alnum(rest),
            Some((a, b)) => alnum(a) && alnum(b),
        },
        None => false,
    }
}
