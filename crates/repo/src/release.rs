//! The `Release` file: metadata, checksums, and the choice of `Packages` files.

use std::collections::BTreeMap;
use std::time::SystemTime;

use kiln_deb::control::Paragraphs;

use crate::source::Layout;
use crate::util::parse_release_date;

/// One file listed in the `SHA256:` field of a Release file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
}

/// What kiln keeps of a verified Release file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseInfo {
    pub origin: Option<String>,
    pub label: Option<String>,
    pub suite: Option<String>,
    pub codename: Option<String>,
    pub version: Option<String>,
    pub date: Option<SystemTime>,
    pub valid_until: Option<SystemTime>,
    /// Empty when the field is absent.
    pub architectures: Vec<String>,
    pub components: Vec<String>,
    pub acquire_by_hash: bool,
    /// `No-Support-for-Architecture-all: Packages`: `Architecture: all` packages are in
    /// the per-architecture Packages files.
    pub no_arch_all_packages: bool,
    /// `SHA256:` entries by path (relative to the Release file's directory).
    pub files: BTreeMap<String, FileEntry>,
    /// SHA256 (hex) of the verified Release content: the cache key.
    pub release_sha256: String,
    /// The keys that made good signatures (empty when verification was off).
    pub signed_by: Vec<String>,
}

/// The compressions kiln reads, in order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Xz,
    Gzip,
    Zstd,
    Lz4,
    None,
}

impl Compression {
    pub const PREFERENCE: [Compression; 5] = [
        Compression::Xz,
        Compression::Gzip,
        Compression::Zstd,
        Compression::Lz4,
        Compression::None,
    ];

    pub fn extension(self) -> &'static str {
        match self {
            Compression::Xz => ".xz",
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
            Compression::Lz4 => ".lz4",
            Compression::None => "",
        }
    }
}

/// One variant of a Packages file that can be downloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Path relative to the Release file's directory, e.g. `main/binary-amd64/Packages.xz`.
    pub path: String,
    pub compression: Compression,
    pub entry: FileEntry,
}

/// A Packages file kiln needs, with its downloadable variants in order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedPackages {
    /// e.g. `main/binary-amd64/Packages`.
    pub path: String,
    pub candidates: Vec<Candidate>,
    /// The uncompressed file's entry, when the Release lists it (checked after
    /// decompression, and used as the index's cache key).
    pub uncompressed: Option<FileEntry>,
}

impl WantedPackages {
    /// The content address of this Packages file: the uncompressed SHA256 when known,
    /// else the preferred compressed variant's.
    pub fn cache_key(&self) -> Option<String> {
        self.uncompressed
            .as_ref()
            .map(|e| e.sha256.clone())
            .or_else(|| {
                self.candidates
                    .first()
                    .map(|c| format!("{}{}", c.entry.sha256, c.compression.extension()))
            })
    }
}

impl ReleaseInfo {
    /// Parses a Release payload. `release_sha256` is recorded as given.
    pub fn parse(
        payload: &[u8],
        release_sha256: String,
        signed_by: Vec<String>,
    ) -> Result<ReleaseInfo, String> {
        let para = Paragraphs::new(payload)
            .next()
            .ok_or_else(|| "the Release file is empty".to_string())?
            .map_err(|e| format!("the Release file is malformed: {e}"))?;
        let get = |f: &str| para.field(f).map(|v| v.trim().to_string());
        let date = |f: &str| -> Result<Option<SystemTime>, String> {
            match para.field(f) {
                None => Ok(None),
                Some(v) => parse_release_date(v)
                    .map(Some)
                    .ok_or_else(|| format!("the Release file has an invalid {f}: {v:?}")),
            }
        };
        let list = |f: &str| -> Vec<String> {
            para.field(f)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        let Some(sums) = para.field("SHA256") else {
            return Err(
                "the Release file has no SHA256 checksums (MD5Sum/SHA1 alone are not trusted)"
                    .into(),
            );
        };
        let mut files = BTreeMap::new();
        for line in sums.lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(hash), Some(size), Some(path), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(format!("bad SHA256 line in the Release file: {line:?}"));
            };
            let size: u64 = size
                .parse()
                .map_err(|_| format!("bad size in the Release file line {line:?}"))?;
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("bad SHA256 in the Release file line {line:?}"));
            }
            files.insert(
                path.to_string(),
                FileEntry {
                    size,
                    sha256: hash.to_ascii_lowercase(),
                },
            );
        }
        Ok(ReleaseInfo {
            origin: get("Origin"),
            label: get("Label"),
            suite: get("Suite"),
            codename: get("Codename"),
            version: get("Version"),
            date: date("Date")?,
            valid_until: date("Valid-Until")?,
            architectures: list("Architectures"),
            components: list("Components"),
            acquire_by_hash: get("Acquire-By-Hash").is_some_and(|v| v.eq_ignore_ascii_case("yes")),
            no_arch_all_packages: list("No-Support-for-Architecture-all")
                .iter()
                .any(|v| v == "Packages"),
            files,
            release_sha256,
            signed_by,
        })
    }

    fn wanted(&self, base: &str) -> Option<WantedPackages> {
        let candidates: Vec<Candidate> = Compression::PREFERENCE
            .iter()
            .filter_map(|&c| {
                let path = format!("{base}{}", c.extension());
                self.files.get(&path).map(|e| Candidate {
                    path,
                    compression: c,
                    entry: e.clone(),
                })
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        Some(WantedPackages {
            path: base.to_string(),
            uncompressed: self.files.get(base).cloned(),
            candidates,
        })
    }

    /// The Packages files to load for `arch`: per component `binary-<arch>`, plus
    /// `binary-all` when the repository keeps `Architecture: all` packages apart.
    /// Errors name what is missing.
    pub fn packages_files(
        &self,
        layout: &Layout,
        arch: &str,
    ) -> Result<Vec<WantedPackages>, String> {
        match layout {
            Layout::Flat { .. } => self
                .wanted("Packages")
                .map(|w| vec![w])
                .ok_or_else(|| "Packages".to_string()),
            Layout::Dists { components, .. } => {
                if !self.architectures.is_empty() && !self.architectures.iter().any(|a| a == arch) {
                    return Err(format!(
                        "architecture {arch} (the repository has {})",
                        self.architectures.join(" ")
                    ));
                }
                let separate_all = !self.no_arch_all_packages
                    && (self.architectures.is_empty()
                        || self.architectures.iter().any(|a| a == "all"));
                let mut out = Vec::new();
                for comp in components {
                    let base = format!("{comp}/binary-{arch}/Packages");
                    let Some(w) = self.wanted(&base) else {
                        return Err(
                            if self.components.is_empty()
                                || self
                                    .components
                                    .iter()
                                    .any(|c| c == comp || c.ends_with(&format!("/{comp}")))
                            {
                                base
                            } else {
                                format!(
                                    "{base} (component {comp} is not in the repository, which has {})",
                                    self.components.join(" ")
                                )
                            },
                        );
                    };
                    out.push(w);
                    if separate_all
                        && let Some(w) = self.wanted(&format!("{comp}/binary-all/Packages"))
                    {
                        out.push(w);
                    }
                }
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REL: &str = "\
Origin: Debian
Label: Debian
Suite: stable
Codename: bookworm
Date: Sat, 10 Jun 2023 08:53:33 UTC
Valid-Until: Sat, 17 Jun 2023 08:53:33 UTC
Acquire-By-Hash: yes
No-Support-for-Architecture-all: Packages
Architectures: all amd64 arm64
Components: main contrib
MD5Sum:
 0cb2675b62b4484b3c8a8d4d9c04ff23 22523322 main/binary-all/Packages
SHA256:
 5d0950b7a8cd2c03af1f5ed79e2da6b938c32c35375cc89c9bf2a4dfe26c4bce 22523322 main/binary-all/Packages
 70bd0601912eb7baa97a0ee6138d860109ffe7561df8f80a19ae4d885bc8045b  4231228 main/binary-all/Packages.xz
 81097cabc561cf9c51576cd57738e84d8d636762a69691e7adf0645882f402c9 50057461 main/binary-amd64/Packages
 4c17b207e53ea8eb6a24d09f7c5de130bfe69868d613fd97f3d8bb9bad2be6fc 12084574 main/binary-amd64/Packages.gz
 62d555a3a8be1d6de520fcd497ae85f2317c6dbb1249976e07720043e77b85d8  8790116 main/binary-amd64/Packages.xz
 62d555a3a8be1d6de520fcd497ae85f2317c6dbb1249976e07720043e77b85d8  8790116 main/binary-amd64/Packages.lz4
";

    fn dists(c: &[&str]) -> Layout {
        Layout::Dists {
            suite: "bookworm".into(),
            components: c.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn parse_and_select() {
        let r = ReleaseInfo::parse(REL.as_bytes(), "x".into(), vec![]).unwrap();
        assert_eq!(r.codename.as_deref(), Some("bookworm"));
        assert!(r.acquire_by_hash && r.no_arch_all_packages);
        assert!(r.valid_until.unwrap() > r.date.unwrap());
        assert_eq!(r.files.len(), 6);
        let w = r.packages_files(&dists(&["main"]), "amd64").unwrap();
        assert_eq!(
            w.len(),
            1,
            "binary-all is skipped with No-Support-for-Architecture-all"
        );
        let order: Vec<&str> = w[0].candidates.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            order,
            vec![
                "main/binary-amd64/Packages.xz",
                "main/binary-amd64/Packages.gz",
                "main/binary-amd64/Packages.lz4",
                "main/binary-amd64/Packages"
            ]
        );
        assert_eq!(
            w[0].cache_key().unwrap(),
            "81097cabc561cf9c51576cd57738e84d8d636762a69691e7adf0645882f402c9"
        );

        // Without the header, binary-all is loaded too.
        let r2 = ReleaseInfo::parse(
            REL.replace("No-Support-for-Architecture-all: Packages\n", "")
                .as_bytes(),
            "x".into(),
            vec![],
        )
        .unwrap();
        let w = r2.packages_files(&dists(&["main"]), "amd64").unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!(w[1].path, "main/binary-all/Packages");

        let e = r.packages_files(&dists(&["main"]), "s390x").unwrap_err();
        assert!(e.contains("s390x"), "{e}");
        let e = r.packages_files(&dists(&["contrib"]), "amd64").unwrap_err();
        assert_eq!(e, "contrib/binary-amd64/Packages");
        let e = r.packages_files(&dists(&["bogus"]), "amd64").unwrap_err();
        assert!(e.contains("not in the repository"), "{e}");
    }

    #[test]
    fn bad_release_files() {
        let no_sha = "Origin: X\nMD5Sum:\n 0cb2675b62b4484b3c8a8d4d9c04ff23 1 Packages\n";
        assert!(
            ReleaseInfo::parse(no_sha.as_bytes(), String::new(), vec![])
                .unwrap_err()
                .contains("SHA256")
        );
        let bad = "SHA256:\n zz 1 Packages\n";
        assert!(ReleaseInfo::parse(bad.as_bytes(), String::new(), vec![]).is_err());
        let bad_date = "Date: yesterday\nSHA256:\n";
        assert!(
            ReleaseInfo::parse(bad_date.as_bytes(), String::new(), vec![])
                .unwrap_err()
                .contains("Date")
        );
        assert!(ReleaseInfo::parse(b"", String::new(), vec![]).is_err());
    }
}
