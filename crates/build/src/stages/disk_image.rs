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
//! A partition may instead hold `"swap": {"uuid": "…", "label": "…"}` or a volume group:
//! `"lvm": {"name": "vg0", "uuid": "<32 chars>", "pv_uuid": "…", "extent_size": 4194304,
//! "logical_volumes": [{"name": "root", "uuid": "…", "size": …, "filesystem": {…}}, …]}`
//! (each logical volume a `filesystem` or a `swap`, laid out in order after the 1 MiB
//! physical volume header).
//!
//! Steps: the file is created sparse; kiln writes the GPT (crate::gpt) and the LVM
//! labels and metadata (crate::lvm); `mkfs.ext4 -d` fills each ext4 filesystem from the
//! part of the tree under its mount point, in place at its offset (`-E offset=`, the
//! partition's or the logical volume's), with the manifest's UUID as UUID and directory
//! hash seed and `E2FSPROGS_FAKE_TIME` as every superblock time. The mount points of the
//! filesystems below it are shown to mkfs as empty directories (with the mode, owner and
//! times of the tree's), bound over the input in the sandbox, so every file lands on one
//! filesystem only; a filesystem whose files clearly cannot fit is an error that says
//! so. vfat filesystems (the ESP) are made with `mkfs.vfat --invariant` and filled with
//! `mcopy` (both honour `SOURCE_DATE_EPOCH`) and copied to their offset; swap areas get
//! their header (crate::lvm::write_swap). GRUB comes from the build root, with `lvm` among
//! its modules when there is a volume group, reading its config from the filesystem that
//! holds `/boot` (`/grub/grub.cfg` on a separate `/boot`):
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
use crate::lvm;
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
    #[serde(default)]
    swap: Option<SwapOpt>,
    #[serde(default)]
    lvm: Option<LvmOpt>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SwapOpt {
    uuid: String,
    #[serde(default)]
    label: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LvmOpt {
    name: String,
    uuid: String,
    pv_uuid: String,
    extent_size: u64,
    logical_volumes: Vec<LvOpt>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LvOpt {
    name: String,
    uuid: String,
    size: u64,
    #[serde(default)]
    filesystem: Option<FsOpt>,
    #[serde(default)]
    swap: Option<SwapOpt>,
}

/// A filesystem or swap area where it lives on the disk: a partition or a logical volume.
struct Volume<'a> {
    name: String,
    start: u64,
    size: u64,
    fs: Option<&'a FsOpt>,
    swap: Option<&'a SwapOpt>,
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

    // Volume groups, and every filesystem or swap area where it lives.
    let epoch = ctx.source_epoch.unwrap_or(0).to_string();
    let mut volumes: Vec<Volume<'_>> = Vec::new();
    for p in &o.partitions {
        if [p.filesystem.is_some(), p.swap.is_some(), p.lvm.is_some()]
            .iter()
            .filter(|x| **x)
            .count()
            > 1
        {
            return Err(format!(
                "partition {:?}: only one of filesystem, swap and lvm",
                p.name
            ));
        }
        if p.filesystem.is_some() || p.swap.is_some() {
            volumes.push(Volume {
                name: p.name.clone(),
                start: p.start,
                size: p.size,
                fs: p.filesystem.as_ref(),
                swap: p.swap.as_ref(),
            });
        }
        if let Some(l) = &p.lvm {
            let vg = lvm::VolumeGroup {
                name: l.name.clone(),
                id: l.uuid.clone(),
                pv_id: l.pv_uuid.clone(),
                extent_size: l.extent_size,
                lvs: l
                    .logical_volumes
                    .iter()
                    .map(|v| lvm::LogicalVolume {
                        name: v.name.clone(),
                        id: v.uuid.clone(),
                        size: v.size,
                    })
                    .collect(),
                time: ctx.source_epoch.unwrap_or(0),
            };
            lvm::write(&disk, p.start, p.size, &vg)
                .map_err(|e| format!("LVM volume group {:?}: {e}", l.name))?;
            (ctx.log)(&format!(
                "LVM volume group {} with {} logical volumes on partition {}",
                l.name,
                l.logical_volumes.len(),
                p.name
            ));
            for (lv, off) in l.logical_volumes.iter().zip(vg.offsets()) {
                if lv.filesystem.is_some() == lv.swap.is_some() {
                    return Err(format!(
                        "logical volume {:?}: one of filesystem and swap is needed",
                        lv.name
                    ));
                }
                volumes.push(Volume {
                    name: format!("{}-{}", l.name, lv.name),
                    start: p.start + off,
                    size: lv.size,
                    fs: lv.filesystem.as_ref(),
                    swap: lv.swap.as_ref(),
                });
            }
        }
    }
    let uses_lvm = o.partitions.iter().any(|p| p.lvm.is_some());
    let mountpoints: Vec<&str> = volumes
        .iter()
        .filter_map(|v| v.fs)
        .map(|f| f.mountpoint.as_str())
        .collect();
    let find = |mp: &str| {
        volumes
            .iter()
            .filter_map(|v| v.fs)
            .find(|f| f.mountpoint == mp)
    };
    if find("/").is_none() {
        return Err("no filesystem is the root (mountpoint \"/\")".into());
    }
    // GRUB reads its config from the filesystem holding /boot.
    let (boot_uuid, prefix) = match find("/boot") {
        Some(b) => (b.uuid.clone(), "/grub"),
        None => (
            find("/").map(|f| f.uuid.clone()).unwrap_or_default(),
            "/boot/grub",
        ),
    };
    let grub = GrubSetup {
        boot_uuid,
        prefix,
        lvm: uses_lvm,
    };

    let sandbox = ctx.build_sandbox()?.bind_ro(&input, INPUT).env(
        "SOURCE_DATE_EPOCH",
        ctx.source_epoch.unwrap_or(0).to_string(),
    );
    let in_tree = |rel: &str| format!("{TREE_PATH}/{rel}");
    fs::create_dir_all(work.join("empty")).map_err(|e| e.to_string())?;

    for (n, v) in volumes.iter().enumerate() {
        if let Some(sw) = v.swap {
            lvm::write_swap(&disk, v.start, v.size, &sw.uuid, &sw.label)
                .map_err(|e| format!("swap on {}: {e}", v.name))?;
            (ctx.log)(&format!("swap area on {} ({} bytes)", v.name, v.size));
            continue;
        }
        let Some(fsopt) = v.fs else { continue };
        let src_rel = fsopt.mountpoint.trim_start_matches('/');
        let src_host = input.join(src_rel);
        let src = if src_host.is_dir() {
            format!("{INPUT}/{src_rel}")
                .trim_end_matches('/')
                .to_owned()
        } else {
            in_tree(&format!("{WORK}/empty"))
        };
        // Filesystems mounted below this one hold their own files: each such directory
        // is shown empty here (an empty directory with its mode, owner and times).
        let children = child_mountpoints(&fsopt.mountpoint, &mountpoints);
        let mut sb = sandbox.clone();
        let mut skip = Vec::new();
        for (i, child) in children.iter().enumerate() {
            let rel = child.trim_start_matches('/');
            let host = input.join(rel);
            let Ok(meta) = fs::symlink_metadata(&host) else {
                continue;
            };
            if !meta.is_dir() {
                return Err(format!(
                    "mount point {child} is not a directory in the OS tree"
                ));
            }
            let mask = work.join(format!("mask-{n}-{i}"));
            make_mask(&mask, &meta)?;
            sb = sb.bind_ro(&mask, format!("{INPUT}/{rel}"));
            skip.push(host);
        }
        if src_host.is_dir() {
            check_fits(&src_host, &skip, fsopt, v.size)?;
        }
        match fsopt.fs_type.as_str() {
            "ext4" => {
                let blocks = (v.size / 4096).to_string();
                let ext_opts =
                    format!("hash_seed={},offset={},root_owner=0:0", fsopt.uuid, v.start);
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
                let sb = sb.env("E2FSPROGS_FAKE_TIME", epoch.clone());
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                (ctx.log)(&format!(
                    "mkfs.ext4 {} at offset {} ({} bytes)",
                    fsopt.mountpoint, v.start, v.size
                ));
                ctx.run_logged(&sb, "mkfs.ext4", &refs)?;
                clamp_ext4_times(ctx, &sandbox, &o.filename, v.start, &epoch)?;
            }
            "vfat" => {
                let img_rel = format!("{WORK}/{}.vfat", v.name);
                let volid = fsopt.uuid.replace('-', "");
                if volid.len() != 8 || !volid.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!(
                        "vfat volume id {:?} must be eight hex digits in two groups, as 7B77-95E7",
                        fsopt.uuid
                    ));
                }
                let kib = (v.size / 1024).to_string();
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
                    fsopt.mountpoint, v.size
                ));
                ctx.run_logged(&sandbox, "mkfs.vfat", &args)?;
                if fsopt.mountpoint == "/boot/efi"
                    && let Some(g) = &o.grub
                    && g.uefi
                {
                    efi_grub(ctx, &sandbox, &grub, &img)?;
                }
                // Files the OS tree has below the mount point go onto the filesystem too.
                if src_host.is_dir()
                    && fs::read_dir(&src_host).is_ok_and(|mut d| d.next().is_some())
                {
                    let mut names: Vec<String> = fs::read_dir(&src_host)
                        .map_err(|e| e.to_string())?
                        .filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect();
                    names.sort();
                    let entries: Vec<String> = names.iter().map(|n| format!("{src}/{n}")).collect();
                    let mut args: Vec<&str> = vec!["-b", "-s", "-p", "-Q", "-m", "-i", &img];
                    args.extend(entries.iter().map(String::as_str));
                    args.push("::");
                    ctx.run_logged(&sb, "mcopy", &args)?;
                }
                let f = File::open(ctx.tree.join(&img_rel)).map_err(|e| e.to_string())?;
                let mut d = disk.try_clone().map_err(|e| e.to_string())?;
                sparse::copy_range_sparse(&f, &mut d, 0, v.size, v.start)
                    .map_err(|e| format!("cannot write {} into the disk: {e}", v.name))?;
            }
            other => {
                return Err(format!(
                    "filesystem type {other:?} is not supported (ext4, vfat, or a swap area)"
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
            &grub,
            bios.start,
            bios.size,
        )?;
    }
    if let Some(g) = &o.grub
        && g.uefi
        && find("/boot/efi").is_none()
    {
        return Err("UEFI boot needs an EFI system partition mounted at /boot/efi".into());
    }
    disk.sync_all()
        .map_err(|e| format!("cannot sync the disk: {e}"))?;
    fs::remove_dir_all(&work).map_err(|e| format!("cannot remove {}: {e}", work.display()))?;
    Ok(())
}

/// Where GRUB finds its config: the filesystem holding /boot, the directory on it, and
/// whether it must read LVM.
struct GrubSetup {
    boot_uuid: String,
    prefix: &'static str,
    lvm: bool,
}

/// The mount points directly below `mountpoint` (not below another one of them).
fn child_mountpoints<'a>(mountpoint: &str, all: &[&'a str]) -> Vec<&'a str> {
    let below: Vec<&str> = all
        .iter()
        .copied()
        .filter(|m| *m != mountpoint && is_below(m, mountpoint))
        .collect();
    let mut out: Vec<&str> = below
        .iter()
        .copied()
        .filter(|m| !below.iter().any(|o| o != m && is_below(m, o)))
        .collect();
    out.sort();
    out
}

/// An empty directory standing for mount point `meta` in its parent filesystem.
fn make_mask(path: &Path, meta: &fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    fs::create_dir_all(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(|e| e.to_string())?;
    std::os::unix::fs::chown(path, Some(meta.uid()), Some(meta.gid()))
        .map_err(|e| format!("cannot chown {}: {e}", path.display()))?;
    let ts = |s: i64, ns: i64| rustix::fs::Timespec {
        tv_sec: s,
        tv_nsec: ns as _,
    };
    let stamp = rustix::fs::Timestamps {
        last_access: ts(meta.atime(), meta.atime_nsec()),
        last_modification: ts(meta.mtime(), meta.mtime_nsec()),
    };
    rustix::fs::utimensat(rustix::fs::CWD, path, &stamp, rustix::fs::AtFlags::empty())
        .map_err(|e| format!("cannot set the times of {}: {e}", path.display()))
}

/// Bytes and inodes the files below `dir` take in 4 KiB blocks (hard links once), not
/// counting what is below the directories in `skip`.
fn content_size(dir: &Path, skip: &[std::path::PathBuf]) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let (mut bytes, mut inodes) = (0u64, 0u64);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)? {
            let e = e?;
            let m = e.metadata()?;
            if m.nlink() > 1 && !m.is_dir() && !seen.insert(m.ino()) {
                continue;
            }
            inodes += 1;
            if m.is_dir() {
                bytes += 4096;
                if !skip.iter().any(|s| *s == e.path()) {
                    stack.push(e.path());
                }
            } else if m.is_file() || (m.file_type().is_symlink() && m.len() >= 60) {
                bytes += m.len().div_ceil(4096) * 4096;
            }
        }
    }
    Ok((bytes, inodes))
}

/// ext4's default journal for a filesystem of `size` bytes (e2fsprogs'
/// `ext2fs_default_journal_size`, 4 KiB blocks).
fn journal_size(size: u64) -> u64 {
    let blocks = size / 4096;
    let j = match blocks {
        b if b < 2048 => 0,
        b if b < 32768 => 1024,
        b if b < 256 * 1024 => 4096,
        b if b < 512 * 1024 => 8192,
        b if b < 4096 * 1024 => 16384,
        b if b < 8192 * 1024 => 32768,
        b if b < 16384 * 1024 => 65536,
        b if b < 32768 * 1024 => 131072,
        _ => 262144,
    };
    j * 4096
}

/// A clear error when the files for a filesystem clearly cannot fit it (mkfs would fail
/// half-way with "Could not allocate block").
fn check_fits(
    dir: &Path,
    skip: &[std::path::PathBuf],
    fsopt: &FsOpt,
    size: u64,
) -> Result<(), String> {
    let (bytes, inodes) =
        content_size(dir, skip).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    // Inode tables (256 bytes per 16 KiB), bitmaps, descriptors and the journal.
    let overhead = if fsopt.fs_type == "ext4" {
        journal_size(size) + size / 64 + size / 64
    } else {
        size / 32
    };
    let usable = size.saturating_sub(overhead);
    if bytes > usable || (fsopt.fs_type == "ext4" && inodes > size / 16384) {
        const MIB: u64 = 1 << 20;
        return Err(format!(
            "the filesystem for {} is {} MiB, but its files need about {} MiB ({inodes} files) plus {} MiB of filesystem metadata: raise its minsize in the blueprint (customizations.filesystem or customizations.disk)",
            fsopt.mountpoint,
            size / MIB,
            bytes.div_ceil(MIB),
            overhead.div_ceil(MIB),
        ));
    }
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
    disk_rel: &str,
    offset: u64,
    epoch: &str,
) -> Result<(), String> {
    let disk = format!("{TREE_PATH}/{disk_rel}");
    let device = format!("{disk}?offset={offset}");
    let used = ext4_used_inodes(&ctx.tree.join(disk_rel), offset)?;
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

/// The number of used inodes of the ext4 filesystem at `offset` in `disk`, from its
/// superblock (what `dumpe2fs -h` prints as "Inode count" less "Free inodes"; read here
/// because Debian 13's dumpe2fs no longer accepts a `?offset=` device name).
fn ext4_used_inodes(disk: &Path, offset: u64) -> Result<u64, String> {
    let f = File::open(disk).map_err(|e| format!("cannot open {}: {e}", disk.display()))?;
    let mut sb = [0u8; 0x3a];
    f.read_exact_at(&mut sb, offset + 1024)
        .map_err(|e| format!("cannot read the ext4 superblock: {e}"))?;
    let le32 = |at: usize| u32::from_le_bytes([sb[at], sb[at + 1], sb[at + 2], sb[at + 3]]);
    if u16::from_le_bytes([sb[0x38], sb[0x39]]) != 0xEF53 {
        return Err(format!("no ext4 superblock at offset {offset}"));
    }
    let (count, free) = (le32(0x00), le32(0x10));
    count
        .checked_sub(free)
        .map(u64::from)
        .ok_or_else(|| format!("the superblock has {free} free inodes of {count}"))
}

fn is_below(path: &str, dir: &str) -> bool {
    dir == "/" || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

/// The config embedded in both GRUB images: find the filesystem holding /boot, read its
/// grub.cfg.
fn embedded_config(g: &GrubSetup) -> String {
    format!(
        "search --no-floppy --fs-uuid --set=root {uuid}\nset prefix=($root){p}\nconfigfile ($root){p}/grub.cfg\n",
        uuid = g.boot_uuid,
        p = g.prefix
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
    grub: &GrubSetup,
    name: &str,
) -> Result<String, String> {
    let cfg = write_work(ctx, "embed.cfg", &embedded_config(grub))?;
    let out = format!("{TREE_PATH}/{WORK}/{name}");
    let dir = format!("/usr/lib/grub/{platform}");
    let mut args = vec![
        "-O",
        platform,
        "-d",
        &dir,
        "-p",
        grub.prefix,
        "-c",
        &cfg,
        "-o",
        &out,
    ];
    args.extend(COMMON_MODULES);
    args.extend(modules);
    if grub.lvm {
        args.push("lvm");
    }
    (ctx.log)(&format!("grub-mkimage -O {platform} → {name}"));
    ctx.run_logged(sandbox, "grub-mkimage", &args)?;
    Ok(out)
}

fn efi_grub(
    ctx: &mut StageContext<'_>,
    sandbox: &kiln_sandbox::Sandbox,
    grub: &GrubSetup,
    esp_img: &str,
) -> Result<(), String> {
    let out = grub_mkimage(ctx, sandbox, "x86_64-efi", EFI_MODULES, grub, "BOOTX64.EFI")?;
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
    grub: &GrubSetup,
    part_start: u64,
    part_size: u64,
) -> Result<(), String> {
    grub_mkimage(ctx, sandbox, "i386-pc", BIOS_MODULES, grub, "core.img")?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The superblock read agrees with the host's `dumpe2fs -h` on a filesystem made at
    /// an offset and filled from a directory; a disk without one is refused.
    #[test]
    fn used_inodes_come_from_the_superblock() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        for i in 0..25 {
            fs::create_dir_all(src.join(format!("d{i}"))).unwrap();
            fs::write(src.join(format!("d{i}/f")), "x").unwrap();
        }
        let disk = dir.path().join("disk");
        File::create(&disk).unwrap().set_len(64 << 20).unwrap();
        let mkfs = std::process::Command::new("mkfs.ext4")
            .args(["-q", "-F", "-E", "offset=1048576", "-d"])
            .arg(&src)
            .arg(&disk)
            .arg("8192")
            .status()
            .expect("mkfs.ext4 (e2fsprogs, required on Debian)");
        assert!(mkfs.success());
        let device = format!("{}?offset=1048576", disk.display());
        let out = std::process::Command::new("dumpe2fs")
            .args(["-h", &device])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
                .unwrap()
        };
        let used = ext4_used_inodes(&disk, 1 << 20).unwrap();
        assert_eq!(used, field("Inode count:") - field("Free inodes:"));
        assert!(used >= 11 + 50, "{used}");
        assert!(
            ext4_used_inodes(&disk, 0)
                .unwrap_err()
                .contains("no ext4 superblock")
        );
    }

    #[test]
    fn only_the_nearest_mount_points_are_masked() {
        let all = [
            "/",
            "/boot/efi",
            "/var",
            "/var/log",
            "/var/log/audit",
            "/home",
        ];
        assert_eq!(child_mountpoints("/", &all), ["/boot/efi", "/home", "/var"]);
        assert_eq!(child_mountpoints("/var", &all), ["/var/log"]);
        assert!(child_mountpoints("/home", &all).is_empty());
        // A sibling that only shares a prefix is not below.
        assert!(child_mountpoints("/var", &["/var", "/variable"]).is_empty());
    }

    #[test]
    fn content_that_cannot_fit_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir_all(d.join("a/skip")).unwrap();
        fs::write(d.join("a/f"), vec![1u8; 3 << 20]).unwrap();
        fs::write(d.join("a/skip/big"), vec![1u8; 8 << 20]).unwrap();
        fs::hard_link(d.join("a/f"), d.join("a/g")).unwrap();
        // 3 MiB once (hard link), two directories, the skipped one not entered.
        let (bytes, inodes) = content_size(d, &[d.join("a/skip")]).unwrap();
        assert_eq!(bytes, (3 << 20) + 2 * 4096);
        assert_eq!(inodes, 3);
        let fs = FsOpt {
            fs_type: "ext4".into(),
            uuid: "u".into(),
            label: String::new(),
            mountpoint: "/srv".into(),
        };
        let e = check_fits(d, &[], &fs, 8 << 20).unwrap_err();
        assert!(e.contains("/srv") && e.contains("raise its minsize"), "{e}");
        check_fits(d, &[d.join("a/skip")], &fs, 64 << 20).unwrap();
    }
}
