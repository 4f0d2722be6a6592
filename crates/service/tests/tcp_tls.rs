//! The TCP listener with TLS and a bearer token (on 127.0.0.1, with a self-signed
//! certificate made here), and garbage of every kind on both listeners: the server must
//! refuse it with the right status and keep answering.

mod common;

use common::TestServer;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

const TOKEN: &str = "c0ffee00c0ffee00c0ffee00c0ffee00";

struct Tls {
    addr: std::net::SocketAddr,
    connector: tokio_rustls::TlsConnector,
}

struct Reply {
    status: u16,
    headers: hyper::HeaderMap,
    body: serde_json::Value,
}

impl Tls {
    async fn connect(&self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        self.connector
            .connect(name, tcp)
            .await
            .expect("TLS handshake")
    }

    async fn send(&self, method: &str, path: &str, auth: Option<&str>, body: Vec<u8>) -> Reply {
        let io = TokioIo::new(self.connect().await);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1")
            .header("content-type", "application/json");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = sender
            .send_request(req.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        }
    }
}

async fn start(dir: &std::path::Path) -> (TestServer, Tls) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    let (c2, k2, t2) = (cert.clone(), key, dir.join("token"));
    let s = TestServer::start_with(dir, dir.join("store"), move |c| {
        c.seed_examples = false;
        c.max_body = 64 << 10;
        c.tls = Some(kiln_service::tls::TlsFiles { cert: c2, key: k2 });
        c.token_file = Some(t2);
    })
    .await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls = Tls {
        addr: s.tcp,
        connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
    };
    (s, tls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (s, tls) = start(dir.path()).await;
    let good = format!("Bearer {TOKEN}");

    let r = tls.send("GET", "/api/status", Some(&good), vec![]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["api"], "1");
    // Scheme names are case-insensitive.
    let r = tls
        .send(
            "GET",
            "/api/status",
            Some(&format!("bearer {TOKEN}")),
            vec![],
        )
        .await;
    assert_eq!(r.status, 200);

    let wrong_last = format!("Bearer {}1", &TOKEN[..TOKEN.len() - 1]);
    let longer = format!("Bearer {TOKEN}0");
    for auth in [
        None,
        Some(wrong_last.as_str()),
        Some(longer.as_str()),
        Some("Bearer "),
        Some("Basic YWxpY2U6c2VjcmV0"),
        Some(TOKEN),
    ] {
        let r = tls
            .send("GET", "/api/v1/blueprints/list", auth, vec![])
            .await;
        assert_eq!(r.status, 401, "{auth:?}");
        assert_eq!(r.body["status"], false);
        assert_eq!(r.body["errors"][0]["id"], "HTTPError");
        assert_eq!(r.body["errors"][0]["code"], 401);
        assert!(
            r.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }
    // Without the token nothing runs: no push lands, and the body never reaches a handler
    // (401, not 413). A body far larger than the socket buffers still gets its answer: the
    // server reads the rest of the body and throws it away instead of resetting a
    // connection the client is still writing to.
    let bp = br#"{"name": "sneaky", "packages": []}"#.to_vec();
    let r = tls
        .send("POST", "/api/v1/blueprints/new", None, bp.clone())
        .await;
    assert_eq!(r.status, 401);
    let r = tls
        .send(
            "POST",
            "/api/v1/blueprints/new",
            None,
            vec![b'x'; 512 << 10],
        )
        .await;
    assert_eq!(r.status, 401);
    let r = tls
        .send("GET", "/api/v1/blueprints/list", Some(&good), vec![])
        .await;
    assert_eq!(r.body["total"], 0, "{}", r.body);
    // With it, the body limit answers 413 with a weldr error.
    let r = tls
        .send(
            "POST",
            "/api/v1/blueprints/new",
            Some(&good),
            vec![b'x'; 512 << 10],
        )
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.body["errors"][0]["id"], "HTTPError");
    let r = tls
        .send("POST", "/api/v1/blueprints/new", Some(&good), bp)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // The unix socket is not behind the token.
    let r = s.get("/api/v1/blueprints/list").await;
    assert_eq!(r.json()["blueprints"][0], "sneaky");
    s.stop().await;
}

/// Reads what the server sends back until it closes (or 5 s pass).
async fn drain<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_does_not_hurt() {
    let dir = tempfile::tempdir().unwrap();
    let (s, tls) = start(dir.path()).await;
    let good = format!("Bearer {TOKEN}");

    // Plain HTTP to the TLS port gets no HTTP reply.
    let mut tcp = tokio::net::TcpStream::connect(s.tcp).await.unwrap();
    tcp.write_all(b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let back = drain(&mut tcp).await;
    assert!(
        !back.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&back)
    );
    // Random bytes, a half handshake, and a connection that says nothing.
    for junk in [
        &[0u8, 0xff, 0x13, 0x37][..],
        &[0x16, 0x03, 0x01, 0x40, 0x00][..],
    ] {
        let mut tcp = tokio::net::TcpStream::connect(s.tcp).await.unwrap();
        tcp.write_all(junk).await.unwrap();
        drop(tcp);
    }
    let idle = tokio::net::TcpStream::connect(s.tcp).await.unwrap();

    // Broken HTTP inside TLS and on the socket: a 4xx or a closed connection.
    for raw in [
        &b"GARBAGE\r\n\r\n"[..],
        &b"GET /api/status HTTP/9.9\r\n\r\n"[..],
        &b"POST /api/v1/blueprints/new HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"[..],
    ] {
        let mut t = tls.connect().await;
        t.write_all(raw).await.unwrap();
        let back = drain(&mut t).await;
        assert!(
            back.is_empty() || back.starts_with(b"HTTP/1.1 4"),
            "{:?}",
            String::from_utf8_lossy(&back)
        );
        let mut u = tokio::net::UnixStream::connect(&s.socket).await.unwrap();
        u.write_all(raw).await.unwrap();
        let back = drain(&mut u).await;
        assert!(
            back.is_empty() || back.starts_with(b"HTTP/1.1 4"),
            "{:?}",
            String::from_utf8_lossy(&back)
        );
    }
    // A header far beyond any sane size.
    let mut u = tokio::net::UnixStream::connect(&s.socket).await.unwrap();
    let mut big = b"GET /api/status HTTP/1.1\r\nHost: x\r\nX-Junk: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 2 << 20));
    let _ = u.write_all(&big).await;
    let back = drain(&mut u).await;
    assert!(
        back.is_empty() || back.starts_with(b"HTTP/1.1 431") || back.starts_with(b"HTTP/1.1 4"),
        "{:?}",
        String::from_utf8_lossy(&back[..back.len().min(200)])
    );

    // Deeply nested JSON and TOML, bad UTF-8, traversal names: 400s, never a crash.
    let deep_json = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_toml = format!("name = {}{}", "[".repeat(10_000), "]".repeat(10_000));
    for (ct, body) in [
        ("application/json", deep_json.into_bytes()),
        ("text/x-toml", deep_toml.into_bytes()),
        ("text/x-toml", vec![0xc3, 0x28, b'=', b'"']),
        (
            "application/json",
            br#"{"name": "../../etc/passwd"}"#.to_vec(),
        ),
        ("text/x-toml", b"name = \"a/b\"\n".to_vec()),
    ] {
        for route in [
            "blueprints/new",
            "blueprints/workspace",
            "projects/source/new",
        ] {
            let r = s.post(&format!("/api/v1/{route}"), ct, body.clone()).await;
            assert_eq!(r.status, 400, "{route} {}", r.text());
            assert_eq!(r.json()["status"], false);
        }
    }
    for path in [
        "/api/v1/projects/source/info/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/compose/info/..%2F..%2Fetc",
        "/api/v1/compose/image/..%2Fblueprints.git",
    ] {
        let r = s.get(path).await;
        assert!(r.status == 400 || r.status == 404, "{path}: {}", r.text());
        assert_eq!(r.json()["status"], false, "{path}");
    }

    // Still serving on both listeners.
    drop(idle);
    assert_eq!(s.get("/api/status").await.status, 200);
    let r = tls.send("GET", "/api/status", Some(&good), vec![]).await;
    assert_eq!(r.status, 200);
    s.stop().await;
}
