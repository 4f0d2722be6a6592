use super::*;

fn pkg(name: &str, byte: char) -> ResolvedPackage {
    ResolvedPackage {
        name: name.into(),
        version: "1.0-1".into(),
        sha256: byte.to_string().repeat(64),
        url: format!("http://archive.invalid/pool/{name}_1.0-1_amd64.deb"),
        size: 10,
    }
}

fn bp(text: &str) -> Blueprint {
    Blueprint::from_toml_validated(text).unwrap()
}

fn types(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn resolved_for(plan: &Plan) -> Resolved {
    Resolved {
        os: plan
            .os
            .keys()
            .map(|v| (*v, vec![pkg("dash", 'b'), pkg("bash", 'a')]))
            .collect(),
        build: vec![pkg("e2fsprogs", 'c')],
    }
}

fn kinds(m: &Manifest) -> Vec<(String, Vec<String>)> {
    m.pipelines
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.stages.iter().map(|s| s.kind.clone()).collect(),
            )
        })
        .collect()
}

#[test]
fn tar_manifest_shape() {
    let b =
        bp("name = \"t\"\n[[packages]]\nname = \"bash\"\n[customizations]\nhostname = \"box\"\n");
    let t = types(&["tar"]);
    let p = plan(&b, &t).unwrap();
    assert_eq!(p.build, None);
    let m = manifest(
        &b,
        "debian-12",
        "amd64",
        &t,
        &resolved_for(&p),
        1_700_000_000,
    )
    .unwrap();
    assert_eq!(
        kinds(&m),
        [
            (
                "os".to_string(),
                vec!["deb.install".to_string(), "hostname".into()]
            ),
            ("tar".to_string(), vec!["archive.tar".to_string()]),
        ]
    );
    assert_eq!(m.sources.len(), 2);
    match &m.pipelines[0].stages[0].inputs["packages"] {
        Input::Sources { refs } => assert!(refs[0].starts_with("sha256:aaaa")),
        other => panic!("{other:?}"),
    }
    assert!(
        m.pipelines
            .iter()
            .all(|p| p.source_epoch == Some(1_700_000_000))
    );
    assert_eq!(m.exports[0].filename, "root.tar");
    // Same inputs, same bytes (package order does not matter), and a round trip.
    let mut r = resolved_for(&p);
    for v in r.os.values_mut() {
        v.reverse();
    }
    let again = manifest(&b, "debian-12", "amd64", &t, &r, 1_700_000_000).unwrap();
    assert_eq!(m.to_canonical_json(), again.to_canonical_json());
    assert_eq!(Manifest::from_json(&m.to_canonical_json()).unwrap(), m);
}

#[test]
fn disk_types_share_the_os_tree_and_the_build_root() {
    let b = bp(
        "name = \"web\"\n[customizations]\nhostname = \"h\"\n[customizations.kernel]\nappend = \"quiet\"\n",
    );
    let t = types(&["qcow2", "raw", "vhd"]);
    let p = plan(&b, &t).unwrap();
    assert_eq!(
        p.os.keys().copied().collect::<Vec<_>>(),
        [OsVariant::Bootable, OsVariant::Azure]
    );
    assert!(p.os[&OsVariant::Bootable].contains(&DEFAULT_KERNEL.to_string()));
    assert!(p.os[&OsVariant::Azure].contains(&"cloud-init".to_string()));
    assert!(
        p.build
            .as_ref()
            .unwrap()
            .contains(&"grub-pc-bin".to_string())
    );
    let m = manifest(&b, "debian-12", "amd64", &t, &resolved_for(&p), 1).unwrap();
    let names: Vec<String> = kinds(&m).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "build",
            "os-boot",
            "os-azure",
            "qcow2-disk",
            "qcow2",
            "raw-disk",
            "vhd-disk",
            "vhd"
        ]
    );
    let os = &m.pipelines[1];
    let k: Vec<&str> = os.stages.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(
        k,
        [
            "deb.install",
            "initramfs",
            "system.bootable",
            "fstab",
            "grub.config",
            "hostname"
        ]
    );
    assert!(
        os.stages[4].options["cmdline"]
            .as_str()
            .unwrap()
            .ends_with(" quiet")
    );
    let exports: Vec<(&str, &str)> = m
        .exports
        .iter()
        .map(|e| (e.pipeline.as_str(), e.filename.as_str()))
        .collect();
    assert_eq!(
        exports,
        [
            ("qcow2", "disk.qcow2"),
            ("raw-disk", "disk.raw"),
            ("vhd", "disk.vhd")
        ]
    );
    // qcow2 and raw have the same variant and size: the same disk stage (one build).
    let ids = m.stage_ids(|_| Some(1)).unwrap();
    assert_eq!(
        ids[3].stages, ids[5].stages,
        "qcow2-disk and raw-disk differ"
    );
    // The root UUID of fstab is the one the disk stage formats with.
    let root_fs = m.pipelines[3].stages[0].options["partitions"][2]["filesystem"]["uuid"].clone();
    assert_eq!(
        os.stages[3].options["entries"][0]["source"],
        format!("UUID={}", root_fs.as_str().unwrap())
    );
    assert_eq!(os.stages[4].options["root_uuid"], root_fs);
}

#[test]
fn identifiers_depend_on_the_blueprint_not_on_its_hostname() {
    let t = types(&["qcow2"]);
    let a = bp("name = \"a\"\n[customizations]\nhostname = \"one\"\n");
    let a2 = bp("name = \"a\"\n[customizations]\nhostname = \"two\"\n");
    let other = bp("name = \"b\"\n");
    let uuid = |b: &Blueprint| {
        let p = plan(b, &t).unwrap();
        let m = manifest(b, "debian-12", "amd64", &t, &resolved_for(&p), 1).unwrap();
        m.pipelines[1].stages[4].options["root_uuid"].clone()
    };
    assert_eq!(uuid(&a), uuid(&a2));
    assert_ne!(uuid(&a), uuid(&other));
}

#[test]
fn root_minsize_grows_the_disk_and_a_btrfs_disk_is_refused() {
    let b = bp(
        "name = \"t\"\n[[customizations.filesystem]]\nmountpoint = \"/\"\nminsize = \"20 GiB\"\n",
    );
    let t = types(&["qcow2"]);
    let p = plan(&b, &t).unwrap();
    let m = manifest(&b, "debian-12", "amd64", &t, &resolved_for(&p), 1).unwrap();
    let disk = &m.pipelines[2].stages[0].options;
    let root_size = disk["partitions"][2]["size"].as_u64().unwrap();
    assert!(root_size >= 20 << 30, "{root_size}");
    assert_eq!(disk["size"].as_u64().unwrap() % layout::MIB, 0);
    let b = bp(
        "name = \"t\"\n[[customizations.disk.partitions]]\ntype = \"btrfs\"\nminsize = \"4 GiB\"\n[[customizations.disk.partitions.subvolumes]]\nname = \"root\"\nmountpoint = \"/\"\n",
    );
    let e = plan(&b, &t).unwrap_err();
    assert!(e.to_string().contains("btrfs"), "{e}");
}

#[test]
fn unsupported_customizations_and_types_are_errors() {
    let b = bp("name = \"t\"\n[customizations.kernel]\nappend = \"quiet\"\n");
    let e = plan(&b, &types(&["tar"])).unwrap_err();
    assert!(e.to_string().contains("customizations.kernel"), "{e}");
    let e = plan(&bp("name = \"t\"\n"), &types(&["qcow3"])).unwrap_err();
    assert!(matches!(e, DistroError::UnknownImageType(_)));
    assert!(e.to_string().contains("qcow2, raw"), "{e}");
    assert_eq!(
        plan(&bp("name = \"t\"\n"), &[]).unwrap_err(),
        DistroError::NoImageType
    );
}

#[test]
fn kernel_name_replaces_the_default() {
    let b = bp("name = \"t\"\n[customizations.kernel]\nname = \"linux-image-cloud-amd64\"\n");
    let p = plan(&b, &types(&["qcow2"])).unwrap();
    let os = &p.os[&OsVariant::Bootable];
    assert!(os.contains(&"linux-image-cloud-amd64".to_string()));
    assert!(!os.contains(&DEFAULT_KERNEL.to_string()));
}

fn pipeline<'a>(m: &'a Manifest, name: &str) -> &'a Pipeline {
    m.pipelines
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no pipeline {name}"))
}

fn input_of(s: &Stage) -> &str {
    match &s.inputs["tree"] {
        Input::Pipeline { name } => name,
        other => panic!("{other:?}"),
    }
}

#[test]
fn ova_gce_container_iso_manifests() {
    let b = bp(
        "name = \"web\"\n[customizations]\nhostname = \"h\"\n[customizations.kernel]\nappend = \"quiet\"\n",
    );
    let t = types(&["ova", "vmdk", "gce", "iso"]);
    let p = plan(&b, &t).unwrap();
    // The iso's tools join the build root; live-boot the live tree.
    let build = p.build.as_ref().unwrap();
    for tool in ["squashfs-tools", "xorriso", "grub-pc-bin", "mtools"] {
        assert!(build.contains(&tool.to_string()), "{tool}");
    }
    assert!(p.os[&OsVariant::Live].contains(&"live-boot".to_string()));
    assert!(!p.os[&OsVariant::Bootable].contains(&"live-boot".to_string()));
    let m = manifest(&b, "debian-12", "amd64", &t, &resolved_for(&p), 7).unwrap();

    // ova: its own disk, identical to the vmdk's (same variant and size), then the OVA.
    let ids = m.stage_ids(|_| Some(1)).unwrap();
    let id_of = |name: &str| {
        let i = m.pipelines.iter().position(|p| p.name == name).unwrap();
        ids[i].stages.clone()
    };
    assert_eq!(id_of("ova-disk"), id_of("vmdk-disk"));
    let ova = &pipeline(&m, "ova").stages[0];
    assert_eq!(ova.kind, "ova.archive");
    assert_eq!(input_of(ova), "ova-disk");
    assert_eq!(pipeline(&m, "ova").build.as_deref(), Some("build"));
    assert_eq!(ova.options["name"], "web");
    assert_eq!(ova.options["firmware"], "efi");
    assert_eq!(ova.options["cid"].as_str().unwrap().len(), 8);
    assert_eq!(
        pipeline(&m, "ova-disk").stages[0].options["filename"],
        "disk.raw"
    );

    // gce: a 20 GiB disk named disk.raw, packed by archive.targz.
    let gce_disk = &pipeline(&m, "gce-disk").stages[0].options;
    assert_eq!(gce_disk["size"], 20u64 << 30);
    assert_eq!(gce_disk["filename"], "disk.raw");
    let gce = &pipeline(&m, "gce").stages[0];
    assert_eq!(
        (gce.kind.as_str(), input_of(gce)),
        ("archive.targz", "gce-disk")
    );
    assert_eq!(gce.options["source"], "disk.raw");

    // iso: the live tree has no fstab and no grub.config; the medium gets the cmdline.
    let live = pipeline(&m, "os-live");
    let k: Vec<&str> = live.stages.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(
        k,
        ["deb.install", "initramfs", "system.bootable", "hostname"]
    );
    let iso = &pipeline(&m, "iso").stages[0];
    assert_eq!((iso.kind.as_str(), input_of(iso)), ("iso.live", "os-live"));
    assert_eq!(pipeline(&m, "iso").build.as_deref(), Some("build"));
    let cmdline = iso.options["cmdline"].as_str().unwrap();
    assert!(
        cmdline.starts_with("boot=live ") && cmdline.ends_with(" quiet"),
        "{cmdline}"
    );
    assert!(cmdline.contains("console=ttyS0,115200n8"), "{cmdline}");
    let volid = iso.options["volume_id"].as_str().unwrap();
    assert!(volid.len() <= 32 && volid.starts_with("KILN_"), "{volid}");

    let exports: Vec<(&str, &str, &str)> = m
        .exports
        .iter()
        .map(|e| (e.pipeline.as_str(), e.filename.as_str(), e.mime.as_str()))
        .collect();
    assert_eq!(
        exports,
        [
            ("ova", "image.ova", "application/ovf"),
            ("vmdk", "disk.vmdk", "application/x-vmdk"),
            ("gce", "image.tar.gz", "application/gzip"),
            ("iso", "live.iso", "application/x-iso9660-image"),
        ]
    );
    // The identifiers come from the blueprint: the same manifest again.
    let again = manifest(&b, "debian-12", "amd64", &t, &resolved_for(&p), 7).unwrap();
    assert_eq!(m.to_canonical_json(), again.to_canonical_json());
}

#[test]
fn container_shares_the_plain_tree_and_needs_no_build_root() {
    let b = bp("name = \"c\"\nversion = \"2.0.0\"\n[customizations]\nhostname = \"h\"\n");
    let t = types(&["tar", "container"]);
    let p = plan(&b, &t).unwrap();
    assert_eq!(p.build, None);
    assert_eq!(p.os.keys().copied().collect::<Vec<_>>(), [OsVariant::Plain]);
    assert!(!p.os[&OsVariant::Plain].contains(&DEFAULT_KERNEL.to_string()));
    let m = manifest(&b, "debian-12", "amd64", &t, &resolved_for(&p), 7).unwrap();
    let names: Vec<String> = kinds(&m).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["os", "tar", "container"]);
    let c = &pipeline(&m, "container");
    assert_eq!(c.build, None);
    let s = &c.stages[0];
    assert_eq!((s.kind.as_str(), input_of(s)), ("oci.archive", "os"));
    assert_eq!(s.options["architecture"], "amd64");
    assert_eq!(
        s.options["labels"]["org.opencontainers.image.version"],
        "2.0.0"
    );
    assert_eq!(m.exports[1].filename, "container.tar");
}

#[test]
fn customizations_the_new_types_cannot_take_are_refused() {
    let refused = |text: &str, ty: &str, what: &str| {
        let e = plan(&bp(text), &types(&[ty])).unwrap_err();
        assert!(
            matches!(&e, DistroError::Unsupported { image_type, .. } if image_type == ty),
            "{ty}: {e}"
        );
        assert!(e.to_string().contains(what), "{ty}: {e}");
    };
    let append = "name = \"t\"\n[customizations.kernel]\nappend = \"quiet\"\n";
    let fs =
        "name = \"t\"\n[[customizations.filesystem]]\nmountpoint = \"/\"\nminsize = \"20 GiB\"\n";
    let services = "name = \"t\"\n[customizations.services]\nenabled = [\"ssh.service\"]\n";
    refused(append, "container", "customizations.kernel");
    refused(fs, "container", "customizations.filesystem");
    refused(services, "container", "services");
    refused(fs, "iso", "customizations.filesystem");
    refused(
        "name = \"t\"\n[[customizations.disk.partitions]]\ntype = \"plain\"\nmountpoint = \"/\"\nminsize = \"4 GiB\"\nfs_type = \"ext4\"\n",
        "iso",
        "customizations.disk",
    );
    // What they can take is not refused.
    for ty in ["iso", "ova", "gce"] {
        plan(&bp(append), &types(&[ty])).unwrap();
        plan(&bp(services), &types(&[ty])).unwrap();
    }
    for ty in ["ova", "gce"] {
        plan(&bp(fs), &types(&[ty])).unwrap();
    }
}

/// The disk stage's options and the OS pipeline's fstab and grub.config of `b` as `t`.
fn disk_of(b: &Blueprint, t: &str) -> (serde_json::Value, serde_json::Value, serde_json::Value) {
    let t = types(&[t]);
    let p = plan(b, &t).unwrap();
    let m = manifest(b, "debian-12", "amd64", &t, &resolved_for(&p), 1).unwrap();
    let os = m.pipelines.iter().find(|p| p.name == "os-boot").unwrap();
    let opt = |kind: &str| {
        os.stages
            .iter()
            .find(|s| s.kind == kind)
            .unwrap()
            .options
            .clone()
    };
    let disk = m
        .pipelines
        .iter()
        .find(|p| p.name.ends_with("-disk"))
        .unwrap()
        .stages[0]
        .options
        .clone();
    (disk, opt("fstab"), opt("grub.config"))
}

fn names_sizes(disk: &serde_json::Value) -> Vec<(String, u64, u64)> {
    disk["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["start"].as_u64().unwrap(),
                p["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn targets(fstab: &serde_json::Value) -> Vec<(String, String, u64)> {
    fstab["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["target"].as_str().unwrap().to_owned(),
                e["type"].as_str().unwrap().to_owned(),
                e["passno"].as_u64().unwrap(),
            )
        })
        .collect()
}

const M: u64 = 1 << 20;
const G: u64 = 1 << 30;

#[test]
fn the_default_layout_is_unchanged() {
    let (disk, fstab, grub) = disk_of(&bp("name = \"t\"\n"), "qcow2");
    assert_eq!(
        names_sizes(&disk),
        [
            ("bios".into(), M, M),
            ("esp".into(), 2 * M, 200 * M),
            ("root".into(), 202 * M, 10 * G - 203 * M)
        ]
    );
    assert_eq!(
        targets(&fstab),
        [
            ("/".into(), "ext4".into(), 1),
            ("/boot/efi".into(), "vfat".into(), 2)
        ]
    );
    // No root= override and no separate /boot: GRUB finds the root by UUID.
    assert!(grub.get("root").is_none() && grub.get("boot_uuid").is_none());
    assert_eq!(
        disk["partitions"][2]["filesystem"]["uuid"],
        grub["root_uuid"]
    );
}

#[test]
fn extra_mountpoints_become_logical_volumes_with_auto_lvm() {
    let b = bp(
        "name = \"t\"\n[[customizations.filesystem]]\nmountpoint = \"/var\"\nminsize = \"2 GiB\"\n\
         [[customizations.filesystem]]\nmountpoint = \"/home/data\"\nminsize = \"100 MiB\"\n",
    );
    let p = plan(&b, &types(&["qcow2"])).unwrap();
    assert!(p.os[&OsVariant::Bootable].contains(&"lvm2".to_string()));
    let (disk, fstab, grub) = disk_of(&b, "qcow2");
    assert_eq!(
        names_sizes(&disk),
        [
            ("bios".into(), M, M),
            ("esp".into(), 2 * M, 200 * M),
            ("lvm".into(), 202 * M, 10 * G - 203 * M)
        ]
    );
    let vg = &disk["partitions"][2]["lvm"];
    assert_eq!(vg["name"], "rootvg");
    assert_eq!(disk["partitions"][2]["type"], layout::LVM_TYPE);
    let lvs: Vec<(&str, u64, &str)> = vg["logical_volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap(),
                l["size"].as_u64().unwrap(),
                l["filesystem"]["mountpoint"].as_str().unwrap(),
            )
        })
        .collect();
    // Root: osbuild's 1 GiB for / and 2 GiB for /usr; 100 MiB is clamped to 1 GiB.
    assert_eq!(
        lvs,
        [
            ("rootlv", 3 * G, "/"),
            ("varlv", 2 * G, "/var"),
            ("home_datalv", G, "/home/data")
        ]
    );
    assert_eq!(
        targets(&fstab),
        [
            ("/".into(), "ext4".into(), 1),
            ("/var".into(), "ext4".into(), 2),
            ("/boot/efi".into(), "vfat".into(), 2),
            ("/home/data".into(), "ext4".into(), 2)
        ]
    );
    assert_eq!(grub["root"], "/dev/mapper/rootvg-rootlv");
    // fstab's UUIDs are the ones the disk stage formats with.
    assert_eq!(
        fstab["entries"][1]["source"],
        format!(
            "UUID={}",
            vg["logical_volumes"][1]["filesystem"]["uuid"]
                .as_str()
                .unwrap()
        )
    );
}

#[test]
fn raw_mode_makes_partitions_and_the_disk_grows_to_fit() {
    let b = bp(
        "name = \"t\"\n[customizations]\npartitioning_mode = \"raw\"\n\
         [[customizations.filesystem]]\nmountpoint = \"/var\"\nminsize = \"20 GiB\"\n\
         [[customizations.filesystem]]\nmountpoint = \"/srv\"\nminsize = 1500000000\n",
    );
    let p = plan(&b, &types(&["qcow2"])).unwrap();
    assert!(!p.os[&OsVariant::Bootable].contains(&"lvm2".to_string()));
    let (disk, fstab, grub) = disk_of(&b, "qcow2");
    // 1.5 GB rounds up to 1431 MiB; the root comes last, at least 3 GiB, to the end.
    let srv = 1_500_000_000u64.div_ceil(M) * M;
    assert_eq!(srv, 1431 * M);
    let root_start = 202 * M + 20 * G + srv;
    let size = root_start + 3 * G + M;
    assert_eq!(disk["size"].as_u64().unwrap(), size);
    assert_eq!(
        names_sizes(&disk),
        [
            ("bios".into(), M, M),
            ("esp".into(), 2 * M, 200 * M),
            ("var".into(), 202 * M, 20 * G),
            ("srv".into(), 202 * M + 20 * G, srv),
            ("root".into(), root_start, 3 * G)
        ]
    );
    assert!(disk["partitions"].as_array().unwrap().iter().all(|p| {
        p["start"].as_u64().unwrap() % M == 0 && p["size"].as_u64().unwrap() % M == 0
    }));
    assert_eq!(disk["partitions"][2]["type"], layout::DATA_TYPE);
    assert_eq!(targets(&fstab).len(), 4);
    assert!(grub.get("root").is_none());
    // A small default size grows too (raw image, same layout).
    let (raw, _, _) = disk_of(&b, "raw");
    assert_eq!(raw["size"].as_u64().unwrap(), size);
}

#[test]
fn partitioning_modes_decide_lvm_as_osbuild_does() {
    let mode = |m: &str, extra: bool| {
        let mut t = format!("name = \"t\"\n[customizations]\npartitioning_mode = \"{m}\"\n");
        t.push_str("[[customizations.filesystem]]\nmountpoint = \"/\"\nminsize = \"5 GiB\"\n");
        if extra {
            t.push_str(
                "[[customizations.filesystem]]\nmountpoint = \"/opt\"\nminsize = \"1 GiB\"\n",
            );
        }
        let (disk, _, _) = disk_of(&bp(&t), "qcow2");
        disk["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.get("lvm").is_some())
    };
    assert!(!mode("auto-lvm", false));
    assert!(mode("auto-lvm", true));
    assert!(mode("lvm", false));
    assert!(!mode("raw", true));
    // The root LV takes the root's minimum size; the VG holds it and its 1 MiB header.
    let (disk, _, _) = disk_of(
        &bp(
            "name = \"t\"\n[customizations]\npartitioning_mode = \"lvm\"\n[[customizations.filesystem]]\nmountpoint = \"/\"\nminsize = \"12 GiB\"\n",
        ),
        "qcow2",
    );
    let vg = &disk["partitions"][2];
    assert_eq!(
        vg["lvm"]["logical_volumes"][0]["size"].as_u64().unwrap(),
        12 * G
    );
    assert_eq!(vg["size"].as_u64().unwrap(), 12 * G + M);
    assert_eq!(disk["size"].as_u64().unwrap(), 202 * M + 12 * G + M + M);
}

#[test]
fn disk_customization_plain_lvm_and_swap() {
    let b = bp(r#"name = "t"
[[customizations.disk.partitions]]
type = "plain"
mountpoint = "/boot"
fs_type = "ext4"
label = "boot"
minsize = "500 MiB"
part_uuid = "6a4d0d8a-2f4c-4b6e-9c3a-1d2e3f405162"

[[customizations.disk.partitions]]
type = "lvm"
minsize = "1 GiB"

[[customizations.disk.partitions.logical_volumes]]
mountpoint = "/var/log"
fs_type = "ext4"
minsize = "1000 MiB"

[[customizations.disk.partitions.logical_volumes]]
fs_type = "swap"
minsize = "512 MiB"

[[customizations.disk.partitions]]
type = "plain"
fs_type = "vfat"
mountpoint = "/data"
minsize = "64 MiB"
part_type = "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"
"#);
    let (disk, fstab, grub) = disk_of(&b, "qcow2");
    let ns = names_sizes(&disk);
    let names: Vec<&str> = ns.iter().map(|(n, _, _)| n.as_str()).collect();
    // The ESP is added; the volume group gets the root LV (none was asked) and goes last.
    assert_eq!(names, ["bios", "esp", "boot", "data", "lvm"]);
    assert_eq!(ns[2], ("boot".into(), 202 * M, 500 * M));
    assert_eq!(ns[3], ("data".into(), 702 * M, 64 * M));
    assert_eq!(ns[4].1, 766 * M);
    let parts = &disk["partitions"];
    assert_eq!(parts[2]["uuid"], "6a4d0d8a-2f4c-4b6e-9c3a-1d2e3f405162");
    assert_eq!(parts[2]["type"], layout::XBOOTLDR_TYPE);
    assert_eq!(parts[3]["type"], "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7");
    let vg = &parts[4]["lvm"];
    assert_eq!(vg["name"], "vg00");
    let lvs: Vec<(&str, u64)> = vg["logical_volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["name"].as_str().unwrap(), l["size"].as_u64().unwrap()))
        .collect();
    // 1000 MiB is 250 extents; the root LV gets the 3 GiB it needs.
    assert_eq!(
        lvs,
        [
            ("var_loglv", 1000 * M),
            ("swaplv", 512 * M),
            ("rootlv", 3 * G)
        ]
    );
    assert!(vg["logical_volumes"][1]["swap"]["uuid"].is_string());
    assert_eq!(
        targets(&fstab),
        [
            ("/".into(), "ext4".into(), 1),
            ("/boot".into(), "ext4".into(), 2),
            ("/data".into(), "vfat".into(), 2),
            ("/boot/efi".into(), "vfat".into(), 2),
            ("/var/log".into(), "ext4".into(), 2),
            ("none".into(), "swap".into(), 0)
        ]
    );
    assert_eq!(grub["root"], "/dev/mapper/vg00-rootlv");
    assert_eq!(grub["boot_uuid"], parts[2]["filesystem"]["uuid"]);
}

#[test]
fn disk_customization_without_lvm_adds_a_root_partition() {
    let b = bp(
        "name = \"t\"\n[customizations.disk]\nminsize = \"20 GiB\"\n\
         [[customizations.disk.partitions]]\nmountpoint = \"/home\"\nfs_type = \"ext4\"\nminsize = \"2 GiB\"\n",
    );
    let p = plan(&b, &types(&["qcow2"])).unwrap();
    assert!(!p.os[&OsVariant::Bootable].contains(&"lvm2".to_string()));
    let (disk, _, grub) = disk_of(&b, "qcow2");
    assert_eq!(disk["size"].as_u64().unwrap(), 20 * G);
    let ns = names_sizes(&disk);
    assert_eq!(ns[2], ("home".into(), 202 * M, 2 * G));
    assert_eq!(
        ns[3],
        ("root".into(), 202 * M + 2 * G, 20 * G - 203 * M - 2 * G)
    );
    assert_eq!(disk["partitions"][3]["type"], layout::ROOT_TYPE);
    assert!(grub.get("root").is_none());
}

#[test]
fn layouts_kiln_cannot_make_are_refused_by_name() {
    let refused = |text: &str, want: &str| {
        let e = plan(&bp(text), &types(&["qcow2"])).unwrap_err();
        assert!(matches!(e, DistroError::Unsupported { .. }), "{e}");
        assert!(e.to_string().contains(want), "{e}");
    };
    refused(
        "name = \"t\"\n[[customizations.disk.partitions]]\nmountpoint = \"/data\"\nfs_type = \"xfs\"\nminsize = \"1 GiB\"\n",
        "customizations.disk.partitions[0]: fs_type \"xfs\"",
    );
    refused(
        "name = \"t\"\n[customizations.disk]\ntype = \"dos\"\n[[customizations.disk.partitions]]\nmountpoint = \"/data\"\nfs_type = \"ext4\"\nminsize = \"1 GiB\"\n",
        "customizations.disk.type \"dos\"",
    );
    refused(
        "name = \"t\"\n[customizations.disk]\nsector_size = 4096\n",
        "customizations.disk.sector_size 4096",
    );
    // Not a disk: a tar has no layout to honour.
    let b = bp(
        "name = \"t\"\n[[customizations.filesystem]]\nmountpoint = \"/var\"\nminsize = \"1 GiB\"\n",
    );
    let e = plan(&b, &types(&["tar"])).unwrap_err();
    assert!(e.to_string().contains("customizations.filesystem"), "{e}");
}

#[test]
fn lvm_ids_and_names_are_lvm_shaped_and_stable() {
    let b = bp("name = \"t\"\n[customizations]\npartitioning_mode = \"lvm\"\n");
    let (d1, _, _) = disk_of(&b, "qcow2");
    let (d2, _, _) = disk_of(&b, "raw");
    let vg = &d1["partitions"][2]["lvm"];
    for id in [
        &vg["uuid"],
        &vg["pv_uuid"],
        &vg["logical_volumes"][0]["uuid"],
    ] {
        let id = id.as_str().unwrap();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|c| c.is_ascii_alphanumeric()), "{id}");
    }
    assert_ne!(vg["uuid"], vg["pv_uuid"]);
    assert_eq!(vg, &d2["partitions"][2]["lvm"]);
    assert_eq!(layout::lv_name("/var/lib/pgsql"), "var_lib_pgsqllv");
}

#[test]
fn a_requested_size_sets_the_disk_but_never_shrinks_the_layout() {
    let sized = |b: &Blueprint, t: &[&str], size: u64| {
        let t = types(t);
        let p = plan(b, &t).unwrap();
        let options = ImageOptions { size: Some(size) };
        manifest_with(b, "debian-12", "amd64", &t, &resolved_for(&p), 1, &options)
    };
    let disk_size = |m: &Manifest| {
        let disk = m
            .pipelines
            .iter()
            .find(|p| p.name.ends_with("-disk"))
            .unwrap();
        disk.stages[0].options["size"].as_u64().unwrap()
    };
    let plain = bp("name = \"t\"\n");
    // Rounded up to a MiB; smaller than the type's default is allowed.
    let m = sized(&plain, &["qcow2"], (5 << 30) + 1).unwrap();
    assert_eq!(disk_size(&m), (5 << 30) + layout::MIB);
    // The layout's minimum wins over a request that is too small.
    let big_root = bp(
        "name = \"t\"\n[[customizations.filesystem]]\nmountpoint = \"/\"\nminsize = \"20 GiB\"\n",
    );
    let m = sized(&big_root, &["raw"], 1 << 30).unwrap();
    assert!(disk_size(&m) > 20 << 30, "{}", disk_size(&m));
    // A type without a disk refuses a size instead of ignoring it.
    let e = sized(&plain, &["qcow2", "tar"], 8 << 30).unwrap_err();
    assert!(
        e.to_string().contains("\"tar\"") && e.to_string().contains("size"),
        "{e}"
    );
}
