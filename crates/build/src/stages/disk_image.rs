//! `disk.image`: a partitioned, bootable disk image made from a tree, without a loop
//! device or a mount (principle 5).
//!
//! Input `tree`: the OS tree. Options (every identifier given by the manifest):
//!
//! ```json
//! {"filename": "disk.raw", "size": 10737418240, "uuid": "<GPT disk GUID>",
//!  "partitions": [
//!    {"name": "bios", "type": "21686148-…", "uuid": "…", "start": 1048576, "size": 1048576},
//!    {"name": "esp", "type": "C12A7328-…", "uuid": "…", "start": …, "size": …,
//!     "filesystem": {"type": "vfat", "uuid": "7B77-95E7", "label": "ESP", "mountpoint": "/boot/efi"}},
//!    {"name": "root", "type": "4F68BCE3-…", "uuid": "…", "start": …, "size": …,
//!     "filesystem": {"type": "ext4", "uuid": "…", "label": "root", "mountpoint": "/"}}],
//!  "grub": {"bios": true, "uefi": true}}
//! ```
//!
//! Steps: the file is created sparse; kiln writes the GPT (crate::gpt); `mkfs.ext4 -d`
//! fills each ext4 filesystem from the part of the tree under its mount point, in place
//! at its offset (`-E offset=`), with the manifest's UUID as UUID and directory hash seed
//! and `E2FSPROGS_FAKE_TIME` as every superblock time; the ESP is made with
//! `mkfs.vfat --invariant` and filled with `mcopy` (both honour `SOURCE_DATE_EPOCH`) and
//! copied to its offset. GRUB comes from the build root:
//!
//! * UEFI: `grub-mkimage -O x86_64-efi` with the modules below and an embedded config
//!   that finds the root filesystem by UUID and reads its `/boot/grub/grub.cfg` (written
//!   by the `grub.config` stage), installed at the removable path `EFI/BOOT/BOOTX64.EFI`
//!   (no NVRAM entry is needed).
//! * BIOS: `grub-mkimage -O i386-pc` (same config) written to the start of the BIOS boot
//!   partition, its first sector's block list pointed at the rest, and the first 440 bytes
//!   of `boot.img` written into the MBR with the core image's sector patched in: what
//!   `grub-bios-setup` does, done on the file.
//!
//! Every module GRUB needs is inside its image, so the root filesystem needs no
//! `/boot/grub/<platform>/` directory and no `grub-install`.

use super::StageContext;
use crate::gpt::{self, Partition};
use crate::sparse;
use kiln_sandbox::TREE_PATH;
use serde::Deserialize;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Where the input tree is mounted in the sandbox.
const INPUT: &str = "/run/kiln/input";
/// Scratch directory inside the stage's tree (removed before the tree is committed).
const WORK: &str = ".kiln-disk-work";

const COMMON_MODULES: &[&str] = &[
    "part_gpt",
    "part_msdos",
    "ext2",
    "fat",
    "search",
    "search_fs_uuid",
    "search_label",
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
    "loadenv",
];
const BIOS_MODULES: &[&str] = &["biosdisk"];
const EFI_MODULES: &[&str] = &["efi_gop", "all_video", "video_bochs", "video_cirrus"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    filename: String,
    size: u64,
    uuid: String,
    partitions: Vec<PartOpt>,
    #[serde(default)]
    grub: Option<GrubOpt>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartOpt {
    name: String,
    #[serde(rename = "type")]
    type_guid: String,
    uuid: String,
    start: u64,
    size: u64,
    #[serde(default)]
    filesystem: Option<FsOpt>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FsOpt {
    #[serde(rename = "type")]
    fs_type: String,
    uuid: String,
    #[serde(default)]
    label: String,
    mountpoint: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrubOpt {
    bios: bool,
    uefi: bool,
}

/// GPT type of the BIOS boot partition.
pub const BIOS_BOOT_TYPE: &str = "21686148-6449-6E6F-744E-656564454649";

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let o: Options =
        serde_json::from_value(ctx.options.clone()).map_err(|e| format!("invalid options: {e}"))?;
    let input = ctx.input_tree("tree")?.to_path_buf();
    let build_root = ctx.require_build_root()?.to_path_buf();
    if o.filename.contains('/') || o.filename.starts_with('.') || o.filename.is_empty() {
        return Err(format!("invalid file name {:?}", o.filename));
    }
    if !o.size.is_multiple_of(1 << 20) {
        return Err(format!("size {} is not a whole number of MiB", o.size));
    }
    let disk_path = ctx.tree.join(&o.filename);
    let work = ctx.tree.join(WORK);
    fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let disk = File::create(&disk_path).map_err(|e| format!("cannot create the disk: {e}"))?;
    disk.set_len(o.size)
        .map_err(|e| format!("cannot size the disk: {e}"))?;

    let parts: Vec<Partition> = o
        .partitions
        .iter()
        .map(|p| Partition {
            type_guid: p.type_guid.clone(),
            uuid: p.uuid.clone(),
            name: p.name.clone(),
            start: p.start,
            size: p.size,
            attributes: 0,
        })
        .collect();
    gpt::write(&disk, &o.uuid, &parts).map_err(|e| format!("partition table: {e}"))?;
    (ctx.log)(&format!(
        "wrote a GPT with {} partitions ({} bytes)",
        parts.len(),
        o.size
    ));

    let sandbox = ctx.build_sandbox()?.bind_ro(&input, INPUT).env(
        "SOURCE_DATE_EPOCH",
        ctx.source_epoch.unwrap_or(0).to_string(),
    );
    let epoch = ctx.source_epoch.unwrap_or(0).to_string();
    let in_tree = |rel: &str| format!("{TREE_PATH}/{rel}");

    // Every filesystem, root first so that mount points of the others exist below it.
    let root_uuid = o
        .partitions
        .iter()
        .filter_map(|p| p.filesystem.as_ref())
        .find(|f| f.mountpoint == "/")
        .map(|f| f.uuid.clone())
        .ok_or("no partition has the root filesystem (mountpoint \"/\")")?;
    let mountpoints: Vec<&str> = o
        .partitions
        .iter()
        .filter_map(|p| p.filesystem.as_ref())
        .map(|f| f.mountpoint.as_str())
        .collect();
    for p in &o.partitions {
        let Some(fsopt) = &p.filesystem else { continue };
        let src_rel = fsopt.mountpoint.trim_start_matches('/');
        let src_host = input.join(src_rel);
        if !src_host.is_dir() {
            fs::create_dir_all(work.join("empty")).map_err(|e| e.to_string())?;
        }
        let src = if src_host.is_dir() {
            format!("{INPUT}/{src_rel}")
        } else {
            in_tree(&format!("{WORK}/empty"))
        };
        match fsopt.fs_type.as_str() {
            "ext4" => {
                // The contents of other filesystems mounted below this one must not be
                // copied twice: refuse such nesting until it is supported.
                let nested: Vec<&&str> = mountpoints
                    .iter()
                    .filter(|m| **m != fsopt.mountpoint && is_below(m, &fsopt.mountpoint))
                    .filter(|m| {
                        input
                            .join(m.trim_start_matches('/'))
                            .read_dir()
                            .is_ok_and(|mut d| d.next().is_some())
                    })
                    .collect();
                if !nested.is_empty() && fsopt.mountpoint != "/" {
                    return Err(format!(
                        "filesystem {} has non-empty nested mount points {nested:?}",
                        fsopt.mountpoint
                    ));
                }
                let blocks = (p.size / 4096).to_string();
                let ext_opts =
                    format!("hash_seed={},offset={},root_owner=0:0", fsopt.uuid, p.start);
                let mut args: Vec<String> = vec![
                    "-q".into(),
                    "-F".into(),
                    "-t".into(),
                    "ext4".into(),
                    "-b".into(),
                    "4096".into(),
                    "-U".into(),
                    fsopt.uuid.clone(),
                    "-E".into(),
                    ext_opts,
                    // GRUB 2.06 cannot read metadata_csum_seed; orphan_file is young.
                    "-O".into(),
                    "^metadata_csum_seed,^orphan_file".into(),
                    "-d".into(),
                    src,
                ];
                if !fsopt.label.is_empty() {
                    args.extend(["-L".into(), fsopt.label.clone()]);
                }
                args.push(in_tree(&o.filename));
                args.push(blocks);
                let sb = sandbox.clone().env("E2FSPROGS_FAKE_TIME", epoch.clone());
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                (ctx.log)(&format!(
                    "mkfs.ext4 {} at offset {} ({} bytes)",
                    fsopt.mountpoint, p.start, p.size
                ));
                ctx.run_logged(&sb, "mkfs.ext4", &refs)?;
                clamp_ext4_times(ctx, &sandbox, &in_tree(&o.filename), p.start, &epoch)?;
                // Nested mount points inside the root keep their (empty) directories; their
                // contents live on their own filesystems: the OS tree pipeline keeps
                // those directories empty (the ESP's files are made here).
            }
            "vfat" => {
                let img_rel = format!("{WORK}/{}.vfat", p.name);
                let volid = fsopt.uuid.replace('-', "");
                if volid.len() != 8 || !volid.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!(
                        "vfat volume id {:?} must be eight hex digits in two groups, as 7B77-95E7",
                        fsopt.uuid
                    ));
                }
                let kib = (p.size / 1024).to_string();
                let mut args = vec!["--invariant", "-F", "32", "-i", &volid, "-C"];
                let img = in_tree(&img_rel);
                args.push(&img);
                args.push(&kib);
                let label;
                if !fsopt.label.is_empty() {
                    label = fsopt.label.clone();
                    args.splice(0..0, ["-n", label.as_str()]);
                }
                (ctx.log)(&format!(
                    "mkfs.vfat {} ({} bytes)",
                    fsopt.mountpoint, p.size
                ));
                ctx.run_logged(&sandbox, "mkfs.vfat", &args)?;
                if fsopt.mountpoint == "/boot/efi"
                    && let Some(g) = &o.grub
                    && g.uefi
                {
                    efi_grub(ctx, &sandbox, &root_uuid, &img)?;
                }
                // Files the OS tree has below the mount point go onto the filesystem too.
                if src_host.is_dir()
                    && fs::read_dir(&src_host).is_ok_and(|mut d| d.next().is_some())
                {
                    let entries: Vec<String> = fs::read_dir(&src_host)
                        .map_err(|e| e.to_string())?
                        .filter_map(|e| e.ok())
                        .map(|e| format!("{src}/{}", e.file_name().to_string_lossy()))
                        .collect();
                    let mut args: Vec<&str> = vec!["-b", "-s", "-p", "-Q", "-m", "-i", &img];
                    args.extend(entries.iter().map(String::as_str));
                    args.push("::");
                    ctx.run_logged(&sandbox, "mcopy", &args)?;
                }
                let f = File::open(ctx.tree.join(&img_rel)).map_err(|e| e.to_string())?;
                let mut d = disk.try_clone().map_err(|e| e.to_string())?;
                sparse::copy_range_sparse(&f, &mut d, 0, p.size, p.start)
                    .map_err(|e| format!("cannot write the ESP into the disk: {e}"))?;
            }
            other => {
                return Err(format!(
                    "filesystem type {other:?} is not supported (ext4, vfat)"
                ));
            }
        }
    }

    if let Some(g) = &o.grub
        && g.bios
    {
        let bios = o
            .partitions
            .iter()
            .find(|p| p.type_guid.eq_ignore_ascii_case(BIOS_BOOT_TYPE))
            .ok_or(
                "BIOS boot needs a BIOS boot partition (type 21686148-6449-6E6F-744E-656564454649)",
            )?;
        bios_grub(
            ctx,
            &sandbox,
            &build_root,
            &disk,
            &root_uuid,
            bios.start,
            bios.size,
        )?;
    }
    if let Some(g) = &o.grub
        && g.uefi
        && !o.partitions.iter().any(|p| {
            p.filesystem
                .as_ref()
                .is_some_and(|f| f.mountpoint == "/boot/efi")
        })
    {
        return Err("UEFI boot needs an EFI system partition mounted at /boot/efi".into());
    }
    disk.sync_all()
        .map_err(|e| format!("cannot sync the disk: {e}"))?;
    fs::remove_dir_all(&work).map_err(|e| format!("cannot remove {}: {e}", work.display()))?;
    Ok(())
}

/// `mkfs.ext4 -d` copies each file's ctime and atime from the source tree, and those are
/// the times the host last changed or read that inode: two builds of the same tree differ
/// there and nowhere else. Every used inode's ctime and atime are set to
/// `SOURCE_DATE_EPOCH` with debugfs (mtimes are the tree's, already clamped).
/// Inodes are allocated in order from the first group when a filesystem is populated,
/// so the used ones are the reserved inodes and 11 (lost+found) up to the used count.
fn clamp_ext4_times(
    ctx: &mut StageContext<'_>,
    sandbox: &kiln_sandbox::Sandbox,
    disk: &str,
    offset: u64,
    epoch: &str,
) -> Result<(), String> {
    let device = format!("{disk}?offset={offset}");
    let header = sandbox
        .run("dumpe2fs", ["-h", &device])
        .map_err(|e| e.to_string())?
        .stdout_str();
    let field = |name: &str| -> Result<u64, String> {
        header
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .ok_or_else(|| format!("dumpe2fs printed no {name:?}"))
    };
    let used = field("Inode count:")? - field("Free inodes:")?;
    let mut script = String::new();
    for ino in std::iter::once(2).chain(11..=used) {
        script.push_str(&format!(
            "sif <{ino}> ctime @{epoch}\nsif <{ino}> atime @{epoch}\n"
        ));
    }
    let path = write_work(ctx, "ctimes.debugfs", &script)?;
    let sb = sandbox.clone().env("E2FSPROGS_FAKE_TIME", epoch);
    sb.run("debugfs", ["-w", "-f", &path, &device])
        .map_err(|e| e.to_string())?;
    (ctx.log)(&format!(
        "set the ctime and atime of {} inodes to {epoch}",
        used - 9
    ));
    Ok(())
}

fn is_below(path: &str, dir: &str) -> bool {
    dir == "/" || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

/// The config embedded in both GRUB images: find the root filesystem, read its grub.cfg.
fn embedded_config(root_uuid: &str) -> String {
    format!(
        "search --no-floppy --fs-uuid --set=root {root_uuid}\nset prefix=($root)/boot/grub\nconfigfile ($root)/boot/grub/grub.cfg\n"
    )
}

fn write_work(ctx: &StageContext<'_>, name: &str, data: &str) -> Result<String, String> {
    let p = ctx.tree.join(WORK).join(name);
    fs::write(&p, data).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    Ok(format!("{TREE_PATH}/{WORK}/{name}"))
}

/// Makes a GRUB image for `platform` with every module it needs and the embedded config;
/// returns its path in the sandbox (`<work>/<name>`).
fn grub_mkimage(
    ctx: &mut StageContext<'_>,
    sandbox: &kiln_sandbox::Sandbox,
    platform: &str,
    modules: &[&str],
    root_uuid: &str,
    name: &str,
) -> Result<String, String> {
    let cfg = write_work(ctx, "embed.cfg", &embedded_config(root_uuid))?;
    let out = format!("{TREE_PATH}/{WORK}/{name}");
    let dir = format!("/usr/lib/grub/{platform}");
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
        &out,
    ];
    args.extend(COMMON_MODULES);
    args.extend(modules);
    (ctx.log)(&format!("grub-mkimage -O {platform} → {name}"));
    ctx.run_logged(sandbox, "grub-mkimage", &args)?;
    Ok(out)
}

fn efi_grub(
    ctx: &mut StageContext<'_>,
    sandbox: &kiln_sandbox::Sandbox,
    root_uuid: &str,
    esp_img: &str,
) -> Result<(), String> {
    let out = grub_mkimage(
        ctx,
        sandbox,
        "x86_64-efi",
        EFI_MODULES,
        root_uuid,
        "BOOTX64.EFI",
    )?;
    // mcopy -m keeps the file's mtime as its FAT date: make it the manifest's.
    let epoch = ctx.source_epoch.unwrap_or(0) as i64;
    let stamp = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: epoch,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: epoch,
            tv_nsec: 0,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        ctx.tree.join(WORK).join("BOOTX64.EFI"),
        &stamp,
        rustix::fs::AtFlags::empty(),
    )
    .map_err(|e| format!("cannot set the time of BOOTX64.EFI: {e}"))?;
    ctx.run_logged(sandbox, "mmd", &["-i", esp_img, "::/EFI", "::/EFI/BOOT"])?;
    ctx.run_logged(
        sandbox,
        "mcopy",
        &["-m", "-i", esp_img, &out, "::/EFI/BOOT/BOOTX64.EFI"],
    )?;
    Ok(())
}

// Offsets in GRUB's boot.img and diskboot.img (grub/include/grub/i386/pc/boot.h).
const BOOT_KERNEL_SECTOR: usize = 0x5c;
const BOOT_DRIVE: usize = 0x64;
const BOOT_DRIVE_CHECK: usize = 0x66;
const MBR_CODE_END: usize = 440;
/// The first block list entry sits at the end of core.img's first sector.
const BLOCKLIST: usize = 512 - 12;

fn bios_grub(
    ctx: &mut StageContext<'_>,
    sandbox: &kiln_sandbox::Sandbox,
    build_root: &Path,
    disk: &File,
    root_uuid: &str,
    part_start: u64,
    part_size: u64,
) -> Result<(), String> {
    grub_mkimage(ctx, sandbox, "i386-pc", BIOS_MODULES, root_uuid, "core.img")?;
    let mut core = fs::read(ctx.tree.join(WORK).join("core.img")).map_err(|e| e.to_string())?;
    if core.len() as u64 > part_size {
        return Err(format!(
            "core.img ({} bytes) does not fit the BIOS boot partition ({part_size} bytes)",
            core.len()
        ));
    }
    let boot_path = build_root.join("usr/lib/grub/i386-pc/boot.img");
    let boot =
        fs::read(&boot_path).map_err(|e| format!("cannot read {}: {e}", boot_path.display()))?;
    if boot.len() != 512 || core.len() < 1024 {
        return Err(
            "unexpected boot.img or core.img size (is grub-pc-bin in the build root?)".into(),
        );
    }
    let first = part_start / gpt::SECTOR;
    let sectors = core.len().div_ceil(512) as u64;
    // core.img sector 0 (diskboot) loads the rest: one contiguous run after it.
    core[BLOCKLIST..BLOCKLIST + 8].copy_from_slice(&(first + 1).to_le_bytes());
    core[BLOCKLIST + 8..BLOCKLIST + 10].copy_from_slice(&((sectors - 1) as u16).to_le_bytes());
    core[BLOCKLIST - 12..BLOCKLIST].fill(0); // terminator
    disk.write_all_at(&core, part_start)
        .map_err(|e| e.to_string())?;
    let mut mbr = boot[..MBR_CODE_END].to_vec();
    mbr[BOOT_KERNEL_SECTOR..BOOT_KERNEL_SECTOR + 8].copy_from_slice(&first.to_le_bytes());
    mbr[BOOT_DRIVE] = 0xff;
    // A hard disk: skip boot.img's check for buggy BIOSes that pass a floppy drive number.
    mbr[BOOT_DRIVE_CHECK] = 0x90;
    mbr[BOOT_DRIVE_CHECK + 1] = 0x90;
    disk.write_all_at(&mbr, 0).map_err(|e| e.to_string())?;
    (ctx.log)(&format!(
        "BIOS GRUB: core.img {} sectors at sector {first}",
        sectors
    ));
    Ok(())
}
