//! Loads the real Debian archive through the host's configured apt mirror.
//! Ignored by default (network, ~20 MB):
//!
//! ```sh
//! cargo test -p kiln-repo --release --test real_archive -- --ignored --nocapture
//! ```
//!
//! `KILN_TEST_DISTRO` (default `debian-12`) picks the distro; `KILN_TEST_CACHE` keeps the
//! cache in a given directory instead of a temporary one.

use std::path::Path;
use std::time::Instant;

use kiln_repo::{Distro, HostConfig, LoadOptions, MetadataCache, distro_sources};

const WARM_RUNS: usize = 7;

#[test]
#[ignore = "downloads the real archive from the host's configured mirror"]
fn real_archive_cold_and_warm() {
    let distro =
        Distro::parse(&std::env::var("KILN_TEST_DISTRO").unwrap_or_else(|_| "debian-12".into()))
            .unwrap();
    let host = HostConfig::load(Path::new("/etc/apt"), None).unwrap();
    let sources = distro_sources(distro, "amd64", &host).unwrap();
    for s in &sources {
        eprintln!("source {}: {} {:?}", s.id, s.url, s.layout);
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("KILN_TEST_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let cache = MetadataCache::new(&dir);
    let opts = LoadOptions::default();

    let t = Instant::now();
    let cold = cache.load_blocking(&sources, "amd64", &opts).unwrap();
    let cold_time = t.elapsed();
    for r in &cold.repos {
        eprintln!(
            "  {} {}: {} packages (signed by {:?})",
            r.source_id,
            r.packages_path,
            r.index.len(),
            r.release_info.signed_by
        );
    }
    let total = cold.package_count();
    drop(cold);

    // Warm loads: nothing changed upstream (within seconds), so each one is a conditional
    // InRelease request per source and the cached indexes.
    let mut times = Vec::new();
    for _ in 0..WARM_RUNS {
        let t = Instant::now();
        let warm = cache.load_blocking(&sources, "amd64", &opts).unwrap();
        times.push(t.elapsed());
        assert_eq!(warm.package_count(), total);
        assert!(warm.warnings.is_empty(), "{:?}", warm.warnings);
        eprintln!("  warm load {:?}: {:?}", t.elapsed(), warm.stats);
        assert_eq!(warm.stats.indexes_built, 0);
    }
    times.sort();
    let warm = cache.load_blocking(&sources, "amd64", &opts).unwrap();
    assert!(total > 60_000, "{total} packages");
    let libc = warm
        .repos
        .iter()
        .flat_map(|r| r.index.iter())
        .find(|p| p.name() == "libc6")
        .expect("libc6");
    assert!(libc.filename().starts_with("pool/main/g/glibc/"));
    eprintln!(
        "{distro}: {total} packages; first load {cold_time:?}, warm loads: min {:?}, median {:?}, max {:?}",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );
}
