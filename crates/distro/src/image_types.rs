//! The image types kiln makes, in the manner of osbuild-composer's image definitions:
//! each with a file name, a MIME type, a default size and what it contains.

/// The OS tree an image type needs. Types with the same variant share one OS tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OsVariant {
    /// Only what the blueprint asks for (plus the base system): `tar`.
    Plain,
    /// A bootable machine: kernel, init, initramfs, networking, SSH.
    Bootable,
    /// Bootable, with cloud-init (datasources of the common clouds).
    Cloud,
    /// Bootable, with cloud-init limited to Azure's datasource.
    Azure,
    /// A live system (`iso`): bootable, with live-boot in the initramfs; no fstab root
    /// entry and no GRUB in the tree (both are on the medium).
    Live,
}

impl OsVariant {
    /// The name of the variant's OS pipeline.
    pub fn pipeline(self) -> &'static str {
        match self {
            OsVariant::Plain => "os",
            OsVariant::Bootable => "os-boot",
            OsVariant::Cloud => "os-cloud",
            OsVariant::Azure => "os-azure",
            OsVariant::Live => "os-live",
        }
    }

    pub fn bootable(self) -> bool {
        self != OsVariant::Plain
    }
}

/// How the image file is made from the partitioned disk (or the tree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A sorted, reproducible tar of the root filesystem.
    Tar,
    /// The partitioned disk as it is.
    Raw,
    /// `qemu-img convert` to this qemu format name, or `vpc` (fixed VHD, written by kiln).
    Convert(&'static str),
    /// An OVA: a tar of the OVF descriptor, its SHA256 manifest and a streamOptimized VMDK.
    Ova,
    /// A gzipped GNU tar holding the raw disk as a sparse `disk.raw` (Google Compute Engine).
    TarGz,
    /// An OCI image archive: one layer, the root tree (no kernel).
    Oci,
    /// A hybrid ISO 9660 live image: squashfs root, GRUB for BIOS (El Torito) and UEFI.
    Iso,
}

impl Format {
    /// Whether the image is made from the partitioned disk.
    pub fn from_disk(self) -> bool {
        matches!(
            self,
            Format::Raw | Format::Convert(_) | Format::Ova | Format::TarGz
        )
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ImageType {
    pub name: &'static str,
    pub filename: &'static str,
    pub mime: &'static str,
    /// Default disk size in bytes (0: not a disk).
    pub default_size: u64,
    pub os: OsVariant,
    pub format: Format,
    /// One line for `kiln build --list-types`.
    pub summary: &'static str,
}

const GIB: u64 = 1 << 30;

/// Every image type, in the order `--list-types` shows them.
pub const IMAGE_TYPES: &[ImageType] = &[
    ImageType {
        name: "qcow2",
        filename: "disk.qcow2",
        mime: "application/x-qemu-disk",
        default_size: 10 * GIB,
        os: OsVariant::Bootable,
        format: Format::Convert("qcow2"),
        summary: "QEMU/KVM disk (local VMs): GPT, BIOS + UEFI GRUB, DHCP, SSH",
    },
    ImageType {
        name: "raw",
        filename: "disk.raw",
        mime: "application/octet-stream",
        default_size: 10 * GIB,
        os: OsVariant::Bootable,
        format: Format::Raw,
        summary: "partitioned raw disk (bare metal, dd): GPT, BIOS + UEFI GRUB",
    },
    ImageType {
        name: "openstack",
        filename: "disk.qcow2",
        mime: "application/x-qemu-disk",
        default_size: 4 * GIB,
        os: OsVariant::Cloud,
        format: Format::Convert("qcow2"),
        summary: "OpenStack qcow2 with cloud-init",
    },
    ImageType {
        name: "ami",
        filename: "image.raw",
        mime: "application/octet-stream",
        default_size: 10 * GIB,
        os: OsVariant::Cloud,
        format: Format::Raw,
        summary: "AWS raw disk with cloud-init and a serial console",
    },
    ImageType {
        name: "vhd",
        filename: "disk.vhd",
        mime: "application/x-vhd",
        default_size: 4 * GIB,
        os: OsVariant::Azure,
        format: Format::Convert("vpc"),
        summary: "Azure fixed VHD (whole MiB) with cloud-init for Azure",
    },
    ImageType {
        name: "vhdx",
        filename: "disk.vhdx",
        mime: "application/x-vhdx",
        default_size: 4 * GIB,
        os: OsVariant::Bootable,
        format: Format::Convert("vhdx"),
        summary: "Hyper-V VHDX disk",
    },
    ImageType {
        name: "vmdk",
        filename: "disk.vmdk",
        mime: "application/x-vmdk",
        default_size: 4 * GIB,
        os: OsVariant::Bootable,
        format: Format::Convert("vmdk"),
        summary: "VMware streamOptimized VMDK",
    },
    ImageType {
        name: "ova",
        filename: "image.ova",
        mime: "application/ovf",
        default_size: 4 * GIB,
        os: OsVariant::Bootable,
        format: Format::Ova,
        summary: "vSphere OVA: OVF descriptor (EFI), SHA256 manifest, streamOptimized VMDK",
    },
    ImageType {
        name: "gce",
        filename: "image.tar.gz",
        mime: "application/gzip",
        default_size: 20 * GIB,
        os: OsVariant::Bootable,
        format: Format::TarGz,
        summary: "Google Compute Engine: tar.gz of a sparse disk.raw, UEFI, serial console",
    },
    ImageType {
        name: "tar",
        filename: "root.tar",
        mime: "application/x-tar",
        default_size: 0,
        os: OsVariant::Plain,
        format: Format::Tar,
        summary: "root filesystem as a sorted, reproducible tar (no kernel unless asked)",
    },
    ImageType {
        name: "container",
        filename: "container.tar",
        mime: "application/x-tar",
        default_size: 0,
        os: OsVariant::Plain,
        format: Format::Oci,
        summary: "OCI image archive (oci-archive): one layer, the root tree, no kernel",
    },
    ImageType {
        name: "iso",
        filename: "live.iso",
        mime: "application/x-iso9660-image",
        default_size: 0,
        os: OsVariant::Live,
        format: Format::Iso,
        summary: "live ISO (CD or USB stick), BIOS + UEFI GRUB, squashfs root, serial console",
    },
];

/// The image type called `name`.
pub fn image_type(name: &str) -> Option<&'static ImageType> {
    IMAGE_TYPES.iter().find(|t| t.name == name)
}

/// Names of every image type, comma-separated (for messages).
pub fn names() -> String {
    IMAGE_TYPES
        .iter()
        .map(|t| t.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A name for files inside an image (the OVA's members): the blueprint's name with
/// anything but ASCII letters, digits, `.`, `_` and `-` replaced.
fn file_stem(bp: &kiln_blueprint::Blueprint) -> String {
    let s: String = bp
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_start_matches(['.', '-']).to_owned();
    if s.is_empty() { "image".into() } else { s }
}

/// Eight hex digits derived from the seed (VMDK content id, volume ids).
fn hex8(seed: &str, purpose: &str) -> String {
    crate::ids::volume_id(seed, purpose).replace('-', "")
}

/// The VMDK content id (`CID=` in its descriptor), which qemu-img would make random.
pub(crate) fn vmdk_cid(seed: &str) -> String {
    hex8(seed, "vmdk-cid").to_ascii_lowercase()
}

/// The stage of a type made from the OS tree itself (`container`, `iso`).
pub(crate) fn tree_image_stage(
    bp: &kiln_blueprint::Blueprint,
    t: &ImageType,
    os: &str,
    arch: &str,
    seed: &str,
) -> kiln_manifest::Stage {
    let (kind, options) = match t.format {
        Format::Oci => (
            "oci.archive",
            serde_json::json!({
                "filename": t.filename,
                "architecture": arch,
                "os": "linux",
                "cmd": ["/bin/bash"],
                "ref_name": "latest",
                "labels": {
                    "org.opencontainers.image.title": bp.name,
                    "org.opencontainers.image.version": bp.version.clone().unwrap_or_default(),
                },
            }),
        ),
        Format::Iso => (
            "iso.live",
            serde_json::json!({
                "filename": t.filename,
                // ISO 9660 volume ids are upper case, digits and `_`; GRUB finds the
                // medium by it.
                "volume_id": format!("KILN_{}", hex8(seed, "iso-volume")),
                "efi_volume_id": crate::ids::volume_id(seed, "iso-efi"),
                "cmdline": format!("boot=live {}", crate::kernel_cmdline(bp)),
                "timeout": 1,
            }),
        ),
        _ => unreachable!("{} is made from a disk", t.name),
    };
    kiln_manifest::Stage {
        kind: kind.into(),
        options,
        inputs: crate::tree_input(os),
    }
}

/// The stage that packs the partitioned disk of pipeline `disk` (file `disk.raw`) for
/// `ova` and `gce`.
pub(crate) fn disk_image_stage(
    bp: &kiln_blueprint::Blueprint,
    t: &ImageType,
    disk: &str,
    seed: &str,
) -> kiln_manifest::Stage {
    let (kind, options) = match t.format {
        Format::Ova => (
            "ova.archive",
            serde_json::json!({
                "source": "disk.raw",
                "filename": t.filename,
                "name": file_stem(bp),
                "cpus": 2,
                "memory_mib": 2048,
                "firmware": "efi",
                "cid": vmdk_cid(seed),
            }),
        ),
        Format::TarGz => (
            "archive.targz",
            // GCE wants the member named disk.raw, in GNU tar format.
            serde_json::json!({ "source": "disk.raw", "filename": t.filename }),
        ),
        _ => unreachable!("{} is not packed from a disk by a stage of its own", t.name),
    };
    kiln_manifest::Stage {
        kind: kind.into(),
        options,
        inputs: crate::tree_input(disk),
    }
}
