//! Test support: a gpg home with generated keys, a signed apt repository built from tiny
//! .debs, and an HTTP server on 127.0.0.1 that logs requests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

pub fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

// ---------------------------------------------------------------- gpg

/// A throw-away GnuPG home. Needs `gpg` (Debian package `gnupg`).
pub struct Gpg {
    home: tempfile::TempDir,
}

impl Gpg {
    pub fn new() -> Gpg {
        let home = tempfile::Builder::new()
            .prefix("kg")
            .tempdir_in("/tmp")
            .unwrap();
        let g = Gpg { home };
        let v = g.cmd().arg("--version").output();
        assert!(
            v.is_ok_and(|o| o.status.success()),
            "these tests need gpg (apt-get install gnupg)"
        );
        g
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", self.home.path()).args([
            "--batch",
            "--quiet",
            "--no-tty",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ]);
        c
    }

    pub fn run(&self, args: &[&str]) -> Vec<u8> {
        let out = self.cmd().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "gpg {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Generates a key; returns its fingerprint.
    pub fn gen_key(
        &self,
        uid: &str,
        algo: &str,
        usage: &str,
        expire: &str,
        faked: Option<&str>,
    ) -> String {
        let mut args = Vec::new();
        let ft;
        if let Some(f) = faked {
            ft = format!("--faked-system-time={f}");
            args.push(ft.as_str());
        }
        args.extend(["--quick-gen-key", uid, algo, usage, expire]);
        self.run(&args);
        self.fingerprint(uid)
    }

    pub fn fingerprint(&self, uid: &str) -> String {
        let out = String::from_utf8(self.run(&["--with-colons", "--list-keys", uid])).unwrap();
        out.lines()
            .find_map(|l| l.strip_prefix("fpr:::::::::"))
            .map(|s| s.trim_end_matches(':').to_string())
            .expect("fingerprint")
    }

    pub fn add_signing_subkey(&self, fpr: &str) -> String {
        self.run(&["--quick-add-key", fpr, "ed25519", "sign", "0"]);
        let out = String::from_utf8(self.run(&["--with-colons", "--list-keys", fpr])).unwrap();
        out.lines()
            .filter_map(|l| l.strip_prefix("fpr:::::::::"))
            .map(|s| s.trim_end_matches(':').to_string())
            .nth(1)
            .expect("subkey fingerprint")
    }

    pub fn export(&self, fpr: &str) -> Vec<u8> {
        self.run(&["--export", fpr])
    }

    pub fn export_armor(&self, fpr: &str) -> String {
        String::from_utf8(self.run(&["--armor", "--export", fpr])).unwrap()
    }

    /// Imports the revocation certificate gpg made when it generated the key.
    pub fn revoke(&self, fpr: &str) {
        let rev = self
            .home
            .path()
            .join("openpgp-revocs.d")
            .join(format!("{fpr}.rev"));
        let text = std::fs::read_to_string(rev)
            .unwrap()
            .replace(":-----BEGIN", "-----BEGIN");
        let p = self.home.path().join("rev.asc");
        std::fs::write(&p, text).unwrap();
        self.run(&["--import", p.to_str().unwrap()]);
    }

    pub fn clearsign(
        &self,
        signer: &str,
        input: &Path,
        output: &Path,
        digest: &str,
        faked: Option<&str>,
    ) {
        let mut args = vec!["--yes"];
        let ft;
        if let Some(f) = faked {
            ft = format!("--faked-system-time={f}");
            args.push(ft.as_str());
        }
        args.extend([
            "--local-user",
            signer,
            "--digest-algo",
            digest,
            "--clearsign",
            "--output",
            output.to_str().unwrap(),
            input.to_str().unwrap(),
        ]);
        self.run(&args);
    }

    pub fn detach_sign(&self, signer: &str, input: &Path, output: &Path) {
        self.run(&[
            "--yes",
            "--local-user",
            signer,
            "--digest-algo",
            "SHA512",
            "--armor",
            "--detach-sign",
            "--output",
            output.to_str().unwrap(),
            input.to_str().unwrap(),
        ]);
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

// ---------------------------------------------------------------- repository

#[derive(Clone, Copy, Debug)]
pub struct Pkg {
    pub name: &'static str,
    pub version: &'static str,
    pub arch: &'static str,
    pub depends: &'static str,
}

pub const fn pkg(name: &'static str, version: &'static str, arch: &'static str) -> Pkg {
    Pkg {
        name,
        version,
        arch,
        depends: "",
    }
}

/// Builds a tiny .deb with dpkg-deb; the same package gives the same bytes within a test
/// process (so that republishing an unchanged package keeps its Packages file unchanged).
pub fn make_deb(p: &Pkg) -> Vec<u8> {
    static DEBS: Mutex<Vec<(String, Vec<u8>)>> = Mutex::new(Vec::new());
    let key = format!("{}_{}_{}_{}", p.name, p.version, p.arch, p.depends);
    if let Some((_, d)) = DEBS.lock().unwrap().iter().find(|(k, _)| *k == key) {
        return d.clone();
    }
    let deb = build_deb(p);
    DEBS.lock().unwrap().push((key, deb.clone()));
    deb
}

fn build_deb(p: &Pkg) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join(format!("usr/share/doc/{}", p.name))).unwrap();
    let mut control = format!(
        "Package: {}\nVersion: {}\nArchitecture: {}\nMaintainer: kiln tests <t@kiln.invalid>\nDescription: test package {}\n",
        p.name, p.version, p.arch, p.name
    );
    if !p.depends.is_empty() {
        control.push_str(&format!("Depends: {}\n", p.depends));
    }
    std::fs::write(root.join("DEBIAN/control"), control).unwrap();
    std::fs::write(
        root.join(format!("usr/share/doc/{}/README", p.name)),
        format!("{} {}\n", p.name, p.version),
    )
    .unwrap();
    let out = dir.path().join("p.deb");
    let st = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "--build"])
        .arg(&root)
        .arg(&out)
        .output()
        .expect("dpkg-deb runs");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    std::fs::read(out).unwrap()
}

/// Writes the debs below `pool_root` and returns the Packages text (Filenames relative to
/// `filename_base`).
fn packages_text(pkgs: &[Pkg], files_root: &Path, pool_prefix: &str) -> String {
    let mut text = String::new();
    for p in pkgs {
        let deb = make_deb(p);
        let filename = format!("{pool_prefix}{}_{}_{}.deb", p.name, p.version, p.arch);
        let path = files_root.join(&filename);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &deb).unwrap();
        text.push_str(&format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\nMaintainer: kiln tests <t@kiln.invalid>\nInstalled-Size: 1\n",
            p.name, p.version, p.arch
        ));
        if !p.depends.is_empty() {
            text.push_str(&format!("Depends: {}\n", p.depends));
        }
        text.push_str(&format!(
            "Filename: {filename}\nSize: {}\nSHA256: {}\nDescription: test package {}\n\n",
            deb.len(),
            sha256_hex(&deb),
            p.name
        ));
    }
    text
}

pub fn xz(b: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

pub fn gz(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

#[derive(Clone, Debug)]
pub enum Sign {
    /// `InRelease` signed by this key (digest SHA512 unless `digest` says otherwise).
    InRelease(String),
    /// `Release` + `Release.gpg`.
    Detached(String),
    /// `Release` only.
    Unsigned,
}

#[derive(Clone, Debug)]
pub struct Publish {
    pub suite: String,
    pub sign: Sign,
    pub digest: String,
    pub faked_time: Option<String>,
    pub by_hash: bool,
    pub valid_until: Option<String>,
    /// Separate `binary-all` (false: `No-Support-for-Architecture-all: Packages` and
    /// `all` packages inside binary-amd64).
    pub separate_all: bool,
}

impl Publish {
    pub fn new(sign: Sign) -> Publish {
        Publish {
            suite: "stable".into(),
            sign,
            digest: "SHA512".into(),
            faked_time: None,
            by_hash: true,
            valid_until: None,
            separate_all: true,
        }
    }
}

/// Writes `(path, content)` files into `dir` and returns the Release SHA256 lines.
fn release_lines(dir: &Path, files: &[(String, Vec<u8>)], by_hash: bool) -> String {
    let mut lines = String::new();
    for (path, content) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        let h = sha256_hex(content);
        lines.push_str(&format!(" {h} {:>8} {path}\n", content.len()));
        if by_hash {
            let bh = p.parent().unwrap().join("by-hash/SHA256").join(&h);
            std::fs::create_dir_all(bh.parent().unwrap()).unwrap();
            std::fs::write(bh, content).unwrap();
        }
    }
    lines
}

fn sign_release(gpg: &Gpg, dir: &Path, release: &str, p: &Publish) {
    let rel = dir.join("Release");
    std::fs::write(&rel, release).unwrap();
    for f in ["InRelease", "Release.gpg"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    match &p.sign {
        Sign::InRelease(k) => gpg.clearsign(
            k,
            &rel,
            &dir.join("InRelease"),
            &p.digest,
            p.faked_time.as_deref(),
        ),
        Sign::Detached(k) => gpg.detach_sign(k, &rel, &dir.join("Release.gpg")),
        Sign::Unsigned => {}
    }
}

/// Publishes a `dists/<suite>` repository (component `main`, amd64 + all) at `root`.
pub fn publish_dists(root: &Path, gpg: &Gpg, pkgs: &[Pkg], p: &Publish) {
    let dist = root.join("dists").join(&p.suite);
    let _ = std::fs::remove_dir_all(&dist);
    let amd64: Vec<Pkg> = pkgs
        .iter()
        .filter(|x| x.arch != "all" || !p.separate_all)
        .copied()
        .collect();
    let all: Vec<Pkg> = pkgs.iter().filter(|x| x.arch == "all").copied().collect();
    let t_amd64 = packages_text(&amd64, root, "pool/main/");
    let t_all = packages_text(&all, root, "pool/main/");
    let mut files = vec![
        (
            "main/binary-amd64/Packages".to_string(),
            t_amd64.clone().into_bytes(),
        ),
        (
            "main/binary-amd64/Packages.xz".to_string(),
            xz(t_amd64.as_bytes()),
        ),
        (
            "main/binary-amd64/Packages.gz".to_string(),
            gz(t_amd64.as_bytes()),
        ),
    ];
    if p.separate_all {
        files.push((
            "main/binary-all/Packages".to_string(),
            t_all.clone().into_bytes(),
        ));
        files.push((
            "main/binary-all/Packages.gz".to_string(),
            gz(t_all.as_bytes()),
        ));
    }
    let lines = release_lines(&dist, &files, p.by_hash);
    let mut release = format!(
        "Origin: kiln-test\nLabel: kiln-test\nSuite: {s}\nCodename: {s}\nDate: Sat, 10 Jun 2023 08:53:33 UTC\n",
        s = p.suite
    );
    if let Some(v) = &p.valid_until {
        release.push_str(&format!("Valid-Until: {v}\n"));
    }
    if p.by_hash {
        release.push_str("Acquire-By-Hash: yes\n");
    }
    if !p.separate_all {
        release.push_str("No-Support-for-Architecture-all: Packages\n");
    }
    release.push_str(
        "Architectures: amd64 all\nComponents: main\nDescription: kiln test repository\n",
    );
    release.push_str(&format!("SHA256:\n{lines}"));
    sign_release(gpg, &dist, &release, p);
}

/// Publishes a flat repository (`deb URL ./`) in `dir`.
pub fn publish_flat(dir: &Path, gpg: &Gpg, pkgs: &[Pkg], p: &Publish) {
    std::fs::create_dir_all(dir).unwrap();
    let text = packages_text(pkgs, dir, "./debs/");
    let files = vec![
        ("Packages".to_string(), text.clone().into_bytes()),
        ("Packages.gz".to_string(), gz(text.as_bytes())),
    ];
    let lines = release_lines(dir, &files, false);
    let release = format!(
        "Origin: kiln-flat\nLabel: kiln-flat\nDate: Sat, 10 Jun 2023 08:53:33 UTC\nSHA256:\n{lines}"
    );
    sign_release(gpg, dir, &release, p);
}

// ---------------------------------------------------------------- HTTP server

/// A tiny HTTP/1.1 file server on 127.0.0.1 (GET only, one connection at a time,
/// `Connection: close`), logging each request. It sends `ETag` (a hash of the content)
/// and `Last-Modified` (the file's mtime) and answers conditional requests with 304
/// (`If-None-Match` taking precedence over `If-Modified-Since`, as RFC 9110 says), unless
/// [`Server::set_validators`] turned that off. Faults can be injected per path.
pub struct Server {
    pub port: u16,
    pub root: PathBuf,
    state: Arc<ServerState>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// A request the server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    pub path: String,
    pub status: u16,
    /// The request had `If-None-Match` or `If-Modified-Since`.
    pub conditional: bool,
}

/// A fault injected into the answer to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (and an empty body).
    Status(u16),
    /// Send the headers with the full `Content-Length`, half of the body, then close.
    DropMidBody,
}

#[derive(Default)]
struct ServerState {
    log: Mutex<Vec<Logged>>,
    /// `(path substring, fault)`: the first rule matching a request is used up by it.
    faults: Mutex<Vec<(String, Fault)>>,
    no_validators: AtomicBool,
}

impl Server {
    pub fn start(root: &Path) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(ServerState::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (root2, state2, stop2) = (root.to_path_buf(), state.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(s) = stream {
                    let _ = handle_conn(s, &root2, &state2);
                }
            }
        });
        Server {
            port,
            root: root.to_path_buf(),
            state,
            stop,
            handle: Some(handle),
        }
    }

    /// The next `times` requests whose path contains `path_part` get `fault`.
    pub fn inject(&self, path_part: &str, fault: Fault, times: usize) {
        let mut f = self.state.faults.lock().unwrap();
        for _ in 0..times {
            f.push((path_part.to_string(), fault));
        }
    }

    /// Whether to send `ETag`/`Last-Modified` and answer conditional requests with 304.
    pub fn set_validators(&self, on: bool) {
        self.state.no_validators.store(!on, Ordering::SeqCst);
    }

    /// The requests answered so far (and clears the log).
    pub fn take_requests(&self) -> Vec<Logged> {
        std::mem::take(&mut *self.state.log.lock().unwrap())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{}", self.port, path)
    }

    /// The paths requested so far (and clears the log).
    pub fn take_log(&self) -> Vec<String> {
        self.take_requests().into_iter().map(|r| r.path).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} GMT",
        WD[days.rem_euclid(7) as usize],
        MON[(m - 1) as usize],
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

fn handle_conn(s: TcpStream, root: &Path, state: &ServerState) -> std::io::Result<()> {
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut first = String::new();
    r.read_line(&mut first)?;
    let (mut if_none_match, mut if_modified_since) = (None, None);
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            let value = Some(value.trim().to_string());
            if name.eq_ignore_ascii_case("if-none-match") {
                if_none_match = value;
            } else if name.eq_ignore_ascii_case("if-modified-since") {
                if_modified_since = value;
            }
        }
    }
    let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
    let conditional = if_none_match.is_some() || if_modified_since.is_some();
    let log = |status| {
        state.log.lock().unwrap().push(Logged {
            path: path.clone(),
            status,
            conditional,
        })
    };
    let fault = {
        let mut f = state.faults.lock().unwrap();
        f.iter()
            .position(|(p, _)| path.contains(p.as_str()))
            .map(|i| f.remove(i).1)
    };
    let rel = path.trim_start_matches('/');
    let mut w = s;
    let file = root.join(rel);
    let body = if rel.split('/').any(|c| c == "..") || !file.is_file() {
        None
    } else {
        let mut b = Vec::new();
        std::fs::File::open(&file)?.read_to_end(&mut b)?;
        Some((b, std::fs::metadata(&file)?.modified()?))
    };
    match (body, fault) {
        (_, Some(Fault::Status(status))) => {
            log(status);
            write!(
                w,
                "HTTP/1.1 {status} Injected\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
        }
        (Some((b, _)), Some(Fault::DropMidBody)) => {
            log(200);
            write!(
                w,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                b.len()
            )?;
            w.write_all(&b[..b.len() / 2])?;
            w.flush()?;
            return Ok(());
        }
        (Some((b, mtime)), _) => {
            let validators = !state.no_validators.load(Ordering::SeqCst);
            let etag = format!("\"{}\"", &sha256_hex(&b)[..20]);
            let last_modified = http_date(mtime);
            let not_modified = validators
                && match &if_none_match {
                    Some(inm) => inm.split(',').any(|t| t.trim() == etag),
                    None => if_modified_since.as_deref() == Some(last_modified.as_str()),
                };
            let headers = if validators {
                format!("ETag: {etag}\r\nLast-Modified: {last_modified}\r\n")
            } else {
                String::new()
            };
            if not_modified {
                log(304);
                write!(
                    w,
                    "HTTP/1.1 304 Not Modified\r\n{headers}Connection: close\r\n\r\n"
                )?;
            } else {
                log(200);
                write!(
                    w,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{headers}Connection: close\r\n\r\n",
                    b.len()
                )?;
                w.write_all(&b)?;
            }
        }
        (None, _) => {
            log(404);
            w.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
        }
    }
    w.flush()
}

/// A port on 127.0.0.1 that nothing listens on.
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// All files below `dir` (relative paths), sorted.
pub fn files_below(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(base, &p, out);
                } else {
                    out.push(p.strip_prefix(base).unwrap().display().to_string());
                }
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

// ---------------------------------------------------------------- fixtures

pub const PKGS: [Pkg; 3] = [
    Pkg {
        name: "hello",
        version: "1.0-1",
        arch: "amd64",
        depends: "libhello (>= 1.0)",
    },
    pkg("libhello", "1.0-1", "amd64"),
    pkg("hello-doc", "1:0.5~rc1", "all"),
];

/// A `dists/stable` source with component `main`, checked with `keyring`.
pub fn dists_source(id: &str, url: &str, keyring: &Path) -> kiln_repo::Source {
    kiln_repo::Source {
        id: id.into(),
        name: id.into(),
        url: format!("{url}/"),
        layout: kiln_repo::Layout::Dists {
            suite: "stable".into(),
            components: vec!["main".into()],
        },
        check_gpg: true,
        check_ssl: true,
        keys: vec![kiln_repo::KeySource::File(keyring.to_path_buf())],
        key_fingerprints: vec![],
        system: false,
    }
}

/// A temporary directory with a gpg home and a signing key (`fpr`, exported to
/// `keyring`), a directory to publish in (`repo`) and a cache directory.
pub struct Fixture {
    pub _tmp: tempfile::TempDir,
    pub gpg: Gpg,
    pub fpr: String,
    pub keyring: PathBuf,
    pub repo: PathBuf,
    pub cache_dir: PathBuf,
}

pub fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let gpg = Gpg::new();
    let fpr = gpg.gen_key(
        "kiln repo <repo@kiln.invalid>",
        "ed25519",
        "sign",
        "0",
        None,
    );
    let keyring = tmp.path().join("repo.gpg");
    std::fs::write(&keyring, gpg.export(&fpr)).unwrap();
    let repo = tmp.path().join("www");
    let cache_dir = tmp.path().join("cache");
    std::fs::create_dir_all(&repo).unwrap();
    Fixture {
        gpg,
        fpr,
        keyring,
        repo,
        cache_dir,
        _tmp: tmp,
    }
}

/// `name=version` of every package loaded, sorted.
pub fn names(u: &kiln_repo::Universe) -> Vec<String> {
    let mut v: Vec<String> = u
        .repos
        .iter()
        .flat_map(|r| {
            r.index
                .iter()
                .map(|p| format!("{}={}", p.name(), p.version()))
        })
        .collect();
    v.sort();
    v
}
