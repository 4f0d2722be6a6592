//! Real boots, quick ones: no disk image is needed.
//!
//! * A 70-byte multiboot kernel made here (it prints a line on the serial port, then
//!   powers the machine off through ACPI, or halts) boots in well under a second even
//!   under TCG: console capture, waits, shutdown, and that no QEMU is left behind.
//! * A Linux kernel with a busybox initramfs assembled here, under BIOS and UEFI, when
//!   a kernel is available: `$KILN_TEST_KERNEL`, else `/boot/vmlinuz-*` (skipped, and
//!   said so, without one).
//!
//! Needs `qemu-system-x86` and `ovmf`; the Linux tests need `busybox-static`.
//! SSH into a real guest is left to the image tests (there is no sshd to boot here); the
//! SSH wait is checked against a guest without one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kiln_vm::{AccelChoice, Error, Firmware, Vm, VmConfig};

const MARKER: &str = "KILN-VM-TEST-MARKER";

/// A multiboot (v1, a.out kludge) kernel loaded at 1 MiB that writes `message` to COM1
/// and then either powers off (ACPI PM1a control on QEMU's q35 at 0x604, S5) or halts.
fn multiboot_kernel(message: &str, power_off: bool) -> Vec<u8> {
    const BASE: u32 = 0x10_0000;
    const MAGIC: u32 = 0x1BAD_B002;
    const FLAGS: u32 = 1 << 16; // addresses in the header
    let mut k = Vec::new();
    for word in [
        MAGIC,
        FLAGS,
        MAGIC.wrapping_add(FLAGS).wrapping_neg(),
        BASE,        // header_addr
        BASE,        // load_addr
        0,           // load_end_addr: the whole file
        0,           // bss_end_addr: none
        BASE + 0x20, // entry
    ] {
        k.extend_from_slice(&word.to_le_bytes());
    }
    let msg_addr = BASE + 0x3f;
    k.push(0xbe); // mov esi, msg
    k.extend_from_slice(&msg_addr.to_le_bytes());
    k.extend_from_slice(&[0x66, 0xba, 0xf8, 0x03]); // mov dx, 0x3f8
    k.extend_from_slice(&[0xac, 0x84, 0xc0, 0x74, 0x03, 0xee, 0xeb, 0xf8]); // lodsb; test al,al; jz +3; out dx,al; jmp -8
    if power_off {
        // mov dx, 0x604; mov ax, 0x2000; out dx, ax
        k.extend_from_slice(&[0x66, 0xba, 0x04, 0x06, 0x66, 0xb8, 0x00, 0x20, 0x66, 0xef]);
    } else {
        k.extend_from_slice(&[0x90; 10]);
    }
    k.extend_from_slice(&[0xfa, 0xf4, 0xeb, 0xfc]); // cli; hlt; jmp -4
    assert_eq!(k.len(), 0x3f);
    k.extend_from_slice(message.as_bytes());
    k.extend_from_slice(b"\r\n\0");
    k
}

struct Guest {
    dir: tempfile::TempDir,
    config: VmConfig,
}

fn multiboot_guest(power_off: bool) -> Guest {
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("kernel.mb");
    std::fs::write(&kernel, multiboot_kernel(MARKER, power_off)).unwrap();
    let config = VmConfig {
        kernel: Some(kernel),
        firmware: Firmware::Bios,
        memory_mib: 64,
        cpus: 1,
        shutdown_timeout: Duration::from_secs(2),
        ..VmConfig::default()
    };
    Guest { dir, config }
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &Path) -> Vec<String> {
    let needle = needle.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&needle) && cmdline.contains("qemu") {
                found.push(format!(
                    "{}: {cmdline}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
    }
    found
}

fn assert_gone(pid: u32, dir: &Path) {
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "qemu {pid} still there"
    );
    assert_eq!(processes_mentioning(dir), Vec::<String>::new());
}

#[test]
fn guest_prints_on_the_serial_console_and_powers_off() {
    let mut g = multiboot_guest(true);
    let log = g.dir.path().join("serial.log");
    g.config.serial_log = Some(log.clone());
    let t = Instant::now();
    let vm = Vm::start(g.config.clone()).unwrap();
    let pid = vm.pid();
    eprintln!("accelerator: {}", vm.accel());
    vm.wait_for_console(MARKER, Duration::from_secs(60))
        .unwrap();
    let status = vm.wait(Duration::from_secs(60)).unwrap();
    assert!(status.success(), "{status}");
    assert!(!vm.is_running());
    assert_eq!(vm.console_tail(5), MARKER);
    // A wait after the guest is gone says so.
    let err = vm
        .wait_for_console("never printed", Duration::from_secs(30))
        .unwrap_err();
    assert!(matches!(err, Error::Exited { .. }), "{err}");
    assert!(err.to_string().contains(MARKER), "{err}");
    assert_eq!(vm.shutdown().unwrap(), status);
    eprintln!("multiboot boot to power-off: {:?}", t.elapsed());
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        format!("{MARKER}\r\n")
    );
    assert_gone(pid, g.dir.path());
}

#[test]
fn shutdown_stops_a_guest_that_ignores_acpi_and_ssh_wait_reports_the_console() {
    let g = multiboot_guest(false);
    let vm = Vm::start(g.config.clone()).unwrap();
    let pid = vm.pid();
    vm.wait_for_console(MARKER, Duration::from_secs(60))
        .unwrap();
    // Nothing listens on port 22 of this guest: the wait times out and tells how far
    // the boot got.
    let t = Instant::now();
    let err = vm.wait_for_ssh(Duration::from_secs(4)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Timeout { .. }), "{text}");
    assert!(
        text.contains(&format!("127.0.0.1:{}", vm.ssh_port())),
        "{text}"
    );
    assert!(text.contains(MARKER), "{text}");
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    // The halted guest does not react to the power button: QMP quit ends it.
    let t = Instant::now();
    let status = vm.shutdown().unwrap();
    eprintln!("shutdown of a halted guest: {:?} ({status})", t.elapsed());
    assert!(t.elapsed() < Duration::from_secs(20));
    assert_gone(pid, g.dir.path());
}

#[test]
fn dropping_the_vm_leaves_no_qemu_behind() {
    let g = multiboot_guest(false);
    let vm = Vm::start(g.config.clone()).unwrap();
    let pid = vm.pid();
    assert!(vm.is_running());
    assert_eq!(processes_mentioning(g.dir.path()).len(), 1);
    drop(vm);
    assert_gone(pid, g.dir.path());
}

#[test]
fn a_timeout_says_how_far_the_boot_got() {
    let g = multiboot_guest(false);
    let vm = Vm::start(g.config.clone()).unwrap();
    let err = vm
        .wait_for_console("login:", Duration::from_secs(3))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("timed out after 3s waiting for \"login:\""),
        "{err}"
    );
    assert!(err.contains(&format!("last lines:\n  | {MARKER}")), "{err}");
    assert!(vm.is_running());
}

#[test]
fn qemu_errors_are_shown() {
    let mut g = multiboot_guest(false);
    g.config.accel = AccelChoice::Tcg;
    g.config.extra_args = vec!["-device".into(), "no-such-device".into()];
    let err = Vm::start(g.config.clone()).unwrap_err().to_string();
    assert!(err.contains("QEMU failed to start"), "{err}");
    assert!(err.contains("no-such-device"), "{err}");
}

#[test]
fn a_taken_ssh_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut g = multiboot_guest(false);
    g.config.ssh_port = Some(taken.local_addr().unwrap().port());
    let err = Vm::start(g.config.clone()).unwrap_err().to_string();
    assert!(err.contains("host forwarding"), "{err}");
}

// ---- Linux with a busybox initramfs ----

fn linux_kernel() -> Option<PathBuf> {
    if let Some(k) = std::env::var_os("KILN_TEST_KERNEL") {
        return Some(k.into());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/boot")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
                && std::fs::File::open(p).is_ok()
        })
        .collect();
    found.sort();
    found.pop()
}

/// A newc cpio archive (what the kernel unpacks as initramfs).
#[derive(Default)]
struct Cpio(Vec<u8>);

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        let ino = self.0.len() as u32 + 1;
        let fields = [
            ino,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.0.extend_from_slice(b"070701");
        for f in fields {
            self.0.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.0.extend_from_slice(name.as_bytes());
        self.0.push(0);
        self.pad();
        self.0.extend_from_slice(data);
        self.pad();
    }
    fn pad(&mut self) {
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
    }
    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.0
    }
}

fn busybox_initramfs() -> Vec<u8> {
    let busybox =
        std::fs::read("/bin/busybox").expect("/bin/busybox (apt-get install busybox-static)");
    let init = format!(
        "#!/bin/busybox sh\n\
         /bin/busybox mount -t proc proc /proc\n\
         echo \"{MARKER} $(/bin/busybox uname -r) $(/bin/busybox cat /proc/cmdline)\"\n\
         /bin/busybox poweroff -f\n"
    );
    let mut c = Cpio::default();
    for dir in ["bin", "dev", "proc"] {
        c.entry(dir, 0o040755, (0, 0), &[]);
    }
    c.entry("dev/console", 0o020600, (5, 1), &[]);
    c.entry("bin/busybox", 0o100755, (0, 0), &busybox);
    c.entry("init", 0o100755, (0, 0), init.as_bytes());
    c.finish()
}

fn boot_linux(firmware: Firmware) {
    let Some(kernel) = linux_kernel() else {
        eprintln!(
            "SKIPPED: no Linux kernel (set KILN_TEST_KERNEL, or install one in /boot, \
             e.g. `apt-get install linux-image-cloud-amd64`)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("initrd.cpio");
    std::fs::write(&initrd, busybox_initramfs()).unwrap();
    let config = VmConfig {
        kernel: Some(kernel.clone()),
        initrd: Some(initrd),
        append: Some("console=ttyS0 quiet panic=-1".into()),
        firmware,
        memory_mib: 256,
        cpus: 1,
        extra_args: vec!["-no-reboot".into()],
        ..VmConfig::default()
    };
    let t = Instant::now();
    let vm = Vm::start(config).unwrap();
    let pid = vm.pid();
    vm.wait_for_console(&format!("{MARKER} "), Duration::from_secs(240))
        .unwrap();
    let status = vm.wait(Duration::from_secs(120)).unwrap();
    eprintln!(
        "{firmware} boot of {} to power-off under {}: {:?}",
        kernel.display(),
        vm.accel().accel,
        t.elapsed()
    );
    assert!(status.success(), "{status}");
    let line = vm
        .console_text()
        .lines()
        .find(|l| l.starts_with(MARKER))
        .unwrap()
        .to_string();
    assert!(line.contains("console=ttyS0 quiet"), "{line}");
    drop(vm);
    assert_gone(pid, dir.path());
}

#[test]
fn linux_with_busybox_initramfs_under_bios() {
    boot_linux(Firmware::Bios);
}

#[test]
fn linux_with_busybox_initramfs_under_uefi() {
    boot_linux(Firmware::Uefi);
}
