//! HTTP(S) and `file://` downloads with size limits, a request limit and one retry.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::error::RepoError;
use crate::release::Compression;

/// Fetches URLs for the loader. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Fetcher {
    client: reqwest::Client,
    insecure: reqwest::Client,
    permits: Arc<Semaphore>,
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
    pub(crate) fn new(concurrency: usize) -> Result<Fetcher, RepoError> {
        Ok(Fetcher {
            client: build_client(false)?,
            insecure: build_client(true)?,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        })
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
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| RepoError::Internal("the download limiter is closed".into()))?;
        let start = std::time::Instant::now();
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            let r = self.get_once(source_id, url, check_ssl, max).await;
            match &r {
                Err(e) if e.is_network() && attempt < 2 => {
                    tracing::debug!(url, "retrying after: {e}");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                _ => break r,
            }
        };
        tracing::debug!(
            url,
            ms = start.elapsed().as_millis() as u64,
            bytes = result
                .as_ref()
                .ok()
                .and_then(|b| b.as_ref())
                .map(|b| b.len()),
            "fetched"
        );
        result
    }

    async fn get_once(
        &self,
        source_id: &str,
        url: &str,
        check_ssl: bool,
        max: u64,
    ) -> Result<Option<Vec<u8>>, RepoError> {
        let fetch_err = |message: String| RepoError::Fetch {
            source_id: source_id.to_string(),
            url: url.to_string(),
            message,
        };
        let too_big = || fetch_err(format!("the file is larger than the expected {max} bytes"));
        if let Some(path) = url.strip_prefix("file://") {
            return match tokio::fs::read(path).await {
                Ok(b) if b.len() as u64 > max => Err(too_big()),
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(RepoError::io(path, e)),
            };
        }
        let client = if check_ssl {
            &self.client
        } else {
            &self.insecure
        };
        let mut resp = client
            .get(url)
            .send()
            .await
            .map_err(|e| fetch_err(error_chain(&e)))?;
        let status = resp.status().as_u16();
        if status == 404 || status == 410 {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(RepoError::HttpStatus {
                source_id: source_id.to_string(),
                url: url.to_string(),
                status,
            });
        }
        if resp.content_length().is_some_and(|l| l > max) {
            return Err(too_big());
        }
        let mut body = Vec::with_capacity(resp.content_length().unwrap_or(0).min(max) as usize);
        while let Some(chunk) = resp.chunk().await.map_err(|e| fetch_err(error_chain(&e)))? {
            if (body.len() + chunk.len()) as u64 > max {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(body))
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
