//! Parsing: every customization of the reference is read from `full.toml`, and malformed input
//! is rejected with the line, column and field path.

mod common;

use common::{data, valid_toml};
use kiln_blueprint::{Blueprint, BlueprintError, FirstbootScript, Owner, PartitionKind, SizeRepr};

const GIB: u64 = 1024 * 1024 * 1024;
const MIB: u64 = 1024 * 1024;

#[test]
fn full_toml_top_level() {
    let bp = valid_toml(&data("full.toml"));
    assert_eq!(bp.name, "web-server");
    assert_eq!(
        bp.description.as_deref(),
        Some("Debian web server with every customization")
    );
    assert_eq!(bp.version.as_deref(), Some("1.2.3"));
    assert_eq!(bp.distro.as_deref(), Some("debian-13"));
    assert_eq!(bp.architecture.as_deref(), Some("x86_64"));
    assert_eq!(bp.packages.len(), 3);
    assert_eq!(bp.packages[0].name, "nginx");
    assert_eq!(bp.packages[0].version.as_deref(), Some("1.26.*"));
    assert_eq!(bp.packages[1].version, None);
    assert_eq!(bp.modules[0].name, "vim");
    assert_eq!(bp.enabled_modules[0].name, "nodejs");
    assert_eq!(bp.enabled_modules[0].stream.as_deref(), Some("22"));
    assert_eq!(bp.groups[0].name, "standard");
    let ct = &bp.containers[0];
    assert_eq!(ct.source, "quay.io/fedora/fedora:latest");
    assert_eq!(ct.name.as_deref(), Some("fedora"));
    assert_eq!(ct.tls_verify, Some(true));
    assert_eq!(ct.local_storage, Some(false));
}

#[test]
fn full_toml_every_customization() {
    let bp = valid_toml(&data("full.toml"));
    let c = bp.customizations.as_ref().expect("customizations");
    assert_eq!(c.hostname.as_deref(), Some("web-01.example.com"));
    assert_eq!(c.installation_device.as_deref(), Some("/dev/sda"));
    assert_eq!(c.partitioning_mode.as_deref(), Some("lvm"));
    assert_eq!(c.fips, Some(false));

    let k = c.kernel.as_ref().unwrap();
    assert_eq!(k.name.as_deref(), Some("linux-image-amd64"));
    assert_eq!(k.append.as_deref(), Some("console=ttyS0 nosmt=force"));

    assert_eq!(c.sshkey[0].user, "root");
    assert!(c.sshkey[0].key.starts_with("ssh-ed25519 "));

    let admin = &c.user[0];
    assert_eq!(admin.name, "admin");
    assert_eq!(admin.description.as_deref(), Some("Administrator account"));
    assert!(admin.password.as_deref().unwrap().starts_with("$6$"));
    assert!(admin.key.is_some());
    assert_eq!(admin.home.as_deref(), Some("/srv/admin/"));
    assert_eq!(admin.shell.as_deref(), Some("/usr/bin/bash"));
    assert_eq!(admin.groups, ["widget", "users", "sudo"]);
    assert_eq!((admin.uid, admin.gid), (Some(1200), Some(1200)));
    assert_eq!(admin.expiredate, Some(20000));
    assert_eq!(admin.force_password_reset, Some(true));
    assert_eq!(
        c.user[1].password.as_deref(),
        Some("correct horse battery staple")
    );

    assert_eq!(c.group[0].name, "widget");
    assert_eq!(c.group[0].gid, Some(1130));
    assert_eq!(c.group[1].gid, None);

    let tz = c.timezone.as_ref().unwrap();
    assert_eq!(tz.timezone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(tz.ntpservers.len(), 2);
    let loc = c.locale.as_ref().unwrap();
    assert_eq!(loc.languages[0], "en_US.UTF-8");
    assert_eq!(loc.keyboard.as_deref(), Some("us"));

    let fw = c.firewall.as_ref().unwrap();
    assert_eq!(fw.ports.len(), 5);
    let fws = fw.services.as_ref().unwrap();
    assert_eq!(fws.enabled, ["ftp", "ntp", "dhcp"]);
    assert_eq!(fws.disabled, ["telnet"]);
    assert_eq!(fw.zones[0].name.as_deref(), Some("trusted"));
    assert_eq!(fw.zones[0].sources, ["192.0.2.0/24"]);

    let sv = c.services.as_ref().unwrap();
    assert_eq!(sv.enabled, ["sshd", "nginx.service"]);
    assert_eq!(sv.disabled, ["postfix"]);
    assert_eq!(sv.masked, ["telnet.socket"]);

    let disk = c.disk.as_ref().unwrap();
    assert_eq!(disk.table_type.as_deref(), Some("gpt"));
    assert_eq!(disk.minsize.as_ref().unwrap().bytes(), 20 * GIB);
    assert_eq!(disk.start_offset.as_ref().unwrap().bytes(), MIB);
    assert_eq!(disk.sector_size, Some(512));
    assert_eq!(disk.partitions.len(), 4);
    let boot = &disk.partitions[0];
    assert_eq!(boot.kind(), PartitionKind::Plain);
    assert_eq!(boot.part_kind.as_deref(), Some("plain"));
    assert_eq!(boot.mountpoint.as_deref(), Some("/boot"));
    assert_eq!(boot.label.as_deref(), Some("boot"));
    assert_eq!(boot.fs_type.as_deref(), Some("ext4"));
    assert_eq!(
        boot.part_type.as_deref(),
        Some("bc13c2ff-59e6-4262-a352-b275fd6f7172")
    );
    assert_eq!(boot.part_label.as_deref(), Some("boot"));
    assert!(boot.part_uuid.is_some());
    assert_eq!(
        disk.partitions[1].part_kind, None,
        "absent type stays absent"
    );
    assert_eq!(disk.partitions[1].kind(), PartitionKind::Plain);
    let swap = &disk.partitions[2];
    assert_eq!(swap.minsize.bytes(), 2 * GIB);
    assert_eq!(swap.minsize.repr(), &SizeRepr::Number);
    assert_eq!(swap.fs_type.as_deref(), Some("swap"));
    let vg = &disk.partitions[3];
    assert_eq!(vg.kind(), PartitionKind::Lvm);
    assert_eq!(vg.name.as_deref(), Some("mainvg"));
    assert_eq!(vg.logical_volumes.len(), 3);
    assert_eq!(vg.logical_volumes[0].mountpoint.as_deref(), Some("/"));
    assert_eq!(vg.logical_volumes[0].label.as_deref(), Some("root"));
    assert_eq!(vg.logical_volumes[1].minsize.bytes(), 5 * GIB / 2);
    assert_eq!(vg.logical_volumes[2].fs_type.as_deref(), Some("swap"));

    let fdo = c.fdo.as_ref().unwrap();
    assert_eq!(
        fdo.manufacturing_server_url.as_deref(),
        Some("http://fdo.example.com:8080")
    );
    assert_eq!(fdo.diun_pub_key_insecure.as_deref(), Some("true"));
    assert_eq!(fdo.di_mfg_string_type_mac_iface.as_deref(), Some("enp2s0"));

    let os = c.openscap.as_ref().unwrap();
    assert!(os.datastream.is_some() && os.policy_id.is_some());
    assert_eq!(
        os.profile_id.as_deref(),
        Some("xccdf_org.ssgproject.content_profile_standard")
    );
    let t = os.tailoring.as_ref().unwrap();
    assert_eq!((t.selected.len(), t.unselected.len()), (1, 1));

    let ign = c.ignition.as_ref().unwrap();
    assert!(ign.embedded.is_none());
    assert_eq!(
        ign.firstboot.as_ref().unwrap().url.as_deref(),
        Some("https://provision.example.com/config.ign")
    );

    let d = &c.directories;
    assert_eq!(d[0].path, "/etc/myapp");
    assert_eq!(d[0].user, Some(Owner::Name("admin".into())));
    assert_eq!(d[0].group, Some(Owner::Name("widget".into())));
    assert_eq!(d[0].mode.as_deref(), Some("0755"));
    assert_eq!(d[0].ensure_parents, Some(true));
    assert_eq!(d[1].user, Some(Owner::Id(1200)));
    assert_eq!(d[1].group, Some(Owner::Id(1130)));

    let f = &c.files;
    assert_eq!(f[0].data.as_deref(), Some("listen = \"0.0.0.0:8080\"\n"));
    assert_eq!(f[1].uri.as_deref(), Some("file:///srv/build/myapp"));
    assert!(f[2].data.is_none() && f[2].uri.is_none());

    let r = &c.repositories[0];
    assert_eq!(r.id, "example");
    assert_eq!(r.name.as_deref(), Some("Example repository"));
    assert_eq!(r.baseurls, ["https://repo.example.com/debian/"]);
    assert_eq!(r.priority, Some(10));
    assert_eq!(
        (r.enabled, r.gpgcheck, r.repo_gpgcheck, r.sslverify),
        (Some(true), Some(true), Some(false), Some(true))
    );
    assert_eq!(r.module_hotfixes, Some(false));
    assert_eq!(r.install_from, Some(true));
    assert_eq!(r.effective_filename(), "example.repo");
    let m = &c.repositories[1];
    assert!(m.mirrorlist.is_some() && m.metalink.is_some());
    assert!(m.gpgkeys[0].starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
    assert_eq!(m.effective_filename(), "mirrors.repo");

    let inst = c.installer.as_ref().unwrap();
    assert_eq!(inst.unattended, Some(true));
    assert_eq!(inst.sudo_nopasswd, ["admin", "%wheel"]);
    let mods = inst.modules.as_ref().unwrap();
    assert_eq!(mods.enable.len(), 1);
    assert_eq!(mods.disable.len(), 1);
    assert_eq!(
        inst.bootloader
            .as_ref()
            .and_then(|b| b.grub2.as_ref())
            .and_then(|g| g.menu_timeout),
        Some(10)
    );
    let fp = &inst
        .payload
        .as_ref()
        .unwrap()
        .flatpaks
        .as_ref()
        .unwrap()
        .force[0];
    assert_eq!(fp.references, ["app/org.gnome.Calculator/x86_64/stable"]);
    assert_eq!(
        fp.registry.as_ref().unwrap().remote_name.as_deref(),
        Some("flathub")
    );

    assert_eq!(
        c.rpm.as_ref().unwrap().import_keys.as_ref().unwrap().files,
        ["/etc/pki/rpm-gpg/RPM-GPG-KEY-example"]
    );
    let rc = c.rhsm.as_ref().unwrap().config.as_ref().unwrap();
    let plugins = rc.dnf_plugins.as_ref().unwrap();
    assert_eq!(plugins.product_id.as_ref().unwrap().enabled, Some(true));
    assert_eq!(
        plugins.subscription_manager.as_ref().unwrap().enabled,
        Some(false)
    );
    let sm = rc.subscription_manager.as_ref().unwrap();
    assert_eq!(sm.rhsm.as_ref().unwrap().manage_repos, Some(false));
    assert_eq!(
        sm.rhsm.as_ref().unwrap().auto_enable_yum_plugins,
        Some(true)
    );
    assert_eq!(sm.rhsmcertd.as_ref().unwrap().auto_registration, Some(true));

    assert_eq!(c.cacerts.as_ref().unwrap().pem_certs.len(), 1);
    assert_eq!(
        c.containers_storage
            .as_ref()
            .unwrap()
            .destination_path
            .as_deref(),
        Some("/var/lib/containers/storage")
    );

    let scripts = &c.firstboot.as_ref().unwrap().scripts;
    assert_eq!(scripts.len(), 3);
    match &scripts[0] {
        FirstbootScript::Custom(s) => {
            assert_eq!(s.name.as_deref(), Some("hello"));
            assert_eq!(s.ignore_failure, Some(true));
            assert_eq!(s.after, ["network-online.target"]);
            assert_eq!(s.before, ["nginx.service"]);
            assert!(s.contents.starts_with("#!/bin/sh\n"));
        }
        other => panic!("expected custom, got {other:?}"),
    }
    match &scripts[1] {
        FirstbootScript::Satellite(s) => {
            assert!(s.command.contains("satellite.example.com"));
            assert_eq!(s.cacerts.len(), 1);
        }
        other => panic!("expected satellite, got {other:?}"),
    }
    match &scripts[2] {
        FirstbootScript::Aap(s) => {
            assert!(s.job_template_url.ends_with("/callback/"));
            assert_eq!(s.host_config_key, "0123456789abcdef");
        }
        other => panic!("expected aap, got {other:?}"),
    }

    assert_eq!(
        c.dnf
            .as_ref()
            .unwrap()
            .config
            .as_ref()
            .unwrap()
            .set_releasever,
        Some(true)
    );
    let iso = c.iso.as_ref().unwrap();
    assert_eq!(iso.application_id.as_deref(), Some("kiln"));
    assert_eq!(iso.publisher.as_deref(), Some("Example Corp"));
    assert_eq!(iso.volume_id.as_deref(), Some("KILN-WEB_1.2.3"));
    let sshd = c.sshd.as_ref().unwrap();
    assert_eq!(sshd.password_authentication, Some(false));
    assert_eq!(sshd.kbd_interactive_authentication, Some(false));
    assert_eq!(sshd.client_alive_interval, Some(300));
    assert_eq!(sshd.permit_root_login.as_deref(), Some("prohibit-password"));
}

#[test]
fn alternatives_parse() {
    let bp = valid_toml(&data("full-alt.toml"));
    let c = bp.customizations.unwrap();
    assert_eq!(c.filesystem.len(), 3);
    assert_eq!(c.filesystem[0].min_size().unwrap().bytes(), 4 * GIB);
    assert!(c.filesystem[1].minsize.is_none());
    assert_eq!(c.filesystem[1].min_size().unwrap().bytes(), GIB);
    assert_eq!(c.filesystem[2].min_size().unwrap().bytes(), 1_500_000_000);
    assert!(c.ignition.unwrap().embedded.unwrap().config.is_some());
    assert!(c.fdo.unwrap().diun_pub_key_hash.is_some());
    assert!(
        c.installer
            .unwrap()
            .kickstart
            .unwrap()
            .contents
            .contains("zerombr")
    );
    assert!(c.openscap.unwrap().json_tailoring.is_some());

    let bp = valid_toml(&data("btrfs.toml"));
    let disk = bp.customizations.unwrap().disk.unwrap();
    assert_eq!(disk.partitions[1].kind(), PartitionKind::Btrfs);
    assert_eq!(disk.partitions[1].subvolumes[1].mountpoint, "/home");
    assert_eq!(disk.partitions[2].fs_type.as_deref(), Some("none"));
}

#[test]
fn json_as_weldr_sends_it() {
    let bp =
        Blueprint::from_json_validated(&data("minimal.json")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bp.name, "from-weldr");
    assert!(bp.modules.is_empty() && bp.enabled_modules.is_empty());
    assert_eq!(bp.distro.as_deref(), Some(""));
    let c = bp.customizations.unwrap();
    assert_eq!(c.user[0].uid, Some(1000));
    assert_eq!(c.filesystem[0].min_size().unwrap().bytes(), 2 * GIB);
    assert_eq!(c.filesystem[1].min_size().unwrap().bytes(), GIB);
    assert_eq!(c.directories[0].user, Some(Owner::Id(1000)));
}

fn parse_err(src: &str) -> (usize, usize, String, String) {
    match Blueprint::from_toml(src) {
        Err(BlueprintError::Parse {
            line,
            column,
            path,
            message,
        }) => (line, column, path, message),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

fn json_err(src: &str) -> (usize, usize, String, String) {
    match Blueprint::from_json(src) {
        Err(BlueprintError::Parse {
            line,
            column,
            path,
            message,
        }) => (line, column, path, message),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn unknown_key_names_line_and_path() {
    let src = "name = \"x\"\n\n[[customizations.user]]\nname = \"a\"\n\n[[customizations.user]]\nname = \"b\"\npasswd = \"secret\"\n";
    let (line, column, path, message) = parse_err(src);
    assert_eq!((line, column), (8, 1));
    assert_eq!(path, "customizations.user[1]");
    assert!(message.contains("unknown field `passwd`"), "{message}");
    assert!(
        message.contains("`password`"),
        "lists the valid keys: {message}"
    );
    let shown = Blueprint::from_toml(src).unwrap_err().to_string();
    assert!(
        shown.starts_with("line 8, column 1: customizations.user[1]: unknown field `passwd`"),
        "{shown}"
    );

    // Top level and deep nesting too.
    let (line, _, path, _) = parse_err("name = \"x\"\nminimal = true\n");
    assert_eq!((line, path.as_str()), (2, ""));
    let (line, _, path, _) =
        parse_err("name = \"x\"\n[customizations.installer.bootloader.grub2]\nmenu_timeout = 5\n");
    assert_eq!(line, 3);
    assert_eq!(path, "customizations.installer.bootloader.grub2");
    // Hyphen vs underscore matters.
    assert!(
        Blueprint::from_toml("name = \"x\"\n[[containers]]\nsource = \"a\"\ntls_verify = true\n")
            .is_err()
    );
    assert!(Blueprint::from_toml("name = \"x\"\n[customizations.containers_storage]\n").is_err());
}

#[test]
fn wrong_type_names_line_and_path() {
    let (line, column, path, message) = parse_err("name = \"x\"\n[customizations]\nhostname = 5\n");
    assert_eq!((line, column), (3, 12));
    assert_eq!(path, "customizations.hostname");
    assert!(message.contains("expected a string"), "{message}");

    let (line, _, path, _) =
        parse_err("name = \"x\"\n[[customizations.user]]\nname = \"a\"\nuid = \"1000\"\n");
    assert_eq!((line, path.as_str()), (4, "customizations.user[0].uid"));

    let (line, _, path, message) =
        parse_err("name = \"x\"\n[[customizations.directories]]\npath = \"/etc/x\"\nuser = true\n");
    assert_eq!(
        (line, path.as_str()),
        (4, "customizations.directories[0].user")
    );
    assert!(
        message.contains("a name (string) or a numeric id"),
        "{message}"
    );

    let (line, _, path, _) = parse_err("name = \"x\"\npackages = \"bash\"\n");
    assert_eq!((line, path.as_str()), (2, "packages"));
}

#[test]
fn missing_required_field() {
    let (_, _, path, message) = parse_err("description = \"no name\"\n");
    assert_eq!(path, "");
    assert!(message.contains("missing field `name`"), "{message}");
    let (line, _, path, message) = parse_err(
        "name = \"x\"\n\n[[customizations.disk.partitions]]\nmountpoint = \"/\"\nfs_type = \"ext4\"\n",
    );
    assert_eq!(line, 3);
    assert_eq!(path, "customizations.disk.partitions[0]");
    assert!(message.contains("minsize"), "{message}");
    let (_, _, path, message) =
        parse_err("name = \"x\"\n[[customizations.repositories]]\nbaseurls = [\"http://a/\"]\n");
    assert_eq!(path, "customizations.repositories[0]");
    assert!(message.contains("missing field `id`"), "{message}");
}

#[test]
fn bad_size_is_a_parse_error() {
    let (line, column, path, message) = parse_err(
        "name = \"x\"\n[[customizations.filesystem]]\nmountpoint = \"/var\"\nminsize = \"10 KB\"\n",
    );
    assert_eq!((line, column), (4, 11));
    assert_eq!(path, "customizations.filesystem[0].minsize");
    assert!(message.contains("unknown unit \"KB\""), "{message}");
    let (_, _, _, message) = parse_err(
        "name = \"x\"\n[[customizations.filesystem]]\nmountpoint = \"/var\"\nminsize = -5\n",
    );
    assert!(message.contains("negative"), "{message}");
}

#[test]
fn partition_keys_depend_on_type() {
    let (line, _, path, message) = parse_err(
        "name = \"x\"\n[[customizations.disk.partitions]]\ntype = \"lvm\"\nminsize = 5\nmountpoint = \"/\"\n",
    );
    assert_eq!(line, 2);
    assert_eq!(path, "customizations.disk.partitions[0]");
    assert!(
        message.contains("`mountpoint` is not allowed in a partition of type \"lvm\""),
        "{message}"
    );
    let (_, _, _, message) = parse_err(
        "name = \"x\"\n[[customizations.disk.partitions]]\nminsize = 5\n[[customizations.disk.partitions.subvolumes]]\nname = \"a\"\nmountpoint = \"/\"\n",
    );
    assert!(message.contains("`subvolumes` is not allowed"), "{message}");
    let (_, _, _, message) = parse_err(
        "name = \"x\"\n[[customizations.disk.partitions]]\ntype = \"zfs\"\nminsize = 5\n",
    );
    assert!(
        message.contains("unknown partition type \"zfs\""),
        "{message}"
    );
}

#[test]
fn firstboot_union_is_strict() {
    let (line, _, path, message) = parse_err(
        "name = \"x\"\n[[customizations.firstboot.scripts]]\ntype = \"custom\"\ncontents = \"x\"\ncommand = \"y\"\n",
    );
    assert_eq!(line, 2);
    assert_eq!(path, "customizations.firstboot.scripts[0]");
    assert!(message.contains("unknown field `command`"), "{message}");
    let (_, _, _, message) =
        parse_err("name = \"x\"\n[[customizations.firstboot.scripts]]\ntype = \"satellite\"\n");
    assert!(message.contains("missing field `command`"), "{message}");
    let (_, _, _, message) =
        parse_err("name = \"x\"\n[[customizations.firstboot.scripts]]\ncontents = \"x\"\n");
    assert!(message.contains("missing field `type`"), "{message}");
    let (line, _, _, message) =
        parse_err("name = \"x\"\n[[customizations.firstboot.scripts]]\ntype = \"ansible\"\n");
    assert_eq!(line, 3);
    assert!(message.contains("unknown variant `ansible`"), "{message}");
}

#[test]
fn syntax_errors_have_positions() {
    let (line, column, path, _) = parse_err("name = \"x\"\n[customizations\n");
    assert_eq!((line, column), (2, 16));
    assert_eq!(path, "");
    let (line, _, _, message) = parse_err("name = \"x\"\nname = \"y\"\n");
    assert_eq!(line, 2);
    assert!(message.contains("duplicate"), "{message}");
}

#[test]
fn json_errors_have_positions() {
    let src = "{\n  \"name\": \"x\",\n  \"customizations\": {\n    \"user\": [{\"name\": \"a\"}, {\"name\": \"b\", \"passwd\": 1}]\n  }\n}";
    let (line, _, path, message) = json_err(src);
    assert_eq!(line, 4);
    assert_eq!(path, "customizations.user[1]");
    assert!(message.contains("unknown field `passwd`"), "{message}");
    assert!(
        !message.contains(" at line "),
        "location is not repeated: {message}"
    );

    let (line, column, path, _) =
        json_err("{\"name\": \"x\",\n\"customizations\": {\"hostname\": 5}}");
    assert_eq!((line, column), (2, 32));
    assert_eq!(path, "customizations.hostname");
    let (_, _, _, message) = json_err("{\"name\": \"x\"} trailing");
    assert!(message.contains("trailing"), "{message}");
    let (_, _, _, message) = json_err("{\"name\": \"x\", \"name\": \"y\"}");
    assert!(message.contains("duplicate field `name`"), "{message}");
    // Go's encoding/json would reject 1000.5 for an int too.
    assert!(
        Blueprint::from_json(
            "{\"name\":\"x\",\"customizations\":{\"user\":[{\"name\":\"a\",\"uid\":1000.5}]}}"
        )
        .is_err()
    );
}

#[test]
fn json_accepts_numbers_and_strings_for_sizes() {
    let bp = Blueprint::from_json(
        r#"{"name":"x","customizations":{"disk":{"minsize":"10 GiB","partitions":[{"minsize":1073741824.0,"mountpoint":"/","fs_type":"xfs"}]}}}"#,
    )
    .unwrap();
    let disk = bp.customizations.unwrap().disk.unwrap();
    assert_eq!(disk.minsize.unwrap().bytes(), 10 * GIB);
    assert_eq!(disk.partitions[0].minsize.bytes(), GIB);
    assert!(
        Blueprint::from_json(
            r#"{"name":"x","customizations":{"filesystem":[{"mountpoint":"/","minsize":1.5}]}}"#
        )
        .is_err()
    );
}

#[test]
fn size_units_through_the_parser() {
    let table: &[(&str, u64)] = &[
        ("\"1 kB\"", 1000),
        ("\"1 KiB\"", 1024),
        ("\"1MB\"", 1_000_000),
        ("\"1 MiB\"", MIB),
        ("\"2 GB\"", 2_000_000_000),
        ("\"2GiB\"", 2 * GIB),
        ("\"1 TB\"", 1_000_000_000_000),
        ("\"1 TiB\"", 1024 * GIB),
        ("\"0.5 GiB\"", GIB / 2),
        ("\"4096\"", 4096),
        ("4096", 4096),
    ];
    for (value, bytes) in table {
        let toml = format!(
            "name = \"x\"\n[[customizations.filesystem]]\nmountpoint = \"/var\"\nminsize = {value}\n"
        );
        let bp = Blueprint::from_toml(&toml).unwrap_or_else(|e| panic!("{value}: {e}"));
        assert_eq!(
            bp.customizations.as_ref().unwrap().filesystem[0]
                .min_size()
                .unwrap()
                .bytes(),
            *bytes,
            "{value}"
        );
        let json = format!(
            "{{\"name\":\"x\",\"customizations\":{{\"filesystem\":[{{\"mountpoint\":\"/var\",\"minsize\":{value}}}]}}}}"
        );
        let bp2 = Blueprint::from_json(&json).unwrap_or_else(|e| panic!("{value}: {e}"));
        assert_eq!(bp, bp2, "TOML and JSON agree for {value}");
    }
    for bad in [
        "\"1 kb\"",
        "\"1 KB\"",
        "\"1 PiB\"",
        "\"1.5\"",
        "\"0.3 GiB\"",
        "\"GiB\"",
        "true",
    ] {
        let toml = format!(
            "name = \"x\"\n[[customizations.filesystem]]\nmountpoint = \"/var\"\nminsize = {bad}\n"
        );
        let e = Blueprint::from_toml(&toml).expect_err(bad);
        assert_eq!(e.path(), "customizations.filesystem[0].minsize", "{bad}");
        assert_eq!(e.location().map(|l| l.line), Some(4), "{bad}");
    }
}
