//! `kiln boot IMAGE`: boots an image in QEMU to check it (see the `kiln-vm` crate).
//!
//! Four ways to use it:
//! * on a terminal, without `--exec`/`--expect`: the serial console is the terminal
//!   (Ctrl-A X quits);
//! * `--exec CMD`: headless; waits for SSH, runs CMD in the guest, prints its output,
//!   powers the guest off and exits with CMD's status;
//! * `--expect PATTERN`: headless; waits until the console prints PATTERN, powers off;
//! * otherwise (no terminal): the console is copied to stdout until the guest powers off.
//!
//! `--timeout` bounds the headless ways; the console's last lines are shown when it runs
//! out or the guest stops early.

use anyhow::{Context as _, Result};
use kiln_vm::{AccelChoice, ConsoleMode, Error, Firmware, ImageFormat, Vm, VmConfig};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// The disk image. It is never modified unless --persist is given (writes go to a
    /// throw-away overlay).
    #[arg(required_unless_present = "kernel")]
    image: Option<PathBuf>,
    /// Boot with legacy BIOS (SeaBIOS) instead of UEFI (OVMF).
    #[arg(long)]
    bios: bool,
    /// The image's format [default: probed with `qemu-img info`, else the extension].
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Guest memory.
    #[arg(long, default_value_t = 1024, value_name = "MiB")]
    memory: u32,
    /// Virtual CPUs.
    #[arg(long, default_value_t = 2, value_name = "N")]
    cpus: u32,
    /// Accelerator: `auto` uses KVM when a probe boot shows it works here, else TCG.
    #[arg(long, value_enum, default_value_t = Accel::Auto)]
    accel: Accel,
    /// Copy the serial console to FILE.
    #[arg(long, value_name = "FILE")]
    serial_log: Option<PathBuf>,
    /// Host port (on 127.0.0.1 only) forwarded to the guest's SSH port 22 [default: a
    /// free one].
    #[arg(long, value_name = "PORT")]
    ssh_port: Option<u16>,
    /// The user --exec logs in as.
    #[arg(long, default_value = "root", value_name = "USER")]
    ssh_user: String,
    /// Private key for --exec [default: ssh's own choice: agent, ~/.ssh].
    #[arg(long, value_name = "FILE")]
    ssh_key: Option<PathBuf>,
    /// Wait for SSH, run CMD in the guest, print its output, power off, exit with its
    /// status.
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,
    /// Wait until the serial console prints PATTERN (e.g. "login:"), then power off.
    #[arg(long, value_name = "PATTERN", conflicts_with = "exec")]
    expect: Option<String>,
    /// Give up after SECS (boot, SSH and --exec's command together); not applied on a
    /// terminal session.
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    timeout: u64,
    /// Write to the image instead of a throw-away overlay.
    #[arg(long)]
    persist: bool,
    /// Boot this kernel directly (Linux bzImage or multiboot), with or without a disk.
    #[arg(long, value_name = "FILE")]
    kernel: Option<PathBuf>,
    /// The initrd of --kernel.
    #[arg(long, value_name = "FILE", requires = "kernel")]
    initrd: Option<PathBuf>,
    /// The kernel command line of --kernel (e.g. "console=ttyS0 root=/dev/vda2").
    #[arg(long, value_name = "ARGS", requires = "kernel")]
    append: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Qcow2,
    Raw,
    Vmdk,
    Vhd,
    Vhdx,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Accel {
    Auto,
    Kvm,
    Tcg,
}

impl From<Format> for ImageFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Qcow2 => ImageFormat::Qcow2,
            Format::Raw => ImageFormat::Raw,
            Format::Vmdk => ImageFormat::Vmdk,
            Format::Vhd => ImageFormat::Vhd,
            Format::Vhdx => ImageFormat::Vhdx,
        }
    }
}

/// What the session does once the VM runs.
enum Mode {
    Terminal,
    Exec(String),
    Expect(String),
    UntilPowerOff,
}

const INTERRUPTED: u8 = 130;

pub fn run(args: Args) -> Result<ExitCode> {
    kiln_vm::handle_signals().context("cannot install signal handlers")?;
    let mode = match (&args.exec, &args.expect) {
        (Some(cmd), _) => Mode::Exec(cmd.clone()),
        (None, Some(pattern)) => Mode::Expect(pattern.clone()),
        (None, None) if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() => {
            Mode::Terminal
        }
        (None, None) => Mode::UntilPowerOff,
    };
    let what = args
        .image
        .as_ref()
        .or(args.kernel.as_ref())
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let config = VmConfig {
        image: args.image,
        format: args.format.map(Into::into),
        persist: args.persist,
        firmware: if args.bios {
            Firmware::Bios
        } else {
            Firmware::Uefi
        },
        kernel: args.kernel,
        initrd: args.initrd,
        append: args.append,
        memory_mib: args.memory,
        cpus: args.cpus,
        accel: match args.accel {
            Accel::Auto => AccelChoice::Auto,
            Accel::Kvm => AccelChoice::Kvm,
            Accel::Tcg => AccelChoice::Tcg,
        },
        console: match mode {
            Mode::Terminal => ConsoleMode::Terminal,
            Mode::UntilPowerOff => ConsoleMode::Echo,
            Mode::Exec(_) | Mode::Expect(_) => ConsoleMode::Capture,
        },
        serial_log: args.serial_log,
        ssh_port: args.ssh_port,
        ssh_user: args.ssh_user.clone(),
        ssh_key: args.ssh_key,
        ..VmConfig::default()
    };
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let vm = match Vm::start(config) {
        Ok(vm) => vm,
        Err(Error::Interrupted) => return Ok(ExitCode::from(INTERRUPTED)),
        Err(e) => return Err(e).with_context(|| format!("cannot boot {what}")),
    };
    eprintln!(
        "kiln: booting {what} with {} under {}",
        vm.firmware(),
        vm.accel()
    );
    eprintln!(
        "kiln: SSH forwarded: ssh -p {} {}@127.0.0.1",
        vm.ssh_port(),
        args.ssh_user
    );
    let left = || deadline.saturating_duration_since(Instant::now());
    let outcome = match &mode {
        Mode::Terminal => {
            eprintln!("kiln: serial console attached: Ctrl-A X quits, Ctrl-A C is QEMU's monitor");
            vm.wait(Duration::MAX).map(|st| (st.success(), None))
        }
        Mode::UntilPowerOff => vm.wait(left()).map(|st| (st.success(), None)),
        Mode::Expect(pattern) => vm.wait_for_console(pattern, left()).map(|()| {
            eprintln!("kiln: the console printed {pattern:?}");
            (true, None)
        }),
        Mode::Exec(cmd) => vm
            .wait_for_ssh(left())
            .and_then(|()| vm.ssh_streamed(cmd, left()))
            .map(|st| (true, Some(st.code().unwrap_or(1)))),
    };
    match outcome {
        Ok((qemu_ok, command_status)) => {
            if vm.is_running() {
                eprintln!("kiln: powering the guest off");
            }
            let status = vm.shutdown().context("cannot power the VM off")?;
            if let Some(code) = command_status {
                return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
            }
            if !qemu_ok || !status.success() {
                anyhow::bail!("QEMU exited with {status}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            // An image being written to gets a proper power-off; a throw-away overlay
            // needs none (dropping the VM stops QEMU).
            if args.persist && !matches!(e, Error::Interrupted) {
                let _ = vm.shutdown();
            } else {
                drop(vm);
            }
            if matches!(e, Error::Interrupted) {
                eprintln!("kiln: interrupted");
                return Ok(ExitCode::from(INTERRUPTED));
            }
            Err(e).with_context(|| format!("booting {what}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn defaults_and_flags() {
        let a = Cli::try_parse_from(["boot", "disk.qcow2"]).unwrap().args;
        assert_eq!((a.memory, a.cpus, a.timeout), (1024, 2, 600));
        assert!(!a.bios && !a.persist && a.ssh_port.is_none() && a.format.is_none());
        let a = Cli::try_parse_from([
            "boot",
            "--bios",
            "--format",
            "vhd",
            "--accel",
            "tcg",
            "--exec",
            "uname -a",
            "--ssh-port",
            "2222",
            "disk.vhd",
        ])
        .unwrap()
        .args;
        assert!(a.bios && matches!(a.format, Some(Format::Vhd)) && matches!(a.accel, Accel::Tcg));
        assert_eq!(a.exec.as_deref(), Some("uname -a"));
    }

    #[test]
    fn an_image_or_a_kernel_is_needed() {
        assert!(Cli::try_parse_from(["boot"]).is_err());
        assert!(Cli::try_parse_from(["boot", "--kernel", "k", "--append", "quiet"]).is_ok());
        assert!(Cli::try_parse_from(["boot", "d.raw", "--initrd", "i"]).is_err());
        assert!(Cli::try_parse_from(["boot", "d.raw", "--exec", "x", "--expect", "y"]).is_err());
    }
}
