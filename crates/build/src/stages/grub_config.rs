//! `grub.config`: writes `/boot/grub/grub.cfg` into the OS tree, read by the GRUB images
//! that `disk.image` makes (UEFI and BIOS alike).
//!
//! Options: `{"root_uuid": "…", "cmdline": "ro console=ttyS0,115200 …", "timeout": 1,
//! "serial": true}`. The entry boots `/vmlinuz` with `/initrd.img`: the symlinks that
//! Debian's kernel packages keep pointing at the newest kernel (`linux-update-symlinks`),
//! so a kernel upgrade inside the machine needs no GRUB tool; `/vmlinuz.old` gives a
//! fallback entry when it exists at boot.
//!
//! Optional: `"root": "/dev/mapper/vg-root"`, the kernel's `root=` when it is not
//! `UUID=<root_uuid>` (a logical volume, activated by that name in the initramfs);
//! `"boot_uuid": "…"`, a separate `/boot` filesystem: GRUB reads that one, so the kernel
//! links are made in `/boot` too (`vmlinuz`, `initrd.img` and their `.old`) and
//! `link_in_boot = yes` in `/etc/kernel-img.conf` keeps them there on kernel upgrades.

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
    let kroot = match ctx.options.get("root").and_then(|v| v.as_str()) {
        Some(r)
            if !r.is_empty()
                && !r.contains(char::is_whitespace)
                && !r.contains(['"', '\'', '$', ';', '`']) =>
        {
            r.to_owned()
        }
        Some(r) => return Err(format!("invalid root device {r:?}")),
        None => format!("UUID={root}"),
    };
    let search = match ctx.options.get("boot_uuid").and_then(|v| v.as_str()) {
        Some(b) => {
            link_in_boot(ctx)?;
            b.to_owned()
        }
        None => root.clone(),
    };
    if !search.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(format!("invalid filesystem UUID {search:?}"));
    }
    let mut cfg = String::from("# Written by kiln (stage grub.config).\n");
    if serial {
        cfg.push_str("serial --unit=0 --speed=115200\nterminal_input console serial\nterminal_output console serial\n");
    }
    cfg.push_str(&format!(
        "set timeout={timeout}\nset default=0\nsearch --no-floppy --fs-uuid --set=root {search}\n\n\
         menuentry 'Debian GNU/Linux' {{\n  linux /vmlinuz root={kroot} {cmdline}\n  initrd /initrd.img\n}}\n\
         if [ -f /vmlinuz.old ]; then\n  menuentry 'Debian GNU/Linux (previous kernel)' {{\n    linux /vmlinuz.old root={kroot} {cmdline}\n    initrd /initrd.img.old\n  }}\nfi\n"
    ));
    let dir = ctx.tree.join("boot/grub");
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("grub.cfg");
    let _ = fs::remove_file(&path);
    fs::write(&path, cfg).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    (ctx.log)(&format!(
        "wrote /boot/grub/grub.cfg (root {kroot}, cmdline {cmdline:?})"
    ));
    Ok(())
}

/// With a separate /boot, GRUB sees only that filesystem: the kernel links Debian keeps in
/// `/` are made in /boot (relative), and kernel upgrades told to keep them there.
fn link_in_boot(ctx: &mut StageContext<'_>) -> Result<(), String> {
    for link in ["vmlinuz", "initrd.img", "vmlinuz.old", "initrd.img.old"] {
        let Ok(target) = fs::read_link(ctx.tree.join(link)) else {
            continue;
        };
        let target = target.to_string_lossy().into_owned();
        let Some(name) = target
            .trim_start_matches('/')
            .strip_prefix("boot/")
            .filter(|n| !n.contains('/'))
        else {
            return Err(format!(
                "/{link} points at {target}, outside /boot: a separate /boot cannot hold it"
            ));
        };
        let path = ctx.tree.join("boot").join(link);
        let _ = fs::remove_file(&path);
        std::os::unix::fs::symlink(name, &path)
            .map_err(|e| format!("cannot create /boot/{link}: {e}"))?;
    }
    let conf = ctx.tree.join("etc/kernel-img.conf");
    let mut text = fs::read_to_string(&conf).unwrap_or_default();
    if !text
        .lines()
        .any(|l| l.trim_start().starts_with("link_in_boot"))
    {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str("# Written by kiln: /boot is a separate filesystem.\nlink_in_boot = yes\n");
        let _ = fs::remove_file(&conf);
        fs::write(&conf, text).map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
    }
    (ctx.log)("kernel links made in /boot (separate /boot filesystem)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::unix::fs::symlink;

    fn run_with(tree: &std::path::Path, options: serde_json::Value) -> Result<String, String> {
        let mut log = |_: &str| {};
        let mut ctx = StageContext {
            tree,
            options: &options,
            inputs: BTreeMap::new(),
            source_epoch: Some(1),
            bwrap: None,
            build_root: None,
            log: &mut log,
        };
        run(&mut ctx)?;
        Ok(fs::read_to_string(tree.join("boot/grub/grub.cfg")).unwrap())
    }

    fn kernel_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        fs::create_dir_all(t.join("boot")).unwrap();
        fs::create_dir_all(t.join("etc")).unwrap();
        fs::write(t.join("boot/vmlinuz-6.1.0-9-amd64"), "k").unwrap();
        fs::write(t.join("boot/initrd.img-6.1.0-9-amd64"), "i").unwrap();
        symlink("boot/vmlinuz-6.1.0-9-amd64", t.join("vmlinuz")).unwrap();
        symlink("boot/initrd.img-6.1.0-9-amd64", t.join("initrd.img")).unwrap();
        fs::write(t.join("etc/kernel-img.conf"), "do_symlinks = yes\n").unwrap();
        dir
    }

    #[test]
    fn root_by_uuid_by_default() {
        let dir = kernel_tree();
        let cfg = run_with(
            dir.path(),
            serde_json::json!({ "root_uuid": "1111-22", "cmdline": "ro quiet" }),
        )
        .unwrap();
        assert!(cfg.contains("search --no-floppy --fs-uuid --set=root 1111-22\n"));
        assert!(cfg.contains("linux /vmlinuz root=UUID=1111-22 ro quiet\n"));
        assert!(fs::symlink_metadata(dir.path().join("boot/vmlinuz")).is_err());
    }

    #[test]
    fn logical_volume_root_and_separate_boot() {
        let dir = kernel_tree();
        let t = dir.path();
        let cfg = run_with(
            t,
            serde_json::json!({ "root_uuid": "1111", "cmdline": "ro",
                                "root": "/dev/mapper/vg0-root", "boot_uuid": "2222" }),
        )
        .unwrap();
        // GRUB reads the /boot filesystem, where the kernel links now are too.
        assert!(cfg.contains("--set=root 2222\n"), "{cfg}");
        assert!(cfg.contains("linux /vmlinuz root=/dev/mapper/vg0-root ro\n"));
        assert_eq!(
            fs::read_link(t.join("boot/vmlinuz")).unwrap(),
            std::path::Path::new("vmlinuz-6.1.0-9-amd64")
        );
        assert_eq!(
            fs::read_link(t.join("boot/initrd.img")).unwrap(),
            std::path::Path::new("initrd.img-6.1.0-9-amd64")
        );
        let conf = fs::read_to_string(t.join("etc/kernel-img.conf")).unwrap();
        assert!(conf.starts_with("do_symlinks = yes\n") && conf.ends_with("link_in_boot = yes\n"));
        // Run again (a rebuild of the stage): same result, no second line.
        run_with(
            t,
            serde_json::json!({ "root_uuid": "1111", "cmdline": "ro", "boot_uuid": "2222" }),
        )
        .unwrap();
        let again = fs::read_to_string(t.join("etc/kernel-img.conf")).unwrap();
        assert_eq!(conf, again);
        assert!(
            run_with(
                t,
                serde_json::json!({ "root_uuid": "1111", "cmdline": "ro", "root": "/dev/x y" })
            )
            .is_err()
        );
    }
}
