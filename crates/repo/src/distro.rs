//! Distros, kiln's configuration file, and the choice of Debian mirrors.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::apt::{AptSource, SignedBy, SystemSources};
use crate::error::RepoError;
use crate::source::{Source, SourceConfig, SourceType, normalize_url};

/// The keyring used when neither kiln's configuration nor the host source names one.
pub const DEFAULT_DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// The distros kiln builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Distro {
    /// Debian 12 "bookworm".
    Debian12,
    /// Debian 13 "trixie".
    Debian13,
}

impl Distro {
    pub const ALL: [Distro; 2] = [Distro::Debian12, Distro::Debian13];

    pub fn name(self) -> &'static str {
        match self {
            Distro::Debian12 => "debian-12",
            Distro::Debian13 => "debian-13",
        }
    }

    pub fn codename(self) -> &'static str {
        match self {
            Distro::Debian12 => "bookworm",
            Distro::Debian13 => "trixie",
        }
    }

    /// Accepts `debian-12` / `debian-13` (and the codenames).
    pub fn parse(name: &str) -> Result<Distro, RepoError> {
        Distro::ALL
            .into_iter()
            .find(|d| d.name() == name || d.codename() == name)
            .ok_or_else(|| RepoError::UnknownDistro {
                name: name.to_string(),
                known: Distro::ALL.map(Distro::name).join(", "),
            })
    }
}

impl std::fmt::Display for Distro {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Debian architectures kiln accepts.
pub const ARCHES: [&str; 7] = [
    "amd64", "arm64", "armhf", "i386", "ppc64el", "riscv64", "s390x",
];

/// `[mirrors]` of kiln.toml.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Mirrors {
    /// Base URL of the Debian archive (holds `dists/<codename>{,-updates}`).
    pub debian: Option<String>,
    /// Base URL of the Debian security archive (holds `dists/<codename>-security`).
    pub debian_security: Option<String>,
}

/// `[keyrings]` of kiln.toml.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Keyrings {
    pub debian: Option<PathBuf>,
    pub debian_security: Option<PathBuf>,
}

/// The parts of kiln's configuration file this crate reads; other tables are left to
/// other crates.
///
/// ```toml
/// [mirrors]
/// debian = "http://<mirror>/debian"
/// debian-security = "http://<mirror>/debian-security"
/// [keyrings]
/// debian = "/usr/share/keyrings/debian-archive-keyring.gpg"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct KilnConfig {
    #[serde(default)]
    pub mirrors: Mirrors,
    #[serde(default)]
    pub keyrings: Keyrings,
    /// The file this was read from, if any.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

impl KilnConfig {
    /// The places kiln.toml is looked for, in order: `$KILN_CONFIG`,
    /// `$XDG_CONFIG_HOME/kiln/kiln.toml` (or `~/.config/kiln/kiln.toml`), `/etc/kiln/kiln.toml`.
    pub fn default_paths() -> Vec<PathBuf> {
        let mut v = Vec::new();
        if let Some(p) = std::env::var_os("KILN_CONFIG") {
            v.push(PathBuf::from(p));
        }
        if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
            v.push(PathBuf::from(x).join("kiln/kiln.toml"));
        } else if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            v.push(PathBuf::from(h).join(".config/kiln/kiln.toml"));
        }
        v.push(PathBuf::from("/etc/kiln/kiln.toml"));
        v
    }

    /// Loads the first existing file of [`KilnConfig::default_paths`] (or an empty config).
    pub fn discover() -> Result<KilnConfig, RepoError> {
        for p in KilnConfig::default_paths() {
            if p.is_file() {
                return KilnConfig::load(&p);
            }
        }
        Ok(KilnConfig::default())
    }

    pub fn load(path: &Path) -> Result<KilnConfig, RepoError> {
        let text = std::fs::read_to_string(path).map_err(|e| RepoError::io(path, e))?;
        let mut c = KilnConfig::parse(&text).map_err(|m| RepoError::config(path, m))?;
        c.path = Some(path.to_path_buf());
        Ok(c)
    }

    pub fn parse(text: &str) -> Result<KilnConfig, String> {
        let c: KilnConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        for u in [&c.mirrors.debian, &c.mirrors.debian_security]
            .into_iter()
            .flatten()
        {
            normalize_url(u).map_err(|e| format!("[mirrors]: {e}"))?;
        }
        Ok(c)
    }
}

/// Everything about the host that decides the distro sources.
#[derive(Debug, Clone, Default)]
pub struct HostConfig {
    pub kiln: KilnConfig,
    pub apt: SystemSources,
}

impl HostConfig {
    /// Reads the apt configuration below `apt_root` (normally `/etc/apt`) and kiln's
    /// configuration from `kiln_config` (or the default places when `None`).
    pub fn load(apt_root: &Path, kiln_config: Option<&Path>) -> Result<HostConfig, RepoError> {
        let kiln = match kiln_config {
            Some(p) => KilnConfig::load(p)?,
            None => KilnConfig::discover()?,
        };
        Ok(HostConfig {
            kiln,
            apt: SystemSources::from_host(apt_root)?,
        })
    }

    fn config_hint(&self) -> String {
        match &self.kiln.path {
            Some(p) => p.display().to_string(),
            None => KilnConfig::default_paths()
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" or "),
        }
    }

    /// The main archive mirror (for `<codename>` and `<codename>-updates`).
    pub fn debian_mirror(&self) -> Option<Mirror> {
        self.mirror(MirrorKind::Archive)
    }

    /// The security archive mirror (for `<codename>-security`).
    pub fn security_mirror(&self) -> Option<Mirror> {
        self.mirror(MirrorKind::Security)
    }

    fn mirror(&self, kind: MirrorKind) -> Option<Mirror> {
        let (url, keyring) = match kind {
            MirrorKind::Archive => (&self.kiln.mirrors.debian, &self.kiln.keyrings.debian),
            MirrorKind::Security => (
                &self.kiln.mirrors.debian_security,
                &self.kiln.keyrings.debian_security,
            ),
        };
        let host = self.host_mirror(kind);
        if let Some(url) = url {
            let url = normalize_url(url).ok()?;
            let (keys, fingerprints) = match (keyring, &host) {
                (Some(k), _) => (vec![KeyRef::File(k.clone())], Vec::new()),
                (None, Some(h)) if h.url == url => (h.keys.clone(), h.key_fingerprints.clone()),
                (None, _) => (
                    vec![KeyRef::File(PathBuf::from(DEFAULT_DEBIAN_KEYRING))],
                    Vec::new(),
                ),
            };
            return Some(Mirror {
                url,
                keys,
                key_fingerprints: fingerprints,
                origin: format!(
                    "{} [mirrors]",
                    self.kiln
                        .path
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "kiln configuration".into())
                ),
            });
        }
        let mut m = host?;
        if let Some(k) = keyring {
            m.keys = vec![KeyRef::File(k.clone())];
            m.key_fingerprints.clear();
        }
        Some(m)
    }

    fn host_mirror(&self, kind: MirrorKind) -> Option<Mirror> {
        for src in &self.apt.sources {
            if !src.components.iter().any(|c| c == "main") {
                continue;
            }
            let matches = src.suites.iter().any(|s| classify_suite(s) == Some(kind));
            if !matches {
                continue;
            }
            let Some(url) = src.uris.iter().find_map(|u| normalize_url(u).ok()) else {
                continue;
            };
            let (keys, key_fingerprints) = self.host_keys(src);
            return Some(Mirror {
                url,
                keys,
                key_fingerprints,
                origin: format!("{} line {}", src.file.display(), src.line),
            });
        }
        None
    }

    fn host_keys(&self, src: &AptSource) -> (Vec<KeyRef>, Vec<String>) {
        match &src.signed_by {
            Some(SignedBy::Keyrings(p)) => (p.iter().cloned().map(KeyRef::File).collect(), vec![]),
            Some(SignedBy::Inline(k)) => (vec![KeyRef::Armored(k.clone())], vec![]),
            Some(SignedBy::Fingerprints(f)) => (
                self.apt
                    .trusted_keyrings
                    .iter()
                    .cloned()
                    .chain([PathBuf::from(DEFAULT_DEBIAN_KEYRING)])
                    .map(KeyRef::File)
                    .collect(),
                f.clone(),
            ),
            None => (
                vec![KeyRef::File(PathBuf::from(DEFAULT_DEBIAN_KEYRING))],
                vec![],
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MirrorKind {
    Archive,
    Security,
}

const CODENAMES: [&str; 13] = [
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "stable",
    "oldstable",
    "oldoldstable",
    "testing",
    "unstable",
    "experimental",
];

/// Which Debian archive a host suite name belongs to, if it looks like a Debian one.
fn classify_suite(suite: &str) -> Option<MirrorKind> {
    let (base, suffix) = match suite.find(['-', '/']) {
        Some(i) => (&suite[..i], &suite[i..]),
        None => (suite, ""),
    };
    if !CODENAMES.contains(&base) {
        return None;
    }
    match suffix {
        "" | "-updates" | "-backports" | "-proposed-updates" | "-backports-sloppy" => {
            Some(MirrorKind::Archive)
        }
        "-security" | "/updates" => Some(MirrorKind::Security),
        _ => None,
    }
}

/// A key reference of a mirror (kept as the weldr `gpgkeys` strings it turns into).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    File(PathBuf),
    Armored(String),
}

/// A chosen mirror: base URL, keys, and where the choice came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub url: String,
    pub keys: Vec<KeyRef>,
    pub key_fingerprints: Vec<String>,
    pub origin: String,
}

impl Mirror {
    fn gpgkeys(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| match k {
                KeyRef::File(p) => p.display().to_string(),
                KeyRef::Armored(a) => a.clone(),
            })
            .collect()
    }
}

/// kiln's system sources (`debian`, `debian-updates`, `debian-security`) in the weldr
/// format, with `suite = "{codename}..."` so that they serve every distro. Fails with a
/// clear message when a mirror cannot be determined.
pub fn system_source_configs(host: &HostConfig) -> Result<Vec<SourceConfig>, RepoError> {
    let no_mirror = |what: &'static str, detail: &str| RepoError::NoMirror {
        distro: Distro::ALL.map(Distro::name).join("/"),
        what,
        detail: detail.to_string(),
        config: host.config_hint(),
    };
    let archive = host.debian_mirror().ok_or_else(|| {
        no_mirror(
            "Debian archive",
            "neither kiln's [mirrors] debian nor a Debian suite in the host's apt sources was found",
        )
    })?;
    let security = host.security_mirror().ok_or_else(|| {
        no_mirror(
            "Debian security",
            "neither kiln's [mirrors] debian-security nor a <codename>-security suite in the host's apt sources was found",
        )
    })?;
    let make = |id: &str, name: &str, mirror: &Mirror, suite: &str| SourceConfig {
        id: id.to_string(),
        name: name.to_string(),
        kind: SourceType::Deb,
        url: mirror.url.clone(),
        check_gpg: true,
        check_ssl: true,
        gpgkeys: mirror.gpgkeys(),
        system: true,
        distros: Distro::ALL.map(|d| d.name().to_string()).to_vec(),
        suite: Some(suite.to_string()),
        components: vec!["main".to_string()],
        check_repogpg: false,
        rhsm: false,
        module_hotfixes: false,
        proxy: None,
        key_fingerprints: mirror.key_fingerprints.clone(),
    };
    tracing::debug!(archive = %archive.url, from = %archive.origin, security = %security.url, from_security = %security.origin, "Debian mirrors");
    Ok(vec![
        make("debian", "Debian", &archive, "{codename}"),
        make(
            "debian-updates",
            "Debian updates",
            &archive,
            "{codename}-updates",
        ),
        make(
            "debian-security",
            "Debian security",
            &security,
            "{codename}-security",
        ),
    ])
}

/// The sources of a distro: `<codename>` and `<codename>-updates` from the archive mirror,
/// `<codename>-security` from the security mirror, component `main`.
pub fn distro_sources(
    distro: Distro,
    arch: &str,
    host: &HostConfig,
) -> Result<Vec<Source>, RepoError> {
    if !ARCHES.contains(&arch) {
        return Err(RepoError::invalid(
            None,
            format!(
                "unsupported architecture {arch:?} (known: {})",
                ARCHES.join(", ")
            ),
        ));
    }
    system_source_configs(host)?
        .iter()
        .map(|c| c.to_source(Some(distro)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{KeySource, Layout};

    fn fake_root(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    const HOST_12: &str = "\
Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

    #[test]
    fn debian_13_on_a_debian_12_host_uses_the_host_mirrors() {
        let root = fake_root(&[
            (
                "sources.list.d/other.sources",
                "Types: deb\nURIs: http://other.example/node\nSuites: nodistro\nComponents: main\n",
            ),
            ("sources.list.d/debian.sources", HOST_12),
        ]);
        let host = HostConfig {
            kiln: KilnConfig::default(),
            apt: SystemSources::from_host(root.path()).unwrap(),
        };
        let s = distro_sources(Distro::Debian13, "amd64", &host).unwrap();
        let got: Vec<(String, String, String)> = s
            .iter()
            .map(|s| {
                let Layout::Dists { suite, components } = &s.layout else {
                    panic!()
                };
                assert_eq!(components, &vec!["main".to_string()]);
                assert!(s.check_gpg);
                assert_eq!(
                    s.keys,
                    vec![KeySource::File(PathBuf::from(DEFAULT_DEBIAN_KEYRING))]
                );
                (s.id.clone(), s.url.clone(), suite.clone())
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "debian".into(),
                    "http://mirror.example/debian/".into(),
                    "trixie".into()
                ),
                (
                    "debian-updates".into(),
                    "http://mirror.example/debian/".into(),
                    "trixie-updates".into()
                ),
                (
                    "debian-security".into(),
                    "http://mirror.example/debian-security/".into(),
                    "trixie-security".into()
                ),
            ]
        );
        assert_eq!(
            s[0].release_dir(),
            "http://mirror.example/debian/dists/trixie/"
        );
    }

    #[test]
    fn kiln_config_overrides_host_and_one_line_hosts_work() {
        let root = fake_root(&[(
            "sources.list",
            "deb [signed-by=/etc/apt/keyrings/x.gpg] http://mirror.example/debian bookworm main\n\
             deb http://mirror.example/debian-security bookworm-security main\n",
        )]);
        let apt = SystemSources::from_host(root.path()).unwrap();
        let host = HostConfig {
            kiln: KilnConfig::default(),
            apt: apt.clone(),
        };
        let s = distro_sources(Distro::Debian12, "amd64", &host).unwrap();
        assert_eq!(
            s[0].keys,
            vec![KeySource::File("/etc/apt/keyrings/x.gpg".into())]
        );
        assert_eq!(s[2].url, "http://mirror.example/debian-security/");

        let kiln = KilnConfig::parse(
            "[mirrors]\ndebian = \"http://127.0.0.1:9/debian\"\n[keyrings]\ndebian-security = \"/k.gpg\"\n[other]\nx = 1\n",
        )
        .unwrap();
        let host = HostConfig { kiln, apt };
        let s = distro_sources(Distro::Debian12, "amd64", &host).unwrap();
        assert_eq!(s[0].url, "http://127.0.0.1:9/debian/");
        assert_eq!(
            s[0].keys,
            vec![KeySource::File(DEFAULT_DEBIAN_KEYRING.into())]
        );
        assert_eq!(s[2].url, "http://mirror.example/debian-security/");
        assert_eq!(s[2].keys, vec![KeySource::File("/k.gpg".into())]);
    }

    #[test]
    fn no_mirror_is_a_clear_error() {
        let root = fake_root(&[(
            "sources.list.d/x.sources",
            "Types: deb\nURIs: http://other.example/node\nSuites: nodistro\nComponents: main\n",
        )]);
        let host = HostConfig {
            kiln: KilnConfig::default(),
            apt: SystemSources::from_host(root.path()).unwrap(),
        };
        let e = distro_sources(Distro::Debian12, "amd64", &host)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[mirrors]") && e.contains("debian ="), "{e}");
        assert!(distro_sources(Distro::Debian12, "amd65", &host).is_err());
    }

    #[test]
    fn config_errors() {
        assert!(KilnConfig::parse("[mirrors]\ndebain = \"http://x.example/\"\n").is_err());
        assert!(KilnConfig::parse("[mirrors]\ndebian = \"ftp://x.example/\"\n").is_err());
        assert_eq!(KilnConfig::parse("").unwrap(), KilnConfig::default());
    }

    #[test]
    fn suite_classification() {
        assert_eq!(classify_suite("bookworm"), Some(MirrorKind::Archive));
        assert_eq!(classify_suite("trixie-updates"), Some(MirrorKind::Archive));
        assert_eq!(
            classify_suite("bookworm-security"),
            Some(MirrorKind::Security)
        );
        assert_eq!(classify_suite("buster/updates"), Some(MirrorKind::Security));
        assert_eq!(classify_suite("jammy"), None);
        assert_eq!(classify_suite("nodistro"), None);
        assert_eq!(classify_suite("bookworm-foo"), None);
    }

    #[test]
    fn distro_names() {
        assert_eq!(Distro::parse("debian-13").unwrap(), Distro::Debian13);
        assert_eq!(Distro::parse("bookworm").unwrap(), Distro::Debian12);
        assert!(
            Distro::parse("fedora-40")
                .unwrap_err()
                .to_string()
                .contains("debian-12")
        );
    }
}
