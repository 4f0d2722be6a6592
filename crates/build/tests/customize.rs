//! The blueprint customization stages (`groups`, `users`, `timezone`, `locale`,
//! `firewall.nftables`, ...) on a real Debian 12 tree, checked from inside the tree with
//! its own tools (`getent`, `id`, `chage`, `sshd -T`, `nft -c`, `systemctl is-enabled`,
//! `locale -a`, `apt-get update`, `visudo`, `openssl verify`).
//!
//! One tree is installed from the real archive (the host's apt mirror configuration, as in
//! `e2e_bookworm.rs`), then copied with hard links (`cp -al`) for every run: a stage that
//! wrote through a file instead of replacing it would change the shared tree, which the
//! test checks did not happen (that is what a stage's tree sharing inodes with the store
//! would suffer). Every stage runs on two copies; the results must be identical.
//!
//! Needs network, root, bubblewrap and the kiln CLI (CI has them). By hand:
//!
//! ```sh
//! KILN_TEST_DEB_CACHE=/var/tmp/kiln-debs \
//!   cargo test -p kiln-build --test customize -- --nocapture
//! ```
//!
//! `KILN_BIN` defaults to `cargo run -q -p kiln-cli --`; `KILN_TEST_DEB_CACHE` keeps the
//! downloaded .debs between runs; `KILN_TEST_KEEP=1` keeps the trees; `KILN_TEST_TMPDIR`
//! says where they go (default: `/dev/shm` when it has 3 GiB free, else `$TMPDIR`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

mod common;
use common::{depsolve, download, sha256_file};

use kiln_build::debinstall::{InstallOptions, install};
use kiln_build::stages::{self, StageContext};
use kiln_sandbox::{Sandbox, TreeMode};
use serde_json::{Value, json};

const PACKAGES: &str = "base-files,base-passwd,bash,bsdutils,coreutils,dash,debconf,\
    debianutils,diffutils,dpkg,findutils,grep,gzip,hostname,init-system-helpers,libc-bin,\
    login,mawk,ncurses-base,ncurses-bin,perl-base,sed,sysvinit-utils,tar,util-linux,apt,\
    mount,systemd-sysv,passwd,locales,nftables,ca-certificates,openssl,openssh-server,sudo,\
    systemd-timesyncd,tzdata,console-setup,netbase";

const EPOCH: u64 = 1_700_000_000;

/// `openssl passwd -6 -salt kilnsaltkilnsalt 'correct horse'`
const ALICE_HASH: &str = "$6$kilnsaltkilnsalt$vwakT3B6l7ZtRrFTzWPoe7DgkAh4t91yUAHxi55ZSDbNA7pMcZyUvv5KlOJyH16dEOSmUUP509SdtSapswLZU1";
/// `openssl passwd -6 -salt bobsaltbobsalt12 'bob pw'`
const BOB_HASH: &str = "$6$bobsaltbobsalt12$dLojLlV/oeLf3w5wXnDyMzUNbF4ZwgpEifj2hWMsLZhS.cyYAHVcJk1kToJl6MvCrHPfcSmHUP.nrGVa3RCsP1";

const KEY_A: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKilnTestKeyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA alice@laptop";
const KEY_B: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKilnTestKeyBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB alice@desk";
const KEY_ROOT: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKilnTestKeyRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRR admin";

/// A self-signed test CA (`openssl req -x509 -newkey ec ... -subj "/CN=kiln test CA"`),
/// subject hash f7d841b3.
const CA: &str = "-----BEGIN CERTIFICATE-----
MIIBhTCCASugAwIBAgIUUzH/qQKgTsrBcYiFQPstt6yCivUwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMa2lsbiB0ZXN0IENBMCAXDTI2MTIwMTA4MTIzM1oYDzIxMjYx
MTA3MDgxMjMzWjAXMRUwEwYDVQQDDAxraWxuIHRlc3QgQ0EwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAATCXpuGrnrQJY8Sm2Tp/tyniJ8V2hv46LQLH2eNRInUfsqt
TkSrKp4FIicCiernlLLLme2IDWS2eToxVR+UrI9/o1MwUTAdBgNVHQ4EFgQU3c35
72F8QZzTIQ5IzcuK8aJbojUwHwYDVR0jBBgwFoAU3c3572F8QZzTIQ5IzcuK8aJb
ojUwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiB9QSHYmqjg7K8f
CGPHz6x1BCOg+xa19jd6PHoh/fRK6QIhAN7o7kc04t7hg4ybcY35+wQkt1wG8cie
P4V0RQxtW5D9
-----END CERTIFICATE-----
";

/// Throwaway signing key of the flat test repository below (made with gpg's
/// `--faked-system-time 20231114T221320`).
const REPO_KEY: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----

mDMEZVPxABYJKwYBBAHaRw8BAQdAGaziM66lCSaftmUeBZTL6x5Byyg1hmFTk2Ot
qyfgtx60KGtpbG4gdGVzdCByZXBvc2l0b3J5IDx0ZXN0QGtpbG4uaW52YWxpZD6I
kAQTFggAOBYhBMhaBoxFK8Cip1dW2/hd2by0vRwMBQJlU/EAAhsDBQsJCAcCBhUK
CQgLAgQWAgMBAh4BAheAAAoJEPhd2by0vRwMiY8A/09UsS3YkOlRXH/Qc7db/aMV
JV3d13j1xgpaDFyG/8adAQC0dr4WiM8HgYn/lH2s0E53fMxcJGtp5JFnjFuUMnen
CA==
=EgI7
-----END PGP PUBLIC KEY BLOCK-----
";

/// Another key, which signed nothing (Signed-By lists both).
const OTHER_KEY: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----

mDMEZVPxABYJKwYBBAHaRw8BAQdAXCGPm31sUlyE3QW4C+pNMg/X199xCMwqeOmc
7h+2JTy0I2tpbG4gb3RoZXIga2V5IDxvdGhlckBraWxuLmludmFsaWQ+iJAEExYI
ADgWIQTtxCgSQXQZQOMTibHxv8YowphnOQUCZVPxAAIbAwULCQgHAgYVCgkICwIE
FgIDAQIeAQIXgAAKCRDxv8YowphnOcXUAQCzjuLBUodxWbIu8a75PfRLnvwleIgq
bG7xEaS4BIYTwgD8DrdTxG5zkdA2pQMaz2PUtZkkLIgPsRAn1lljQInKJgs=
=dZpH
-----END PGP PUBLIC KEY BLOCK-----
";

const REPO_PACKAGES: &str = "Package: kiln-test-package
Version: 1.0
Architecture: all
Maintainer: kiln <test@kiln.invalid>
Installed-Size: 1
Filename: ./kiln-test-package_1.0_all.deb
Size: 1000
SHA256: 0000000000000000000000000000000000000000000000000000000000000000
Description: a package that exists only in the index

";

const REPO_INRELEASE: &str = "-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA512

Origin: kiln-test
Label: kiln-test
Date: Tue, 14 Nov 2023 22:13:20 UTC
SHA256:
 ce652d9c8898254b743740b0fa106f9c60e77b86965a89e4ef1dea447bd53e03 293 Packages
-----BEGIN PGP SIGNATURE-----

iIgEARYKADAWIQTIWgaMRSvAoqdXVtv4Xdm8tL0cDAUCZVPxABIcdGVzdEBraWxu
LmludmFsaWQACgkQ+F3ZvLS9HAx1fQEAlLVxabxLuKyea3CagVvKA7PJDH0eE0tY
aEJRoWEwFDcBALLb5yr5AwMNys+rJ9r6YEyvJnVZvdBAFFDs0ZWQTWIK
=QDVX
-----END PGP SIGNATURE-----
";

const HELLO_UNIT: &str = "[Unit]\nDescription=kiln test unit\n\n[Service]\nType=oneshot\n\
    ExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n";

/// path → "type mode uid gid size sha256|target [mtime]" (link counts left out: the
/// copies share inodes on purpose).
fn manifest(root: &Path, mtimes: bool) -> BTreeMap<String, String> {
    fn walk(root: &Path, p: &Path, mtimes: bool, out: &mut BTreeMap<String, String>) {
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
        let mut line = format!(
            "{kind} {:o} {} {} {size} {content}",
            m.mode() & 0o7777,
            m.uid(),
            m.gid()
        );
        if mtimes {
            line.push_str(&format!(" {}.{:09}", m.mtime(), m.mtime_nsec()));
        }
        out.insert(rel, line);
        if ft.is_dir() {
            for e in fs::read_dir(p).unwrap() {
                walk(root, &e.unwrap().path(), mtimes, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, mtimes, &mut out);
    out
}

fn diff(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    a.keys()
        .chain(b.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: {:?} vs {:?}", a.get(k), b.get(k)))
        .collect()
}

/// A copy of `base` sharing every file's inode (`cp -al`).
fn link_copy(base: &Path, dest: &Path) {
    let st = Command::new("cp")
        .arg("-al")
        .arg(base)
        .arg(dest)
        .status()
        .unwrap();
    assert!(st.success(), "cp -al");
}

fn run_stage(tree: &Path, kind: &str, options: &Value) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    let mut log = |l: &str| lines.push(l.to_owned());
    let mut ctx = StageContext {
        tree,
        options,
        inputs: BTreeMap::new(),
        source_epoch: Some(EPOCH),
        bwrap: None,
        build_root: None,
        log: &mut log,
    };
    stages::run(kind, &mut ctx)?;
    Ok(lines)
}

fn sandbox(tree: &Path) -> Sandbox {
    Sandbox::new(tree)
        .tree(tree, TreeMode::Chroot)
        .source_date_epoch(EPOCH)
}

/// stdout of `sh -c script` in the tree; panics with its stderr on failure.
fn sh(tree: &Path, script: &str) -> String {
    match sandbox(tree).run("/bin/sh", ["-c", script]) {
        Ok(o) => o.stdout_str(),
        Err(e) => panic!("{script}: {e}"),
    }
}

/// Every stage with options as kiln-distro writes them, in its order.
fn all_stages() -> Vec<(&'static str, Value)> {
    vec![
        (
            "apt.sources",
            json!({"sources": [
                {"filename": "kiln-test", "name": "kiln test repository", "enabled": true,
                 "trusted": false,
                 "stanzas": [{"uris": ["file:///srv/kiln-repo/"], "suites": ["./"], "components": []}],
                 "keys": [OTHER_KEY, REPO_KEY]},
                {"filename": "extra", "enabled": false, "trusted": false,
                 "stanzas": [{"uris": ["https://repo.example/debian/"], "suites": ["bookworm"],
                              "components": ["main", "contrib"]}],
                 "keys": []}
            ]}),
        ),
        ("ca.certificates", json!({"certs": [CA]})),
        ("timezone", json!({"zone": "Europe/Paris"})),
        (
            "timesyncd.ntp",
            json!({"servers": ["ntp1.example.com", "192.0.2.123"]}),
        ),
        (
            "locale",
            json!({"default": "de_DE.UTF-8", "generate": ["de_DE.UTF-8", "en_US.UTF-8", "C.UTF-8"]}),
        ),
        (
            "keyboard",
            json!({"keymap": "de-latin1-nodeadkeys", "layout": "de", "variant": "nodeadkeys"}),
        ),
        (
            "sshd.config",
            json!({"password_authentication": false, "kbd_interactive_authentication": false,
                   "client_alive_interval": 120, "permit_root_login": "prohibit-password"}),
        ),
        (
            "firewall.nftables",
            json!({"ports": [{"from": 8000, "to": 8080, "protocol": "tcp"},
                             {"service": "imap", "protocol": "tcp"},
                             {"from": 53, "to": 53, "protocol": "udp"}],
                   "services": ["ssh", "dhcpv6-client", "http", "https"],
                   "sources": [{"address": "10.0.0.0/8", "action": "accept"},
                               {"address": "192.0.2.0/24", "action": "drop"},
                               {"address": "2001:db8::/32", "action": "reject"}]}),
        ),
        (
            "groups",
            json!({"groups": [{"name": "devs", "gid": 1500},
                              {"name": "wheel", "system": true, "sudo": true}]}),
        ),
        (
            "users",
            json!({"default_shell": "/bin/bash", "users": [
                {"name": "alice", "uid": 1200, "description": "Alice Admin",
                 "groups": ["wheel", "devs", "adm"], "password": ALICE_HASH,
                 "keys": [KEY_A, KEY_B], "expiredate": 30000, "force_password_reset": true},
                {"name": "bob", "gid": 1600, "home": "/srv/bob", "shell": "/bin/sh",
                 "password": BOB_HASH},
                {"name": "root", "password": ALICE_HASH, "keys": [KEY_ROOT]}
            ]}),
        ),
        (
            "directories",
            json!({"directories": [
                {"path": "/srv/data/deep", "mode": "0750", "user": "alice", "group": "devs",
                 "ensure_parents": true},
                {"path": "/srv/bob/shared", "user": 1600, "group": 1600}
            ]}),
        ),
        (
            "files",
            json!({"files": [
                {"path": "/etc/motd", "data": "Built by kiln\n"},
                {"path": "/srv/data/deep/secret", "data": "s3cret\n", "mode": "0600",
                 "user": "alice", "group": "devs"},
                {"path": "/etc/systemd/system/kiln-hello.service", "data": HELLO_UNIT}
            ]}),
        ),
        (
            "firstboot",
            json!({"scripts": [
                {"name": "01-hello", "contents": "#!/bin/sh\necho hello > /var/lib/kiln/hello\n"},
                {"name": "02-fails", "contents": "exit 3\n", "ignore_failure": true},
                {"name": "03-after", "contents": "echo after >> /var/lib/kiln/hello\n"}
            ], "after": ["systemd-timesyncd.service"], "before": []}),
        ),
        (
            "systemd.units",
            json!({"enabled": ["kiln-hello"], "disabled": ["apt-daily.timer"],
                   "masked": ["ctrl-alt-del.target"]}),
        ),
    ]
}

fn apply_all(tree: &Path) -> f64 {
    let t = Instant::now();
    for (kind, options) in all_stages() {
        let s = Instant::now();
        let lines =
            run_stage(tree, kind, &options).unwrap_or_else(|e| panic!("stage {kind} failed: {e}"));
        eprintln!(
            "  {kind}: {:.2}s, {} log line(s)",
            s.elapsed().as_secs_f64(),
            lines.len()
        );
    }
    t.elapsed().as_secs_f64()
}

fn mode_owner(p: &Path) -> (u32, u32, u32) {
    let m = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.mode() & 0o7777, m.uid(), m.gid())
}

fn check_results(t: &Path) {
    // Users and groups, as the tree's own NSS sees them.
    let pw = sh(t, "getent passwd alice bob root");
    let line = |name: &str| -> Vec<String> {
        pw.lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .unwrap_or_else(|| panic!("{name} in {pw}"))
            .split(':')
            .map(str::to_owned)
            .collect()
    };
    let alice = line("alice");
    assert_eq!(alice[2], "1200");
    assert_eq!(alice[4], "Alice Admin");
    assert_eq!(alice[5], "/home/alice");
    assert_eq!(alice[6], "/bin/bash", "default_shell");
    let bob = line("bob");
    assert_eq!(
        (bob[3].as_str(), bob[5].as_str(), bob[6].as_str()),
        ("1600", "/srv/bob", "/bin/sh")
    );
    assert_eq!(sh(t, "getent group bob").trim(), "bob:x:1600:");
    assert_eq!(line("root")[2], "0");
    let groups: BTreeSet<String> = sh(t, "id -nG alice")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    for g in ["alice", "wheel", "devs", "adm"] {
        assert!(groups.contains(g), "alice not in {g}: {groups:?}");
    }
    assert_eq!(sh(t, "getent group devs").trim(), "devs:x:1500:alice");
    let wheel_gid: u32 = sh(t, "getent group wheel")
        .split(':')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert!(wheel_gid < 1000, "wheel is a system group: {wheel_gid}");

    // Passwords and ageing: shadow dated from SOURCE_DATE_EPOCH.
    let shadow = fs::read_to_string(t.join("etc/shadow")).unwrap();
    let sfield = |name: &str| -> Vec<String> {
        shadow
            .lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .unwrap()
            .split(':')
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(sfield("alice")[1], ALICE_HASH);
    assert_eq!(sfield("root")[1], ALICE_HASH);
    assert_eq!(sfield("bob")[1], BOB_HASH);
    assert_eq!(
        sfield("bob")[2],
        (EPOCH / 86400).to_string(),
        "last change from SOURCE_DATE_EPOCH"
    );
    assert_eq!(sfield("alice")[2], "0", "force_password_reset");
    assert_eq!(sfield("alice")[7], "30000", "expiredate");
    let chage = sh(t, "LC_ALL=C chage -l alice");
    assert!(chage.contains("password must be changed"), "{chage}");
    assert!(chage.contains("Feb 20, 2052"), "{chage}");

    // SSH keys.
    let ak = t.join("home/alice/.ssh/authorized_keys");
    assert_eq!(
        fs::read_to_string(&ak).unwrap(),
        format!("{KEY_A}\n{KEY_B}\n")
    );
    assert_eq!(mode_owner(&ak), (0o600, 1200, 1200));
    assert_eq!(mode_owner(&t.join("home/alice/.ssh")), (0o700, 1200, 1200));
    assert_eq!(mode_owner(&t.join("home/alice")).1, 1200);
    assert!(
        t.join("home/alice/.bashrc").is_file(),
        "home from /etc/skel"
    );
    assert_eq!(
        fs::read_to_string(t.join("root/.ssh/authorized_keys")).unwrap(),
        format!("{KEY_ROOT}\n")
    );

    // sudo for wheel, checked by sudo itself.
    sh(t, "visudo -c -q");
    let sudo = sh(t, "sudo -l -U alice");
    assert!(sudo.contains("(ALL : ALL) ALL"), "{sudo}");
    assert_eq!(
        mode_owner(&t.join("etc/sudoers.d/kiln-group-wheel")).0,
        0o440
    );

    // Time zone and NTP.
    assert_eq!(
        fs::read_link(t.join("etc/localtime")).unwrap(),
        Path::new("/usr/share/zoneinfo/Europe/Paris")
    );
    assert_eq!(
        fs::read_to_string(t.join("etc/timezone")).unwrap(),
        "Europe/Paris\n"
    );
    assert_eq!(sh(t, "date -d @1700000000 +%H:%M%Z").trim(), "23:13CET");
    let ntp = fs::read_to_string(t.join("etc/systemd/timesyncd.conf.d/50-kiln.conf")).unwrap();
    assert!(
        ntp.contains("[Time]\nNTP=ntp1.example.com 192.0.2.123\n"),
        "{ntp}"
    );

    // Locales.
    let locales = sh(t, "locale -a");
    for l in ["de_DE.utf8", "en_US.utf8", "C.utf8"] {
        assert!(locales.lines().any(|x| x == l), "{l} not in {locales}");
    }
    assert_eq!(
        sh(t, "LC_ALL=de_DE.UTF-8 date -u -d @1700000000 +%A").trim(),
        "Dienstag"
    );
    assert!(
        fs::read_to_string(t.join("etc/default/locale"))
            .unwrap()
            .starts_with("LANG=de_DE.UTF-8\n")
    );
    let lgen = fs::read_to_string(t.join("etc/locale.gen")).unwrap();
    assert!(lgen.lines().any(|l| l == "de_DE.UTF-8 UTF-8"), "{lgen}");
    assert!(lgen.lines().any(|l| l == "en_US.UTF-8 UTF-8"), "{lgen}");

    // Keyboard.
    let kb = fs::read_to_string(t.join("etc/default/keyboard")).unwrap();
    assert!(
        kb.contains("XKBLAYOUT=\"de\"\n") && kb.contains("XKBVARIANT=\"nodeadkeys\"\n"),
        "{kb}"
    );
    assert!(kb.contains("XKBMODEL="), "other lines kept: {kb}");
    assert_eq!(
        fs::read_to_string(t.join("etc/vconsole.conf")).unwrap(),
        "KEYMAP=de-latin1-nodeadkeys\n"
    );

    // sshd, as sshd itself reads its configuration.
    let sshd = sh(t, "mkdir -p /run/sshd && sshd -t && sshd -T");
    for want in [
        "passwordauthentication no",
        "kbdinteractiveauthentication no",
        "clientaliveinterval 120",
        "permitrootlogin without-password",
    ] {
        assert!(sshd.lines().any(|l| l == want), "{want} not in sshd -T");
    }

    // Firewall: nft parses and checks the ruleset (in the sandbox's own network namespace).
    let nft = sandbox(t)
        .cap_add("CAP_NET_ADMIN")
        .run("nft", ["-c", "-f", "/etc/nftables.conf"]);
    if let Err(e) = nft {
        panic!(
            "nft -c: {e}\n{}",
            fs::read_to_string(t.join("etc/nftables.conf")).unwrap()
        );
    }
    let rules = fs::read_to_string(t.join("etc/nftables.conf")).unwrap();
    assert!(rules.contains("policy drop;"), "{rules}");
    assert!(
        rules.contains("tcp dport { 22, 80, 143, 443, 8000-8080 } accept"),
        "{rules}"
    );
    assert!(
        rules.contains("udp dport { 53, 443, 546 } accept"),
        "{rules}"
    );
    assert!(rules.contains("ip saddr { 192.0.2.0/24 } drop"), "{rules}");
    assert!(
        rules.contains("ip6 saddr { 2001:db8::/32 } reject"),
        "{rules}"
    );

    // Units, as systemctl sees them.
    for (unit, state) in [
        ("nftables.service", "enabled"),
        ("kiln-hello.service", "enabled"),
        ("kiln-firstboot.service", "enabled"),
        ("apt-daily.timer", "disabled"),
        ("ctrl-alt-del.target", "masked"),
        ("systemd-timesyncd.service", "enabled"),
    ] {
        let out = sandbox(t)
            .output("systemctl", ["is-enabled", unit])
            .unwrap();
        assert_eq!(
            out.stdout_str().trim(),
            state,
            "{unit}: {}",
            out.stderr_str()
        );
    }

    // Directories and files.
    assert_eq!(mode_owner(&t.join("srv/data/deep")), (0o750, 1200, 1500));
    assert_eq!(mode_owner(&t.join("srv/data")), (0o755, 0, 0));
    assert_eq!(mode_owner(&t.join("srv/bob/shared")), (0o755, 1600, 1600));
    assert_eq!(
        fs::read_to_string(t.join("srv/data/deep/secret")).unwrap(),
        "s3cret\n"
    );
    assert_eq!(
        mode_owner(&t.join("srv/data/deep/secret")),
        (0o600, 1200, 1500)
    );
    assert_eq!(
        fs::read_to_string(t.join("etc/motd")).unwrap(),
        "Built by kiln\n"
    );
    assert_eq!(mode_owner(&t.join("etc/motd")), (0o644, 0, 0));
    assert_eq!(
        sh(t, "stat -c '%U:%G %a' /srv/data/deep/secret").trim(),
        "alice:devs 600"
    );

    // CA certificates: in the bundle, hashed, and trusted by openssl.
    assert!(
        fs::read_to_string(t.join("etc/ssl/certs/ca-certificates.crt"))
            .unwrap()
            .contains("MIIBhTCCASugAwIBAgIUUzH/qQKgTsrBcYiFQPstt6yCivUwCgYIKoZIzj0EAwIw")
    );
    let verify = sh(
        t,
        "openssl verify -CApath /etc/ssl/certs /usr/local/share/ca-certificates/kiln-1.crt",
    );
    assert!(verify.contains(": OK"), "{verify}");

    // Apt sources.
    let src = fs::read_to_string(t.join("etc/apt/sources.list.d/kiln-test.sources")).unwrap();
    assert!(
        src.contains(
            "URIs: file:///srv/kiln-repo/\nSuites: ./\nSigned-By: /etc/apt/keyrings/kiln-test-1.asc,/etc/apt/keyrings/kiln-test-2.asc\n"
        ),
        "{src}"
    );
    assert_eq!(
        fs::read_to_string(t.join("etc/apt/keyrings/kiln-test-2.asc")).unwrap(),
        REPO_KEY
    );
    let extra = fs::read_to_string(t.join("etc/apt/sources.list.d/extra.sources")).unwrap();
    assert!(
        extra.contains("Components: main contrib\nEnabled: no\n"),
        "{extra}"
    );

    // First boot: the unit and the runner.
    let unit = fs::read_to_string(t.join("etc/systemd/system/kiln-firstboot.service")).unwrap();
    assert!(
        unit.contains("After=network-online.target systemd-timesyncd.service\n"),
        "{unit}"
    );
    assert!(
        unit.contains("ConditionPathExists=!/var/lib/kiln/firstboot-done\n"),
        "{unit}"
    );
    assert_eq!(
        mode_owner(&t.join("usr/local/libexec/kiln-firstboot/scripts/02-fails")).0,
        0o755
    );
}

/// Runs the first-boot runner the way the unit would, twice.
fn check_firstboot_runner(t: &Path) {
    let out = sandbox(t)
        .run("/usr/local/libexec/kiln-firstboot/run", [""; 0])
        .unwrap_or_else(|e| panic!("first boot: {e}"));
    let text = format!("{}{}", out.stdout_str(), out.stderr_str());
    assert!(
        text.contains("02-fails failed with status 3 (ignored)"),
        "{text}"
    );
    assert_eq!(
        fs::read_to_string(t.join("var/lib/kiln/hello")).unwrap(),
        "hello\nafter\n"
    );
    assert!(t.join("var/lib/kiln/firstboot-done").exists());
    // Done scripts do not run again.
    sandbox(t)
        .run("/usr/local/libexec/kiln-firstboot/run", [""; 0])
        .unwrap();
    assert_eq!(
        fs::read_to_string(t.join("var/lib/kiln/hello")).unwrap(),
        "hello\nafter\n"
    );
}

/// `apt-get update` of the flat test repository through the written source and keys.
fn check_apt_update(t: &Path) {
    fs::create_dir_all(t.join("srv/kiln-repo")).unwrap();
    fs::write(t.join("srv/kiln-repo/Packages"), REPO_PACKAGES).unwrap();
    fs::write(t.join("srv/kiln-repo/InRelease"), REPO_INRELEASE).unwrap();
    let out = sh(
        t,
        // apt's _apt user cannot write to the sandbox's /tmp (a root-owned 0755 tmpfs).
        "apt-get update -o APT::Sandbox::User=root -o Dir::Etc::sourcelist=/dev/null \
         -o Dir::Etc::sourceparts=/etc/apt/sources.list.d 2>&1 && \
         apt-cache policy kiln-test-package",
    );
    assert!(out.contains("Candidate: 1.0"), "{out}");
    assert!(out.contains("file:/srv/kiln-repo ./"), "{out}");
}

fn check_errors(base: &Path, c: &Path) {
    link_copy(base, c);
    let err = |kind: &str, options: Value| -> String {
        match run_stage(c, kind, &options) {
            Ok(_) => panic!("{kind} {options} should fail"),
            Err(e) => {
                eprintln!("  expected error from {kind}: {e}");
                e
            }
        }
    };
    let e = err("systemd.units", json!({"enabled": ["kiln-no-such-unit"]}));
    assert!(
        e.contains("\"kiln-no-such-unit.service\"") && e.contains("not installed"),
        "{e}"
    );
    let e = err("systemd.units", json!({"masked": ["nope.target"]}));
    assert!(e.contains("\"nope.target\""), "{e}");
    let e = err("timezone", json!({"zone": "Mars/Olympus"}));
    assert!(e.contains("unknown time zone \"Mars/Olympus\""), "{e}");
    let e = err("timezone", json!({"zone": "../../etc/passwd"}));
    assert!(e.contains("invalid time zone"), "{e}");
    let e = err(
        "locale",
        json!({"default": "xx_YY.UTF-8", "generate": ["xx_YY.UTF-8"]}),
    );
    assert!(e.contains("unknown locale \"xx_YY.UTF-8\""), "{e}");
    let e = err("locale", json!({"generate": ["en_US.utf8"]}));
    assert!(e.contains("did you mean en_US.UTF-8"), "{e}");
    let e = err("keyboard", json!({"keymap": "zz", "layout": "zz"}));
    assert!(e.contains("unknown keyboard layout \"zz\""), "{e}");
    let e = err(
        "users",
        json!({"users": [{"name": "carol", "groups": ["nonexistent"]}]}),
    );
    assert!(e.contains("\"nonexistent\" does not exist"), "{e}");
    let e = err(
        "users",
        json!({"users": [{"name": "carol", "shell": "/bin/zsh"}]}),
    );
    assert!(e.contains("/bin/zsh is not an executable"), "{e}");
    let e = err(
        "users",
        json!({"users": [{"name": "carol", "password": "plain text"}]}),
    );
    assert!(e.contains("crypt"), "{e}");
    let e = err("users", json!({"users": [{"name": "-o"}]}));
    assert!(e.contains("invalid user name"), "{e}");
    let e = err("users", json!({"users": [{"name": "root", "uid": 5}]}));
    assert!(e.contains("changing it to 5"), "{e}");
    let e = err("groups", json!({"groups": [{"name": "root", "gid": 77}]}));
    assert!(e.contains("already exists"), "{e}");
    let e = err("firewall.nftables", json!({"services": ["cockpit"]}));
    assert!(e.contains("unknown firewall service \"cockpit\""), "{e}");
    let e = err(
        "firewall.nftables",
        json!({"sources": [{"address": "10.0.0.0/33", "action": "accept"}]}),
    );
    assert!(e.contains("invalid firewall source"), "{e}");
    let e = err(
        "apt.sources",
        json!({"sources": [{"filename": "x", "stanzas": [{"uris": ["http://a/"], "suites": ["./"]}], "keys": ["https://k.example/key.asc"]}]}),
    );
    assert!(e.contains("ASCII-armored"), "{e}");
    let e = err(
        "ca.certificates",
        json!({"certs": ["-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"]}),
    );
    assert!(e.contains("PRIVATE KEY"), "{e}");
    let e = err(
        "directories",
        json!({"directories": [{"path": "/srv/missing/child"}]}),
    );
    assert!(e.contains("ensure_parents"), "{e}");
    let e = err(
        "files",
        json!({"files": [{"path": "/etc/../etc/passwd", "data": "x"}]}),
    );
    assert!(e.contains("not canonical"), "{e}");
    let e = err(
        "files",
        json!({"files": [{"path": "/etc/x", "user": "nobody-here"}]}),
    );
    assert!(e.contains("\"nobody-here\" does not exist"), "{e}");
    let e = err(
        "firstboot",
        json!({"scripts": [{"name": "a", "contents": "true"}], "after": ["x.service"], "before": ["x.service"]}),
    );
    assert!(e.contains("both after and before"), "{e}");

    // A symlink in the tree that climbs out of it: refused, nothing written on the host.
    let host = std::env::temp_dir().join(format!("kiln-customize-host-{}", std::process::id()));
    fs::create_dir_all(&host).unwrap();
    let ups = "../".repeat(c.components().count() + 2);
    symlink(format!("{ups}{}", host.display()), c.join("srv/escape")).unwrap();
    let e = err(
        "files",
        json!({"files": [{"path": "/srv/escape/owned", "data": "x"}]}),
    );
    assert!(e.contains("above the root"), "{e}");
    let e = err(
        "directories",
        json!({"directories": [{"path": "/srv/escape/d"}]}),
    );
    assert!(e.contains("above the root"), "{e}");
    // An absolute symlink means the tree's path, never the host's; what a dangling one
    // points to is not created (as with `mkdir -p`).
    symlink(&host, c.join("srv/abs")).unwrap();
    let e = err(
        "files",
        json!({"files": [{"path": "/srv/abs/inside", "data": "x"}]}),
    );
    assert!(e.contains("does not exist in the image"), "{e}");
    let rel = host.strip_prefix("/").unwrap();
    fs::create_dir_all(c.join(rel)).unwrap();
    run_stage(
        c,
        "files",
        &json!({"files": [{"path": "/srv/abs/inside", "data": "in the tree\n"}]}),
    )
    .unwrap();
    assert_eq!(
        fs::read_to_string(c.join(rel).join("inside")).unwrap(),
        "in the tree\n"
    );
    // ~/.ssh as a symlink is refused.
    fs::create_dir_all(c.join("home/eve")).unwrap();
    symlink("/etc", c.join("home/eve/.ssh")).unwrap();
    let e = err(
        "users",
        json!({"users": [{"name": "eve", "home": "/home/eve", "keys": [KEY_A]}]}),
    );
    assert!(e.contains("not a directory"), "{e}");
    let leaked: Vec<_> = fs::read_dir(&host).unwrap().collect();
    fs::remove_dir_all(&host).unwrap();
    assert!(leaked.is_empty(), "a stage wrote on the host: {leaked:?}");
}

/// Where the trees go: `KILN_TEST_TMPDIR`, else `/dev/shm` when it has room (a tmpfs:
/// freeing a few hundred MB of small files on a disk mounted with `discard` takes about a
/// minute), else the system's temporary directory.
fn scratch_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KILN_TEST_TMPDIR") {
        return PathBuf::from(d);
    }
    let shm = Path::new("/dev/shm");
    match rustix::fs::statvfs(shm) {
        Ok(st) if st.f_bavail.saturating_mul(st.f_frsize) >= 3 << 30 => shm.to_path_buf(),
        _ => std::env::temp_dir(),
    }
}

#[test]
fn customization_stages_on_a_real_tree() {
    for (kind, _) in all_stages() {
        assert!(
            stages::version(kind).is_some(),
            "{kind} is not in the catalogue"
        );
    }
    let t0 = Instant::now();
    let solution = depsolve(PACKAGES);
    let tmp = tempfile::tempdir_in(scratch_dir()).unwrap();
    // Kept from the start, so that a failure leaves the trees for inspection.
    let (guard, root) = if std::env::var_os("KILN_TEST_KEEP").is_some() {
        let root = tmp.keep();
        eprintln!("trees are kept in {}", root.display());
        (None, root)
    } else {
        let root = tmp.path().to_path_buf();
        (Some(tmp), root)
    };
    let cache = std::env::var_os("KILN_TEST_DEB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("debs"));
    fs::create_dir_all(&cache).unwrap();
    let debs = download(&solution, &cache);
    eprintln!(
        "depsolve + download of {} debs: {:.1}s",
        debs.len(),
        t0.elapsed().as_secs_f64()
    );
    let base = root.join("base");
    fs::create_dir(&base).unwrap();
    let t = Instant::now();
    let opts = InstallOptions {
        source_date_epoch: Some(EPOCH),
        ..InstallOptions::default()
    };
    install(&base, &debs, &opts).unwrap_or_else(|e| panic!("install: {e}"));
    eprintln!("install: {:.1}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let before = manifest(&base, true);
    eprintln!(
        "base snapshot: {} entries, {:.1}s",
        before.len(),
        t.elapsed().as_secs_f64()
    );

    // The same stages on two copies of the same tree: the same result.
    let (a, b) = (root.join("a"), root.join("b"));
    link_copy(&base, &a);
    eprintln!("all stages on copy a:");
    let ta = apply_all(&a);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    link_copy(&base, &b);
    eprintln!("all stages on copy b:");
    let tb = apply_all(&b);
    eprintln!("stages: {ta:.1}s and {tb:.1}s");
    let differ = diff(&manifest(&a, false), &manifest(&b, false));
    assert!(
        differ.is_empty(),
        "{} paths differ between two runs:\n{}",
        differ.len(),
        differ[..differ.len().min(40)].join("\n")
    );
    eprintln!("copies a and b are identical (modes, owners, contents, links)");

    check_results(&a);
    check_firstboot_runner(&a);
    check_apt_update(&a);
    eprintln!(
        "results checked in the tree: {:.1}s",
        t0.elapsed().as_secs_f64()
    );

    check_errors(&base, &root.join("c"));

    // No stage wrote through a hard link into the shared tree.
    let after = manifest(&base, true);
    let changed = diff(&before, &after);
    assert!(
        changed.is_empty(),
        "the shared base tree changed ({} paths):\n{}",
        changed.len(),
        changed[..changed.len().min(40)].join("\n")
    );
    eprintln!(
        "base tree untouched; total {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    drop(guard);
    eprintln!("trees removed: {:.1}s", t.elapsed().as_secs_f64());
}
