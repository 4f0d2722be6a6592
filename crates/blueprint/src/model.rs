//! The blueprint data model, with the exact TOML/JSON key spellings of osbuild
//! (`osbuild/blueprint` `pkg/blueprint`). Hyphens and underscores differ between keys on
//! purpose: they are what existing blueprints use.
//!
//! Every struct rejects unknown keys, so a typo is an error instead of a silently ignored
//! customization. Scalars and tables are `Option`s so that absent keys stay absent when a
//! blueprint is written back out; lists are plain `Vec`s where an absent key, `null` (JSON) and
//! an empty list all mean the same thing, as in osbuild.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::size::Size;

/// Lists accept `null` in JSON (osbuild writes `"packages": null` for unset lists).
fn nullable_vec<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// A blueprint: what goes into an image and how it is customized.
///
/// Field order is the order osbuild writes: plain keys first, then package lists, then
/// `[customizations]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Blueprint {
    /// Blueprint name, `^[a-zA-Z0-9._-]+$`.
    pub name: String,
    /// Free text shown to users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Semantic version; bumped on push when unchanged (see [`Blueprint::bump_version`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Target distribution, e.g. `debian-13`; empty or absent means the host's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distro: Option<String>,
    /// Target architecture; absent means the host's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Packages to install (`name` may be a glob, `version` a version glob).
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub packages: Vec<Package>,
    /// Legacy alias of `packages`: treated exactly the same.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub modules: Vec<Package>,
    /// Module streams to enable (DNF modularity; no Debian equivalent).
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub enabled_modules: Vec<EnabledModule>,
    /// Package groups (`@name`).
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub groups: Vec<Group>,
    /// Container images to embed.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub containers: Vec<Container>,
    /// Image customizations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customizations: Option<Customizations>,
}

/// A package (or legacy module) entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// Package name or glob.
    pub name: String,
    /// Version glob; absent, `""` and `"*"` all mean "any version".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A DNF module stream to enable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnabledModule {
    /// Module name.
    pub name: String,
    /// Stream to enable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
}

/// A package group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Group id as in the repository metadata.
    pub name: String,
}

/// A container image embedded in the image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Container {
    /// Image reference, e.g. `quay.io/fedora/fedora:latest`.
    pub source: String,
    /// Name to store it under (defaults to `source`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Verify TLS when pulling (default true).
    #[serde(
        default,
        rename = "tls-verify",
        skip_serializing_if = "Option::is_none"
    )]
    pub tls_verify: Option<bool>,
    /// Take the image from the build host's container storage.
    #[serde(
        default,
        rename = "local-storage",
        skip_serializing_if = "Option::is_none"
    )]
    pub local_storage: Option<bool>,
}

/// `[customizations]`: everything about the image beyond its package set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customizations {
    /// Hostname of the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Kernel package and command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelCustomization>,
    /// Legacy SSH keys for existing users (merged before `user`).
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub sshkey: Vec<SshKeyCustomization>,
    /// Users to create.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub user: Vec<UserCustomization>,
    /// Groups to create.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub group: Vec<GroupCustomization>,
    /// Timezone and NTP servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<TimezoneCustomization>,
    /// Languages and keyboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<LocaleCustomization>,
    /// Firewall ports, services and zones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<FirewallCustomization>,
    /// systemd units to enable, disable or mask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<ServicesCustomization>,
    /// Extra mountpoints with minimum sizes (mutually exclusive with `disk`).
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub filesystem: Vec<FilesystemCustomization>,
    /// Full disk layout (mutually exclusive with `filesystem`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskCustomization>,
    /// Target device of the simplified installer, e.g. `/dev/sda`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation_device: Option<String>,
    /// `auto-lvm` (default), `lvm` or `raw`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitioning_mode: Option<String>,
    /// FIDO Device Onboarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fdo: Option<FdoCustomization>,
    /// OpenSCAP remediation at build time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openscap: Option<OpenScapCustomization>,
    /// Ignition configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignition: Option<IgnitionCustomization>,
    /// Directories to create.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub directories: Vec<DirectoryCustomization>,
    /// Files to create.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub files: Vec<FileCustomization>,
    /// Package repositories to configure in the image (osbuild names; kiln turns them into apt
    /// sources for Debian images).
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub repositories: Vec<RepositoryCustomization>,
    /// Enable FIPS mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fips: Option<bool>,
    /// Installer (Anaconda) options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installer: Option<InstallerCustomization>,
    /// Keys to import into the package database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<RpmCustomization>,
    /// subscription-manager configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rhsm: Option<RhsmCustomization>,
    /// CA certificates to add to the trust store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cacerts: Option<CaCustomization>,
    /// Where embedded containers are stored.
    #[serde(
        default,
        rename = "containers-storage",
        skip_serializing_if = "Option::is_none"
    )]
    pub containers_storage: Option<ContainerStorageCustomization>,
    /// Scripts run once at first boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firstboot: Option<FirstbootCustomization>,
    /// Package manager configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnf: Option<DnfCustomization>,
    /// ISO metadata for installer images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iso: Option<IsoCustomization>,
    /// sshd configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sshd: Option<SshdCustomization>,
}

/// `[customizations.kernel]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelCustomization {
    /// Kernel package name (distro default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Extra kernel command line arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub append: Option<String>,
}

/// `[[customizations.sshkey]]` (legacy; prefer `user.key`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshKeyCustomization {
    /// Existing user.
    pub user: String,
    /// Public key line.
    pub key: String,
}

/// `[[customizations.user]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserCustomization {
    /// Login name.
    pub name: String,
    /// GECOS comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Plain text (hashed on push) or a crypt hash (`$6$`, `$5$`, `$2b$`, `$y$`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// SSH public key for `authorized_keys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Home directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
    /// Login shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// Supplementary groups.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub groups: Vec<String>,
    /// User id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<i64>,
    /// Primary group id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<i64>,
    /// Account expiry, in days since 1970-01-01.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiredate: Option<i64>,
    /// Force a password change at first login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_password_reset: Option<bool>,
}

/// `[[customizations.group]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupCustomization {
    /// Group name.
    pub name: String,
    /// Group id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<i64>,
}

/// `[customizations.timezone]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimezoneCustomization {
    /// Zone name such as `Europe/Paris` or `UTC` (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// NTP servers.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ntpservers: Vec<String>,
}

/// `[customizations.locale]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocaleCustomization {
    /// Locales to install; the first one is the system default.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub languages: Vec<String>,
    /// Console keymap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyboard: Option<String>,
}

/// `[customizations.firewall]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirewallCustomization {
    /// `port:proto`, `from-to:proto` or `service:proto`.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ports: Vec<String>,
    /// firewalld services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<FirewallServicesCustomization>,
    /// Zones and their sources.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub zones: Vec<FirewallZoneCustomization>,
}

/// `[customizations.firewall.services]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirewallServicesCustomization {
    /// Services to allow.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub enabled: Vec<String>,
    /// Services to block.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub disabled: Vec<String>,
}

/// `[[customizations.firewall.zones]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirewallZoneCustomization {
    /// Zone name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Source addresses bound to the zone.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub sources: Vec<String>,
}

/// `[customizations.services]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicesCustomization {
    /// Units to enable.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub enabled: Vec<String>,
    /// Units to disable.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub disabled: Vec<String>,
    /// Units to mask.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub masked: Vec<String>,
}

/// `[[customizations.filesystem]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesystemCustomization {
    /// Absolute, canonical mountpoint.
    pub mountpoint: String,
    /// Minimum size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minsize: Option<Size>,
    /// Deprecated alias of `minsize` (setting both is an error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Size>,
}

impl FilesystemCustomization {
    /// The minimum size, whichever of `minsize` / `size` was used.
    pub fn min_size(&self) -> Option<&Size> {
        self.minsize.as_ref().or(self.size.as_ref())
    }
}

/// `[customizations.disk]`: a complete partition table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskCustomization {
    /// `gpt` or `dos` (image type default when absent).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub table_type: Option<String>,
    /// Minimum disk size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minsize: Option<Size>,
    /// Offset of the first partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_offset: Option<Size>,
    /// Sector size in bytes (power of two, default 512).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sector_size: Option<i64>,
    /// Partitions, in order.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub partitions: Vec<PartitionCustomization>,
}

/// What a partition holds, from its `type` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartitionKind {
    /// A filesystem (or swap) directly on the partition.
    Plain,
    /// An LVM volume group.
    Lvm,
    /// A btrfs volume with subvolumes.
    Btrfs,
}

impl PartitionKind {
    /// The `type` value of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            PartitionKind::Plain => "plain",
            PartitionKind::Lvm => "lvm",
            PartitionKind::Btrfs => "btrfs",
        }
    }
}

/// `[[customizations.disk.partitions]]`.
///
/// Which keys are allowed depends on `type`: plain partitions take `mountpoint`, `label`,
/// `fs_type`; lvm ones `name`, `logical_volumes`; btrfs ones `subvolumes`. Keys of another type
/// are rejected while parsing, as osbuild does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawPartition")]
pub struct PartitionCustomization {
    /// `plain` (default), `lvm` or `btrfs`, as written.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub part_kind: Option<String>,
    /// Minimum size (required).
    pub minsize: Size,
    /// GPT type GUID or 2-hex-digit dos type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_type: Option<String>,
    /// GPT partition label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_label: Option<String>,
    /// GPT partition GUID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_uuid: Option<String>,
    /// Plain: mountpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mountpoint: Option<String>,
    /// Plain: filesystem label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Plain: `ext4`, `xfs`, `vfat`, `swap` or `none`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<String>,
    /// Lvm: volume group name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Lvm: logical volumes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logical_volumes: Vec<LogicalVolumeCustomization>,
    /// Btrfs: subvolumes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subvolumes: Vec<BtrfsSubvolumeCustomization>,
}

impl PartitionCustomization {
    /// The partition kind (`plain` when `type` is absent).
    pub fn kind(&self) -> PartitionKind {
        match self.part_kind.as_deref() {
            Some("lvm") => PartitionKind::Lvm,
            Some("btrfs") => PartitionKind::Btrfs,
            _ => PartitionKind::Plain,
        }
    }
}

/// Everything a partition table entry may contain; narrowed by [`PartitionCustomization`]'s
/// `TryFrom` to the keys of its type.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartition {
    #[serde(rename = "type")]
    part_kind: Option<String>,
    minsize: Size,
    part_type: Option<String>,
    part_label: Option<String>,
    part_uuid: Option<String>,
    mountpoint: Option<String>,
    label: Option<String>,
    fs_type: Option<String>,
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable_vec")]
    logical_volumes: Vec<LogicalVolumeCustomization>,
    #[serde(default, deserialize_with = "nullable_vec")]
    subvolumes: Vec<BtrfsSubvolumeCustomization>,
}

impl TryFrom<RawPartition> for PartitionCustomization {
    type Error = String;

    fn try_from(raw: RawPartition) -> Result<Self, String> {
        let kind = match raw.part_kind.as_deref() {
            None | Some("plain") => PartitionKind::Plain,
            Some("lvm") => PartitionKind::Lvm,
            Some("btrfs") => PartitionKind::Btrfs,
            Some(other) => {
                return Err(format!(
                    "unknown partition type {other:?}: use \"plain\" (a filesystem), \"lvm\" (a volume group) or \"btrfs\" (a btrfs volume)"
                ));
            }
        };
        let mut foreign: Vec<&str> = Vec::new();
        if kind != PartitionKind::Plain {
            for (key, set) in [
                ("mountpoint", raw.mountpoint.is_some()),
                ("label", raw.label.is_some()),
                ("fs_type", raw.fs_type.is_some()),
            ] {
                if set {
                    foreign.push(key);
                }
            }
        }
        if kind != PartitionKind::Lvm {
            if raw.name.is_some() {
                foreign.push("name");
            }
            if !raw.logical_volumes.is_empty() {
                foreign.push("logical_volumes");
            }
        }
        if kind != PartitionKind::Btrfs && !raw.subvolumes.is_empty() {
            foreign.push("subvolumes");
        }
        if let Some(key) = foreign.first() {
            let allowed = match kind {
                PartitionKind::Plain => "mountpoint, label, fs_type",
                PartitionKind::Lvm => "name, logical_volumes",
                PartitionKind::Btrfs => "subvolumes",
            };
            return Err(format!(
                "field `{key}` is not allowed in a partition of type \"{}\" (allowed: type, minsize, part_type, part_label, part_uuid, {allowed}); remove it or change the partition type",
                kind.as_str()
            ));
        }
        Ok(PartitionCustomization {
            part_kind: raw.part_kind,
            minsize: raw.minsize,
            part_type: raw.part_type,
            part_label: raw.part_label,
            part_uuid: raw.part_uuid,
            mountpoint: raw.mountpoint,
            label: raw.label,
            fs_type: raw.fs_type,
            name: raw.name,
            logical_volumes: raw.logical_volumes,
            subvolumes: raw.subvolumes,
        })
    }
}

/// `[[customizations.disk.partitions.logical_volumes]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogicalVolumeCustomization {
    /// LV name (generated when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Minimum size (required).
    pub minsize: Size,
    /// Mountpoint (empty for swap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mountpoint: Option<String>,
    /// Filesystem label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// `ext4`, `xfs`, `vfat` or `swap`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<String>,
}

/// `[[customizations.disk.partitions.subvolumes]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BtrfsSubvolumeCustomization {
    /// Subvolume path on the volume, e.g. `root`.
    pub name: String,
    /// Mountpoint.
    pub mountpoint: String,
}

/// `[customizations.fdo]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FdoCustomization {
    /// Manufacturing server URL (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturing_server_url: Option<String>,
    /// Trust the DIUN key without checking it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diun_pub_key_insecure: Option<String>,
    /// `sha256:<hex>` fingerprint of the DIUN certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diun_pub_key_hash: Option<String>,
    /// PEM root certificates for the DIUN key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diun_pub_key_root_certs: Option<String>,
    /// Interface whose MAC is the device info string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub di_mfg_string_type_mac_iface: Option<String>,
}

/// `[customizations.openscap]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenScapCustomization {
    /// SCAP datastream path (distro default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datastream: Option<String>,
    /// Profile to apply (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<String>,
    /// Compliance policy id (hosted service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,
    /// Rules to add or remove.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tailoring: Option<OpenScapTailoringCustomization>,
    /// Tailoring from a JSON file in the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_tailoring: Option<OpenScapJsonTailoringCustomization>,
}

/// `[customizations.openscap.tailoring]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenScapTailoringCustomization {
    /// Rules to select.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub selected: Vec<String>,
    /// Rules to unselect.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub unselected: Vec<String>,
}

/// `[customizations.openscap.json_tailoring]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenScapJsonTailoringCustomization {
    /// Tailored profile id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<String>,
    /// Path of the JSON tailoring file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filepath: Option<String>,
}

/// `[customizations.ignition]`: either an embedded config or one fetched at first boot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IgnitionCustomization {
    /// Config embedded in the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedded: Option<EmbeddedIgnitionCustomization>,
    /// Config fetched at first boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firstboot: Option<FirstBootIgnitionCustomization>,
}

/// `[customizations.ignition.embedded]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedIgnitionCustomization {
    /// Base64 encoded Ignition config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

/// `[customizations.ignition.firstboot]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirstBootIgnitionCustomization {
    /// Provisioning URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Boot with an empty Ignition config instead of a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty: Option<bool>,
}

/// Owner of a custom file or directory: a name or a numeric id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// User or group name.
    Name(String),
    /// Numeric uid or gid.
    Id(i64),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Name(n) => f.write_str(n),
            Owner::Id(i) => write!(f, "{i}"),
        }
    }
}

impl Serialize for Owner {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Owner::Name(n) => serializer.serialize_str(n),
            Owner::Id(i) => serializer.serialize_i64(*i),
        }
    }
}

impl<'de> Deserialize<'de> for Owner {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OwnerVisitor;
        impl Visitor<'_> for OwnerVisitor {
            type Value = Owner;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a name (string) or a numeric id (integer)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Owner, E> {
                Ok(Owner::Name(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Owner, E> {
                Ok(Owner::Id(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Owner, E> {
                i64::try_from(v)
                    .map(Owner::Id)
                    .map_err(|_| E::custom(format!("id {v} is too large")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Owner, E> {
                // JSON clients may send 1000.0; osbuild accepts integral floats.
                if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e18 {
                    #[allow(clippy::cast_possible_truncation)]
                    Ok(Owner::Id(v as i64))
                } else {
                    Err(E::custom(format!("invalid id {v}: must be an integer")))
                }
            }
        }
        deserializer.deserialize_any(OwnerVisitor)
    }
}

/// `[[customizations.directories]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryCustomization {
    /// Absolute, canonical path.
    pub path: String,
    /// Owning user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Owner>,
    /// Owning group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Owner>,
    /// Octal mode string, e.g. `"0755"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Create missing parent directories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ensure_parents: Option<bool>,
}

/// `[[customizations.files]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCustomization {
    /// Absolute, canonical path.
    pub path: String,
    /// Owning user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Owner>,
    /// Owning group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Owner>,
    /// Octal mode string, e.g. `"0644"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// File content (mutually exclusive with `uri`); neither means an empty file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// `file://` URI of a file on the build host to copy (mutually exclusive with `data`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

/// `[[customizations.repositories]]`, with osbuild's (yum) field names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryCustomization {
    /// Repository id (required).
    pub id: String,
    /// Base URLs.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub baseurls: Vec<String>,
    /// Key URLs or ASCII-armored keys.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub gpgkeys: Vec<String>,
    /// Metalink URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metalink: Option<String>,
    /// Mirror list URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirrorlist: Option<String>,
    /// Human readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Enabled in the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Check package signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpgcheck: Option<bool>,
    /// Check repository metadata signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_gpgcheck: Option<bool>,
    /// Verify TLS certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslverify: Option<bool>,
    /// DNF module hotfixes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_hotfixes: Option<bool>,
    /// File name in the image (default `<id>.repo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Also install packages from this repository at build time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_from: Option<bool>,
}

impl RepositoryCustomization {
    /// The file name in the image: `filename`, with `.repo` added when missing, or `<id>.repo`.
    pub fn effective_filename(&self) -> String {
        match self.filename.as_deref() {
            None | Some("") => format!("{}.repo", self.id),
            Some(f) if f.ends_with(".repo") => f.to_owned(),
            Some(f) => format!("{f}.repo"),
        }
    }
}

/// `[customizations.installer]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallerCustomization {
    /// Install without asking questions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unattended: Option<bool>,
    /// Users and `%groups` allowed to sudo without password.
    #[serde(
        default,
        rename = "sudo-nopasswd",
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub sudo_nopasswd: Vec<String>,
    /// Raw kickstart content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kickstart: Option<KickstartCustomization>,
    /// Anaconda modules to enable or disable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modules: Option<AnacondaModulesCustomization>,
    /// Installer boot menu.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootloader: Option<InstallerBootloaderCustomization>,
    /// Extra payload (flatpaks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<InstallerPayloadCustomization>,
}

/// `[customizations.installer.kickstart]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KickstartCustomization {
    /// Kickstart text.
    pub contents: String,
}

/// `[customizations.installer.modules]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnacondaModulesCustomization {
    /// D-Bus module names to enable.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub enable: Vec<String>,
    /// D-Bus module names to disable.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub disable: Vec<String>,
}

/// `[customizations.installer.bootloader]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallerBootloaderCustomization {
    /// GRUB 2 options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grub2: Option<InstallerGrub2Customization>,
}

/// `[customizations.installer.bootloader.grub2]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallerGrub2Customization {
    /// Boot menu timeout in seconds.
    #[serde(
        default,
        rename = "menu-timeout",
        skip_serializing_if = "Option::is_none"
    )]
    pub menu_timeout: Option<i64>,
}

/// `[customizations.installer.payload]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallerPayloadCustomization {
    /// Flatpaks to install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flatpaks: Option<FlatpakPayloadCustomization>,
}

/// `[customizations.installer.payload.flatpaks]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlatpakPayloadCustomization {
    /// Flatpaks installed regardless of the user's choices.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub force: Vec<FlatpakCustomization>,
}

/// `[[customizations.installer.payload.flatpaks.force]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlatpakCustomization {
    /// Where the references come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<FlatpakRegistryCustomization>,
    /// Flatpak references, e.g. `app/org.gnome.Calculator/x86_64/stable`.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub references: Vec<String>,
}

/// `[customizations.installer.payload.flatpaks.force.registry]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlatpakRegistryCustomization {
    /// Remote name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_name: Option<String>,
    /// Registry URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `[customizations.rpm]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpmCustomization {
    /// Keys to import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_keys: Option<RpmImportKeysCustomization>,
}

/// `[customizations.rpm.import_keys]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpmImportKeysCustomization {
    /// Key files inside the image.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub files: Vec<String>,
}

/// `[customizations.rhsm]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RhsmCustomization {
    /// subscription-manager configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RhsmConfigCustomization>,
}

/// `[customizations.rhsm.config]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RhsmConfigCustomization {
    /// DNF plugins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnf_plugins: Option<RhsmDnfPluginsCustomization>,
    /// `rhsm.conf` settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_manager: Option<RhsmSubManCustomization>,
}

/// `[customizations.rhsm.config.dnf_plugins]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RhsmDnfPluginsCustomization {
    /// product-id plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<RhsmPluginCustomization>,
    /// subscription-manager plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_manager: Option<RhsmPluginCustomization>,
}

/// A DNF plugin switch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RhsmPluginCustomization {
    /// Enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `[customizations.rhsm.config.subscription_manager]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RhsmSubManCustomization {
    /// `[rhsm]` section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rhsm: Option<RhsmRhsmCustomization>,
    /// `[rhsmcertd]` section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rhsmcertd: Option<RhsmCertdCustomization>,
}

/// `[customizations.rhsm.config.subscription_manager.rhsm]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RhsmRhsmCustomization {
    /// `manage_repos`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manage_repos: Option<bool>,
    /// `auto_enable_yum_plugins`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_enable_yum_plugins: Option<bool>,
}

/// `[customizations.rhsm.config.subscription_manager.rhsmcertd]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RhsmCertdCustomization {
    /// `auto_registration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_registration: Option<bool>,
}

/// `[customizations.cacerts]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaCustomization {
    /// PEM bundles, each with one or more certificates.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub pem_certs: Vec<String>,
}

/// `[customizations.containers-storage]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerStorageCustomization {
    /// Storage directory for embedded containers.
    #[serde(
        default,
        rename = "destination-path",
        skip_serializing_if = "Option::is_none"
    )]
    pub destination_path: Option<String>,
}

/// `[customizations.firstboot]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirstbootCustomization {
    /// Scripts, run in order.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub scripts: Vec<FirstbootScript>,
}

/// `[[customizations.firstboot.scripts]]`, selected by its `type` key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FirstbootScript {
    /// A shell script (or any interpreter via shebang).
    Custom(CustomFirstbootScript),
    /// Red Hat Satellite registration.
    Satellite(SatelliteFirstbootScript),
    /// Ansible Automation Platform callback.
    Aap(AapFirstbootScript),
}

impl FirstbootScript {
    /// The optional script name.
    pub fn name(&self) -> Option<&str> {
        match self {
            FirstbootScript::Custom(s) => s.name.as_deref(),
            FirstbootScript::Satellite(s) => s.name.as_deref(),
            FirstbootScript::Aap(s) => s.name.as_deref(),
        }
    }
}

/// `type = "custom"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomFirstbootScript {
    /// Unique name (`[A-Za-z0-9_-]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Continue with the next script when this one fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_failure: Option<bool>,
    /// systemd units to run after.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub after: Vec<String>,
    /// systemd units to run before.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub before: Vec<String>,
    /// Script text; without a shebang it runs with `/bin/sh`.
    pub contents: String,
}

/// `type = "satellite"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SatelliteFirstbootScript {
    /// Unique name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Continue on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_failure: Option<bool>,
    /// systemd units to run after.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub after: Vec<String>,
    /// systemd units to run before.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub before: Vec<String>,
    /// Registration command generated by Satellite.
    pub command: String,
    /// CA certificates to trust first.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cacerts: Vec<String>,
}

/// `type = "aap"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AapFirstbootScript {
    /// Unique name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Continue on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_failure: Option<bool>,
    /// systemd units to run after.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub after: Vec<String>,
    /// systemd units to run before.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub before: Vec<String>,
    /// Job template callback URL.
    pub job_template_url: String,
    /// Host config key.
    pub host_config_key: String,
    /// CA certificates to trust first.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cacerts: Vec<String>,
}

/// `[customizations.dnf]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnfCustomization {
    /// Configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<DnfConfigCustomization>,
}

/// `[customizations.dnf.config]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnfConfigCustomization {
    /// Pin the release version in the package manager configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_releasever: Option<bool>,
}

/// `[customizations.iso]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsoCustomization {
    /// ISO application id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
    /// ISO publisher.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<String>,
    /// ISO volume id (letters, digits, `_ . $ -`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_id: Option<String>,
}

/// `[customizations.sshd]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshdCustomization {
    /// `PasswordAuthentication`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_authentication: Option<bool>,
    /// `KbdInteractiveAuthentication`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kbd_interactive_authentication: Option<bool>,
    /// `ClientAliveInterval` in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_alive_interval: Option<i64>,
    /// `PermitRootLogin`: `yes`, `no`, `prohibit-password` or `forced-commands-only`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permit_root_login: Option<String>,
}
