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
//!
//! initramfs-tools 0.142 (Debian 12) spends most of its time starting processes: about
//! seven per kernel module (copy_file's `realpath`, `readlink`, `mkdir`, `cp` and a
//! `modinfo`), some 17,000 for `MODULES=most`, at about a millisecond each. For that
//! version the stage gives mkinitramfs a `manual_add_modules` that does the same work in
//! batches (`initramfs-batch-modules.sh`, sourced as a conf-hooks.d file and removed
//! again), as initramfs-tools 0.148 (Debian 13) does itself with dracut-install. The
//! initramfs is the same, byte for byte: `tests/e2e_bookworm.rs` builds it both ways.

use super::StageContext;
use std::fs;

/// The batched `manual_add_modules` for initramfs-tools 0.142.
const BATCH_MODULES: &str = include_str!("initramfs-batch-modules.sh");
/// Where mkinitramfs sources it: conf-hooks.d files are read after hook-functions and,
/// unlike conf.d files, are not copied into the initramfs.
const BATCH_MODULES_PATH: &str = "usr/share/initramfs-tools/conf-hooks.d/zz-kiln-batch-modules";

/// How kernel modules are copied into the initramfs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleCopy {
    /// Batched where the tree's initramfs-tools copies module by module, else its own.
    Batched,
    /// Always initramfs-tools' own functions (to check that both give the same bytes).
    Stock,
}

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    generate(ctx, ModuleCopy::Batched)
}

/// Generates the initramfs of every kernel in the tree and links `/initrd.img`.
pub fn generate(ctx: &mut StageContext<'_>, copy: ModuleCopy) -> Result<(), String> {
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
    // The tree is read-only in the sandbox but for /boot, /var/lib/initramfs-tools and
    // /var/tmp: the executor restores the rest as hard links to the stored parent
    // (`RESTORE_BY_HARDLINK_READ_ONLY`), a second instead of a full copy.
    let sb = ctx
        .read_only_chroot_sandbox("initramfs")?
        .env("ZSTD_NBTHREADS", threads.to_string());
    let shim = ctx.tree.join(BATCH_MODULES_PATH);
    let batched = copy == ModuleCopy::Batched && copies_module_by_module(ctx.tree);
    if batched {
        if shim.symlink_metadata().is_ok() {
            return Err(format!(
                "/{BATCH_MODULES_PATH} exists already: a package ships kiln's file name"
            ));
        }
        fs::write(&shim, BATCH_MODULES)
            .map_err(|e| format!("cannot write /{BATCH_MODULES_PATH}: {e}"))?;
        (ctx.log)("initramfs-tools copies modules one by one: kiln batches the copies");
    }
    let result = kernels.iter().try_for_each(|k| {
        (ctx.log)(&format!("update-initramfs -c -k {k}"));
        ctx.run_logged(&sb, "update-initramfs", &["-c", "-k", k])
            .map(drop)
    });
    if batched {
        fs::remove_file(&shim).map_err(|e| format!("cannot remove /{BATCH_MODULES_PATH}: {e}"))?;
    }
    result?;
    link_initrd(ctx)
}

/// Whether the tree's initramfs-tools is the one the batched copy stands in for: its
/// `manual_add_modules` copies and asks `modinfo` module by module (0.142), and the
/// conf-hooks.d directory it sources exists.
fn copies_module_by_module(tree: &std::path::Path) -> bool {
    let Ok(functions) = fs::read_to_string(tree.join("usr/share/initramfs-tools/hook-functions"))
    else {
        return false;
    };
    let hooks = tree.join(BATCH_MODULES_PATH);
    functions.contains("copy_file module \"${kmod}\" || continue")
        && functions.contains("modinfo -k \"${version}\" -F firmware \"${kmod}\"")
        && hooks.parent().is_some_and(|d| d.is_dir())
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
