//! A real `kiln-service` server on a temporary unix socket and a loopback TCP port, and a
//! small HTTP/1.1 client for both.

#![allow(dead_code)]

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub struct TestServer {
    pub state: PathBuf,
    pub store: PathBuf,
    pub socket: PathBuf,
    pub tcp: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "reply is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first error id of a weldr error reply.
    pub fn error_id(&self) -> String {
        let j = self.json();
        assert_eq!(j["status"], false, "{j}");
        j["errors"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn error_msg(&self) -> String {
        self.json()["errors"][0]["msg"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl TestServer {
    /// Starts a server with state and store under `dir`.
    pub async fn start(dir: &Path) -> TestServer {
        TestServer::start_with(dir, dir.join("store"), |_| {}).await
    }

    pub async fn start_with(
        dir: &Path,
        store: PathBuf,
        tweak: impl FnOnce(&mut kiln_service::Config),
    ) -> TestServer {
        let state = dir.join("state");
        let socket = dir.join("run/api.socket");
        let env = kiln_service::Env {
            store: store.clone(),
            state: state.clone(),
            config: None,
            offline: false,
        };
        let mut config = kiln_service::Config::new(env);
        config.socket = Some(socket.clone());
        config.listen = Some("127.0.0.1:0".parse().unwrap());
        tweak(&mut config);
        let server = kiln_service::Server::bind(config).await.expect("bind");
        let tcp = server.tcp_addr().expect("tcp address");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async move {
                    let _ = rx.await;
                })
                .await
                .expect("serve");
        });
        TestServer {
            state,
            store,
            socket,
            tcp,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the server and waits until it is gone.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task");
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None, Vec::new()).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.request("DELETE", path, None, Vec::new()).await
    }

    pub async fn post(&self, path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        self.request("POST", path, Some(content_type), body.into())
            .await
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> Reply {
        self.post(path, "application/json", body.to_string()).await
    }

    pub async fn post_toml(&self, path: &str, body: &str) -> Reply {
        self.post(path, "text/x-toml", body).await
    }

    /// A request over the unix socket.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .expect("connect to the socket");
        send(TokioIo::new(stream), method, path, content_type, body).await
    }

    /// A request over loopback TCP.
    pub async fn request_tcp(&self, method: &str, path: &str) -> Reply {
        let stream = tokio::net::TcpStream::connect(self.tcp)
            .await
            .expect("connect over TCP");
        send(TokioIo::new(stream), method, path, None, Vec::new()).await
    }
}

async fn send<S>(
    io: TokioIo<S>,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Reply
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .expect("handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let req = req.body(Full::new(Bytes::from(body))).expect("request");
    let resp = sender.send_request(req).await.expect("send request");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("read body")
        .to_bytes()
        .to_vec();
    Reply {
        status,
        content_type,
        body,
    }
}

/// `B1` of the conformance list.
pub fn b1() -> serde_json::Value {
    serde_json::json!({
        "name": "bp1", "description": "d", "version": "0.0.1",
        "packages": [{"name": "bash", "version": "*"}], "modules": [], "groups": []
    })
}

/// Runs `git --git-dir <state>/blueprints.git ARGS` and returns its stdout.
pub fn git(state: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(state.join("blueprints.git"))
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
