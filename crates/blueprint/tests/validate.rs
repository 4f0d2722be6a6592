//! Validation: each rule rejects a bad value with a message naming the field (and, for TOML,
//! the line), and accepts the corresponding good value.

mod common;

use common::{data, valid_toml};
use kiln_blueprint::{Blueprint, BlueprintError};

/// Validation errors of a TOML blueprint that parses.
fn problems(src: &str) -> Vec<BlueprintError> {
    Blueprint::from_toml(src).unwrap_or_else(|e| panic!("should parse: {e}\n{src}"));
    match Blueprint::from_toml_validated(src) {
        Ok(_) => Vec::new(),
        Err(e) => e.into_vec(),
    }
}

/// Asserts that `src` has a problem at `path` whose message contains `needle`, optionally on
/// `line`; returns the rendered message.
#[track_caller]
fn rejects(src: &str, path: &str, needle: &str, line: Option<usize>) -> String {
    let errs = problems(src);
    let hit = errs
        .iter()
        .find(|e| e.path() == path && e.to_string().contains(needle));
    match hit {
        Some(e) => {
            assert!(matches!(e, BlueprintError::Invalid { .. }), "{e:?}");
            if let Some(l) = line {
                assert_eq!(e.location().map(|x| x.line), Some(l), "line of {e}");
            }
            let shown = e.to_string();
            assert!(shown.contains(path), "message names the field: {shown}");
            shown
        }
        None => panic!(
            "no problem at {path:?} containing {needle:?}; got:\n{}\nsource:\n{src}",
            errs.iter().map(|e| format!("  {e}\n")).collect::<String>()
        ),
    }
}

#[track_caller]
fn accepts(src: &str) {
    let errs = problems(src);
    assert!(
        errs.is_empty(),
        "unexpected problems:\n{}\nsource:\n{src}",
        errs.iter().map(|e| format!("  {e}\n")).collect::<String>()
    );
}

fn bp(rest: &str) -> String {
    format!("name = \"x\"\n{rest}")
}

#[test]
fn corpus_is_valid() {
    for (name, src) in common::toml_corpus() {
        let errs = problems(&src);
        assert!(errs.is_empty(), "{name}: {errs:?}");
    }
    Blueprint::from_json_validated(&data("minimal.json")).unwrap();
}

#[test]
fn blueprint_name() {
    rejects("name = \"\"\n", "name", "empty blueprint name", Some(1));
    let m = rejects("name = \"my image\"\n", "name", "may only contain", Some(1));
    assert!(m.contains("\"my-image\""), "suggests a fix: {m}");
    accepts("name = \"my.image_v2-final\"\n");
}

#[test]
fn version_is_semver() {
    for bad in ["1.0", "v1.0.0", "1.0.0.0", "01.2.3", "latest"] {
        rejects(
            &bp(&format!("version = \"{bad}\"\n")),
            "version",
            "Semantic Versioning",
            Some(2),
        );
    }
    for good in ["0.0.1", "1.2.3-rc.1+build.5", ""] {
        accepts(&bp(&format!("version = \"{good}\"\n")));
    }
}

#[test]
fn package_entries_need_names() {
    let m = rejects(
        &bp("[[packages]]\nname = \"bash\"\n[[packages]]\nname = \"\"\nversion = \"1.*\"\n"),
        "packages[1].name",
        "entry #2 has version \"1.*\" but no name",
        Some(5),
    );
    assert!(m.contains("need to contain the name"), "{m}");
    rejects(
        &bp("[[modules]]\nname = \" \"\n"),
        "modules[0].name",
        "no name",
        None,
    );
    rejects(
        &bp("[[groups]]\nname = \"\"\n"),
        "groups[0].name",
        "no name",
        None,
    );
    rejects(
        &bp("[[enabled_modules]]\nname = \"nodejs\"\n"),
        "enabled_modules[0].stream",
        "stream is required",
        None,
    );
    rejects(
        &bp("[[containers]]\nsource = \"\"\n"),
        "containers[0].source",
        "image reference",
        None,
    );
}

#[test]
fn users_and_groups() {
    rejects(
        &bp("[[customizations.user]]\nname = \"Bad Name\"\n"),
        "customizations.user[0].name",
        "not valid",
        Some(3),
    );
    rejects(
        &bp("[[customizations.user]]\nname = \"a\"\n[[customizations.user]]\nname = \"a\"\n"),
        "customizations.user[1].name",
        "defined twice",
        Some(5),
    );
    rejects(
        &bp("[[customizations.user]]\nname = \"a\"\nhome = \"home/a\"\n"),
        "customizations.user[0].home",
        "absolute path",
        Some(4),
    );
    rejects(
        &bp("[[customizations.user]]\nname = \"a\"\nuid = -1\n"),
        "customizations.user[0].uid",
        "out of range",
        None,
    );
    rejects(
        &bp("[[customizations.user]]\nname = \"a\"\ngroups = [\"ok\", \"not ok\"]\n"),
        "customizations.user[0].groups[1]",
        "group name \"not ok\"",
        None,
    );
    rejects(
        &bp(
            "[[customizations.group]]\nname = \"g\"\ngid = 10\n[[customizations.group]]\nname = \"g\"\ngid = 11\n",
        ),
        "customizations.group[1].name",
        "duplicate group name \"g\"",
        Some(6),
    );
    rejects(
        &bp(
            "[[customizations.group]]\nname = \"a\"\ngid = 10\n[[customizations.group]]\nname = \"b\"\ngid = 10\n",
        ),
        "customizations.group[1].gid",
        "duplicate gid 10",
        Some(7),
    );
    rejects(
        &bp("[[customizations.group]]\nname = \"\"\n"),
        "customizations.group[0].name",
        "required",
        None,
    );
    rejects(
        &bp("[[customizations.sshkey]]\nuser = \"root\"\nkey = \"\"\n"),
        "customizations.sshkey[0].key",
        "empty key",
        None,
    );
}

#[test]
fn hostname_timezone_locale() {
    rejects(
        &bp("[customizations]\nhostname = \"bad_host!\"\n"),
        "customizations.hostname",
        "not valid",
        Some(3),
    );
    accepts(&bp("[customizations]\nhostname = \"a-1.b\"\n"));
    for bad in [
        "Berlin",
        "europe/berlin",
        "Europe/",
        "CET/x/y/z",
        "Europe/Ber lin",
    ] {
        rejects(
            &bp(&format!(
                "[customizations.timezone]\ntimezone = \"{bad}\"\n"
            )),
            "customizations.timezone.timezone",
            "Area/City",
            Some(3),
        );
    }
    for good in [
        "UTC",
        "Europe/Berlin",
        "America/Argentina/Buenos_Aires",
        "Etc/GMT-3",
        "US/Eastern",
    ] {
        accepts(&bp(&format!(
            "[customizations.timezone]\ntimezone = \"{good}\"\n"
        )));
    }
    rejects(
        &bp("[customizations.locale]\nlanguages = [\"\"]\n"),
        "customizations.locale.languages[0]",
        "empty language",
        None,
    );
}

#[test]
fn firewall_ports() {
    for bad in [
        "22",
        "22:tcpx",
        "0:tcp",
        "70000:udp",
        "100-10:tcp",
        "ssh service:tcp",
        "-5:tcp",
    ] {
        rejects(
            &bp(&format!(
                "[customizations.firewall]\nports = [\"22:tcp\", \"{bad}\"]\n"
            )),
            "customizations.firewall.ports[1]",
            "firewall port",
            Some(3),
        );
    }
    accepts(&bp(
        "[customizations.firewall]\nports = [\"22:tcp\", \"53:udp\", \"1-65535:sctp\", \"imap:tcp\", \"http-alt:dccp\"]\n",
    ));
}

#[test]
fn services_conflict() {
    rejects(
        &bp("[customizations.services]\nenabled = [\"a\", \"b\"]\nmasked = [\"b\"]\n"),
        "customizations.services.enabled[1]",
        "both enabled and disabled",
        Some(3),
    );
}

#[test]
fn filesystem_rules() {
    let fs = |mp: &str, size: &str| {
        bp(&format!(
            "[[customizations.filesystem]]\nmountpoint = \"{mp}\"\n{size}\n"
        ))
    };
    rejects(
        &fs("/var", "minsize = \"1 GiB\"\nsize = \"1 GiB\""),
        "customizations.filesystem[0].size",
        "cannot both be set",
        Some(5),
    );
    rejects(
        &fs("/var", ""),
        "customizations.filesystem[0].minsize",
        "minsize is required",
        Some(2),
    );
    rejects(
        &fs("/var", "minsize = 0"),
        "customizations.filesystem[0].minsize",
        "greater than 0",
        Some(4),
    );
    rejects(
        &fs("/var", "size = \"0 MiB\""),
        "customizations.filesystem[0].size",
        "greater than 0",
        None,
    );
    for (mp, needle) in [
        ("var", "absolute"),
        ("/var/", "not a canonical path (did you mean \"/var\"?)"),
        ("/var/../etc", "canonical"),
        ("/etc", "/etc and paths below it are reserved"),
        ("/proc/x", "/proc"),
        ("/usr/local", "only /usr itself"),
        ("/var/run", "/var/run"),
        ("/lost+found", "/lost+found"),
    ] {
        rejects(
            &fs(mp, "minsize = 1"),
            "customizations.filesystem[0].mountpoint",
            needle,
            Some(3),
        );
    }
    for mp in [
        "/",
        "/usr",
        "/var",
        "/home",
        "/boot",
        "/srv/data",
        "/etcetera",
    ] {
        accepts(&fs(mp, "minsize = \"1 GiB\""));
    }
    rejects(
        &bp(
            "[[customizations.filesystem]]\nmountpoint = \"/v\"\nminsize = 1\n[[customizations.filesystem]]\nmountpoint = \"/v\"\nminsize = 2\n",
        ),
        "customizations.filesystem[1].mountpoint",
        "duplicate mountpoint",
        None,
    );
    rejects(
        &bp(
            "[[customizations.filesystem]]\nmountpoint = \"/v\"\nminsize = 1\n[customizations.disk]\n",
        ),
        "customizations.disk",
        "cannot be used together",
        None,
    );
}

fn disk(table: &str, parts: &str) -> String {
    bp(&format!("[customizations.disk]\n{table}\n{parts}"))
}

const PLAIN_ROOT: &str = "[[customizations.disk.partitions]]\nminsize = \"5 GiB\"\nmountpoint = \"/\"\nfs_type = \"ext4\"\n";

#[test]
fn disk_table_rules() {
    rejects(
        &disk("type = \"mbr\"", PLAIN_ROOT),
        "customizations.disk.type",
        "use \"gpt\" or \"dos\"",
        None,
    );
    rejects(
        &disk("sector_size = 1000", PLAIN_ROOT),
        "customizations.disk.sector_size",
        "power of 2",
        None,
    );
    accepts(&disk("sector_size = 4096", PLAIN_ROOT));
    rejects(
        &disk("minsize = 0", PLAIN_ROOT),
        "customizations.disk.minsize",
        "greater than 0",
        None,
    );
    let five: String = (0..5)
        .map(|i| format!("[[customizations.disk.partitions]]\nminsize = 1\nmountpoint = \"/p{i}\"\nfs_type = \"xfs\"\n"))
        .collect();
    rejects(
        &disk("type = \"dos\"", &five),
        "customizations.disk.partitions",
        "up to 4 partitions",
        None,
    );
    accepts(&disk("type = \"gpt\"", &five));
}

#[test]
fn disk_partition_rules() {
    let part = |body: &str| {
        disk(
            "type = \"gpt\"",
            &format!("[[customizations.disk.partitions]]\nminsize = \"1 GiB\"\n{body}\n"),
        )
    };
    let p0 = "customizations.disk.partitions[0]";
    rejects(
        &part("mountpoint = \"/boot\"\nfs_type = \"vfat\""),
        &format!("{p0}.fs_type"),
        "unsupported filesystem type for \"/boot\"",
        Some(7),
    );
    rejects(
        &part("mountpoint = \"/boot/efi\"\nfs_type = \"ext4\""),
        &format!("{p0}.fs_type"),
        "use vfat",
        None,
    );
    accepts(&part("mountpoint = \"/boot/efi\"\nfs_type = \"vfat\""));
    rejects(
        &part("mountpoint = \"/data\"\nfs_type = \"zfs\""),
        &format!("{p0}.fs_type"),
        "invalid filesystem type",
        None,
    );
    rejects(
        &part("mountpoint = \"/data\""),
        &format!("{p0}.fs_type"),
        "fs_type is required",
        None,
    );
    rejects(
        &part("fs_type = \"ext4\""),
        &format!("{p0}.mountpoint"),
        "mountpoint is required",
        None,
    );
    rejects(
        &part("mountpoint = \"/sys\"\nfs_type = \"ext4\""),
        &format!("{p0}.mountpoint"),
        "reserved",
        Some(6),
    );
    rejects(
        &part("mountpoint = \"/data/\"\nfs_type = \"ext4\""),
        &format!("{p0}.mountpoint"),
        "canonical",
        None,
    );
    rejects(
        &part("fs_type = \"swap\"\nmountpoint = \"/swap\""),
        &format!("{p0}.mountpoint"),
        "must be empty",
        None,
    );
    rejects(
        &disk(
            "",
            "[[customizations.disk.partitions]]\nminsize = 0\nmountpoint = \"/\"\nfs_type = \"xfs\"\n",
        ),
        &format!("{p0}.minsize"),
        "greater than 0",
        Some(5),
    );
    rejects(
        &part("mountpoint = \"/\"\nfs_type = \"xfs\"\npart_type = \"83\""),
        &format!("{p0}.part_type"),
        "GUID",
        None,
    );
    rejects(
        &part("mountpoint = \"/\"\nfs_type = \"xfs\"\npart_uuid = \"nope\""),
        &format!("{p0}.part_uuid"),
        "UUID",
        None,
    );
    rejects(
        &part(&format!(
            "mountpoint = \"/\"\nfs_type = \"xfs\"\npart_label = \"{}\"",
            "x".repeat(37)
        )),
        &format!("{p0}.part_label"),
        "too long",
        None,
    );
    let dos = disk(
        "type = \"dos\"",
        "[[customizations.disk.partitions]]\nminsize = 1\nmountpoint = \"/\"\nfs_type = \"xfs\"\npart_label = \"root\"\npart_type = \"83\"\n",
    );
    rejects(
        &dos,
        &format!("{p0}.part_label"),
        "not supported for dos",
        None,
    );
    let two = disk("", &format!("{PLAIN_ROOT}{PLAIN_ROOT}"));
    rejects(
        &two,
        "customizations.disk.partitions[1].mountpoint",
        "duplicate mountpoint \"/\"",
        None,
    );
}

#[test]
fn disk_lvm_and_btrfs_rules() {
    let vg = |lvs: &str| {
        format!(
            "[[customizations.disk.partitions]]\ntype = \"lvm\"\nname = \"vg\"\nminsize = \"10 GiB\"\n{lvs}"
        )
    };
    let lv = |body: &str| {
        format!("[[customizations.disk.partitions.logical_volumes]]\nminsize = \"1 GiB\"\n{body}\n")
    };
    let l0 = "customizations.disk.partitions[0].logical_volumes[0]";
    rejects(
        &disk("", &vg(&lv("mountpoint = \"/boot\"\nfs_type = \"xfs\""))),
        &format!("{l0}.mountpoint"),
        "plain partition",
        None,
    );
    rejects(
        &disk("", &vg(&lv("mountpoint = \"/\"\nfs_type = \"btrfs\""))),
        &format!("{l0}.fs_type"),
        "invalid filesystem type",
        None,
    );
    rejects(
        &disk("", &vg(&lv("fs_type = \"swap\"\nmountpoint = \"/x\""))),
        &format!("{l0}.mountpoint"),
        "must be empty",
        None,
    );
    rejects(
        &disk(
            "",
            &vg(&format!(
                "{}{}",
                lv("name = \"a\"\nmountpoint = \"/\"\nfs_type = \"xfs\""),
                lv("name = \"a\"\nmountpoint = \"/v\"\nfs_type = \"xfs\"")
            )),
        ),
        "customizations.disk.partitions[0].logical_volumes[1].name",
        "duplicate LVM logical volume name",
        None,
    );
    rejects(
        &disk("", &vg("")),
        "customizations.disk.partitions[0].logical_volumes",
        "at least one logical volume",
        None,
    );
    rejects(
        &disk(
            "",
            &vg(&lv(
                "name = \"-bad\"\nmountpoint = \"/\"\nfs_type = \"xfs\"",
            )),
        ),
        &format!("{l0}.name"),
        "not valid",
        None,
    );
    let ok_vg = vg(&lv("mountpoint = \"/\"\nfs_type = \"xfs\""));
    rejects(
        &disk("", &format!("{ok_vg}{ok_vg}")),
        "customizations.disk.partitions",
        "multiple LVM volume groups",
        None,
    );

    let btrfs = |subs: &str| {
        format!(
            "[[customizations.disk.partitions]]\ntype = \"btrfs\"\nminsize = \"10 GiB\"\n{subs}"
        )
    };
    let sub = |name: &str, mp: &str| {
        format!(
            "[[customizations.disk.partitions.subvolumes]]\nname = \"{name}\"\nmountpoint = \"{mp}\"\n"
        )
    };
    rejects(
        &disk("", &btrfs("")),
        "customizations.disk.partitions[0].subvolumes",
        "requires subvolumes",
        None,
    );
    rejects(
        &disk(
            "",
            &btrfs(&format!("{}{}", sub("root", "/"), sub("root", "/home"))),
        ),
        "customizations.disk.partitions[0].subvolumes[1].name",
        "duplicate btrfs subvolume name",
        None,
    );
    rejects(
        &disk("", &btrfs(&sub("", "/"))),
        "customizations.disk.partitions[0].subvolumes[0].name",
        "empty name",
        None,
    );
    rejects(
        &disk("", &btrfs(&sub("efi", "/boot/efi"))),
        "customizations.disk.partitions[0].subvolumes[0].mountpoint",
        "vfat plain partition",
        None,
    );
    let ok_btrfs = btrfs(&sub("root", "/"));
    rejects(
        &disk("", &format!("{ok_btrfs}{ok_btrfs}")),
        "customizations.disk.partitions",
        "multiple btrfs volumes",
        None,
    );
    rejects(
        &disk("", &format!("{ok_vg}{}", btrfs(&sub("home", "/home")))),
        "customizations.disk.partitions",
        "cannot be combined",
        None,
    );
}

#[test]
fn partitioning_mode_and_device() {
    for good in ["auto-lvm", "lvm", "raw", ""] {
        accepts(&bp(&format!(
            "[customizations]\npartitioning_mode = \"{good}\"\n"
        )));
    }
    rejects(
        &bp("[customizations]\npartitioning_mode = \"btrfs\"\n"),
        "customizations.partitioning_mode",
        "not supported",
        Some(3),
    );
    rejects(
        &bp("[customizations]\npartitioning_mode = \"LVM\"\n"),
        "customizations.partitioning_mode",
        "invalid partitioning mode",
        Some(3),
    );
    rejects(
        &bp("[customizations]\ninstallation_device = \"sda\"\n"),
        "customizations.installation_device",
        "/dev/sda",
        None,
    );
}

#[test]
fn fdo_openscap_ignition() {
    rejects(
        &bp("[customizations.fdo]\ndiun_pub_key_hash = \"sha256:00\"\n"),
        "customizations.fdo.manufacturing_server_url",
        "requires manufacturing_server_url",
        None,
    );
    rejects(
        &bp(
            "[customizations.fdo]\nmanufacturing_server_url = \"http://a\"\ndiun_pub_key_hash = \"x\"\ndiun_pub_key_insecure = \"true\"\n",
        ),
        "customizations.fdo",
        "exactly one of",
        Some(2),
    );
    rejects(
        &bp("[customizations.fdo]\nmanufacturing_server_url = \"http://a\"\n"),
        "customizations.fdo",
        "(0 set)",
        None,
    );
    rejects(
        &bp("[customizations.openscap]\ndatastream = \"/x\"\n"),
        "customizations.openscap.profile_id",
        "requires profile_id",
        Some(2),
    );
    rejects(
        &bp(
            "[customizations.openscap]\nprofile_id = \"p\"\n[customizations.openscap.tailoring]\n[customizations.openscap.json_tailoring]\nprofile_id = \"q\"\nfilepath = \"/t.json\"\n",
        ),
        "customizations.openscap.json_tailoring",
        "cannot both be set",
        Some(5),
    );
    rejects(
        &bp(
            "[customizations.openscap]\nprofile_id = \"p\"\n[customizations.openscap.json_tailoring]\nprofile_id = \"q\"\nfilepath = \"t.json\"\n",
        ),
        "customizations.openscap.json_tailoring.filepath",
        "absolute",
        None,
    );
    rejects(
        &bp(
            "[customizations.ignition.embedded]\nconfig = \"e30=\"\n[customizations.ignition.firstboot]\nurl = \"http://a\"\n",
        ),
        "customizations.ignition",
        "cannot be used together",
        None,
    );
    rejects(
        &bp("[customizations.ignition.firstboot]\n"),
        "customizations.ignition.firstboot.url",
        "requires a provisioning url",
        None,
    );
    rejects(
        &bp("[customizations.ignition.firstboot]\nurl = \"http://a\"\nempty = true\n"),
        "customizations.ignition.firstboot",
        "mutually exclusive",
        None,
    );
    accepts(&bp("[customizations.ignition.firstboot]\nempty = true\n"));
    rejects(
        &bp("[customizations.ignition.embedded]\n"),
        "customizations.ignition.embedded.config",
        "requires config",
        None,
    );
}

#[test]
fn directories_and_files() {
    let dir = |body: &str| bp(&format!("[[customizations.directories]]\n{body}\n"));
    let file = |body: &str| bp(&format!("[[customizations.files]]\n{body}\n"));
    rejects(
        &dir("path = \"etc/x\""),
        "customizations.directories[0].path",
        "absolute",
        Some(3),
    );
    rejects(
        &dir("path = \"/etc/x/\""),
        "customizations.directories[0].path",
        "canonical",
        Some(3),
    );
    rejects(
        &dir("path = \"/tmp/x\""),
        "customizations.directories[0].path",
        "/tmp",
        Some(3),
    );
    rejects(
        &dir("path = \"/usr/share/x\""),
        "customizations.directories[0].path",
        "/usr",
        None,
    );
    accepts(&dir("path = \"/usr/local/share/x\""));
    rejects(
        &dir("path = \"/\""),
        "customizations.directories[0].path",
        "root directory",
        None,
    );
    rejects(
        &dir("path = \"/etc/x\"\nmode = \"0999\""),
        "customizations.directories[0].mode",
        "octal",
        Some(4),
    );
    rejects(
        &dir("path = \"/etc/x\"\nmode = \"644\"\nuser = \"bad user\""),
        "customizations.directories[0].user",
        "not a valid user name",
        None,
    );
    rejects(
        &dir("path = \"/etc/x\"\ngroup = \"a.b\""),
        "customizations.directories[0].group",
        "not a valid group name",
        None,
    );
    rejects(
        &dir("path = \"/etc/x\"\nuser = -1"),
        "customizations.directories[0].user",
        "out of range",
        None,
    );

    rejects(
        &file("path = \"/etc/passwd\""),
        "customizations.files[0].path",
        "reserved",
        Some(3),
    );
    rejects(
        &file("path = \"/boot/x\""),
        "customizations.files[0].path",
        "/boot",
        None,
    );
    rejects(
        &file("path = \"/etc/x\"\ndata = \"a\"\nuri = \"file:///x\""),
        "customizations.files[0]",
        "cannot both be set",
        Some(2),
    );
    rejects(
        &file("path = \"/etc/x\"\nuri = \"https://x/y\""),
        "customizations.files[0].uri",
        "only file://",
        None,
    );
    rejects(
        &file("path = \"/etc/x\"\nuri = \"file://relative\""),
        "customizations.files[0].uri",
        "absolute path",
        None,
    );
    rejects(
        &file("path = \"/etc/x\"\nmode = \"rw\""),
        "customizations.files[0].mode",
        "octal",
        None,
    );

    rejects(
        &bp(
            "[[customizations.directories]]\npath = \"/etc/x\"\n[[customizations.files]]\npath = \"/etc/x\"\n",
        ),
        "customizations.files[0].path",
        "duplicate files / directory",
        Some(5),
    );
    rejects(
        &bp(
            "[[customizations.files]]\npath = \"/etc/app\"\n[[customizations.files]]\npath = \"/etc/app/conf\"\n",
        ),
        "customizations.files[1].path",
        "which is a file",
        None,
    );
    rejects(
        &bp(
            "[[customizations.files]]\npath = \"/etc/app\"\n[[customizations.directories]]\npath = \"/etc/app/sub/dir\"\n",
        ),
        "customizations.directories[0].path",
        "which is a file",
        None,
    );
    accepts(&bp(
        "[[customizations.directories]]\npath = \"/etc/app\"\n[[customizations.files]]\npath = \"/etc/app/conf\"\ndata = \"x\"\n",
    ));
}

#[test]
fn repositories() {
    let repo = |body: &str| bp(&format!("[[customizations.repositories]]\n{body}\n"));
    rejects(
        &repo("id = \"\"\nbaseurls = [\"http://a/\"]"),
        "customizations.repositories[0].id",
        "ID is required",
        None,
    );
    rejects(
        &repo("id = \"r\""),
        "customizations.repositories[0]",
        "base URL, mirrorlist or metalink is required",
        Some(2),
    );
    rejects(
        &repo("id = \"r\"\nbaseurls = [\"http://a/\"]\nfilename = \"bad name.repo\""),
        "customizations.repositories[0].filename",
        "filename",
        Some(5),
    );
    rejects(
        &repo("id = \"bad/id\"\nbaseurls = [\"http://a/\"]"),
        "customizations.repositories[0].id",
        "filename \"bad/id.repo\"",
        None,
    );
    accepts(&repo(
        "id = \"r\"\nbaseurls = [\"http://a/\"]\nfilename = \"custom\"",
    ));
    rejects(
        &repo("id = \"r\"\nbaseurls = [\"http://a/\"]\ngpgcheck = true"),
        "customizations.repositories[0].gpgkeys",
        "no gpg keys",
        None,
    );
    rejects(
        &repo("id = \"r\"\nbaseurls = [\"http://a/\"]\ngpgkeys = [\"not a key\"]"),
        "customizations.repositories[0].gpgkeys[0]",
        "not a valid URL",
        None,
    );
    rejects(
        &repo("id = \"r\"\nbaseurls = [\"not a url\"]"),
        "customizations.repositories[0].baseurls[0]",
        "not a URL",
        None,
    );
    rejects(
        &bp(
            "[[customizations.repositories]]\nid = \"r\"\nmirrorlist = \"http://m\"\n[[customizations.repositories]]\nid = \"r\"\nmetalink = \"http://m\"\n",
        ),
        "customizations.repositories[1].id",
        "duplicate repository id",
        None,
    );
}

#[test]
fn installer_rules() {
    rejects(
        &bp(
            "[customizations.installer]\nunattended = true\nsudo-nopasswd = [\"a\"]\n[customizations.installer.kickstart]\ncontents = \"text\"\n",
        ),
        "customizations.installer.unattended",
        "not supported when adding custom kickstart",
        Some(3),
    );
    rejects(
        &bp(
            "[customizations.installer]\nsudo-nopasswd = [\"a\"]\n[customizations.installer.kickstart]\ncontents = \"text\"\n",
        ),
        "customizations.installer.sudo-nopasswd",
        "not supported when adding custom kickstart",
        Some(3),
    );
    rejects(
        &bp(
            "[[customizations.user]]\nname = \"a\"\n[customizations.installer.modules]\ndisable = [\"org.fedoraproject.Anaconda.Modules.Users\"]\n",
        ),
        "customizations.installer.modules.disable",
        "Users Anaconda module",
        Some(5),
    );
    accepts(&bp(
        "[customizations.installer.modules]\ndisable = [\"org.fedoraproject.Anaconda.Modules.Users\"]\n",
    ));
}

#[test]
fn cacerts_must_be_pem() {
    rejects(
        &bp("[customizations.cacerts]\npem_certs = [\"hello\"]\n"),
        "customizations.cacerts.pem_certs[0]",
        "no certificate found",
        Some(3),
    );
    rejects(
        &bp(
            "[customizations.cacerts]\npem_certs = [\"-----BEGIN CERTIFICATE-----\\n!!!\\n-----END CERTIFICATE-----\"]\n",
        ),
        "customizations.cacerts.pem_certs[0]",
        "base64",
        None,
    );
    rejects(
        &bp("[customizations.cacerts]\npem_certs = [\"-----BEGIN CERTIFICATE-----\\nAAAA\\n\"]\n"),
        "customizations.cacerts.pem_certs[0]",
        "END CERTIFICATE",
        None,
    );
}

#[test]
fn firstboot_iso_sshd_storage() {
    let script = |body: &str| bp(&format!("[[customizations.firstboot.scripts]]\n{body}\n"));
    rejects(
        &script("type = \"custom\"\ncontents = \"\""),
        "customizations.firstboot.scripts[0].contents",
        "empty contents",
        None,
    );
    rejects(
        &script("type = \"custom\"\nname = \"has space\"\ncontents = \"x\""),
        "customizations.firstboot.scripts[0].name",
        "may only contain",
        Some(4),
    );
    rejects(
        &bp(
            "[[customizations.firstboot.scripts]]\ntype = \"custom\"\nname = \"a\"\ncontents = \"x\"\n[[customizations.firstboot.scripts]]\ntype = \"custom\"\nname = \"a\"\ncontents = \"y\"\n",
        ),
        "customizations.firstboot.scripts[1].name",
        "duplicate firstboot script name",
        Some(8),
    );
    rejects(
        &script("type = \"aap\"\njob_template_url = \"ftp://x\"\nhost_config_key = \"k\""),
        "customizations.firstboot.scripts[0].job_template_url",
        "http(s) URL",
        None,
    );
    rejects(
        &script("type = \"satellite\"\ncommand = \" \""),
        "customizations.firstboot.scripts[0].command",
        "missing command",
        None,
    );
    rejects(
        &script("type = \"satellite\"\ncommand = \"x\"\ncacerts = [\"nope\"]"),
        "customizations.firstboot.scripts[0].cacerts[0]",
        "PEM",
        None,
    );

    rejects(
        &bp("[customizations.iso]\nvolume_id = \"has space\"\n"),
        "customizations.iso.volume_id",
        "invalid volume id",
        Some(3),
    );
    rejects(
        &bp(&format!(
            "[customizations.iso]\nvolume_id = \"{}\"\n",
            "A".repeat(33)
        )),
        "customizations.iso.volume_id",
        "1 to 32",
        None,
    );
    accepts(&bp(
        "[customizations.iso]\nvolume_id = \"Fedora-41.x86_64$1\"\n",
    ));
    rejects(
        &bp("[customizations.sshd]\npermit_root_login = \"maybe\"\n"),
        "customizations.sshd.permit_root_login",
        "not valid",
        Some(3),
    );
    rejects(
        &bp("[customizations.sshd]\nclient_alive_interval = -1\n"),
        "customizations.sshd.client_alive_interval",
        "negative",
        None,
    );
    rejects(
        &bp("[customizations.containers-storage]\ndestination-path = \"/etc/containers\"\n"),
        "customizations.containers-storage.destination-path",
        "reserved",
        Some(3),
    );
}

#[test]
fn all_problems_reported_at_once() {
    let src = "name = \"bad name\"\nversion = \"1\"\n[customizations]\nhostname = \"-\"\npartitioning_mode = \"x\"\n";
    let errs = Blueprint::from_toml_validated(src).unwrap_err();
    assert_eq!(errs.len(), 4, "{errs}");
    let shown = errs.to_string();
    assert!(shown.starts_with("4 problems in blueprint:"), "{shown}");
    let lines: Vec<usize> = errs
        .iter()
        .filter_map(|e| e.location().map(|l| l.line))
        .collect();
    assert_eq!(lines, [1, 2, 4, 5]);
    // Without source text, validate() gives the same problems without locations.
    let bp = Blueprint::from_toml(src).unwrap();
    let plain = bp.validate().unwrap_err();
    assert_eq!(plain.len(), 4);
    assert!(plain.iter().all(|e| e.location().is_none()));
    assert_eq!(
        plain
            .iter()
            .map(|e| e.path().to_owned())
            .collect::<Vec<_>>(),
        errs.iter().map(|e| e.path().to_owned()).collect::<Vec<_>>()
    );
}

#[test]
fn json_validation_names_paths() {
    let errs = Blueprint::from_json_validated(
        r#"{"name":"x","customizations":{"filesystem":[{"mountpoint":"/etc","minsize":"1 GiB"}]}}"#,
    )
    .unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs.errors()[0].path(),
        "customizations.filesystem[0].mountpoint"
    );
    let _ = valid_toml("name = \"ok\"\n");
}
