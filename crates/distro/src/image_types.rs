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
}

impl OsVariant {
    /// The name of the variant's OS pipeline.
    pub fn pipeline(self) -> &'static str {
        match self {
            OsVariant::Plain => "os",
            OsVariant::Bootable => "os-boot",
            OsVariant::Cloud => "os-cloud",
            OsVariant::Azure => "os-azure",
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
        name: "tar",
        filename: "root.tar",
        mime: "application/x-tar",
        default_size: 0,
        os: OsVariant::Plain,
        format: Format::Tar,
        summary: "root filesystem as a sorted, reproducible tar (no kernel unless asked)",
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
