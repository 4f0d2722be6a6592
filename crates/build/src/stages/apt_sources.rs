//! `apt.sources`: package repositories configured in the image, as deb822 files. Options:
//!
//! ```json
//! {"sources": [{"filename": "extra", "name": "Extra packages", "enabled": true,
//!               "trusted": false,
//!               "stanzas": [{"uris": ["https://repo.example/debian/"],
//!                            "suites": ["bookworm"], "components": ["main"]}],
//!               "keys": ["-----BEGIN PGP PUBLIC KEY BLOCK-----\n..."]}]}
//! ```
//!
//! Each source becomes `/etc/apt/sources.list.d/<filename>.sources`: a `# name` comment,
//! then one stanza per entry of `stanzas` (`Types: deb`, `URIs`, `Suites`, `Components`
//! unless a suite is a flat-repository path ending in `/`, `Enabled: no` when disabled,
//! `Trusted: yes` when trusted, `Signed-By:` the key files). Each armored key is written to
//! `/etc/apt/keyrings/<filename>-<n>.asc` (n from 1, 0644). The stage does not fetch
//! anything: these sources are for the running system.

use serde::Deserialize;

use super::StageContext;
use super::treefs::{self, Meta, Tree};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    sources: Vec<Source>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Source {
    filename: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    trusted: bool,
    stanzas: Vec<Stanza>,
    #[serde(default)]
    keys: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stanza {
    uris: Vec<String>,
    suites: Vec<String>,
    #[serde(default)]
    components: Vec<String>,
}

fn yes() -> bool {
    true
}

fn word_list(what: &str, v: &[String]) -> Result<String, String> {
    if v.is_empty() {
        return Err(format!("apt source: no {what}"));
    }
    for w in v {
        if w.is_empty() || w.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("apt source: invalid {what} entry {w:?}"));
        }
    }
    Ok(v.join(" "))
}

fn check_key(key: &str) -> Result<(), String> {
    let t = key.trim();
    if !t.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----")
        || !t.ends_with("-----END PGP PUBLIC KEY BLOCK-----")
        || t.matches("-----BEGIN").count() != 1
    {
        return Err(
            "an apt key must be one ASCII-armored OpenPGP public key block (-----BEGIN PGP PUBLIC KEY BLOCK----- ... -----END PGP PUBLIC KEY BLOCK-----)"
                .into(),
        );
    }
    Ok(())
}

/// The `.sources` text of `s` (`key_paths`: its keyring files).
fn render(s: &Source, key_paths: &[String]) -> Result<String, String> {
    let mut text = format!(
        "# Written by kiln from the blueprint's repository {:?}.\n",
        s.filename
    );
    if let Some(n) = &s.name {
        if n.contains(['\n', '\r']) {
            return Err(format!(
                "apt source {}: the name must be one line",
                s.filename
            ));
        }
        text.push_str(&format!("# {n}\n"));
    }
    if s.stanzas.is_empty() {
        return Err(format!("apt source {}: no URIs", s.filename));
    }
    for st in &s.stanzas {
        text.push('\n');
        for u in &st.uris {
            if !u.contains("://") {
                return Err(format!("apt source {}: {u:?} is not a URI", s.filename));
            }
        }
        text.push_str("Types: deb\n");
        text.push_str(&format!("URIs: {}\n", word_list("URIs", &st.uris)?));
        text.push_str(&format!("Suites: {}\n", word_list("suites", &st.suites)?));
        let flat = st.suites.iter().all(|x| x.ends_with('/'));
        if flat != st.suites.iter().any(|x| x.ends_with('/')) {
            return Err(format!(
                "apt source {}: flat (\"./\") and dists suites cannot be mixed in one stanza",
                s.filename
            ));
        }
        if flat {
            if !st.components.is_empty() {
                return Err(format!(
                    "apt source {}: a flat repository has no components",
                    s.filename
                ));
            }
        } else {
            text.push_str(&format!(
                "Components: {}\n",
                word_list("components", &st.components)?
            ));
        }
        if !s.enabled {
            text.push_str("Enabled: no\n");
        }
        if s.trusted {
            text.push_str("Trusted: yes\n");
        }
        if !key_paths.is_empty() {
            text.push_str(&format!("Signed-By: {}\n", key_paths.join(",")));
        }
    }
    Ok(text)
}

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let opts: Options = treefs::options("apt.sources", ctx)?;
    let tree = Tree::open(ctx.tree)?;
    let mut seen = std::collections::BTreeSet::new();
    for s in &opts.sources {
        let f = &s.filename;
        if f.is_empty()
            || f.len() > 200
            || f.starts_with('.')
            || !f
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        {
            return Err(format!(
                "invalid apt source file name {f:?}: letters, digits, '_', '.' and '-' only"
            ));
        }
        if !seen.insert(f.clone()) {
            return Err(format!("apt source {f} is given twice"));
        }
        if s.trusted && !s.keys.is_empty() {
            return Err(format!(
                "apt source {f}: keys are given but signature checks are off"
            ));
        }
        let mut key_paths = Vec::new();
        for (i, key) in s.keys.iter().enumerate() {
            check_key(key).map_err(|e| format!("apt source {f}, key {}: {e}", i + 1))?;
            key_paths.push(format!("/etc/apt/keyrings/{f}-{}.asc", i + 1));
        }
        let text = render(s, &key_paths)?;
        for (key, path) in s.keys.iter().zip(&key_paths) {
            let mut k = key.trim().to_owned();
            k.push('\n');
            tree.write(path, k.as_bytes(), Meta::root(0o644))?;
        }
        let path = format!("/etc/apt/sources.list.d/{f}.sources");
        tree.write(&path, text.as_bytes(), Meta::root(0o644))?;
        (ctx.log)(&format!("wrote {path} ({} key(s))", key_paths.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_deb822() {
        let s = Source {
            filename: "x".into(),
            name: Some("X repo".into()),
            enabled: false,
            trusted: false,
            stanzas: vec![
                Stanza {
                    uris: vec!["http://a/debian/".into()],
                    suites: vec!["bookworm".into()],
                    components: vec!["main".into(), "contrib".into()],
                },
                Stanza {
                    uris: vec!["http://b/flat/".into()],
                    suites: vec!["./".into()],
                    components: vec![],
                },
            ],
            keys: vec![],
        };
        let t = render(&s, &["/etc/apt/keyrings/x-1.asc".into()]).unwrap();
        assert_eq!(
            t,
            "# Written by kiln from the blueprint's repository \"x\".\n# X repo\n\n\
             Types: deb\nURIs: http://a/debian/\nSuites: bookworm\nComponents: main contrib\n\
             Enabled: no\nSigned-By: /etc/apt/keyrings/x-1.asc\n\n\
             Types: deb\nURIs: http://b/flat/\nSuites: ./\nEnabled: no\n\
             Signed-By: /etc/apt/keyrings/x-1.asc\n"
        );
        assert!(
            check_key(
                "-----BEGIN PGP PUBLIC KEY BLOCK-----\nabc\n-----END PGP PUBLIC KEY BLOCK-----\n"
            )
            .is_ok()
        );
        assert!(check_key("https://x/key.asc").is_err());
    }
}
