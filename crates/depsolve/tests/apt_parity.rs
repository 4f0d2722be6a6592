//! Differential test: kiln-depsolve against `apt-get -s` on an empty dpkg status.
//!
//! By default it uses the host's apt lists (the Debian bookworm, bookworm-updates and
//! bookworm-security `Packages` files in /var/lib/apt/lists, which are what apt-get reads
//! here) and skips, with a message, when they or apt-get are missing. To point it at other
//! metadata (e.g. freshly fetched in CI):
//!
//! - `KILN_PARITY_PACKAGES=/path/a_Packages:/path/b_Packages.lz4` (highest precedence
//!   first; plain, `.lz4`, `.gz` or `.xz` files; the latter two through `zcat`/`xzcat`),
//! - `KILN_PARITY_APT_OPTS="-o Dir::State::Lists=/x -o Dir::Etc::SourceList=/y ..."`
//!   extra options for apt-get so that it reads the same metadata,
//! - `KILN_PARITY_REQUESTS=/path/requests.txt` to use another request list.
//!
//! The harness functions (`load_indexes`, `apt_install`, `compare`) are public so that
//! other tests or tools can include this file as a module.

#![allow(dead_code)]

use kiln_deb::{Index, IndexBuilder};
use kiln_depsolve::{PackageSpec, Request, SolveError};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// One request of the request list.
#[derive(Debug, Clone)]
pub struct ParityRequest {
    pub packages: Vec<String>,
    pub recommends: bool,
}

/// Parses the request list format (see tests/data/apt_requests.txt).
pub fn parse_requests(text: &str) -> Vec<ParityRequest> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut r = ParityRequest {
                packages: Vec::new(),
                recommends: false,
            };
            for word in l.split_whitespace() {
                if word == "--recommends" {
                    r.recommends = true;
                } else {
                    r.packages.push(word.to_string());
                }
            }
            r
        })
        .collect()
}

/// The Packages files to load: `KILN_PARITY_PACKAGES`, else the host's Debian bookworm
/// lists (bookworm, bookworm-updates, bookworm-security), or `None` if absent.
pub fn packages_files() -> Option<Vec<PathBuf>> {
    if let Ok(list) = std::env::var("KILN_PARITY_PACKAGES")
        && !list.is_empty()
    {
        return Some(
            list.split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect(),
        );
    }
    let dir = Path::new("/var/lib/apt/lists");
    ["bookworm", "bookworm-updates", "bookworm-security"]
        .iter()
        .map(|suite| host_list(dir, suite))
        .collect()
}

/// The host's apt list of `suite`'s main amd64 Packages, whatever mirror it came from
/// (apt names lists after the mirror: no host name is written here).
pub fn host_list(dir: &Path, suite: &str) -> Option<PathBuf> {
    let suffix = format!("_dists_{suite}_main_binary-amd64_Packages");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.strip_suffix(".lz4")
                    .or_else(|| n.strip_suffix(".gz"))
                    .or_else(|| n.strip_suffix(".xz"))
                    .unwrap_or(n)
                    .ends_with(&suffix)
            })
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

/// Reads a Packages file, decompressing it by extension.
pub fn read_packages(path: &Path) -> Result<Vec<u8>, String> {
    let raw = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "lz4" => {
            let mut out = Vec::with_capacity(raw.len() * 5);
            lz4_flex::frame::FrameDecoder::new(&raw[..])
                .read_to_end(&mut out)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(out)
        }
        "gz" | "xz" => {
            let tool = if ext == "gz" { "zcat" } else { "xzcat" };
            let out = Command::new(tool)
                .arg(path)
                .output()
                .map_err(|e| format!("{tool}: {e}"))?;
            if !out.status.success() {
                return Err(format!("{tool} {} failed", path.display()));
            }
            Ok(out.stdout)
        }
        _ => Ok(raw),
    }
}

/// Builds one index per Packages file.
pub fn load_indexes(files: &[PathBuf]) -> Result<Vec<Index>, String> {
    files
        .iter()
        .map(|f| {
            let text = read_packages(f)?;
            let mut b = IndexBuilder::new();
            b.add_packages(&text)
                .map_err(|e| format!("{}: {e}", f.display()))?;
            Index::from_bytes(b.finish()).map_err(|e| e.to_string())
        })
        .collect()
}

/// Whether apt-get can be run.
pub fn have_apt() -> bool {
    Command::new("apt-get")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What `apt-get -s install` would install on an empty system: name → version, or
/// apt's error output when it refuses.
pub fn apt_install(
    packages: &[String],
    recommends: bool,
) -> Result<BTreeMap<String, String>, String> {
    let status = std::env::temp_dir().join("kiln-parity-empty-status");
    std::fs::write(&status, b"").map_err(|e| e.to_string())?;
    let mut cmd = Command::new("apt-get");
    cmd.arg("-s")
        .arg("-o")
        .arg(format!("Dir::State::status={}", status.display()))
        .arg("-o")
        .arg(format!("APT::Install-Recommends={recommends}"))
        .arg("-o")
        .arg("APT::Install-Suggests=false")
        .arg("-o")
        .arg("Debug::NoLocking=true");
    if let Ok(opts) = std::env::var("KILN_PARITY_APT_OPTS") {
        cmd.args(opts.split_whitespace());
    }
    cmd.arg("install").args(packages);
    cmd.env("LC_ALL", "C");
    let out = cmd.output().map_err(|e| format!("apt-get: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(parse_inst_lines(&stdout))
}

/// Parses `Inst name (version Origin [arch])` lines.
pub fn parse_inst_lines(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("Inst "))
        .filter_map(|l| {
            let (name, rest) = l.split_once(' ')?;
            let name = name.split(':').next()?;
            // An upgrade reads `Inst name [old] (new ...)`.
            let rest = rest.split_once('(')?.1;
            let version = rest.split_whitespace().next()?;
            Some((name.to_string(), version.to_string()))
        })
        .collect()
}

/// kiln's answer in the same form.
pub fn kiln_install(
    indexes: &[&Index],
    packages: &[String],
    recommends: bool,
) -> Result<BTreeMap<String, String>, SolveError> {
    let request = Request {
        packages: packages.iter().map(PackageSpec::new).collect(),
        recommends,
    };
    let solution = kiln_depsolve::solve(indexes, "amd64", &request)?;
    Ok(solution
        .packages
        .iter()
        .filter_map(|s| s.package(indexes))
        .map(|p| (p.name().to_string(), p.version().to_string()))
        .collect())
}

/// A readable diff of two installations, `None` when identical.
pub fn compare(ours: &BTreeMap<String, String>, apt: &BTreeMap<String, String>) -> Option<String> {
    let mut lines = Vec::new();
    for (name, v) in apt {
        match ours.get(name) {
            None => lines.push(format!("  only apt:  {name} {v}")),
            Some(o) if o != v => lines.push(format!("  version:   {name} apt {v}, kiln {o}")),
            _ => {}
        }
    }
    for (name, v) in ours {
        if !apt.contains_key(name) {
            lines.push(format!("  only kiln: {name} {v}"));
        }
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}

#[test]
fn apt_parity() {
    let Some(files) = packages_files() else {
        eprintln!("SKIP apt_parity: the Debian bookworm apt lists are not in /var/lib/apt/lists");
        return;
    };
    if !have_apt() {
        eprintln!("SKIP apt_parity: apt-get is not available");
        return;
    }
    let list_path = std::env::var("KILN_PARITY_REQUESTS")
        .ok()
        .filter(|p| !p.is_empty())
        .map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/apt_requests.txt"),
            PathBuf::from,
        );
    let requests = parse_requests(&std::fs::read_to_string(&list_path).expect("request list"));
    let t = Instant::now();
    let indexes = load_indexes(&files).expect("load the Packages files");
    let refs: Vec<&Index> = indexes.iter().collect();
    eprintln!("loaded {} indexes in {:?}", refs.len(), t.elapsed());

    // apt-get takes about a second per request: run two at a time.
    let apt_results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = requests
            .chunks(requests.len().div_ceil(2).max(1))
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|r| apt_install(&r.packages, r.recommends))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("apt thread"))
            .collect()
    });

    let mut failures = Vec::new();
    let mut identical = 0;
    for (r, apt) in requests.iter().zip(apt_results) {
        let label = format!(
            "{}{}",
            r.packages.join(" "),
            if r.recommends {
                " (with recommends)"
            } else {
                ""
            }
        );
        let t = Instant::now();
        let ours = kiln_install(&refs, &r.packages, r.recommends);
        let elapsed = t.elapsed();
        match (ours, apt) {
            (Ok(ours), Ok(apt)) => match compare(&ours, &apt) {
                None => {
                    identical += 1;
                    eprintln!("ok    {label}: {} packages ({elapsed:?})", apt.len());
                }
                Some(diff) => {
                    eprintln!(
                        "DIFF  {label}: kiln {} / apt {} packages\n{diff}",
                        ours.len(),
                        apt.len()
                    );
                    failures.push(label);
                }
            },
            (Err(e), Err(_)) => {
                identical += 1;
                eprintln!("ok    {label}: both refuse ({e})");
            }
            (Ok(ours), Err(apt)) => {
                eprintln!(
                    "DIFF  {label}: kiln installs {} packages, apt refuses:\n{apt}",
                    ours.len()
                );
                failures.push(label);
            }
            (Err(e), Ok(apt)) => {
                eprintln!(
                    "DIFF  {label}: apt installs {} packages, kiln refuses: {e}",
                    apt.len()
                );
                failures.push(label);
            }
        }
    }
    eprintln!("{identical}/{} requests identical to apt", requests.len());
    assert!(
        failures.is_empty(),
        "requests that differ from apt: {failures:#?}"
    );
}
