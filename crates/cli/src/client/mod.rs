//! The composer-cli-compatible client: `kiln blueprints|compose|sources|projects|modules|
//! distros|status ...` talk to a running `kiln serve` (or osbuild-composer) through the
//! weldr API, with composer-cli's commands, options and output.
//!
//! Conventions kept from composer-cli (weldr-client): names may be given as
//! `a,b c` (commas and spaces both separate); API errors are printed to stderr as
//! `ERROR: <id>: <msg>` and make the exit code 1; `--json` prints nothing but the list of
//! raw replies, `[{"method", "path", "status", "body"}]`, indented by four spaces; list
//! commands first ask with `limit=0` to learn the total, then fetch everything.
//!
//! The server is found with `--socket PATH` (default `/run/weldr/api.socket`) or
//! `--url http://HOST:PORT` / `https://...`; over TCP `--token` (or `KILN_TOKEN`) is sent
//! as a bearer token, and `--cacert` adds a trusted certificate for https.

mod blueprints;
mod compose;
pub mod http;
mod info;
mod sources;

use anyhow::Result;
use http::{Endpoint, Reply, Sink, Transport};
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

pub use blueprints::Command as BlueprintsCommand;
pub use compose::Command as ComposeCommand;
pub use info::{DistrosCommand, ModulesCommand, ProjectsCommand, StatusCommand};
pub use sources::Command as SourcesCommand;

/// How to reach the server, and how to print (global options of the client commands).
#[derive(clap::Args, Debug, Clone)]
pub struct Conn {
    /// The server's unix socket.
    #[arg(short = 's', long, global = true, value_name = "PATH", env = "KILN_SOCKET",
          default_value = kiln_service::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// The server over TCP instead of the socket: http://HOST:PORT or https://HOST:PORT.
    #[arg(long, global = true, value_name = "URL", env = "KILN_URL")]
    url: Option<String>,
    /// Bearer token for --url (the server's --token-file).
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        env = "KILN_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// A PEM certificate to trust for https (a self-signed server certificate or a CA).
    #[arg(long, global = true, value_name = "FILE", env = "KILN_CACERT")]
    cacert: Option<PathBuf>,
    /// The weldr API version to use.
    #[arg(short = 'a', long = "api-version", visible_alias = "api", global = true,
          value_name = "0|1", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(0..=1))]
    api_version: u8,
    /// Print the raw JSON replies instead of the normal output.
    #[arg(short = 'j', long, global = true)]
    json: bool,
    /// Seconds to wait for the server (0: no limit).
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 240)]
    timeout: u64,
    /// Test mode for `compose start`: 1 a compose that fails at once, 2 one that finishes.
    #[arg(long, global = true, value_name = "1|2", default_value_t = 0,
          value_parser = clap::value_parser!(u8).range(0..=2))]
    test: u8,
}

/// One error of a weldr error list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiErr {
    pub id: String,
    pub msg: String,
}

impl std::fmt::Display for ApiErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.id, self.msg)
    }
}

/// The `errors` list of a reply body.
pub fn errors_of(v: &Value) -> Vec<ApiErr> {
    v["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| ApiErr {
                    id: e["id"].as_str().unwrap_or_default().to_string(),
                    msg: e["msg"].as_str().unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A connected client and the output state of one command.
pub struct Client {
    transport: Transport,
    api: u8,
    json: bool,
    test: u8,
    records: RefCell<Vec<Value>>,
    failed: Cell<bool>,
    stdout: RefCell<String>,
}

impl Client {
    pub fn new(conn: &Conn) -> Result<Client> {
        let endpoint = match &conn.url {
            Some(u) => Endpoint::parse_url(u)?,
            None => Endpoint::Unix(conn.socket.clone()),
        };
        let timeout = (conn.timeout > 0).then(|| Duration::from_secs(conn.timeout));
        let token = conn.token.clone().filter(|t| !t.is_empty());
        if token.is_some() && matches!(endpoint, Endpoint::Unix(_)) {
            tracing::debug!("--token is not needed on the unix socket; sending it anyway");
        }
        Ok(Client {
            transport: Transport::new(endpoint, token, conn.cacert.as_deref(), timeout)?,
            api: conn.api_version,
            json: conn.json,
            test: conn.test,
            records: RefCell::new(Vec::new()),
            failed: Cell::new(false),
            stdout: RefCell::new(String::new()),
        })
    }

    pub fn json_mode(&self) -> bool {
        self.json
    }

    /// `--test`: 0, or the compose test mode.
    pub fn test_mode(&self) -> u8 {
        self.test
    }

    /// `/api/vN/<rest>`.
    pub fn v(&self, rest: &str) -> String {
        format!("/api/v{}/{rest}", self.api)
    }

    /// Sends a request and records its JSON reply for `--json`.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Reply> {
        let r = self
            .transport
            .send(method, path, content_type, body, Sink::Memory)?;
        self.record(method, path, &r);
        Ok(r)
    }

    fn record(&self, method: &str, path: &str, r: &Reply) {
        // composer-cli records only replies whose body is a JSON object.
        if let Some(body @ Value::Object(_)) = r.json() {
            self.records.borrow_mut().push(serde_json::json!({
                "method": method, "path": path, "status": r.status, "body": body,
            }));
        }
    }

    pub fn get(&self, path: &str) -> Result<Reply> {
        self.call("GET", path, None, Vec::new())
    }

    /// A GET whose success is a JSON body; an error reply becomes its error list.
    pub fn get_json(&self, path: &str) -> Result<Result<Value, Vec<ApiErr>>> {
        let r = self.get(path)?;
        Ok(json_result(&r))
    }

    /// Downloads a file (an image, a tarball) into `dest`; the reply when it is an error.
    pub fn download(&self, path: &str, dest: &Path) -> Result<Reply> {
        let r = self
            .transport
            .send("GET", path, None, Vec::new(), Sink::File(dest))?;
        if !r.ok() {
            self.record("GET", path, &r);
        }
        Ok(r)
    }

    /// Prints a line to stdout (nothing with `--json`).
    pub fn say(&self, line: impl std::fmt::Display) {
        if !self.json {
            use std::fmt::Write as _;
            let _ = writeln!(self.stdout.borrow_mut(), "{line}");
        }
    }

    /// Prints text as it is (nothing with `--json`).
    pub fn say_raw(&self, text: &str) {
        if !self.json {
            self.stdout.borrow_mut().push_str(text);
        }
    }

    /// API errors: printed as `ERROR: id: msg` (not with `--json`, where they are in the
    /// JSON); the command fails.
    pub fn api_errors(&self, errors: &[ApiErr]) {
        self.flush();
        if !self.json {
            for e in errors {
                eprintln!("ERROR: {e}");
            }
        }
        self.failed.set(true);
    }

    /// The value of a reply, or `None` after printing its errors (the command fails).
    pub fn report<T>(&self, r: Result<T, Vec<ApiErr>>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.api_errors(&e);
                None
            }
        }
    }

    /// A client-side error: always printed; the command fails.
    pub fn fail(&self, msg: impl std::fmt::Display) {
        self.flush();
        eprintln!("ERROR: {msg}");
        self.failed.set(true);
    }

    fn flush(&self) {
        let text = std::mem::take(&mut *self.stdout.borrow_mut());
        if !text.is_empty() {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }

    /// Ends the command: prints the JSON record with `--json`, returns the exit code.
    fn finish(self) -> ExitCode {
        self.flush();
        if self.json {
            use std::io::Write as _;
            let records = Value::Array(self.records.take());
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = writeln!(std::io::stdout().lock(), "{}", pretty4(&records));
        }
        if self.failed.get() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// JSON indented by four spaces, as Go's `json.MarshalIndent(v, "", "    ")`.
pub fn pretty4(v: &Value) -> String {
    use serde::Serialize as _;
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if v.serialize(&mut ser).is_err() {
        return v.to_string();
    }
    String::from_utf8(buf).unwrap_or_else(|_| v.to_string())
}

/// A success reply's JSON, or the error list of an error reply (or of a 200 reply with
/// `"status": false`).
pub fn json_result(r: &Reply) -> Result<Value, Vec<ApiErr>> {
    match r.json() {
        Some(v) if r.ok() && v["status"] != Value::Bool(false) => Ok(v),
        Some(v) if !errors_of(&v).is_empty() => Err(errors_of(&v)),
        _ if r.ok() => Err(vec![ApiErr {
            id: "HTTPError".into(),
            msg: format!("the reply is not JSON: {}", snippet(&r.text())),
        }]),
        _ => Err(vec![ApiErr {
            id: "HTTPError".into(),
            msg: format!("HTTP {}: {}", r.status, snippet(&r.text())),
        }]),
    }
}

fn snippet(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// composer-cli's argument lists: commas and spaces separate, empty items vanish.
pub fn comma_args(args: &[String]) -> Vec<String> {
    args.iter()
        .flat_map(|a| a.split([',', ' ']))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A path segment, percent-encoded (commas between names stay as they are).
pub fn seg(s: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'*')
        .remove(b'~');
    utf8_percent_encode(s, KEEP).to_string()
}

/// Names joined for a path: `a,b,c`, each encoded.
pub fn names_seg(names: &[String]) -> String {
    names.iter().map(|n| seg(n)).collect::<Vec<_>>().join(",")
}

/// A query value, percent-encoded.
pub fn qval(s: &str) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// composer-cli's PrintWrap: words wrapped at `columns`, continuation lines indented.
pub fn wrap(indent: usize, columns: usize, s: &str) -> String {
    let s = s.replace('\n', " ");
    let mut words = s.split(' ');
    let first = words.next().unwrap_or_default();
    let mut out = first.to_string();
    let mut col = indent + first.chars().count();
    for w in words {
        let n = w.chars().count();
        if col + n + 1 > columns {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            out.push_str(w);
            col = indent + n;
        } else if !w.is_empty() {
            out.push(' ');
            out.push_str(w);
            col += 1 + n;
        }
    }
    out
}

/// The client commands, as they appear at the top level of `kiln`.
pub enum Command {
    Blueprints(BlueprintsCommand),
    Compose(ComposeCommand),
    Sources(SourcesCommand),
    Projects(ProjectsCommand),
    Modules(ModulesCommand),
    Distros(DistrosCommand),
    Status(StatusCommand),
}

/// Runs a client command; transport failures are printed composer-cli style.
pub fn run(conn: &Conn, cmd: Command) -> ExitCode {
    let c = match Client::new(conn) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let r = match cmd {
        Command::Blueprints(cmd) => blueprints::run(&c, cmd),
        Command::Compose(cmd) => compose::run(&c, cmd),
        Command::Sources(cmd) => sources::run(&c, cmd),
        Command::Projects(cmd) => info::projects(&c, cmd),
        Command::Modules(cmd) => info::modules(&c, cmd),
        Command::Distros(cmd) => info::distros(&c, cmd),
        Command::Status(cmd) => info::status(&c, cmd),
    };
    if let Err(e) = r {
        c.fail(format!("{e:#}"));
    }
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comma_lists() {
        let a = |v: &[&str]| comma_args(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(a(&["a,b", "c", ",,d ,"]), ["a", "b", "c", "d"]);
        assert!(a(&[",", " "]).is_empty());
        assert_eq!(
            names_seg(&["a b".into(), "x/y".into(), "*".into()]),
            "a%20b,x%2Fy,*"
        );
    }

    #[test]
    fn wrapping() {
        assert_eq!(wrap(6, 20, "Name: bash"), "Name: bash");
        assert_eq!(
            wrap(9, 30, "Summary: one two three four five six seven"),
            "Summary: one two\n         three four five six\n         seven"
        );
    }

    #[test]
    fn json_indent() {
        let v = serde_json::json!([{"a": [1]}]);
        assert_eq!(
            pretty4(&v),
            "[\n    {\n        \"a\": [\n            1\n        ]\n    }\n]"
        );
    }
}
