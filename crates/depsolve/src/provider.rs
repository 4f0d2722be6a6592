//! The Debian [`DependencyProvider`] for resolvo.
//!
//! Mapping of Debian relations onto resolvo's model, where every version set belongs to
//! one package name:
//!
//! - `Depends`/`Pre-Depends` group `a (>= 1) | v` becomes a union of version sets, in
//!   apt's order of preference: the real package `a` restricted to `>= 1`, then for each
//!   package name providing `a` (with a matching versioned Provides when the relation is
//!   versioned), "the versions of that name which provide `a`", and the same for `v`.
//! - `Conflicts`/`Breaks` on `x` become `constrains`: every installed version of `x`, and
//!   of each other package providing `x`, must lie *outside* the conflicting set. The
//!   package's own name is skipped, so the Provides + Conflicts + Replaces idiom works.
//! - `:any` keeps only `Multi-Arch: allowed` packages; a foreign architecture qualifier
//!   matches nothing (the universe holds one architecture).

use crate::universe::{ArchQual, Universe};
use ahash::AHashMap;
use kiln_deb::index::RelKind;
use kiln_deb::relation::{Op, Relation};
use resolvo::{
    Candidates, Condition, ConditionId, DenseIndex, Dependencies, DependencyProvider, Interner,
    KnownDependencies, NameId, Requirement, SolvableId, SolverCache, StringId, VersionSetId,
    VersionSetUnionId,
};
use std::cell::RefCell;
use std::fmt::{self, Display};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum SetKind<'a> {
    /// Versions of the set's own name matching a relation.
    Real {
        constraint: Option<(Op, &'a str)>,
        qual: ArchQual,
    },
    /// Versions of the set's name (a provider) that provide `virt`, matching a relation.
    Provides {
        virt: u32,
        constraint: Option<(Op, &'a str)>,
        qual: ArchQual,
    },
    /// The versions allowed for requested package number `spec` (its version glob).
    Request { spec: u32 },
}

/// Whether a version set is the complement of a Conflicts/Breaks relation, and of
/// which package (a name id, for explanations).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Negation {
    No,
    Conflicts { by: u32 },
    Breaks { by: u32 },
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct SetDef<'a> {
    pub name: u32,
    pub kind: SetKind<'a>,
    pub neg: Negation,
}

/// A requested package, after name resolution.
pub(crate) struct RequestSpec {
    pub name: u32,
    pub glob: Option<String>,
    pub allowed: Vec<u32>,
}

pub(crate) struct DebProvider<'u, 'a> {
    pub u: &'u Universe<'a>,
    sets: RefCell<Vec<SetDef<'a>>>,
    set_ids: RefCell<AHashMap<SetDef<'a>, u32>>,
    unions: RefCell<Vec<Vec<VersionSetId>>>,
    union_ids: RefCell<AHashMap<Vec<VersionSetId>, u32>>,
    /// Names that only appear as relation targets, numbered after the universe's names.
    extra_names: RefCell<Vec<&'a str>>,
    extra_ids: RefCell<AHashMap<&'a str, u32>>,
    pub requests: Vec<RequestSpec>,
    /// Names the user asked for: apt prefers them among providers ("protected").
    requested: Vec<bool>,
    /// Solvables to try first (apt's own choices, from the emulation pass).
    preferred: Option<Vec<bool>>,
}

pub(crate) fn sid(s: u32) -> SolvableId {
    SolvableId::from_index(s as usize)
}

pub(crate) fn sid_u32(s: SolvableId) -> u32 {
    s.to_index() as u32
}

fn nid(n: u32) -> NameId {
    NameId::from_index(n as usize)
}

impl<'u, 'a> DebProvider<'u, 'a> {
    pub fn new(u: &'u Universe<'a>, requests: Vec<RequestSpec>) -> Self {
        let mut requested = vec![false; u.name_count()];
        for r in &requests {
            if let Some(x) = requested.get_mut(r.name as usize) {
                *x = true;
            }
        }
        DebProvider {
            u,
            sets: RefCell::default(),
            set_ids: RefCell::default(),
            unions: RefCell::default(),
            union_ids: RefCell::default(),
            extra_names: RefCell::default(),
            extra_ids: RefCell::default(),
            requests,
            requested,
            preferred: None,
        }
    }

    pub fn set_preferred(&mut self, preferred: Vec<bool>) {
        self.preferred = Some(preferred);
    }

    fn is_preferred(&self, s: u32) -> bool {
        self.preferred
            .as_ref()
            .is_some_and(|p| p.get(s as usize).copied().unwrap_or(false))
    }

    pub fn intern_set(&self, def: SetDef<'a>) -> VersionSetId {
        if let Some(&id) = self.set_ids.borrow().get(&def) {
            return VersionSetId(id);
        }
        let mut sets = self.sets.borrow_mut();
        let id = sets.len() as u32;
        sets.push(def);
        self.set_ids.borrow_mut().insert(def, id);
        VersionSetId(id)
    }

    fn set(&self, id: VersionSetId) -> Option<SetDef<'a>> {
        self.sets.borrow().get(id.0 as usize).copied()
    }

    fn intern_union(&self, sets: Vec<VersionSetId>) -> VersionSetUnionId {
        if let Some(&id) = self.union_ids.borrow().get(&sets) {
            return VersionSetUnionId(id);
        }
        let mut unions = self.unions.borrow_mut();
        let id = unions.len() as u32;
        unions.push(sets.clone());
        self.union_ids.borrow_mut().insert(sets, id);
        VersionSetUnionId(id)
    }

    /// A name id for any name, known to the universe or not.
    pub fn intern_name(&self, name: &'a str) -> u32 {
        if let Some(id) = self.u.name_id(name) {
            return id;
        }
        let base = self.u.name_count() as u32;
        if let Some(&id) = self.extra_ids.borrow().get(name) {
            return id;
        }
        let mut extra = self.extra_names.borrow_mut();
        let id = base + extra.len() as u32;
        extra.push(name);
        self.extra_ids.borrow_mut().insert(name, id);
        id
    }

    pub fn name_str(&self, id: u32) -> &'a str {
        let base = self.u.name_count() as u32;
        if id < base {
            self.u.name(id)
        } else {
            self.extra_names
                .borrow()
                .get((id - base) as usize)
                .copied()
                .unwrap_or("")
        }
    }

    fn set_has_preferred(&self, vs: VersionSetId) -> bool {
        let Some(def) = self.set(vs) else {
            return false;
        };
        self.u
            .versions(def.name)
            .any(|s| self.is_preferred(s) && self.contains(&def, s))
    }

    /// Whether solvable `s` is in version set `def`.
    pub fn contains(&self, def: &SetDef<'a>, s: u32) -> bool {
        if self.u.solv(s).name != def.name {
            return false;
        }
        let base = match def.kind {
            SetKind::Real { constraint, qual } => self.u.satisfies_real(s, constraint, qual),
            SetKind::Provides {
                virt,
                constraint,
                qual,
            } => self.u.satisfies_provided(s, virt, constraint, qual),
            SetKind::Request { spec } => self
                .requests
                .get(spec as usize)
                .is_some_and(|r| r.allowed.contains(&s)),
        };
        match def.neg {
            Negation::No => base,
            Negation::Conflicts { .. } | Negation::Breaks { .. } => !base,
        }
    }

    /// The names providing `target` with some version that satisfies the relation, in
    /// apt's order of preference (see `CompareProviders` in apt's depcache.cc): requested
    /// packages, then Essential ones, then by Priority, then the newest apt package id.
    pub fn provider_names(
        &self,
        target: u32,
        constraint: Option<(Op, &str)>,
        qual: ArchQual,
    ) -> Vec<u32> {
        let mut names: Vec<(u32, u32)> = Vec::new(); // (name, best solvable)
        for p in self.u.providers(target) {
            let s = self.u.solv(p.solv);
            if names.iter().any(|&(n, _)| n == s.name) {
                continue;
            }
            if self.u.prov_satisfies(p, constraint, qual) {
                names.push((s.name, p.solv));
            }
        }
        if names.len() > 1 {
            // apt's last tie-break is its package id (newest first); the emulation pass
            // applies it exactly and resolvo follows the emulation, so a cheap stand-in
            // (newest name id first) is enough here.
            names.sort_by_key(|&(n, s)| {
                (
                    n != target,
                    !self.requested.get(n as usize).copied().unwrap_or(false),
                    !self.u.solv(s).pkg.essential(),
                    self.u.priority(s),
                    std::cmp::Reverse(n),
                )
            });
        }
        names.into_iter().map(|(n, _)| n).collect()
    }

    /// The version sets that can satisfy one alternative, in preference order.
    fn alternative_sets(&self, alt: &Relation<'a>, out: &mut Vec<VersionSetId>) {
        let qual = self.u.arch_qual(alt);
        if qual == ArchQual::Foreign {
            return;
        }
        let Some(target) = self.u.name_id(alt.name) else {
            return;
        };
        if !self.u.versions(target).is_empty() {
            out.push(self.intern_set(SetDef {
                name: target,
                kind: SetKind::Real {
                    constraint: alt.constraint,
                    qual,
                },
                neg: Negation::No,
            }));
        }
        for p in self.provider_names(target, alt.constraint, qual) {
            out.push(self.intern_set(SetDef {
                name: p,
                kind: SetKind::Provides {
                    virt: target,
                    constraint: alt.constraint,
                    qual,
                },
                neg: Negation::No,
            }));
        }
    }

    /// The requirement for one `a | b | ...` group.
    pub fn group_requirement(
        &self,
        group: impl Iterator<Item = Relation<'a>>,
    ) -> Option<Requirement> {
        let mut sets = Vec::new();
        let mut first = None;
        for alt in group {
            first.get_or_insert(alt);
            self.alternative_sets(&alt, &mut sets);
        }
        let mut seen = Vec::with_capacity(sets.len());
        sets.retain(|s| {
            if seen.contains(s) {
                false
            } else {
                seen.push(*s);
                true
            }
        });
        if self.preferred.is_some() && sets.len() > 1 {
            // apt's own pick first, so that resolvo takes the same path.
            let (mut first, rest): (Vec<_>, Vec<_>) =
                sets.into_iter().partition(|&vs| self.set_has_preferred(vs));
            first.extend(rest);
            sets = first;
        }
        match sets.len() {
            0 => {
                // Nothing can satisfy it: a set that matches nothing, named after the
                // first alternative, so that explanations say what is missing.
                let alt = first?;
                let name = self.intern_name(alt.name);
                Some(Requirement::Single(self.intern_set(SetDef {
                    name,
                    kind: SetKind::Real {
                        constraint: alt.constraint,
                        qual: self.u.arch_qual(&alt),
                    },
                    neg: Negation::No,
                })))
            }
            1 => Some(Requirement::Single(sets[0])),
            _ => Some(Requirement::Union(self.intern_union(sets))),
        }
    }

    fn conflict_sets(
        &self,
        own: u32,
        rel: &Relation<'a>,
        neg: Negation,
        out: &mut Vec<VersionSetId>,
    ) {
        if self.u.arch_qual(rel) == ArchQual::Foreign {
            return;
        }
        let Some(target) = self.u.name_id(rel.name) else {
            return;
        };
        if target != own && !self.u.versions(target).is_empty() {
            out.push(self.intern_set(SetDef {
                name: target,
                kind: SetKind::Real {
                    constraint: rel.constraint,
                    qual: ArchQual::Native,
                },
                neg,
            }));
        }
        for p in self.provider_names(target, rel.constraint, ArchQual::Native) {
            if p == own {
                continue;
            }
            out.push(self.intern_set(SetDef {
                name: p,
                kind: SetKind::Provides {
                    virt: target,
                    constraint: rel.constraint,
                    qual: ArchQual::Native,
                },
                neg,
            }));
        }
    }

    /// `:any (>= 1.0)`-style text for a relation's qualifier and constraint.
    fn fmt_constraint(
        f: &mut fmt::Formatter<'_>,
        c: Option<(Op, &str)>,
        qual: ArchQual,
    ) -> fmt::Result {
        let qual = match qual {
            ArchQual::Native => "",
            ArchQual::Any => ":any",
            ArchQual::Foreign => ":<other architecture>",
        };
        f.write_str(qual)?;
        if let Some((op, v)) = c {
            if !qual.is_empty() {
                f.write_str(" ")?;
            }
            write!(f, "({op} {v})")?;
        }
        Ok(())
    }
}

/// Displays a version set (without its package name, which resolvo prints before it).
struct SetDisplay<'p, 'u, 'a> {
    p: &'p DebProvider<'u, 'a>,
    def: Option<SetDef<'a>>,
}

impl Display for SetDisplay<'_, '_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(def) = self.def else {
            return Ok(());
        };
        let (virt, constraint, qual) = match def.kind {
            SetKind::Real { constraint, qual } => (None, constraint, qual),
            SetKind::Provides {
                virt,
                constraint,
                qual,
            } => (Some(virt), constraint, qual),
            SetKind::Request { spec } => {
                let Some(r) = self.p.requests.get(spec as usize) else {
                    return Ok(());
                };
                return match &r.glob {
                    Some(g) => write!(f, "(version {g})"),
                    None => Ok(()),
                };
            }
        };
        match (def.neg, virt) {
            (Negation::No, None) => DebProvider::fmt_constraint(f, constraint, qual),
            (Negation::No, Some(v)) => {
                write!(f, "(providing {}", self.p.name_str(v))?;
                if constraint.is_some() || qual != ArchQual::Native {
                    f.write_str(" ")?;
                }
                DebProvider::fmt_constraint(f, constraint, qual)?;
                f.write_str(")")
            }
            (neg, virt) => {
                let (kind, by) = match neg {
                    Negation::Breaks { by } => ("Breaks", by),
                    Negation::Conflicts { by } => ("Conflicts", by),
                    Negation::No => ("Conflicts", 0),
                };
                let target = virt.map_or(self.p.name_str(def.name), |v| self.p.name_str(v));
                f.write_str("(")?;
                if virt.is_some() {
                    write!(f, "provides {target}; ")?;
                }
                write!(f, "{} {kind}: {target}", self.p.name_str(by))?;
                if constraint.is_some() || qual != ArchQual::Native {
                    f.write_str(" ")?;
                }
                DebProvider::fmt_constraint(f, constraint, qual)?;
                f.write_str(")")
            }
        }
    }
}

impl Interner for DebProvider<'_, '_> {
    type NameId = NameId;
    type SolvableId = SolvableId;

    fn display_solvable(&self, solvable: SolvableId) -> impl Display + '_ {
        let s = self.u.solv(sid_u32(solvable));
        format!("{} {}", s.pkg.name(), s.pkg.version())
    }

    fn display_merged_solvables(&self, solvables: &[SolvableId]) -> impl Display + '_ {
        let Some(&first) = solvables.first() else {
            return String::new();
        };
        let mut ids: Vec<u32> = solvables.iter().map(|&s| sid_u32(s)).collect();
        ids.sort_unstable();
        ids.dedup();
        let versions: Vec<&str> = ids.iter().map(|&s| self.u.solv(s).pkg.version()).collect();
        format!(
            "{} {}",
            self.u.solv(sid_u32(first)).pkg.name(),
            versions.join(" | ")
        )
    }

    fn display_name(&self, name: NameId) -> impl Display + '_ {
        self.name_str(name.to_index() as u32)
    }

    fn display_version_set(&self, version_set: VersionSetId) -> impl Display + '_ {
        SetDisplay {
            p: self,
            def: self.set(version_set),
        }
    }

    fn display_string(&self, _string_id: StringId) -> impl Display + '_ {
        // No strings are interned: nothing is excluded with a reason.
        ""
    }

    fn version_set_name(&self, version_set: VersionSetId) -> NameId {
        nid(self.set(version_set).map_or(0, |d| d.name))
    }

    fn solvable_name(&self, solvable: SolvableId) -> NameId {
        nid(self.u.solv(sid_u32(solvable)).name)
    }

    fn version_sets_in_union(
        &self,
        version_set_union: VersionSetUnionId,
    ) -> impl Iterator<Item = VersionSetId> {
        self.unions
            .borrow()
            .get(version_set_union.0 as usize)
            .cloned()
            .unwrap_or_default()
            .into_iter()
    }

    fn resolve_condition(&self, _condition: ConditionId) -> Condition {
        // No conditional requirements are ever created.
        Condition::Requirement(VersionSetId(0))
    }
}

impl DependencyProvider for DebProvider<'_, '_> {
    async fn filter_candidates(
        &self,
        candidates: &[SolvableId],
        version_set: VersionSetId,
        inverse: bool,
    ) -> Vec<SolvableId> {
        let Some(def) = self.set(version_set) else {
            return Vec::new();
        };
        candidates
            .iter()
            .copied()
            .filter(|&s| self.contains(&def, sid_u32(s)) != inverse)
            .collect()
    }

    async fn get_candidates(&self, name: NameId) -> Option<Candidates<SolvableId>> {
        let name = name.to_index() as u32;
        if name as usize >= self.u.name_count() {
            return None;
        }
        let candidates: Vec<SolvableId> = self.u.versions(name).map(sid).collect();
        let favored = candidates
            .iter()
            .copied()
            .find(|&s| self.is_preferred(sid_u32(s)));
        Some(Candidates {
            candidates,
            favored,
            ..Candidates::default()
        })
    }

    async fn sort_candidates(&self, _solver: &SolverCache<Self>, solvables: &mut [SolvableId]) {
        // Solvable ids of one name are numbered from the highest version down.
        solvables.sort_by_key(|&s| (!self.is_preferred(sid_u32(s)), sid_u32(s)));
    }

    async fn get_dependencies(&self, solvable: SolvableId) -> Dependencies {
        let s = *self.u.solv(sid_u32(solvable));
        let mut known = KnownDependencies::default();
        for kind in [RelKind::PreDepends, RelKind::Depends] {
            for group in s.pkg.relations(kind) {
                if let Some(req) = self.group_requirement(group) {
                    known.requirements.push(req.into());
                }
            }
        }
        for (kind, neg) in [
            (RelKind::Conflicts, Negation::Conflicts { by: s.name }),
            (RelKind::Breaks, Negation::Breaks { by: s.name }),
        ] {
            for rel in s.pkg.relations(kind).flatten() {
                self.conflict_sets(s.name, &rel, neg, &mut known.constrains);
            }
        }
        Dependencies::Known(known)
    }
}
