//! `kiln`: build OS images from blueprints.

mod boot;
mod build;
mod client;
mod depsolve;
mod paths;
mod progress;
mod projects;
mod serve;
mod sources;
mod store;
mod universe;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    about = "Build OS images from blueprints",
    propagate_version = true
)]
struct Cli {
    /// Store directory: metadata caches and, later, build trees and artifacts.
    #[arg(long, global = true, env = "KILN_STORE", value_name = "DIR")]
    store: Option<PathBuf>,
    /// State directory: custom sources and, later, blueprints and composes.
    #[arg(long, global = true, env = "KILN_STATE", value_name = "DIR")]
    state: Option<PathBuf>,
    /// kiln configuration file (mirrors, keyrings).
    #[arg(long, global = true, env = "KILN_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Use cached repository metadata only; never touch the network.
    #[arg(long, global = true)]
    offline: bool,
    /// More logging (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Resolve the packages of a blueprint (or a list) into the full set to install.
    Depsolve(depsolve::Args),
    /// Blueprints on the server (composer-cli): list, show, push, depsolve, freeze, ...
    Blueprints(Remote<client::BlueprintsCommand>),
    /// Composes on the server (composer-cli): start, status, list, log, image, ...
    Compose(Remote<client::ComposeCommand>),
    /// The server's package sources (composer-cli): list, info, add, change, delete.
    Sources(Remote<client::SourcesCommand>),
    /// Packages the server's sources offer (composer-cli).
    Projects(Remote<client::ProjectsCommand>),
    /// Package names the server's sources offer (composer-cli).
    Modules(Remote<client::ModulesCommand>),
    /// Distros the server builds (composer-cli).
    Distros(Remote<client::DistrosCommand>),
    /// The server's status (composer-cli).
    Status(Remote<client::StatusCommand>),
    /// Without a server: packages and sources read from the local state and archive.
    #[command(subcommand)]
    Local(LocalCommand),
    /// Serve the weldr API (composer-cli, cockpit-composer) on a unix socket.
    Serve(serve::Args),
    /// Blueprint files.
    #[command(subcommand)]
    Blueprint(BlueprintCommand),
    /// The store of downloads, stage trees and artifacts.
    #[command(subcommand)]
    Store(store::Command),
    /// Print the manifest of an image: every package pinned, every stage, as JSON.
    Manifest(build::ManifestArgs),
    /// Build an image from a blueprint (blueprint → depsolve → manifest → build).
    Build(build::BuildArgs),
    /// Build a manifest (as `kiln manifest` prints it).
    BuildManifest(build::BuildManifestArgs),
    /// Boot an image in QEMU to check it: serial console, SSH on 127.0.0.1, --exec CMD.
    Boot(boot::Args),
}

/// A client command with the options that say how to reach the server.
#[derive(clap::Args)]
struct Remote<C: Subcommand> {
    #[command(flatten)]
    conn: client::Conn,
    #[command(subcommand)]
    cmd: C,
}

#[derive(Subcommand)]
enum LocalCommand {
    /// Packages available from the configured sources.
    #[command(subcommand)]
    Projects(projects::Command),
    /// Package sources: the distro's system sources and custom ones.
    #[command(subcommand)]
    Sources(sources::Command),
}

#[derive(Subcommand)]
enum BlueprintCommand {
    /// Check a blueprint (TOML or JSON) strictly and print it normalised.
    Check {
        file: PathBuf,
        /// Print the normalised blueprint as JSON instead of TOML.
        #[arg(long)]
        json: bool,
    },
}

/// What every command needs: resolved directories and options.
pub struct Context {
    pub store: PathBuf,
    pub state: PathBuf,
    pub config: PathBuf,
    /// Whether `config` was given by the user (then it must exist).
    pub config_explicit: bool,
    pub offline: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let defaults = paths::Dirs::defaults();
    let ctx = Context {
        store: cli.store.unwrap_or(defaults.store),
        state: cli.state.unwrap_or(defaults.state),
        config_explicit: cli.config.is_some(),
        config: cli.config.unwrap_or(defaults.config),
        offline: cli.offline,
    };
    match run(&ctx, cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(ctx: &Context, command: Command) -> Result<ExitCode> {
    match command {
        Command::Depsolve(args) => depsolve::run(ctx, args),
        Command::Local(LocalCommand::Projects(cmd)) => projects::run(ctx, cmd),
        Command::Local(LocalCommand::Sources(cmd)) => sources::run(ctx, cmd),
        Command::Blueprints(r) => Ok(client::run(&r.conn, client::Command::Blueprints(r.cmd))),
        Command::Compose(r) => Ok(client::run(&r.conn, client::Command::Compose(r.cmd))),
        Command::Sources(r) => Ok(client::run(&r.conn, client::Command::Sources(r.cmd))),
        Command::Projects(r) => Ok(client::run(&r.conn, client::Command::Projects(r.cmd))),
        Command::Modules(r) => Ok(client::run(&r.conn, client::Command::Modules(r.cmd))),
        Command::Distros(r) => Ok(client::run(&r.conn, client::Command::Distros(r.cmd))),
        Command::Status(r) => Ok(client::run(&r.conn, client::Command::Status(r.cmd))),
        Command::Serve(args) => serve::run(ctx, args),
        Command::Store(cmd) => store::run(ctx, cmd),
        Command::Manifest(args) => build::run_manifest(ctx, args),
        Command::Build(args) => build::run_build(ctx, args),
        Command::BuildManifest(args) => build::run_build_manifest(ctx, args),
        Command::Boot(args) => boot::run(args),
        Command::Blueprint(BlueprintCommand::Check { file, json }) => {
            let bp = load_blueprint(&file)?;
            print!(
                "{}",
                if json {
                    bp.to_json()? + "\n"
                } else {
                    bp.to_toml()?
                }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads a blueprint file, TOML or JSON by extension (JSON also when it starts with `{`).
pub fn load_blueprint(path: &std::path::Path) -> Result<kiln_blueprint::Blueprint> {
    use anyhow::Context as _;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read blueprint {}", path.display()))?;
    let is_json =
        path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
    let bp = if is_json {
        kiln_blueprint::Blueprint::from_json_validated(&text)
    } else {
        kiln_blueprint::Blueprint::from_toml_validated(&text)
    };
    bp.with_context(|| format!("invalid blueprint {}", path.display()))
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "kiln=debug,kiln_repo=debug,kiln_depsolve=debug,info",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
