//! Debian primitives shared by the repository reader and the solver.
//!
//! - [`version`]: dpkg version comparison.
//! - [`control`]: deb822 paragraph reader (Packages, Release, control files).
//! - [`relation`]: `Depends:`-style relation fields.
//! - [`archive`]: reading `.deb` files and unpacking them so that nothing lands outside
//!   the target tree.
//! - [`index`]: the compact, mmap-able binary index of a `Packages` file, so that a warm
//!   start never re-parses text.

pub mod archive;
pub mod control;
pub mod index;
pub mod relation;
pub mod version;

pub use archive::{ArchiveError, DebArchive, UnpackOptions, UnpackedEntry, unpack_deb};
pub use index::{Index, IndexBuilder, IndexError, Package};
