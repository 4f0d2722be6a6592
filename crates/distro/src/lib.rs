//! kiln-distro: the only place that maps blueprints to stages.
//!
//! [`plan`] checks a blueprint against the image types asked for and says which package
//! sets must be depsolved (one per OS variant, plus the build root); [`manifest`] turns
//! the blueprint and the resolved sets into a [`Manifest`]. Image types: see
//! [`IMAGE_TYPES`] (`kiln build --list-types`).
//!
//! # Pipelines
//!
//! * `build` (disk types): the build root, `deb.install` of the tools the disk stages run
//!   (e2fsprogs, dosfstools, mtools, GRUB's BIOS and EFI images, qemu-utils) from the
//!   same archive as the image.
//! * one OS pipeline per [`OsVariant`] (`os`, `os-boot`, `os-cloud`, `os-azure`):
//!   `deb.install`; for bootable variants `initramfs`, `system.bootable` (DHCP, SSH host
//!   keys on first boot), `fstab`, `grub.config`; then `hostname` and the other
//!   customizations ([`customize`]: groups, users, files, services, ...). The stages that depend only on the package set come first, so that
//!   changing the hostname re-runs only what follows it. (No `tree.normalize` stage: the
//!   executor normalizes every tree it commits.)
//! * `<type>-disk` (disk types): `disk.image` of the OS tree, with the build root.
//!   Types with the same variant and size get identical stage ids: the store builds
//!   the disk once.
//! * `<type>` for converted formats: `image.convert` of the disk; `tar`: `archive.tar`;
//!   `ova`: `ova.archive` of the disk (OVF + manifest + streamOptimized VMDK); `gce`:
//!   `archive.targz` of the disk (sparse `disk.raw` in a GNU tar, gzipped); `container`:
//!   `oci.archive` of the plain tree; `iso`: `iso.live` of the `os-live` tree (live-boot
//!   in the initramfs, no fstab, no GRUB in the tree: squashfs + GRUB on the medium).
//!
//! The disk layout is GPT: a 1 MiB BIOS boot partition, a 200 MiB EFI system partition
//! (FAT32, mounted at `/boot/efi`) and the root filesystem (ext4) on the rest; GRUB boots
//! both ways (see the `disk.image` stage). `[[customizations.filesystem]]` and
//! `[customizations.disk]` change that layout ([`layout`]: extra partitions, LVM).
//!
//! Identifiers (UUIDs, GUIDs, the FAT volume id) are derived from the blueprint's name
//! and the distro ([`ids`]), so the same blueprint gives the same manifest.
//!
//! A blueprint customization an image type cannot honour is an error, never ignored.

pub mod customize;
mod ids;
pub mod image_types;
mod layout;

pub use image_types::{Format, IMAGE_TYPES, ImageType, OsVariant, image_type};

use kiln_blueprint::Blueprint;
use kiln_manifest::{Export, Input, Manifest, Pipeline, SourceItem, Stage};
use serde_json::json;
use std::collections::BTreeMap;

/// A package chosen by depsolving, with where to get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPackage {
    pub name: String,
    pub version: String,
    /// Lowercase hex sha256 of the `.deb`.
    pub sha256: String,
    pub url: String,
    pub size: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DistroError {
    #[error("unknown image type {0:?} (kiln can make: {types})", types = image_types::names())]
    UnknownImageType(String),
    #[error("no image type given (kiln can make: {types})", types = image_types::names())]
    NoImageType,
    #[error("image type {image_type:?} does not support {what}; remove it from the blueprint")]
    Unsupported { image_type: String, what: String },
    #[error("{0}")]
    Invalid(String),
    #[error("package {name}: {message}")]
    Package { name: String, message: String },
    #[error("internal error: no resolved package set for {0}")]
    MissingSet(String),
}

/// The kernel package when the blueprint names none.
pub const DEFAULT_KERNEL: &str = "linux-image-amd64";

/// What every bootable OS tree gets besides the blueprint's packages.
const BOOTABLE_PACKAGES: &[&str] = &[
    "systemd-sysv",
    "udev",
    "dbus",
    "initramfs-tools",
    "zstd",
    "kmod",
    "systemd-resolved",
    "openssh-server",
];

/// The build root of disk types.
pub const BUILD_PACKAGES: &[&str] = &[
    "e2fsprogs",
    "dosfstools",
    "mtools",
    "grub-pc-bin",
    "grub-efi-amd64-bin",
    "qemu-utils",
];

/// Added to the build root when an `iso` is asked for.
pub const ISO_BUILD_PACKAGES: &[&str] = &["squashfs-tools", "xorriso"];

/// What must be depsolved for a set of image types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Each OS variant needed, with the packages it adds to the blueprint's.
    pub os: BTreeMap<OsVariant, Vec<String>>,
    /// The build root's packages (`None`: no type needs tools).
    pub build: Option<Vec<String>>,
}

/// The resolved package sets of a [`Plan`].
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    pub os: BTreeMap<OsVariant, Vec<ResolvedPackage>>,
    pub build: Vec<ResolvedPackage>,
}

fn types_of(names: &[String]) -> Result<Vec<&'static ImageType>, DistroError> {
    if names.is_empty() {
        return Err(DistroError::NoImageType);
    }
    let mut out: Vec<&'static ImageType> = Vec::new();
    for n in names {
        let t = image_type(n).ok_or_else(|| DistroError::UnknownImageType(n.clone()))?;
        if !out.iter().any(|o| o.name == t.name) {
            out.push(t);
        }
    }
    Ok(out)
}

/// Checks `bp` against every type in `image_types` and lists the package sets to solve.
pub fn plan(bp: &Blueprint, image_types: &[String]) -> Result<Plan, DistroError> {
    let types = types_of(image_types)?;
    let mut os = BTreeMap::new();
    let mut build = None;
    for t in &types {
        check_supported(bp, t)?;
        let custom = customize::os_customization(bp, t.name, t.os.bootable())?;
        if let std::collections::btree_map::Entry::Vacant(slot) = os.entry(t.os) {
            let mut packages = variant_packages(bp, t.os);
            for p in custom.packages {
                if !packages.contains(&p) {
                    packages.push(p);
                }
            }
            slot.insert(packages);
        }
        if t.os.bootable() {
            let b: &mut Vec<String> =
                build.get_or_insert_with(|| BUILD_PACKAGES.iter().map(|s| s.to_string()).collect());
            if t.format == Format::Iso {
                b.extend(ISO_BUILD_PACKAGES.iter().map(|s| s.to_string()));
            }
        }
    }
    Ok(Plan { os, build })
}

/// The kernel command line (console on the serial port, then the blueprint's append).
fn kernel_cmdline(bp: &Blueprint) -> String {
    let append = bp
        .customizations
        .as_ref()
        .and_then(|c| c.kernel.as_ref())
        .and_then(|k| k.append.clone())
        .unwrap_or_default();
    let mut cmdline = String::from("console=tty0 console=ttyS0,115200n8");
    if !append.trim().is_empty() {
        cmdline.push(' ');
        cmdline.push_str(append.trim());
    }
    cmdline
}

fn kernel_package(bp: &Blueprint) -> String {
    bp.customizations
        .as_ref()
        .and_then(|c| c.kernel.as_ref())
        .and_then(|k| k.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_KERNEL.to_owned())
}

fn variant_packages(bp: &Blueprint, v: OsVariant) -> Vec<String> {
    let mut p: Vec<String> = Vec::new();
    if v.bootable() {
        p.push(kernel_package(bp));
        p.extend(BOOTABLE_PACKAGES.iter().map(|s| s.to_string()));
        // What the initramfs needs to mount the layout (lvm2); errors come from plan().
        if let Ok(l) = layout::Layout::new(bp, "", "") {
            p.extend(l.os_packages());
        }
    }
    if matches!(v, OsVariant::Cloud | OsVariant::Azure) {
        p.push("cloud-init".into());
    }
    if v == OsVariant::Live {
        p.push("live-boot".into());
    }
    p
}

/// Errors for every part of `bp` that `t` cannot honour.
fn check_supported(bp: &Blueprint, t: &ImageType) -> Result<(), DistroError> {
    let unsupported = |what: String| DistroError::Unsupported {
        image_type: t.name.to_owned(),
        what,
    };
    if !bp.groups.is_empty() {
        return Err(unsupported(
            "package groups ([[groups]]: Debian has no comps groups; list the packages)".into(),
        ));
    }
    if !bp.containers.is_empty() {
        return Err(unsupported("embedded containers ([[containers]])".into()));
    }
    if !bp.enabled_modules.is_empty() {
        return Err(unsupported(
            "enabled modules ([[enabled_modules]]: Debian has no module streams)".into(),
        ));
    }
    let Some(c) = &bp.customizations else {
        return Ok(());
    };
    let value = serde_json::to_value(c).unwrap_or_default();
    // Here: what shapes the disk and the boot; customize.rs: everything in the tree.
    let handled: &[&str] = if t.format.from_disk() {
        &[
            "hostname",
            "kernel",
            "filesystem",
            "disk",
            "partitioning_mode",
        ]
    } else if t.os.bootable() {
        // A live image has no disk to lay out.
        &["hostname", "kernel"]
    } else {
        &["hostname"]
    };
    if let Some(obj) = value.as_object() {
        let other: Vec<String> = obj
            .keys()
            .filter(|k| {
                !handled.contains(&k.as_str()) && !customize::CUSTOMIZATIONS.contains(&k.as_str())
            })
            .map(|k| format!("customizations.{k}"))
            .collect();
        if !other.is_empty() {
            return Err(unsupported(other.join(", ")));
        }
    }
    if t.format.from_disk() {
        layout::Layout::new(bp, "", t.name)?;
    }
    Ok(())
}

/// What a build request may set beside the blueprint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageOptions {
    /// Size of the disk in bytes (rounded up to a MiB) instead of the type's default; the
    /// disk is still made as large as the layout needs. Only for types made from a disk.
    pub size: Option<u64>,
}

/// The manifest of `image_types` for `bp`. `resolved` must hold the complete,
/// dependency-closed set of every OS variant and of the build root that [`plan`] asked for.
pub fn manifest(
    bp: &Blueprint,
    distro: &str,
    arch: &str,
    image_types: &[String],
    resolved: &Resolved,
    source_epoch: u64,
) -> Result<Manifest, DistroError> {
    manifest_with(
        bp,
        distro,
        arch,
        image_types,
        resolved,
        source_epoch,
        &ImageOptions::default(),
    )
}

/// [`manifest`] with the options of the request.
pub fn manifest_with(
    bp: &Blueprint,
    distro: &str,
    arch: &str,
    image_types: &[String],
    resolved: &Resolved,
    source_epoch: u64,
    options: &ImageOptions,
) -> Result<Manifest, DistroError> {
    let types = types_of(image_types)?;
    let plan = plan(bp, image_types)?;
    if options.size.is_some()
        && let Some(t) = types.iter().find(|t| !t.format.from_disk())
    {
        return Err(DistroError::Invalid(format!(
            "image type {:?} has no disk, so it cannot take an image size: leave the size \
             out, or build {:?} apart from the disk types",
            t.name, t.name
        )));
    }

    let mut m = Manifest::new();
    m.metadata.generator = format!("kiln-distro {}", env!("CARGO_PKG_VERSION"));
    let labels = &mut m.metadata.labels;
    labels.insert("blueprint".into(), bp.name.clone());
    if let Some(v) = &bp.version {
        labels.insert("blueprint-version".into(), v.clone());
    }
    labels.insert("distro".into(), distro.to_owned());
    labels.insert("arch".into(), arch.to_owned());
    labels.insert(
        "image-types".into(),
        types.iter().map(|t| t.name).collect::<Vec<_>>().join(","),
    );
    let seed = format!("{}:{distro}:{arch}", bp.name);
    let pipeline = |name: &str, build: Option<&str>, stages: Vec<Stage>| Pipeline {
        name: name.to_owned(),
        build: build.map(str::to_owned),
        source_epoch: Some(source_epoch),
        stages,
    };

    if plan.build.is_some() {
        if resolved.build.is_empty() {
            return Err(DistroError::MissingSet("the build root".into()));
        }
        let refs = add_sources(&mut m, &resolved.build)?;
        m.pipelines
            .push(pipeline("build", None, vec![deb_install(arch, refs)]));
    }

    let layout = layout::Layout::new(bp, &seed, "")?;
    for variant in plan.os.keys() {
        let pkgs = resolved
            .os
            .get(variant)
            .ok_or_else(|| DistroError::MissingSet(variant.pipeline().into()))?;
        let refs = add_sources(&mut m, pkgs)?;
        let first = types
            .iter()
            .find(|t| t.os == *variant)
            .map_or("", |t| t.name);
        let mut stages = os_stages(bp, *variant, arch, refs, &layout)?;
        stages.extend(customize::os_customization(bp, first, variant.bootable())?.stages);
        m.pipelines.push(pipeline(variant.pipeline(), None, stages));
    }

    for t in &types {
        let os = t.os.pipeline();
        match t.format {
            Format::Tar => {
                m.pipelines.push(pipeline(
                    t.name,
                    None,
                    vec![Stage {
                        kind: "archive.tar".into(),
                        options: json!({ "filename": t.filename }),
                        inputs: tree_input(os),
                    }],
                ));
                m.exports.push(export(t.name, t.filename, t.mime));
            }
            Format::Oci | Format::Iso => {
                let stage = image_types::tree_image_stage(bp, t, os, arch, &seed);
                let build = (t.format == Format::Iso).then_some("build");
                m.pipelines.push(pipeline(t.name, build, vec![stage]));
                m.exports.push(export(t.name, t.filename, t.mime));
            }
            Format::Raw | Format::Convert(_) | Format::Ova | Format::TarGz => {
                let disk = format!("{}-disk", t.name);
                let raw_name = if t.format == Format::Raw {
                    t.filename
                } else {
                    "disk.raw"
                };
                m.pipelines.push(pipeline(
                    &disk,
                    Some("build"),
                    vec![disk_stage(
                        raw_name,
                        options.size.unwrap_or(t.default_size),
                        os,
                        &layout,
                    )],
                ));
                if let Format::Convert(fmt) = t.format {
                    let mut options =
                        json!({ "source": "disk.raw", "filename": t.filename, "format": fmt });
                    if fmt == "vpc" {
                        options["uuid"] = json!(ids::uuid(&seed, &format!("vhd-{}", t.name)));
                    }
                    if fmt == "vmdk" {
                        options["cid"] = json!(image_types::vmdk_cid(&seed));
                    }
                    m.pipelines.push(pipeline(
                        t.name,
                        Some("build"),
                        vec![Stage {
                            kind: "image.convert".into(),
                            options,
                            inputs: tree_input(&disk),
                        }],
                    ));
                    m.exports.push(export(t.name, t.filename, t.mime));
                } else if t.format == Format::Raw {
                    m.exports.push(export(&disk, t.filename, t.mime));
                } else {
                    let stage = image_types::disk_image_stage(bp, t, &disk, &seed);
                    m.pipelines
                        .push(pipeline(t.name, Some("build"), vec![stage]));
                    m.exports.push(export(t.name, t.filename, t.mime));
                }
            }
        }
    }
    m.validate()
        .map_err(|e| DistroError::Invalid(e.to_string()))?;
    Ok(m)
}

fn export(pipeline: &str, filename: &str, mime: &str) -> Export {
    Export {
        pipeline: pipeline.into(),
        filename: filename.into(),
        mime: mime.into(),
    }
}

fn tree_input(pipeline: &str) -> BTreeMap<String, Input> {
    BTreeMap::from([(
        "tree".to_owned(),
        Input::Pipeline {
            name: pipeline.into(),
        },
    )])
}

fn deb_install(arch: &str, refs: Vec<String>) -> Stage {
    Stage {
        kind: "deb.install".into(),
        options: json!({ "arch": arch }),
        inputs: BTreeMap::from([("packages".to_owned(), Input::Sources { refs })]),
    }
}

/// Adds `packages` to the manifest's sources; returns their keys in name order.
fn add_sources(m: &mut Manifest, packages: &[ResolvedPackage]) -> Result<Vec<String>, DistroError> {
    let mut sorted: Vec<&ResolvedPackage> = packages.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name).then(a.version.cmp(&b.version)));
    let mut refs = Vec::with_capacity(sorted.len());
    for p in sorted {
        let hex = p.sha256.to_ascii_lowercase();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DistroError::Package {
                name: p.name.clone(),
                message: format!("invalid sha256 {:?}", p.sha256),
            });
        }
        let key = format!("sha256:{hex}");
        m.sources.insert(
            key.clone(),
            SourceItem {
                urls: vec![p.url.clone()],
                size: p.size,
            },
        );
        refs.push(key);
    }
    Ok(refs)
}

fn os_stages(
    bp: &Blueprint,
    variant: OsVariant,
    arch: &str,
    refs: Vec<String>,
    layout: &layout::Layout,
) -> Result<Vec<Stage>, DistroError> {
    let stage = |kind: &str, options: serde_json::Value| Stage {
        kind: kind.into(),
        options,
        inputs: BTreeMap::new(),
    };
    let c = bp.customizations.as_ref();
    let mut s = vec![deb_install(arch, refs)];
    if variant.bootable() {
        s.push(stage("initramfs", json!({})));
        s.push(stage(
            "system.bootable",
            json!({ "dhcp": true, "ssh_host_keys": "firstboot" }),
        ));
    }
    // A live system's root is the medium's squashfs and its GRUB is on the medium.
    if variant.bootable() && variant != OsVariant::Live {
        let cmdline = format!("ro {}", kernel_cmdline(bp));
        s.push(stage("fstab", json!({ "entries": layout.fstab_entries() })));
        s.push(stage("grub.config", layout.grub_options(&cmdline)));
    }
    if let Some(h) = c.and_then(|c| c.hostname.as_ref()) {
        s.push(stage("hostname", json!({ "hostname": h })));
    }
    // No tree.normalize stage: the executor normalizes every tree it commits.
    Ok(s)
}

fn disk_stage(filename: &str, size: u64, os: &str, layout: &layout::Layout) -> Stage {
    Stage {
        kind: "disk.image".into(),
        options: layout.disk_options(filename, size),
        inputs: tree_input(os),
    }
}

#[cfg(test)]
mod tests;
