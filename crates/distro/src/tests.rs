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
fn root_minsize_grows_the_disk_and_other_mountpoints_are_refused() {
    let b = bp(
        "name = \"t\"\n[[customizations.filesystem]]\nmountpoint = \"/\"\nminsize = \"20 GiB\"\n",
    );
    let t = types(&["qcow2"]);
    let p = plan(&b, &t).unwrap();
    let m = manifest(&b, "debian-12", "amd64", &t, &resolved_for(&p), 1).unwrap();
    let disk = &m.pipelines[2].stages[0].options;
    let root_size = disk["partitions"][2]["size"].as_u64().unwrap();
    assert!(root_size >= 20 << 30, "{root_size}");
    assert_eq!(disk["size"].as_u64().unwrap() % MIB, 0);
    let b = bp(
        "name = \"t\"\n[[customizations.filesystem]]\nmountpoint = \"/var\"\nminsize = \"1 GiB\"\n",
    );
    let e = plan(&b, &t).unwrap_err();
    assert!(e.to_string().contains("/var"), "{e}");
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
