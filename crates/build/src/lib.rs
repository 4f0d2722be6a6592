//! kiln-build: the stages that turn packages into a tree.
//!
//! - [`debinstall`]: installs a dependency-closed set of `.deb` files into an empty tree,
//!   without apt and without the host's dpkg (the tree's own dpkg configures it, in the
//!   sandbox).
//! - [`normalize`]: removes the known non-reproducible noise from a tree and clamps mtimes
//!   to `SOURCE_DATE_EPOCH`.
//! - [`executor`]: builds a manifest with a store (resume from the longest stored prefix,
//!   commit every stage, export files), reporting [`events::Event`]s.
//! - [`stages`]: the stage catalogue (`deb.install`, `hostname`, `tree.normalize`,
//!   `archive.tar`).

pub mod debinstall;
pub mod events;
pub mod executor;
pub mod fetch;
pub mod gpt;
pub mod lvm;
pub mod normalize;
pub mod sparse;
pub mod stages;

pub use debinstall::{InstallError, InstallOptions, InstallReport, install};
pub use executor::{BuildError, BuildOptions, BuildReport, EventSink, StageStatus, build};
pub use normalize::{NormalizeError, normalize};
