//! The binary package index: what kiln keeps of a `Packages` file.
//!
//! Parsing the Debian archive's text indexes takes over a second; a warm start must not
//! pay that. [`IndexBuilder`] parses a `Packages` file once (relations included) and
//! writes a flat little-endian file; [`Index::open`] maps it and validates its structure
//! in one pass, after which every accessor is a bounds-checked read with no parsing, no
//! allocation and no way to panic.
//!
//! Layout: a fixed header, then four sections: a string blob (deduplicated), package
//! records, relation groups (each a range of alternatives) and alternatives. Strings are
//! `(offset, length)` pairs into the blob; ranges are `(start, count)` pairs.

use crate::control::{ControlError, Paragraphs};
use crate::relation::{self, Op, Relation};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use thiserror::Error;

const MAGIC: &[u8; 8] = b"KILNIDX\0";
/// Bump on any layout change: older files are then rejected and rebuilt.
const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 72;

/// String fields of a package record, in record order.
const S_NAME: usize = 0;
const S_VERSION: usize = 1;
const S_ARCH: usize = 2;
const S_SOURCE: usize = 3;
const S_FILENAME: usize = 4;
const S_DESCRIPTION: usize = 5;
const S_HOMEPAGE: usize = 6;
const S_SECTION: usize = 7;
const N_STRS: usize = 8;
const P_SIZE: usize = N_STRS * 8;
const P_INSTALLED_SIZE: usize = P_SIZE + 8;
const P_SHA256: usize = P_INSTALLED_SIZE + 8;
const P_RELS: usize = P_SHA256 + 32;
const P_FLAGS: usize = P_RELS + RelKind::ALL.len() * 8;
const PKG_LEN: usize = P_FLAGS + 4;
const GROUP_LEN: usize = 8;
const ALT_LEN: usize = 28;

const F_ESSENTIAL: u32 = 1;
const F_HAS_SHA256: u32 = 2;
const PRIORITY_SHIFT: u32 = 4;
const MULTI_ARCH_SHIFT: u32 = 8;

#[derive(Debug, Error)]
pub enum IndexError {
    #[error("line {line}: {message}")]
    Parse { line: usize, message: String },
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("not a kiln package index (bad magic or version {found}, expected {FORMAT_VERSION})")]
    Format { found: u32 },
    #[error("the package index is corrupt: {0}")]
    Corrupt(&'static str),
    #[error("cannot read the package index {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// The relationship fields kept in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelKind {
    Depends,
    PreDepends,
    Recommends,
    Suggests,
    Provides,
    Conflicts,
    Breaks,
    Replaces,
}

impl RelKind {
    pub const ALL: [RelKind; 8] = [
        RelKind::Depends,
        RelKind::PreDepends,
        RelKind::Recommends,
        RelKind::Suggests,
        RelKind::Provides,
        RelKind::Conflicts,
        RelKind::Breaks,
        RelKind::Replaces,
    ];

    pub fn field_name(self) -> &'static str {
        match self {
            RelKind::Depends => "Depends",
            RelKind::PreDepends => "Pre-Depends",
            RelKind::Recommends => "Recommends",
            RelKind::Suggests => "Suggests",
            RelKind::Provides => "Provides",
            RelKind::Conflicts => "Conflicts",
            RelKind::Breaks => "Breaks",
            RelKind::Replaces => "Replaces",
        }
    }
}

/// `Multi-Arch:` of a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MultiArch {
    #[default]
    No,
    Same,
    Foreign,
    Allowed,
}

/// `Priority:` of a package, in apt's order of importance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Priority {
    Required = 1,
    Important = 2,
    Standard = 3,
    #[default]
    Optional = 4,
    Extra = 5,
}

impl Priority {
    fn parse(s: &str) -> Priority {
        match s {
            "required" => Priority::Required,
            "important" => Priority::Important,
            "standard" => Priority::Standard,
            "extra" => Priority::Extra,
            _ => Priority::Optional,
        }
    }
}

/// Builds an index from one or more `Packages` files.
#[derive(Default)]
pub struct IndexBuilder {
    strings: Vec<u8>,
    interned: HashMap<Box<str>, (u32, u32)>,
    packages: Vec<u8>,
    groups: Vec<u8>,
    alts: Vec<u8>,
    count: u32,
}

impl IndexBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn intern(&mut self, s: &str) -> (u32, u32) {
        if s.is_empty() {
            return (0, 0);
        }
        if let Some(&r) = self.interned.get(s) {
            return r;
        }
        let r = (self.strings.len() as u32, s.len() as u32);
        self.strings.extend_from_slice(s.as_bytes());
        self.interned.insert(s.into(), r);
        r
    }

    fn push_str(&mut self, s: &str) {
        let (o, l) = self.intern(s);
        self.packages.extend_from_slice(&o.to_le_bytes());
        self.packages.extend_from_slice(&l.to_le_bytes());
    }

    fn push_relations(&mut self, groups: &[Vec<Relation<'_>>]) {
        let start = (self.groups.len() / GROUP_LEN) as u32;
        for group in groups {
            let alt_start = (self.alts.len() / ALT_LEN) as u32;
            for alt in group {
                let name = self.intern(alt.name);
                let arch = self.intern(alt.arch.unwrap_or(""));
                let (op, version) = match alt.constraint {
                    Some((op, v)) => (op as u32, self.intern(v)),
                    None => (0, (0, 0)),
                };
                for v in [name.0, name.1, arch.0, arch.1, version.0, version.1, op] {
                    self.alts.extend_from_slice(&v.to_le_bytes());
                }
            }
            self.groups.extend_from_slice(&alt_start.to_le_bytes());
            self.groups
                .extend_from_slice(&(group.len() as u32).to_le_bytes());
        }
        self.packages.extend_from_slice(&start.to_le_bytes());
        self.packages
            .extend_from_slice(&(groups.len() as u32).to_le_bytes());
    }

    /// Parses a whole (decompressed) `Packages` file and adds every stanza.
    /// Returns the number of packages added. Errors name the line of the bad stanza.
    pub fn add_packages(&mut self, text: &[u8]) -> Result<usize, IndexError> {
        let mut added = 0;
        for para in Paragraphs::new(text) {
            let para = para?;
            let line = para.line();
            let bad = |message: String| IndexError::Parse { line, message };
            let required = |name: &str| {
                para.field(name)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| bad(format!("the stanza has no {name} field")))
            };
            let name = required("Package")?;
            let version = required("Version")?;
            let arch = required("Architecture")?;
            if relation::parse_one(name).is_err() || name.contains(['(', ':']) {
                return Err(bad(format!("invalid package name {name:?}")));
            }
            if !crate::version::is_valid(version) {
                return Err(bad(format!("package {name}: invalid version {version:?}")));
            }
            let number = |field: &str| -> Result<u64, IndexError> {
                match para.field(field) {
                    None => Ok(0),
                    Some(v) => v.parse().map_err(|_| {
                        bad(format!("package {name}: {field} is not a number: {v:?}"))
                    }),
                }
            };
            let size = number("Size")?;
            let installed_size = number("Installed-Size")?;
            let mut sha256 = [0u8; 32];
            let mut flags = 0;
            if let Some(hex) = para.field("SHA256") {
                if !decode_hex(hex, &mut sha256) {
                    return Err(bad(format!("package {name}: SHA256 is not 64 hex digits")));
                }
                flags |= F_HAS_SHA256;
            }
            if para
                .field("Essential")
                .is_some_and(|v| v.eq_ignore_ascii_case("yes"))
            {
                flags |= F_ESSENTIAL;
            }
            flags |=
                (Priority::parse(para.field("Priority").unwrap_or("")) as u32) << PRIORITY_SHIFT;
            let multi_arch = match para.field("Multi-Arch").unwrap_or("no") {
                "same" => MultiArch::Same,
                "foreign" => MultiArch::Foreign,
                "allowed" => MultiArch::Allowed,
                _ => MultiArch::No,
            };
            flags |= (multi_arch as u32) << MULTI_ARCH_SHIFT;

            let mut rels = Vec::with_capacity(RelKind::ALL.len());
            for kind in RelKind::ALL {
                let groups = match para.field(kind.field_name()) {
                    Some(v) => relation::parse(v)
                        .map_err(|e| bad(format!("package {name}: {}: {e}", kind.field_name())))?,
                    None => Vec::new(),
                };
                rels.push(groups);
            }

            let description = para.field("Description").unwrap_or("");
            let summary = description.lines().next().unwrap_or("");
            for s in [
                name,
                version,
                arch,
                para.field("Source").unwrap_or(""),
                para.field("Filename").unwrap_or(""),
                summary,
                para.field("Homepage").unwrap_or(""),
                para.field("Section").unwrap_or(""),
            ] {
                self.push_str(s);
            }
            self.packages.extend_from_slice(&size.to_le_bytes());
            self.packages
                .extend_from_slice(&installed_size.to_le_bytes());
            self.packages.extend_from_slice(&sha256);
            for groups in &rels {
                self.push_relations(groups);
            }
            self.packages.extend_from_slice(&flags.to_le_bytes());
            self.count += 1;
            added += 1;
        }
        Ok(added)
    }

    /// The bytes of the index file.
    pub fn finish(self) -> Vec<u8> {
        let align8 = |n: usize| n.div_ceil(8) * 8;
        let strings_off = HEADER_LEN;
        let packages_off = align8(strings_off + self.strings.len());
        let groups_off = packages_off + self.packages.len();
        let alts_off = groups_off + self.groups.len();
        let total = alts_off + self.alts.len();
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&((self.groups.len() / GROUP_LEN) as u32).to_le_bytes());
        out.extend_from_slice(&((self.alts.len() / ALT_LEN) as u32).to_le_bytes());
        for v in [
            strings_off,
            self.strings.len(),
            packages_off,
            groups_off,
            alts_off,
            total,
        ] {
            out.extend_from_slice(&(v as u64).to_le_bytes());
        }
        debug_assert_eq!(out.len(), HEADER_LEN);
        out.extend_from_slice(&self.strings);
        out.resize(packages_off, 0);
        out.extend_from_slice(&self.packages);
        out.extend_from_slice(&self.groups);
        out.extend_from_slice(&self.alts);
        out
    }
}

fn decode_hex(hex: &str, out: &mut [u8; 32]) -> bool {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return false;
    }
    let nib = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        match (nib(pair[0]), nib(pair[1])) {
            (Some(h), Some(l)) => out[i] = h << 4 | l,
            _ => return false,
        }
    }
    true
}

enum Backing {
    Owned(Vec<u8>),
    Mapped(memmap2::Mmap),
}

/// A loaded, validated package index.
pub struct Index {
    data: Backing,
    count: u32,
    strings: (usize, usize),
    packages: usize,
    groups: usize,
    alts: usize,
}

impl fmt::Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Index")
            .field("packages", &self.count)
            .finish()
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8).map_or(0, |s| {
        let mut a = [0; 8];
        a.copy_from_slice(s);
        u64::from_le_bytes(a)
    })
}

impl Index {
    /// Maps an index file and validates it.
    pub fn open(path: &Path) -> Result<Index, IndexError> {
        let io = |source| IndexError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: index files are written once to a temporary name and renamed into
        // place, never modified afterwards, so the mapping does not change under us.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Index::new(Backing::Mapped(map))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Result<Index, IndexError> {
        Index::new(Backing::Owned(bytes))
    }

    fn new(data: Backing) -> Result<Index, IndexError> {
        let b: &[u8] = match &data {
            Backing::Owned(v) => v,
            Backing::Mapped(m) => m,
        };
        if b.len() < HEADER_LEN || &b[..8] != MAGIC {
            return Err(IndexError::Format { found: 0 });
        }
        let version = u32_at(b, 8);
        if version != FORMAT_VERSION {
            return Err(IndexError::Format { found: version });
        }
        let count = u32_at(b, 12) as usize;
        let n_groups = u32_at(b, 16) as usize;
        let n_alts = u32_at(b, 20) as usize;
        let to_usize =
            |v: u64| usize::try_from(v).map_err(|_| IndexError::Corrupt("offset too large"));
        let strings = (to_usize(u64_at(b, 24))?, to_usize(u64_at(b, 32))?);
        let packages = to_usize(u64_at(b, 40))?;
        let groups = to_usize(u64_at(b, 48))?;
        let alts = to_usize(u64_at(b, 56))?;
        let total = to_usize(u64_at(b, 64))?;
        let fits = |off: usize, len: Option<usize>| {
            len.and_then(|l| off.checked_add(l))
                .is_some_and(|end| end <= b.len())
        };
        if total != b.len() {
            return Err(IndexError::Corrupt("truncated or extended file"));
        }
        if !fits(strings.0, Some(strings.1))
            || !fits(packages, count.checked_mul(PKG_LEN))
            || !fits(groups, n_groups.checked_mul(GROUP_LEN))
            || !fits(alts, n_alts.checked_mul(ALT_LEN))
        {
            return Err(IndexError::Corrupt("a section lies outside the file"));
        }
        let blob = std::str::from_utf8(&b[strings.0..strings.0 + strings.1])
            .map_err(|_| IndexError::Corrupt("string table is not UTF-8"))?;
        let check_str = |off: usize| {
            let (o, l) = (u32_at(b, off) as usize, u32_at(b, off + 4) as usize);
            o.checked_add(l).is_some_and(|end| {
                end <= blob.len() && blob.is_char_boundary(o) && blob.is_char_boundary(end)
            })
        };
        let check_range = |off: usize, n: usize| {
            let (s, l) = (u32_at(b, off) as usize, u32_at(b, off + 4) as usize);
            s.checked_add(l).is_some_and(|end| end <= n)
        };
        for p in 0..count {
            let rec = packages + p * PKG_LEN;
            if !(0..N_STRS).all(|i| check_str(rec + i * 8))
                || !(0..RelKind::ALL.len()).all(|i| check_range(rec + P_RELS + i * 8, n_groups))
            {
                return Err(IndexError::Corrupt(
                    "a package record points outside its section",
                ));
            }
        }
        for g in 0..n_groups {
            if !check_range(groups + g * GROUP_LEN, n_alts) {
                return Err(IndexError::Corrupt(
                    "a relation group points outside its section",
                ));
            }
        }
        for a in 0..n_alts {
            let rec = alts + a * ALT_LEN;
            let op = u32_at(b, rec + 24);
            if !(0..3).all(|i| check_str(rec + i * 8)) || op > 5 {
                return Err(IndexError::Corrupt("a relation points outside its section"));
            }
        }
        Ok(Index {
            count: count as u32,
            strings,
            packages,
            groups,
            alts,
            data,
        })
    }

    fn bytes(&self) -> &[u8] {
        match &self.data {
            Backing::Owned(v) => v,
            Backing::Mapped(m) => m,
        }
    }

    fn str_at(&self, off: usize) -> &str {
        let b = self.bytes();
        let (o, l) = (u32_at(b, off) as usize, u32_at(b, off + 4) as usize);
        let start = self.strings.0 + o;
        match b.get(start..start + l) {
            // SAFETY: `off` is always a string field of a record that `new` validated:
            // the string table is UTF-8 and this range lies inside it on character
            // boundaries, so the bytes are valid UTF-8. The backing bytes never change
            // (owned, or a mapping of a file that is never rewritten). Re-checking here
            // cost 11-20% of a solve.
            Some(s) => unsafe { std::str::from_utf8_unchecked(s) },
            None => "",
        }
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The package at position `i`; panics if `i >= len()` like slice indexing.
    pub fn package(&self, i: u32) -> Package<'_> {
        assert!(i < self.count, "package index {i} out of range");
        Package {
            index: self,
            rec: self.packages + i as usize * PKG_LEN,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = Package<'_>> {
        (0..self.count).map(|i| self.package(i))
    }
}

/// A view of one package record.
#[derive(Clone, Copy)]
pub struct Package<'a> {
    index: &'a Index,
    rec: usize,
}

impl fmt::Debug for Package<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={} [{}]", self.name(), self.version(), self.arch())
    }
}

impl<'a> Package<'a> {
    fn s(&self, field: usize) -> &'a str {
        self.index.str_at(self.rec + field * 8)
    }
    pub fn name(&self) -> &'a str {
        self.s(S_NAME)
    }
    /// The full version string, epoch included, as apt prints it.
    pub fn version(&self) -> &'a str {
        self.s(S_VERSION)
    }
    pub fn arch(&self) -> &'a str {
        self.s(S_ARCH)
    }
    /// The source package name (the package's own name when the field is absent).
    pub fn source_name(&self) -> &'a str {
        match self.s(S_SOURCE).split_once(' ') {
            Some((n, _)) => n,
            None if self.s(S_SOURCE).is_empty() => self.name(),
            None => self.s(S_SOURCE),
        }
    }
    /// The source version: from `Source: name (version)`, else the binary's version.
    pub fn source_version(&self) -> &'a str {
        self.s(S_SOURCE)
            .split_once('(')
            .and_then(|(_, v)| v.strip_suffix(')'))
            .map_or(self.version(), str::trim)
    }
    /// Path of the .deb relative to the repository base URL.
    pub fn filename(&self) -> &'a str {
        self.s(S_FILENAME)
    }
    /// The first line of the description.
    pub fn summary(&self) -> &'a str {
        self.s(S_DESCRIPTION)
    }
    pub fn homepage(&self) -> &'a str {
        self.s(S_HOMEPAGE)
    }
    pub fn section(&self) -> &'a str {
        self.s(S_SECTION)
    }
    /// Size of the .deb in bytes.
    pub fn size(&self) -> u64 {
        u64_at(self.index.bytes(), self.rec + P_SIZE)
    }
    /// `Installed-Size`, in KiB.
    pub fn installed_size(&self) -> u64 {
        u64_at(self.index.bytes(), self.rec + P_INSTALLED_SIZE)
    }
    fn flags(&self) -> u32 {
        u32_at(self.index.bytes(), self.rec + P_FLAGS)
    }
    pub fn sha256(&self) -> Option<[u8; 32]> {
        if self.flags() & F_HAS_SHA256 == 0 {
            return None;
        }
        let mut out = [0; 32];
        let b = self.index.bytes();
        out.copy_from_slice(&b[self.rec + P_SHA256..self.rec + P_SHA256 + 32]);
        Some(out)
    }
    pub fn sha256_hex(&self) -> Option<String> {
        self.sha256()
            .map(|h| h.iter().map(|b| format!("{b:02x}")).collect())
    }
    pub fn essential(&self) -> bool {
        self.flags() & F_ESSENTIAL != 0
    }
    pub fn priority(&self) -> Priority {
        match (self.flags() >> PRIORITY_SHIFT) & 7 {
            1 => Priority::Required,
            2 => Priority::Important,
            3 => Priority::Standard,
            5 => Priority::Extra,
            _ => Priority::Optional,
        }
    }
    pub fn multi_arch(&self) -> MultiArch {
        match (self.flags() >> MULTI_ARCH_SHIFT) & 3 {
            1 => MultiArch::Same,
            2 => MultiArch::Foreign,
            3 => MultiArch::Allowed,
            _ => MultiArch::No,
        }
    }
    /// The groups of one relationship field; each group is a list of alternatives.
    pub fn relations(&self, kind: RelKind) -> Groups<'a> {
        let i = RelKind::ALL.iter().position(|&k| k == kind).unwrap_or(0);
        let b = self.index.bytes();
        let off = self.rec + P_RELS + i * 8;
        Groups {
            index: self.index,
            next: u32_at(b, off),
            end: u32_at(b, off) + u32_at(b, off + 4),
        }
    }
}

/// Iterator over the groups of a relationship field.
#[derive(Clone)]
pub struct Groups<'a> {
    index: &'a Index,
    next: u32,
    end: u32,
}

impl<'a> Iterator for Groups<'a> {
    type Item = Alternatives<'a>;
    fn next(&mut self) -> Option<Alternatives<'a>> {
        if self.next >= self.end {
            return None;
        }
        let b = self.index.bytes();
        let off = self.index.groups + self.next as usize * GROUP_LEN;
        self.next += 1;
        let start = u32_at(b, off);
        Some(Alternatives {
            index: self.index,
            next: start,
            end: start + u32_at(b, off + 4),
        })
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.end - self.next) as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Groups<'_> {}

/// Iterator over the alternatives of one group (`a | b | c`).
#[derive(Clone)]
pub struct Alternatives<'a> {
    index: &'a Index,
    next: u32,
    end: u32,
}

impl<'a> Iterator for Alternatives<'a> {
    type Item = Relation<'a>;
    fn next(&mut self) -> Option<Relation<'a>> {
        if self.next >= self.end {
            return None;
        }
        let off = self.index.alts + self.next as usize * ALT_LEN;
        self.next += 1;
        let arch = self.index.str_at(off + 8);
        let op = Op::from_u8(u32_at(self.index.bytes(), off + 24) as u8);
        Some(Relation {
            name: self.index.str_at(off),
            arch: (!arch.is_empty()).then_some(arch),
            constraint: op.map(|op| (op, self.index.str_at(off + 16))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
Package: libc6
Version: 2.36-9+deb12u4
Architecture: amd64
Multi-Arch: same
Priority: optional
Section: libs
Installed-Size: 12986
Depends: libgcc-s1
Recommends: libidn2-0 (>= 2.0.5~)
Breaks: nscd (<< 2.36), hurd (<< 1:0.9.git20220301-2)
Filename: pool/main/g/glibc/libc6_2.36-9+deb12u4_amd64.deb
Size: 2757936
SHA256: 7b4a1b3f4a3b4c1d9f0e5e0b6c3d2a1f7b4a1b3f4a3b4c1d9f0e5e0b6c3d2a1f
Description: GNU C Library: Shared libraries
 Contains the standard libraries.
Source: glibc

Package: python3
Source: python3-defaults (3.11.2-1)
Version: 3.11.2-1+b1
Architecture: amd64
Multi-Arch: allowed
Essential: yes
Priority: important
Depends: python3.11 (>= 3.11.2-1~), libpython3-stdlib (= 3.11.2-1+b1)
Pre-Depends: python3-minimal (= 3.11.2-1+b1) | python3-foo:any
Provides: python3-profiler, python3-x (= 1.0)
Filename: pool/main/p/python3-defaults/python3_3.11.2-1+b1_amd64.deb
Size: 26484
";

    #[test]
    fn round_trip() {
        let mut b = IndexBuilder::new();
        assert_eq!(b.add_packages(SAMPLE.as_bytes()).unwrap(), 2);
        let idx = Index::from_bytes(b.finish()).unwrap();
        assert_eq!(idx.len(), 2);
        let libc = idx.package(0);
        assert_eq!(libc.name(), "libc6");
        assert_eq!(libc.version(), "2.36-9+deb12u4");
        assert_eq!(libc.multi_arch(), MultiArch::Same);
        assert_eq!(libc.source_name(), "glibc");
        assert_eq!(libc.source_version(), "2.36-9+deb12u4");
        assert_eq!(libc.size(), 2757936);
        assert_eq!(libc.installed_size(), 12986);
        assert_eq!(libc.summary(), "GNU C Library: Shared libraries");
        assert_eq!(libc.section(), "libs");
        assert!(libc.sha256_hex().unwrap().starts_with("7b4a1b3f"));
        let breaks: Vec<Vec<_>> = libc
            .relations(RelKind::Breaks)
            .map(|g| g.collect())
            .collect();
        assert_eq!(breaks.len(), 2);
        assert_eq!(
            breaks[1][0].constraint,
            Some((Op::Lt, "1:0.9.git20220301-2"))
        );
        let py = idx.package(1);
        assert!(py.essential());
        assert_eq!(py.priority(), Priority::Important);
        assert_eq!(py.source_name(), "python3-defaults");
        assert_eq!(py.source_version(), "3.11.2-1");
        assert_eq!(py.sha256(), None);
        let pre: Vec<Vec<_>> = py
            .relations(RelKind::PreDepends)
            .map(|g| g.collect())
            .collect();
        assert_eq!(pre[0][1].arch, Some("any"));
        let provides: Vec<_> = py.relations(RelKind::Provides).flatten().collect();
        assert_eq!(provides[1].constraint, Some((Op::Eq, "1.0")));
        assert_eq!(py.relations(RelKind::Conflicts).count(), 0);
    }

    #[test]
    fn parse_errors_name_the_line() {
        let text = "Package: a\nVersion: 1\nArchitecture: all\n\nPackage: b\nArchitecture: all\n";
        let err = IndexBuilder::new()
            .add_packages(text.as_bytes())
            .unwrap_err();
        assert_eq!(err.to_string(), "line 5: the stanza has no Version field");
        let text = "Package: a\nVersion: 1\nArchitecture: all\nDepends: b (>= )\n";
        let err = IndexBuilder::new()
            .add_packages(text.as_bytes())
            .unwrap_err();
        assert!(
            err.to_string().starts_with("line 1: package a: Depends"),
            "{err}"
        );
        let text = "Package: a\nVersion: 1\nArchitecture: all\nSize: lots\n";
        assert!(IndexBuilder::new().add_packages(text.as_bytes()).is_err());
    }

    #[test]
    fn corrupt_files_are_rejected_not_panicking() {
        let mut b = IndexBuilder::new();
        b.add_packages(SAMPLE.as_bytes()).unwrap();
        let good = b.finish();
        assert!(Index::from_bytes(good[..good.len() - 1].to_vec()).is_err());
        assert!(Index::from_bytes(b"garbage".to_vec()).is_err());
        // Flip every byte in turn: opening either fails or yields a usable index.
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0xa5;
            if let Ok(idx) = Index::from_bytes(bad) {
                for p in idx.iter() {
                    let _ = (p.name(), p.version(), p.sha256(), p.summary());
                    for kind in RelKind::ALL {
                        p.relations(kind).flatten().for_each(drop);
                    }
                }
            }
        }
    }

    #[test]
    fn mmap_open() {
        let mut b = IndexBuilder::new();
        b.add_packages(SAMPLE.as_bytes()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idx");
        std::fs::write(&path, b.finish()).unwrap();
        let idx = Index::open(&path).unwrap();
        assert_eq!(idx.package(1).name(), "python3");
    }
}
