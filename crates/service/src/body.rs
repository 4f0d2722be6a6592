//! Request bodies: read with a size limit, and thrown away after an early answer.
//!
//! Most HTTP clients send the whole request body before they read the reply. When the
//! server answers early (401 before reading, 413 part way through) and closes with the
//! body still arriving, the client's writes fail with EPIPE, and the TCP reset the kernel
//! sends for unread data can destroy the answer already waiting in the client's receive
//! buffer: the client sees a broken connection instead of the 401 or 413. So the rest of
//! such a body is read and dropped in the background, as web servers do with "lingering
//! close" — bounded in bytes and time, so a client cannot keep a connection busy with it.

use crate::error::ApiError;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use futures_util::StreamExt;
use std::time::Duration;

/// At most this much of a refused body is read and thrown away.
const DISCARD_LIMIT: usize = 4 << 20;
/// And for at most this long.
const DISCARD_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads the request body, at most `limit` bytes; 413 beyond, after discarding the rest.
pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            // A broken connection: nobody is left to read the answer.
            tracing::debug!("reading the request body failed: {e}");
            ApiError::http(StatusCode::BAD_REQUEST)
        })?;
        if buf.len() + chunk.len() > limit {
            tracing::debug!("request body over the {limit}-byte limit");
            discard_stream(stream, buf.len() + chunk.len());
            return Err(ApiError::http(StatusCode::PAYLOAD_TOO_LARGE));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// Reads what is left of a body the server will not use and drops it, in the background.
pub fn discard(body: Body) {
    discard_stream(body.into_data_stream(), 0);
}

fn discard_stream(mut stream: axum::body::BodyDataStream, already: usize) {
    tokio::spawn(async move {
        let mut seen = already;
        let drain = async {
            while let Some(Ok(chunk)) = stream.next().await {
                seen += chunk.len();
                if seen > DISCARD_LIMIT {
                    break;
                }
            }
        };
        // Past the bounds the body is dropped and the connection closes as before.
        let _ = tokio::time::timeout(DISCARD_TIMEOUT, drain).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_up_to_the_limit() {
        let b = read_limited(Body::from(vec![7u8; 1000]), 1000)
            .await
            .unwrap();
        assert_eq!(b.len(), 1000);
        assert!(b.iter().all(|&x| x == 7));
        let e = read_limited(Body::from(vec![7u8; 1001]), 1000)
            .await
            .unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn many_chunks_count_together() {
        let chunks = (0..10).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![1u8; 100])));
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        assert_eq!(read_limited(body, 1000).await.unwrap().len(), 1000);
        let chunks = (0..11).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![1u8; 100])));
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        assert!(read_limited(body, 1000).await.is_err());
    }
}
