//! Behaviour of real sandboxes: bubblewrap and a build root made of a static busybox.
//!
//! Needs root, `bwrap` (`apt-get install -y bubblewrap`) and a static busybox
//! (`apt-get install -y busybox-static`); scripts/install-deps should install both.

use std::collections::BTreeSet;
use std::fs;
use std::io::{ErrorKind, Write};
use std::net::TcpListener;
use std::os::unix::fs::{FileTypeExt, MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kiln_sandbox::{DEFAULT_PATH, Sandbox, SandboxError, Stream, TREE_PATH, TreeMode};

const APPLETS: &[&str] = &[
    "sh", "ls", "cat", "id", "env", "ps", "ip", "hostname", "sleep", "touch", "mkdir", "echo",
    "nc", "stat", "mknod", "chown", "chmod", "grep", "mount", "seq", "true", "false", "head", "wc",
    "test",
];

fn busybox() -> PathBuf {
    assert!(
        Path::new("/usr/bin/bwrap").exists() || Path::new("/bin/bwrap").exists(),
        "bwrap is missing: apt-get install -y bubblewrap"
    );
    ["/usr/bin/busybox", "/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("a static busybox is needed: apt-get install -y busybox-static")
}

/// A merged-/usr root holding only a static busybox and its applet links.
fn make_root(dir: &Path) {
    fs::create_dir_all(dir.join("usr/bin")).unwrap();
    fs::create_dir_all(dir.join("etc")).unwrap();
    fs::copy(busybox(), dir.join("usr/bin/busybox")).unwrap();
    for a in APPLETS {
        symlink("busybox", dir.join("usr/bin").join(a)).unwrap();
    }
    symlink("usr/bin", dir.join("bin")).unwrap();
    symlink("usr/bin", dir.join("sbin")).unwrap();
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    tree: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("buildroot");
    let tree = dir.path().join("tree");
    make_root(&root);
    fs::create_dir_all(tree.join("etc")).unwrap();
    Fixture {
        root,
        tree,
        _dir: dir,
    }
}

impl Fixture {
    fn sandbox(&self) -> Sandbox {
        Sandbox::new(&self.root).tree(&self.tree, TreeMode::BuildRoot)
    }
}

fn sh(sb: &Sandbox, script: &str) -> kiln_sandbox::Output {
    sb.output("sh", ["-c", script]).unwrap()
}

fn lines(s: &str) -> BTreeSet<String> {
    s.lines().map(str::to_owned).collect()
}

#[test]
fn captures_output_exit_status_and_streams_lines_in_order() {
    let f = fixture();
    let sb = f.sandbox();
    let mut seen = Vec::new();
    let out = sb
        .output_streaming(
            "sh",
            ["-c", "echo one; echo two >&2; echo three; exit 3"],
            |s, l| seen.push((s, l.to_owned())),
        )
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(out.stdout_str(), "one\nthree\n");
    assert_eq!(out.stderr_str(), "two\n");
    let stdout: Vec<_> = seen
        .iter()
        .filter(|(s, _)| *s == Stream::Stdout)
        .map(|(_, l)| l.as_str())
        .collect();
    assert_eq!(stdout, ["one", "three"]);
    assert!(seen.contains(&(Stream::Stderr, "two".to_owned())));

    // Many lines, in order.
    let mut n = 0u32;
    let out = sb
        .run_streaming("seq", ["1", "5000"], |s, l| {
            assert_eq!(s, Stream::Stdout);
            n += 1;
            assert_eq!(l, n.to_string());
        })
        .unwrap();
    assert_eq!(n, 5000);
    assert_eq!(
        out.stdout.len(),
        (1..=5000)
            .map(|i: u32| i.to_string().len() + 1)
            .sum::<usize>()
    );

    // Live: the first line arrives while the command is still running, well before the
    // last one (buffered output would bring both together; the margin is for load).
    let start = Instant::now();
    let (mut first, mut second) = (None, None);
    sb.run_streaming(
        "sh",
        ["-c", "echo first; sleep 2; echo second"],
        |_, l| match l {
            "first" => first = Some(start.elapsed()),
            "second" => second = Some(start.elapsed()),
            _ => {}
        },
    )
    .unwrap();
    let (first, second) = (first.unwrap(), second.unwrap());
    assert!(
        second - first >= Duration::from_secs(1),
        "first line at {first:?}, second at {second:?}"
    );

    // run() turns a failure into an error with the end of stderr.
    let e = sb
        .run("sh", ["-c", "echo bad thing happened >&2; exit 7"])
        .unwrap_err();
    match &e {
        SandboxError::Failed { status, output, .. } => {
            assert_eq!(status.code(), Some(7));
            assert_eq!(output.stderr_str(), "bad thing happened\n");
        }
        other => panic!("{other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("bad thing happened") && msg.contains("exit status: 7"),
        "{msg}"
    );
}

#[test]
fn no_network_only_loopback_and_host_listener_unreachable() {
    let f = fixture();
    let out = f.sandbox().run("ip", ["-o", "link"]).unwrap().stdout_str();
    let ifaces: Vec<&str> = out
        .lines()
        .map(|l| l.split(':').nth(1).unwrap().trim())
        .collect();
    assert_eq!(ifaces, ["lo"], "{out}");

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    listener.set_nonblocking(true).unwrap();
    let out = f
        .sandbox()
        .output("nc", ["-w", "2", "127.0.0.1", &port])
        .unwrap();
    assert!(!out.success(), "connected to the host: {out:?}");
    assert_eq!(listener.accept().unwrap_err().kind(), ErrorKind::WouldBlock);

    // Control: with the network shared the same command reaches the listener.
    listener.set_nonblocking(false).unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"hello from host\n").unwrap();
    });
    let out = f
        .sandbox()
        .network(true)
        .timeout(Duration::from_secs(20))
        .output("nc", ["-w", "2", "127.0.0.1", &port])
        .unwrap();
    server.join().unwrap();
    assert!(out.stdout_str().contains("hello from host"), "{out:?}");
}

#[test]
fn host_filesystem_is_invisible_and_build_root_read_only() {
    let f = fixture();
    let sentinel = tempfile::Builder::new()
        .prefix("kiln-sandbox-sentinel")
        .tempfile_in("/tmp")
        .unwrap();
    let name = sentinel
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(Path::new("/tmp").join(&name).exists());
    let sb = f.sandbox();

    assert_eq!(sh(&sb, "ls -A /tmp").stdout_str(), "");
    assert!(!sh(&sb, &format!("cat /tmp/{name}")).success());
    assert!(!sh(&sb, "ls /home").success());
    assert!(
        fs::read_dir("/root").unwrap().next().is_some(),
        "control: host /root has entries"
    );
    assert_eq!(sh(&sb, "ls -A /root").stdout_str(), "");
    // The host's own tools are not there (busybox has no `bash`, the host does).
    assert!(Path::new("/bin/bash").exists());
    assert!(!sh(&sb, "test -e /bin/bash || test -e /usr/bin/bash").success());

    // Exactly the expected mounts, nothing else of the host.
    let mountinfo = sb
        .run("cat", ["/proc/self/mountinfo"])
        .unwrap()
        .stdout_str();
    let points: BTreeSet<&str> = mountinfo
        .lines()
        .map(|l| l.split(' ').nth(4).unwrap())
        .collect();
    let allowed_exact = [
        "/", "/usr", "/etc", "/proc", "/dev", "/tmp", "/run", "/var", "/root", TREE_PATH,
    ];
    for p in &points {
        let ok = allowed_exact.contains(p) || p.starts_with("/proc/") || p.starts_with("/dev/");
        assert!(ok, "unexpected mount {p} in\n{mountinfo}");
    }
    for p in allowed_exact {
        assert!(points.contains(p), "missing mount {p}");
    }
    assert!(points.contains("/proc/sys"));

    // Read-only: the build root, `/`; writable: the tree, /tmp, /var/tmp, /root.
    for p in ["/usr/x", "/usr/bin/x", "/etc/x", "/x", "/bin/x"] {
        assert!(!sh(&sb, &format!("touch {p}")).success(), "{p} is writable");
    }
    assert!(!f.root.join("usr/x").exists());
    sb.run(
        "sh",
        [
            "-c",
            "touch /tmp/a /var/tmp/b /root/c && echo hi > /run/kiln/tree/etc/hello",
        ],
    )
    .unwrap();
    assert_eq!(
        fs::read_to_string(f.tree.join("etc/hello")).unwrap(),
        "hi\n"
    );
}

#[test]
fn declared_binds_only_with_their_mode() {
    let f = fixture();
    let input = tempfile::tempdir().unwrap();
    let output = tempfile::tempdir().unwrap();
    fs::write(input.path().join("in.txt"), "input data\n").unwrap();
    let sb = f
        .sandbox()
        .bind_ro(input.path(), "/run/kiln/inputs/a")
        .bind_rw(output.path(), "/run/kiln/output");
    assert_eq!(
        sb.run("cat", ["/run/kiln/inputs/a/in.txt"])
            .unwrap()
            .stdout_str(),
        "input data\n"
    );
    assert!(!sh(&sb, "echo x > /run/kiln/inputs/a/new").success());
    assert!(!input.path().join("new").exists());
    sb.run(
        "sh",
        [
            "-c",
            "cat /run/kiln/inputs/a/in.txt > /run/kiln/output/out.txt",
        ],
    )
    .unwrap();
    assert_eq!(
        fs::read_to_string(output.path().join("out.txt")).unwrap(),
        "input data\n"
    );
}

#[test]
fn pid_namespace_shows_only_the_sandbox() {
    let f = fixture();
    let host_pids = fs::read_dir("/proc")
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .parse::<u32>()
                .is_ok()
        })
        .count();
    assert!(host_pids > 3, "control: the host has {host_pids} processes");
    let out = f
        .sandbox()
        .run("sh", ["-c", "ls /proc"])
        .unwrap()
        .stdout_str();
    let pids: Vec<u32> = out.lines().filter_map(|l| l.parse().ok()).collect();
    // bubblewrap's PID 1, the shell and `ls`.
    assert!(pids.contains(&1) && pids.len() <= 3, "{pids:?}");
    let ps = f
        .sandbox()
        .run("ps", ["-o", "pid,args"])
        .unwrap()
        .stdout_str();
    assert!(ps.lines().count() <= 3, "{ps}");
    assert!(!ps.contains("cargo") && !ps.contains("sandbox-"), "{ps}");
}

#[test]
fn hostname_and_exact_environment() {
    let f = fixture();
    assert_eq!(
        f.sandbox().run("hostname", [""; 0]).unwrap().stdout_str(),
        "kiln\n"
    );
    let env = f
        .sandbox()
        .source_date_epoch(1_700_000_000)
        .env("FOO", "bar baz")
        .run("env", [""; 0])
        .unwrap()
        .stdout_str();
    let expected = [
        "DEBIAN_FRONTEND=noninteractive".to_owned(),
        "FOO=bar baz".to_owned(),
        "HOME=/root".to_owned(),
        "LC_ALL=C.UTF-8".to_owned(),
        format!("PATH={DEFAULT_PATH}"),
        // bubblewrap sets PWD to the --chdir directory.
        "PWD=/".to_owned(),
        "SOURCE_DATE_EPOCH=1700000000".to_owned(),
        "TMPDIR=/tmp".to_owned(),
    ];
    assert_eq!(lines(&env), expected.into_iter().collect(), "{env}");
    assert!(
        std::env::var_os("CARGO_MANIFEST_DIR").is_some(),
        "control: the host has more"
    );
}

#[test]
fn dev_has_only_the_usual_nodes() {
    let f = fixture();
    let out = f.sandbox().run("ls", ["-A", "/dev"]).unwrap().stdout_str();
    let expected: BTreeSet<String> = [
        "core", "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout",
        "tty", "urandom", "zero",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(lines(&out), expected);
    assert!(
        fs::read_dir("/dev").unwrap().count() > expected.len(),
        "control: the host has more"
    );
    // The nodes work.
    let out = f.sandbox().run(
        "sh",
        ["-c", "head -c 4 /dev/zero | wc -c; echo x > /dev/null"],
    );
    assert_eq!(out.unwrap().stdout_str().trim(), "4");
}

#[test]
fn root_keeps_only_the_allowed_capabilities() {
    let f = fixture();
    let sb = f.sandbox();
    let status = sb.run("cat", ["/proc/self/status"]).unwrap().stdout_str();
    let cap = |k: &str| {
        let v = status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap()
            .trim();
        u64::from_str_radix(v, 16).unwrap()
    };
    // CHOWN..SETUID (0-7), SYS_CHROOT (18), MKNOD (27), SETFCAP (31).
    let expected = 0xffu64 | 1 << 18 | 1 << 27 | 1 << 31;
    assert_eq!(cap("CapEff:"), expected, "{status}");
    assert_eq!(cap("CapPrm:"), expected);
    assert_eq!(sb.run("id", ["-u"]).unwrap().stdout_str(), "0\n");

    // No CAP_SYS_ADMIN: no mounts.
    assert!(!sh(&sb, "mount -t tmpfs none /tmp").success());
    // Host-wide sysctls are read-only (writes back the host's own value if it ever succeeded).
    let swappiness = fs::read_to_string("/proc/sys/vm/swappiness").unwrap();
    let w = sh(
        &sb,
        &format!("echo {} > /proc/sys/vm/swappiness", swappiness.trim()),
    );
    assert!(!w.success(), "{w:?}");

    // What dpkg needs: chown to any id, keep setuid bits.
    sb.run(
        "sh",
        [
            "-c",
            "touch /run/kiln/tree/f && chown 42:43 /run/kiln/tree/f && chmod 4755 /run/kiln/tree/f",
        ],
    )
    .unwrap();
    let m = fs::metadata(f.tree.join("f")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (42, 43, 0o4755));

    // A device node can be made in the tree (CAP_MKNOD) but never opened (nodev).
    let out = sh(
        &sb,
        "mknod /run/kiln/tree/null2 c 1 3 && echo made && echo x > /run/kiln/tree/null2",
    );
    assert!(out.stdout_str().contains("made"), "{out:?}");
    assert!(
        !out.success(),
        "a device node in the tree was opened: {out:?}"
    );
    assert!(
        fs::symlink_metadata(f.tree.join("null2"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

fn processes_with_arg(arg: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = fs::read(e.path().join("cmdline")) {
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            if args.contains(&arg.as_bytes()) {
                found.push(String::from_utf8_lossy(&cmdline).replace('\0', " "));
            }
        }
    }
    found
}

#[test]
fn timeout_kills_the_whole_process_tree() {
    let f = fixture();
    // Unique durations so that the host-side check finds only this test's processes.
    let base = 100_000 + std::process::id() % 100_000;
    let (a, b) = (base.to_string(), (base + 1).to_string());
    let script = format!("echo started >&2; sleep {a} & (sleep {b} &) ; sleep {a}");
    let start = Instant::now();
    let mut streamed = Vec::new();
    let e = f
        .sandbox()
        .timeout(Duration::from_secs(1))
        .output_streaming("sh", ["-c", &script], |_, l| streamed.push(l.to_owned()))
        .unwrap_err();
    let took = start.elapsed();
    assert!(matches!(e, SandboxError::Timeout { .. }), "{e:?}");
    assert!(e.to_string().contains("started"), "{e}");
    assert_eq!(streamed, ["started"]);
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "{took:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left: Vec<String> = [&a, &b]
            .iter()
            .flat_map(|m| processes_with_arg(m))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running after the timeout: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn chroot_mode_tree_is_root() {
    let f = fixture();
    make_root(&f.tree);
    fs::write(f.tree.join("marker-in-tree"), "").unwrap();
    // The build root is not mounted in chroot mode: a tool only it has is not found.
    fs::copy(busybox(), f.root.join("usr/bin/only-in-build-root")).unwrap();
    let sb = Sandbox::new(&f.root).tree(&f.tree, TreeMode::Chroot);

    sb.run("sh", ["-c", "echo written > /etc/x; touch /tmp/t /run/r"])
        .unwrap();
    assert_eq!(
        fs::read_to_string(f.tree.join("etc/x")).unwrap(),
        "written\n"
    );
    assert!(!f.tree.join("tmp/t").exists() && !f.tree.join("run/r").exists());
    let ls = sb.run("ls", ["-A", "/"]).unwrap().stdout_str();
    assert!(lines(&ls).contains("marker-in-tree"), "{ls}");
    assert_eq!(sb.run("hostname", [""; 0]).unwrap().stdout_str(), "kiln\n");
    let e = sb.run("only-in-build-root", [""; 0]).unwrap_err();
    assert!(
        matches!(e, SandboxError::CommandNotFound { place: "tree", .. }),
        "{e:?}"
    );
    assert!(
        !sh(&sb, "ip -o link | grep -v ': lo:'").success(),
        "only lo"
    );
}

/// Read-only chroot: nothing in the tree can be written or created, but what is bound
/// read-write again can.
#[test]
fn read_only_chroot_writes_only_where_bound() {
    let f = fixture();
    make_root(&f.tree);
    for d in ["proc", "dev", "tmp", "run", "boot", "var/tmp"] {
        fs::create_dir_all(f.tree.join(d)).unwrap();
    }
    fs::write(f.tree.join("etc/shared"), "stored\n").unwrap();
    let sb = Sandbox::new(&f.root)
        .tree(&f.tree, TreeMode::ChrootReadOnly)
        .bind_rw(f.tree.join("boot"), "/boot");

    for script in [
        "echo x > /etc/shared",
        "echo x >> /etc/shared",
        "touch /etc/new",
        "chmod 600 /etc/shared",
        "mkdir /var/tmp/d",
    ] {
        assert!(!sh(&sb, script).success(), "{script} should fail");
    }
    assert_eq!(
        fs::read_to_string(f.tree.join("etc/shared")).unwrap(),
        "stored\n"
    );
    assert!(!f.tree.join("etc/new").exists());
    let out = sh(
        &sb,
        "echo made > /boot/initrd && cat /etc/shared && touch /tmp/t",
    );
    assert!(out.success(), "{}", out.stderr_str());
    assert_eq!(out.stdout_str(), "stored\n");
    assert_eq!(
        fs::read_to_string(f.tree.join("boot/initrd")).unwrap(),
        "made\n"
    );
}

#[test]
fn missing_command_is_a_clear_error() {
    let f = fixture();
    let e = f.sandbox().run("mkfs.ext4", ["-d", "x"]).unwrap_err();
    assert!(
        matches!(
            e,
            SandboxError::CommandNotFound {
                place: "build root",
                ..
            }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("`mkfs.ext4` not found in the build root")
            && msg.contains(&f.root.display().to_string()),
        "{msg}"
    );
    // An absolute path that only exists on the host.
    let e = f.sandbox().run("/usr/bin/bwrap", [""; 0]).unwrap_err();
    assert!(matches!(e, SandboxError::CommandNotFound { .. }), "{e:?}");
    // A program whose interpreter is missing: bubblewrap's execvp error, explained.
    let script = f.root.join("usr/bin/orphan");
    fs::write(&script, "#!/nonexistent/interpreter\n").unwrap();
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let e = f.sandbox().run("orphan", [""; 0]).unwrap_err();
    assert!(matches!(e, SandboxError::Setup { .. }), "{e:?}");
    assert!(e.to_string().contains("interpreter"), "{e}");
}

/// `/tmp` is world-writable and sticky, as on a real system: users other than root
/// inside (apt's `_apt`, daemons' users in maintainer scripts) can use it.
#[test]
fn tmp_is_world_writable_and_sticky() {
    let f = fixture();
    let out = sh(&f.sandbox(), "stat -c %a /tmp");
    assert!(out.success(), "{}", out.stderr_str());
    assert_eq!(out.stdout_str().trim(), "1777");
}
