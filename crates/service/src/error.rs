//! Errors: [`ServiceError`] for starting and running the server, [`ApiError`] for the weldr
//! error replies (`{"status": false, "errors": [{"id", "msg"}]}`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::path::PathBuf;

/// What can stop the server from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot listen on {what}: {source}")]
    Listen {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "refusing to listen on {addr}: it is not a loopback address, and serving beyond this machine needs TLS and a bearer token; add {missing}, or listen on 127.0.0.1 or ::1 (or only the unix socket)"
    )]
    NotLoopback {
        addr: std::net::SocketAddr,
        missing: &'static str,
    },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot set up {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another server is running on {path}")]
    SocketInUse { path: PathBuf },
    #[error(transparent)]
    History(#[from] crate::history::HistoryError),
}

/// One entry of a weldr error list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorEntry {
    pub id: &'static str,
    pub msg: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
}

impl ErrorEntry {
    pub fn new(id: &'static str, msg: impl Into<String>) -> ErrorEntry {
        ErrorEntry {
            id,
            msg: msg.into(),
            code: None,
        }
    }
}

/// A weldr error reply: an HTTP status and the error list.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub errors: Vec<ErrorEntry>,
}

impl ApiError {
    /// HTTP 400 with one error.
    pub fn bad(id: &'static str, msg: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            errors: vec![ErrorEntry::new(id, msg)],
        }
    }

    /// `HTTPError` with the status in `code`, as weldr reports routing errors.
    pub fn http(status: StatusCode) -> ApiError {
        ApiError {
            status,
            errors: vec![ErrorEntry {
                id: "HTTPError",
                msg: status.canonical_reason().unwrap_or("Error").to_string(),
                code: Some(status.as_u16()),
            }],
        }
    }

    pub fn not_found() -> ApiError {
        ApiError::http(StatusCode::NOT_FOUND)
    }

    pub fn invalid_chars() -> ApiError {
        ApiError::bad("InvalidChars", "Invalid characters in API path")
    }

    pub fn internal(msg: impl std::fmt::Display) -> ApiError {
        tracing::error!("internal error: {msg}");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            errors: vec![ErrorEntry::new("InternalServerError", msg.to_string())],
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    status: bool,
    errors: &'a [ErrorEntry],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&ErrorBody {
            status: false,
            errors: &self.errors,
        })
        .unwrap_or_else(|_| b"{\"status\":false,\"errors\":[]}".to_vec());
        let mut resp = (self.status, body).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
        resp
    }
}

pub const JSON: &str = "application/json; charset=utf-8";
