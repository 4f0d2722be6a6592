//! kiln-vm: boots an image (or a kernel) in QEMU to check it, as `kiln boot` and the
//! image tests do.
//!
//! ```no_run
//! use std::time::Duration;
//! use kiln_vm::{Vm, VmConfig};
//!
//! let mut config = VmConfig::new("disk.qcow2");
//! config.ssh_user = "admin".into();
//! config.ssh_key = Some("id_ed25519".into());
//! let vm = Vm::start(config)?;
//! vm.wait_for_console("login:", Duration::from_secs(600))?;
//! vm.wait_for_ssh(Duration::from_secs(300))?;
//! let out = vm.ssh("systemctl is-system-running --wait")?;
//! vm.shutdown()?;
//! # Ok::<(), kiln_vm::Error>(())
//! ```
//!
//! # What runs
//!
//! One `qemu-system-x86_64` per [`Vm`]: machine `q35`, UEFI through the host's OVMF
//! (`/usr/share/OVMF/OVMF_CODE_4M.fd` read-only, plus a private copy of `OVMF_VARS_4M.fd`
//! in the VM's temporary directory, so the host's template is never written) or SeaBIOS
//! with [`Firmware::Bios`]. The disk is a `virtio-blk` device opened with `snapshot=on`:
//! writes go to a throw-away overlay and the image is never modified unless
//! [`VmConfig::persist`] is set. A kernel, initrd and command line can be given instead of
//! (or besides) a disk for direct kernel boots.
//!
//! Networking is QEMU's user-mode stack (slirp) with a `virtio-net` card and one forward:
//! `127.0.0.1:PORT` on the host to port 22 of the guest. Nothing listens on any other host
//! address. The card has no option ROM, so firmware never tries to boot from the network.
//!
//! The serial console (`ttyS0`) is either handed to the terminal ([`ConsoleMode::Terminal`],
//! for people: Ctrl-A X quits) or captured ([`ConsoleMode::Capture`]): the last megabyte
//! stays in memory for [`Vm::wait_for_console`] and [`Vm::console_tail`], so that every
//! timeout or failure can say how far the boot got, and QEMU copies it to
//! [`VmConfig::serial_log`] when one is given. QEMU's own messages (stderr) are captured
//! too and shown when it fails. A QMP socket in the temporary directory is used to learn
//! that QEMU is up and to power the guest off.
//!
//! # KVM, and why it is probed
//!
//! `/dev/kvm` opening is not enough: under nested virtualization it can open fine and
//! still be unusable. On kiln's CI machines `-cpu host` makes QEMU abort while it sets
//! MSRs; with QEMU's default CPU, OVMF hits `KVM internal error` early, at an FPU
//! instruction, and SeaBIOS hangs right before it boots. [`Accel::detect`] therefore
//! boots the firmware itself, without a disk, under `-accel kvm -cpu host` (what a real
//! boot would use), and waits for a milestone that only working firmware reaches: OVMF
//! printing `BdsDxe` (its boot manager) on the serial port, and SeaBIOS printing
//! `Booting from` / `No bootable device` on its debug port (`-debugcon`, I/O port 0x402;
//! Debian's OVMF is a release build and prints nothing there). Both run in parallel; a
//! `KVM internal error` on stderr, an early exit of QEMU, or no milestone within
//! [`PROBE_TIMEOUT`] (10 s) means KVM is not usable, and TCG is used. The tests
//! check that the same milestones are reached under TCG (about 5 s for OVMF, 0.2 s for
//! SeaBIOS), so a broken probe cannot pass for broken KVM.
//!
//! Cost: about 50 ms where QEMU fails at once (as here), the time OVMF needs to reach its
//! boot manager where KVM works (well under the TCG figure), and the full 10 s only where
//! the firmware hangs silently. The verdict is cached for the host's boot in
//! `$XDG_RUNTIME_DIR/kiln/kvm-probe.json` (else `/tmp/kiln-UID/`), keyed by boot id,
//! kernel release, QEMU version and OVMF build, and every decision is logged with its
//! reason ([`AccelDecision::reason`]). [`AccelChoice::Kvm`] skips the probe.
//!
//! # No QEMU left behind
//!
//! QEMU is started from a thread that lives as long as its [`Vm`], with
//! `PR_SET_PDEATHSIG=SIGTERM`: if the process dies, even by `SIGKILL`, the kernel
//! terminates QEMU. Dropping a `Vm` terminates QEMU (`SIGTERM`, then `SIGKILL`) and reaps
//! it; [`Vm::shutdown`] first asks the guest to power off (over SSH when it answered,
//! then ACPI through QMP), then QMP `quit`, then kills. [`handle_signals`] makes
//! `SIGINT`/`SIGTERM`/`SIGHUP` end every wait with [`Error::Interrupted`], so callers
//! unwind and drop their VMs.
//!
//! # Host packages
//!
//! `qemu-system-x86` (QEMU), `ovmf` (UEFI), `qemu-utils` (format probing with `qemu-img`)
//! and `openssh-client` (`ssh`). On Debian 12 install them together, or installing
//! `qemu-system-x86` removes the newer preinstalled `qemu-utils`:
//! `apt-get install --allow-downgrades qemu-utils/bookworm qemu-system-x86 ovmf`.

mod accel;
mod config;
mod console;
mod process;
mod qmp;
mod vm;

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

pub use accel::{Accel, AccelChoice, AccelDecision, PROBE_TIMEOUT};
pub use config::{ConsoleMode, Firmware, ImageFormat, Ovmf, VmConfig};
pub use process::handle_signals;
pub use vm::Vm;

/// The QEMU binary used unless [`VmConfig::qemu`] says otherwise.
pub const DEFAULT_QEMU: &str = "qemu-system-x86_64";

/// The port forwarded to the guest's SSH server (on the guest side).
pub const GUEST_SSH_PORT: u16 = 22;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a VM could not be started, or a wait did not end as hoped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The QEMU binary is not installed.
    #[error(
        "{} not found: install QEMU with `apt-get install qemu-system-x86`",
        program.display()
    )]
    QemuNotFound {
        /// The program that was run.
        program: PathBuf,
    },

    /// `ssh` is not installed.
    #[error("ssh not found: install it with `apt-get install openssh-client`")]
    SshNotFound,

    /// The image (or kernel, initrd, key) does not exist.
    #[error("{what} {} does not exist", path.display())]
    NotFound {
        /// "image", "kernel", "initrd", "SSH key".
        what: &'static str,
        /// The path given.
        path: PathBuf,
    },

    /// The image's format could not be found out, or is not one kiln boots.
    #[error(
        "cannot tell the format of {}: {detail}; pass --format (qcow2, raw, vmdk, vhd or vhdx)",
        path.display()
    )]
    UnknownFormat {
        /// The image.
        path: PathBuf,
        /// What was tried.
        detail: String,
    },

    /// The host has no OVMF.
    #[error(
        "UEFI firmware (OVMF) not found (looked for {looked}): install it with \
         `apt-get install ovmf`, or boot with legacy BIOS (--bios)"
    )]
    OvmfNotFound {
        /// The files looked for.
        looked: String,
    },

    /// The configuration cannot work (a value out of range, an initrd without kernel, ...).
    #[error("invalid VM configuration: {0}")]
    Config(String),

    /// QEMU exited before it was up (bad option, unreadable image, locked image, ...).
    #[error(
        "QEMU failed to start under {accel} ({status}){}{}",
        report("QEMU said", .stderr),
        if *.accel == Accel::Kvm { "\n(KVM was requested: use --accel auto or tcg)" } else { "" }
    )]
    QemuFailed {
        /// How it exited.
        status: ExitStatus,
        /// What it printed on stderr.
        stderr: String,
        /// The accelerator it was started with.
        accel: Accel,
    },

    /// QEMU exited (the guest powered off, or QEMU failed) while something was awaited.
    #[error(
        "the VM stopped ({status}) while waiting for {waiting_for}{}{}",
        console_report(.console),
        report("QEMU said", .stderr)
    )]
    Exited {
        /// How QEMU exited.
        status: ExitStatus,
        /// What was awaited.
        waiting_for: String,
        /// The last lines of the serial console.
        console: String,
        /// What QEMU printed on stderr.
        stderr: String,
    },

    /// QEMU reported a KVM internal error: KVM does not work on this host.
    #[error(
        "QEMU reported a KVM internal error while waiting for {waiting_for}: KVM is not usable \
         on this host, boot with --accel tcg (or auto){}{}",
        console_report(.console),
        report("QEMU said", .stderr)
    )]
    KvmFailed {
        /// What was awaited.
        waiting_for: String,
        /// The last lines of the serial console.
        console: String,
        /// What QEMU printed on stderr.
        stderr: String,
    },

    /// A wait ran out of time; the console tail tells how far the boot got.
    #[error(
        "timed out after {:.0}s waiting for {waiting_for}{}",
        after.as_secs_f64(),
        console_report(.console)
    )]
    Timeout {
        /// What was awaited.
        waiting_for: String,
        /// The time allowed.
        after: Duration,
        /// The last lines of the serial console.
        console: String,
    },

    /// `SIGINT`, `SIGTERM` or `SIGHUP` arrived (see [`handle_signals`]).
    #[error("interrupted")]
    Interrupted,

    /// The console is attached to the terminal, so it cannot be read.
    #[error("the serial console is attached to the terminal ({0} needs ConsoleMode::Capture)")]
    ConsoleNotCaptured(&'static str),

    /// Talking to QEMU's QMP socket failed.
    #[error("QMP: {0}")]
    Qmp(String),

    /// An I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// `"; the serial console's last lines:\n  | ..."`, or what an empty console means.
fn console_report(console: &str) -> String {
    if console.trim().is_empty() {
        return "; the serial console printed nothing (is the guest's console on ttyS0, \
                e.g. `console=ttyS0` on the kernel command line?)"
            .to_string();
    }
    report("the serial console's last lines", console)
}

fn report(title: &str, text: &str) -> String {
    let text = text.trim_end();
    if text.is_empty() {
        return String::new();
    }
    let mut s = format!("; {title}:");
    for line in text.lines() {
        s.push_str("\n  | ");
        s.push_str(line);
    }
    s
}
