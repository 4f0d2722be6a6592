//! `kiln store`: what the content-addressed store holds, and making room in it.

use crate::Context;
use anyhow::{Context as _, Result};
use indicatif::HumanBytes;
use kiln_store::{KindStatus, Store};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Objects by kind and size, and the size budget.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Evict least-recently-used objects down to the budget (or to --budget bytes).
    Gc {
        /// Target size in bytes instead of the configured budget (0 empties the store,
        /// except what running builds use).
        #[arg(long)]
        budget: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Hash every download against its name and check every tree's and artifact's
    /// metadata; damaged objects are removed. Exits 1 when something was damaged.
    Verify {
        #[arg(long)]
        json: bool,
    },
}

pub fn run(ctx: &Context, cmd: Command) -> Result<ExitCode> {
    let dir = crate::universe::env(ctx).objects();
    let store =
        Store::open(&dir).with_context(|| format!("cannot open the store {}", dir.display()))?;
    match cmd {
        Command::Status { json } => {
            let s = store.status()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                let line = |name: &str, k: KindStatus| {
                    println!(
                        "{name:<18} {:>8} {:>12}",
                        k.count,
                        HumanBytes(k.bytes).to_string()
                    );
                };
                println!("store              {}", s.path.display());
                line("trees", s.trees);
                for (kind, k) in &s.tree_kinds {
                    line(&format!("  {kind}"), *k);
                }
                line("artifacts", s.artifacts);
                line("downloads", s.blobs);
                line("partial", s.partials);
                line("total", s.total);
                let budget = if s.budget_bytes == u64::MAX {
                    "unlimited".to_string()
                } else {
                    HumanBytes(s.budget_bytes).to_string()
                };
                println!(
                    "budget             {budget} (free on disk: {})",
                    HumanBytes(s.fs_available)
                );
            }
        }
        Command::Gc { budget, json } => {
            let report = match budget {
                Some(b) => store.gc(b)?,
                None => store.gc_to_budget()?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "evicted {} object(s): {} -> {} (budget {}); {} kept because in use",
                    report.evicted.len(),
                    HumanBytes(report.before),
                    HumanBytes(report.after),
                    HumanBytes(report.budget),
                    report.pinned.len()
                );
            }
        }
        Command::Verify { json } => {
            let report = store.verify()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "checked {} download(s) and {} tree(s)/artifact(s): {} damaged",
                    report.blobs_checked,
                    report.objects_checked,
                    report.bad_blobs.len()
                );
                for b in &report.bad_blobs {
                    println!("removed damaged download sha256:{b}");
                }
            }
            if !report.bad_blobs.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
