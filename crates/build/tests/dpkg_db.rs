//! The dpkg database written by `install` (without configuring), checked against small
//! packages built with `dpkg-deb --build` and read back with the host's `dpkg-query`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_build::debinstall::{InstallOptions, install, not_installed};

fn have(cmd: &str) -> bool {
    Command::new(cmd).arg("--version").output().is_ok()
}

/// Builds a .deb from `files` (path → content) and control files (name → content).
fn build_deb(
    dir: &Path,
    name: &str,
    control: &str,
    ctl: &[(&str, &str)],
    files: &[(&str, &str)],
) -> PathBuf {
    let src = dir.join(format!("src-{name}"));
    fs::create_dir_all(src.join("DEBIAN")).unwrap();
    fs::write(src.join("DEBIAN/control"), control).unwrap();
    for (n, c) in ctl {
        let p = src.join("DEBIAN").join(n);
        fs::write(&p, c).unwrap();
        if ["preinst", "postinst", "prerm", "postrm", "config"].contains(n) {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    for (p, c) in files {
        let full = src.join(p);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(full, c).unwrap();
    }
    let out = dir.join(format!("{name}.deb"));
    let st = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "--build"])
        .arg(&src)
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    out
}

#[test]
fn database_is_what_dpkg_unpack_leaves() {
    if !have("dpkg-deb") {
        eprintln!("skipped: dpkg-deb not installed");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let a = build_deb(
        work.path(),
        "alpha",
        "Package: alpha\nVersion: 1.0-1\nArchitecture: amd64\nMaintainer: K <k@example.org>\n\
         Essential: yes\nPriority: required\nSection: admin\nHomepage: https://example.org\n\
         Pre-Depends: libbeta\nDescription: test package\n second line\n",
        &[
            ("conffiles", "/etc/alpha.conf\n"),
            (
                "md5sums",
                "d41d8cd98f00b204e9800998ecf8427e  usr/bin/alpha\n",
            ),
            ("preinst", "#!/bin/sh\nexit 0\n"),
            ("postinst", "#!/bin/sh\nexit 0\n"),
            (
                "triggers",
                "interest-noawait /usr/lib/alpha\ninterest alpha-trigger\n",
            ),
        ],
        &[
            ("etc/alpha.conf", "hello\n"),
            ("usr/bin/alpha", ""),
            ("usr/lib/alpha/x", "x"),
        ],
    );
    let b = build_deb(
        work.path(),
        "libbeta",
        "Package: libbeta\nVersion: 2\nArchitecture: amd64\nMulti-Arch: same\n\
         Maintainer: K <k@example.org>\nDescription: lib\n",
        &[("shlibs", "libbeta 2 libbeta (>= 2)\n")],
        &[("usr/lib/x86_64-linux-gnu/libbeta.so.2", "elf")],
    );
    let tree = work.path().join("tree");
    fs::create_dir(&tree).unwrap();
    let opts = InstallOptions {
        configure: false,
        ..InstallOptions::default()
    };
    let report = install(&tree, &[a, b], &opts).unwrap();
    assert_eq!(report.packages, ["alpha", "libbeta"]);

    let db = tree.join("var/lib/dpkg");
    let status = fs::read_to_string(db.join("status")).unwrap();
    assert_eq!(
        status,
        "Package: alpha\nEssential: yes\nStatus: install ok unpacked\nPriority: required\n\
         Section: admin\nMaintainer: K <k@example.org>\nArchitecture: amd64\nVersion: 1.0-1\n\
         Pre-Depends: libbeta\nConffiles:\n /etc/alpha.conf b1946ac92492d2347c6235b4d2611184\n\
         Description: test package\n second line\nHomepage: https://example.org\n\n\
         Package: libbeta\nStatus: install ok unpacked\nMaintainer: K <k@example.org>\n\
         Architecture: amd64\nMulti-Arch: same\nVersion: 2\nDescription: lib\n\n"
    );
    assert_eq!(
        fs::read_to_string(db.join("info/alpha.list")).unwrap(),
        "/.\n/etc\n/etc/alpha.conf\n/usr\n/usr/bin\n/usr/bin/alpha\n/usr/lib\n/usr/lib/alpha\n/usr/lib/alpha/x\n"
    );
    assert!(db.join("info/libbeta:amd64.list").is_file());
    assert!(db.join("info/libbeta:amd64.shlibs").is_file());
    // Generated when the package has none, as dpkg does.
    assert_eq!(
        fs::read_to_string(db.join("info/libbeta:amd64.md5sums")).unwrap(),
        "aab4b125bca447f96d4fe7920863a1ed  usr/lib/x86_64-linux-gnu/libbeta.so.2\n"
    );
    assert!(!db.join("info/alpha.control").exists());
    let mode = |p: &str| fs::metadata(db.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("info/alpha.preinst"), 0o755);
    assert_eq!(mode("info/alpha.postinst"), 0o755);
    assert_eq!(mode("info/alpha.md5sums"), 0o644);
    assert_eq!(mode("info/alpha.conffiles"), 0o644);
    assert_eq!(fs::read_to_string(db.join("info/format")).unwrap(), "1\n");
    assert_eq!(fs::read_to_string(db.join("arch")).unwrap(), "amd64\n");
    for f in ["available", "diversions", "statoverride"] {
        assert_eq!(fs::read(db.join(f)).unwrap(), b"", "{f}");
    }
    assert_eq!(
        fs::read_to_string(db.join("triggers/File")).unwrap(),
        "/usr/lib/alpha alpha/noawait\n"
    );
    assert_eq!(
        fs::read_to_string(db.join("triggers/alpha-trigger")).unwrap(),
        "alpha\n"
    );
    // merged /usr
    assert_eq!(
        fs::read_link(tree.join("bin")).unwrap(),
        Path::new("usr/bin")
    );
    assert_eq!(
        fs::read_to_string(tree.join("etc/alpha.conf")).unwrap(),
        "hello\n"
    );
    assert_eq!(not_installed(&tree).unwrap().len(), 2);

    // The host's dpkg reads the database as we meant it.
    if have("dpkg-query") {
        let out = Command::new("dpkg-query")
            .arg(format!("--admindir={}", db.display()))
            .args(["-W", "-f=${binary:Package} ${Status} ${Conffiles}\n"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "alpha install ok unpacked  /etc/alpha.conf b1946ac92492d2347c6235b4d2611184\n\
             libbeta:amd64 install ok unpacked \n"
        );
        let out = Command::new("dpkg-query")
            .arg(format!("--admindir={}", db.display()))
            .args(["-L", "libbeta"])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("/usr/lib/x86_64-linux-gnu/libbeta.so.2")
        );
    }
}

#[test]
fn symlinked_var_is_refused() {
    if !have("dpkg-deb") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let outside = work.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let tree = work.path().join("tree");
    fs::create_dir(&tree).unwrap();
    std::os::unix::fs::symlink(&outside, tree.join("var")).unwrap();
    let a = build_deb(
        work.path(),
        "a",
        "Package: a\nVersion: 1\nArchitecture: all\nMaintainer: m\nDescription: d\n",
        &[],
        &[("usr/share/a", "a")],
    );
    let opts = InstallOptions {
        configure: false,
        ..InstallOptions::default()
    };
    let e = install(&tree, &[a], &opts).unwrap_err();
    assert!(e.to_string().contains("refusing"), "{e}");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn conffile_md5_never_reads_through_a_symlink_out_of_the_tree() {
    if !have("dpkg-deb") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let host = work.path().join("host-secret");
    fs::write(&host, "secret").unwrap();
    let src = work.path().join("src-evil");
    fs::create_dir_all(src.join("DEBIAN")).unwrap();
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::write(
        src.join("DEBIAN/control"),
        "Package: evil\nVersion: 1\nArchitecture: all\nMaintainer: m\nDescription: d\n",
    )
    .unwrap();
    fs::write(src.join("DEBIAN/conffiles"), "/etc/evil\n").unwrap();
    std::os::unix::fs::symlink(&host, src.join("etc/evil")).unwrap();
    // A package planting a link where kiln writes the database.
    fs::create_dir_all(src.join("var/lib/dpkg/info")).unwrap();
    std::os::unix::fs::symlink(&host, src.join("var/lib/dpkg/info/evil.list")).unwrap();
    std::os::unix::fs::symlink(&host, src.join("var/lib/dpkg/status")).unwrap();
    let deb = work.path().join("evil.deb");
    let st = Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&src)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let tree = work.path().join("tree");
    fs::create_dir(&tree).unwrap();
    let opts = InstallOptions {
        configure: false,
        ..InstallOptions::default()
    };
    install(&tree, &[deb], &opts).unwrap();
    let status = fs::read_to_string(tree.join("var/lib/dpkg/status")).unwrap();
    // The absolute link resolves inside the tree, where nothing is: no hash of the host file.
    assert!(status.contains(" /etc/evil newconffile\n"), "{status}");
    assert_eq!(fs::read_to_string(&host).unwrap(), "secret");
    assert!(tree.join("var/lib/dpkg/info/evil.list").is_file());
}
