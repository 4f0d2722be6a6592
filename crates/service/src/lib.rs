//! kiln-service: the server behind `kiln serve`, speaking osbuild-composer's weldr API so
//! that composer-cli, cockpit-composer and weldr-client work against kiln unchanged.
//!
//! # Routes
//!
//! [`api`] has the router. Every weldr route exists under `/api/v0` and `/api/v1`
//! (`/blueprints/change/...` and `/distros/list` under v1 only); `/api/status` and
//! `/api/openapi.json` (the checked-in OpenAPI document, `crates/service/openapi.json`) are
//! unversioned. Blueprint routes (`api::blueprints`) read and write the history store;
//! `api::projects` (projects, modules, distros) and the depsolve/freeze routes read the
//! warm package universes; `api::sources` manages package sources through kiln-repo's
//! `SourceStore`. Replies follow the conformance notes: weldr's JSON shapes, error ids
//! and HTTP codes (`{"status": false, "errors": [{"id", "msg"}]}`), `offset`/`limit`
//! paging with `total`, comma-separated name lists whose commas may be percent-encoded.
//! Every name, id and commit from a path is checked (`^[A-Za-z0-9._-]+$`) before it
//! reaches a file or git, so neither `../x` nor an encoded slash can leave the state
//! directory; bodies are limited ([`Config::max_body`]); a panicking handler answers 500
//! and the server goes on.
//!
//! # History store
//!
//! [`history`] keeps blueprints the way lorax-composer did: a bare git repository with one
//! `NAME.toml` per blueprint on branch `master`, one commit per push (`Recipe NAME,
//! version X saved.`, versions bumped as osbuild-composer does), undo as a new commit,
//! tags `master/NAME.toml/rN` as revisions, and the workspace as plain files. Writes are
//! serialised (a mutex and a file lock), so concurrent pushes never lose a commit, and
//! the repository stays readable with plain `git --git-dir <state>/blueprints.git log`.
//! Example blueprints (Debian versions of lorax's examples, `crates/service/blueprints/`)
//! are committed when the repository is created.
//!
//! # State
//!
//! ```text
//! <state>/blueprints.git/   bare git repository (branch master, NAME.toml, tags)
//! <state>/workspace/        NAME.toml: uncommitted workspace copies
//! <state>/sources/          ID.toml: user package sources (kiln-repo)
//! <store>/repo-cache/       verified repository metadata (kiln-repo), shared with the CLI
//! <state>/composes.db      SQLite: the composes (queue, states, failures, uploads)
//! <state>/composes/<uuid>/  a compose's manifest, image files and logs
//! ```
//!
//! # Composes
//!
//! [`compose`] has the durable queue, the worker pool (`Config::workers` builds at once,
//! each a `kiln build-manifest` child process in its own process group) and the live
//! progress; its docs say what a restart does to waiting and running composes.
//!
//! # Package universes
//!
//! [`packages`] keeps one loaded universe per (distro, arch), reloaded when older than
//! [`Config::refresh`] or when a source is added or deleted, so depsolve through the API
//! costs a solve, not a metadata load.
//!
//! # Listening
//!
//! [`Server::bind`] listens on a unix socket (default `/run/weldr/api.socket`, mode 0660,
//! group `weldr` when that group exists) and optionally on TCP. The socket is guarded by
//! its permissions; TCP by [`tls`]: an address that is not loopback is only served with
//! TLS ([`Config::tls`]) *and* a bearer token ([`Config::token_file`]), anything less is
//! refused at start with an error saying what to add. On loopback both are optional.

pub mod api;
pub mod body;
pub mod compose;
pub mod error;
pub mod history;
pub mod openapi;
pub mod packages;
pub mod tls;

pub use error::{ApiError, ServiceError};
pub use history::History;
pub use kiln_compose::Env;
pub use packages::Packages;

use axum::response::{IntoResponse, Response};
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The default unix socket, where composer-cli looks.
pub const DEFAULT_SOCKET: &str = "/run/weldr/api.socket";

/// The example blueprints committed into a new history store.
pub const EXAMPLES: &[&str] = &[
    include_str!("../blueprints/example-http-server.toml"),
    include_str!("../blueprints/example-development.toml"),
    include_str!("../blueprints/example-atlas.toml"),
    include_str!("../blueprints/example-append.toml"),
    include_str!("../blueprints/example-custom-base.toml"),
    include_str!("../blueprints/example-base.toml"),
    include_str!("../blueprints/example-minimal.toml"),
];

/// How to run the server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Store, state and kiln configuration (as for the CLI).
    pub env: Env,
    /// The unix socket to listen on; `None` for none.
    pub socket: Option<PathBuf>,
    /// A TCP address to listen on as well (beyond loopback only with `tls` and
    /// `token_file`).
    pub listen: Option<SocketAddr>,
    /// TLS for the TCP listener.
    pub tls: Option<tls::TlsFiles>,
    /// A file holding the bearer token that TCP clients must send.
    pub token_file: Option<PathBuf>,
    /// The largest request body accepted (default 1 MiB).
    pub max_body: usize,
    /// How long a loaded package universe is used before it is checked again (default 5
    /// minutes).
    pub refresh: Duration,
    /// Distros whose metadata is loaded at start, in the background.
    pub preload: Vec<kiln_compose::Distro>,
    /// Commit the example blueprints when the history store is created (default true).
    pub seed_examples: bool,
    /// Reported by `/api/status` as `build`.
    pub build: String,
    /// How many composes are built at once (default 1).
    pub workers: usize,
    /// The kiln binary that runs builds (`kiln build-manifest`); default: `KILN_BIN`, else
    /// the running executable.
    pub kiln_bin: Option<PathBuf>,
}

impl Config {
    pub fn new(env: Env) -> Config {
        Config {
            env,
            socket: Some(PathBuf::from(DEFAULT_SOCKET)),
            listen: None,
            tls: None,
            token_file: None,
            max_body: 1 << 20,
            refresh: Duration::from_secs(300),
            preload: Vec::new(),
            seed_examples: true,
            build: format!("kiln {}", env!("CARGO_PKG_VERSION")),
            workers: 1,
            kiln_bin: None,
        }
    }
}

/// A bound server, ready to [`run`](Server::run).
pub struct Server {
    state: api::Shared,
    unix: Option<(tokio::net::UnixListener, PathBuf)>,
    tcp: Option<tokio::net::TcpListener>,
    tcp_tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    tcp_token: Option<tls::Token>,
    preload: Vec<kiln_compose::Distro>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("socket", &self.unix.as_ref().map(|u| &u.1))
            .field("tcp", &self.tcp_addr())
            .finish()
    }
}

impl Server {
    /// Opens (or creates) the history store and binds the listeners.
    pub async fn bind(config: Config) -> Result<Server, ServiceError> {
        let state_dir = config.env.state.clone();
        let seeds: Vec<&'static str> = if config.seed_examples {
            EXAMPLES.to_vec()
        } else {
            Vec::new()
        };
        let history = tokio::task::spawn_blocking(move || History::open(&state_dir, &seeds))
            .await
            .map_err(|e| ServiceError::Io {
                path: config.env.state.clone(),
                source: std::io::Error::other(e.to_string()),
            })??;
        tracing::info!(git = %history.git_dir().display(), "blueprint history");
        // Load TLS and the token first: a bad file should stop the start, not the first
        // request.
        let tcp_tls = config.tls.as_ref().map(tls::server_config).transpose()?;
        let tcp_token = config
            .token_file
            .as_deref()
            .map(tls::Token::from_file)
            .transpose()?;
        let tcp = match config.listen {
            Some(addr) => Some(bind_tcp(addr, tcp_tls.is_some(), tcp_token.is_some()).await?),
            None => None,
        };
        let unix = match &config.socket {
            Some(path) => Some((bind_unix(path).await?, path.clone())),
            None => None,
        };
        let composes = open_composes(&config)?;
        let state = Arc::new(api::AppState {
            composes,
            history: Arc::new(history),
            packages: Arc::new(Packages::new(config.env.clone(), config.refresh)),
            max_body: config.max_body,
            build: config.build.clone(),
        });
        Ok(Server {
            state,
            unix,
            tcp,
            tcp_tls,
            tcp_token,
            preload: config.preload,
        })
    }

    /// The bound TCP address (useful with port 0).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|t| t.local_addr().ok())
    }

    /// Whether the TCP listener speaks TLS.
    pub fn tcp_is_tls(&self) -> bool {
        self.tcp_tls.is_some()
    }

    /// The application, for embedding or in-process tests.
    pub fn app(&self) -> axum::Router {
        app(self.state.clone())
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight and removes
    /// the socket file.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServiceError> {
        let app = app(self.state.clone());
        for distro in self.preload {
            let packages = self.state.packages.clone();
            tokio::spawn(async move {
                if let Err(e) = packages.get(distro, packages::host_arch()).await {
                    tracing::warn!(distro = %distro, "preloading package metadata failed: {e}");
                }
            });
        }
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = tx.send(true);
        });
        let signal = move || {
            let mut rx = rx.clone();
            async move {
                let _ = rx.wait_for(|v| *v).await;
            }
        };
        let mut tasks = tokio::task::JoinSet::new();
        let mut socket_path = None;
        if let Some((listener, path)) = self.unix {
            tracing::info!(socket = %path.display(), "listening");
            socket_path = Some(path);
            let serve = axum::serve(listener, app.clone()).with_graceful_shutdown(signal());
            tasks.spawn(async move { serve.await });
        }
        if let Some(listener) = self.tcp {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(
                    %addr,
                    tls = self.tcp_tls.is_some(),
                    token = self.tcp_token.is_some(),
                    "listening"
                );
            }
            // The token check wraps everything else, so no route runs for a stranger.
            let app = match self.tcp_token {
                Some(token) => app.clone().layer(axum::middleware::from_fn_with_state(
                    token,
                    tls::require_token,
                )),
                None => app.clone(),
            };
            match self.tcp_tls {
                Some(config) => {
                    tasks.spawn(tls::serve(listener, config, app, signal()));
                }
                None => {
                    let serve = axum::serve(listener, app).with_graceful_shutdown(signal());
                    tasks.spawn(async move { serve.await });
                }
            }
        }
        let mut result = Ok(());
        while let Some(r) = tasks.join_next().await {
            let r = match r {
                Ok(r) => r,
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            if let Err(source) = r
                && result.is_ok()
            {
                result = Err(ServiceError::Listen {
                    what: "the listeners".into(),
                    source,
                });
            }
        }
        if let Some(p) = socket_path {
            let _ = std::fs::remove_file(&p);
        }
        self.state.composes.shutdown();
        result
    }
}

fn app(state: api::Shared) -> axum::Router {
    api::router(state)
        .layer(axum::middleware::from_fn(log_request))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_reply,
        ))
}

fn panic_reply(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("the request handler panicked").into_response()
}

async fn log_request(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    tracing::debug!(
        %method,
        path,
        status = resp.status().as_u16(),
        ms = format!("{:.1}", start.elapsed().as_secs_f64() * 1e3),
        "request"
    );
    resp
}

async fn bind_tcp(
    addr: SocketAddr,
    tls: bool,
    token: bool,
) -> Result<tokio::net::TcpListener, ServiceError> {
    let secured = tls && token;
    if !addr.ip().is_loopback() && !secured {
        let missing = match (tls, token) {
            (false, false) => "TLS (--tls-cert, --tls-key) and a bearer token (--token-file)",
            (false, true) => "TLS (--tls-cert, --tls-key)",
            _ => "a bearer token (--token-file)",
        };
        return Err(ServiceError::NotLoopback { addr, missing });
    }
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServiceError::Listen {
            what: addr.to_string(),
            source,
        })
}

/// Binds the unix socket: a stale socket file is replaced, a live one is an error; the
/// socket gets mode 0660 and group `weldr` when that group exists.
async fn bind_unix(path: &Path) -> Result<tokio::net::UnixListener, ServiceError> {
    let io = |source| ServiceError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(ServiceError::SocketInUse {
                path: path.to_path_buf(),
            });
        }
        std::fs::remove_file(path).map_err(io)?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(|source| ServiceError::Listen {
        what: path.display().to_string(),
        source,
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io)?;
    if let Some(gid) = group_id("weldr")
        && let Err(e) = std::os::unix::fs::chown(path, None, Some(gid))
    {
        tracing::warn!(socket = %path.display(), "cannot give the socket to group weldr: {e}");
    }
    Ok(listener)
}

/// Opens the compose table and starts the workers.
fn open_composes(config: &Config) -> Result<Arc<compose::Composes>, ServiceError> {
    let kiln = match &config.kiln_bin {
        Some(p) => p.clone(),
        None => match std::env::var_os("KILN_BIN") {
            Some(p) => PathBuf::from(p),
            None => std::env::current_exe().map_err(|source| ServiceError::Io {
                path: PathBuf::from("/proc/self/exe"),
                source,
            })?,
        },
    };
    let build = compose::BuildEnv {
        kiln,
        env: config.env.clone(),
    };
    compose::Composes::open(&config.env.state, build, config.workers).map_err(|e| {
        ServiceError::Io {
            path: config.env.state.join("composes.db"),
            source: std::io::Error::other(e.to_string()),
        }
    })
}

/// Completes on SIGINT or SIGTERM (for `kiln serve`).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = int.recv() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
}

/// The id of a group, from `/etc/group`.
fn group_id(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.next()?;
        f.next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn examples_are_valid_blueprints() {
        for text in super::EXAMPLES {
            let bp = kiln_blueprint::Blueprint::from_toml_validated(text).unwrap();
            assert!(crate::history::valid_name(&bp.name));
            assert!(bp.name.starts_with("example-"));
        }
    }
}
