//! `hostname`: writes `/etc/hostname`. Options: `{"hostname": "NAME"}`.

use super::StageContext;
use std::fs;

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let name = ctx.option_str("hostname")?.to_owned();
    (ctx.log)(&format!(
        "setting the hostname to {name:?} in /etc/hostname"
    ));
    if name.is_empty()
        || name.len() > 253
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(format!("invalid hostname {name:?}"));
    }
    let etc = ctx.tree.join("etc");
    fs::create_dir_all(&etc).map_err(|e| format!("cannot create {}: {e}", etc.display()))?;
    let path = etc.join("hostname");
    // Replace rather than write through: the file may be a hard link into the store.
    let _ = fs::remove_file(&path);
    fs::write(&path, format!("{name}\n"))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    (ctx.log)("wrote /etc/hostname");
    Ok(())
}
