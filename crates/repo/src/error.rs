//! The error type of `kiln-repo`. Every message names the source, the URL or file and,
//! where there is one, the way to fix the problem.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum RepoError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A syntax or value error in an apt sources file or in kiln's configuration file.
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },

    /// A source definition (weldr `projects/source/new` input or a stored file) is invalid.
    #[error("invalid source{}: {message}", id.as_deref().map(|i| format!(" {i:?}")).unwrap_or_default())]
    InvalidSource { id: Option<String>, message: String },

    #[error(
        "invalid source id {id:?}: an id may only contain letters, digits, '.', '_' and '-' (and must not be '.' or '..')"
    )]
    InvalidSourceId { id: String },

    #[error("source {id:?} is a system source and cannot be changed or deleted")]
    SystemSource { id: String },

    #[error("unknown source {id:?}")]
    UnknownSource { id: String },

    #[error("unknown distro {name:?}: kiln knows {known}")]
    UnknownDistro { name: String, known: String },

    /// No Debian mirror could be determined for a distro.
    #[error(
        "no {what} mirror is configured for {distro}: {detail}. Set it in kiln's configuration file ({config}), e.g.\n  [mirrors]\n  debian = \"http://<your mirror>/debian\"\n  debian-security = \"http://<your mirror>/debian-security\"\nor add a Debian source to the host's apt configuration (/etc/apt/sources.list.d/*.sources)"
    )]
    NoMirror {
        distro: String,
        what: &'static str,
        detail: String,
        config: String,
    },

    /// A network or protocol error while fetching a URL.
    #[error("source {source_id}: cannot fetch {url}: {message}{}", attempts_note(*attempts))]
    Fetch {
        source_id: String,
        url: String,
        message: String,
        /// How many times the download was tried (transient errors are retried).
        attempts: u32,
    },

    #[error("source {source_id}: {url} answered HTTP {status}{}", attempts_note(*attempts))]
    HttpStatus {
        source_id: String,
        url: String,
        status: u16,
        /// How many times the download was tried (HTTP 5xx is retried).
        attempts: u32,
    },

    /// The repository has neither `InRelease` nor `Release` + `Release.gpg`.
    #[error(
        "source {source_id}: the repository is not signed ({detail}); fix the repository, or set check_gpg = false for source {source_id} to skip verification"
    )]
    Unsigned {
        source_id: String,
        url: String,
        detail: String,
    },

    /// Signatures exist, but none of them is by a key of the source's keyrings.
    #[error(
        "source {source_id}: {url} is signed by unknown key(s) {}; add the repository's key to gpgkeys (or Signed-By) of source {source_id}; keyrings searched: {}",
        key_ids.join(", "), if keyrings.is_empty() { "none".to_string() } else { keyrings.join(", ") }
    )]
    UnknownKey {
        source_id: String,
        url: String,
        key_ids: Vec<String>,
        keyrings: Vec<String>,
    },

    /// Signatures by trusted keys exist, but none is acceptable (bad, expired, revoked, weak).
    #[error(
        "source {source_id}: the signature of {url} is not acceptable: {}",
        reasons.join("; ")
    )]
    BadSignature {
        source_id: String,
        url: String,
        reasons: Vec<String>,
    },

    /// A keyring or key could not be read.
    #[error("source {source_id}: cannot use key {key}: {message}")]
    Key {
        source_id: String,
        key: String,
        message: String,
    },

    /// `check_gpg` is on but no key is configured.
    #[error(
        "source {source_id} requires a GPG check but has no keys configured; add the repository's key to gpgkeys, or set check_gpg = false to skip verification"
    )]
    NoKeys { source_id: String },

    #[error(
        "source {source_id}: {url} expired on {valid_until} (Valid-Until); the mirror is stale or the clock is wrong"
    )]
    ReleaseExpired {
        source_id: String,
        url: String,
        valid_until: String,
    },

    /// The Release file's `Date` is more than a day after now (apt: "Release file ... is
    /// not valid yet").
    #[error(
        "source {source_id}: the Release file {url} is not valid yet (invalid for another {remaining}): its Date is {date}; the clock is wrong or the mirror is broken"
    )]
    ReleaseNotYetValid {
        source_id: String,
        url: String,
        date: String,
        /// How long until the file becomes valid, e.g. `2d 3h 10min`.
        remaining: String,
    },

    /// The Release file is malformed or lacks what kiln needs.
    #[error("source {source_id}: {url}: {message}")]
    Release {
        source_id: String,
        url: String,
        message: String,
    },

    #[error(
        "source {source_id}: {url} does not match the Release file: expected {expected}, got {actual}"
    )]
    Mismatch {
        source_id: String,
        url: String,
        expected: String,
        actual: String,
    },

    #[error("source {source_id}: cannot decompress {url}: {message}")]
    Decompress {
        source_id: String,
        url: String,
        message: String,
    },

    #[error("source {source_id}: {url}: {source}")]
    Index {
        source_id: String,
        url: String,
        #[source]
        source: kiln_deb::IndexError,
    },

    #[error("source {source_id}: no Packages file for {what} is listed in {url}")]
    NoPackages {
        source_id: String,
        url: String,
        what: String,
    },

    #[error("internal error: {0}")]
    Internal(String),
}

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (gave up after {attempts} attempts)")
    } else {
        String::new()
    }
}

impl RepoError {
    /// Records how many attempts a download error took.
    pub(crate) fn with_attempts(mut self, n: u32) -> Self {
        if let RepoError::Fetch { attempts, .. } | RepoError::HttpStatus { attempts, .. } =
            &mut self
        {
            *attempts = n;
        }
        self
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RepoError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RepoError::Write {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn config(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        RepoError::Config {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn invalid(id: Option<&str>, message: impl Into<String>) -> Self {
        RepoError::InvalidSource {
            id: id.map(str::to_string),
            message: message.into(),
        }
    }

    /// True for errors that mean "the mirror could not be reached" (as opposed to "the
    /// mirror answered something wrong"): the offline fallback applies only to these.
    pub fn is_network(&self) -> bool {
        matches!(self, RepoError::Fetch { .. })
            || matches!(self, RepoError::HttpStatus { status, .. } if *status >= 500)
    }
}
