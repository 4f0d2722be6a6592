//! `system.bootable`: what a Debian tree needs to come up as a machine rather than a
//! container: DHCP on every wired interface with systemd-networkd (and
//! systemd-resolved for DNS when installed), and SSH host keys made on first boot.
//!
//! Options: `{"dhcp": true, "ssh_host_keys": "firstboot"}`.
//!
//! Host keys: openssh-server's postinst makes keys while the tree is built, so every
//! machine from the image would share them (and two builds would differ). They are
//! removed here, and a unit `kiln-ssh-host-keys.service` runs `ssh-keygen -A` before
//! `ssh.service` when no key exists.

use super::StageContext;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

const NETWORK: &str = "# Written by kiln: DHCP on every wired interface.\n[Match]\nName=en* eth*\nType=ether\n\n[Network]\nDHCP=yes\n";

const KEYGEN_UNIT: &str = "# Written by kiln: SSH host keys are made on first boot, not in the image.\n\
[Unit]\nDescription=Generate SSH host keys\nBefore=ssh.service\nConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key\n\n\
[Service]\nType=oneshot\nExecStart=/usr/bin/ssh-keygen -A\nRemainAfterExit=yes\n\n[Install]\nWantedBy=multi-user.target ssh.service\n";

fn replace(path: &Path, data: &str) -> Result<(), String> {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).map_err(|e| format!("cannot create {}: {e}", p.display()))?;
    }
    let _ = fs::remove_file(path);
    fs::write(path, data).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn enable(tree: &Path, unit: &str, target: &str) -> Result<(), String> {
    let wants = tree.join(format!("etc/systemd/system/{target}.wants"));
    fs::create_dir_all(&wants).map_err(|e| e.to_string())?;
    let link = wants.join(unit);
    let _ = fs::remove_file(&link);
    let dest = if tree.join(format!("etc/systemd/system/{unit}")).exists() {
        format!("/etc/systemd/system/{unit}")
    } else {
        format!("/lib/systemd/system/{unit}")
    };
    symlink(dest, &link).map_err(|e| format!("cannot enable {unit}: {e}"))
}

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let tree = ctx.tree.to_path_buf();
    if ctx
        .options
        .get("dhcp")
        .and_then(|v| v.as_bool())
        .unwrap_or(true)
    {
        if !tree
            .join("lib/systemd/system/systemd-networkd.service")
            .exists()
        {
            return Err("systemd-networkd is missing from the tree (package systemd)".into());
        }
        replace(
            &tree.join("etc/systemd/network/80-kiln-dhcp.network"),
            NETWORK,
        )?;
        // `systemctl enable systemd-networkd` creates these three links.
        enable(&tree, "systemd-networkd.service", "multi-user.target")?;
        enable(&tree, "systemd-networkd.socket", "sockets.target")?;
        enable(
            &tree,
            "systemd-networkd-wait-online.service",
            "network-online.target",
        )?;
        if tree
            .join("lib/systemd/system/systemd-resolved.service")
            .exists()
        {
            enable(&tree, "systemd-resolved.service", "multi-user.target")?;
        }
        (ctx.log)("DHCP on en*/eth* with systemd-networkd");
    }
    if ctx.options.get("ssh_host_keys").and_then(|v| v.as_str()) == Some("firstboot")
        && tree.join("usr/sbin/sshd").exists()
    {
        let ssh = tree.join("etc/ssh");
        if let Ok(rd) = fs::read_dir(&ssh) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with("ssh_host_") {
                    fs::remove_file(e.path()).map_err(|err| format!("cannot remove {n}: {err}"))?;
                }
            }
        }
        replace(
            &tree.join("etc/systemd/system/kiln-ssh-host-keys.service"),
            KEYGEN_UNIT,
        )?;
        enable(&tree, "kiln-ssh-host-keys.service", "multi-user.target")?;
        (ctx.log)("SSH host keys removed; kiln-ssh-host-keys.service makes them on first boot");
    }
    Ok(())
}
