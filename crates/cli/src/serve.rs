//! `kiln serve`: the weldr API of osbuild-composer (what composer-cli and cockpit-composer
//! talk to) on a unix socket and, optionally, TCP (beyond loopback with TLS and a token).

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
    /// Also listen on TCP. An address that is not loopback needs --tls-cert, --tls-key
    /// and --token-file; on loopback they are optional.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// PEM certificate chain for TLS on the TCP listener.
    #[arg(long, value_name = "FILE", requires_all = ["listen", "tls_key"])]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// File whose first line is the bearer token TCP clients must send
    /// (`Authorization: Bearer TOKEN`; `kiln --token` / KILN_TOKEN on the client side).
    #[arg(long, value_name = "FILE", requires = "listen")]
    token_file: Option<PathBuf>,
    /// How many composes are built at once (each build is a child process).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    workers: u16,
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
    config.tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(kiln_service::tls::TlsFiles { cert, key }),
        _ => None,
    };
    config.token_file = args.token_file;
    config.max_body = args.max_body;
    config.workers = usize::from(args.workers);
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
            let scheme = if server.tcp_is_tls() { "https" } else { "http" };
            let auth = if config.token_file.is_some() {
                " (bearer token required)"
            } else {
                ""
            };
            eprintln!("kiln serve: listening on {scheme}://{a}{auth}");
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
