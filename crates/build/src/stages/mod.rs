//! The stage catalogue: every stage kind kiln can run, with its implementation version.
//!
//! A version is part of every stage id: bump it whenever a change of the implementation
//! would change the stage's output, so that stored trees made by the old one are not reused.

pub mod archive_tar;
pub mod deb_install;
pub mod disk_image;
pub mod fstab;
pub mod grub_config;
pub mod hostname;
pub mod image_convert;
pub mod initramfs;
pub mod system_boot;
pub mod tree_normalize;
// Image types packed from a disk or a tree: ova, gce, container, iso.
pub mod archive_targz;
pub mod iso;
pub mod oci_archive;
pub mod ova;
// Blueprint customizations of the OS tree (`treefs`: their shared file handling).
pub mod apt_sources;
pub mod ca_certificates;
pub mod directories;
pub mod files;
pub mod firewall_nftables;
pub mod firstboot;
pub mod groups;
pub mod keyboard;
pub mod locale;
pub mod sshd_config;
pub mod systemd_units;
pub mod timesyncd_ntp;
pub mod timezone;
pub mod treefs;
pub mod users;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `(kind, implementation version)` of every stage kind.
/// Versions were all bumped when the executor began normalizing every committed tree.
pub const CATALOGUE: &[(&str, u32)] = &[
    ("deb.install", 3),
    ("hostname", 2),
    ("tree.normalize", 2),
    ("archive.tar", 2),
    ("initramfs", 3),
    ("fstab", 2),
    ("grub.config", 2),
    ("system.bootable", 2),
    ("disk.image", 4),
    ("image.convert", 4),
    ("ova.archive", 1),
    ("archive.targz", 1),
    ("oci.archive", 1),
    ("iso.live", 1),
    // Customizations of the OS tree.
    ("apt.sources", 2),
    ("ca.certificates", 2),
    ("timezone", 2),
    ("timesyncd.ntp", 2),
    ("locale", 2),
    ("keyboard", 2),
    ("sshd.config", 2),
    ("firewall.nftables", 2),
    ("groups", 2),
    ("users", 2),
    ("directories", 2),
    ("files", 2),
    ("firstboot", 2),
    ("systemd.units", 2),
];

/// Stage kinds that never modify an existing file in place: they only create entries,
/// replace files (a new file renamed over the old one), remove entries, or change
/// directories. Their working tree is restored from the parent with hard links instead of
/// a copy (a fraction of a second instead of seconds for an OS tree), which is safe only
/// because of that promise. Stages that run programs from packages are never listed.
pub const RESTORE_BY_HARDLINK: &[&str] = &[
    "hostname",
    "fstab",
    "grub.config",
    "system.bootable",
    "timezone",
    "timesyncd.ntp",
    "sshd.config",
    "apt.sources",
    "directories",
    "files",
];

/// Stage kinds that run package code in a sandbox where the tree is read-only
/// ([`StageContext::read_only_chroot_sandbox`]) except for the listed directories. They
/// start from a hard-linked restore too, with those directories copied, so that nothing
/// the stage can write is shared with its stored parent (writes elsewhere fail).
pub const RESTORE_BY_HARDLINK_READ_ONLY: &[(&str, &[&str])] = &[(
    "initramfs",
    // update-initramfs writes the initramfs into /boot and its checksum into
    // /var/lib/initramfs-tools; mkinitramfs builds it under /var/tmp.
    &["boot", "var/lib/initramfs-tools", "var/tmp"],
)];

/// The directories a [`RESTORE_BY_HARDLINK_READ_ONLY`] stage may write, `None` for others.
pub fn writable_dirs(kind: &str) -> Option<&'static [&'static str]> {
    RESTORE_BY_HARDLINK_READ_ONLY
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, dirs)| *dirs)
}

/// The implementation version of `kind`, `None` when kiln does not know it.
pub fn version(kind: &str) -> Option<u32> {
    CATALOGUE.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v)
}

/// A resolved stage input.
#[derive(Debug, Clone)]
pub enum InputData {
    /// Verified downloads in the store, in the manifest's order.
    Files(Vec<PathBuf>),
    /// Another pipeline's committed tree (read only).
    Tree(PathBuf),
}

/// What a stage gets to run.
pub struct StageContext<'a> {
    /// The tree the stage modifies (a copy of its parent's).
    pub tree: &'a Path,
    pub options: &'a serde_json::Value,
    pub inputs: BTreeMap<String, InputData>,
    /// The pipeline's `SOURCE_DATE_EPOCH`.
    pub source_epoch: Option<u64>,
    /// The `bwrap` binary for sandboxed stages (default: from `PATH`).
    pub bwrap: Option<PathBuf>,
    /// The committed tree of the pipeline's build pipeline: the tools the stage runs
    /// (`None`: the pipeline has no build root).
    pub build_root: Option<PathBuf>,
    /// Where a stage's output lines go.
    pub log: &'a mut dyn FnMut(&str),
}

impl StageContext<'_> {
    pub fn option_str(&self, key: &str) -> Result<&str, String> {
        self.options
            .get(key)
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("option {key:?} (a string) is required"))
    }

    pub fn input_tree(&self, name: &str) -> Result<&Path, String> {
        match self.inputs.get(name) {
            Some(InputData::Tree(p)) => Ok(p),
            _ => Err(format!("input {name:?} (a pipeline tree) is required")),
        }
    }

    /// The build root, or an error for a stage that needs tools.
    pub fn require_build_root(&self) -> Result<&Path, String> {
        self.build_root.as_deref().ok_or_else(|| {
            "this stage runs tools from a build root: its pipeline needs a `build` pipeline".into()
        })
    }

    /// A sandbox whose programs come from the build root, with the stage's tree
    /// read-write at [`kiln_sandbox::TREE_PATH`] and `SOURCE_DATE_EPOCH` set.
    pub fn build_sandbox(&self) -> Result<kiln_sandbox::Sandbox, String> {
        let root = self.require_build_root()?;
        Ok(self.with_defaults(
            kiln_sandbox::Sandbox::new(root).tree(self.tree, kiln_sandbox::TreeMode::BuildRoot),
        ))
    }

    /// A sandbox with the stage's tree as `/` (its own programs), no network, and
    /// `SOURCE_DATE_EPOCH` set.
    pub fn chroot_sandbox(&self) -> kiln_sandbox::Sandbox {
        self.with_defaults(
            kiln_sandbox::Sandbox::new(self.tree).tree(self.tree, kiln_sandbox::TreeMode::Chroot),
        )
    }

    /// A sandbox with the stage's tree as `/`, read-only but for those of the directories
    /// [`writable_dirs`] lists for `kind` that exist in the tree (creating the others would
    /// change the tree).
    pub fn read_only_chroot_sandbox(&self, kind: &str) -> Result<kiln_sandbox::Sandbox, String> {
        let dirs = writable_dirs(kind)
            .ok_or_else(|| format!("stage {kind:?} has no writable directories declared"))?;
        let mut sb = kiln_sandbox::Sandbox::new(self.tree)
            .tree(self.tree, kiln_sandbox::TreeMode::ChrootReadOnly);
        for d in dirs {
            let host = self.tree.join(d);
            if host.is_dir() {
                sb = sb.bind_rw(&host, format!("/{d}"));
            }
        }
        Ok(self.with_defaults(sb))
    }

    /// The pipeline's `SOURCE_DATE_EPOCH` and the configured `bwrap`.
    fn with_defaults(&self, mut sb: kiln_sandbox::Sandbox) -> kiln_sandbox::Sandbox {
        if let Some(e) = self.source_epoch {
            sb = sb.source_date_epoch(e);
        }
        if let Some(b) = &self.bwrap {
            sb = sb.bwrap(b);
        }
        sb
    }

    /// Runs a sandboxed command, passing every output line to the stage log.
    pub fn run_logged(
        &mut self,
        sb: &kiln_sandbox::Sandbox,
        cmd: &str,
        args: &[&str],
    ) -> Result<kiln_sandbox::Output, String> {
        let log = &mut *self.log;
        sb.run_streaming(cmd, args, |_, line| log(line))
            .map_err(|e| e.to_string())
    }

    pub fn input_files(&self, name: &str) -> Result<&[PathBuf], String> {
        match self.inputs.get(name) {
            Some(InputData::Files(f)) => Ok(f),
            _ => Err(format!("input {name:?} (sources) is required")),
        }
    }
}

/// Runs one stage. The error is a message for people.
pub fn run(kind: &str, ctx: &mut StageContext<'_>) -> Result<(), String> {
    match kind {
        "deb.install" => deb_install::run(ctx),
        "hostname" => hostname::run(ctx),
        "tree.normalize" => tree_normalize::run(ctx),
        "archive.tar" => archive_tar::run(ctx),
        "initramfs" => initramfs::run(ctx),
        "fstab" => fstab::run(ctx),
        "grub.config" => grub_config::run(ctx),
        "system.bootable" => system_boot::run(ctx),
        "disk.image" => disk_image::run(ctx),
        "image.convert" => image_convert::run(ctx),
        "ova.archive" => ova::run(ctx),
        "archive.targz" => archive_targz::run(ctx),
        "oci.archive" => oci_archive::run(ctx),
        "iso.live" => iso::run(ctx),
        "apt.sources" => apt_sources::run(ctx),
        "ca.certificates" => ca_certificates::run(ctx),
        "timezone" => timezone::run(ctx),
        "timesyncd.ntp" => timesyncd_ntp::run(ctx),
        "locale" => locale::run(ctx),
        "keyboard" => keyboard::run(ctx),
        "sshd.config" => sshd_config::run(ctx),
        "firewall.nftables" => firewall_nftables::run(ctx),
        "groups" => groups::run(ctx),
        "users" => users::run(ctx),
        "directories" => directories::run(ctx),
        "files" => files::run(ctx),
        "firstboot" => firstboot::run(ctx),
        "systemd.units" => systemd_units::run(ctx),
        _ => Err(format!("unknown stage kind {kind:?}")),
    }
}
