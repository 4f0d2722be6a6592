//! `kiln sources ...`: composer-cli's package source commands (the server's sources;
//! `kiln local sources` edits the local state directly).

use super::{Client, comma_args, json_result, names_seg, seg};
use anyhow::Result;
use serde_json::Value;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// List the source ids.
    List,
    /// Show sources in TOML format (`*` for all).
    Info {
        #[arg(required = true, value_name = "SOURCE,...")]
        ids: Vec<String>,
    },
    /// Add a source from a TOML (or JSON) file.
    Add {
        #[arg(value_name = "SOURCE.toml")]
        file: String,
    },
    /// Replace a source from a TOML (or JSON) file.
    Change {
        #[arg(value_name = "SOURCE.toml")]
        file: String,
    },
    /// Delete a source.
    Delete { id: String },
}

pub fn run(c: &Client, cmd: Command) -> Result<()> {
    match cmd {
        Command::List => {
            match c.get_json(&c.v("projects/source/list"))? {
                Ok(v) => {
                    for id in v["sources"].as_array().into_iter().flatten() {
                        c.say(id.as_str().unwrap_or_default());
                    }
                }
                Err(e) => c.api_errors(&e),
            }
            Ok(())
        }
        Command::Info { ids } => info(c, &comma_args(&ids)),
        Command::Add { file } | Command::Change { file } => {
            let data = match std::fs::read(&file) {
                Ok(d) => d,
                Err(e) => {
                    c.fail(format!("reading {file}: {e}"));
                    return Ok(());
                }
            };
            let is_json = file.ends_with(".json")
                || data.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
            let ct = if is_json {
                "application/json"
            } else {
                "text/x-toml"
            };
            let r = c.call("POST", &c.v("projects/source/new"), Some(ct), data)?;
            if let Err(e) = json_result(&r) {
                c.api_errors(&e);
            }
            Ok(())
        }
        Command::Delete { id } => {
            let path = c.v(&format!("projects/source/delete/{}", seg(&id)));
            let r = c.call("DELETE", &path, None, vec![])?;
            if let Err(e) = json_result(&r) {
                c.api_errors(&e);
            }
            Ok(())
        }
    }
}

/// JSON as TOML: nulls dropped (TOML has none).
fn to_toml(v: &Value) -> Option<toml::Value> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64()?),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(a) => toml::Value::Array(a.iter().filter_map(to_toml).collect()),
        Value::Object(o) => toml::Value::Table(
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), to_toml(v)?)))
                .collect(),
        ),
    })
}

fn info(c: &Client, ids: &[String]) -> Result<()> {
    let v = match c.get_json(&c.v(&format!("projects/source/info/{}", names_seg(ids))))? {
        Ok(v) => v,
        Err(e) => {
            c.api_errors(&e);
            return Ok(());
        }
    };
    for (_, source) in v["sources"].as_object().into_iter().flatten() {
        match to_toml(source).map(|t| toml::to_string(&t)) {
            Some(Ok(text)) => c.say(text),
            Some(Err(e)) => c.fail(format!("TOMLError: {e}")),
            None => {}
        }
    }
    let errors = super::errors_of(&v);
    if !errors.is_empty() {
        c.api_errors(&errors);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sources_as_toml() {
        let v = serde_json::json!({"id": "x", "url": "http://127.0.0.1/", "check_gpg": true, "proxy": null, "distros": ["debian-12"], "n": 1});
        let t = toml::to_string(&super::to_toml(&v).unwrap()).unwrap();
        assert_eq!(
            t,
            "check_gpg = true\ndistros = [\"debian-12\"]\nid = \"x\"\nn = 1\nurl = \"http://127.0.0.1/\"\n"
        );
    }
}
