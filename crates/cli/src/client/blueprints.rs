//! `kiln blueprints ...`: composer-cli's blueprint commands.

use super::{ApiErr, Client, comma_args, json_result, names_seg, seg};
use anyhow::{Context as _, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// List the names of the blueprints on the server.
    List,
    /// Show blueprints in TOML format.
    Show {
        #[arg(required = true, value_name = "BLUEPRINT,...")]
        names: Vec<String>,
        /// The blueprint as it was at this commit (one blueprint only).
        #[arg(long, value_name = "COMMIT")]
        commit: Option<String>,
    },
    /// Show the change history of blueprints.
    Changes {
        #[arg(required = true, value_name = "BLUEPRINT,...")]
        names: Vec<String>,
    },
    /// Show the differences between two commits (FROM: a commit or NEWEST; TO: a commit,
    /// NEWEST or WORKSPACE) with the system diff; arguments after -- go to diff.
    Diff {
        name: String,
        from: String,
        to: String,
        #[arg(last = true, value_name = "DIFF-ARG")]
        diff_args: Vec<String>,
    },
    /// Save blueprints to BLUEPRINT-NAME.toml in the current directory.
    Save {
        #[arg(required = true, value_name = "BLUEPRINT,...")]
        names: Vec<String>,
        /// A file to save into, or an existing directory to save under.
        #[arg(long, value_name = "PATH")]
        filename: Option<PathBuf>,
        /// The blueprint as it was at this commit (one blueprint only).
        #[arg(long, value_name = "COMMIT")]
        commit: Option<String>,
    },
    /// Delete a blueprint (its history stays in git).
    Delete { name: String },
    /// Resolve the blueprints' packages and list the result.
    Depsolve {
        #[arg(required = true, value_name = "BLUEPRINT,...")]
        names: Vec<String>,
    },
    /// Push TOML blueprint files to the server, as new commits.
    Push {
        #[arg(required = true, value_name = "FILE.toml")]
        files: Vec<String>,
    },
    /// The blueprints with every package and module pinned to the resolved version.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Freeze {
        #[command(subcommand)]
        cmd: Option<FreezeCommand>,
        #[arg(required = true, value_name = "BLUEPRINT,...")]
        names: Vec<String>,
    },
    /// Tag the newest commit of a blueprint as a revision.
    Tag { name: String },
    /// Revert a blueprint to an earlier commit (as a new commit).
    Undo { name: String, commit: String },
    /// Push TOML blueprint files to the workspace (no commit).
    Workspace {
        #[arg(required = true, value_name = "FILE.toml")]
        files: Vec<String>,
    },
    /// Push blueprint files, TOML or JSON (by extension, or JSON when the file starts with
    /// `{`), as new commits.
    Import {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<String>,
    },
    /// Print a blueprint (TOML, or JSON with --format json), or write it to --filename.
    Export {
        name: String,
        #[arg(long, value_name = "toml|json", default_value = "toml",
              value_parser = ["toml", "json"])]
        format: String,
        #[arg(long, value_name = "FILE")]
        filename: Option<PathBuf>,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum FreezeCommand {
    /// Show the frozen blueprints in TOML format.
    Show {
        #[arg(required = true, value_name = "BLUEPRINT,...")]
        names: Vec<String>,
    },
    /// Save the frozen blueprints to BLUEPRINT-NAME.frozen.toml.
    Save {
        #[arg(required = true, value_name = "BLUEPRINT,...")]
        names: Vec<String>,
        /// A file to save into, or an existing directory to save under.
        #[arg(long, value_name = "PATH")]
        filename: Option<PathBuf>,
    },
}

pub fn run(c: &Client, cmd: Command) -> Result<()> {
    match cmd {
        Command::List => list(c),
        Command::Show { names, commit } => show(c, &names, commit.as_deref()),
        Command::Changes { names } => changes(c, &comma_args(&names)),
        Command::Diff {
            name,
            from,
            to,
            diff_args,
        } => diff(c, &name, &from, &to, diff_args),
        Command::Save {
            names,
            filename,
            commit,
        } => save(c, &names, filename.as_deref(), commit.as_deref()),
        Command::Delete { name } => {
            let r = c.call(
                "DELETE",
                &c.v(&format!("blueprints/delete/{}", seg(&name))),
                None,
                vec![],
            )?;
            c.report(json_result(&r));
            Ok(())
        }
        Command::Depsolve { names } => depsolve(c, &comma_args(&names)),
        Command::Push { files } => push(c, "new", &comma_args(&files)),
        Command::Workspace { files } => push(c, "workspace", &comma_args(&files)),
        Command::Import { files } => push(c, "new", &comma_args(&files)),
        Command::Freeze { cmd, names } => match cmd {
            None => freeze(c, &comma_args(&names)),
            Some(FreezeCommand::Show { names }) => freeze_show(c, &comma_args(&names)),
            Some(FreezeCommand::Save { names, filename }) => {
                freeze_save(c, &comma_args(&names), filename.as_deref())
            }
        },
        Command::Tag { name } => {
            let r = c.call(
                "POST",
                &c.v(&format!("blueprints/tag/{}", seg(&name))),
                None,
                vec![],
            )?;
            c.report(json_result(&r));
            Ok(())
        }
        Command::Undo { name, commit } => {
            let path = c.v(&format!("blueprints/undo/{}/{}", seg(&name), seg(&commit)));
            let r = c.call("POST", &path, None, vec![])?;
            c.report(json_result(&r));
            Ok(())
        }
        Command::Export {
            name,
            format,
            filename,
        } => export(c, &name, &format, filename.as_deref()),
    }
}

/// A TOML reply's text, or its errors.
fn toml_text(c: &Client, path: &str) -> Result<Result<String, Vec<ApiErr>>> {
    let r = c.get(path)?;
    if r.ok()
        && !r
            .header("content-type")
            .unwrap_or_default()
            .contains("json")
    {
        return Ok(Ok(r.text()));
    }
    Ok(json_result(&r).map(|v| v.to_string()))
}

fn list(c: &Client) -> Result<()> {
    let Some(first) = c.report(c.get_json(&c.v("blueprints/list?limit=0"))?) else {
        return Ok(());
    };
    let total = first["total"].as_u64().unwrap_or(0);
    let Some(all) = c.report(c.get_json(&c.v(&format!("blueprints/list?limit={total}")))?) else {
        return Ok(());
    };
    for name in all["blueprints"].as_array().into_iter().flatten() {
        c.say(name.as_str().unwrap_or_default());
    }
    Ok(())
}

fn show(c: &Client, names: &[String], commit: Option<&str>) -> Result<()> {
    if let Some(commit) = commit {
        if names.len() > 1 {
            c.fail("--commit only supports one blueprint name at a time");
            return Ok(());
        }
        let path = format!(
            "/api/v1/blueprints/change/{}/{}",
            seg(&names[0]),
            seg(commit)
        );
        if c.json_mode() {
            c.report(c.get_json(&path)?);
        } else if let Some(t) = c.report(toml_text(c, &format!("{path}?format=toml"))?) {
            c.say(t);
        }
        return Ok(());
    }
    let names = comma_args(names);
    if c.json_mode() {
        if let Some(v) =
            c.report(c.get_json(&c.v(&format!("blueprints/info/{}", names_seg(&names))))?)
        {
            let errors = super::errors_of(&v);
            if !errors.is_empty() {
                c.api_errors(&errors);
            }
        }
        return Ok(());
    }
    // The TOML form holds one blueprint per request.
    for name in &names {
        let path = c.v(&format!("blueprints/info/{}?format=toml", seg(name)));
        if let Some(t) = c.report(toml_text(c, &path)?) {
            c.say(t);
        }
    }
    Ok(())
}

fn changes(c: &Client, names: &[String]) -> Result<()> {
    let base = c.v(&format!("blueprints/changes/{}", names_seg(names)));
    let Some(first) = c.report(c.get_json(&format!("{base}?limit=0"))?) else {
        return Ok(());
    };
    // The largest history sizes the real request.
    let limit = first["blueprints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["total"].as_u64())
        .max()
        .unwrap_or(0);
    let Some(v) = c.report(c.get_json(&format!("{base}?limit={limit}"))?) else {
        return Ok(());
    };
    let errors = super::errors_of(&v);
    if !errors.is_empty() {
        c.api_errors(&errors);
    }
    for bp in v["blueprints"].as_array().into_iter().flatten() {
        c.say(bp["name"].as_str().unwrap_or_default());
        for ch in bp["changes"].as_array().into_iter().flatten() {
            let revision = match ch["revision"].as_u64() {
                Some(r) => format!(" revision {r}"),
                None => String::new(),
            };
            c.say(format!(
                "    {}  {}{}",
                ch["timestamp"].as_str().unwrap_or_default(),
                ch["commit"].as_str().unwrap_or_default(),
                revision
            ));
            c.say(format!(
                "    {}\n",
                ch["message"].as_str().unwrap_or_default()
            ));
        }
    }
    Ok(())
}

/// The commit NEWEST stands for, or the commit given.
fn resolve_commit(c: &Client, name: &str, commit: &str) -> Result<Result<String, String>> {
    if commit != "NEWEST" {
        return Ok(Ok(commit.to_string()));
    }
    let v = match c.get_json(&c.v(&format!("blueprints/changes/{}?limit=1", seg(name))))? {
        Ok(v) => v,
        Err(e) => return Ok(Err(e[0].to_string())),
    };
    if let Some(e) = super::errors_of(&v).first() {
        return Ok(Err(e.to_string()));
    }
    Ok(v["blueprints"][0]["changes"][0]["commit"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("no NEWEST commit for {name}")))
}

/// The blueprint as TOML at a commit, NEWEST or WORKSPACE.
fn blueprint_at(c: &Client, name: &str, commit: &str) -> Result<Result<String, String>> {
    let join = |e: Vec<ApiErr>| {
        e.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if commit == "WORKSPACE" {
        let path = c.v(&format!("blueprints/info/{}?format=toml", seg(name)));
        return Ok(toml_text(c, &path)?.map_err(join));
    }
    let commit = match resolve_commit(c, name, commit)? {
        Ok(x) => x,
        Err(e) => return Ok(Err(e)),
    };
    let path = format!(
        "/api/v1/blueprints/change/{}/{}?format=toml",
        seg(name),
        seg(&commit)
    );
    Ok(toml_text(c, &path)?.map_err(join))
}

fn diff(c: &Client, name: &str, from: &str, to: &str, mut diff_args: Vec<String>) -> Result<()> {
    if from == "WORKSPACE" {
        c.fail("FROM-COMMIT cannot be WORKSPACE");
        return Ok(());
    }
    if c.json_mode() {
        for commit in [from, to] {
            let r = if commit == "WORKSPACE" {
                c.get_json(&c.v(&format!("blueprints/info/{}", seg(name))))?
                    .map(|_| ())
                    .map_err(|e| e[0].to_string())
            } else {
                match resolve_commit(c, name, commit)? {
                    Ok(commit) => c
                        .get_json(&format!(
                            "/api/v1/blueprints/change/{}/{}",
                            seg(name),
                            seg(&commit)
                        ))?
                        .map(|_| ())
                        .map_err(|e| e[0].to_string()),
                    Err(e) => Err(e),
                }
            };
            if let Err(e) = r {
                c.fail(e);
                return Ok(());
            }
        }
        return Ok(());
    }
    let old = match blueprint_at(c, name, from)? {
        Ok(t) => t,
        Err(e) => {
            c.fail(e);
            return Ok(());
        }
    };
    let new = match blueprint_at(c, name, to)? {
        Ok(t) => t,
        Err(e) => {
            c.fail(e);
            return Ok(());
        }
    };
    let dir = tempfile::Builder::new()
        .prefix("bp-diff-")
        .tempdir()
        .context("cannot make a temporary directory")?;
    let old_path = dir.path().join(file_name(name, Some(from), ".toml"));
    let new_path = dir.path().join(file_name(name, Some(to), ".toml"));
    std::fs::write(&old_path, old)?;
    std::fs::write(&new_path, new)?;
    if diff_args.is_empty() {
        diff_args = vec!["--color".into(), "-u".into()];
    }
    c.flush();
    let status = std::process::Command::new("diff")
        .args(&diff_args)
        .arg(old_path.file_name().unwrap_or_default())
        .arg(new_path.file_name().unwrap_or_default())
        .current_dir(dir.path())
        .status();
    match status {
        // 0: same, 1: different, 2: trouble.
        Ok(s) if s.code().is_some_and(|c| c <= 1) => {}
        Ok(s) => c.fail(format!("diff error: {s}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            c.fail("The diff utility is required, please install it")
        }
        Err(e) => c.fail(format!("diff error: {e}")),
    }
    Ok(())
}

/// composer-cli's file name for a blueprint: spaces become `-`, an optional commit is
/// appended, and nothing path-like survives.
fn file_name(name: &str, commit: Option<&str>, suffix: &str) -> String {
    let mut f = name.replace(' ', "-");
    if let Some(c) = commit {
        f = format!("{f}-{c}");
    }
    let f = format!("{f}{suffix}");
    Path::new(&f)
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Where `save` writes: `--filename` as a directory (existing) or a file.
fn save_path(
    name: &str,
    commit: Option<&str>,
    suffix: &str,
    dest: Option<&Path>,
) -> Result<PathBuf, String> {
    let file = file_name(name, commit, suffix);
    if file.is_empty() || file == suffix || file == "." || file == ".." {
        return Err(format!("Invalid blueprint filename: {name}"));
    }
    let Some(dest) = dest else {
        return Ok(PathBuf::from(file));
    };
    match std::fs::metadata(dest) {
        Ok(m) if m.is_dir() => Ok(dest.join(file)),
        Ok(_) => Ok(dest.to_path_buf()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if dest.as_os_str().to_string_lossy().ends_with('/') {
                Err(format!("{} does not exist", dest.display()))
            } else {
                Ok(dest.to_path_buf())
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Writes a TOML blueprint text under the name it carries.
fn write_blueprint(
    c: &Client,
    text: &str,
    commit: Option<&str>,
    suffix: &str,
    dest: Option<&Path>,
) {
    let name = match toml::from_str::<toml::Table>(text) {
        Ok(t) => match t.get("name").and_then(|n| n.as_str()) {
            Some(n) => n.to_string(),
            None => {
                c.fail("no 'name' in blueprint");
                return;
            }
        },
        Err(e) => {
            c.fail(format!("Unmarshal of blueprint failed: {e}"));
            return;
        }
    };
    let path = match save_path(&name, commit, suffix, dest) {
        Ok(p) => p,
        Err(e) => {
            c.fail(e);
            return;
        }
    };
    if let Err(e) = write_private(&path, text.as_bytes()) {
        c.fail(format!("opening file {}: {e}", path.display()));
    }
}

/// Writes a file with mode 0600 (composer-cli's mode for saved blueprints).
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}

fn save(c: &Client, names: &[String], dest: Option<&Path>, commit: Option<&str>) -> Result<()> {
    if let Some(commit) = commit {
        if names.len() > 1 {
            c.fail("--commit only supports one blueprint name at a time");
            return Ok(());
        }
        let path = format!(
            "/api/v1/blueprints/change/{}/{}",
            seg(&names[0]),
            seg(commit)
        );
        if c.json_mode() {
            c.report(c.get_json(&path)?);
            return Ok(());
        }
        if let Some(t) = c.report(toml_text(c, &format!("{path}?format=toml"))?) {
            write_blueprint(c, &t, Some(commit), ".toml", dest);
        }
        return Ok(());
    }
    let names = comma_args(names);
    if c.json_mode() {
        c.report(c.get_json(&c.v(&format!("blueprints/info/{}", names_seg(&names))))?);
    }
    for name in &names {
        let path = c.v(&format!("blueprints/info/{}?format=toml", seg(name)));
        if let Some(t) = c.report(toml_text(c, &path)?) {
            write_blueprint(c, &t, None, ".toml", dest);
        }
    }
    Ok(())
}

/// `name-[epoch:]version-release.arch` as composer-cli prints a dependency (the epoch,
/// when not 0, goes in front).
pub fn nevra(d: &Value) -> String {
    let s = |k: &str| d[k].as_str().unwrap_or_default().to_string();
    let epoch = d["epoch"].as_u64().unwrap_or(0);
    let base = format!(
        "{}-{}-{}.{}",
        s("name"),
        s("version"),
        s("release"),
        s("arch")
    );
    if epoch == 0 {
        base
    } else {
        format!("{epoch}:{base}")
    }
}

fn depsolve(c: &Client, names: &[String]) -> Result<()> {
    let Some(v) = c.report(c.get_json(&c.v(&format!("blueprints/depsolve/{}", names_seg(names))))?)
    else {
        return Ok(());
    };
    let errors = super::errors_of(&v);
    if !errors.is_empty() {
        c.api_errors(&errors);
    }
    for bp in v["blueprints"].as_array().into_iter().flatten() {
        let b = &bp["blueprint"];
        c.say(format!(
            "blueprint: {} v{}",
            b["name"].as_str().unwrap_or_default(),
            b["version"].as_str().unwrap_or_default()
        ));
        for d in bp["dependencies"].as_array().into_iter().flatten() {
            c.say(format!("    {}", nevra(d)));
        }
    }
    Ok(())
}

fn push(c: &Client, route: &str, files: &[String]) -> Result<()> {
    for file in files {
        let data = match std::fs::read(file) {
            Ok(d) => d,
            Err(_) => {
                c.fail(format!("Missing blueprint file: {file}"));
                continue;
            }
        };
        let is_json = file.ends_with(".json")
            || data.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        let ct = if is_json {
            "application/json"
        } else {
            "text/x-toml"
        };
        let r = c.call("POST", &c.v(&format!("blueprints/{route}")), Some(ct), data)?;
        c.report(json_result(&r));
    }
    Ok(())
}

fn freeze(c: &Client, names: &[String]) -> Result<()> {
    let Some(v) = c.report(c.get_json(&c.v(&format!("blueprints/freeze/{}", names_seg(names))))?)
    else {
        return Ok(());
    };
    let errors = super::errors_of(&v);
    if !errors.is_empty() {
        c.api_errors(&errors);
    }
    for bp in v["blueprints"].as_array().into_iter().flatten() {
        let b = &bp["blueprint"];
        let name = b["name"].as_str().unwrap_or_default();
        match b["version"].as_str().filter(|v| !v.is_empty()) {
            Some(ver) => c.say(format!("blueprint: {name} v{ver}")),
            None => c.say(format!("blueprint: {name}")),
        }
        for key in ["modules", "packages"] {
            for p in b[key].as_array().into_iter().flatten() {
                c.say(format!(
                    "    {}-{}",
                    p["name"].as_str().unwrap_or_default(),
                    p["version"].as_str().unwrap_or_default()
                ));
            }
        }
    }
    Ok(())
}

fn freeze_show(c: &Client, names: &[String]) -> Result<()> {
    if c.json_mode() {
        if let Some(v) =
            c.report(c.get_json(&c.v(&format!("blueprints/freeze/{}", names_seg(names))))?)
        {
            let errors = super::errors_of(&v);
            if !errors.is_empty() {
                c.api_errors(&errors);
            }
        }
        return Ok(());
    }
    for name in names {
        let path = c.v(&format!("blueprints/freeze/{}?format=toml", seg(name)));
        if let Some(t) = c.report(toml_text(c, &path)?) {
            c.say(t);
        }
    }
    Ok(())
}

fn freeze_save(c: &Client, names: &[String], dest: Option<&Path>) -> Result<()> {
    if c.json_mode() {
        c.report(c.get_json(&c.v(&format!("blueprints/freeze/{}", names_seg(names))))?);
    }
    for name in names {
        let path = c.v(&format!("blueprints/freeze/{}?format=toml", seg(name)));
        if let Some(t) = c.report(toml_text(c, &path)?) {
            write_blueprint(c, &t, None, ".frozen.toml", dest);
        }
    }
    Ok(())
}

fn export(c: &Client, name: &str, format: &str, dest: Option<&Path>) -> Result<()> {
    let text = if format == "json" {
        let Some(v) = c.report(c.get_json(&c.v(&format!("blueprints/info/{}", seg(name))))?) else {
            return Ok(());
        };
        let errors = super::errors_of(&v);
        if !errors.is_empty() {
            c.api_errors(&errors);
            return Ok(());
        }
        serde_json::to_string_pretty(&v["blueprints"][0])? + "\n"
    } else {
        let path = c.v(&format!("blueprints/info/{}?format=toml", seg(name)));
        match c.report(toml_text(c, &path)?) {
            Some(t) => t,
            None => return Ok(()),
        }
    };
    match dest {
        Some(p) => {
            if let Err(e) = write_private(p, text.as_bytes()) {
                c.fail(format!("cannot write {}: {e}", p.display()));
            }
        }
        None => c.say_raw(&text),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_saved_files() {
        assert_eq!(file_name("my image", None, ".toml"), "my-image.toml");
        assert_eq!(
            file_name("a", Some("abc"), ".frozen.toml"),
            "a-abc.frozen.toml"
        );
        assert_eq!(file_name("../../etc/x", None, ".toml"), "x.toml");
        assert!(save_path("", None, ".toml", None).is_err());
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            save_path("a", None, ".toml", Some(d.path())).unwrap(),
            d.path().join("a.toml")
        );
        let f = d.path().join("other.toml");
        assert_eq!(save_path("a", None, ".toml", Some(&f)).unwrap(), f);
        let missing = format!("{}/nope/", d.path().display());
        assert!(save_path("a", None, ".toml", Some(Path::new(&missing))).is_err());
    }

    #[test]
    fn dependency_names() {
        let d = serde_json::json!({"name": "bash", "epoch": 0, "version": "5.2.15", "release": "2+b7", "arch": "amd64"});
        assert_eq!(nevra(&d), "bash-5.2.15-2+b7.amd64");
        let d = serde_json::json!({"name": "perl", "epoch": 1, "version": "5.36", "release": "1", "arch": "all"});
        assert_eq!(nevra(&d), "1:perl-5.36-1.all");
    }
}
