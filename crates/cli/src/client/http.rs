//! The client's transport: HTTP/1.1 over the unix socket, plain TCP, or TLS with a bearer
//! token, one connection per request (as composer-cli does).

use anyhow::{Context as _, Result, anyhow, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls;

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp {
        host: String,
        port: u16,
        tls: bool,
        /// A path prefix in front of `/api` (a proxy may serve the API under one).
        prefix: String,
    },
}

impl Endpoint {
    /// Parses `http://HOST[:PORT][/PREFIX]` or `https://...` (IPv6 hosts in brackets).
    pub fn parse_url(url: &str) -> Result<Endpoint> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            bail!("--url {url:?} must start with http:// or https://");
        };
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(r) = authority.strip_prefix('[') {
            let (h, after) = r
                .split_once(']')
                .ok_or_else(|| anyhow!("--url {url:?}: unclosed [ in the host"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok(),
                None if after.is_empty() => Some(default_port),
                None => None,
            };
            (h, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().ok()),
                None => (authority, Some(default_port)),
            }
        };
        let port = port.ok_or_else(|| anyhow!("--url {url:?}: the port is not a number"))?;
        if host.is_empty() {
            bail!("--url {url:?} has no host");
        }
        Ok(Endpoint::Tcp {
            host: host.to_string(),
            port,
            tls,
            prefix: prefix.to_string(),
        })
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "{}", p.display()),
            Endpoint::Tcp {
                host, port, tls, ..
            } => {
                let scheme = if *tls { "https" } else { "http" };
                if host.contains(':') {
                    write!(f, "{scheme}://[{host}]:{port}")
                } else {
                    write!(f, "{scheme}://{host}:{port}")
                }
            }
        }
    }
}

/// A reply: status, headers and (unless streamed to a file) the body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends HTTP requests to one endpoint.
pub struct Transport {
    endpoint: Endpoint,
    token: Option<String>,
    tls: Option<tokio_rustls::TlsConnector>,
    timeout: Option<Duration>,
    rt: tokio::runtime::Runtime,
}

/// Where a streamed body goes.
pub enum Sink<'a> {
    Memory,
    /// Written to this file (created or truncated) when the reply is a success.
    File(&'a Path),
}

impl Transport {
    pub fn new(
        endpoint: Endpoint,
        token: Option<String>,
        cacert: Option<&Path>,
        timeout: Option<Duration>,
    ) -> Result<Transport> {
        let tls = match &endpoint {
            Endpoint::Tcp { tls: true, .. } => Some(tls_connector(cacert)?),
            _ => None,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        Ok(Transport {
            endpoint,
            token,
            tls,
            timeout,
            rt,
        })
    }

    /// One request; `path` starts with `/api`.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        sink: Sink<'_>,
    ) -> Result<Reply> {
        let fut = self.send_async(method, path, content_type, body, sink);
        let r = match self.timeout {
            Some(t) => self.rt.block_on(async {
                tokio::time::timeout(t, fut).await.unwrap_or_else(|_| {
                    Err(anyhow!(
                        "no reply from {} within {} s (--timeout)",
                        self.endpoint,
                        t.as_secs()
                    ))
                })
            }),
            None => self.rt.block_on(fut),
        };
        r.with_context(|| format!("{method} {path}"))
    }

    async fn send_async(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        sink: Sink<'_>,
    ) -> Result<Reply> {
        let (host_header, full_path) = match &self.endpoint {
            Endpoint::Unix(_) => ("localhost".to_string(), path.to_string()),
            Endpoint::Tcp { prefix, .. } => (
                self.endpoint
                    .to_string()
                    .split_once("://")
                    .map(|(_, h)| h.to_string())
                    .unwrap_or_default(),
                format!("{prefix}{path}"),
            ),
        };
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(&full_path)
            .header(hyper::header::HOST, host_header)
            .header(
                hyper::header::USER_AGENT,
                concat!("kiln/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(ct) = content_type {
            req = req.header(hyper::header::CONTENT_TYPE, ct);
        }
        if let Some(t) = &self.token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .context("cannot make the request")?;
        let resp = match &self.endpoint {
            Endpoint::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p).await.with_context(|| {
                    format!(
                        "cannot connect to {}: is `kiln serve` running (or give --socket / --url)?",
                        p.display()
                    )
                })?;
                exchange(s, req).await?
            }
            Endpoint::Tcp { host, port, .. } => {
                let s = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .with_context(|| format!("cannot connect to {}", self.endpoint))?;
                match &self.tls {
                    Some(connector) => {
                        let name = rustls::pki_types::ServerName::try_from(host.clone())
                            .map_err(|_| anyhow!("{host:?} is not a valid TLS server name"))?;
                        let s = connector.connect(name, s).await.with_context(|| {
                            format!(
                                "TLS handshake with {} failed (a self-signed server certificate needs --cacert FILE)",
                                self.endpoint
                            )
                        })?;
                        exchange(s, req).await?
                    }
                    None => exchange(s, req).await?,
                }
            }
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut body = resp.into_body();
        let mut out = Vec::new();
        match sink {
            Sink::File(path) if (200..300).contains(&status) => {
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                while let Some(frame) = body.frame().await {
                    let frame = frame.context("the reply was cut off")?;
                    if let Some(data) = frame.data_ref() {
                        f.write_all(data)
                            .with_context(|| format!("cannot write {}", path.display()))?;
                    }
                }
                f.sync_all()
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            _ => {
                out = body
                    .collect()
                    .await
                    .context("the reply was cut off")?
                    .to_bytes()
                    .to_vec();
            }
        }
        Ok(Reply {
            status,
            headers,
            body: out,
        })
    }
}

async fn exchange<S>(
    io: S,
    req: hyper::Request<Full<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .context("HTTP handshake failed")?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("connection ended with an error: {e}");
        }
    });
    sender
        .send_request(req)
        .await
        .context("the server closed the connection without a reply")
}

/// Trusts the system's CA certificates plus `cacert` (a private CA, or the server's own
/// self-signed certificate: one made with `openssl req -x509` is marked as a CA, which
/// WebPKI refuses as a server certificate, so a certificate given here is also accepted
/// when the server presents exactly it — the server must still prove it holds the key).
fn tls_connector(cacert: Option<&Path>) -> Result<tokio_rustls::TlsConnector> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!("system CA certificates: {e}");
    }
    let (added, _) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, "system CA certificates");
    let mut pinned = Vec::new();
    if let Some(path) = cacert {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read --cacert {}", path.display()))?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.with_context(|| format!("bad PEM in {}", path.display()))?;
            roots
                .add(cert.clone())
                .with_context(|| format!("cannot trust the certificate in {}", path.display()))?;
            pinned.push(cert);
        }
        if pinned.is_empty() {
            bail!("--cacert {} holds no PEM certificate", path.display());
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS configuration")?;
    let config = if pinned.is_empty() {
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        let webpki =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .context("TLS configuration")?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedOrWebPki { webpki, pinned }))
            .with_no_client_auth()
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// WebPKI verification, or else an exact match with a `--cacert` certificate.
#[derive(Debug)]
struct PinnedOrWebPki {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    pinned: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedOrWebPki {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(v) => Ok(v),
            Err(e) => {
                if self
                    .pinned
                    .iter()
                    .any(|p| p.as_ref() == end_entity.as_ref())
                {
                    tracing::debug!("server certificate accepted as given by --cacert ({e})");
                    Ok(rustls::client::danger::ServerCertVerified::assertion())
                } else {
                    Err(e)
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::Endpoint;

    #[test]
    fn urls() {
        let tcp = |host: &str, port, tls, prefix: &str| Endpoint::Tcp {
            host: host.into(),
            port,
            tls,
            prefix: prefix.into(),
        };
        assert_eq!(
            Endpoint::parse_url("http://127.0.0.1:4000").unwrap(),
            tcp("127.0.0.1", 4000, false, "")
        );
        assert_eq!(
            Endpoint::parse_url("https://build.example:8443/weldr/").unwrap(),
            tcp("build.example", 8443, true, "/weldr")
        );
        assert_eq!(
            Endpoint::parse_url("https://[::1]").unwrap(),
            tcp("::1", 443, true, "")
        );
        assert_eq!(
            Endpoint::parse_url("http://[::1]:81").unwrap().to_string(),
            "http://[::1]:81"
        );
        for bad in [
            "127.0.0.1:80",
            "ftp://x",
            "http://:80",
            "http://h:port",
            "http://[::1",
        ] {
            assert!(Endpoint::parse_url(bad).is_err(), "{bad}");
        }
    }
}
