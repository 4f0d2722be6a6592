//! The host's apt sources: `sources.list` and `sources.list.d/*.list` (one-line format) and
//! `sources.list.d/*.sources` (deb822 format), read the way apt reads them.

use std::path::{Path, PathBuf};

use kiln_deb::control::Paragraphs;

use crate::error::RepoError;

/// Where a source's keys come from (`Signed-By` / `signed-by=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedBy {
    /// Keyring files (binary `.gpg` or armored `.asc`).
    Keyrings(Vec<PathBuf>),
    /// Fingerprints of keys in the host's trusted keyrings.
    Fingerprints(Vec<String>),
    /// An armored key block written into the `.sources` file itself.
    Inline(String),
}

/// One enabled `deb` entry of the host's apt configuration (`deb-src` entries are dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSource {
    /// The file it was read from and the line where the entry starts (1-based).
    pub file: PathBuf,
    pub line: usize,
    pub uris: Vec<String>,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    /// Empty when the entry does not restrict architectures.
    pub architectures: Vec<String>,
    pub signed_by: Option<SignedBy>,
    /// `Trusted: yes` / `trusted=yes`: apt skips signature checks for this entry.
    pub trusted: bool,
}

/// All enabled `deb` sources of a host plus its global trusted keyrings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemSources {
    /// The apt configuration directory that was read (normally `/etc/apt`).
    pub apt_root: PathBuf,
    pub sources: Vec<AptSource>,
    /// `trusted.gpg` and `trusted.gpg.d/*.{gpg,asc}`: what apt uses for entries without
    /// `Signed-By`.
    pub trusted_keyrings: Vec<PathBuf>,
}

impl SystemSources {
    /// Reads `<apt_root>/sources.list`, `<apt_root>/sources.list.d/*.list` and
    /// `<apt_root>/sources.list.d/*.sources` (apt's file name rules: only `[A-Za-z0-9_.-]`
    /// and exactly these extensions, so `*.disabled*` and backup files are skipped).
    /// Missing files and directories are not errors; unreadable or malformed ones are.
    pub fn from_host(apt_root: &Path) -> Result<SystemSources, RepoError> {
        let mut sources = Vec::new();
        let main = apt_root.join("sources.list");
        if main.is_file() {
            let text = std::fs::read_to_string(&main).map_err(|e| RepoError::io(&main, e))?;
            sources.extend(parse_one_line(&text, &main)?);
        }
        let dir = apt_root.join("sources.list.d");
        for path in list_dir(&dir, &["list", "sources"])? {
            let text = std::fs::read_to_string(&path).map_err(|e| RepoError::io(&path, e))?;
            if path.extension().is_some_and(|e| e == "sources") {
                sources.extend(parse_deb822(&text, &path)?);
            } else {
                sources.extend(parse_one_line(&text, &path)?);
            }
        }
        let mut trusted_keyrings = Vec::new();
        let legacy = apt_root.join("trusted.gpg");
        if legacy.is_file() {
            trusted_keyrings.push(legacy);
        }
        trusted_keyrings.extend(list_dir(&apt_root.join("trusted.gpg.d"), &["gpg", "asc"])?);
        Ok(SystemSources {
            apt_root: apt_root.to_path_buf(),
            sources,
            trusted_keyrings,
        })
    }
}

/// The files of `dir` with one of `exts`, named as apt accepts them, sorted.
fn list_dir(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>, RepoError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RepoError::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| RepoError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let valid_chars = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        let Some((_, ext)) = name.rsplit_once('.') else {
            continue;
        };
        if !valid_chars || !exts.contains(&ext) || name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn split_list(v: &str) -> Vec<String> {
    v.split_whitespace().map(str::to_string).collect()
}

fn is_yes(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "yes" | "true" | "with" | "on" | "enable" | "1"
    )
}

/// Interprets a `Signed-By` value: an inline armored key, or paths and/or fingerprints.
fn parse_signed_by(value: &str) -> Option<SignedBy> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.contains("-----BEGIN PGP PUBLIC KEY BLOCK-----") {
        // deb822 continuation lines: one leading space; " ." stands for an empty line.
        let mut key = String::new();
        for line in value.lines() {
            let line = line.trim();
            key.push_str(if line == "." { "" } else { line });
            key.push('\n');
        }
        return Some(SignedBy::Inline(key));
    }
    let items: Vec<&str> = value
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .collect();
    let paths: Vec<PathBuf> = items
        .iter()
        .filter(|s| s.starts_with('/'))
        .map(PathBuf::from)
        .collect();
    if !paths.is_empty() {
        return Some(SignedBy::Keyrings(paths));
    }
    Some(SignedBy::Fingerprints(
        items
            .iter()
            .map(|s| s.trim_end_matches('!').to_ascii_uppercase())
            .collect(),
    ))
}

/// Parses a deb822 `.sources` file.
pub fn parse_deb822(text: &str, path: &Path) -> Result<Vec<AptSource>, RepoError> {
    let mut out = Vec::new();
    for para in Paragraphs::from_text(text) {
        let para = para.map_err(|e| RepoError::config(path, e.to_string()))?;
        let line = para.line();
        let err = |m: &str| RepoError::config(path, format!("entry at line {line}: {m}"));
        if para.field("Enabled").is_some_and(|v| !is_yes(v)) {
            continue;
        }
        let types = split_list(para.field("Types").ok_or_else(|| err("missing Types"))?);
        if !types.iter().any(|t| t == "deb") {
            continue;
        }
        let uris = split_list(para.field("URIs").ok_or_else(|| err("missing URIs"))?);
        let suites = split_list(para.field("Suites").ok_or_else(|| err("missing Suites"))?);
        if uris.is_empty() || suites.is_empty() {
            return Err(err("URIs and Suites must not be empty"));
        }
        let components = split_list(para.field("Components").unwrap_or(""));
        let flat = suites.iter().all(|s| s.ends_with('/'));
        if components.is_empty() && !flat {
            return Err(err(
                "missing Components (only flat repositories, whose suite ends with '/', have none)",
            ));
        }
        out.push(AptSource {
            file: path.to_path_buf(),
            line,
            uris,
            suites,
            components,
            architectures: split_list(para.field("Architectures").unwrap_or("")),
            signed_by: para.field("Signed-By").and_then(parse_signed_by),
            trusted: para.field("Trusted").is_some_and(is_yes),
        });
    }
    Ok(out)
}

/// Parses the one-line format of `sources.list` and `*.list`.
pub fn parse_one_line(text: &str, path: &Path) -> Result<Vec<AptSource>, RepoError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let err = |m: &str| RepoError::config(path, format!("line {line_no}: {m}"));
        let (typ, rest) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| err("expected `deb [options] URI suite [components]`"))?;
        let rest = rest.trim_start();
        if typ == "deb-src" {
            continue;
        }
        if typ != "deb" {
            return Err(err(&format!(
                "unknown type {typ:?} (expected deb or deb-src)"
            )));
        }
        let (options, rest) = if let Some(r) = rest.strip_prefix('[') {
            let (opts, after) = r
                .split_once(']')
                .ok_or_else(|| err("unterminated [ options ]"))?;
            (opts, after)
        } else {
            ("", rest)
        };
        let mut words = rest.split_whitespace();
        let uri = words.next().ok_or_else(|| err("missing URI"))?.to_string();
        let suite = words
            .next()
            .ok_or_else(|| err("missing suite"))?
            .to_string();
        let components: Vec<String> = words.map(str::to_string).collect();
        if components.is_empty() && !suite.ends_with('/') {
            return Err(err(
                "missing components (only flat repositories, whose suite ends with '/', have none)",
            ));
        }
        let mut src = AptSource {
            file: path.to_path_buf(),
            line: line_no,
            uris: vec![uri],
            suites: vec![suite],
            components,
            architectures: Vec::new(),
            signed_by: None,
            trusted: false,
        };
        for opt in options.split_whitespace() {
            let (key, value) = opt
                .split_once('=')
                .ok_or_else(|| err(&format!("option {opt:?} is not key=value")))?;
            let key = key.trim_end_matches(['+', '-']);
            match key {
                "arch" => {
                    src.architectures = value.split(',').map(str::to_string).collect();
                }
                "signed-by" => src.signed_by = parse_signed_by(value),
                "trusted" => src.trusted = is_yes(value),
                _ => {} // lang=, target=, pdiffs=, by-hash=, ...: not relevant to kiln
            }
        }
        out.push(src);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_entries() {
        let text = "\
# a comment
Types: deb deb-src
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
Architectures: amd64
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://mirror.example/debian
Suites: bookworm
Components: main

Enabled: no
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://third.example/repo
Suites: ./
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBFake
 =abcd
 -----END PGP PUBLIC KEY BLOCK-----
";
        let s = parse_deb822(text, Path::new("x.sources")).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].uris, vec!["http://mirror.example/debian"]);
        assert_eq!(s[0].suites, vec!["bookworm", "bookworm-updates"]);
        assert_eq!(s[0].components, vec!["main", "contrib"]);
        assert_eq!(s[0].architectures, vec!["amd64"]);
        assert_eq!(s[0].line, 2);
        assert_eq!(
            s[0].signed_by,
            Some(SignedBy::Keyrings(vec![PathBuf::from(
                "/usr/share/keyrings/debian-archive-keyring.gpg"
            )]))
        );
        assert_eq!(s[1].suites, vec!["./"]);
        assert!(s[1].components.is_empty());
        match &s[1].signed_by {
            Some(SignedBy::Inline(k)) => assert_eq!(
                k,
                "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBFake\n=abcd\n-----END PGP PUBLIC KEY BLOCK-----\n"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn deb822_errors_name_the_entry() {
        let e = parse_deb822(
            "Types: deb\nSuites: x\nComponents: main\n",
            Path::new("f.sources"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("f.sources") && e.contains("line 1") && e.contains("URIs"),
            "{e}"
        );
    }

    #[test]
    fn one_line_entries() {
        let text = "\
deb [arch=amd64 signed-by=/etc/apt/keyrings/a.gpg] http://mirror.example/debian bookworm main non-free # comment
deb-src http://mirror.example/debian bookworm main
# deb http://commented.example/debian bookworm main
deb [ trusted=yes ] http://flat.example/repo ./
deb http://fp.example/debian bookworm main
";
        let s = parse_one_line(text, Path::new("sources.list")).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].architectures, vec!["amd64"]);
        assert_eq!(s[0].components, vec!["main", "non-free"]);
        assert_eq!(
            s[0].signed_by,
            Some(SignedBy::Keyrings(vec![PathBuf::from(
                "/etc/apt/keyrings/a.gpg"
            )]))
        );
        assert!(s[1].trusted);
        assert_eq!(s[1].suites, vec!["./"]);
        assert_eq!(s[2].line, 5);
        assert!(s[2].signed_by.is_none());

        let e = parse_one_line("deb http://x.example/ bookworm\n", Path::new("l"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("components"), "{e}");
        assert!(parse_one_line("rpm http://x.example/ a b\n", Path::new("l")).is_err());
    }

    #[test]
    fn from_host_reads_files_apt_reads() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("sources.list.d")).unwrap();
        std::fs::create_dir_all(root.join("trusted.gpg.d")).unwrap();
        std::fs::write(
            root.join("sources.list"),
            "deb http://one.example/debian bookworm main\n",
        )
        .unwrap();
        std::fs::write(
            root.join("sources.list.d/b.sources"),
            "Types: deb\nURIs: http://two.example/debian\nSuites: trixie\nComponents: main\n",
        )
        .unwrap();
        std::fs::write(
            root.join("sources.list.d/a.list"),
            "deb http://three.example/x stable main\n",
        )
        .unwrap();
        for skipped in [
            "c.sources.disabled-by-farm",
            "d.list.disabled",
            "e.list~",
            "f g.list",
        ] {
            std::fs::write(
                root.join("sources.list.d").join(skipped),
                "deb http://skipped.example/ a b\n",
            )
            .unwrap();
        }
        std::fs::write(root.join("trusted.gpg.d/k.gpg"), b"x").unwrap();
        std::fs::write(root.join("trusted.gpg.d/k.txt"), b"x").unwrap();
        let s = SystemSources::from_host(root).unwrap();
        let uris: Vec<&str> = s.sources.iter().map(|s| s.uris[0].as_str()).collect();
        assert_eq!(
            uris,
            vec![
                "http://one.example/debian",
                "http://three.example/x",
                "http://two.example/debian"
            ]
        );
        assert_eq!(s.trusted_keyrings, vec![root.join("trusted.gpg.d/k.gpg")]);

        // A missing apt root is an empty configuration, not an error.
        let none = SystemSources::from_host(&root.join("nope")).unwrap();
        assert!(none.sources.is_empty());
    }
}
