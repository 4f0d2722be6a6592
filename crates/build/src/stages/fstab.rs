//! `fstab`: writes `/etc/fstab` and creates the mount points.
//!
//! Options: `{"entries": [{"source": "UUID=…", "target": "/", "type": "ext4",
//! "options": "errors=remount-ro", "freq": 0, "passno": 1}, …]}`. A swap area has the
//! target `none` and type `swap`.

use super::StageContext;
use serde::Deserialize;
use std::fs;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    source: String,
    target: String,
    #[serde(rename = "type")]
    fs_type: String,
    #[serde(default = "defaults")]
    options: String,
    #[serde(default)]
    freq: u32,
    #[serde(default)]
    passno: u32,
}

fn defaults() -> String {
    "defaults".into()
}

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let entries: Vec<Entry> =
        serde_json::from_value(ctx.options.get("entries").cloned().unwrap_or_default())
            .map_err(|e| format!("invalid option \"entries\": {e}"))?;
    let mut text = String::from("# /etc/fstab, written by kiln (stage fstab).\n");
    for e in &entries {
        let fields = [&e.source, &e.target, &e.fs_type, &e.options];
        if fields
            .iter()
            .any(|f| f.is_empty() || f.contains(char::is_whitespace))
        {
            return Err(format!(
                "fstab entry for {:?}: empty field or white space",
                e.target
            ));
        }
        let swap = e.fs_type == "swap" && e.target == "none";
        if !swap && (!e.target.starts_with('/') || e.target.split('/').any(|c| c == "..")) {
            return Err(format!(
                "mount point {:?} must be an absolute path without ..",
                e.target
            ));
        }
        text.push_str(&format!(
            "{} {} {} {} {} {}\n",
            e.source, e.target, e.fs_type, e.options, e.freq, e.passno
        ));
        let dir = ctx.tree.join(e.target.trim_start_matches('/'));
        if !swap && fs::symlink_metadata(&dir).is_err() {
            fs::create_dir_all(&dir)
                .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
        }
    }
    let path = ctx.tree.join("etc/fstab");
    let _ = fs::remove_file(&path);
    fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    (ctx.log)(&format!("wrote /etc/fstab with {} entries", entries.len()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn swap_has_no_mount_point() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("etc")).unwrap();
        let options = serde_json::json!({ "entries": [
            { "source": "UUID=a", "target": "/", "type": "ext4", "passno": 1 },
            { "source": "UUID=b", "target": "/var/log", "type": "ext4", "passno": 2 },
            { "source": "UUID=c", "target": "none", "type": "swap" },
        ]});
        let mut log = |_: &str| {};
        let mut ctx = StageContext {
            tree: dir.path(),
            options: &options,
            inputs: BTreeMap::new(),
            source_epoch: None,
            bwrap: None,
            build_root: None,
            log: &mut log,
        };
        run(&mut ctx).unwrap();
        let text = fs::read_to_string(dir.path().join("etc/fstab")).unwrap();
        assert!(
            text.ends_with("UUID=b /var/log ext4 defaults 0 2\nUUID=c none swap defaults 0 0\n")
        );
        assert!(dir.path().join("var/log").is_dir());
        assert!(!dir.path().join("none").exists());
        // "none" is only a target for swap.
        let bad = serde_json::json!({ "entries": [
            { "source": "UUID=c", "target": "none", "type": "ext4" }]});
        ctx.options = &bad;
        assert!(run(&mut ctx).is_err());
    }
}
