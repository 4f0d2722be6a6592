//! kiln-build: the stages that turn packages into a tree.
//!
//! - [`debinstall`]: installs a dependency-closed set of `.deb` files into an empty tree,
//!   without apt and without the host's dpkg (the tree's own dpkg configures it, in the
//!   sandbox).
//! - [`normalize`]: removes the known non-reproducible noise from a tree and clamps mtimes
//!   to `SOURCE_DATE_EPOCH`.

pub mod debinstall;
pub mod normalize;

pub use debinstall::{InstallError, InstallOptions, InstallReport, install};
pub use normalize::{NormalizeError, normalize};
