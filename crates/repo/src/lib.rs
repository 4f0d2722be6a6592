//! Package sources for kiln.
//!
//! - [`apt`]: the host's apt sources (`sources.list`, `*.list`, deb822 `*.sources`).
//! - [`distro`]: distros (`debian-12`, `debian-13`), kiln's configuration file
//!   (`[mirrors]`, `[keyrings]`) and the choice of Debian mirrors:
//!   [`distro_sources`], [`system_source_configs`].
//! - [`source`]: resolved [`Source`]s, weldr-format [`SourceConfig`]s and the
//!   [`SourceStore`] of user sources.
//! - [`openpgp`]: verification of `InRelease` / `Release.gpg` with a policy (expiry,
//!   revocation, weak hashes).
//! - [`cache`]: [`MetadataCache::load`], which fetches, verifies and indexes repository
//!   metadata into a [`Universe`] of `kiln_deb::Index`es, with an on-disk cache that
//!   several processes may share. Warm loads request `InRelease` conditionally and reuse
//!   the verification of an unchanged one; transient download errors are retried (3
//!   attempts, backoff from 200 ms); [`LoadOptions::progress`] reports downloads and
//!   index builds.
//!
//! No mirror host name is built in: mirrors come from the host's apt configuration or
//! from kiln's configuration file.
//!
//! # Configuration
//!
//! kiln.toml (`$KILN_CONFIG`, `$XDG_CONFIG_HOME/kiln/kiln.toml`, `/etc/kiln/kiln.toml`):
//!
//! ```toml
//! [mirrors]
//! debian = "http://<mirror>/debian"                   # <codename>, <codename>-updates
//! debian-security = "http://<mirror>/debian-security" # <codename>-security
//! [keyrings]                                          # optional
//! debian = "/usr/share/keyrings/debian-archive-keyring.gpg"
//! debian-security = "/usr/share/keyrings/debian-archive-keyring.gpg"
//! ```
//!
//! Without `[mirrors]`, the first host apt source whose suites are Debian ones
//! (`bookworm`, `trixie-updates`, `bookworm-security`, ...) gives the base URL and its
//! `Signed-By` the keyring, so a `debian-13` build on a Debian 12 host uses the host's
//! mirror with the trixie suites.
//!
//! # Typical use
//!
//! ```no_run
//! # async fn f() -> Result<(), kiln_repo::RepoError> {
//! use kiln_repo::*;
//! let host = HostConfig::load(std::path::Path::new("/etc/apt"), None)?;
//! let store = SourceStore::new("/var/lib/kiln".as_ref(), system_source_configs(&host)?);
//! let sources = store.sources_for(Distro::Debian12)?; // system + matching user sources
//! let cache = MetadataCache::new("/var/cache/kiln/repo-cache");
//! let universe = cache.load(&sources, "amd64", &LoadOptions::default()).await?;
//! for w in &universe.warnings {
//!     eprintln!("warning: {w}");
//! }
//! # Ok(()) }
//! ```

pub mod apt;
pub mod cache;
pub mod distro;
pub mod error;
mod fetch;
pub mod openpgp;
pub mod release;
pub mod source;
mod util;

pub use apt::{AptSource, SignedBy, SystemSources};
pub use cache::{
    LoadOptions, LoadStats, LoadedRepo, MetadataCache, ProgressEvent, ProgressFn, Universe,
};
pub use distro::{
    DEFAULT_DEBIAN_KEYRING, Distro, HostConfig, KilnConfig, Mirror, distro_sources,
    system_source_configs,
};
pub use error::RepoError;
pub use release::ReleaseInfo;
pub use source::{KeySource, Layout, Source, SourceConfig, SourceStore, SourceType, validate_id};
