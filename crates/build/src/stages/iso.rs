//! `iso.live`: a live ISO of the OS tree of input `tree`, bootable from a CD or a USB
//! stick, under BIOS and UEFI.
//!
//! Options: `{"filename": "live.iso", "volume_id": "KILN_7B7795E7", "efi_volume_id":
//! "1A2B-3C4D", "cmdline": "boot=live console=ttyS0,115200n8", "timeout": 1}`.
//!
//! Layout of the medium (every tool from the build root):
//!
//! * `/live/filesystem.squashfs`: the tree, `mksquashfs` with the filesystem's time and
//!   every file's set to `SOURCE_DATE_EPOCH` (from the environment: mksquashfs refuses
//!   `-mkfs-time`/`-all-time` next to it); mksquashfs sorts directories and is
//!   reproducible by default; live-boot (in the tree's initramfs) finds and mounts it.
//! * `/live/vmlinuz`, `/live/initrd.img`: the tree's `/vmlinuz` and `/initrd.img`.
//! * `/boot/grub/grub.cfg`: one entry booting them with option `cmdline`, serial console.
//! * BIOS: `grub-mkimage -O i386-pc-eltorito` at `/boot/grub/bios.img`, the El Torito
//!   no-emulation boot image; GRUB's `boot_hybrid.img` in the MBR (`--grub2-mbr`,
//!   patched with the image's address by `--grub2-boot-info`) boots it from a USB stick.
//! * UEFI: `grub-mkimage -O x86_64-efi` at `EFI/BOOT/BOOTX64.EFI` of a FAT image
//!   (`mkfs.vfat --invariant` + `mcopy`, as the ESP of `disk.image`), appended to the ISO
//!   as a GPT EFI system partition and named by the El Torito EFI entry: firmware finds
//!   it on a CD (El Torito) and on a stick (GPT).
//!
//! Both GRUB images embed every module they need and a config that finds the medium by
//! its volume id and reads `/boot/grub/grub.cfg`. `xorriso -as mkisofs` writes the ISO
//! with Rock Ridge and Joliet; with `SOURCE_DATE_EPOCH` set it uses it for every file
//! date, the volume dates and the GPT GUIDs, so the same tree gives the same bytes.

use super::StageContext;
use super::oci_archive::plain_name;
use kiln_sandbox::TREE_PATH;
use std::fs;
use std::path::{Path, PathBuf};

const INPUT: &str = "/run/kiln/input";
const WORK: &str = ".kiln-iso-work";
/// Size of the FAT image holding GRUB for UEFI, KiB.
const EFI_IMG_KIB: u64 = 8192;

const COMMON_MODULES: &[&str] = &[
    "iso9660",
    "part_gpt",
    "part_msdos",
    "search",
    "search_label",
    "search_fs_uuid",
    "normal",
    "configfile",
    "linux",
    "echo",
    "test",
    "serial",
    "terminal",
    "gzio",
    "xzio",
    "zstd",
    "boot",
    "ls",
    "cat",
    "sleep",
    "minicmd",
    "reboot",
    "halt",
];
const BIOS_MODULES: &[&str] = &["biosdisk"];
const EFI_MODULES: &[&str] = &["fat", "efi_gop", "all_video", "video_bochs", "video_cirrus"];

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let filename = plain_name(ctx.option_str("filename")?)?.to_owned();
    let volid = ctx.option_str("volume_id")?.to_owned();
    if volid.is_empty()
        || volid.len() > 32
        || !volid
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(format!(
            "volume id {volid:?}: 1 to 32 of A-Z, 0-9 and '_' (ISO 9660 d-characters)"
        ));
    }
    let efi_volid = ctx.option_str("efi_volume_id")?.replace('-', "");
    if efi_volid.len() != 8 || !efi_volid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("efi_volume_id must be eight hex digits in two groups, as 7B77-95E7".into());
    }
    let cmdline = ctx.option_str("cmdline")?.to_owned();
    if cmdline.contains(['\n', '"', '\'', '`', '$', ';', '\\']) {
        return Err(format!(
            "kernel command line {cmdline:?} has characters GRUB would interpret"
        ));
    }
    let timeout = ctx
        .options
        .get("timeout")
        .and_then(|v| v.as_u64())
        .unwrap_or(1);
    let input = ctx.input_tree("tree")?.to_path_buf();
    let build_root = ctx.require_build_root()?.to_path_buf();
    let epoch = ctx.source_epoch.unwrap_or(0);

    let work = ctx.tree.join(WORK);
    let iso = work.join("iso");
    for d in ["live", "boot/grub"] {
        fs::create_dir_all(iso.join(d)).map_err(|e| format!("cannot create {d}: {e}"))?;
    }
    for (link, dest) in [("vmlinuz", "vmlinuz"), ("initrd.img", "initrd.img")] {
        let src = resolve_in(&input, link)?;
        fs::copy(&src, iso.join("live").join(dest))
            .map_err(|e| format!("cannot copy /{link}: {e}"))?;
    }
    fs::write(iso.join("boot/grub/grub.cfg"), grub_cfg(&cmdline, timeout))
        .map_err(|e| format!("cannot write grub.cfg: {e}"))?;
    let embed = format!(
        "search --no-floppy --label --set=root {volid}\nset prefix=($root)/boot/grub\nconfigfile ($root)/boot/grub/grub.cfg\n"
    );
    fs::write(work.join("embed.cfg"), embed).map_err(|e| e.to_string())?;

    let sb = ctx.build_sandbox()?.bind_ro(&input, INPUT);
    let w = format!("{TREE_PATH}/{WORK}");
    (ctx.log)("mksquashfs the tree → /live/filesystem.squashfs");
    ctx.run_logged(
        &sb,
        "mksquashfs",
        &[
            INPUT,
            &format!("{w}/iso/live/filesystem.squashfs"),
            "-noappend",
            "-no-progress",
            "-comp",
            "zstd",
            // Level 15 (the default) takes minutes for little gain.
            "-Xcompression-level",
            "6",
            // No -mkfs-time/-all-time: mksquashfs refuses them next to
            // SOURCE_DATE_EPOCH (set by the sandbox), which sets both times itself.
        ],
    )?;

    let mkimage = |ctx: &mut StageContext<'_>, platform: &str, extra: &[&str], out: &str| {
        // The El Torito image is made of the i386-pc modules.
        let dir = format!("/usr/lib/grub/{}", platform.trim_end_matches("-eltorito"));
        let cfg = format!("{w}/embed.cfg");
        let mut args = vec![
            "-O",
            platform,
            "-d",
            &dir,
            "-p",
            "/boot/grub",
            "-c",
            &cfg,
            "-o",
            out,
        ];
        args.extend(COMMON_MODULES);
        args.extend(extra);
        (ctx.log)(&format!("grub-mkimage -O {platform}"));
        ctx.run_logged(&sb, "grub-mkimage", &args).map(|_| ())
    };
    mkimage(
        ctx,
        "i386-pc-eltorito",
        BIOS_MODULES,
        &format!("{w}/iso/boot/grub/bios.img"),
    )?;
    mkimage(ctx, "x86_64-efi", EFI_MODULES, &format!("{w}/BOOTX64.EFI"))?;
    set_mtime(&work.join("BOOTX64.EFI"), epoch)?;
    let efi_img = format!("{w}/efi.img");
    let kib = EFI_IMG_KIB.to_string();
    ctx.run_logged(
        &sb,
        "mkfs.vfat",
        &[
            "--invariant",
            "-i",
            &efi_volid,
            "-n",
            "EFIBOOT",
            "-C",
            &efi_img,
            &kib,
        ],
    )?;
    ctx.run_logged(&sb, "mmd", &["-i", &efi_img, "::/EFI", "::/EFI/BOOT"])?;
    ctx.run_logged(
        &sb,
        "mcopy",
        &[
            "-m",
            "-i",
            &efi_img,
            &format!("{w}/BOOTX64.EFI"),
            "::/EFI/BOOT/BOOTX64.EFI",
        ],
    )?;

    // xorriso takes directory dates from the files even with SOURCE_DATE_EPOCH set.
    clamp_times(&iso, epoch)?;
    set_mtime(&work.join("efi.img"), epoch)?;
    let hybrid = "/usr/lib/grub/i386-pc/boot_hybrid.img";
    if !build_root.join(hybrid.trim_start_matches('/')).is_file() {
        return Err(format!(
            "{hybrid} is missing: is grub-pc-bin in the build root?"
        ));
    }
    let out = format!("{TREE_PATH}/{filename}");
    let iso_dir = format!("{w}/iso");
    (ctx.log)(&format!(
        "xorriso -as mkisofs → {filename} (volume {volid})"
    ));
    ctx.run_logged(
        &sb,
        "xorriso",
        &[
            "-as",
            "mkisofs",
            "-o",
            &out,
            "-V",
            &volid,
            "-r",
            "-J",
            "-joliet-long",
            "-iso-level",
            "3",
            "--grub2-mbr",
            hybrid,
            "-partition_offset",
            "16",
            "--mbr-force-bootable",
            "-append_partition",
            "2",
            "0xef",
            &efi_img,
            "-appended_part_as_gpt",
            "-iso_mbr_part_type",
            "a2a0d0ebe5b9334487c068b6b72699c7",
            "-c",
            "boot/boot.cat",
            "-b",
            "boot/grub/bios.img",
            "-no-emul-boot",
            "-boot-load-size",
            "4",
            "-boot-info-table",
            "--grub2-boot-info",
            "-eltorito-alt-boot",
            "-e",
            "--interval:appended_partition_2:all::",
            "-no-emul-boot",
            &iso_dir,
        ],
    )?;
    fs::remove_dir_all(&work).map_err(|e| format!("cannot remove {}: {e}", work.display()))?;
    let size = fs::metadata(ctx.tree.join(&filename))
        .map(|m| m.len())
        .unwrap_or(0);
    (ctx.log)(&format!("wrote {filename}: {size} bytes"));
    Ok(())
}

fn grub_cfg(cmdline: &str, timeout: u64) -> String {
    format!(
        "# Written by kiln (stage iso.live).\n\
         serial --unit=0 --speed=115200\nterminal_input console serial\nterminal_output console serial\n\
         set timeout={timeout}\nset default=0\n\n\
         menuentry 'Debian GNU/Linux (live)' {{\n  linux /live/vmlinuz {cmdline}\n  initrd /live/initrd.img\n}}\n"
    )
}

/// The regular file `/name` of `root` names, following symlinks inside `root` only.
fn resolve_in(root: &Path, name: &str) -> Result<PathBuf, String> {
    let mut rel = PathBuf::from(name);
    for _ in 0..16 {
        let p = root.join(&rel);
        let md = fs::symlink_metadata(&p).map_err(|_| {
            format!("/{name} is missing from the tree: is a kernel package installed and its initramfs made?")
        })?;
        if md.is_file() {
            return Ok(p);
        }
        if !md.file_type().is_symlink() {
            return Err(format!("/{} is not a file", rel.display()));
        }
        let target = fs::read_link(&p).map_err(|e| e.to_string())?;
        let base = rel.parent().map(Path::to_path_buf).unwrap_or_default();
        let joined = if target.is_absolute() {
            target.strip_prefix("/").unwrap_or(&target).to_path_buf()
        } else {
            base.join(target)
        };
        // Lexically normalize, never above the root.
        let mut norm = PathBuf::new();
        for c in joined.components() {
            match c {
                std::path::Component::ParentDir => {
                    norm.pop();
                }
                std::path::Component::Normal(s) => norm.push(s),
                _ => {}
            }
        }
        rel = norm;
    }
    Err(format!("/{name}: too many levels of symbolic links"))
}

/// Sets the times of `dir`, and of everything below it, to `epoch`.
fn clamp_times(dir: &Path, epoch: u64) -> Result<(), String> {
    for e in fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))? {
        let p = e.map_err(|e| e.to_string())?.path();
        if p.is_dir() {
            clamp_times(&p, epoch)?;
        } else {
            set_mtime(&p, epoch)?;
        }
    }
    set_mtime(dir, epoch)
}

fn set_mtime(path: &Path, epoch: u64) -> Result<(), String> {
    let t = rustix::fs::Timespec {
        tv_sec: epoch as i64,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        },
        rustix::fs::AtFlags::empty(),
    )
    .map_err(|e| format!("cannot set the time of {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_resolve_inside_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("boot")).unwrap();
        fs::write(root.join("boot/vmlinuz-6"), b"k").unwrap();
        symlink("boot/vmlinuz-6", root.join("vmlinuz")).unwrap();
        symlink("/boot/../boot/vmlinuz-6", root.join("abs")).unwrap();
        symlink("../../../etc/passwd", root.join("escape")).unwrap();
        assert_eq!(
            resolve_in(root, "vmlinuz").unwrap(),
            root.join("boot/vmlinuz-6")
        );
        assert_eq!(
            resolve_in(root, "abs").unwrap(),
            root.join("boot/vmlinuz-6")
        );
        // `..` stops at the tree's root: /etc/passwd of the tree, which is missing.
        assert!(resolve_in(root, "escape").is_err());
        symlink("loop", root.join("loop")).unwrap();
        assert!(resolve_in(root, "loop").unwrap_err().contains("levels"));
    }
}
