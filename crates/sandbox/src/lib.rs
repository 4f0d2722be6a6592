//! kiln-sandbox: runs a program from a build root against a target tree, isolated.
//!
//! Every program that comes from packages (maintainer scripts, `dpkg --configure`,
//! `update-initramfs`, `mkfs.ext4`, GRUB tools, ...) runs through a [`Sandbox`]: no network,
//! a private `/dev` with only the usual nodes, its own `/proc` and PID namespace, tmpfs
//! `/tmp` and `/run`, hostname `kiln`, an environment that starts empty, and no view of the
//! host's file system beyond the build root (read-only), the tree and the binds that were
//! declared. The whole process tree is killed on timeout or when kiln dies.
//!
//! # Why bubblewrap, not namespaces from Rust
//!
//! The sandbox is `bwrap` (Debian package `bubblewrap`) driven by a typed builder, as
//! osbuild's BuildRoot does (mkosi did until v25). bubblewrap is a small (a few thousand lines of C),
//! widely audited tool that already gets the subtle parts right: `pivot_root` onto a fresh
//! tmpfs with private propagation, recursive read-only remounts of binds, `nosuid,nodev` on
//! every bind (a device node that a package creates in the tree cannot be opened), a `/dev`
//! holding only null, zero, full, random, urandom, tty, shm and pts, read-only covers over
//! the dangerous parts of `/proc`, a reaping PID 1, `PR_SET_PDEATHSIG`, and capabilities
//! reduced to an allow-list with ambient caps plus `SECBIT_NOROOT` so that an `exec` as
//! root does not regain the rest. Doing the same from Rust means `clone`/`unshare`,
//! `mount`, `pivot_root`, `capset` and `prctl` between `fork` and `exec` of a multi-threaded
//! process, where only async-signal-safe code may run (or a re-exec of kiln as a helper):
//! a few hundred lines of `unsafe`, security-critical code that kiln would have to maintain
//! and audit itself, for a gain of about one process start (a few milliseconds) per run.
//! The cost of bubblewrap is one host package besides the kernel and kiln; a missing
//! `bwrap` is a clear error naming `apt-get install bubblewrap`. The `Sandbox` API hides
//! the choice, so an in-process implementation can replace it later without touching
//! stages.
//!
//! # Two modes
//!
//! * [`TreeMode::BuildRoot`]: `/usr`, `/etc`, `/bin`, `/lib*`, ... come from the build root,
//!   read-only; the tree is read-write at [`TREE_PATH`]; `/` itself is a read-only tmpfs,
//!   `/var` and `/root` are tmpfs. Tools run with `--root`-style options against the tree.
//! * [`TreeMode::Chroot`]: the tree itself is `/`, read-write (maintainer scripts,
//!   `dpkg --configure`). Its `/tmp` and `/run` are covered by tmpfs, so nothing written
//!   there lands in the tree. bubblewrap creates missing mount points (`/proc`, `/dev`,
//!   bind targets) as empty entries in the tree: bind under `/run` to leave no trace.
//! * [`TreeMode::ChrootReadOnly`]: the same, but the tree is read-only; only what is bound
//!   with [`Sandbox::bind_rw`] can be written. For stages that run package code on a tree
//!   whose files are hard links to a stored one: a write into a shared file would change
//!   the stored tree too, and here it fails instead.
//!
//! # Root, capabilities and namespaces
//!
//! Mount, PID, network (unless [`Sandbox::network`]), IPC, UTS and cgroup namespaces are
//! always new. When kiln runs as root no user namespace is made: dpkg must `chown` files
//! to arbitrary users and groups, and bubblewrap's user namespace maps a single uid, so
//! `chown` to any other id would fail (mkosi's `MKOSI_CHROOT_SUPPRESS_CHOWN` problem).
//! Instead, root inside keeps only [`DEFAULT_CAPABILITIES`] — enough to own, chmod,
//! write and chroot — and loses the rest (no `CAP_SYS_ADMIN`: no mounts; no
//! `CAP_NET_*`, `CAP_SYS_MODULE`, `CAP_SYS_RAWIO`, `CAP_SYS_PTRACE`, ...). `/proc/sys` is
//! read-only, so host-wide sysctls cannot be changed by uid 0 without capabilities.
//! When kiln is not root, a user namespace maps the user to root inside; files keep the
//! user's ids and `chown` to other ids fails there.

mod error;
mod view;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

pub use error::SandboxError;
use view::View;

/// Where the tree is mounted in [`TreeMode::BuildRoot`].
pub const TREE_PATH: &str = "/run/kiln/tree";

/// The hostname inside every sandbox.
pub const HOSTNAME: &str = "kiln";

/// `PATH` inside the sandbox unless overridden with [`Sandbox::env`].
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Capabilities kept by root inside the sandbox (everything else is dropped, also from
/// processes it `exec`s):
///
/// * `CAP_CHOWN`, `CAP_FOWNER`, `CAP_FSETID`: dpkg sets owners, modes and mtimes of files
///   it does not own, and keeps setuid/setgid bits while doing so;
/// * `CAP_DAC_OVERRIDE`, `CAP_DAC_READ_SEARCH`: root reads and writes regardless of modes
///   (`/etc/shadow`, 0555 directories), as maintainer scripts expect;
/// * `CAP_MKNOD`: packages may ship device nodes; every bind is `nodev`, so a node made in
///   the tree can never be opened;
/// * `CAP_SETUID`, `CAP_SETGID`: `su`/`runuser`/`setpriv` in scripts, apt's `_apt` sandbox;
/// * `CAP_SETFCAP`: postinsts that `setcap` (iputils-ping);
/// * `CAP_SYS_CHROOT`: `dpkg --root` chroots into the tree to run maintainer scripts;
/// * `CAP_KILL`: signal processes of other users — only ever inside the PID namespace.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// Top-level entries taken from the build root in [`TreeMode::BuildRoot`]: directories are
/// bound read-only, symlinks (merged /usr) are recreated.
const BUILD_ROOT_ENTRIES: &[&str] = &[
    "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "opt",
];

/// How the target tree appears in the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeMode {
    /// The tree is `/` (read-write); programs and libraries come from the tree.
    Chroot,
    /// As [`TreeMode::Chroot`], with the tree read-only (writable only where
    /// [`Sandbox::bind_rw`] binds a part of it again).
    ChrootReadOnly,
    /// The build root provides `/usr`, `/etc`, ... read-only; the tree is read-write at
    /// [`TREE_PATH`].
    BuildRoot,
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The command's standard output.
    Stdout,
    /// The command's standard error.
    Stderr,
}

/// What a finished command left behind.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit status (bubblewrap reports a command killed by signal N as 128 + N).
    pub status: ExitStatus,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: Vec<u8>,
    /// Wall-clock time from start to exit.
    pub duration: Duration,
}

impl Output {
    /// Whether the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// stdout as text (invalid UTF-8 replaced).
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as text (invalid UTF-8 replaced).
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// The last `n` non-empty lines of stderr.
    pub fn stderr_tail(&self, n: usize) -> String {
        tail(&self.stderr, n)
    }
}

fn tail(bytes: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[derive(Debug, Clone)]
struct Bind {
    host: PathBuf,
    inside: PathBuf,
    writable: bool,
}

/// A sandboxed command environment: build with the methods below, then [`run`](Self::run)
/// (or [`output`](Self::output)) as many commands as needed; each run is a fresh sandbox.
#[derive(Debug, Clone)]
pub struct Sandbox {
    build_root: PathBuf,
    tree: Option<(PathBuf, TreeMode)>,
    binds: Vec<Bind>,
    env: BTreeMap<String, String>,
    network: bool,
    chdir: PathBuf,
    timeout: Option<Duration>,
    caps: Vec<String>,
    bwrap: Option<PathBuf>,
}

impl Sandbox {
    /// A sandbox whose programs come from `build_root` (a directory tree with `usr/`).
    ///
    /// The environment starts with `PATH` ([`DEFAULT_PATH`]), `LC_ALL=C.UTF-8`,
    /// `DEBIAN_FRONTEND=noninteractive`, `HOME=/root` and `TMPDIR=/tmp`, and nothing else
    /// (bubblewrap adds `PWD`, the working directory).
    pub fn new(build_root: impl AsRef<Path>) -> Self {
        let env = [
            ("PATH", DEFAULT_PATH),
            ("LC_ALL", "C.UTF-8"),
            ("DEBIAN_FRONTEND", "noninteractive"),
            ("HOME", "/root"),
            ("TMPDIR", "/tmp"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Sandbox {
            build_root: build_root.as_ref().to_path_buf(),
            tree: None,
            binds: Vec::new(),
            env,
            network: false,
            chdir: PathBuf::from("/"),
            timeout: None,
            caps: DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect(),
            bwrap: None,
        }
    }

    /// The target tree, read-write, either as `/` ([`TreeMode::Chroot`]; the build root is
    /// then not mounted at all) or at [`TREE_PATH`] ([`TreeMode::BuildRoot`]).
    pub fn tree(mut self, path: impl AsRef<Path>, mode: TreeMode) -> Self {
        self.tree = Some((path.as_ref().to_path_buf(), mode));
        self
    }

    /// Makes host path `host` visible read-only at `inside` (a declared input).
    pub fn bind_ro(mut self, host: impl AsRef<Path>, inside: impl AsRef<Path>) -> Self {
        self.binds.push(Bind {
            host: host.as_ref().to_path_buf(),
            inside: inside.as_ref().to_path_buf(),
            writable: false,
        });
        self
    }

    /// Makes host path `host` visible read-write at `inside` (a declared output).
    pub fn bind_rw(mut self, host: impl AsRef<Path>, inside: impl AsRef<Path>) -> Self {
        self.binds.push(Bind {
            host: host.as_ref().to_path_buf(),
            inside: inside.as_ref().to_path_buf(),
            writable: true,
        });
        self
    }

    /// Sets (or replaces) an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Removes an environment variable, including a default one.
    pub fn env_remove(mut self, key: &str) -> Self {
        self.env.remove(key);
        self
    }

    /// Sets `SOURCE_DATE_EPOCH` (from the manifest).
    pub fn source_date_epoch(self, epoch: u64) -> Self {
        self.env("SOURCE_DATE_EPOCH", epoch.to_string())
    }

    /// Shares the host's network namespace (default `false`: only a loopback interface).
    /// DNS then needs a `resolv.conf` in the build root or a declared bind.
    pub fn network(mut self, enabled: bool) -> Self {
        self.network = enabled;
        self
    }

    /// Working directory inside the sandbox (default `/`).
    pub fn chdir(mut self, dir: impl AsRef<Path>) -> Self {
        self.chdir = dir.as_ref().to_path_buf();
        self
    }

    /// Kills the command and every process it started after `limit` (default: none).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Keeps one more capability (for example `CAP_SYS_ADMIN` for a stage that mounts).
    pub fn cap_add(mut self, cap: impl Into<String>) -> Self {
        let cap = cap.into().to_ascii_uppercase();
        if !self.caps.contains(&cap) {
            self.caps.push(cap);
        }
        self
    }

    /// Drops one of [`DEFAULT_CAPABILITIES`].
    pub fn cap_drop(mut self, cap: &str) -> Self {
        let cap = cap.to_ascii_uppercase();
        self.caps.retain(|c| *c != cap);
        self
    }

    /// Uses this `bwrap` binary instead of looking it up in the host's `PATH`.
    pub fn bwrap(mut self, path: impl AsRef<Path>) -> Self {
        self.bwrap = Some(path.as_ref().to_path_buf());
        self
    }

    /// Runs `cmd` with `args`; a non-zero exit is [`SandboxError::Failed`].
    pub fn run<I, S>(&self, cmd: &str, args: I) -> Result<Output, SandboxError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_streaming(cmd, args, |_, _| {})
    }

    /// Like [`run`](Self::run), calling `on_line` with each line of output as it arrives
    /// (lines of one stream in order; without the trailing newline).
    pub fn run_streaming<I, S>(
        &self,
        cmd: &str,
        args: I,
        on_line: impl FnMut(Stream, &str),
    ) -> Result<Output, SandboxError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let output = self.output_streaming(cmd, &args, on_line)?;
        if output.success() {
            Ok(output)
        } else {
            Err(SandboxError::Failed {
                command: display_command(cmd, &args),
                status: output.status,
                output: Box::new(output),
            })
        }
    }

    /// Runs `cmd` with `args` and returns its output whatever its exit status.
    pub fn output<I, S>(&self, cmd: &str, args: I) -> Result<Output, SandboxError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.output_streaming(cmd, args, |_, _| {})
    }

    /// Like [`output`](Self::output), streaming lines to `on_line`.
    ///
    /// `on_line` runs on the calling thread, which blocks until the command has ended
    /// (bubblewrap's `--die-with-parent` is tied to that thread).
    pub fn output_streaming<I, S>(
        &self,
        cmd: &str,
        args: I,
        mut on_line: impl FnMut(Stream, &str),
    ) -> Result<Output, SandboxError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let command = display_command(cmd, &args);
        let bwrap = self.find_bwrap()?;
        let (bwrap_args, view) = self.build(cmd, &args)?;
        let path = self.env.get("PATH").map(String::as_str).unwrap_or("");
        if view.find_program(cmd, path, &self.chdir).is_none() {
            return Err(self.not_found(cmd));
        }

        let start = Instant::now();
        let mut child = Command::new(&bwrap)
            .args(&bwrap_args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| SandboxError::io(format!("starting {}", bwrap.display()), e))?;

        let (tx, rx) = mpsc::channel::<(Stream, Option<Vec<u8>>)>();
        let readers = [
            spawn_reader(
                child.stdout.take().expect("piped"),
                Stream::Stdout,
                tx.clone(),
            ),
            spawn_reader(child.stderr.take().expect("piped"), Stream::Stderr, tx),
        ];
        let deadline = self.timeout.map(|t| start + t);
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut handle = |stream: Stream, chunk: Vec<u8>| {
            let line = chunk.strip_suffix(b"\n").unwrap_or(&chunk);
            on_line(stream, &String::from_utf8_lossy(line));
            match stream {
                Stream::Stdout => stdout.extend_from_slice(&chunk),
                Stream::Stderr => stderr.extend_from_slice(&chunk),
            }
        };

        // Read both streams until they close or the deadline passes.
        let mut open = 2;
        let mut timed_out = false;
        while open > 0 {
            let event = match deadline {
                None => rx.recv().ok(),
                Some(d) => match rx.recv_timeout(d.saturating_duration_since(Instant::now())) {
                    Ok(e) => Some(e),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        timed_out = true;
                        break;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => None,
                },
            };
            match event {
                Some((s, Some(chunk))) => handle(s, chunk),
                Some((_, None)) => open -= 1,
                None => break,
            }
        }

        // Then wait for the exit (a process may close its output and keep running).
        let mut status = None;
        if !timed_out {
            loop {
                match child.try_wait() {
                    Ok(Some(s)) => {
                        status = Some(s);
                        break;
                    }
                    Ok(None) => {}
                    Err(e) => return Err(SandboxError::io("waiting for bwrap", e)),
                }
                match deadline {
                    Some(d) if Instant::now() >= d => {
                        timed_out = true;
                        break;
                    }
                    _ => thread::sleep(Duration::from_millis(2)),
                }
            }
        }

        if timed_out {
            // SIGKILL to bwrap: its PID 1 inside has PR_SET_PDEATHSIG=SIGKILL, and when
            // PID 1 of a PID namespace dies the kernel kills every process in it.
            let _ = child.kill();
            let _ = child.wait();
            let grace = Instant::now() + Duration::from_secs(2);
            while open > 0 {
                match rx.recv_timeout(grace.saturating_duration_since(Instant::now())) {
                    Ok((s, Some(chunk))) => handle(s, chunk),
                    Ok((_, None)) => open -= 1,
                    Err(_) => break,
                }
            }
            return Err(SandboxError::Timeout {
                command,
                timeout: self.timeout.unwrap_or_default(),
                stderr_tail: tail(&stderr, 20),
            });
        }
        for r in readers {
            let _ = r.join();
        }
        let status = status.expect("set when not timed out");
        let output = Output {
            status,
            stdout,
            stderr,
            duration: start.elapsed(),
        };

        // bubblewrap's own failures: exit 1 and a last stderr line "bwrap: ...".
        if status.code() == Some(1) {
            let last = tail(&output.stderr, 1);
            if let Some(message) = last.strip_prefix("bwrap: ") {
                let mut message = message.to_owned();
                if message.starts_with("execvp ") {
                    // The file exists (it was looked up before): its ELF interpreter or
                    // script interpreter does not.
                    message.push_str(
                        " (the program exists: is its interpreter or loader missing from the root?)",
                    );
                }
                return Err(SandboxError::Setup { command, message });
            }
        }
        Ok(output)
    }

    /// The `bwrap` arguments a run of `cmd args` would use (for logs and debugging).
    pub fn command_line<I, S>(&self, cmd: &str, args: I) -> Result<Vec<OsString>, SandboxError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        Ok(self.build(cmd, &args)?.0)
    }

    fn not_found(&self, cmd: &str) -> SandboxError {
        let (place, root) = match &self.tree {
            Some((tree, TreeMode::Chroot | TreeMode::ChrootReadOnly)) => ("tree", tree.clone()),
            _ => ("build root", self.build_root.clone()),
        };
        SandboxError::CommandNotFound {
            command: cmd.to_owned(),
            place,
            root,
            path: self.env.get("PATH").cloned().unwrap_or_default(),
        }
    }

    fn find_bwrap(&self) -> Result<PathBuf, SandboxError> {
        let is_exec = |p: &Path| {
            use std::os::unix::fs::PermissionsExt;
            fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        };
        if let Some(p) = &self.bwrap {
            return if is_exec(p) {
                Ok(p.clone())
            } else {
                Err(SandboxError::BwrapMissing {
                    searched: p.display().to_string(),
                })
            };
        }
        let host_path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs: Vec<PathBuf> = std::env::split_paths(&host_path).collect();
        dirs.push("/usr/bin".into());
        dirs.retain(|d| d.is_absolute());
        dirs.iter()
            .map(|d| d.join("bwrap"))
            .find(|p| is_exec(p))
            .ok_or_else(|| SandboxError::BwrapMissing {
                searched: "PATH and /usr/bin".to_owned(),
            })
    }

    /// Validates the configuration and builds bubblewrap's arguments and the view used to
    /// look programs up.
    fn build(&self, cmd: &str, args: &[OsString]) -> Result<(Vec<OsString>, View), SandboxError> {
        let mut a = Args::default();
        let mut view = View::default();

        a.flag("--die-with-parent");
        a.flag("--new-session");
        for ns in [
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-uts",
            "--unshare-cgroup-try",
        ] {
            a.flag(ns);
        }
        if !self.network {
            a.flag("--unshare-net");
        }
        if !running_as_root() {
            a.flag("--unshare-user");
            a.opt("--uid", "0");
            a.opt("--gid", "0");
        }
        a.opt("--hostname", HOSTNAME);
        a.opt("--cap-drop", "ALL");
        for cap in &self.caps {
            if !cap.starts_with("CAP_") || cap.len() < 5 {
                return Err(SandboxError::Config(format!(
                    "`{cap}` is not a capability name (like CAP_CHOWN)"
                )));
            }
            a.opt("--cap-add", cap);
        }
        a.flag("--clearenv");
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                return Err(SandboxError::Config(format!(
                    "invalid environment variable name `{k}`"
                )));
            }
            a.opt2("--setenv", k, v);
        }

        let tree = match &self.tree {
            Some((path, mode)) => {
                let abs = absolute_dir(path, "tree")?;
                Some((abs, *mode))
            }
            None => None,
        };
        let chroot = matches!(tree, Some((_, TreeMode::Chroot | TreeMode::ChrootReadOnly)));

        if let Some((tree, mode @ (TreeMode::Chroot | TreeMode::ChrootReadOnly))) = &tree {
            let bind = if *mode == TreeMode::Chroot {
                "--bind"
            } else {
                "--ro-bind"
            };
            a.opt2(bind, tree, "/");
            view.push("/", Some(tree.clone()));
        } else {
            let root = absolute_dir(&self.build_root, "build root")?;
            if !root.join("usr").is_dir() {
                return Err(SandboxError::Config(format!(
                    "build root {} has no usr/ directory",
                    root.display()
                )));
            }
            // `/` is bubblewrap's tmpfs, made read-only at the end; for lookups the build
            // root's own top-level symlinks (merged /usr) are what matters.
            view.push("/", None);
            for name in BUILD_ROOT_ENTRIES {
                let host = root.join(name);
                let inside = format!("/{name}");
                let Ok(meta) = fs::symlink_metadata(&host) else {
                    continue;
                };
                if meta.file_type().is_symlink() {
                    let target = fs::read_link(&host)
                        .map_err(|e| SandboxError::io(format!("reading {}", host.display()), e))?;
                    a.opt2("--symlink", &target, &inside);
                    view.push(&inside, Some(host));
                } else if meta.is_dir() {
                    a.opt2("--ro-bind", &host, &inside);
                    view.push(&inside, Some(host));
                }
            }
        }

        a.opt("--proc", "/proc");
        // bubblewrap covers /proc/irq and /proc/bus; uid 0 may write sysctls without any
        // capability, so make /proc/sys read-only too. Its entries follow the namespaces of
        // the process reading them, so the host's mount shows the sandbox's view.
        a.opt2("--ro-bind", "/proc/sys", "/proc/sys");
        a.opt2(
            "--ro-bind-try",
            "/proc/sysrq-trigger",
            "/proc/sysrq-trigger",
        );
        a.opt("--dev", "/dev");
        // World-writable and sticky, as on a real system: non-root users inside (apt's
        // `_apt`, daemons' users in maintainer scripts) must be able to write there.
        a.opt("--perms", "01777");
        a.opt("--tmpfs", "/tmp");
        a.opt("--tmpfs", "/run");
        for p in ["/proc", "/dev", "/tmp", "/run"] {
            view.push(p, None);
        }
        if !chroot {
            a.opt("--tmpfs", "/var");
            a.opt("--dir", "/var/tmp");
            a.opt("--tmpfs", "/root");
            view.push("/var", None);
            view.push("/root", None);
            if let Some((tree, _)) = &tree {
                a.opt2("--bind", tree, TREE_PATH);
                view.push(TREE_PATH, Some(tree.clone()));
            }
        }

        for b in &self.binds {
            let inside = checked_inside(&b.inside)?;
            let host = std::path::absolute(&b.host)
                .map_err(|e| SandboxError::io(format!("resolving {}", b.host.display()), e))?;
            if fs::symlink_metadata(&host).is_err() {
                return Err(SandboxError::Config(format!(
                    "bind source {} does not exist",
                    host.display()
                )));
            }
            a.opt2(
                if b.writable { "--bind" } else { "--ro-bind" },
                &host,
                &inside,
            );
            view.push(inside, Some(host));
        }

        if !chroot {
            a.opt("--remount-ro", "/");
        }
        let chdir = checked_inside(&self.chdir).or_else(|e| {
            if self.chdir == Path::new("/") {
                Ok(PathBuf::from("/"))
            } else {
                Err(e)
            }
        })?;
        a.opt("--chdir", &chdir);

        a.flag("--");
        a.flag(cmd);
        a.0.extend(args.iter().cloned());
        Ok((a.0, view))
    }
}

#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn flag(&mut self, f: impl AsRef<OsStr>) {
        self.0.push(f.as_ref().to_owned());
    }
    fn opt(&mut self, f: &str, v: impl AsRef<OsStr>) {
        self.flag(f);
        self.flag(v);
    }
    fn opt2(&mut self, f: &str, v1: impl AsRef<OsStr>, v2: impl AsRef<OsStr>) {
        self.flag(f);
        self.flag(v1);
        self.flag(v2);
    }
}

fn absolute_dir(path: &Path, what: &str) -> Result<PathBuf, SandboxError> {
    let abs = std::path::absolute(path)
        .map_err(|e| SandboxError::io(format!("resolving {what} {}", path.display()), e))?;
    if !abs.is_dir() {
        return Err(SandboxError::Config(format!(
            "{what} {} is not a directory",
            abs.display()
        )));
    }
    Ok(abs)
}

/// A path inside the sandbox must be absolute, not `/`, and free of `..`.
fn checked_inside(p: &Path) -> Result<PathBuf, SandboxError> {
    let ok = p.is_absolute()
        && p.components().count() > 1
        && p.components().all(|c| {
            matches!(
                c,
                Component::RootDir | Component::Normal(_) | Component::CurDir
            )
        });
    if ok {
        Ok(p.components().collect())
    } else {
        Err(SandboxError::Config(format!(
            "path inside the sandbox must be absolute, not `/` and without `..`: {}",
            p.display()
        )))
    }
}

fn running_as_root() -> bool {
    // The effective uid is the second field of "Uid:" in /proc/self/status.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn spawn_reader(
    pipe: impl Read + Send + 'static,
    stream: Stream,
    tx: mpsc::Sender<(Stream, Option<Vec<u8>>)>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::with_capacity(64 * 1024, pipe);
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send((stream, Some(line))).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send((stream, None));
    })
}

fn display_command(cmd: &str, args: &[OsString]) -> String {
    let mut s = String::from(cmd);
    for a in args {
        let a = a.to_string_lossy();
        s.push(' ');
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
            s.push('\'');
            s.push_str(&a.replace('\'', r"'\''"));
            s.push('\'');
        } else {
            s.push_str(&a);
        }
    }
    if s.chars().count() > 200 {
        s = s.chars().take(200).collect::<String>() + "...";
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[OsString]) -> Vec<String> {
        v.iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    fn pos(v: &[String], needle: &[&str]) -> usize {
        v.windows(needle.len())
            .position(|w| w.iter().zip(needle).all(|(a, b)| a == b))
            .unwrap_or_else(|| panic!("{needle:?} not in {v:?}"))
    }

    fn fake_root() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("usr/bin")).unwrap();
        fs::create_dir_all(d.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("usr/bin", d.path().join("bin")).unwrap();
        d
    }

    #[test]
    fn build_root_mode_layout_and_order() {
        let root = fake_root();
        let tree = tempfile::tempdir().unwrap();
        let input = tempfile::tempdir().unwrap();
        let sb = Sandbox::new(root.path())
            .tree(tree.path(), TreeMode::BuildRoot)
            .bind_ro(input.path(), "/run/kiln/inputs/x")
            .chdir("/run/kiln/tree");
        let args = strings(&sb.command_line("true", ["a b"]).unwrap());
        let r = root.path().to_string_lossy().into_owned();
        let t = tree.path().to_string_lossy().into_owned();
        pos(&args, &["--ro-bind", &format!("{r}/usr"), "/usr"]);
        pos(&args, &["--ro-bind", &format!("{r}/etc"), "/etc"]);
        pos(&args, &["--symlink", "usr/bin", "/bin"]);
        assert!(
            !args.iter().any(|a| a.ends_with("/lib64")),
            "absent entries are skipped"
        );
        // tmpfs /run before the tree bound under it; binds after; / read-only last.
        let run = pos(&args, &["--tmpfs", "/run"]);
        let tree_at = pos(&args, &["--bind", &t, TREE_PATH]);
        let bind = pos(&args, &["--ro-bind"]).max(pos(&args, &["/run/kiln/inputs/x"]));
        let ro = pos(&args, &["--remount-ro", "/"]);
        assert!(run < tree_at && tree_at < bind && bind < ro);
        assert!(args.contains(&"--unshare-net".to_owned()));
        assert_eq!(&args[args.len() - 3..], ["--", "true", "a b"]);
        pos(&args, &["--chdir", "/run/kiln/tree"]);
        pos(&args, &["--cap-drop", "ALL"]);
        pos(&args, &["--ro-bind", "/proc/sys", "/proc/sys"]);
    }

    #[test]
    fn chroot_mode_binds_tree_as_root_and_network_opt_in() {
        let tree = fake_root();
        let args = strings(
            &Sandbox::new("/nonexistent-build-root")
                .tree(tree.path(), TreeMode::Chroot)
                .network(true)
                .command_line("sh", ["-c", "true"])
                .unwrap(),
        );
        let t = tree.path().to_string_lossy().into_owned();
        assert!(pos(&args, &["--bind", &t, "/"]) < pos(&args, &["--proc", "/proc"]));
        assert!(!args.contains(&"--unshare-net".to_owned()));
        assert!(!args.contains(&"--remount-ro".to_owned()));
        assert!(!args.iter().any(|a| a == "/usr"));
    }

    #[test]
    fn environment_starts_from_defaults_only() {
        let root = fake_root();
        let args = strings(
            &Sandbox::new(root.path())
                .source_date_epoch(1_700_000_000)
                .env("FOO", "bar")
                .env_remove("TMPDIR")
                .command_line("true", Vec::<String>::new())
                .unwrap(),
        );
        let set: Vec<(&str, &str)> = args
            .windows(3)
            .filter(|w| w[0] == "--setenv")
            .map(|w| (w[1].as_str(), w[2].as_str()))
            .collect();
        assert_eq!(
            set,
            [
                ("DEBIAN_FRONTEND", "noninteractive"),
                ("FOO", "bar"),
                ("HOME", "/root"),
                ("LC_ALL", "C.UTF-8"),
                ("PATH", DEFAULT_PATH),
                ("SOURCE_DATE_EPOCH", "1700000000"),
            ]
        );
        assert!(pos(&args, &["--clearenv"]) < pos(&args, &["--setenv"]));
    }

    #[test]
    fn bad_configuration_is_refused() {
        let root = fake_root();
        let err = |sb: Sandbox| sb.command_line("true", [""; 0]).unwrap_err().to_string();
        assert!(
            err(Sandbox::new(root.path()).bind_ro(root.path(), "relative")).contains("absolute")
        );
        assert!(err(Sandbox::new(root.path()).bind_ro(root.path(), "/run/../etc")).contains(".."));
        assert!(err(Sandbox::new(root.path()).bind_rw(root.path(), "/")).contains("not `/`"));
        assert!(
            err(Sandbox::new(root.path()).bind_ro("/nonexistent-kiln-x", "/run/x"))
                .contains("does not exist")
        );
        assert!(err(Sandbox::new("/nonexistent-kiln-root")).contains("not a directory"));
        let no_usr = tempfile::tempdir().unwrap();
        assert!(err(Sandbox::new(no_usr.path())).contains("no usr/"));
        assert!(err(Sandbox::new(root.path()).env("A=B", "c")).contains("invalid environment"));
        assert!(err(Sandbox::new(root.path()).cap_add("chown")).contains("not a capability"));
        assert!(err(Sandbox::new(root.path()).chdir("tmp")).contains("absolute"));
    }

    #[test]
    fn caps_can_be_extended_and_reduced() {
        let root = fake_root();
        let args = strings(
            &Sandbox::new(root.path())
                .cap_add("cap_sys_admin")
                .cap_drop("CAP_MKNOD")
                .command_line("true", [""; 0])
                .unwrap(),
        );
        let caps: Vec<&str> = args
            .windows(2)
            .filter(|w| w[0] == "--cap-add")
            .map(|w| w[1].as_str())
            .collect();
        assert!(caps.contains(&"CAP_SYS_ADMIN"));
        assert!(!caps.contains(&"CAP_MKNOD"));
        assert_eq!(caps.len(), DEFAULT_CAPABILITIES.len());
    }

    #[test]
    fn missing_bwrap_names_the_package() {
        let root = fake_root();
        let e = Sandbox::new(root.path())
            .bwrap("/nonexistent/bwrap")
            .run("true", [""; 0])
            .unwrap_err();
        assert!(matches!(e, SandboxError::BwrapMissing { .. }));
        assert!(e.to_string().contains("apt-get install bubblewrap"), "{e}");
    }

    #[test]
    fn display_command_quotes() {
        let args: Vec<OsString> = ["-c", "echo 'hi' there", ""]
            .iter()
            .map(Into::into)
            .collect();
        assert_eq!(
            display_command("sh", &args),
            r#"sh -c 'echo '\''hi'\'' there' ''"#
        );
    }
}
