//! `kiln depsolve`: the closure of a blueprint's packages, as apt would install it on an
//! empty system.

use crate::{Context, universe};
use anyhow::{Result, bail};
use kiln_deb::version::Version;
use kiln_depsolve::{PackageSpec, Request};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Blueprint file (TOML or JSON) whose packages and modules to resolve.
    #[arg(required_unless_present = "packages", conflicts_with = "packages")]
    blueprint: Option<PathBuf>,
    /// Comma-separated packages instead of a blueprint (`name` or `name=version-glob`).
    #[arg(long, value_delimiter = ',', value_name = "PKG,...")]
    packages: Vec<String>,
    /// Distro (`debian-12`, `debian-13`); default: the blueprint's, else the host's.
    #[arg(long)]
    distro: Option<String>,
    #[arg(long, default_value = "amd64")]
    arch: String,
    /// Include Recommends, as `apt-get install` does by default.
    #[arg(long)]
    recommends: bool,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Print load and solve times on stderr (for benchmarks).
    #[arg(long, hide = true)]
    timings: bool,
}

/// One package of `--json` output, in the weldr API's field names: `version` and
/// `release` are Debian's upstream version and revision.
#[derive(Serialize)]
struct JsonPackage<'a> {
    name: &'a str,
    epoch: u64,
    version: &'a str,
    release: &'a str,
    arch: &'a str,
    sha256: Option<String>,
    url: String,
    size: u64,
    /// The kiln source the package comes from.
    source: &'a str,
    source_package: &'a str,
    source_version: &'a str,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let (specs, bp_distro) = match &args.blueprint {
        Some(path) => {
            let bp = crate::load_blueprint(path)?;
            let specs = bp
                .package_specs()
                .into_iter()
                .map(|(name, glob)| match glob {
                    Some(g) => PackageSpec::with_version(name, g),
                    None => PackageSpec::new(name),
                })
                .collect::<Vec<_>>();
            (specs, bp.distro.clone())
        }
        None => (
            args.packages
                .iter()
                .map(|p| parse_spec(p))
                .collect::<Result<_>>()?,
            None,
        ),
    };
    let distro = universe::pick_distro(args.distro.as_deref(), bp_distro.as_deref())?;
    let loaded = universe::load(ctx, distro, &args.arch)?;
    let repos = &loaded.universe.repos;
    let indexes: Vec<&kiln_deb::Index> = repos.iter().map(|r| &r.index).collect();
    let request = Request {
        packages: specs,
        recommends: args.recommends,
    };
    let start = Instant::now();
    let solution = if request.packages.is_empty() {
        kiln_depsolve::Solution::default()
    } else {
        kiln_depsolve::solve(&indexes, &args.arch, &request)?
    };
    if args.timings {
        eprintln!(
            "timing load_ms={:.2} solve_ms={:.2} packages={}",
            loaded.elapsed.as_secs_f64() * 1e3,
            start.elapsed().as_secs_f64() * 1e3,
            solution.packages.len()
        );
    }
    let mut out = String::new();
    let mut json = Vec::new();
    for sel in &solution.packages {
        let Some(pkg) = sel.package(&indexes) else {
            bail!("internal error: the solver returned a package that does not exist");
        };
        let repo = &repos[sel.repo];
        if args.json {
            let v = Version::parse(pkg.version());
            json.push(JsonPackage {
                name: pkg.name(),
                epoch: v.epoch,
                version: v.upstream,
                // Native packages have no revision; weldr clients expect a non-empty one.
                release: if v.revision.is_empty() {
                    "0"
                } else {
                    v.revision
                },
                arch: pkg.arch(),
                sha256: pkg.sha256_hex(),
                url: format!("{}{}", repo.base_url, pkg.filename()),
                size: pkg.size(),
                source: &repo.source_id,
                source_package: pkg.source_name(),
                source_version: pkg.source_version(),
            });
        } else {
            out.push_str(pkg.name());
            out.push('=');
            out.push_str(pkg.version());
            out.push('\n');
        }
    }
    if args.json {
        #[derive(Serialize)]
        struct Out<'a> {
            packages: Vec<JsonPackage<'a>>,
        }
        out = serde_json::to_string_pretty(&Out { packages: json })? + "\n";
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// `name` or `name=glob`.
fn parse_spec(text: &str) -> Result<PackageSpec> {
    let text = text.trim();
    match text.split_once('=') {
        Some((name, glob)) if !name.is_empty() && !glob.is_empty() => {
            Ok(PackageSpec::with_version(name, glob))
        }
        None if !text.is_empty() => Ok(PackageSpec::new(text)),
        _ => bail!("invalid package {text:?}: expected NAME or NAME=VERSION-GLOB"),
    }
}
