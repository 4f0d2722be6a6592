//! `grub.config`: writes `/boot/grub/grub.cfg` into the OS tree, read by the GRUB images
//! that `disk.image` makes (UEFI and BIOS alike).
//!
//! Options: `{"root_uuid": "…", "cmdline": "ro console=ttyS0,115200 …", "timeout": 1,
//! "serial": true}`. The entry boots `/vmlinuz` with `/initrd.img`: the symlinks that
//! Debian's kernel packages keep pointing at the newest kernel (`linux-update-symlinks`),
//! so a kernel upgrade inside the machine needs no GRUB tool; `/vmlinuz.old` gives a
//! fallback entry when it exists at boot.

use super::StageContext;
use std::fs;

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let root = ctx.option_str("root_uuid")?.to_owned();
    let cmdline = ctx.option_str("cmdline")?.to_owned();
    let timeout = ctx
        .options
        .get("timeout")
        .and_then(|v| v.as_u64())
        .unwrap_or(1);
    let serial = ctx
        .options
        .get("serial")
        .and_then(|v| v.as_bool())
        .unwrap_or(true);
    if cmdline.contains(['\n', '"', '\'', '`', '$', ';']) {
        return Err(format!(
            "kernel command line {cmdline:?} has characters GRUB would interpret"
        ));
    }
    for link in ["vmlinuz", "initrd.img"] {
        if fs::symlink_metadata(ctx.tree.join(link)).is_err() {
            return Err(format!(
                "/{link} is missing from the tree: is a kernel package (linux-image-*) installed and its initramfs made?"
            ));
        }
    }
    let mut cfg = String::from("# Written by kiln (stage grub.config).\n");
    if serial {
        cfg.push_str("serial --unit=0 --speed=115200\nterminal_input console serial\nterminal_output console serial\n");
    }
    cfg.push_str(&format!(
        "set timeout={timeout}\nset default=0\nsearch --no-floppy --fs-uuid --set=root {root}\n\n\
         menuentry 'Debian GNU/Linux' {{\n  linux /vmlinuz root=UUID={root} {cmdline}\n  initrd /initrd.img\n}}\n\
         if [ -f /vmlinuz.old ]; then\n  menuentry 'Debian GNU/Linux (previous kernel)' {{\n    linux /vmlinuz.old root=UUID={root} {cmdline}\n    initrd /initrd.img.old\n  }}\nfi\n"
    ));
    let dir = ctx.tree.join("boot/grub");
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("grub.cfg");
    let _ = fs::remove_file(&path);
    fs::write(&path, cfg).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    (ctx.log)(&format!(
        "wrote /boot/grub/grub.cfg (root UUID {root}, cmdline {cmdline:?})"
    ));
    Ok(())
}
