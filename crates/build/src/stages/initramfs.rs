//! `initramfs`: generates the initramfs of every installed kernel with the tree's own
//! `update-initramfs` (initramfs-tools) in the sandbox. `deb.install` defers this work so
//! that it runs once, here, as a stage of its own that the store caches.
//!
//! Options: none. initramfs-tools clamps the archive's mtimes to `SOURCE_DATE_EPOCH`, so
//! the same tree gives the same initramfs.
//!
//! With `SOURCE_DATE_EPOCH` set, mkinitramfs leaves zstd at its default of one worker
//! thread (it only adds `-T0` for builds that need not be reproducible). zstd's
//! multi-threaded output does not depend on the number of workers (only its
//! `--single-thread` mode differs), so `ZSTD_NBTHREADS` gives the same bytes, sooner.

use super::StageContext;
use std::fs;

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let modules = ctx.tree.join("usr/lib/modules");
    let kernels: Vec<String> = fs::read_dir(&modules)
        .map_err(|_| {
            "no kernel in the tree (/usr/lib/modules is missing): add a kernel package".to_string()
        })?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|v| ctx.tree.join(format!("boot/vmlinuz-{v}")).exists())
        .collect();
    if kernels.is_empty() {
        return Err("no kernel in the tree (no /boot/vmlinuz-*): add a kernel package".into());
    }
    if !ctx.tree.join("usr/sbin/update-initramfs").exists() {
        return Err("update-initramfs is missing: add the initramfs-tools package".into());
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let sb = ctx
        .chroot_sandbox()
        .env("ZSTD_NBTHREADS", threads.to_string());
    for k in &kernels {
        (ctx.log)(&format!("update-initramfs -c -k {k}"));
        ctx.run_logged(&sb, "update-initramfs", &["-c", "-k", k])?;
    }
    link_initrd(ctx)
}

/// Debian keeps `/vmlinuz` and `/initrd.img` pointing at the newest kernel
/// (`linux-update-symlinks`), but the kernel's postinst skips the initrd link while the
/// initramfs is deferred: make it next to the kernel link, as the postinst would have.
fn link_initrd(ctx: &mut StageContext<'_>) -> Result<(), String> {
    for (kernel, initrd) in [("vmlinuz", "initrd.img"), ("vmlinuz.old", "initrd.img.old")] {
        let Ok(target) = fs::read_link(ctx.tree.join(kernel)) else {
            continue;
        };
        let target = target.to_string_lossy().into_owned();
        let Some(version) = target.rsplit_once("vmlinuz-").map(|(_, v)| v.to_owned()) else {
            continue;
        };
        let dir = target
            .rsplit_once("vmlinuz-")
            .map(|(d, _)| d.to_owned())
            .unwrap_or_default();
        let dest = format!("{dir}initrd.img-{version}");
        if !ctx.tree.join(dest.trim_start_matches('/')).exists() {
            return Err(format!(
                "/{kernel} points at kernel {version}, which has no initramfs /{dest}"
            ));
        }
        let link = ctx.tree.join(initrd);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&dest, &link)
            .map_err(|e| format!("cannot create /{initrd}: {e}"))?;
        (ctx.log)(&format!("/{initrd} -> {dest}"));
    }
    Ok(())
}
