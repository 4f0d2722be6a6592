//! The stage catalogue: every stage kind kiln can run, with its implementation version.
//!
//! A version is part of every stage id: bump it whenever a change of the implementation
//! would change the stage's output, so that stored trees made by the old one are not reused.

pub mod archive_tar;
pub mod deb_install;
pub mod hostname;
pub mod tree_normalize;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `(kind, implementation version)` of every stage kind.
pub const CATALOGUE: &[(&str, u32)] = &[
    ("deb.install", 1),
    ("hostname", 1),
    ("tree.normalize", 1),
    ("archive.tar", 1),
];

/// The implementation version of `kind`, `None` when kiln does not know it.
pub fn version(kind: &str) -> Option<u32> {
    CATALOGUE.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v)
}

/// A resolved stage input.
#[derive(Debug, Clone)]
pub enum InputData {
    /// Verified downloads in the store, in the manifest's order.
    Files(Vec<PathBuf>),
    /// Another pipeline's committed tree (read only).
    Tree(PathBuf),
}

/// What a stage gets to run.
pub struct StageContext<'a> {
    /// The tree the stage modifies (a copy of its parent's).
    pub tree: &'a Path,
    pub options: &'a serde_json::Value,
    pub inputs: BTreeMap<String, InputData>,
    /// The pipeline's `SOURCE_DATE_EPOCH`.
    pub source_epoch: Option<u64>,
    /// The `bwrap` binary for sandboxed stages (default: from `PATH`).
    pub bwrap: Option<PathBuf>,
    /// Where a stage's output lines go.
    pub log: &'a mut dyn FnMut(&str),
}

impl StageContext<'_> {
    pub fn option_str(&self, key: &str) -> Result<&str, String> {
        self.options
            .get(key)
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("option {key:?} (a string) is required"))
    }

    pub fn input_tree(&self, name: &str) -> Result<&Path, String> {
        match self.inputs.get(name) {
            Some(InputData::Tree(p)) => Ok(p),
            _ => Err(format!("input {name:?} (a pipeline tree) is required")),
        }
    }

    pub fn input_files(&self, name: &str) -> Result<&[PathBuf], String> {
        match self.inputs.get(name) {
            Some(InputData::Files(f)) => Ok(f),
            _ => Err(format!("input {name:?} (sources) is required")),
        }
    }
}

/// Runs one stage. The error is a message for people.
pub fn run(kind: &str, ctx: &mut StageContext<'_>) -> Result<(), String> {
    match kind {
        "deb.install" => deb_install::run(ctx),
        "hostname" => hostname::run(ctx),
        "tree.normalize" => tree_normalize::run(ctx),
        "archive.tar" => archive_tar::run(ctx),
        _ => Err(format!("unknown stage kind {kind:?}")),
    }
}
