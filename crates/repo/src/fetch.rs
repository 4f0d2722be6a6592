//! HTTP(S) and `file://` downloads with size limits, a request limit, retries with
//! exponential backoff for transient errors, conditional requests and progress events.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use tokio::sync::Semaphore;

use crate::cache::{ProgressEvent, ProgressFn};
use crate::error::RepoError;
use crate::release::Compression;

/// How many times a download is tried before its error is returned.
pub(crate) const MAX_ATTEMPTS: u32 = 3;
/// The wait after the first failed attempt; doubled after each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// The HTTP client, being built on a blocking thread (building it loads the system's
/// certificates, which takes a few milliseconds that overlap with reading the cache).
type ClientFuture = Shared<BoxFuture<'static, Result<reqwest::Client, String>>>;

/// Fetches URLs for the loader. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Fetcher {
    client: ClientFuture,
    /// For `check_ssl = false` sources; built on first use.
    insecure: Arc<OnceLock<reqwest::Client>>,
    permits: Arc<Semaphore>,
    pub(crate) progress: Option<ProgressFn>,
}

/// The validators of a cached response, sent as `If-None-Match` / `If-Modified-Since`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validators {
    pub(crate) fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// The outcome of a (conditional) GET.
#[derive(Debug)]
pub(crate) enum Got {
    /// HTTP 404/410, or a missing file.
    NotFound,
    /// HTTP 304: the cached copy the validators describe is current.
    NotModified,
    Body {
        bytes: Vec<u8>,
        validators: Validators,
    },
}

/// A failed attempt, and whether trying again may help.
struct Failure {
    error: RepoError,
    transient: bool,
}

fn build_client(insecure: bool) -> Result<reqwest::Client, RepoError> {
    reqwest::Client::builder()
        .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(Duration::from_secs(60))
        .tls_danger_accept_invalid_certs(insecure)
        .build()
        .map_err(|e| RepoError::Internal(format!("cannot build the HTTP client: {e}")))
}

impl Fetcher {
    /// Must be called inside a tokio runtime.
    pub(crate) fn new(concurrency: usize, progress: Option<ProgressFn>) -> Fetcher {
        let build = tokio::task::spawn_blocking(|| build_client(false).map_err(|e| e.to_string()));
        let client = async move {
            build
                .await
                .map_err(|e| format!("cannot build the HTTP client: {e}"))?
        }
        .boxed()
        .shared();
        Fetcher {
            client,
            insecure: Arc::new(OnceLock::new()),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            progress,
        }
    }

    fn emit(&self, event: ProgressEvent) {
        if let Some(p) = &self.progress {
            p(event);
        }
    }

    /// GETs `url`. `Ok(None)` for "not found" (HTTP 404/410, missing file); the body may be
    /// at most `max` bytes.
    pub(crate) async fn get(
        &self,
        source_id: &str,
        url: &str,
        check_ssl: bool,
        max: u64,
    ) -> Result<Option<Vec<u8>>, RepoError> {
        match self.fetch(source_id, url, check_ssl, max, None).await? {
            Got::Body { bytes, .. } => Ok(Some(bytes)),
            Got::NotFound => Ok(None),
            // Only possible with validators.
            Got::NotModified => Err(RepoError::Internal(format!(
                "{url}: HTTP 304 to an unconditional request"
            ))),
        }
    }

    /// GETs `url`, conditionally when `validators` are given (HTTP only). Transient errors
    /// (connection errors, timeouts, HTTP 5xx, truncated bodies) are retried up to
    /// [`MAX_ATTEMPTS`] times in all, with exponential backoff; the error returned then
    /// carries the number of attempts.
    pub(crate) async fn fetch(
        &self,
        source_id: &str,
        url: &str,
        check_ssl: bool,
        max: u64,
        validators: Option<&Validators>,
    ) -> Result<Got, RepoError> {
        let start = std::time::Instant::now();
        let mut attempt = 0;
        let mut backoff = FIRST_BACKOFF;
        let result = loop {
            attempt += 1;
            let r = {
                let _permit =
                    self.permits.acquire().await.map_err(|_| {
                        RepoError::Internal("the download limiter is closed".into())
                    })?;
                self.fetch_once(source_id, url, check_ssl, max, validators)
                    .await
            };
            match r {
                Ok(got) => break Ok(got),
                Err(f) if f.transient && attempt < MAX_ATTEMPTS => {
                    tracing::debug!(url, attempt, "retrying in {backoff:?} after: {}", f.error);
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(f) => break Err(f.error.with_attempts(attempt)),
            }
        };
        tracing::debug!(
            url,
            ms = start.elapsed().as_millis() as u64,
            attempts = attempt,
            bytes = match &result {
                Ok(Got::Body { bytes, .. }) => Some(bytes.len()),
                _ => None,
            },
            not_modified = matches!(result, Ok(Got::NotModified)),
            "fetched"
        );
        result
    }

    async fn fetch_once(
        &self,
        source_id: &str,
        url: &str,
        check_ssl: bool,
        max: u64,
        validators: Option<&Validators>,
    ) -> Result<Got, Failure> {
        let fetch_err = |message: String| RepoError::Fetch {
            source_id: source_id.to_string(),
            url: url.to_string(),
            message,
            attempts: 1,
        };
        let transient = |error| Failure {
            error,
            transient: true,
        };
        let fatal = |error| Failure {
            error,
            transient: false,
        };
        let too_big = || {
            fatal(fetch_err(format!(
                "the file is larger than the expected {max} bytes"
            )))
        };
        if let Some(path) = url.strip_prefix("file://") {
            return match tokio::fs::read(path).await {
                Ok(b) if b.len() as u64 > max => Err(too_big()),
                Ok(b) => {
                    self.emit(ProgressEvent::FetchStarted {
                        url: url.to_string(),
                        total: Some(b.len() as u64),
                    });
                    self.emit(ProgressEvent::Fetched {
                        url: url.to_string(),
                        bytes: b.len() as u64,
                    });
                    Ok(Got::Body {
                        bytes: b,
                        validators: Validators::default(),
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Got::NotFound),
                Err(e) => Err(fatal(RepoError::io(path, e))),
            };
        }
        let client = if check_ssl {
            self.client
                .clone()
                .await
                .map_err(|e| fatal(RepoError::Internal(e)))?
        } else {
            match self.insecure.get() {
                Some(c) => c.clone(),
                None => {
                    let c = build_client(true).map_err(fatal)?;
                    self.insecure.get_or_init(|| c).clone()
                }
            }
        };
        let mut req = client.get(url);
        if let Some(v) = validators {
            if let Some(etag) = &v.etag {
                req = req.header(IF_NONE_MATCH, etag);
            }
            if let Some(lm) = &v.last_modified {
                req = req.header(IF_MODIFIED_SINCE, lm);
            }
        }
        let mut resp = req.send().await.map_err(|e| {
            let message = error_chain(&e);
            // A bad URL, a redirect loop or a certificate that is not accepted does not
            // get better by trying again (rustls's certificate errors come as connect
            // errors; only their message tells them apart).
            if e.is_builder() || e.is_redirect() || message.contains("certificate") {
                fatal(fetch_err(message))
            } else {
                transient(fetch_err(message))
            }
        })?;
        let status = resp.status().as_u16();
        if status == 404 || status == 410 {
            return Ok(Got::NotFound);
        }
        if status == 304 && validators.is_some_and(|v| !v.is_empty()) {
            return Ok(Got::NotModified);
        }
        if !resp.status().is_success() {
            let err = RepoError::HttpStatus {
                source_id: source_id.to_string(),
                url: url.to_string(),
                status,
                attempts: 1,
            };
            return Err(if status >= 500 {
                transient(err)
            } else {
                fatal(err)
            });
        }
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let got_validators = Validators {
            etag: header(ETAG),
            last_modified: header(LAST_MODIFIED),
        };
        let length = resp.content_length();
        if length.is_some_and(|l| l > max) {
            return Err(too_big());
        }
        self.emit(ProgressEvent::FetchStarted {
            url: url.to_string(),
            total: length,
        });
        let mut body = Vec::with_capacity(length.unwrap_or(0).min(max) as usize);
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if (body.len() + chunk.len()) as u64 > max {
                        return Err(too_big());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                // The connection dropped or timed out mid-body.
                Err(e) => return Err(transient(fetch_err(error_chain(&e)))),
            }
        }
        if let Some(l) = length
            && body.len() as u64 != l
        {
            return Err(transient(fetch_err(format!(
                "the body is truncated: {} of {l} bytes",
                body.len()
            ))));
        }
        self.emit(ProgressEvent::Fetched {
            url: url.to_string(),
            bytes: body.len() as u64,
        });
        Ok(Got::Body {
            bytes: body,
            validators: got_validators,
        })
    }
}

/// An error with its causes ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// Decompresses `data`; the output may be at most `limit` bytes.
pub(crate) fn decompress(c: Compression, data: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let reader: Box<dyn Read + '_> = match c {
        Compression::None => {
            if data.len() as u64 > limit {
                return Err(format!("larger than {limit} bytes"));
            }
            return Ok(data.to_vec());
        }
        Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(data)),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(data)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(data).map_err(|e| e.to_string())?)
        }
        Compression::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(data)),
    };
    let mut out = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() as u64 > limit {
        return Err(format!("it decompresses to more than {limit} bytes"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sample() -> Vec<u8> {
        (0..20000u32)
            .flat_map(|i| format!("Package: p{i}\nVersion: 1\n\n").into_bytes())
            .collect()
    }

    #[test]
    fn all_compressions_round_trip_and_truncation_fails() {
        let data = sample();
        let xz = {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        };
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        };
        let zst = zstd::stream::encode_all(&data[..], 3).unwrap();
        let lz4 = {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        };
        for (c, bytes) in [
            (Compression::Xz, &xz),
            (Compression::Gzip, &gz),
            (Compression::Zstd, &zst),
            (Compression::Lz4, &lz4),
            (Compression::None, &data),
        ] {
            assert_eq!(
                decompress(c, bytes, data.len() as u64).unwrap(),
                data,
                "{c:?}"
            );
            assert!(
                decompress(c, bytes, data.len() as u64 - 1).is_err(),
                "{c:?}: limit"
            );
            if c != Compression::None {
                let cut = &bytes[..bytes.len() * 2 / 3];
                assert!(decompress(c, cut, u64::MAX).is_err(), "{c:?}: truncated");
                let mut bad = bytes.clone();
                let mid = bad.len() / 2;
                bad[mid] ^= 0xff;
                bad[mid + 1] ^= 0x55;
                // Either an error or (for formats without checksums of the content) a
                // different output; never a panic.
                if let Ok(out) = decompress(c, &bad, u64::MAX) {
                    assert_ne!(out, data, "{c:?}");
                }
            }
        }
    }
}
