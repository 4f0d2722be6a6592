//! `kiln projects`: what the sources of a distro offer.

use crate::{Context, universe};
use anyhow::{Result, bail};
use kiln_deb::Package;
use serde::Serialize;
use std::collections::BTreeMap;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
    /// All package names with their summary.
    List {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Details of packages (names or globs like `python3-*`).
    Info {
        #[arg(required = true, value_delimiter = ',')]
        names: Vec<String>,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub struct Target {
    /// Distro (`debian-12`, `debian-13`); default: the host's.
    #[arg(long)]
    distro: Option<String>,
    #[arg(long, default_value = "amd64")]
    arch: String,
}

#[derive(Serialize)]
struct Project<'a> {
    name: &'a str,
    summary: &'a str,
    homepage: &'a str,
    section: &'a str,
    builds: Vec<Build<'a>>,
}

#[derive(Serialize)]
struct Build<'a> {
    version: &'a str,
    arch: &'a str,
    source: &'a str,
    source_package: &'a str,
    size: u64,
    installed_size_kib: u64,
}

pub fn run(ctx: &Context, cmd: Command) -> Result<ExitCode> {
    let (target, json, patterns) = match &cmd {
        Command::List { target, json } => (target, *json, None),
        Command::Info {
            names,
            target,
            json,
        } => (target, *json, Some(names)),
    };
    let distro = universe::pick_distro(target.distro.as_deref(), None)?;
    let loaded = universe::load(ctx, distro, &target.arch)?;
    // name -> every (source, package) offering it, newest version first.
    let mut by_name: BTreeMap<&str, Vec<(&str, Package<'_>)>> = BTreeMap::new();
    for repo in &loaded.universe.repos {
        for pkg in repo.index.iter() {
            by_name
                .entry(pkg.name())
                .or_default()
                .push((repo.source_id.as_str(), pkg));
        }
    }
    for builds in by_name.values_mut() {
        builds.sort_by(|a, b| kiln_deb::version::compare(b.1.version(), a.1.version()));
        builds.dedup_by(|a, b| a.1.version() == b.1.version() && a.1.arch() == b.1.arch());
    }
    let selected: Vec<(&str, &Vec<(&str, Package<'_>)>)> = match patterns {
        None => by_name.iter().map(|(k, v)| (*k, v)).collect(),
        Some(patterns) => {
            let hits: Vec<_> = by_name
                .iter()
                .filter(|(name, _)| {
                    patterns
                        .iter()
                        .any(|p| kiln_depsolve::name_matches(p, name))
                })
                .map(|(k, v)| (*k, v))
                .collect();
            if hits.is_empty() {
                bail!("no packages match {}", patterns.join(", "));
            }
            hits
        }
    };
    let projects: Vec<Project<'_>> = selected
        .iter()
        .map(|(name, builds)| {
            let newest = builds[0].1;
            Project {
                name,
                summary: newest.summary(),
                homepage: newest.homepage(),
                section: newest.section(),
                builds: builds
                    .iter()
                    .map(|(source, p)| Build {
                        version: p.version(),
                        arch: p.arch(),
                        source,
                        source_package: p.source_name(),
                        size: p.size(),
                        installed_size_kib: p.installed_size(),
                    })
                    .collect(),
            }
        })
        .collect();
    let mut out = String::new();
    if json {
        out = serde_json::to_string_pretty(&serde_json::json!({ "projects": projects }))? + "\n";
    } else if patterns.is_none() {
        for p in &projects {
            out += &format!("{} - {}\n", p.name, p.summary);
        }
    } else {
        for p in &projects {
            out += &format!("Name: {}\nSummary: {}\n", p.name, p.summary);
            if !p.homepage.is_empty() {
                out += &format!("Homepage: {}\n", p.homepage);
            }
            out += &format!("Section: {}\nBuilds:\n", p.section);
            for b in &p.builds {
                out += &format!(
                    "    {} {} (source {} from {})\n",
                    b.version, b.arch, b.source_package, b.source
                );
            }
            out.push('\n');
        }
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}
