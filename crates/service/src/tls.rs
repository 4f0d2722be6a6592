//! TLS and a bearer token for the TCP listener.
//!
//! The unix socket is protected by its mode and group; a TCP port is not, so beyond
//! loopback `kiln serve` needs both: TLS (rustls, a PEM certificate chain and key) so the
//! token cannot be read off the wire, and the token (`Authorization: Bearer <token>`) so
//! that only clients that know it get in. On loopback either is optional (tests use both
//! on 127.0.0.1). A request without the right token gets HTTP 401 with a weldr error body
//! before any route runs; the comparison takes the same time wherever the first difference
//! is.

use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls;

/// The shortest token accepted: shorter ones can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// How long a client may take for the TLS handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the TCP listener's TLS or token could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: PathBuf },
    #[error("cannot parse the certificate {path}: {msg}")]
    BadCertificate { path: PathBuf, msg: String },
    #[error(
        "cannot read a private key from {path}: {msg} (expected a PEM PKCS#8, PKCS#1 or SEC1 key)"
    )]
    BadKey { path: PathBuf, msg: String },
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(String),
    #[error(
        "the token in {path} is {len} bytes long; use at least {MIN_TOKEN_LEN} random characters (e.g. `openssl rand -hex 32 > {path}`)"
    )]
    ShortToken { path: PathBuf, len: usize },
    #[error("the token in {path} has characters that cannot be sent in an HTTP header")]
    BadToken { path: PathBuf },
}

/// A PEM certificate chain and private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Loads a certificate chain and key into a rustls server configuration (HTTP/1.1 only).
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |what, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            what,
            path: path.to_path_buf(),
            source,
        })
    };
    let cert_pem = read("the TLS certificate", &files.cert)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: files.cert.clone(),
            msg: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key_pem = read("the TLS key", &files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::BadKey {
        path: files.key.clone(),
        msg: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The bearer token clients must present on TCP.
#[derive(Clone)]
pub struct Token(Arc<[u8]>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// Reads the token from a file: its first line, surrounding whitespace removed.
    pub fn from_file(path: &Path) -> Result<Token, TlsError> {
        let text = std::fs::read_to_string(path).map_err(|source| TlsError::Read {
            what: "the token file",
            path: path.to_path_buf(),
            source,
        })?;
        let token = text.lines().next().unwrap_or_default().trim();
        if token.len() < MIN_TOKEN_LEN {
            return Err(TlsError::ShortToken {
                path: path.to_path_buf(),
                len: token.len(),
            });
        }
        if HeaderValue::from_str(token).is_err() || token.contains(' ') {
            return Err(TlsError::BadToken {
                path: path.to_path_buf(),
            });
        }
        Ok(Token(token.as_bytes().into()))
    }

    /// Whether `presented` is the token, in time that does not depend on where they differ.
    pub fn matches(&self, presented: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        // Only the length can leak, and the length is not the secret.
        self.0.len() == presented.len() && bool::from(self.0.ct_eq(presented))
    }
}

/// Middleware: answers 401 unless the request carries `Authorization: Bearer <token>`.
pub async fn require_token(State(token): State<Token>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    match presented {
        Some(t) if token.matches(t.as_bytes()) => next.run(req).await,
        other => {
            tracing::warn!(
                path = req.uri().path(),
                "refused a request with {} bearer token",
                if other.is_some() { "a wrong" } else { "no" }
            );
            crate::body::discard(req.into_body());
            let mut resp = ApiError::http(StatusCode::UNAUTHORIZED).into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"kiln\""),
            );
            resp
        }
    }
}

/// Serves `app` over TLS on `listener` until `shutdown` completes, then lets the requests
/// in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!("accepting a TCP connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, "TLS connection ended with an error: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rules() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, "short\n").unwrap();
        assert!(matches!(
            Token::from_file(&p),
            Err(TlsError::ShortToken { len: 5, .. })
        ));
        std::fs::write(&p, "  0123456789abcdef0123  \nignored\n").unwrap();
        let t = Token::from_file(&p).unwrap();
        assert!(t.matches(b"0123456789abcdef0123"));
        assert!(!t.matches(b"0123456789abcdef0124"));
        assert!(!t.matches(b"0123456789abcdef012"));
        assert!(!t.matches(b""));
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
        std::fs::write(&p, "0123456789abcdef\x01\n").unwrap();
        assert!(matches!(
            Token::from_file(&p),
            Err(TlsError::BadToken { .. })
        ));
    }

    #[test]
    fn bad_files_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "not a key").unwrap();
        let files = TlsFiles {
            cert: cert.clone(),
            key,
        };
        let e = server_config(&files).unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
        let e = server_config(&TlsFiles {
            cert: dir.path().join("missing"),
            key: cert,
        })
        .unwrap_err();
        assert!(
            e.to_string().contains("cannot read the TLS certificate"),
            "{e}"
        );
    }
}
