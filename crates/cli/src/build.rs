//! `kiln manifest`, `kiln build-manifest` and `kiln build`: blueprint → depsolve →
//! manifest → build → files in the output directory.
//!
//! Build trees and downloads live in the kiln store at `<store>/objects` (the metadata
//! caches are beside it, in `<store>/repo-cache`).
//!
//! `SOURCE_DATE_EPOCH` of a new manifest: the `SOURCE_DATE_EPOCH` environment variable if
//! set, else the newest `Date` of the Release files the packages were resolved from (the
//! same archive snapshot gives the same manifest, and no file is dated after the archive).

use crate::{Context, universe};
use anyhow::{Context as _, Result, bail};
use kiln_build::events::Event;
use kiln_build::executor::{BuildOptions, BuildReport, StageStatus, build};
use kiln_depsolve::{PackageSpec, Request};
use kiln_distro::ResolvedPackage;
use kiln_manifest::Manifest;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(clap::Args)]
pub struct ManifestArgs {
    /// Blueprint file (TOML or JSON).
    blueprint: PathBuf,
    /// Image type (`tar`).
    #[arg(long = "type", value_name = "TYPE")]
    image_type: String,
    /// Distro (`debian-12`, `debian-13`); default: the blueprint's, else the host's.
    #[arg(long)]
    distro: Option<String>,
    #[arg(long, default_value = "amd64")]
    arch: String,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Progress {
    /// Human-readable lines on stderr.
    Text,
    /// Progress events as JSON lines on stdout.
    Json,
    /// Nothing but errors.
    None,
}

#[derive(clap::Args)]
pub struct BuildFlags {
    /// Where to write the image files.
    #[arg(long, default_value = ".", value_name = "DIR")]
    output: PathBuf,
    /// Do not reuse stored stage trees: run every stage again and replace the stored
    /// trees with the new ones (downloads already in the store are still reused, as they
    /// are verified by sha256).
    #[arg(long)]
    no_cache: bool,
    /// When a stage fails, keep its working tree at DIR/failed-<pipeline>-<stage>/ (the
    /// path is printed) instead of removing it. The stages before it stay in the store,
    /// so the next build resumes after them. Stage logs are in DIR/logs/ either way.
    #[arg(long)]
    keep_failed: bool,
    /// How to report progress.
    #[arg(long, value_enum, default_value = "text")]
    progress: Progress,
}

#[derive(clap::Args)]
pub struct BuildArgs {
    #[command(flatten)]
    manifest: ManifestArgs,
    #[command(flatten)]
    flags: BuildFlags,
}

#[derive(clap::Args)]
pub struct BuildManifestArgs {
    /// Manifest file (JSON, as `kiln manifest` prints it).
    manifest: PathBuf,
    #[command(flatten)]
    flags: BuildFlags,
}

pub fn run_manifest(ctx: &Context, args: ManifestArgs) -> Result<ExitCode> {
    let m = make_manifest(ctx, &args)?;
    println!("{}", m.to_pretty_json());
    Ok(ExitCode::SUCCESS)
}

pub fn run_build(ctx: &Context, args: BuildArgs) -> Result<ExitCode> {
    let m = make_manifest(ctx, &args.manifest)?;
    execute(ctx, &m, &args.flags)
}

pub fn run_build_manifest(ctx: &Context, args: BuildManifestArgs) -> Result<ExitCode> {
    let bytes = std::fs::read(&args.manifest)
        .with_context(|| format!("cannot read manifest {}", args.manifest.display()))?;
    let m = Manifest::from_json(&bytes)
        .with_context(|| format!("invalid manifest {}", args.manifest.display()))?;
    execute(ctx, &m, &args.flags)
}

fn make_manifest(ctx: &Context, args: &ManifestArgs) -> Result<Manifest> {
    let bp = crate::load_blueprint(&args.blueprint)?;
    let distro = universe::pick_distro(args.distro.as_deref(), bp.distro.as_deref())?;
    // Check the blueprint against the image type before loading any metadata.
    kiln_distro::manifest(&bp, distro.name(), &args.arch, &args.image_type, &[], 0)?;
    let loaded = universe::load(ctx, distro, &args.arch)?;
    let repos = &loaded.universe.repos;
    let indexes: Vec<&kiln_deb::Index> = repos.iter().map(|r| &r.index).collect();

    // The blueprint's packages, plus Essential and Priority: required so that the tree is
    // a usable system (as debootstrap's minbase variant).
    let mut specs: Vec<PackageSpec> = bp
        .package_specs()
        .into_iter()
        .map(|(name, glob)| match glob {
            Some(g) => PackageSpec::with_version(name, g),
            None => PackageSpec::new(name),
        })
        .collect();
    let asked: BTreeSet<String> = specs.iter().map(|s| s.name.clone()).collect();
    let mut base = BTreeSet::new();
    for index in &indexes {
        for p in index.iter() {
            if (p.essential() || p.priority() == kiln_deb::index::Priority::Required)
                && (p.arch() == args.arch || p.arch() == "all")
                && !asked.contains(p.name())
            {
                base.insert(p.name().to_owned());
            }
        }
    }
    specs.extend(base.into_iter().map(PackageSpec::new));
    let request = Request {
        packages: specs,
        recommends: false,
    };
    let solution = kiln_depsolve::solve(&indexes, &args.arch, &request)?;
    let mut packages = Vec::with_capacity(solution.packages.len());
    for sel in &solution.packages {
        let Some(pkg) = sel.package(&indexes) else {
            bail!("internal error: the solver returned a package that does not exist");
        };
        let repo = &repos[sel.repo];
        let Some(sha256) = pkg.sha256_hex() else {
            bail!(
                "package {} {} has no SHA256 in the archive's index; kiln cannot verify it",
                pkg.name(),
                pkg.version()
            );
        };
        packages.push(ResolvedPackage {
            name: pkg.name().to_owned(),
            version: pkg.version().to_owned(),
            sha256,
            url: format!("{}{}", repo.base_url, pkg.filename()),
            size: pkg.size(),
        });
    }
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"))?,
        Err(_) => repos
            .iter()
            .filter_map(|r| r.release_info.date)
            .filter_map(|d| d.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
            .max()
            .context("no Release file has a Date; set SOURCE_DATE_EPOCH")?,
    };
    Ok(kiln_distro::manifest(
        &bp,
        distro.name(),
        &args.arch,
        &args.image_type,
        &packages,
        epoch,
    )?)
}

fn execute(ctx: &Context, m: &Manifest, flags: &BuildFlags) -> Result<ExitCode> {
    let store_dir = ctx.store.join("objects");
    let store = kiln_store::Store::open(&store_dir)
        .with_context(|| format!("cannot open the store {}", store_dir.display()))?;
    let progress = flags.progress;
    let started = SystemTime::now();
    let opts = BuildOptions {
        output: Some(flags.output.clone()),
        no_cache: flags.no_cache,
        keep_failed: flags.keep_failed,
        on_event: Some(Box::new(move |e: &Event| print_event(progress, e))),
        ..BuildOptions::default()
    };
    let report = build(m, &store, &opts)?;
    if let Err(e) = store.gc_to_budget() {
        tracing::warn!("store garbage collection failed: {e}");
    }
    if progress == Progress::Text {
        summary(&report, started, &flags.output);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_event(progress: Progress, e: &Event) {
    match progress {
        Progress::None => {}
        Progress::Json => println!("{}", e.to_json_line()),
        Progress::Text => match e {
            Event::Fetch {
                done, total, bytes, ..
            } => {
                if done == total || done % 50 == 0 {
                    eprintln!(
                        "fetched {done}/{total} sources ({:.1} MB)",
                        *bytes as f64 / 1e6
                    );
                }
            }
            Event::StageStart {
                pipeline,
                stage,
                index,
                total,
                ..
            } => eprintln!("[{pipeline} {}/{total}] {stage} ...", index + 1),
            Event::StageDone {
                pipeline,
                stage,
                index,
                total,
                cached,
                seconds,
                ..
            } => {
                if *cached {
                    eprintln!("[{pipeline} {}/{total}] {stage}: cached", index + 1);
                } else {
                    eprintln!("[{pipeline} {}/{total}] {stage}: {seconds:.1}s", index + 1);
                }
            }
            Event::StageFailed {
                pipeline,
                stage,
                index,
                total,
                seconds,
                ..
            } => eprintln!(
                "[{pipeline} {}/{total}] {stage}: FAILED after {seconds:.1}s",
                index + 1
            ),
            Event::Log { .. } => {}
            Event::Export { path, .. } => eprintln!("wrote {path}"),
        },
    }
}

fn summary(report: &BuildReport, started: SystemTime, output: &Path) {
    let ran = report
        .stages
        .iter()
        .filter(|s| s.status == StageStatus::Ran)
        .count();
    eprintln!(
        "built in {:.1}s: {ran} stage(s) ran, {} cached, {} download(s); output in {}",
        started.elapsed().unwrap_or_default().as_secs_f64(),
        report.stages.len() - ran,
        report.fetched,
        output.display()
    );
}
