//! Disk layouts: the partition table of a disk image type, from the blueprint's
//! `[[customizations.filesystem]]` or `[customizations.disk]`, as osbuild-composer plans it.
//!
//! The base table is GPT: a 1 MiB BIOS boot partition, a 200 MiB EFI system partition
//! (FAT32 at `/boot/efi`) and the root filesystem (ext4), last, on the rest of the disk.
//!
//! * `filesystem` customizations: `/` and `/boot/efi` resize what the base table has;
//!   every other mountpoint is new. Each size is the blueprint's minimum, at least 1 GiB
//!   (500 MB for `/boot`), rounded up to whole MiB (4 MiB extents on LVM).
//!   `partitioning_mode`: `auto-lvm` (the default) turns the root partition into an LVM
//!   volume group `rootvg` with `rootlv` for `/` and one logical volume per new mountpoint
//!   (`/var/log` → `var_loglv`) when there is a new mountpoint, and makes plain
//!   partitions otherwise; `lvm` always does; `raw` never does (each new mountpoint is an
//!   ext4 partition before the root). `/boot` is always a plain partition.
//! * `disk`: the partitions in the blueprint's order after the BIOS boot partition and
//!   the ESP (unless the blueprint has a `/boot/efi` partition); plain ones (ext4, vfat,
//!   swap or none) and one LVM volume group (`vg00` unless named) whose logical volumes
//!   are ext4, vfat or swap. Without a `/` anywhere, one is added: a logical volume in the
//!   volume group, else a partition at the end.
//!
//! The partition (or volume group) holding `/` is placed last and grows to fill the disk;
//! logical volumes are not grown (free extents stay in the group, as osbuild leaves them).
//! `/` is at least 3 GiB (osbuild's 1 GiB for `/` and 2 GiB for `/usr`, 2 GiB going to a
//! separate `/usr`). The disk is the image type's default size or what the layout needs,
//! whichever is larger.
//!
//! Differences from osbuild-composer, because kiln boots with GRUB images that read LVM
//! themselves: no `/boot` partition is added when `/` is on LVM. Refused with an error
//! naming the customization: `dos` tables, sector sizes other than 512, xfs and btrfs.
//!
//! Identifiers are derived from the seed ([`crate::ids`]); the default layout keeps the
//! purposes it always had, so its manifests do not change.

use crate::{DistroError, ids};
use kiln_blueprint::{Blueprint, PartitionKind};
use serde_json::{Value, json};

pub(crate) const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
pub(crate) const ESP_SIZE: u64 = 200 * MIB;
/// LVM's default physical extent (osbuild's too).
pub(crate) const EXTENT: u64 = 4 * MIB;
/// The physical volume's label and metadata area before the first extent.
pub(crate) const PV_METADATA: u64 = MIB;
/// Space after the last partition: the backup GPT (33 sectors), rounded to 1 MiB.
const FOOTER: u64 = MIB;
/// What `/` needs at least: osbuild's required sizes of `/` (1 GiB) and `/usr` (2 GiB).
const ROOT_REQUIRED: u64 = GIB;
const USR_REQUIRED: u64 = 2 * GIB;

pub(crate) const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/// Linux root (x86-64) of the Discoverable Partitions Specification.
pub(crate) const ROOT_TYPE: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
pub(crate) const BIOS_BOOT_TYPE: &str = "21686148-6449-6E6F-744E-656564454649";
pub(crate) const DATA_TYPE: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
pub(crate) const XBOOTLDR_TYPE: &str = "BC13C2FF-59E6-4262-A352-B275FD6F7172";
pub(crate) const SWAP_TYPE: &str = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F";
pub(crate) const LVM_TYPE: &str = "E6D6D379-F507-44C2-A23C-238F2A3DF928";
/// Linux /usr (x86-64) of the Discoverable Partitions Specification.
const USR_TYPE: &str = "8484680C-9521-48C6-9C11-B0720656F69E";

/// A filesystem (or swap area) on a partition or a logical volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fs {
    /// `ext4`, `vfat` or `swap`.
    pub fs_type: String,
    pub uuid: String,
    pub label: String,
    /// Empty for swap.
    pub mountpoint: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lv {
    pub name: String,
    /// LVM identifier (32 characters of `[A-Za-z0-9]`).
    pub id: String,
    /// Bytes, a whole number of extents.
    pub size: u64,
    pub fs: Fs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Vg {
    pub name: String,
    pub id: String,
    pub pv_id: String,
    pub lvs: Vec<Lv>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Payload {
    None,
    Fs(Fs),
    Vg(Vg),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    /// GPT partition name.
    pub name: String,
    pub type_guid: String,
    pub uuid: String,
    /// Minimum size before the layout; the final size after [`Layout::sized`].
    pub size: u64,
    pub start: u64,
    pub payload: Payload,
}

impl Part {
    fn holds(&self, mountpoint: &str) -> bool {
        match &self.payload {
            Payload::None => false,
            Payload::Fs(f) => f.mountpoint == mountpoint,
            Payload::Vg(vg) => vg.lvs.iter().any(|l| l.fs.mountpoint == mountpoint),
        }
    }

    /// The least this partition can be: its minimum, or its volume group's needs.
    fn min_size(&self) -> u64 {
        let need = match &self.payload {
            Payload::Vg(vg) => PV_METADATA + vg.lvs.iter().map(|l| l.size).sum::<u64>(),
            _ => 0,
        };
        align(self.size.max(need), MIB)
    }
}

/// The planned partition table of a blueprint's disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub disk_uuid: String,
    /// Offset of the first partition.
    pub first: u64,
    /// Least disk size the blueprint asks for.
    pub min_disk: u64,
    pub parts: Vec<Part>,
}

fn align(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

fn unsupported(image_type: &str, what: String) -> DistroError {
    DistroError::Unsupported {
        image_type: image_type.to_owned(),
        what,
    }
}

/// An LVM identifier: 32 letters and digits derived like every other id.
fn lvm_id(seed: &str, purpose: &str) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let a = ids::uuid(seed, purpose);
    let b = ids::uuid(seed, &format!("{purpose}:2"));
    let hex: Vec<u8> = a.bytes().chain(b.bytes()).filter(|c| *c != b'-').collect();
    hex.chunks(2)
        .take(32)
        .map(|p| {
            let v = u8::from_str_radix(std::str::from_utf8(p).unwrap_or("00"), 16).unwrap_or(0);
            CHARS[v as usize % CHARS.len()] as char
        })
        .collect()
}

/// osbuild's logical volume name for a mountpoint: `/` → `rootlv`, `/var/log` → `var_loglv`.
pub(crate) fn lv_name(mountpoint: &str) -> String {
    if mountpoint == "/" {
        return "rootlv".into();
    }
    format!("{}lv", mountpoint.trim_start_matches('/').replace('/', "_"))
}

/// A name not in `taken`: `base`, else `base00`, `base01`, ...
fn unique(base: &str, taken: &[String]) -> String {
    if !taken.iter().any(|t| t == base) {
        return base.to_owned();
    }
    (0..100)
        .map(|i| format!("{base}{i:02}"))
        .find(|n| !taken.contains(n))
        .unwrap_or_else(|| format!("{base}-x"))
}

/// A short GPT name for a partition mounted at `mountpoint`.
fn part_name(mountpoint: &str) -> String {
    match mountpoint {
        "/" => "root".into(),
        "/boot/efi" => "esp".into(),
        m => m.trim_start_matches('/').replace('/', "-"),
    }
}

fn default_part_type(mountpoint: &str, fs_type: &str) -> &'static str {
    match (mountpoint, fs_type) {
        ("/", _) => ROOT_TYPE,
        ("/usr", _) => USR_TYPE,
        ("/boot", _) => XBOOTLDR_TYPE,
        ("/boot/efi", _) => ESP_TYPE,
        (_, "swap") => SWAP_TYPE,
        _ => DATA_TYPE,
    }
}

/// osbuild's smallest filesystem for a `filesystem` customization (`clampFSSize`).
fn clamp(mountpoint: &str, size: u64) -> u64 {
    let least = if mountpoint == "/boot" {
        500 * 1000 * 1000
    } else {
        GIB
    };
    size.max(least)
}

struct Ids<'a> {
    seed: &'a str,
}

impl Ids<'_> {
    /// Filesystem UUID (or FAT volume id) of what is mounted at `mountpoint`.
    fn fs(&self, fs_type: &str, key: &str) -> String {
        match (fs_type, key) {
            ("vfat", "/boot/efi") => ids::volume_id(self.seed, "esp"),
            ("vfat", k) => ids::volume_id(self.seed, &format!("vfat:{k}")),
            (_, "/") => ids::uuid(self.seed, "fs-root"),
            (_, k) => ids::uuid(self.seed, &format!("fs:{k}")),
        }
    }

    fn part(&self, name: &str) -> String {
        match name {
            "bios" => ids::uuid(self.seed, "gpt-bios"),
            "esp" => ids::uuid(self.seed, "gpt-esp"),
            "root" => ids::uuid(self.seed, "gpt-root"),
            n => ids::uuid(self.seed, &format!("gpt:{n}")),
        }
    }

    fn new_fs(&self, fs_type: &str, mountpoint: &str, label: &str, key: &str) -> Fs {
        Fs {
            fs_type: fs_type.to_owned(),
            uuid: self.fs(fs_type, key),
            label: label.to_owned(),
            mountpoint: mountpoint.to_owned(),
        }
    }
}

fn bios_part(ids: &Ids<'_>) -> Part {
    Part {
        name: "bios".into(),
        type_guid: BIOS_BOOT_TYPE.into(),
        uuid: ids.part("bios"),
        size: MIB,
        start: 0,
        payload: Payload::None,
    }
}

fn esp_part(ids: &Ids<'_>, size: u64) -> Part {
    Part {
        name: "esp".into(),
        type_guid: ESP_TYPE.into(),
        uuid: ids.part("esp"),
        size,
        start: 0,
        payload: Payload::Fs(ids.new_fs("vfat", "/boot/efi", "ESP", "/boot/efi")),
    }
}

impl Layout {
    /// The layout of `bp` for the image type `image_type`; `seed` derives the identifiers.
    pub(crate) fn new(bp: &Blueprint, seed: &str, image_type: &str) -> Result<Layout, DistroError> {
        let c = bp.customizations.as_ref();
        let ids = Ids { seed };
        let mut layout = match c.and_then(|c| c.disk.as_ref()) {
            Some(_) => Self::from_disk(bp, &ids, image_type)?,
            None => Self::from_filesystems(bp, &ids, image_type)?,
        };
        layout.require_root_sizes();
        Ok(layout)
    }

    fn from_filesystems(bp: &Blueprint, ids: &Ids<'_>, t: &str) -> Result<Layout, DistroError> {
        let c = bp.customizations.as_ref();
        let fss = c.map(|c| c.filesystem.as_slice()).unwrap_or_default();
        let mode = c.and_then(|c| c.partitioning_mode.as_deref()).unwrap_or("");
        let size_of = |mp: &str| {
            fss.iter()
                .find(|f| f.mountpoint == mp)
                .and_then(|f| f.min_size())
                .map(|s| clamp(mp, s.bytes()))
        };
        let new: Vec<&str> = fss
            .iter()
            .map(|f| f.mountpoint.as_str())
            .filter(|m| !matches!(*m, "/" | "/boot/efi"))
            .collect();
        let lvm = match mode {
            "lvm" => true,
            "raw" => false,
            "" | "auto-lvm" => !new.is_empty(),
            other => {
                return Err(unsupported(
                    t,
                    format!(
                        "customizations.partitioning_mode {other:?} (use auto-lvm, lvm or raw)"
                    ),
                ));
            }
        };
        let mut parts = vec![
            bios_part(ids),
            esp_part(
                ids,
                align(size_of("/boot/efi").unwrap_or(ESP_SIZE).max(ESP_SIZE), MIB),
            ),
        ];
        let root_fs = ids.new_fs("ext4", "/", "root", "/");
        let root_min = size_of("/").unwrap_or(0);
        let mut lvs: Vec<Lv> = Vec::new();
        if lvm {
            lvs.push(Lv {
                name: "rootlv".into(),
                id: lvm_id(ids.seed, "lvm-lv:rootlv"),
                size: align(root_min, EXTENT),
                fs: root_fs.clone(),
            });
        }
        for mp in &new {
            let size = size_of(mp).unwrap_or(GIB);
            let label = part_name(mp);
            let fs = ids.new_fs("ext4", mp, &label, mp);
            if lvm && *mp != "/boot" {
                let taken: Vec<String> = lvs.iter().map(|l| l.name.clone()).collect();
                let name = unique(&lv_name(mp), &taken);
                lvs.push(Lv {
                    id: lvm_id(ids.seed, &format!("lvm-lv:{name}")),
                    name,
                    size: align(size, EXTENT),
                    fs,
                });
            } else {
                parts.push(Part {
                    uuid: ids.part(&label),
                    name: label,
                    type_guid: default_part_type(mp, "ext4").into(),
                    size: align(size, MIB),
                    start: 0,
                    payload: Payload::Fs(fs),
                });
            }
        }
        parts.push(if lvm {
            Part {
                name: "lvm".into(),
                type_guid: LVM_TYPE.into(),
                uuid: ids.part("root"),
                size: 0,
                start: 0,
                payload: Payload::Vg(Vg {
                    name: "rootvg".into(),
                    id: lvm_id(ids.seed, "lvm-vg"),
                    pv_id: lvm_id(ids.seed, "lvm-pv"),
                    lvs,
                }),
            }
        } else {
            Part {
                name: "root".into(),
                type_guid: ROOT_TYPE.into(),
                uuid: ids.part("root"),
                size: align(root_min, MIB),
                start: 0,
                payload: Payload::Fs(root_fs),
            }
        });
        Ok(Layout {
            disk_uuid: ids::uuid(ids.seed, "gpt-disk"),
            first: MIB,
            min_disk: 0,
            parts,
        })
    }

    fn from_disk(bp: &Blueprint, ids: &Ids<'_>, t: &str) -> Result<Layout, DistroError> {
        let c = bp.customizations.as_ref();
        let Some(d) = c.and_then(|c| c.disk.as_ref()) else {
            return Err(DistroError::Invalid("no disk customization".into()));
        };
        if let Some(mode) = c.and_then(|c| c.partitioning_mode.as_deref())
            && !mode.is_empty()
        {
            return Err(unsupported(
                t,
                format!(
                    "customizations.partitioning_mode {mode:?} together with customizations.disk (the disk customization is the whole layout; remove partitioning_mode)"
                ),
            ));
        }
        match d.table_type.as_deref() {
            None | Some("" | "gpt") => {}
            Some(other) => {
                return Err(unsupported(
                    t,
                    format!(
                        "customizations.disk.type {other:?} (kiln writes GPT partition tables only; use type = \"gpt\" or remove it)"
                    ),
                ));
            }
        }
        if let Some(s) = d.sector_size
            && s != 512
        {
            return Err(unsupported(
                t,
                format!(
                    "customizations.disk.sector_size {s} (kiln writes 512-byte sectors only; remove sector_size)"
                ),
            ));
        }
        let mut parts = vec![bios_part(ids)];
        let has_esp = d.partitions.iter().any(|p| {
            p.kind() == PartitionKind::Plain && p.mountpoint.as_deref() == Some("/boot/efi")
        });
        if !has_esp {
            parts.push(esp_part(ids, ESP_SIZE));
        }
        let mut names: Vec<String> = parts.iter().map(|p| p.name.clone()).collect();
        for (i, p) in d.partitions.iter().enumerate() {
            let at = format!("customizations.disk.partitions[{i}]");
            match p.kind() {
                PartitionKind::Btrfs => {
                    return Err(unsupported(
                        t,
                        format!(
                            "{at}: btrfs partitions (not supported yet; use type = \"plain\" with fs_type = \"ext4\", or \"lvm\")"
                        ),
                    ));
                }
                PartitionKind::Plain => {
                    let fs_type = p.fs_type.as_deref().unwrap_or("ext4");
                    let mp = p.mountpoint.as_deref().unwrap_or("");
                    check_fs_type(t, &at, fs_type)?;
                    let base = match (fs_type, mp) {
                        ("swap", _) => "swap".to_owned(),
                        ("none", _) => "data".to_owned(),
                        (_, m) => part_name(m),
                    };
                    let name = unique(&base, &names);
                    names.push(name.clone());
                    let key = if mp.is_empty() {
                        format!("part:{name}")
                    } else {
                        mp.to_owned()
                    };
                    let payload = match fs_type {
                        "none" => Payload::None,
                        f => Payload::Fs(ids.new_fs(f, mp, p.label.as_deref().unwrap_or(""), &key)),
                    };
                    parts.push(Part {
                        uuid: p
                            .part_uuid
                            .clone()
                            .filter(|u| !u.is_empty())
                            .unwrap_or_else(|| ids.part(&name)),
                        type_guid: p
                            .part_type
                            .clone()
                            .filter(|u| !u.is_empty())
                            .unwrap_or_else(|| default_part_type(mp, fs_type).into())
                            .to_ascii_uppercase(),
                        name: p
                            .part_label
                            .clone()
                            .filter(|l| !l.is_empty())
                            .unwrap_or(name),
                        size: align(p.minsize.bytes(), MIB),
                        start: 0,
                        payload,
                    });
                }
                PartitionKind::Lvm => {
                    let vg_name = p.name.clone().unwrap_or_else(|| "vg00".into());
                    let mut lvs: Vec<Lv> = Vec::new();
                    for (j, lv) in p.logical_volumes.iter().enumerate() {
                        let at = format!("{at}.logical_volumes[{j}]");
                        let fs_type = lv.fs_type.as_deref().unwrap_or("ext4");
                        check_fs_type(t, &at, fs_type)?;
                        if fs_type == "none" {
                            return Err(unsupported(
                                t,
                                format!(
                                    "{at}: fs_type \"none\" on a logical volume (use ext4, vfat or swap)"
                                ),
                            ));
                        }
                        let mp = lv.mountpoint.as_deref().unwrap_or("");
                        let taken: Vec<String> = lvs.iter().map(|l| l.name.clone()).collect();
                        let name = match lv.name.as_deref().filter(|n| !n.is_empty()) {
                            Some(n) => n.to_owned(),
                            None if fs_type == "swap" => unique("swaplv", &taken),
                            None => unique(&lv_name(mp), &taken),
                        };
                        let key = if mp.is_empty() {
                            format!("lv:{name}")
                        } else {
                            mp.to_owned()
                        };
                        lvs.push(Lv {
                            id: lvm_id(ids.seed, &format!("lvm-lv:{name}")),
                            fs: ids.new_fs(fs_type, mp, lv.label.as_deref().unwrap_or(""), &key),
                            name,
                            size: align(lv.minsize.bytes(), EXTENT),
                        });
                    }
                    let name = unique("lvm", &names);
                    names.push(name.clone());
                    parts.push(Part {
                        uuid: p
                            .part_uuid
                            .clone()
                            .filter(|u| !u.is_empty())
                            .unwrap_or_else(|| ids.part(&name)),
                        type_guid: p
                            .part_type
                            .clone()
                            .filter(|u| !u.is_empty())
                            .unwrap_or_else(|| LVM_TYPE.into())
                            .to_ascii_uppercase(),
                        name: p
                            .part_label
                            .clone()
                            .filter(|l| !l.is_empty())
                            .unwrap_or(name),
                        size: align(p.minsize.bytes(), MIB),
                        start: 0,
                        payload: Payload::Vg(Vg {
                            id: lvm_id(ids.seed, &format!("lvm-vg:{vg_name}")),
                            pv_id: lvm_id(ids.seed, &format!("lvm-pv:{vg_name}")),
                            name: vg_name,
                            lvs,
                        }),
                    });
                }
            }
        }
        // No "/": a logical volume in the volume group, else a partition at the end.
        if !parts.iter().any(|p| p.holds("/")) {
            let root_fs = ids.new_fs("ext4", "/", "root", "/");
            if let Some(Payload::Vg(vg)) = parts
                .iter_mut()
                .map(|p| &mut p.payload)
                .find(|p| matches!(p, Payload::Vg(_)))
            {
                let taken: Vec<String> = vg.lvs.iter().map(|l| l.name.clone()).collect();
                let name = unique("rootlv", &taken);
                vg.lvs.push(Lv {
                    id: lvm_id(ids.seed, &format!("lvm-lv:{name}")),
                    name,
                    size: 0,
                    fs: root_fs,
                });
            } else {
                let name = unique("root", &names);
                parts.push(Part {
                    uuid: ids.part(&name),
                    name,
                    type_guid: ROOT_TYPE.into(),
                    size: 0,
                    start: 0,
                    payload: Payload::Fs(root_fs),
                });
            }
        }
        let first = align(MIB + d.start_offset.as_ref().map_or(0, |s| s.bytes()), MIB);
        Ok(Layout {
            disk_uuid: ids::uuid(ids.seed, "gpt-disk"),
            first,
            min_disk: d.minsize.as_ref().map_or(0, |s| s.bytes()),
            parts,
        })
    }

    /// `/` and `/usr` get at least what osbuild requires of them.
    fn require_root_sizes(&mut self) {
        let usr_separate = self.fs().iter().any(|f| f.mountpoint == "/usr");
        let mut need = vec![(
            "/",
            ROOT_REQUIRED + if usr_separate { 0 } else { USR_REQUIRED },
        )];
        if usr_separate {
            need.push(("/usr", USR_REQUIRED));
        }
        for (mp, least) in need {
            for p in &mut self.parts {
                match &mut p.payload {
                    Payload::Fs(f) if f.mountpoint == mp => p.size = p.size.max(least),
                    Payload::Vg(vg) => {
                        for lv in &mut vg.lvs {
                            if lv.fs.mountpoint == mp {
                                lv.size = lv.size.max(align(least, EXTENT));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Every filesystem and swap area, in table order.
    pub(crate) fn fs(&self) -> Vec<&Fs> {
        let mut out = Vec::new();
        for p in &self.parts {
            match &p.payload {
                Payload::None => {}
                Payload::Fs(f) => out.push(f),
                Payload::Vg(vg) => out.extend(vg.lvs.iter().map(|l| &l.fs)),
            }
        }
        out
    }

    pub(crate) fn uses_lvm(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p.payload, Payload::Vg(_)))
    }

    fn find(&self, mountpoint: &str) -> Option<&Fs> {
        self.fs().into_iter().find(|f| f.mountpoint == mountpoint)
    }

    /// The root filesystem's UUID.
    pub(crate) fn root_uuid(&self) -> String {
        self.find("/").map(|f| f.uuid.clone()).unwrap_or_default()
    }

    /// The kernel's `root=`: the device-mapper path of a logical volume (the path the
    /// initramfs' lvm2 script activates), else the filesystem UUID.
    pub(crate) fn kernel_root(&self) -> String {
        for p in &self.parts {
            if let Payload::Vg(vg) = &p.payload
                && let Some(lv) = vg.lvs.iter().find(|l| l.fs.mountpoint == "/")
            {
                return format!(
                    "/dev/mapper/{}-{}",
                    vg.name.replace('-', "--"),
                    lv.name.replace('-', "--")
                );
            }
        }
        format!("UUID={}", self.root_uuid())
    }

    /// The UUID of a separate `/boot` filesystem.
    pub(crate) fn boot_uuid(&self) -> Option<String> {
        self.find("/boot").map(|f| f.uuid.clone())
    }

    /// Packages the OS tree needs to mount this layout at boot.
    pub(crate) fn os_packages(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.uses_lvm() {
            p.push("lvm2".to_owned());
        }
        p
    }

    /// `/etc/fstab`: every filesystem by UUID, parents before children, swap last.
    pub(crate) fn fstab_entries(&self) -> Vec<Value> {
        let mut fss: Vec<&Fs> = self
            .fs()
            .into_iter()
            .filter(|f| f.fs_type != "swap" && !f.mountpoint.is_empty())
            .collect();
        fss.sort_by(|a, b| {
            let depth = |m: &str| if m == "/" { 0 } else { m.matches('/').count() };
            depth(&a.mountpoint)
                .cmp(&depth(&b.mountpoint))
                .then(a.mountpoint.cmp(&b.mountpoint))
        });
        let mut out: Vec<Value> = fss
            .iter()
            .map(|f| {
                let (options, passno) = match (f.mountpoint.as_str(), f.fs_type.as_str()) {
                    ("/", _) => ("errors=remount-ro", 1),
                    ("/boot/efi", _) => ("umask=0077", 2),
                    _ => ("defaults", 2),
                };
                json!({ "source": format!("UUID={}", f.uuid), "target": f.mountpoint,
                        "type": f.fs_type, "options": options, "freq": 0, "passno": passno })
            })
            .collect();
        out.extend(
            self.fs()
                .into_iter()
                .filter(|f| f.fs_type == "swap")
                .map(|f| {
                    json!({ "source": format!("UUID={}", f.uuid), "target": "none", "type": "swap",
                    "options": "defaults", "freq": 0, "passno": 0 })
                }),
        );
        out
    }

    /// The layout placed on a disk of at least `default_size` bytes: every partition
    /// after the previous one, aligned to 1 MiB, the one holding `/` last and grown to
    /// the end. Returns the disk size.
    pub(crate) fn sized(&self, default_size: u64) -> (u64, Vec<Part>) {
        let root = self
            .parts
            .iter()
            .position(|p| p.holds("/"))
            .unwrap_or(self.parts.len() - 1);
        let mut order: Vec<Part> = self
            .parts
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != root)
            .map(|(_, p)| p.clone())
            .collect();
        order.push(self.parts[root].clone());
        let mut start = self.first;
        for p in &mut order {
            p.start = start;
            p.size = p.min_size();
            start += p.size;
        }
        let needed = start + FOOTER;
        let size = align(default_size.max(self.min_disk).max(needed), MIB);
        if let Some(last) = order.last_mut() {
            last.size = size - FOOTER - last.start;
        }
        (size, order)
    }

    /// The `disk.image` stage's options for a disk of at least `default_size` bytes.
    pub(crate) fn disk_options(&self, filename: &str, default_size: u64) -> Value {
        let (size, parts) = self.sized(default_size);
        let fs_json = |f: &Fs| -> (&'static str, Value) {
            if f.fs_type == "swap" {
                ("swap", json!({ "uuid": f.uuid, "label": f.label }))
            } else {
                (
                    "filesystem",
                    json!({ "type": f.fs_type, "uuid": f.uuid, "label": f.label, "mountpoint": f.mountpoint }),
                )
            }
        };
        let parts: Vec<Value> = parts
            .iter()
            .map(|p| {
                let mut v = json!({ "name": p.name, "type": p.type_guid, "uuid": p.uuid,
                                    "start": p.start, "size": p.size });
                match &p.payload {
                    Payload::None => {}
                    Payload::Fs(f) => {
                        let (k, fv) = fs_json(f);
                        v[k] = fv;
                    }
                    Payload::Vg(vg) => {
                        let lvs: Vec<Value> = vg
                            .lvs
                            .iter()
                            .map(|l| {
                                let mut lv =
                                    json!({ "name": l.name, "uuid": l.id, "size": l.size });
                                let (k, fv) = fs_json(&l.fs);
                                lv[k] = fv;
                                lv
                            })
                            .collect();
                        v["lvm"] = json!({ "name": vg.name, "uuid": vg.id, "pv_uuid": vg.pv_id,
                                           "extent_size": EXTENT, "logical_volumes": lvs });
                    }
                }
                v
            })
            .collect();
        json!({
            "filename": filename,
            "size": size,
            "uuid": self.disk_uuid,
            "partitions": parts,
            "grub": { "bios": true, "uefi": true },
        })
    }
}

fn check_fs_type(t: &str, at: &str, fs_type: &str) -> Result<(), DistroError> {
    match fs_type {
        "ext4" | "vfat" | "swap" | "none" => Ok(()),
        "xfs" => Err(unsupported(
            t,
            format!(
                "{at}: fs_type \"xfs\" (kiln fills filesystems from the OS tree without mounting them, which mkfs.xfs of Debian cannot; use fs_type = \"ext4\")"
            ),
        )),
        other => Err(unsupported(
            t,
            format!("{at}: fs_type {other:?} (use ext4, vfat, swap or none)"),
        )),
    }
}

impl Layout {
    /// The `grub.config` stage's options: the root filesystem, the kernel's `root=` when
    /// it is not the root's UUID (a logical volume), a separate `/boot`.
    pub(crate) fn grub_options(&self, cmdline: &str) -> Value {
        let root_uuid = self.root_uuid();
        let mut o =
            json!({ "root_uuid": root_uuid, "cmdline": cmdline, "timeout": 1, "serial": true });
        let root = self.kernel_root();
        if root != format!("UUID={root_uuid}") {
            o["root"] = json!(root);
        }
        if let Some(b) = self.boot_uuid() {
            o["boot_uuid"] = json!(b);
        }
        o
    }
}
