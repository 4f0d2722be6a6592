//! [`Vm`]: one running QEMU, its console, SSH into it, and powering it off.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use tempfile::TempDir;

use crate::console::{Console, WaitEnd};
use crate::process::{self, Deadline, POLL, RunError, Tied};
use crate::{
    Accel, AccelDecision, ConsoleMode, Error, Firmware, GUEST_SSH_PORT, ImageFormat, Ovmf, Result,
    VmConfig, qmp,
};

/// How many console lines an error shows.
const TAIL_LINES: usize = 25;

/// How long QEMU may take to answer on its QMP socket after it was started.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How many times a start is retried when the free port picked for SSH was taken by
/// someone else before QEMU bound it.
const PORT_ATTEMPTS: usize = 3;

/// A running VM. Dropping it stops QEMU (`SIGTERM`, then `SIGKILL`) and removes its
/// temporary files; [`Vm::shutdown`] powers the guest off properly first.
pub struct Vm {
    // Field order is drop order: QEMU is stopped before its directory goes.
    qemu: Tied,
    console: Arc<Console>,
    captured: bool,
    accel: AccelDecision,
    firmware: Firmware,
    ssh_port: u16,
    ssh_user: String,
    ssh_key: Option<PathBuf>,
    /// SSH answered once: powering off over SSH is worth a try.
    ssh_answered: AtomicBool,
    qmp: PathBuf,
    shutdown_timeout: Duration,
    _dir: TempDir,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("pid", &self.qemu.pid())
            .field("firmware", &self.firmware)
            .field("accel", &self.accel.accel)
            .field("ssh_port", &self.ssh_port)
            .finish_non_exhaustive()
    }
}

/// Everything the QEMU command line is made of, resolved.
struct Plan<'a> {
    config: &'a VmConfig,
    format: Option<ImageFormat>,
    /// OVMF code and this VM's copy of the variable store.
    uefi: Option<(PathBuf, PathBuf)>,
    accel: Accel,
    ssh_port: u16,
    qmp: PathBuf,
}

impl Vm {
    /// Starts QEMU and returns once it is up (its QMP socket answers); the guest is then
    /// booting. Fails with a reason and a fix when something is missing (QEMU, OVMF, the
    /// image), the format cannot be found out, or QEMU refuses to start.
    pub fn start(config: VmConfig) -> Result<Vm> {
        let format = check(&config)?;
        let ovmf = match config.firmware {
            Firmware::Uefi => Some(Ovmf::find()?),
            Firmware::Bios => None,
        };
        let accel = config.accel.resolve(&config.qemu);
        if process::interrupted() {
            return Err(Error::Interrupted);
        }
        let dir = temp_dir()?;
        let uefi = match &ovmf {
            Some(ovmf) => {
                let vars = dir.path().join("OVMF_VARS.fd");
                fs::copy(&ovmf.vars, &vars)
                    .map_err(|e| Error::io(format!("cannot copy {}", ovmf.vars.display()), e))?;
                Some((ovmf.code.clone(), vars))
            }
            None => None,
        };
        if let Some(log) = &config.serial_log {
            fs::File::create(log)
                .map_err(|e| Error::io(format!("cannot create {}", log.display()), e))?;
        }
        let qmp = dir.path().join("qmp.sock");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let ssh_port = match config.ssh_port {
                Some(port) => port,
                None => free_port()?,
            };
            let plan = Plan {
                config: &config,
                format,
                uefi: uefi.clone(),
                accel: accel.accel,
                ssh_port,
                qmp: qmp.clone(),
            };
            let args = qemu_args(&plan);
            tracing::debug!("running {}", shell_words(&config.qemu, &args));
            let mut cmd = Command::new(&config.qemu);
            cmd.args(&args);
            if config.console != ConsoleMode::Terminal {
                cmd.stdin(Stdio::null()).stdout(Stdio::piped());
            }
            let qemu = Tied::spawn(cmd).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => Error::QemuNotFound {
                    program: config.qemu.clone(),
                },
                _ => Error::io(format!("cannot run {}", config.qemu.display()), e),
            })?;
            let console = Arc::new(Console::default());
            let captured = config.console != ConsoleMode::Terminal;
            if let Some(stdout) = qemu.take_stdout() {
                let sink = Arc::clone(&console);
                let echo = config.console == ConsoleMode::Echo;
                thread::Builder::new()
                    .name("kiln-vm-console".into())
                    .spawn(move || sink.read_from(stdout, echo))
                    .map_err(|e| Error::io("cannot start the console reader", e))?;
            }
            match wait_until_up(&qemu, &qmp, accel.accel) {
                Ok(()) => {}
                Err(Error::QemuFailed { status, stderr, .. })
                    if config.ssh_port.is_none()
                        && stderr.contains("host forwarding")
                        && attempt < PORT_ATTEMPTS =>
                {
                    tracing::debug!("port {ssh_port} was taken ({status}), trying another");
                    continue;
                }
                Err(e) => return Err(e),
            }
            tracing::info!(
                "QEMU pid {} up: {}{}, {accel}, SSH forwarded from 127.0.0.1:{ssh_port}",
                qemu.pid(),
                config.firmware,
                config
                    .image
                    .as_ref()
                    .map(|i| format!(", disk {}", i.display()))
                    .unwrap_or_default(),
            );
            return Ok(Vm {
                qemu,
                console,
                captured,
                accel,
                firmware: config.firmware,
                ssh_port,
                ssh_user: config.ssh_user.clone(),
                ssh_key: config.ssh_key.clone(),
                ssh_answered: AtomicBool::new(false),
                qmp,
                shutdown_timeout: config.shutdown_timeout,
                _dir: dir,
            });
        }
    }

    /// The accelerator the VM runs with, and why it was chosen.
    pub fn accel(&self) -> &AccelDecision {
        &self.accel
    }

    /// The firmware the VM boots with.
    pub fn firmware(&self) -> Firmware {
        self.firmware
    }

    /// The port on 127.0.0.1 that is forwarded to the guest's port 22.
    pub fn ssh_port(&self) -> u16 {
        self.ssh_port
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.qemu.pid()
    }

    /// Whether QEMU still runs.
    pub fn is_running(&self) -> bool {
        self.qemu.try_wait().is_none()
    }

    /// The last `lines` lines the serial console printed, without escape sequences
    /// (empty with [`ConsoleMode::Terminal`]).
    pub fn console_tail(&self, lines: usize) -> String {
        self.console.tail(lines)
    }

    /// Everything the serial console printed (its last megabyte), without escape
    /// sequences.
    pub fn console_text(&self) -> String {
        self.console.text()
    }

    /// Waits until the serial console has printed `pattern` (at any time since the VM
    /// started: a prompt printed before this call counts). The pattern is matched
    /// against the raw bytes, so it must not span colour codes. Fails when the time runs
    /// out or the VM stops first, showing the console's last lines.
    pub fn wait_for_console(&self, pattern: &str, timeout: Duration) -> Result<()> {
        if !self.captured {
            return Err(Error::ConsoleNotCaptured("wait_for_console"));
        }
        let waiting_for = format!("{pattern:?} on the serial console");
        let deadline = Deadline::after(timeout);
        let mut failure = None;
        let found = self.console.wait_for(pattern.as_bytes(), POLL * 2, || {
            // QEMU's exit shows as the end of the console stream (after its last bytes).
            failure = if process::interrupted() {
                Some(Error::Interrupted)
            } else if self.qemu.kvm_internal_error() {
                Some(self.kvm_failed(&waiting_for))
            } else if deadline.passed() {
                Some(self.timeout(&waiting_for, timeout))
            } else {
                None
            };
            failure.is_some()
        });
        match found {
            Ok(()) => Ok(()),
            Err(WaitEnd::Stopped) => Err(failure.expect("set when stopped")),
            Err(WaitEnd::Closed) => match self
                .qemu
                .wait_until(Deadline::after(Duration::from_secs(10)))
            {
                Some(status) => Err(self.exited(status, &waiting_for)),
                None => Err(self.timeout(&waiting_for, timeout)),
            },
        }
    }

    /// Waits until SSH answers: `ssh ... true` is retried (each try gives up after
    /// `ConnectTimeout=5`) until it exits with anything but ssh's own 255. Fails when the
    /// time runs out (saying what ssh said last, and how far the boot got) or the VM stops.
    pub fn wait_for_ssh(&self, timeout: Duration) -> Result<()> {
        let deadline = Deadline::after(timeout);
        let target = format!("SSH on 127.0.0.1:{} as {}", self.ssh_port, self.ssh_user);
        let mut last = String::new();
        let mut tries = 0;
        loop {
            let waiting_for = match last.as_str() {
                "" => target.clone(),
                last => format!("{target} (ssh said last: {last})"),
            };
            self.check_running(&waiting_for)?;
            if deadline.passed() {
                return Err(self.timeout(&waiting_for, timeout));
            }
            tries += 1;
            let try_deadline = deadline.min(Deadline::after(Duration::from_secs(30)));
            match process::run(&mut self.ssh_command("true"), try_deadline, true) {
                Ok(out) if out.status.code() != Some(255) => {
                    self.ssh_answered.store(true, Ordering::Relaxed);
                    tracing::info!("{target} answered (try {tries})");
                    return Ok(());
                }
                Ok(out) => {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    if let Some(line) = stderr.lines().rev().find(|l| !l.trim().is_empty()) {
                        last = line.trim().to_string();
                    }
                    tracing::debug!("ssh try {tries}: {last}");
                }
                Err(e) => self.run_error(e, &waiting_for, timeout)?,
            }
            if !process::sleep(Duration::from_secs(1)) {
                return Err(Error::Interrupted);
            }
        }
    }

    /// The `ssh` command that runs `cmd` in the guest (for callers that want to set up
    /// its stdio themselves). Host keys are neither checked nor recorded, and ssh never
    /// prompts (`BatchMode`).
    pub fn ssh_command(&self, cmd: &str) -> Command {
        let mut c = Command::new("ssh");
        c.args(ssh_args(
            self.ssh_port,
            &self.ssh_user,
            self.ssh_key.as_deref(),
            cmd,
        ));
        c
    }

    /// Runs `cmd` in the guest over SSH and returns its output, whatever its status (255
    /// is ssh's own failure). No time limit besides ssh noticing a dead guest in 30 s;
    /// see [`Vm::ssh_with_timeout`].
    pub fn ssh(&self, cmd: &str) -> Result<Output> {
        self.ssh_with_timeout(cmd, Duration::MAX)
    }

    /// [`Vm::ssh`], killing ssh and failing after `timeout`.
    pub fn ssh_with_timeout(&self, cmd: &str, timeout: Duration) -> Result<Output> {
        self.ssh_run(cmd, timeout, true)
    }

    /// Runs `cmd` in the guest with its stdout and stderr going to this process's;
    /// returns its exit status (as `ssh` reports it).
    pub fn ssh_streamed(&self, cmd: &str, timeout: Duration) -> Result<ExitStatus> {
        self.ssh_run(cmd, timeout, false).map(|o| o.status)
    }

    fn ssh_run(&self, cmd: &str, timeout: Duration, capture: bool) -> Result<Output> {
        let waiting_for = format!("`{cmd}` over SSH");
        self.check_running(&waiting_for)?;
        let deadline = Deadline::after(timeout);
        loop {
            match process::run(&mut self.ssh_command(cmd), deadline, capture) {
                Ok(out) => {
                    if out.status.code() != Some(255) {
                        self.ssh_answered.store(true, Ordering::Relaxed);
                    }
                    return Ok(out);
                }
                Err(e) => self.run_error(e, &waiting_for, timeout)?,
            }
        }
    }

    /// Waits until QEMU exits by itself (the guest powered off) and returns its status.
    pub fn wait(&self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Deadline::after(timeout);
        let waiting_for = "the guest to power off";
        loop {
            if let Some(status) = self.qemu.try_wait() {
                return Ok(status);
            }
            if process::interrupted() {
                return Err(Error::Interrupted);
            }
            if self.qemu.kvm_internal_error() {
                return Err(self.kvm_failed(waiting_for));
            }
            if deadline.passed() {
                return Err(self.timeout(waiting_for, timeout));
            }
            thread::sleep(POLL);
        }
    }

    /// Powers the VM off and waits for QEMU to exit: `sudo -n poweroff || poweroff`
    /// over SSH when SSH answered before, then an ACPI power button press (QMP
    /// `system_powerdown`), within [`VmConfig::shutdown_timeout`] in all; then QMP
    /// `quit`; then `SIGTERM`/`SIGKILL`. Returns QEMU's exit status.
    pub fn shutdown(self) -> Result<ExitStatus> {
        if let Some(status) = self.qemu.try_wait() {
            return Ok(status);
        }
        let all = Deadline::after(self.shutdown_timeout);
        if self.ssh_answered.load(Ordering::Relaxed) {
            tracing::debug!("powering off over SSH");
            let half = Deadline::after(self.shutdown_timeout / 2).min(all);
            let _ = process::run(
                &mut self.ssh_command("sudo -n poweroff || poweroff"),
                half,
                true,
            );
            if let Some(status) = self.qemu.wait_until(half) {
                return Ok(status);
            }
        }
        tracing::debug!("powering off through ACPI (QMP system_powerdown)");
        match qmp::execute(&self.qmp, "system_powerdown", Duration::from_secs(5)) {
            Ok(_) => {
                if let Some(status) = self.qemu.wait_until(all) {
                    return Ok(status);
                }
            }
            Err(e) => tracing::debug!("{e}"),
        }
        tracing::debug!("the guest did not power off: QMP quit");
        if let Err(e) = qmp::execute(&self.qmp, "quit", Duration::from_secs(5)) {
            tracing::debug!("{e}");
        }
        if let Some(status) = self
            .qemu
            .wait_until(Deadline::after(Duration::from_secs(5)))
        {
            return Ok(status);
        }
        Ok(self.qemu.terminate(Duration::from_secs(3)))
    }

    /// Stops QEMU at once (`SIGTERM`, then `SIGKILL`) and returns its exit status.
    pub fn kill(self) -> ExitStatus {
        self.qemu.terminate(Duration::from_secs(3))
    }

    fn check_running(&self, waiting_for: &str) -> Result<()> {
        if process::interrupted() {
            return Err(Error::Interrupted);
        }
        if let Some(status) = self.qemu.try_wait() {
            return Err(self.exited(status, waiting_for));
        }
        if self.qemu.kvm_internal_error() {
            return Err(self.kvm_failed(waiting_for));
        }
        Ok(())
    }

    fn run_error(&self, e: RunError, waiting_for: &str, timeout: Duration) -> Result<()> {
        match e {
            RunError::Spawn(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::SshNotFound),
            RunError::Spawn(e) => Err(Error::io("cannot run ssh", e)),
            RunError::Interrupted => Err(Error::Interrupted),
            RunError::TimedOut => {
                self.check_running(waiting_for)?;
                Err(self.timeout(waiting_for, timeout))
            }
        }
    }

    fn timeout(&self, waiting_for: &str, after: Duration) -> Error {
        Error::Timeout {
            waiting_for: waiting_for.to_string(),
            after,
            console: self.console_tail(TAIL_LINES),
        }
    }

    fn exited(&self, status: ExitStatus, waiting_for: &str) -> Error {
        Error::Exited {
            status,
            waiting_for: waiting_for.to_string(),
            console: self.console_tail(TAIL_LINES),
            stderr: self.qemu.stderr(),
        }
    }

    fn kvm_failed(&self, waiting_for: &str) -> Error {
        Error::KvmFailed {
            waiting_for: waiting_for.to_string(),
            console: self.console_tail(TAIL_LINES),
            stderr: first_lines(&self.qemu.stderr(), 5),
        }
    }
}

/// Checks the files and values of `config`; returns the disk's format.
fn check(config: &VmConfig) -> Result<Option<ImageFormat>> {
    if config.memory_mib < 16 {
        return Err(Error::Config(format!(
            "{} MiB of memory is too little",
            config.memory_mib
        )));
    }
    if config.cpus == 0 || config.cpus > 255 {
        return Err(Error::Config(format!(
            "{} CPUs: give 1 to 255",
            config.cpus
        )));
    }
    if config.image.is_none() && config.kernel.is_none() {
        return Err(Error::Config(
            "nothing to boot: give a disk image or a kernel".into(),
        ));
    }
    if config.kernel.is_none() && (config.initrd.is_some() || config.append.is_some()) {
        return Err(Error::Config(
            "an initrd or kernel command line needs a kernel".into(),
        ));
    }
    let exists = |what, path: &Option<PathBuf>| match path {
        Some(p) if !p.exists() => Err(Error::NotFound {
            what,
            path: p.clone(),
        }),
        _ => Ok(()),
    };
    exists("image", &config.image)?;
    exists("kernel", &config.kernel)?;
    exists("initrd", &config.initrd)?;
    exists("SSH key", &config.ssh_key)?;
    if let Some(key) = &config.ssh_key
        && let Ok(meta) = fs::metadata(key)
        && meta.uid() == rustix::process::getuid().as_raw()
        && meta.mode() & 0o077 != 0
    {
        return Err(Error::Config(format!(
            "SSH key {} can be read by others (mode {:o}), so ssh would ignore it: \
             `chmod 600` it",
            key.display(),
            meta.mode() & 0o777
        )));
    }
    match &config.image {
        Some(image) => match config.format {
            Some(f) => Ok(Some(f)),
            None => ImageFormat::probe(image).map(Some),
        },
        None => Ok(None),
    }
}

/// A private temporary directory whose socket paths fit the 108 bytes of `sun_path`.
fn temp_dir() -> Result<TempDir> {
    let mut base = std::env::temp_dir();
    if base.as_os_str().len() > 64 {
        base = PathBuf::from("/tmp");
    }
    tempfile::Builder::new()
        .prefix("kiln-vm-")
        .tempdir_in(&base)
        .map_err(|e| {
            Error::io(
                format!("cannot create a directory in {}", base.display()),
                e,
            )
        })
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::io("cannot find a free port on 127.0.0.1", e))
}

/// Waits until QEMU answers on QMP (it is then past option parsing and device setup).
fn wait_until_up(qemu: &Tied, qmp_socket: &Path, accel: Accel) -> Result<()> {
    let deadline = Deadline::after(STARTUP_TIMEOUT);
    let mut last = String::new();
    loop {
        if let Some(status) = qemu.try_wait() {
            // Let the stderr reader catch QEMU's last words.
            thread::sleep(Duration::from_millis(100));
            return Err(Error::QemuFailed {
                status,
                stderr: qemu.stderr(),
                accel,
            });
        }
        if process::interrupted() {
            return Err(Error::Interrupted);
        }
        if qmp_socket.exists() {
            match qmp::execute(qmp_socket, "query-status", Duration::from_secs(5)) {
                Ok(status) => {
                    tracing::debug!("QEMU is up: {status}");
                    return Ok(());
                }
                Err(e) => last = e,
            }
        }
        if deadline.passed() {
            return Err(Error::Qmp(format!(
                "QEMU did not answer on {} within {} s ({last})",
                qmp_socket.display(),
                STARTUP_TIMEOUT.as_secs()
            )));
        }
        thread::sleep(POLL);
    }
}

/// `prefix` then `path` as one QEMU option value: commas doubled, as QEMU's option
/// parser wants.
pub(crate) fn qemu_path_opt(prefix: &str, path: &Path) -> OsString {
    let mut bytes = prefix.as_bytes().to_vec();
    for &b in path.as_os_str().as_bytes() {
        bytes.push(b);
        if b == b',' {
            bytes.push(b',');
        }
    }
    OsString::from_vec(bytes)
}

fn qemu_args(plan: &Plan) -> Vec<OsString> {
    let c = plan.config;
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |args: &[&str]| a.extend(args.iter().map(OsString::from));
    push(&["-name", "kiln-vm", "-machine", "q35"]);
    push(&[
        "-accel",
        plan.accel.qemu_name(),
        "-cpu",
        plan.accel.cpu_model(),
    ]);
    push(&["-m", &c.memory_mib.to_string(), "-smp", &c.cpus.to_string()]);
    push(&["-nodefaults", "-no-user-config", "-display", "none"]);
    if let Some((code, vars)) = &plan.uefi {
        a.push("-drive".into());
        a.push(qemu_path_opt(
            "if=pflash,format=raw,unit=0,readonly=on,file=",
            code,
        ));
        a.push("-drive".into());
        a.push(qemu_path_opt("if=pflash,format=raw,unit=1,file=", vars));
    }
    if let (Some(image), Some(ImageFormat::Iso)) = (&c.image, plan.format) {
        // A CD-ROM on the q35 machine's AHCI controller, first in the boot order.
        a.push("-drive".into());
        a.push(qemu_path_opt(
            "if=none,id=cd0,media=cdrom,readonly=on,format=raw,file=",
            image,
        ));
        a.push("-device".into());
        a.push("ide-cd,drive=cd0,bootindex=1".into());
    } else if let (Some(image), Some(format)) = (&c.image, plan.format) {
        let snapshot = if c.persist { "" } else { ",snapshot=on" };
        a.push("-drive".into());
        let mut drive = qemu_path_opt(
            &format!(
                "if=none,id=disk0,format={}{snapshot},file=",
                format.qemu_name()
            ),
            image,
        );
        drive.push(",discard=unmap");
        a.push(drive);
        a.push("-device".into());
        a.push("virtio-blk-pci,drive=disk0,bootindex=1".into());
    }
    if let Some(kernel) = &c.kernel {
        a.push("-kernel".into());
        a.push(kernel.into());
        if let Some(initrd) = &c.initrd {
            a.push("-initrd".into());
            a.push(initrd.into());
        }
        if let Some(append) = &c.append {
            a.push("-append".into());
            a.push(append.into());
        }
    }
    // Only loopback on the host; no option ROM, so the firmware never tries PXE.
    a.push("-netdev".into());
    a.push(
        format!(
            "user,id=n0,hostfwd=tcp:127.0.0.1:{}-:{GUEST_SSH_PORT}",
            plan.ssh_port
        )
        .into(),
    );
    a.push("-device".into());
    a.push("virtio-net-pci,netdev=n0,romfile=".into());
    // Entropy for early boot (sshd key generation) without waiting.
    a.push("-device".into());
    a.push("virtio-rng-pci".into());
    let mut chardev = OsString::from(match c.console {
        ConsoleMode::Terminal => "stdio,id=con0,mux=on,signal=off",
        ConsoleMode::Capture | ConsoleMode::Echo => "stdio,id=con0,signal=off",
    });
    if let Some(log) = &c.serial_log {
        chardev.push(qemu_path_opt(",logfile=", log));
    }
    a.push("-chardev".into());
    a.push(chardev);
    a.push("-serial".into());
    a.push("chardev:con0".into());
    if c.console == ConsoleMode::Terminal {
        a.push("-mon".into());
        a.push("chardev=con0,mode=readline".into());
    }
    a.push("-qmp".into());
    let mut qmp = qemu_path_opt("unix:", &plan.qmp);
    qmp.push(",server=on,wait=off");
    a.push(qmp);
    a.extend(c.extra_args.iter().cloned());
    a
}

fn ssh_args(port: u16, user: &str, key: Option<&Path>, cmd: &str) -> Vec<OsString> {
    let mut a: Vec<OsString> = [
        "StrictHostKeyChecking=no",
        "UserKnownHostsFile=/dev/null",
        "GlobalKnownHostsFile=/dev/null",
        "BatchMode=yes",
        "ConnectTimeout=5",
        "ServerAliveInterval=5",
        "ServerAliveCountMax=6",
        "LogLevel=ERROR",
    ]
    .iter()
    .flat_map(|o| ["-o".into(), OsString::from(o)])
    .collect();
    if let Some(key) = key {
        a.extend(["-o".into(), "IdentitiesOnly=yes".into(), "-i".into()]);
        a.push(key.into());
    }
    a.extend(["-p".into(), port.to_string().into()]);
    a.push(format!("{user}@127.0.0.1").into());
    a.push("--".into());
    a.push(cmd.into());
    a
}

fn first_lines(text: &str, n: usize) -> String {
    text.lines().take(n).collect::<Vec<_>>().join("\n")
}

/// The command line as a shell would take it (for logs).
fn shell_words(program: &Path, args: &[OsString]) -> String {
    std::iter::once(program.as_os_str())
        .chain(args.iter().map(OsString::as_os_str))
        .map(|w: &OsStr| {
            let s = w.to_string_lossy();
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+".contains(c))
            {
                s.into_owned()
            } else {
                format!("'{}'", s.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_of(config: &VmConfig, uefi: bool, format: Option<ImageFormat>) -> Vec<String> {
        let plan = Plan {
            config,
            format,
            uefi: uefi.then(|| ("/fw/CODE.fd".into(), "/run/vm/VARS.fd".into())),
            accel: Accel::Tcg,
            ssh_port: 2222,
            qmp: "/run/vm/qmp.sock".into(),
        };
        qemu_args(&plan)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    fn value_of<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn uefi_disk_boot_is_q35_with_ovmf_and_a_throwaway_overlay() {
        let config = VmConfig::new("/images/disk,1.qcow2");
        let args = args_of(&config, true, Some(ImageFormat::Qcow2));
        assert_eq!(value_of(&args, "-machine"), ["q35"]);
        assert_eq!(value_of(&args, "-accel"), ["tcg"]);
        assert_eq!(value_of(&args, "-m"), ["1024"]);
        assert_eq!(value_of(&args, "-smp"), ["2"]);
        assert_eq!(
            value_of(&args, "-drive"),
            [
                "if=pflash,format=raw,unit=0,readonly=on,file=/fw/CODE.fd",
                "if=pflash,format=raw,unit=1,file=/run/vm/VARS.fd",
                // The comma in the name is doubled.
                "if=none,id=disk0,format=qcow2,snapshot=on,file=/images/disk,,1.qcow2,discard=unmap",
            ]
        );
        assert!(value_of(&args, "-device").contains(&"virtio-blk-pci,drive=disk0,bootindex=1"));
        assert!(!args.iter().any(|a| a == "-kernel" || a == "-bios"));
    }

    #[test]
    fn bios_boot_has_no_pflash_and_persist_writes_the_image() {
        let mut config = VmConfig::new("/images/disk.vhd");
        config.firmware = Firmware::Bios;
        config.persist = true;
        let args = args_of(&config, false, Some(ImageFormat::Vhd));
        let drives = value_of(&args, "-drive");
        assert_eq!(
            drives,
            ["if=none,id=disk0,format=vpc,file=/images/disk.vhd,discard=unmap"]
        );
        assert_eq!(value_of(&args, "-machine"), ["q35"]);
    }

    #[test]
    fn an_iso_is_a_cdrom() {
        let args = args_of(&VmConfig::new("/live.iso"), false, Some(ImageFormat::Iso));
        assert_eq!(
            value_of(&args, "-drive"),
            ["if=none,id=cd0,media=cdrom,readonly=on,format=raw,file=/live.iso"]
        );
        assert!(value_of(&args, "-device").contains(&"ide-cd,drive=cd0,bootindex=1"));
        assert!(
            !value_of(&args, "-device")
                .iter()
                .any(|d| d.starts_with("virtio-blk"))
        );
    }

    #[test]
    fn ssh_is_forwarded_from_loopback_only() {
        let args = args_of(&VmConfig::new("/d.raw"), true, Some(ImageFormat::Raw));
        assert_eq!(
            value_of(&args, "-netdev"),
            ["user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22"]
        );
        assert!(value_of(&args, "-device").contains(&"virtio-net-pci,netdev=n0,romfile="));
        assert_eq!(
            value_of(&args, "-qmp"),
            ["unix:/run/vm/qmp.sock,server=on,wait=off"]
        );
    }

    #[test]
    fn console_modes() {
        let mut config = VmConfig::new("/d.raw");
        config.serial_log = Some("/logs/serial.log".into());
        let args = args_of(&config, true, Some(ImageFormat::Raw));
        assert_eq!(
            value_of(&args, "-chardev"),
            ["stdio,id=con0,signal=off,logfile=/logs/serial.log"]
        );
        assert_eq!(value_of(&args, "-serial"), ["chardev:con0"]);
        assert!(value_of(&args, "-mon").is_empty());
        config.console = ConsoleMode::Terminal;
        config.serial_log = None;
        let args = args_of(&config, true, Some(ImageFormat::Raw));
        assert_eq!(
            value_of(&args, "-chardev"),
            ["stdio,id=con0,mux=on,signal=off"]
        );
        assert_eq!(value_of(&args, "-mon"), ["chardev=con0,mode=readline"]);
    }

    #[test]
    fn direct_kernel_boot_without_disk() {
        let config = VmConfig {
            kernel: Some("/k/vmlinuz".into()),
            initrd: Some("/k/initrd".into()),
            append: Some("console=ttyS0 quiet".into()),
            memory_mib: 256,
            extra_args: vec!["-no-reboot".into()],
            ..VmConfig::default()
        };
        let args = args_of(&config, false, None);
        assert_eq!(value_of(&args, "-kernel"), ["/k/vmlinuz"]);
        assert_eq!(value_of(&args, "-initrd"), ["/k/initrd"]);
        assert_eq!(value_of(&args, "-append"), ["console=ttyS0 quiet"]);
        assert!(value_of(&args, "-drive").is_empty());
        assert_eq!(args.last().unwrap(), "-no-reboot");
        assert_eq!(value_of(&args, "-m"), ["256"]);
    }

    #[test]
    fn ssh_arguments() {
        let args: Vec<String> = ssh_args(2222, "admin", Some(Path::new("/k/id")), "-v; uname")
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let joined = args.join(" ");
        for opt in [
            "-o StrictHostKeyChecking=no",
            "-o UserKnownHostsFile=/dev/null",
            "-o BatchMode=yes",
            "-o ConnectTimeout=5",
            "-o IdentitiesOnly=yes -i /k/id",
            "-p 2222 admin@127.0.0.1 -- -v; uname",
        ] {
            assert!(joined.contains(opt), "{opt} in {joined}");
        }
        assert!(joined.ends_with("admin@127.0.0.1 -- -v; uname"));
        let no_key = ssh_args(22, "root", None, "true");
        assert!(!no_key.iter().any(|a| a == "-i"));
    }

    #[test]
    fn config_errors_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let err = |c: VmConfig| Vm::start(c).expect_err("must fail").to_string();
        let missing = err(VmConfig::new(dir.path().join("nope.qcow2")));
        assert!(
            missing.contains("image") && missing.contains("does not exist"),
            "{missing}"
        );
        assert!(err(VmConfig::default()).contains("nothing to boot"));
        let key = dir.path().join("id");
        fs::write(&key, "k").unwrap();
        fs::write(dir.path().join("k"), "").unwrap();
        let e = err(VmConfig {
            kernel: Some(dir.path().join("k")),
            ssh_key: Some(key),
            ..VmConfig::default()
        });
        assert!(e.contains("chmod 600"), "{e}");
        let e = err(VmConfig {
            kernel: Some(dir.path().join("k")),
            firmware: Firmware::Bios,
            accel: crate::AccelChoice::Tcg,
            qemu: "/nonexistent/qemu-system-x86_64".into(),
            ..VmConfig::default()
        });
        assert!(e.contains("apt-get install qemu-system-x86"), "{e}");
    }

    #[test]
    fn vm_can_be_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Vm>();
        send_sync::<Error>();
    }

    #[test]
    fn shell_words_quotes() {
        let s = shell_words(
            Path::new("qemu"),
            &["-append".into(), "console=ttyS0 quiet".into()],
        );
        assert_eq!(s, "qemu -append 'console=ttyS0 quiet'");
    }
}
