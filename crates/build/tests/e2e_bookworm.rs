//! End to end: a minimal bookworm (Essential + Priority: required + systemd-sysv) installed
//! twice from the real archive, checked with the tree's own dpkg and apt, and compared
//! after `normalize`; then its initramfs generated with kiln's batched module copy and
//! with initramfs-tools' own, which must give the same bytes.
//!
//! Needs network (the host's apt mirror configuration), root, bubblewrap and the kiln CLI.
//! CI runs it with the other tests; by hand:
//!
//! ```sh
//! KILN_BIN=path/to/kiln KILN_TEST_DEB_CACHE=/var/tmp/kiln-debs \
//!   cargo test -p kiln-build --test e2e_bookworm -- --nocapture
//! ```
//!
//! `KILN_BIN` defaults to `cargo run -q -p kiln-cli --`; `KILN_TEST_DEB_CACHE` keeps the
//! downloaded .debs between runs (they are verified by sha256 every time);
//! `KILN_TEST_KEEP=1` keeps the trees and configure logs for inspection.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

mod common;
use common::{depsolve, download, sha256_file};

use kiln_build::debinstall::{InstallOptions, install, not_installed};
use kiln_build::normalize::normalize;
use kiln_build::stages::StageContext;
use kiln_build::stages::initramfs::{ModuleCopy, generate};
use kiln_sandbox::{Sandbox, TreeMode};

/// bookworm's Essential and Priority: required packages, plus apt, systemd-sysv and a
/// kernel (whose initramfs must be deferred).
const PACKAGES: &str = "base-files,base-passwd,bash,bsdutils,coreutils,dash,debconf,\
    debianutils,diffutils,dpkg,findutils,grep,gzip,hostname,init-system-helpers,libc-bin,\
    login,mawk,ncurses-base,ncurses-bin,perl-base,sed,sysvinit-utils,tar,util-linux,apt,\
    mount,systemd-sysv,linux-image-amd64";

const EPOCH: u64 = 1_700_000_000;

/// path → "type mode uid gid size sha256|target mtime"
fn manifest(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, p: &Path, out: &mut BTreeMap<String, String>) {
        let m = fs::symlink_metadata(p).unwrap();
        let ft = m.file_type();
        let (kind, content) = if ft.is_symlink() {
            (
                "l",
                fs::read_link(p).unwrap().to_string_lossy().into_owned(),
            )
        } else if ft.is_file() {
            ("f", sha256_file(p))
        } else if ft.is_dir() {
            ("d", String::new())
        } else {
            ("o", format!("{:x}", m.rdev()))
        };
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let size = if ft.is_file() { m.size() } else { 0 };
        out.insert(
            rel,
            format!(
                "{kind} {:o} {} {} {size} {content} {}.{:09}",
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
                m.mtime(),
                m.mtime_nsec()
            ),
        );
        if ft.is_dir() {
            for e in fs::read_dir(p).unwrap() {
                walk(root, &e.unwrap().path(), out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn check_in_sandbox(tree: &Path) {
    let sb = Sandbox::new(tree).tree(tree, TreeMode::Chroot);
    let audit = sb.run("dpkg", ["--audit"]).expect("dpkg --audit");
    assert_eq!(
        audit.stdout_str(),
        "",
        "dpkg --audit: {}",
        audit.stderr_str()
    );
    let check = sb.run("apt-get", ["check"]).expect("apt-get check");
    assert!(check.success(), "{}", check.stderr_str());
    eprintln!("apt-get check: {}", check.stdout_str().trim());
    assert!(not_installed(tree).unwrap().is_empty());
    // Daemons were kept from starting only while configuring; the initramfs is left to
    // its own stage and its configuration is as shipped.
    assert!(fs::symlink_metadata(tree.join("usr/sbin/policy-rc.d")).is_err());
    let initrds: Vec<_> = fs::read_dir(tree.join("boot"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        initrds.iter().any(|n| n.starts_with("vmlinuz-")),
        "{initrds:?}"
    );
    assert!(
        !initrds.iter().any(|n| n.starts_with("initrd.img")),
        "{initrds:?}"
    );
    let conf = fs::read_to_string(tree.join("etc/initramfs-tools/update-initramfs.conf")).unwrap();
    assert!(!conf.contains("update_initramfs=no"), "{conf}");
    let verify = sb.run("dpkg", ["--verify"]).expect("dpkg --verify");
    assert_eq!(verify.stdout_str(), "", "dpkg --verify");
}

#[test]
fn minimal_bookworm_installs_cleanly_and_reproducibly() {
    let t = Instant::now();
    let solution = depsolve(PACKAGES);
    eprintln!("depsolve: {:.1}s", t.elapsed().as_secs_f64());

    let tmp = tempfile::tempdir().unwrap();
    let cache = std::env::var_os("KILN_TEST_DEB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("debs"));
    fs::create_dir_all(&cache).unwrap();
    let t = Instant::now();
    let debs = download(&solution, &cache);
    eprintln!(
        "download/verify {} debs: {:.1}s",
        debs.len(),
        t.elapsed().as_secs_f64()
    );

    let opts = InstallOptions {
        source_date_epoch: Some(EPOCH),
        ..InstallOptions::default()
    };
    let mut manifests = Vec::new();
    for round in 0..2 {
        let tree = tmp.path().join(format!("tree{round}"));
        fs::create_dir(&tree).unwrap();
        let t = Instant::now();
        let report = install(&tree, &debs, &opts).unwrap_or_else(|e| panic!("install: {e}"));
        eprintln!(
            "install #{round}: {} packages, {} entries, unpack {:.1}s, configure {:.1}s, total {:.1}s",
            report.packages.len(),
            report.entries,
            report.unpack_time.as_secs_f64(),
            report.configure_time.as_secs_f64(),
            t.elapsed().as_secs_f64()
        );
        fs::write(
            tmp.path().join(format!("log{round}.txt")),
            report.log.join("\n"),
        )
        .unwrap();
        check_in_sandbox(&tree);
        let t = Instant::now();
        normalize(&tree, EPOCH).unwrap();
        eprintln!("normalize #{round}: {:.2}s", t.elapsed().as_secs_f64());
        manifests.push(manifest(&tree));
        // Different wall-clock times for the two rounds.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let (a, b) = (&manifests[0], &manifests[1]);
    let diffs: Vec<String> = a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: {:?} vs {:?}", a.get(k), b.get(k)))
        .collect();
    assert!(
        diffs.is_empty(),
        "{} paths differ:\n{}",
        diffs.len(),
        diffs[..diffs.len().min(40)].join("\n")
    );
    eprintln!("identical trees: {} entries", a.len());

    // The initramfs, with kiln's batched module copy and with initramfs-tools' own
    // functions: the same bytes.
    let mut initrds = Vec::new();
    for (round, copy) in [ModuleCopy::Batched, ModuleCopy::Stock]
        .into_iter()
        .enumerate()
    {
        let tree = tmp.path().join(format!("tree{round}"));
        let t = Instant::now();
        let mut log = Vec::new();
        let mut sink = |line: &str| log.push(line.to_owned());
        let mut ctx = StageContext {
            tree: &tree,
            options: &serde_json::Value::Null,
            inputs: BTreeMap::new(),
            source_epoch: Some(EPOCH),
            bwrap: None,
            build_root: None,
            log: &mut sink,
        };
        generate(&mut ctx, copy)
            .unwrap_or_else(|e| panic!("initramfs {copy:?}: {e}\n{}", log.join("\n")));
        let initrd = fs::read_link(tree.join("initrd.img")).unwrap();
        let bytes = fs::read(tree.join(initrd.strip_prefix("/").unwrap_or(&initrd))).unwrap();
        eprintln!(
            "initramfs {copy:?}: {} bytes, {:.1}s",
            bytes.len(),
            t.elapsed().as_secs_f64()
        );
        assert!(
            !tree
                .join("usr/share/initramfs-tools/conf-hooks.d/zz-kiln-batch-modules")
                .exists(),
            "kiln's conf-hook was left in the tree"
        );
        if copy == ModuleCopy::Batched {
            assert!(
                log.iter().any(|l| l.contains("kiln batches the copies")),
                "bookworm's initramfs-tools should get the batched copy:\n{}",
                log.join("\n")
            );
        }
        initrds.push(bytes);
    }
    assert!(initrds[0].len() > 10 << 20, "an initramfs of MODULES=most");
    assert!(
        initrds[0] == initrds[1],
        "the batched module copy changed the initramfs ({} vs {} bytes)",
        initrds[0].len(),
        initrds[1].len()
    );
    if std::env::var_os("KILN_TEST_KEEP").is_some() {
        eprintln!("trees and logs kept in {}", tmp.keep().display());
    }
}
