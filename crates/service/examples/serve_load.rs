//! Load check for `kiln serve` (run by `bench/serve_load.sh`): N concurrent clients for a
//! bounded time, mixing blueprint pushes (to a few blueprints), depsolves and status reads
//! against a running server on loopback TCP or its unix socket, one connection per
//! request as composer-cli does. Reports errors, p50/p99 per request kind, and checks
//! that every successful push is a commit in `<state>/blueprints.git`.
//!
//! ```text
//! serve_load --url http://127.0.0.1:PORT | --socket PATH  --state DIR
//!            [--clients 50] [--seconds 60] [--blueprints 4]
//! ```

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone)]
enum Target {
    Tcp(String),
    Unix(PathBuf),
}

struct Args {
    target: Target,
    state: PathBuf,
    clients: usize,
    seconds: u64,
    blueprints: usize,
}

fn args() -> Args {
    let mut a = std::env::args().skip(1);
    let mut target = None;
    let mut state = None;
    let (mut clients, mut seconds, mut blueprints) = (50, 60, 4);
    while let Some(k) = a.next() {
        let mut v = || a.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--url" => {
                let u = v();
                let hostport = u
                    .strip_prefix("http://")
                    .expect("--url must be http://127.0.0.1:PORT")
                    .trim_end_matches('/')
                    .to_string();
                let host = hostport.rsplit_once(':').map(|x| x.0).unwrap_or_default();
                // Loopback only: this tool must never load another machine.
                assert!(
                    ["127.0.0.1", "localhost", "[::1]"].contains(&host),
                    "--url must be a loopback address"
                );
                target = Some(Target::Tcp(hostport));
            }
            "--socket" => target = Some(Target::Unix(v().into())),
            "--state" => state = Some(PathBuf::from(v())),
            "--clients" => clients = v().parse().expect("--clients N"),
            "--seconds" => seconds = v().parse().expect("--seconds N"),
            "--blueprints" => blueprints = v().parse().expect("--blueprints N"),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(seconds <= 600 && clients <= 500, "keep the load bounded");
    Args {
        target: target.expect("--url or --socket"),
        state: state.expect("--state DIR (the server's state directory)"),
        clients,
        seconds,
        blueprints: blueprints.max(1),
    }
}

/// One request on a fresh connection: status and body.
async fn request(
    target: &Target,
    method: &str,
    path: &str,
    body: Option<(&str, String)>,
) -> Result<(u16, Bytes), String> {
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    let (req, body) = match body {
        Some((ct, b)) => (req.header("content-type", ct), Bytes::from(b)),
        None => (req, Bytes::new()),
    };
    let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
    macro_rules! send {
        ($stream:expr) => {{
            let io = TokioIo::new($stream);
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(conn);
            sender
                .send_request(req)
                .await
                .map_err(|e| format!("send: {e}"))?
        }};
    }
    let resp = match target {
        Target::Tcp(hp) => send!(
            tokio::net::TcpStream::connect(hp)
                .await
                .map_err(|e| format!("connect: {e}"))?
        ),
        Target::Unix(p) => send!(
            tokio::net::UnixStream::connect(p)
                .await
                .map_err(|e| format!("connect: {e}"))?
        ),
    };
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok((status, bytes))
}

fn blueprint(name: &str, client: usize, n: u64) -> String {
    format!(
        "name = \"{name}\"\ndescription = \"load client {client} push {n}\"\nversion = \"0.0.1\"\n\n\
         [[packages]]\nname = \"tmux\"\nversion = \"*\"\n\n\
         [[packages]]\nname = \"curl\"\nversion = \"*\"\n\n\
         [[packages]]\nname = \"openssh-server\"\nversion = \"*\"\n"
    )
}

#[derive(Default)]
struct Stats {
    /// Latencies in microseconds per kind.
    lat: BTreeMap<&'static str, Vec<u64>>,
    errors: BTreeMap<&'static str, Vec<String>>,
    pushes: BTreeMap<String, u64>,
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn commits(state: &std::path::Path, name: &str) -> u64 {
    let out = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(state.join("blueprints.git"))
        .args(["rev-list", "--count", "master", "--"])
        .arg(format!("{name}.toml"))
        .output()
        .expect("run git");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Whether a reply is a success for its kind.
fn check(kind: &str, status: u16, body: &[u8]) -> Result<(), String> {
    if status != 200 {
        return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(body)));
    }
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let ok = match kind {
        "push" => v["status"] == true,
        "depsolve" => {
            v["errors"].as_array().is_some_and(|e| e.is_empty())
                && v["blueprints"][0]["dependencies"]
                    .as_array()
                    .is_some_and(|d| d.len() > 10)
        }
        _ => v["api"] == "1",
    };
    if ok {
        Ok(())
    } else {
        Err(format!("unexpected reply: {v}"))
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let a = args();
    let names: Vec<String> = (0..a.blueprints).map(|i| format!("load-{i}")).collect();

    // Seed the blueprints and warm the package universe.
    for n in &names {
        let (s, b) = request(
            &a.target,
            "POST",
            "/api/v1/blueprints/new",
            Some(("text/x-toml", blueprint(n, 0, 0))),
        )
        .await
        .expect("seed push");
        check("push", s, &b).expect("seed push");
    }
    let mut warm = Vec::new();
    for i in 0..21 {
        let t = Instant::now();
        let path = format!("/api/v1/blueprints/depsolve/{}", names[i % names.len()]);
        let (s, b) = request(&a.target, "GET", &path, None)
            .await
            .expect("warm depsolve");
        check("depsolve", s, &b).expect("warm depsolve");
        if i > 0 {
            warm.push(t.elapsed().as_micros() as u64);
        }
    }
    warm.sort_unstable();
    let before: BTreeMap<String, u64> = names
        .iter()
        .map(|n| (n.clone(), commits(&a.state, n)))
        .collect();

    let stats = Arc::new(std::sync::Mutex::new(Stats::default()));
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..a.clients {
        let (target, names, stats) = (a.target.clone(), names.clone(), stats.clone());
        tasks.spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                // Per 10 requests: 2 pushes, 3 depsolves, 5 status reads, interleaved
                // differently per client.
                let slot = (n as usize + client) % 10;
                let bp = &names[(n as usize + client) % names.len()];
                let (kind, method, path, body) = match slot {
                    0 | 5 => (
                        "push",
                        "POST",
                        "/api/v1/blueprints/new".to_string(),
                        Some(("text/x-toml", blueprint(bp, client, n))),
                    ),
                    1 | 4 | 7 => (
                        "depsolve",
                        "GET",
                        format!("/api/v1/blueprints/depsolve/{bp}"),
                        None,
                    ),
                    _ => ("status", "GET", "/api/status".to_string(), None),
                };
                let t = Instant::now();
                let r = request(&target, method, &path, body).await;
                let us = t.elapsed().as_micros() as u64;
                let verdict = r.and_then(|(s, b)| check(kind, s, &b));
                let mut guard = stats.lock().unwrap();
                let st = &mut *guard;
                st.lat.entry(kind).or_default().push(us);
                match verdict {
                    Ok(()) if kind == "push" => *st.pushes.entry(bp.clone()).or_default() += 1,
                    Ok(()) => {}
                    Err(e) => st.errors.entry(kind).or_default().push(e),
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();

    let mut guard = stats.lock().unwrap();
    let st = &mut *guard;
    println!(
        "clients {}, {:.1} s, blueprints {}",
        a.clients, elapsed, a.blueprints
    );
    println!(
        "warm depsolve, one client: p50 {:.1} ms, p99 {:.1} ms ({} runs)",
        pct(&warm, 0.5),
        pct(&warm, 0.99),
        warm.len()
    );
    println!();
    println!("| request | count | errors | req/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    let mut total_errors = 0;
    for (kind, lat) in st.lat.iter_mut() {
        lat.sort_unstable();
        let errors = st.errors.get(kind).map_or(0, Vec::len);
        total_errors += errors;
        println!(
            "| {kind} | {} | {errors} | {:.1} | {:.1} | {:.1} |",
            lat.len(),
            lat.len() as f64 / elapsed,
            pct(lat, 0.5),
            pct(lat, 0.99)
        );
    }
    for (kind, errs) in &st.errors {
        for e in errs.iter().take(3) {
            eprintln!("error ({kind}): {e}");
        }
    }
    let mut lost = 0i64;
    println!();
    for n in &names {
        let pushed = st.pushes.get(n).copied().unwrap_or(0);
        let committed = commits(&a.state, n) - before[n];
        lost += pushed as i64 - committed as i64;
        println!("{n}: {pushed} successful pushes, {committed} new commits");
    }
    println!("errors: {total_errors}, lost commits: {lost}");
    if total_errors > 0 || lost != 0 {
        std::process::exit(1);
    }
}
