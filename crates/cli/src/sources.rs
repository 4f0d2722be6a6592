//! `kiln sources`: list, show, add and delete package sources (weldr source format).

use crate::{Context, universe};
use anyhow::{Context as _, Result};
use kiln_repo::SourceConfig;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Source ids: the distro's system sources, then custom ones.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Details of sources (`*` for all).
    Info {
        #[arg(required = true, value_delimiter = ',')]
        ids: Vec<String>,
        /// JSON instead of TOML.
        #[arg(long)]
        json: bool,
    },
    /// Add or replace a custom source from a TOML or JSON file.
    Add { file: PathBuf },
    /// Delete a custom source.
    Delete { id: String },
}

pub fn run(ctx: &Context, cmd: Command) -> Result<ExitCode> {
    let store = universe::source_store(ctx)?;
    match cmd {
        Command::List { json } => {
            let ids = store.list()?;
            if json {
                println!("{}", serde_json::json!({ "sources": ids }));
            } else {
                for id in ids {
                    println!("{id}");
                }
            }
        }
        Command::Info { ids, json } => {
            let sources: Vec<SourceConfig> = if ids.iter().any(|i| i == "*") {
                store.all()?
            } else {
                ids.iter()
                    .map(|id| store.info(id))
                    .collect::<Result<_, _>>()?
            };
            if json {
                let map: serde_json::Map<String, serde_json::Value> = sources
                    .iter()
                    .map(|s| Ok((s.id.clone(), serde_json::to_value(s)?)))
                    .collect::<Result<_>>()?;
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "sources": map }))?
                );
            } else {
                for s in &sources {
                    let mut table = toml::Table::new();
                    table.insert(s.id.clone(), toml::Value::try_from(s)?);
                    print!("{}", toml::to_string(&table)?);
                }
            }
        }
        Command::Add { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let source = SourceConfig::parse(&text)
                .with_context(|| format!("invalid source in {}", file.display()))?;
            let stored = store.add(source)?;
            eprintln!("source {} saved", stored.id);
        }
        Command::Delete { id } => {
            store.delete(&id)?;
            eprintln!("source {id} deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}
