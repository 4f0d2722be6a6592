//! Shared helpers for the integration tests.
#![allow(dead_code)]

use kiln_blueprint::Blueprint;

/// Reads a file from `tests/data`.
pub fn data(name: &str) -> String {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// All TOML blueprints in `tests/data`.
pub fn toml_corpus() -> Vec<(&'static str, String)> {
    ["full.toml", "full-alt.toml", "btrfs.toml"]
        .into_iter()
        .map(|n| (n, data(n)))
        .collect()
}

/// Parses and validates TOML, panicking with the errors on failure.
pub fn valid_toml(src: &str) -> Blueprint {
    Blueprint::from_toml_validated(src).unwrap_or_else(|e| panic!("{e}"))
}
