//! `kiln projects|modules|distros|status ...`: what the server's sources offer, and the
//! server itself.

use super::{Client, comma_args, names_seg, qval, wrap};
use anyhow::Result;
use serde_json::Value;

#[derive(clap::Subcommand, Debug)]
pub enum ProjectsCommand {
    /// List the available projects (packages) with their summaries.
    List {
        #[arg(long)]
        distro: Option<String>,
        #[arg(long)]
        arch: Option<String>,
    },
    /// Details of projects (names or globs).
    Info {
        #[arg(required = true, value_name = "PROJECT,...")]
        names: Vec<String>,
        #[arg(long)]
        distro: Option<String>,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum ModulesCommand {
    /// List the modules (package names), all or those matching globs.
    List {
        #[arg(value_name = "GLOB")]
        globs: Vec<String>,
        #[arg(long)]
        distro: Option<String>,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum DistrosCommand {
    /// List the distros the server can build.
    List,
}

#[derive(clap::Subcommand, Debug)]
pub enum StatusCommand {
    /// Show the API server's status.
    Show,
}

fn query(pairs: &[(&str, Option<&str>)]) -> String {
    pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("&{k}={}", qval(v))))
        .collect()
}

/// A paged list: first `limit=0` to learn the total, then everything.
fn paged(c: &Client, base: &str, extra: &str) -> Result<Option<Value>> {
    let first = match c.get_json(&format!("{base}?limit=0{extra}"))? {
        Ok(v) => v,
        Err(e) => {
            c.api_errors(&e);
            return Ok(None);
        }
    };
    let total = first["total"].as_u64().unwrap_or(0);
    match c.get_json(&format!("{base}?limit={total}{extra}"))? {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            c.api_errors(&e);
            Ok(None)
        }
    }
}

fn describe(c: &Client, p: &Value) {
    let s = |k: &str| p[k].as_str().unwrap_or_default().to_string();
    c.say(wrap(6, 80, &format!("Name: {}", s("name"))));
    c.say(wrap(9, 80, &format!("Summary: {}", s("summary"))));
    c.say(wrap(10, 80, &format!("Homepage: {}", s("homepage"))));
    c.say(wrap(13, 80, &format!("Description: {}", s("description"))));
}

pub fn projects(c: &Client, cmd: ProjectsCommand) -> Result<()> {
    match cmd {
        ProjectsCommand::List { distro, arch } => {
            let extra = query(&[("distro", distro.as_deref()), ("arch", arch.as_deref())]);
            if let Some(v) = paged(c, &c.v("projects/list"), &extra)? {
                for p in v["projects"].as_array().into_iter().flatten() {
                    describe(c, p);
                    c.say("\n");
                }
            }
        }
        ProjectsCommand::Info { names, distro } => {
            let mut path = c.v(&format!("projects/info/{}", names_seg(&comma_args(&names))));
            if let Some(d) = distro {
                path = format!("{path}?distro={}", qval(&d));
            }
            match c.get_json(&path)? {
                Ok(v) => {
                    for p in v["projects"].as_array().into_iter().flatten() {
                        describe(c, p);
                        c.say("Builds: ");
                        for b in p["builds"].as_array().into_iter().flatten() {
                            c.say(format!("     {}", build(b)));
                        }
                        c.say("\n");
                    }
                }
                Err(e) => c.api_errors(&e),
            }
        }
    }
    Ok(())
}

/// A build as composer-cli prints it: `[epoch:]version-release.arch at TIME for CHANGELOG`.
fn build(b: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let epoch = match b["epoch"].as_u64() {
        Some(e) if e > 0 => format!("{e}:"),
        _ => String::new(),
    };
    format!(
        "{epoch}{}-{}.{} at {} for {}",
        s(&b["source"]["version"]),
        s(&b["release"]),
        s(&b["arch"]),
        s(&b["build_time"]),
        s(&b["changelog"])
    )
}

pub fn modules(c: &Client, cmd: ModulesCommand) -> Result<()> {
    let ModulesCommand::List { globs, distro } = cmd;
    let globs = comma_args(&globs);
    let base = if globs.is_empty() {
        c.v("modules/list")
    } else {
        c.v(&format!("modules/list/{}", names_seg(&globs)))
    };
    let extra = query(&[("distro", distro.as_deref())]);
    if let Some(v) = paged(c, &base, &extra)? {
        for m in v["modules"].as_array().into_iter().flatten() {
            c.say(m["name"].as_str().unwrap_or_default());
        }
    }
    Ok(())
}

pub fn distros(c: &Client, cmd: DistrosCommand) -> Result<()> {
    let DistrosCommand::List = cmd;
    // The route exists in API v1 only.
    match c.get_json("/api/v1/distros/list")? {
        Ok(v) => {
            for d in v["distros"].as_array().into_iter().flatten() {
                c.say(d.as_str().unwrap_or_default());
            }
        }
        Err(e) => c.api_errors(&e),
    }
    Ok(())
}

pub fn status(c: &Client, cmd: StatusCommand) -> Result<()> {
    let StatusCommand::Show = cmd;
    let v = match c.get_json("/api/status")? {
        Ok(v) => v,
        Err(e) => {
            c.api_errors(&e);
            return Ok(());
        }
    };
    let s = |k: &str| match &v[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    c.say("API server status:");
    c.say(format!("    Database version:   {}", s("db_version")));
    c.say(format!("    Database supported: {}", s("db_supported")));
    c.say(format!("    Schema version:     {}", s("schema_version")));
    c.say(format!("    API version:        {}", s("api")));
    c.say(format!("    Backend:            {}", s("backend")));
    c.say(format!("    Build:              {}", s("build")));
    for m in v["msgs"].as_array().into_iter().flatten() {
        c.say(m.as_str().unwrap_or_default());
    }
    Ok(())
}
