//! `kiln compose ...`: composer-cli's compose commands.

use super::{Client, json_result, qval, seg};
use anyhow::{Context as _, Result};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Start a compose of a blueprint as an image type; with IMAGE-NAME and an upload
    /// profile (TOML: `provider = "..."` and `[settings]`) the image is also uploaded.
    Start {
        blueprint: String,
        #[arg(value_name = "TYPE")]
        image_type: String,
        #[arg(value_name = "IMAGE-NAME", requires = "profile")]
        image_name: Option<String>,
        #[arg(value_name = "PROFILE.toml")]
        profile: Option<PathBuf>,
        /// Image size in MiB (sent to the server in bytes).
        #[arg(long, value_name = "MiB")]
        size: Option<u64>,
    },
    /// List the image types the server can build.
    Types {
        #[arg(long)]
        distro: Option<String>,
        #[arg(long)]
        arch: Option<String>,
    },
    /// The detailed status of all composes.
    Status,
    /// Basic information about composes, optionally only some states.
    List {
        #[arg(value_parser = ["waiting", "running", "finished", "failed"])]
        states: Vec<String>,
    },
    /// Details of a compose: blueprint, packages, dependencies.
    Info { uuid: String },
    /// The end of a compose's log (SIZE in KiB, default 1024).
    Log { uuid: String, size: Option<u64> },
    /// Cancel a waiting or running compose.
    Cancel { uuid: String },
    /// Delete finished or failed composes and their results.
    Delete {
        #[arg(required = true)]
        uuids: Vec<String>,
    },
    /// Download the logs of a compose (UUID-logs.tar).
    Logs {
        uuid: String,
        /// Where to save: a file, or an existing directory.
        #[arg(long, value_name = "PATH")]
        filename: Option<PathBuf>,
    },
    /// Download the metadata of a compose (UUID-metadata.tar).
    Metadata {
        uuid: String,
        #[arg(long, value_name = "PATH")]
        filename: Option<PathBuf>,
    },
    /// Download the results of a compose: metadata, logs and image (UUID.tar).
    Results {
        uuid: String,
        #[arg(long, value_name = "PATH")]
        filename: Option<PathBuf>,
    },
    /// Download the image of a finished compose.
    Image {
        uuid: String,
        #[arg(long, value_name = "PATH")]
        filename: Option<PathBuf>,
    },
}

pub fn run(c: &Client, cmd: Command) -> Result<()> {
    match cmd {
        Command::Start {
            blueprint,
            image_type,
            image_name,
            profile,
            size,
        } => start(c, &blueprint, &image_type, image_name.zip(profile), size),
        Command::Types { distro, arch } => types(c, distro.as_deref(), arch.as_deref()),
        Command::Status => status(c),
        Command::List { states } => list(c, &states),
        Command::Info { uuid } => info(c, &uuid),
        Command::Log { uuid, size } => {
            let path = c.v(&format!(
                "compose/log/{}?size={}",
                seg(&uuid),
                size.unwrap_or(1024)
            ));
            let r = c.get(&path)?;
            if r.ok() {
                c.say(r.text());
            } else {
                c.report(json_result(&r));
            }
            Ok(())
        }
        Command::Cancel { uuid } => {
            let r = c.call(
                "DELETE",
                &c.v(&format!("compose/cancel/{}", seg(&uuid))),
                None,
                vec![],
            )?;
            c.report(json_result(&r));
            Ok(())
        }
        Command::Delete { uuids } => {
            let ids = super::comma_args(&uuids);
            let path = c.v(&format!("compose/delete/{}", super::names_seg(&ids)));
            let r = c.call("DELETE", &path, None, vec![])?;
            if let Some(v) = c.report(json_result(&r)) {
                let errors = super::errors_of(&v);
                if !errors.is_empty() {
                    c.api_errors(&errors);
                }
            }
            Ok(())
        }
        Command::Logs { uuid, filename } => download(c, "logs", &uuid, filename.as_deref()),
        Command::Metadata { uuid, filename } => download(c, "metadata", &uuid, filename.as_deref()),
        Command::Results { uuid, filename } => download(c, "results", &uuid, filename.as_deref()),
        Command::Image { uuid, filename } => download(c, "image", &uuid, filename.as_deref()),
    }
}

/// The `upload` object from a profile file: `provider` and `[settings]`.
fn upload_request(image_name: &str, profile: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(profile)
        .with_context(|| format!("reading {}", profile.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("reading {}", profile.display()))?;
    let provider = table
        .get("provider")
        .and_then(|p| p.as_str())
        .with_context(|| format!("{}: no `provider = \"...\"`", profile.display()))?;
    let settings = table
        .get("settings")
        .with_context(|| format!("{}: no [settings] table", profile.display()))?;
    Ok(json!({
        "image_name": image_name,
        "provider": provider,
        "settings": serde_json::to_value(settings)?,
    }))
}

fn start(
    c: &Client,
    blueprint: &str,
    image_type: &str,
    upload: Option<(String, PathBuf)>,
    size_mib: Option<u64>,
) -> Result<()> {
    let mut req = json!({
        "blueprint_name": blueprint,
        "compose_type": image_type,
        "branch": "master",
    });
    if let Some(mib) = size_mib.filter(|s| *s > 0) {
        req["size"] = json!(mib.saturating_mul(1 << 20));
    }
    if let Some((name, profile)) = upload {
        match upload_request(&name, &profile) {
            Ok(u) => req["upload"] = u,
            Err(e) => {
                c.fail(format!("{e:#}"));
                return Ok(());
            }
        }
    }
    let mut path = c.v("compose");
    if c.test_mode() > 0 {
        path = format!("{path}?test={}", c.test_mode());
    }
    let r = c.call(
        "POST",
        &path,
        Some("application/json"),
        serde_json::to_vec(&req)?,
    )?;
    let body = r.json().unwrap_or(Value::Null);
    for w in body["warnings"].as_array().into_iter().flatten() {
        c.say(format!("Warning: {}", w.as_str().unwrap_or_default()));
    }
    let Some(v) = c.report(json_result(&r)) else {
        return Ok(());
    };
    c.say(format!(
        "Compose {} added to the queue",
        v["build_id"].as_str().unwrap_or_default()
    ));
    Ok(())
}

fn types(c: &Client, distro: Option<&str>, arch: Option<&str>) -> Result<()> {
    let mut q = Vec::new();
    if let Some(d) = distro {
        q.push(format!("distro={}", qval(d)));
    }
    if let Some(a) = arch {
        q.push(format!("arch={}", qval(a)));
    }
    let mut path = c.v("compose/types");
    if !q.is_empty() {
        path = format!("{path}?{}", q.join("&"));
    }
    let Some(v) = c.report(c.get_json(&path)?) else {
        return Ok(());
    };
    let mut names: Vec<&str> = v["types"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["enabled"].as_bool().unwrap_or(true))
        .filter_map(|t| t["name"].as_str())
        .collect();
    names.sort_unstable();
    for n in names {
        c.say(n);
    }
    Ok(())
}

/// Every compose: the queue (new and running), finished and failed.
fn all_composes(c: &Client) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for (route, keys) in [
        ("compose/queue", &["new", "run"][..]),
        ("compose/finished", &["finished"][..]),
        ("compose/failed", &["failed"][..]),
    ] {
        let Some(v) = c.report(c.get_json(&c.v(route))?) else {
            continue;
        };
        for k in keys {
            out.extend(v[*k].as_array().into_iter().flatten().cloned());
        }
    }
    Ok(out)
}

/// composer-cli's order: running, waiting, finished, failed; then blueprint, version, type.
fn sort_composes(v: &mut [Value]) {
    let rank = |s: &str| match s {
        "RUNNING" => 0,
        "WAITING" => 1,
        "FINISHED" => 2,
        "FAILED" => 3,
        _ => 4,
    };
    let key = |c: &Value| {
        let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
        (
            rank(&s("queue_status")),
            s("blueprint"),
            s("version"),
            s("compose_type"),
        )
    };
    v.sort_by_key(key);
}

/// A compose time (float Unix seconds) as composer-cli prints it, in local time.
fn format_time(secs: f64) -> String {
    let Ok(ts) = jiff::Timestamp::from_second(secs as i64) else {
        return String::new();
    };
    ts.to_zoned(jiff::tz::TimeZone::system())
        .strftime("%a %b %-d %H:%M:%S %Y")
        .to_string()
}

fn size_text(v: &Value) -> String {
    match v.as_u64() {
        Some(s) if s > 0 => s.to_string(),
        _ => String::new(),
    }
}

fn status(c: &Client) -> Result<()> {
    let mut composes = all_composes(c)?;
    sort_composes(&mut composes);
    for x in &composes {
        let t = ["job_finished", "job_started", "job_created"]
            .iter()
            .filter_map(|k| x[*k].as_f64())
            .find(|t| *t > 0.0)
            .unwrap_or(0.0);
        let s = |k: &str| x[k].as_str().unwrap_or_default().to_string();
        c.say(format!(
            "{} {:<8} {} {:<15} {} {:<16} {}",
            s("id"),
            s("queue_status"),
            format_time(t),
            s("blueprint"),
            s("version"),
            s("compose_type"),
            size_text(&x["image_size"])
        ));
    }
    Ok(())
}

/// Go's tabwriter with minwidth 5, padding 3: every column but the last padded to its
/// widest cell.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            widths[i] = widths[i].max((cell.chars().count() + 3).max(5));
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}", w = widths[i]));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn list(c: &Client, states: &[String]) -> Result<()> {
    let composes = all_composes(c)?;
    let wanted: Vec<String> = states.iter().map(|s| s.to_ascii_uppercase()).collect();
    let mut rows = vec![
        ["ID", "Status", "Blueprint", "Version", "Type"]
            .map(String::from)
            .to_vec(),
    ];
    for x in &composes {
        let s = |k: &str| x[k].as_str().unwrap_or_default().to_string();
        if !wanted.is_empty() && !wanted.contains(&s("queue_status")) {
            continue;
        }
        rows.push(vec![
            s("id"),
            s("queue_status"),
            s("blueprint"),
            s("version"),
            s("compose_type"),
        ]);
    }
    c.say_raw(&table(&rows));
    Ok(())
}

fn info(c: &Client, uuid: &str) -> Result<()> {
    let Some(v) = c.report(c.get_json(&c.v(&format!("compose/info/{}", seg(uuid))))?) else {
        return Ok(());
    };
    let s = |x: &Value| x.as_str().unwrap_or_default().to_string();
    c.say(format!(
        "{} {:<8} {:<15} {} {:<16} {}",
        s(&v["id"]),
        s(&v["queue_status"]),
        s(&v["blueprint"]["name"]),
        s(&v["blueprint"]["version"]),
        s(&v["compose_type"]),
        size_text(&v["image_size"])
    ));
    c.say("Packages:");
    for p in v["blueprint"]["packages"].as_array().into_iter().flatten() {
        c.say(format!("    {}-{}", s(&p["name"]), s(&p["version"])));
    }
    c.say("Modules:");
    for m in v["blueprint"]["modules"].as_array().into_iter().flatten() {
        c.say(format!("    {}-{}", s(&m["name"]), s(&m["version"])));
    }
    c.say("Dependencies:");
    for d in v["deps"]["packages"].as_array().into_iter().flatten() {
        c.say(format!("    {}", super::blueprints::nevra(d)));
    }
    Ok(())
}

/// The file name from `Content-Disposition: attachment; filename=NAME`, reduced to a
/// plain name (a server cannot make the client write elsewhere).
fn disposition_name(header: Option<&str>) -> Option<String> {
    let h = header?;
    let (_, rest) = h.split_once("filename=")?;
    let name = rest.split(';').next()?.trim().trim_matches('"');
    let base = Path::new(name).file_name()?.to_string_lossy().into_owned();
    (!base.is_empty() && base != "." && base != "..").then_some(base)
}

fn download(c: &Client, what: &str, uuid: &str, dest: Option<&Path>) -> Result<()> {
    let dir = match dest {
        Some(d) if d.is_dir() => d.to_path_buf(),
        Some(d) => d
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
        None => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".kiln-download-")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    let r = c.download(&c.v(&format!("compose/{what}/{}", seg(uuid))), tmp.path())?;
    if !r.ok() {
        c.report(json_result(&r));
        return Ok(());
    }
    if r.header("content-type")
        .unwrap_or_default()
        .contains("json")
    {
        // A 200 reply with an error body (weldr does that for some states).
        let text = std::fs::read(tmp.path())?;
        if let Ok(v) = serde_json::from_slice::<Value>(&text) {
            c.api_errors(&super::errors_of(&v));
            return Ok(());
        }
    }
    let fallback = match what {
        "logs" => format!("{uuid}-logs.tar"),
        "metadata" => format!("{uuid}-metadata.tar"),
        "results" => format!("{uuid}.tar"),
        _ => format!("{uuid}-image"),
    };
    let name = disposition_name(r.header("content-disposition")).unwrap_or(fallback);
    let target = match dest {
        Some(d) if d.is_dir() => d.join(&name),
        Some(d) => d.to_path_buf(),
        None => PathBuf::from(&name),
    };
    match tmp.persist_noclobber(&target) {
        Ok(_) => c.say(target.display()),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
            c.fail(format!("{} already exists", target.display()))
        }
        Err(e) => c.fail(format!("problem moving file: {}", e.error)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_like_tabwriter() {
        let rows = vec![
            vec!["ID".to_string(), "Status".into(), "T".into()],
            vec!["abcdefgh".to_string(), "FINISHED".into(), "qcow2".into()],
        ];
        assert_eq!(
            table(&rows),
            "ID         Status     T\nabcdefgh   FINISHED   qcow2\n"
        );
    }

    #[test]
    fn download_names_stay_in_the_directory() {
        assert_eq!(
            disposition_name(Some("attachment; filename=abc-disk.qcow2")).as_deref(),
            Some("abc-disk.qcow2")
        );
        assert_eq!(
            disposition_name(Some("attachment; filename=\"../../etc/passwd\"")).as_deref(),
            Some("passwd")
        );
        assert_eq!(disposition_name(Some("attachment; filename=..")), None);
        assert_eq!(disposition_name(None), None);
    }

    #[test]
    fn compose_order() {
        let mut v = vec![
            json!({"queue_status": "FAILED", "blueprint": "a"}),
            json!({"queue_status": "WAITING", "blueprint": "b"}),
            json!({"queue_status": "RUNNING", "blueprint": "c"}),
            json!({"queue_status": "WAITING", "blueprint": "a"}),
        ];
        sort_composes(&mut v);
        let got: Vec<_> = v.iter().map(|x| x["blueprint"].as_str().unwrap()).collect();
        assert_eq!(got, ["c", "a", "b", "a"]);
    }
}
