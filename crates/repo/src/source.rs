//! Sources: the resolved [`Source`] the loader reads, the weldr-compatible
//! [`SourceConfig`] users write, and the [`SourceStore`] that keeps user sources on disk.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::distro::Distro;
use crate::error::RepoError;
use crate::util::write_atomic;

/// Where a source's trusted keys come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeySource {
    /// A keyring file: binary (several concatenated keys, like apt's `.gpg`) or armored.
    File(PathBuf),
    /// An armored key block given inline.
    Armored(String),
    /// An `http(s)://` URL of a key (fetched when the source is loaded).
    Url(String),
}

impl KeySource {
    /// Interprets a weldr `gpgkeys` entry: an inline armored key, a URL or an absolute path.
    pub fn parse(entry: &str) -> Result<KeySource, String> {
        let e = entry.trim();
        if e.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----") {
            Ok(KeySource::Armored(e.to_string()))
        } else if let Some(path) = e.strip_prefix("file://") {
            if path.starts_with('/') {
                Ok(KeySource::File(PathBuf::from(path)))
            } else {
                Err(format!(
                    "gpgkeys entry {e:?}: a file:// URL needs an absolute path"
                ))
            }
        } else if e.starts_with("http://") || e.starts_with("https://") {
            Ok(KeySource::Url(e.to_string()))
        } else if e.starts_with('/') {
            Ok(KeySource::File(PathBuf::from(e)))
        } else {
            Err(format!(
                "gpgkeys entry {:?} is neither an armored key block, an http(s):// or file:// URL, nor an absolute path",
                e.chars().take(60).collect::<String>()
            ))
        }
    }

    /// A short description for messages.
    pub fn describe(&self) -> String {
        match self {
            KeySource::File(p) => p.display().to_string(),
            KeySource::Armored(_) => "an inline armored key".to_string(),
            KeySource::Url(u) => u.clone(),
        }
    }
}

/// How the repository is laid out below its URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Layout {
    /// `dists/<suite>/{InRelease,Release}`, `dists/<suite>/<component>/binary-<arch>/Packages*`.
    Dists {
        suite: String,
        components: Vec<String>,
    },
    /// A flat repository (`deb URL sub/`): `Release` and `Packages` in `<URL><path>`;
    /// `path` is `""` for `./`, else ends with `/`.
    Flat { path: String },
}

/// A source resolved for one load: what to fetch and how to verify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub id: String,
    pub name: String,
    /// The repository base URL, always ending with `/`.
    pub url: String,
    pub layout: Layout,
    pub check_gpg: bool,
    pub check_ssl: bool,
    pub keys: Vec<KeySource>,
    /// When not empty, only keys (or subkeys) with these fingerprints (upper-case hex) are
    /// trusted (apt's `Signed-By: <fingerprint>`).
    pub key_fingerprints: Vec<String>,
    pub system: bool,
}

impl Source {
    /// The directory URL that holds `InRelease`/`Release` (ends with `/`).
    pub fn release_dir(&self) -> String {
        match &self.layout {
            Layout::Dists { suite, .. } => format!("{}dists/{}/", self.url, suite),
            Layout::Flat { path } => format!("{}{}", self.url, path),
        }
    }

    /// The base URL that a package's `Filename` is relative to.
    pub fn package_base(&self) -> String {
        match &self.layout {
            Layout::Dists { .. } => self.url.clone(),
            Layout::Flat { path } => format!("{}{}", self.url, path),
        }
    }

    /// A stable identity of what this source fetches (for cache keys).
    pub(crate) fn cache_identity(&self, arch: &str) -> String {
        match &self.layout {
            Layout::Dists { suite, components } => format!(
                "dists\n{}\n{}\n{}\n{}",
                self.url,
                suite,
                components.join(" "),
                arch
            ),
            Layout::Flat { path } => format!("flat\n{}\n{}\n{}", self.url, path, arch),
        }
    }
}

/// Normalises a repository URL: checks the scheme and appends `/`.
pub(crate) fn normalize_url(url: &str) -> Result<String, String> {
    let u = url.trim();
    if u.is_empty() {
        return Err("the url is empty".into());
    }
    if u.chars().any(char::is_whitespace) {
        return Err(format!("the url {u:?} contains whitespace"));
    }
    let ok = u.starts_with("http://") || u.starts_with("https://") || u.starts_with("file:///");
    if !ok {
        return Err(format!(
            "the url {u:?} is not supported: use http://, https:// or file:///"
        ));
    }
    Ok(if u.ends_with('/') {
        u.to_string()
    } else {
        format!("{u}/")
    })
}

/// The `type` of a weldr source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceType {
    /// Accepted for compatibility with composer-cli/cockpit: treated as `deb`.
    #[serde(rename = "yum-baseurl")]
    YumBaseurl,
    /// An apt repository with a `dists/` tree (`deb URL suite components`).
    #[serde(rename = "deb")]
    Deb,
    /// A flat apt repository (`deb URL ./`).
    #[serde(rename = "deb-flat")]
    DebFlat,
}

fn yes() -> bool {
    true
}

/// A source in the weldr `projects/source` format, plus Debian fields.
///
/// - `type`: `deb`, `deb-flat`, or `yum-baseurl` (accepted and treated as `deb`).
/// - `suite`: default `{codename}` (for `deb`, replaced by the distro's codename, e.g.
///   `{codename}-backports`) or `./` (for `deb-flat`; any path ending with `/`).
/// - `components`: default `["main"]`; none for flat repositories.
/// - `check_gpg` (default true) verifies the repository's signed `InRelease`/`Release`
///   against `gpgkeys` (URLs, absolute paths, or inline armored keys). Debian packages are
///   not signed one by one; they are checked by the SHA256 sums of the signed metadata.
/// - `check_repogpg`, `rhsm`, `module_hotfixes`, `proxy` are accepted for compatibility;
///   `check_repogpg = true` also turns verification on, the others are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceConfig {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type")]
    pub kind: SourceType,
    pub url: String,
    #[serde(default = "yes")]
    pub check_gpg: bool,
    #[serde(default = "yes")]
    pub check_ssl: bool,
    #[serde(default, alias = "gpgkey_urls")]
    pub gpgkeys: Vec<String>,
    /// Read-only: true for kiln's built-in distro sources. Ignored on input.
    #[serde(default)]
    pub system: bool,
    /// Distros this source applies to; empty means all.
    #[serde(default)]
    pub distros: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
    #[serde(default)]
    pub check_repogpg: bool,
    #[serde(default)]
    pub rhsm: bool,
    #[serde(default)]
    pub module_hotfixes: bool,
    /// Accepted and ignored (as osbuild-composer does).
    #[serde(default, skip_serializing)]
    pub proxy: Option<String>,
    /// Key restriction carried over from a host `Signed-By: <fingerprint>`; not part of the
    /// weldr format.
    #[serde(skip)]
    pub key_fingerprints: Vec<String>,
}

impl SourceConfig {
    /// Parses a source given as JSON or TOML, either bare (`id = "x"\nurl = ...`) or as one
    /// `[ID]` table (`{"ID": {...}}` in JSON). With the table form, a missing `id` is taken
    /// from the table name; a missing `id` falls back to `name` (weldr v0).
    pub fn parse(text: &str) -> Result<SourceConfig, RepoError> {
        let trimmed = text.trim_start();
        let value: serde_json::Value = if trimmed.starts_with('{') {
            serde_json::from_str(trimmed)
                .map_err(|e| RepoError::invalid(None, format!("invalid JSON: {e}")))?
        } else {
            let table: toml::Table = toml::from_str(text)
                .map_err(|e| RepoError::invalid(None, format!("invalid TOML: {e}")))?;
            serde_json::to_value(table)
                .map_err(|e| RepoError::invalid(None, format!("invalid TOML: {e}")))?
        };
        let serde_json::Value::Object(map) = value else {
            return Err(RepoError::invalid(None, "expected a table/object"));
        };
        let (mut obj, table_id) = if map.contains_key("url") || map.contains_key("type") {
            (map, None)
        } else if map.len() == 1 {
            let Some((k, v)) = map.into_iter().next() else {
                return Err(RepoError::invalid(None, "empty input"));
            };
            match v {
                serde_json::Value::Object(o) => (o, Some(k)),
                _ => {
                    return Err(RepoError::invalid(
                        Some(&k),
                        "expected a table of source fields",
                    ));
                }
            }
        } else if map.is_empty() {
            return Err(RepoError::invalid(None, "empty input"));
        } else {
            return Err(RepoError::invalid(
                None,
                "expected one source (bare fields or a single [ID] table)",
            ));
        };
        if !obj.contains_key("id") {
            if let Some(id) = table_id.clone() {
                obj.insert("id".into(), serde_json::Value::String(id));
            } else if let Some(name) = obj.get("name").cloned() {
                obj.insert("id".into(), name);
            }
        }
        let id_hint = obj
            .get("id")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .or(table_id);
        serde_json::from_value(serde_json::Value::Object(obj))
            .map_err(|e| RepoError::invalid(id_hint.as_deref(), e.to_string()))
    }

    /// Checks and completes a source given by a user: id, url, type-specific defaults,
    /// distros, gpgkeys. `system` is cleared (it is read-only).
    pub fn validated(mut self) -> Result<SourceConfig, RepoError> {
        validate_id(&self.id)?;
        let id = self.id.clone();
        let bad = |m: String| RepoError::invalid(Some(&id), m);
        if self.name.trim().is_empty() {
            self.name = self.id.clone();
        }
        self.url = normalize_url(&self.url).map_err(bad)?;
        self.system = false;
        match self.kind {
            SourceType::DebFlat => {
                let suite = self.suite.get_or_insert_with(|| "./".to_string());
                if !suite.ends_with('/') || suite.starts_with('/') || suite.contains("..") {
                    return Err(bad(format!(
                        "a deb-flat source's suite is a relative path ending with '/' (like \"./\"), not {suite:?}"
                    )));
                }
                if !self.components.is_empty() {
                    return Err(bad("a deb-flat source has no components".into()));
                }
            }
            SourceType::Deb | SourceType::YumBaseurl => {
                let suite = self.suite.get_or_insert_with(|| "{codename}".to_string());
                if suite.is_empty()
                    || suite.ends_with('/')
                    || suite.contains("..")
                    || suite.chars().any(char::is_whitespace)
                {
                    return Err(bad(format!(
                        "invalid suite {suite:?} (a flat repository is type \"deb-flat\")"
                    )));
                }
                if self.components.is_empty() {
                    self.components = vec!["main".to_string()];
                }
                for c in &self.components {
                    if c.is_empty() || c.contains("..") || c.chars().any(char::is_whitespace) {
                        return Err(bad(format!("invalid component {c:?}")));
                    }
                }
            }
        }
        for d in &self.distros {
            Distro::parse(d).map_err(|e| bad(e.to_string()))?;
        }
        for k in &self.gpgkeys {
            KeySource::parse(k).map_err(&bad)?;
        }
        if self.verifies() && self.gpgkeys.is_empty() {
            return Err(RepoError::NoKeys {
                source_id: self.id.clone(),
            });
        }
        Ok(self)
    }

    fn verifies(&self) -> bool {
        self.check_gpg || self.check_repogpg
    }

    /// True when this source applies to `distro` (its `distros` is empty or lists it).
    pub fn applies_to(&self, distro: Distro) -> bool {
        self.distros.is_empty() || self.distros.iter().any(|d| d == distro.name())
    }

    /// Resolves the source for one distro (fills `{codename}` in the suite).
    pub fn to_source(&self, distro: Option<Distro>) -> Result<Source, RepoError> {
        let id = self.id.clone();
        let bad = |m: String| RepoError::invalid(Some(&id), m);
        let url = normalize_url(&self.url).map_err(bad)?;
        let layout = match self.kind {
            SourceType::DebFlat => {
                let p = self.suite.clone().unwrap_or_else(|| "./".into());
                let p = p.trim_start_matches("./").to_string();
                Layout::Flat { path: p }
            }
            SourceType::Deb | SourceType::YumBaseurl => {
                let suite = self.suite.clone().unwrap_or_else(|| "{codename}".into());
                let suite = if suite.contains("{codename}") {
                    let d = distro.ok_or_else(|| {
                        bad(format!(
                            "the suite {suite:?} needs a distro to fill in {{codename}}"
                        ))
                    })?;
                    suite.replace("{codename}", d.codename())
                } else {
                    suite
                };
                let components = if self.components.is_empty() {
                    vec!["main".to_string()]
                } else {
                    self.components.clone()
                };
                Layout::Dists { suite, components }
            }
        };
        let keys = self
            .gpgkeys
            .iter()
            .map(|k| KeySource::parse(k).map_err(&bad))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Source {
            id: self.id.clone(),
            name: if self.name.is_empty() {
                self.id.clone()
            } else {
                self.name.clone()
            },
            url,
            layout,
            check_gpg: self.verifies(),
            check_ssl: self.check_ssl,
            keys,
            key_fingerprints: self.key_fingerprints.clone(),
            system: self.system,
        })
    }
}

/// Checks a source id: `^[A-Za-z0-9._-]+$`, not `.` or `..` (ids name files).
pub fn validate_id(id: &str) -> Result<(), RepoError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(RepoError::InvalidSourceId { id: id.to_string() })
    }
}

/// User sources stored as `<state>/sources/<id>.toml`, plus the read-only system sources.
#[derive(Debug, Clone)]
pub struct SourceStore {
    dir: PathBuf,
    system: Vec<SourceConfig>,
}

impl SourceStore {
    /// `system` are kiln's distro sources (see [`crate::system_source_configs`]); they are
    /// listed with `system = true` and cannot be replaced or deleted.
    pub fn new(state_dir: &Path, system: Vec<SourceConfig>) -> SourceStore {
        let system = system
            .into_iter()
            .map(|mut s| {
                s.system = true;
                s
            })
            .collect();
        SourceStore {
            dir: state_dir.join("sources"),
            system,
        }
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.toml"))
    }

    fn is_system(&self, id: &str) -> bool {
        self.system.iter().any(|s| s.id == id)
    }

    /// Adds or replaces a user source. Returns the stored form.
    pub fn add(&self, source: SourceConfig) -> Result<SourceConfig, RepoError> {
        validate_id(&source.id)?;
        if self.is_system(&source.id) {
            return Err(RepoError::SystemSource { id: source.id });
        }
        let source = source.validated()?;
        let text = toml::to_string(&source)
            .map_err(|e| RepoError::Internal(format!("cannot serialise source: {e}")))?;
        write_atomic(&self.path(&source.id), text.as_bytes())?;
        Ok(source)
    }

    /// The ids of all sources: system sources first, then user sources sorted.
    pub fn list(&self) -> Result<Vec<String>, RepoError> {
        let mut ids: Vec<String> = self.system.iter().map(|s| s.id.clone()).collect();
        ids.extend(self.user_ids()?);
        Ok(ids)
    }

    fn user_ids(&self) -> Result<Vec<String>, RepoError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(RepoError::io(&self.dir, e)),
        };
        let mut ids = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| RepoError::io(&self.dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(id) = name.strip_suffix(".toml")
                && validate_id(id).is_ok()
                && !name.starts_with('.')
            {
                ids.push(id.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// One source by id.
    pub fn info(&self, id: &str) -> Result<SourceConfig, RepoError> {
        if let Some(s) = self.system.iter().find(|s| s.id == id) {
            return Ok(s.clone());
        }
        validate_id(id)?;
        let path = self.path(id);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RepoError::UnknownSource { id: id.to_string() });
            }
            Err(e) => return Err(RepoError::io(&path, e)),
        };
        let mut s: SourceConfig =
            toml::from_str(&text).map_err(|e| RepoError::config(&path, e.to_string()))?;
        s.system = false;
        Ok(s)
    }

    /// All sources, system first.
    pub fn all(&self) -> Result<Vec<SourceConfig>, RepoError> {
        self.list()?.iter().map(|id| self.info(id)).collect()
    }

    /// Deletes a user source.
    pub fn delete(&self, id: &str) -> Result<(), RepoError> {
        if self.is_system(id) {
            return Err(RepoError::SystemSource { id: id.to_string() });
        }
        validate_id(id)?;
        let path = self.path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(RepoError::UnknownSource { id: id.to_string() })
            }
            Err(e) => Err(RepoError::write(&path, e)),
        }
    }

    /// The sources to load for `distro`: system sources, then user sources that apply.
    pub fn sources_for(&self, distro: Distro) -> Result<Vec<Source>, RepoError> {
        self.all()?
            .iter()
            .filter(|s| s.applies_to(distro))
            .map(|s| s.to_source(Some(distro)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

    fn system() -> Vec<SourceConfig> {
        vec![SourceConfig {
            id: "debian".into(),
            name: "Debian".into(),
            kind: SourceType::Deb,
            url: "http://mirror.example/debian".into(),
            check_gpg: true,
            check_ssl: true,
            gpgkeys: vec![KEY.into()],
            system: false,
            distros: vec![],
            suite: Some("{codename}".into()),
            components: vec!["main".into()],
            check_repogpg: false,
            rhsm: false,
            module_hotfixes: false,
            proxy: None,
            key_fingerprints: vec![],
        }]
    }

    #[test]
    fn parse_forms() {
        let bare = format!(
            "id = \"extra\"\nname = \"Extra\"\ntype = \"deb\"\nurl = \"http://repo.example/debian\"\ngpgkeys = [\"{KEY}\"]\nsuite = \"{{codename}}-backports\"\ncomponents = [\"main\", \"contrib\"]\n"
        );
        let a = SourceConfig::parse(&bare).unwrap();
        assert_eq!(a.id, "extra");
        assert!(a.check_gpg && a.check_ssl, "defaults are true");
        let table = format!(
            "[extra]\nname = \"Extra\"\ntype = \"deb\"\nurl = \"http://repo.example/debian\"\ngpgkeys = [\"{KEY}\"]\nsuite = \"{{codename}}-backports\"\ncomponents = [\"main\", \"contrib\"]\n"
        );
        assert_eq!(SourceConfig::parse(&table).unwrap(), a);
        let json = format!(
            r#"{{"id": "extra", "name": "Extra", "type": "deb", "url": "http://repo.example/debian", "gpgkeys": ["{KEY}"], "suite": "{{codename}}-backports", "components": ["main", "contrib"]}}"#
        );
        assert_eq!(SourceConfig::parse(&json).unwrap(), a);
        // weldr v0: keyed by name; lorax's gpgkey_urls; yum-baseurl is accepted.
        let v0 = SourceConfig::parse(
            r#"{"name": "old", "type": "yum-baseurl", "url": "http://repo.example/x", "check_gpg": false, "gpgkey_urls": [], "proxy": "http://proxy.example:3128"}"#,
        )
        .unwrap();
        assert_eq!(v0.id, "old");
        assert_eq!(v0.kind, SourceType::YumBaseurl);
        let s = v0
            .validated()
            .unwrap()
            .to_source(Some(Distro::Debian13))
            .unwrap();
        assert_eq!(
            s.layout,
            Layout::Dists {
                suite: "trixie".into(),
                components: vec!["main".into()]
            }
        );
        assert!(!s.check_gpg);

        let e = SourceConfig::parse(
            "type = \"yum-mirrorlist\"\nurl = \"http://x.example/\"\nid = \"m\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("yum-mirrorlist") && e.contains("\"m\""), "{e}");
        assert!(SourceConfig::parse("[a]\nurl=\"x\"\n[b]\nurl=\"y\"\n").is_err());
        assert!(SourceConfig::parse("{not json").is_err());
        assert!(SourceConfig::parse("url = ").is_err());
    }

    fn cfg(text: &str) -> SourceConfig {
        SourceConfig::parse(text).unwrap()
    }

    #[test]
    fn validation() {
        let ok = format!(
            "id = \"x\"\ntype = \"deb\"\nurl = \"http://repo.example/d\"\ngpgkeys = [\"{KEY}\"]\n"
        );
        let v = cfg(&ok).validated().unwrap();
        assert_eq!(v.url, "http://repo.example/d/");
        assert_eq!(v.name, "x");
        assert_eq!(v.components, vec!["main"]);
        assert_eq!(v.suite.as_deref(), Some("{codename}"));
        for bad_id in ["../etc", "a/b", "", ".", "..", "a b", "é"] {
            let mut c = cfg(&ok);
            c.id = bad_id.into();
            assert!(
                matches!(c.validated(), Err(RepoError::InvalidSourceId { .. })),
                "{bad_id:?}"
            );
        }
        let no_keys = "id = \"x\"\ntype = \"deb\"\nurl = \"http://repo.example/d\"\n";
        let e = cfg(no_keys).validated().unwrap_err();
        assert!(matches!(e, RepoError::NoKeys { .. }), "{e:?}");
        assert!(e.to_string().contains("check_gpg = false"));
        let bad_url = ok.replace("http://repo.example/d", "ftp://repo.example/d");
        assert!(
            cfg(&bad_url)
                .validated()
                .unwrap_err()
                .to_string()
                .contains("ftp://")
        );
        let bad_distro = format!("{ok}distros = [\"fedora-40\"]\n");
        assert!(
            cfg(&bad_distro)
                .validated()
                .unwrap_err()
                .to_string()
                .contains("fedora-40")
        );
        let bad_key = ok.replace(KEY, "relative/key.gpg");
        assert!(cfg(&bad_key).validated().is_err());
        let flat = format!(
            "id = \"f\"\ntype = \"deb-flat\"\nurl = \"http://repo.example/f\"\ngpgkeys = [\"{KEY}\"]\n"
        );
        let f = cfg(&flat).validated().unwrap();
        assert_eq!(f.suite.as_deref(), Some("./"));
        assert_eq!(
            f.to_source(None).unwrap().release_dir(),
            "http://repo.example/f/"
        );
        let sub = cfg(&format!("{flat}suite = \"sub/dir/\"\n"))
            .validated()
            .unwrap();
        assert_eq!(
            sub.to_source(None).unwrap().package_base(),
            "http://repo.example/f/sub/dir/"
        );
        assert!(
            cfg(&format!("{flat}suite = \"../up/\"\n"))
                .validated()
                .is_err()
        );
        assert!(
            cfg(&format!("{flat}suite = \"nodir\"\n"))
                .validated()
                .is_err()
        );
        assert!(
            cfg(&format!("{ok}suite = \"flat/\"\n"))
                .validated()
                .is_err()
        );
        // {codename} needs a distro.
        assert!(cfg(&ok).to_source(None).is_err());
    }

    #[test]
    fn store_crud() {
        let dir = tempfile::tempdir().unwrap();
        let store = SourceStore::new(dir.path(), system());
        assert_eq!(store.list().unwrap(), vec!["debian"]);
        assert!(store.info("debian").unwrap().system);

        let text = format!(
            "id = \"extra\"\ntype = \"deb\"\nurl = \"http://repo.example/debian\"\ngpgkeys = [\"{KEY}\"]\ndistros = [\"debian-13\"]\nsystem = true\n"
        );
        let stored = store.add(cfg(&text)).unwrap();
        assert!(!stored.system, "system is read-only");
        assert!(dir.path().join("sources/extra.toml").is_file());
        assert_eq!(store.list().unwrap(), vec!["debian", "extra"]);
        let info = store.info("extra").unwrap();
        assert_eq!(info, stored);

        // Overwrite.
        let mut changed = info.clone();
        changed.name = "Renamed".into();
        store.add(changed).unwrap();
        assert_eq!(store.info("extra").unwrap().name, "Renamed");

        // System sources cannot be replaced or deleted.
        let mut clash = info.clone();
        clash.id = "debian".into();
        assert!(matches!(
            store.add(clash),
            Err(RepoError::SystemSource { .. })
        ));
        assert!(matches!(
            store.delete("debian"),
            Err(RepoError::SystemSource { .. })
        ));
        // Path traversal is impossible.
        assert!(matches!(
            store.info("../x"),
            Err(RepoError::InvalidSourceId { .. })
        ));
        assert!(matches!(
            store.delete("../x"),
            Err(RepoError::InvalidSourceId { .. })
        ));
        assert!(matches!(
            store.info("nope"),
            Err(RepoError::UnknownSource { .. })
        ));

        // distros filter; {codename} filled in.
        let s12 = store.sources_for(Distro::Debian12).unwrap();
        assert_eq!(s12.len(), 1);
        let s13 = store.sources_for(Distro::Debian13).unwrap();
        assert_eq!(s13.len(), 2);
        assert_eq!(
            s13[1].release_dir(),
            "http://repo.example/debian/dists/trixie/"
        );
        assert!(s13[0].system);

        store.delete("extra").unwrap();
        assert!(matches!(
            store.delete("extra"),
            Err(RepoError::UnknownSource { .. })
        ));
        assert_eq!(store.list().unwrap(), vec!["debian"]);
        // No temp files left.
        assert_eq!(
            std::fs::read_dir(dir.path().join("sources"))
                .unwrap()
                .count(),
            0
        );
    }
}
