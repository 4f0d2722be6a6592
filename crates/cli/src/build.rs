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
use anyhow::{Context as _, Result};
use kiln_build::events::Event;
use kiln_build::executor::{BuildOptions, BuildReport, StageStatus, build};
use kiln_manifest::Manifest;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

#[derive(clap::Args)]
pub struct ManifestArgs {
    /// Blueprint file (TOML or JSON).
    #[arg(required_unless_present = "list_types")]
    blueprint: Option<PathBuf>,
    /// Image type; repeat for several types from one depsolve and one OS tree
    /// (`--list-types` lists them).
    #[arg(
        long = "type",
        value_name = "TYPE",
        required_unless_present = "list_types"
    )]
    image_types: Vec<String>,
    /// List the image types with what each contains, and exit.
    #[arg(long)]
    list_types: bool,
    /// Distro (`debian-12`, `debian-13`); default: the blueprint's, else the host's.
    #[arg(long)]
    distro: Option<String>,
    #[arg(long, default_value = "amd64")]
    arch: String,
    /// Disk size instead of the image type's default (`8 GiB`, `20GB`, bytes); the disk
    /// still grows to what the layout needs. Only for types made from a disk.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    size: Option<u64>,
}

fn parse_size(text: &str) -> Result<u64, String> {
    kiln_blueprint::Size::parse(text).map(|s| s.bytes())
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
    if args.list_types {
        return Ok(list_types());
    }
    let m = make_manifest(ctx, &args)?;
    println!("{}", m.to_pretty_json());
    Ok(ExitCode::SUCCESS)
}

pub fn run_build(ctx: &Context, args: BuildArgs) -> Result<ExitCode> {
    if args.manifest.list_types {
        return Ok(list_types());
    }
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

/// `--list-types`: name, file, default size and contents of every image type.
fn list_types() -> ExitCode {
    println!("{:<10} {:<12} {:>8}  contents", "TYPE", "FILE", "SIZE");
    for t in kiln_distro::IMAGE_TYPES {
        let size = if t.default_size == 0 {
            "-".to_string()
        } else {
            format!("{} GiB", t.default_size >> 30)
        };
        println!(
            "{:<10} {:<12} {:>8}  {}",
            t.name, t.filename, size, t.summary
        );
    }
    ExitCode::SUCCESS
}

fn make_manifest(ctx: &Context, args: &ManifestArgs) -> Result<Manifest> {
    let Some(path) = &args.blueprint else {
        anyhow::bail!("a blueprint file is required");
    };
    let bp = crate::load_blueprint(path)?;
    let distro = universe::pick_distro(args.distro.as_deref(), bp.distro.as_deref())?;
    // Check the blueprint against the image types before loading any metadata.
    kiln_distro::plan(&bp, &args.image_types)?;
    let loaded = universe::load(ctx, distro, &args.arch)?;
    let epoch = std::env::var("SOURCE_DATE_EPOCH").ok();
    Ok(kiln_compose::manifest_with(
        &loaded.universe,
        &bp,
        distro,
        &args.arch,
        &args.image_types,
        epoch.as_deref(),
        &kiln_distro::ImageOptions { size: args.size },
    )?)
}

fn execute(ctx: &Context, m: &Manifest, flags: &BuildFlags) -> Result<ExitCode> {
    let store_dir = universe::env(ctx).objects();
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
