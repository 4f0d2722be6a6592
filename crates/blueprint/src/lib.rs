//! Blueprints for kiln: the osbuild/Image Builder blueprint format (TOML, and JSON as the weldr
//! API sends it), parsed strictly, validated with messages that say how to fix the problem,
//! written back out losslessly, with user passwords hashed before storage.
//!
//! ```
//! use kiln_blueprint::Blueprint;
//!
//! let bp = Blueprint::from_toml_validated(r#"
//! name = "web"
//! version = "1.0.0"
//!
//! [[packages]]
//! name = "nginx"
//! "#).unwrap();
//! assert_eq!(bp.package_specs(), vec![("nginx", None)]);
//! ```

mod error;
mod model;
mod parse;
pub mod password;
pub mod policy;
mod size;
mod validate;

#[doc(hidden)]
pub mod fuzzing;

pub use error::{BlueprintError, BlueprintErrors, Location};
pub use model::*;
pub use size::{MAX_SIZE, Size, SizeRepr};

impl Blueprint {
    /// Parses TOML strictly: unknown keys, wrong types and missing required fields are errors
    /// naming the line, column and field path. Does not run [`Blueprint::validate`].
    ///
    /// # Errors
    /// [`BlueprintError::Parse`].
    pub fn from_toml(src: &str) -> Result<Blueprint, BlueprintError> {
        parse::from_toml(src)
    }

    /// Parses JSON (the weldr API body) strictly, like [`Blueprint::from_toml`].
    ///
    /// # Errors
    /// [`BlueprintError::Parse`].
    pub fn from_json(src: &str) -> Result<Blueprint, BlueprintError> {
        parse::from_json(src)
    }

    /// Parses and validates TOML; validation errors carry the line of the offending field.
    ///
    /// # Errors
    /// One parse error, or every validation problem.
    pub fn from_toml_validated(src: &str) -> Result<Blueprint, BlueprintErrors> {
        let bp = Blueprint::from_toml(src)?;
        let problems = validate::check(&bp);
        if problems.is_empty() {
            return Ok(bp);
        }
        Err(BlueprintErrors::new(
            problems
                .into_iter()
                .map(|p| BlueprintError::Invalid {
                    path: parse::format_path(&p.segs),
                    location: parse::locate_toml(src, &p.segs),
                    message: p.message,
                })
                .collect(),
        ))
    }

    /// Parses and validates JSON (errors carry the field path).
    ///
    /// # Errors
    /// One parse error, or every validation problem.
    pub fn from_json_validated(src: &str) -> Result<Blueprint, BlueprintErrors> {
        let bp = Blueprint::from_json(src)?;
        bp.validate()?;
        Ok(bp)
    }

    /// Checks every rule of the blueprint format (names, versions, sizes, path policies, disk
    /// layout, mutually exclusive customizations, ...) and reports all problems at once.
    ///
    /// # Errors
    /// Every [`BlueprintError::Invalid`] found, in a stable order.
    pub fn validate(&self) -> Result<(), BlueprintErrors> {
        let problems = validate::check(self);
        if problems.is_empty() {
            return Ok(());
        }
        Err(BlueprintErrors::new(
            problems
                .into_iter()
                .map(|p| BlueprintError::Invalid {
                    path: parse::format_path(&p.segs),
                    location: None,
                    message: p.message,
                })
                .collect(),
        ))
    }

    /// Writes the blueprint as TOML, keys in osbuild's order.
    ///
    /// # Errors
    /// [`BlueprintError::Serialize`] (not expected for parsed blueprints).
    pub fn to_toml(&self) -> Result<String, BlueprintError> {
        toml::to_string(self).map_err(|e| BlueprintError::Serialize {
            format: "TOML",
            message: e.to_string(),
        })
    }

    /// Writes the blueprint as pretty-printed JSON.
    ///
    /// # Errors
    /// [`BlueprintError::Serialize`] (not expected for parsed blueprints).
    pub fn to_json(&self) -> Result<String, BlueprintError> {
        serde_json::to_string_pretty(self).map_err(|e| BlueprintError::Serialize {
            format: "JSON",
            message: e.to_string(),
        })
    }

    /// Replaces plain-text user passwords with SHA-512 crypt hashes (`$6$`, random 16-character
    /// salt, 5000 rounds). Existing `$6$`, `$5$`, `$2b$` and `$y$` hashes are kept; an empty
    /// password becomes no password at all, as in osbuild.
    ///
    /// # Errors
    /// [`BlueprintError::Password`] if the system random number generator fails.
    pub fn hash_passwords(&mut self) -> Result<(), BlueprintError> {
        let Some(cust) = self.customizations.as_mut() else {
            return Ok(());
        };
        for (i, user) in cust.user.iter_mut().enumerate() {
            match user.password.as_deref() {
                None => {}
                Some("") => user.password = None,
                Some(p) if password::is_crypted(p) => {}
                Some(p) => {
                    let hashed =
                        password::sha512_crypt(p).map_err(|message| BlueprintError::Password {
                            path: format!("customizations.user[{i}].password"),
                            message,
                        })?;
                    user.password = Some(hashed);
                }
            }
        }
        Ok(())
    }

    /// Packages and legacy modules as `(name, version glob)`; `None` means any version (the
    /// blueprint had no version, `""` or `"*"`).
    pub fn package_specs(&self) -> Vec<(&str, Option<&str>)> {
        self.packages
            .iter()
            .chain(&self.modules)
            .map(|p| {
                let v = p.version.as_deref().filter(|v| !v.is_empty() && *v != "*");
                (p.name.as_str(), v)
            })
            .collect()
    }

    /// Sets the version to store on push, given the version of the previous commit.
    ///
    /// Rules (§1.4): if a previous version exists and the new version is empty or equal to it,
    /// the previous one gets a patch bump (`1.2.3` → `1.2.4`, pre-release and build metadata
    /// dropped); otherwise the new version is kept. Choice documented here: an empty version
    /// after `1.2.3` becomes `1.2.4` (lorax's rule; osbuild-composer's code path would store
    /// `0.0.0`), and a first push without a version is stored as `0.0.1`. A previous version
    /// that is not semver is treated as absent.
    pub fn bump_version(&mut self, old: Option<&str>) {
        let new = self.version.as_deref().unwrap_or("");
        let old = old.and_then(|o| semver::Version::parse(o).ok());
        let bumped = match old {
            Some(o) if new.is_empty() || semver::Version::parse(new).is_ok_and(|n| n == o) => {
                Some(semver::Version::new(o.major, o.minor, o.patch.saturating_add(1)).to_string())
            }
            Some(_) => None,
            None if new.is_empty() => Some("0.0.1".to_owned()),
            None => None,
        };
        if let Some(v) = bumped {
            self.version = Some(v);
        }
    }

    /// Users to create: legacy `sshkey` entries first (as users with only a key), then `user`
    /// entries; trailing `/` removed from home directories (osbuild's `GetUsers`).
    pub fn effective_users(&self) -> Vec<UserCustomization> {
        let Some(c) = &self.customizations else {
            return Vec::new();
        };
        c.sshkey
            .iter()
            .map(|k| UserCustomization {
                name: k.user.clone(),
                key: Some(k.key.clone()),
                ..UserCustomization::default()
            })
            .chain(c.user.iter().cloned())
            .map(|mut u| {
                if let Some(h) = &u.home {
                    let trimmed = h.trim_end_matches('/');
                    u.home = Some(if trimmed.is_empty() && !h.is_empty() {
                        "/".to_owned()
                    } else {
                        trimmed.to_owned()
                    });
                }
                u
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_version(v: Option<&str>) -> Blueprint {
        Blueprint {
            name: "x".into(),
            version: v.map(str::to_owned),
            ..Blueprint::default()
        }
    }

    #[test]
    fn bump_rules() {
        let cases: &[(Option<&str>, Option<&str>, &str)] = &[
            (Some("1.2.3"), Some("1.2.3"), "1.2.4"),
            (Some(""), Some("1.2.3"), "1.2.4"),
            (None, Some("1.2.3"), "1.2.4"),
            (Some("2.0.0"), Some("1.2.3"), "2.0.0"),
            (Some("1.0.0"), Some("1.2.3"), "1.0.0"),
            (None, None, "0.0.1"),
            (Some("0.3.0"), None, "0.3.0"),
            (Some("1.2.3-rc.1"), Some("1.2.3-rc.1"), "1.2.4"),
            (None, Some("not-semver"), "0.0.1"),
            (Some("0.5.0"), Some("garbage"), "0.5.0"),
        ];
        for (new, old, want) in cases {
            let mut bp = with_version(*new);
            bp.bump_version(*old);
            assert_eq!(
                bp.version.as_deref(),
                Some(*want),
                "new {new:?} old {old:?}"
            );
        }
    }

    #[test]
    fn package_specs_normalise_any() {
        let bp = Blueprint::from_toml(
            r#"
name = "x"
[[packages]]
name = "a"
[[packages]]
name = "b"
version = "*"
[[packages]]
name = "c"
version = ""
[[packages]]
name = "d"
version = "2.4.*"
[[modules]]
name = "e"
version = "1"
"#,
        )
        .unwrap();
        assert_eq!(
            bp.package_specs(),
            vec![
                ("a", None),
                ("b", None),
                ("c", None),
                ("d", Some("2.4.*")),
                ("e", Some("1"))
            ]
        );
    }

    #[test]
    fn effective_users_merge_sshkeys() {
        let bp = Blueprint::from_toml(
            r#"
name = "x"
[[customizations.sshkey]]
user = "root"
key = "ssh-ed25519 AAA"
[[customizations.user]]
name = "alice"
home = "/home/alice/"
"#,
        )
        .unwrap();
        let users = bp.effective_users();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].name, "root");
        assert_eq!(users[0].key.as_deref(), Some("ssh-ed25519 AAA"));
        assert_eq!(users[1].home.as_deref(), Some("/home/alice"));
    }
}
