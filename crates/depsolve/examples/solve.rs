//! Times the solver on real metadata.
//!
//! ```text
//! cargo run --release -p kiln-depsolve --example solve -- [--runs N] [--recommends] \
//!     [--index FILE]... PKG...
//! ```
//!
//! `--index` takes a `Packages` file (plain or `.lz4`) or a kiln binary index (`.idx`,
//! memory-mapped), highest precedence first. Without it, the host's Debian bookworm apt
//! lists are used; they are converted once to kiln indexes under the temp directory so
//! that later runs map them like production does. Without packages, a 150-package
//! server/desktop request is timed.

use kiln_deb::{Index, IndexBuilder};
use kiln_depsolve::{PackageSpec, Request, Universe};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The host's apt lists to load, found by suite (apt names them after the mirror).
const HOST_SUITES: [&str; 3] = ["bookworm", "bookworm-updates", "bookworm-security"];

fn host_list(suite: &str) -> Option<String> {
    let suffix = format!("_dists_{suite}_main_binary-amd64_Packages");
    let mut found: Vec<String> = std::fs::read_dir("/var/lib/apt/lists")
        .ok()?
        .filter_map(|e| e.ok()?.path().to_str().map(str::to_string))
        .filter(|p| {
            let p = p.strip_suffix(".lz4").unwrap_or(p);
            p.ends_with(&suffix)
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

const DEFAULT_REQUEST: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "linux-image-amd64",
    "grub-pc",
    "network-manager",
    "cron",
    "rsyslog",
    "sudo",
    "curl",
    "ca-certificates",
    "vim",
];

fn load(path: &Path) -> Index {
    if path.extension().is_some_and(|e| e == "idx") {
        return Index::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    // The cache is keyed by the source file's name, size and modification time.
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let cached = std::env::temp_dir().join(format!(
        "kiln-solve-{}-{}-{mtime}.idx",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("index"),
        meta.len()
    ));
    if let Ok(idx) = Index::open(&cached) {
        return idx;
    }
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = if path.extension().is_some_and(|e| e == "lz4") {
        let mut out = Vec::new();
        lz4_flex::frame::FrameDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .expect("lz4");
        out
    } else {
        raw
    };
    let mut b = IndexBuilder::new();
    b.add_packages(&text).expect("parse Packages");
    let tmp = cached.with_extension("tmp");
    std::fs::write(&tmp, b.finish()).expect("write index");
    std::fs::rename(&tmp, &cached).expect("rename index");
    Index::open(&cached).expect("open index")
}

fn percentile(times: &mut [Duration], p: f64) -> Duration {
    times.sort();
    let i = ((times.len() as f64 - 1.0) * p).round() as usize;
    times[i.min(times.len() - 1)]
}

fn main() {
    let mut runs = 20usize;
    let mut recommends = false;
    let mut files: Vec<PathBuf> = Vec::new();
    let mut packages: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).expect("--runs N"),
            "--recommends" => recommends = true,
            "--index" => files.push(args.next().expect("--index FILE").into()),
            _ => packages.push(a),
        }
    }
    if files.is_empty() {
        files = HOST_SUITES
            .iter()
            .map(|s| {
                host_list(s)
                    .map(PathBuf::from)
                    .unwrap_or_else(|| panic!("no host apt list for {s}"))
            })
            .collect();
    }
    if packages.is_empty() {
        packages = DEFAULT_REQUEST.iter().map(|s| s.to_string()).collect();
    }
    let t = Instant::now();
    let indexes: Vec<Index> = files.iter().map(|f| load(f)).collect();
    let refs: Vec<&Index> = indexes.iter().collect();
    println!(
        "loaded {} indexes ({} packages) in {:?}",
        refs.len(),
        refs.iter().map(|i| i.len()).sum::<usize>(),
        t.elapsed()
    );
    // `name=glob` selects versions, as in a blueprint.
    let request = Request {
        packages: packages
            .iter()
            .map(|p| match p.split_once('=') {
                Some((name, glob)) => PackageSpec::with_version(name, glob),
                None => PackageSpec::new(p),
            })
            .collect(),
        recommends,
    };

    let (mut build, mut solve, mut total) = (Vec::new(), Vec::new(), Vec::new());
    let mut size = 0;
    for _ in 0..runs.max(1) {
        let t0 = Instant::now();
        let universe = Universe::new(&refs, "amd64");
        let t1 = Instant::now();
        match universe.solve(&request) {
            Ok(s) => size = s.packages.len(),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
        let t2 = Instant::now();
        build.push(t1 - t0);
        solve.push(t2 - t1);
        total.push(t2 - t0);
    }
    println!("request: {} packages -> {size} to install", packages.len());
    for (what, times) in [
        ("universe", &mut build),
        ("solve", &mut solve),
        ("total", &mut total),
    ] {
        println!(
            "{what:>9}: p50 {:?}  p90 {:?}  min {:?}",
            percentile(times, 0.5),
            percentile(times, 0.9),
            times.iter().min().copied().unwrap_or_default()
        );
    }
}
