//! Path policies for mountpoints and custom files/directories (osbuild `pkg/policies`).
//!
//! A policy maps path prefixes to a rule; the rule of the longest matching prefix (compared by
//! whole path components) decides. They are public because image types apply stricter sets
//! (ostree) on top of the generic ones checked by [`crate::Blueprint::validate`].

/// What a policy entry says about paths under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The path and everything below it is allowed.
    Allow,
    /// Only the exact path is allowed, nothing below it.
    Exact,
    /// The path and everything below it is denied.
    Deny,
}

/// A set of path rules; `/` must be present to allow anything at all.
#[derive(Debug, Clone, Copy)]
pub struct PathPolicies {
    entries: &'static [(&'static str, Rule)],
}

/// Why a path failed a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyViolation {
    /// Not absolute.
    NotAbsolute,
    /// Not canonical; carries the canonical form.
    NotCanonical(String),
    /// Denied by the entry for this prefix.
    Denied(&'static str),
    /// Below a path where only the exact path is allowed.
    ExactOnly(&'static str),
}

impl std::fmt::Display for PolicyViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyViolation::NotAbsolute => f.write_str("must be an absolute path starting with /"),
            PolicyViolation::NotCanonical(c) => {
                write!(f, "is not a canonical path (did you mean {c:?}?)")
            }
            PolicyViolation::Denied(p) if *p == "/" => f.write_str("is not allowed"),
            PolicyViolation::Denied(p) => {
                write!(f, "is not allowed: {p} and paths below it are reserved")
            }
            PolicyViolation::ExactOnly(p) => {
                write!(
                    f,
                    "is not allowed: only {p} itself may be used, not paths below it"
                )
            }
        }
    }
}

impl PathPolicies {
    /// Checks `path` against the policy.
    ///
    /// # Errors
    /// Returns the reason the path is not acceptable.
    pub fn check(&self, path: &str) -> Result<(), PolicyViolation> {
        if !path.starts_with('/') {
            return Err(PolicyViolation::NotAbsolute);
        }
        let clean = clean_path(path);
        if clean != path {
            return Err(PolicyViolation::NotCanonical(clean));
        }
        let mut best: Option<(&'static str, Rule)> = None;
        for (prefix, rule) in self.entries {
            if is_component_prefix(prefix, path) && best.is_none_or(|(b, _)| prefix.len() > b.len())
            {
                best = Some((prefix, *rule));
            }
        }
        match best {
            None => Err(PolicyViolation::Denied("/")),
            Some((_, Rule::Allow)) => Ok(()),
            Some((p, Rule::Deny)) => Err(PolicyViolation::Denied(p)),
            Some((p, Rule::Exact)) if p == path => Ok(()),
            Some((p, Rule::Exact)) => Err(PolicyViolation::ExactOnly(p)),
        }
    }
}

fn is_component_prefix(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    path == prefix || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// Lexical path cleaning like Go's `path.Clean`: collapses `//`, removes `.` and resolves `..`
/// (never above `/` for absolute paths), drops the trailing slash.
pub fn clean_path(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

use Rule::{Allow, Deny, Exact};

/// Mountpoints for `filesystem` and `disk` customizations.
pub const MOUNTPOINTS: PathPolicies = PathPolicies {
    entries: &[
        ("/", Allow),
        ("/etc", Deny),
        ("/usr", Exact),
        ("/sys", Deny),
        ("/proc", Deny),
        ("/dev", Deny),
        ("/run", Deny),
        ("/bin", Deny),
        ("/sbin", Deny),
        ("/lib", Deny),
        ("/lib64", Deny),
        ("/lost+found", Deny),
        ("/sysroot", Deny),
        ("/var/run", Deny),
        ("/var/lock", Deny),
    ],
};

/// Extra mountpoint rules for ostree-based images (applied in addition to [`MOUNTPOINTS`]).
pub const OSTREE_MOUNTPOINTS: PathPolicies = PathPolicies {
    entries: &[
        ("/", Allow),
        ("/home", Deny),
        ("/mnt", Deny),
        ("/opt", Deny),
        ("/ostree", Deny),
        ("/root", Deny),
        ("/srv", Deny),
        ("/var/home", Deny),
        ("/var/mnt", Deny),
        ("/var/opt", Deny),
        ("/var/roothome", Deny),
        ("/var/srv", Deny),
        ("/var/usrlocal", Deny),
    ],
};

/// Paths of `directories` customizations.
pub const CUSTOM_DIRECTORIES: PathPolicies = PathPolicies {
    entries: &[
        ("/", Allow),
        ("/bin", Deny),
        ("/boot", Deny),
        ("/dev", Deny),
        ("/efi", Deny),
        ("/lib", Deny),
        ("/lib64", Deny),
        ("/lost+found", Deny),
        ("/proc", Deny),
        ("/run", Deny),
        ("/sbin", Deny),
        ("/sys", Deny),
        ("/sysroot", Deny),
        ("/tmp", Deny),
        ("/usr", Deny),
        ("/usr/local", Allow),
        ("/var/run", Deny),
        ("/var/tmp", Deny),
    ],
};

/// Paths of `files` customizations.
pub const CUSTOM_FILES: PathPolicies = PathPolicies {
    entries: &[
        ("/", Allow),
        ("/bin", Deny),
        ("/boot", Deny),
        ("/dev", Deny),
        ("/efi", Deny),
        ("/etc/fstab", Deny),
        ("/etc/group", Deny),
        ("/etc/passwd", Deny),
        ("/etc/shadow", Deny),
        ("/lib", Deny),
        ("/lib64", Deny),
        ("/lost+found", Deny),
        ("/proc", Deny),
        ("/run", Deny),
        ("/sbin", Deny),
        ("/sys", Deny),
        ("/sysroot", Deny),
        ("/tmp", Deny),
        ("/usr", Deny),
        ("/usr/local", Allow),
        ("/var/run", Deny),
        ("/var/tmp", Deny),
    ],
};

/// Directories allowed in ostree images (everything else denied).
pub const OSTREE_CUSTOM_DIRECTORIES: PathPolicies = PathPolicies {
    entries: &[("/etc", Allow)],
};

/// Files allowed in ostree images (everything else denied).
pub const OSTREE_CUSTOM_FILES: PathPolicies = PathPolicies {
    entries: &[
        ("/etc", Allow),
        ("/root", Allow),
        ("/usr/local/bin", Allow),
        ("/usr/local/sbin", Allow),
        ("/etc/fstab", Deny),
        ("/etc/group", Deny),
        ("/etc/passwd", Deny),
        ("/etc/shadow", Deny),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean() {
        for (i, o) in [
            ("/", "/"),
            ("//a//b/", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/../a", "/a"),
            ("a/../../b", "../b"),
            ("", "."),
        ] {
            assert_eq!(clean_path(i), o, "{i}");
        }
    }

    #[test]
    fn mountpoints() {
        assert!(MOUNTPOINTS.check("/").is_ok());
        assert!(MOUNTPOINTS.check("/var").is_ok());
        assert!(MOUNTPOINTS.check("/usr").is_ok());
        assert!(MOUNTPOINTS.check("/boot").is_ok());
        assert!(MOUNTPOINTS.check("/etcetera").is_ok());
        assert_eq!(
            MOUNTPOINTS.check("/usr/local"),
            Err(PolicyViolation::ExactOnly("/usr"))
        );
        assert_eq!(
            MOUNTPOINTS.check("/etc/x"),
            Err(PolicyViolation::Denied("/etc"))
        );
        assert_eq!(MOUNTPOINTS.check("var"), Err(PolicyViolation::NotAbsolute));
        assert_eq!(
            MOUNTPOINTS.check("/var/"),
            Err(PolicyViolation::NotCanonical("/var".into()))
        );
    }

    #[test]
    fn files_and_dirs() {
        assert!(CUSTOM_FILES.check("/etc/motd").is_ok());
        assert!(CUSTOM_FILES.check("/usr/local/bin/x").is_ok());
        assert!(CUSTOM_FILES.check("/usr/bin/x").is_err());
        assert!(CUSTOM_FILES.check("/etc/passwd").is_err());
        assert!(CUSTOM_DIRECTORIES.check("/etc/passwd").is_ok());
        assert!(CUSTOM_DIRECTORIES.check("/tmp/x").is_err());
        assert!(OSTREE_CUSTOM_FILES.check("/var/x").is_err());
        assert!(OSTREE_CUSTOM_FILES.check("/etc/x").is_ok());
        assert!(OSTREE_CUSTOM_FILES.check("/etc/shadow").is_err());
    }
}
