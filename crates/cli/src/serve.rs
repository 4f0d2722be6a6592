//! `kiln serve`: the weldr API of osbuild-composer (what composer-cli and cockpit-composer
//! talk to) on a unix socket and, optionally, loopback TCP.

use crate::{Context, universe};
use anyhow::{Context as _, Result, bail};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Unix socket to listen on (mode 0660, group weldr when it exists).
    #[arg(long, value_name = "PATH", default_value = kiln_service::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Listen on TCP only (requires --listen).
    #[arg(long, requires = "listen")]
    no_socket: bool,
    /// Also listen on TCP. Only loopback addresses for now: serving beyond this machine
    /// needs TLS and a bearer token, which are not implemented yet.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// The largest request body accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    max_body: usize,
    /// Seconds a loaded package universe is reused before the sources are checked again.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    refresh: u64,
    /// Do not load the host distro's package metadata at start.
    #[arg(long)]
    no_preload: bool,
    /// Do not commit the example blueprints into a new blueprint history.
    #[arg(long)]
    no_examples: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let env = universe::env(ctx);
    let mut config = kiln_service::Config::new(env);
    config.socket = (!args.no_socket).then_some(args.socket);
    config.listen = args.listen;
    config.max_body = args.max_body;
    config.refresh = Duration::from_secs(args.refresh);
    config.seed_examples = !args.no_examples;
    if !args.no_preload {
        config.preload = vec![universe::pick_distro(None, None)?];
    }
    if config.socket.is_none() && config.listen.is_none() {
        bail!("nothing to listen on: give --listen or drop --no-socket");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let server = kiln_service::Server::bind(config.clone()).await?;
        if let Some(s) = &config.socket {
            eprintln!("kiln serve: listening on {}", s.display());
        }
        if let Some(a) = server.tcp_addr() {
            eprintln!("kiln serve: listening on http://{a}");
        }
        eprintln!(
            "kiln serve: state {}, store {}",
            ctx.state.display(),
            ctx.store.display()
        );
        server.run(kiln_service::shutdown_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}
