//! The image end to end, as a user would check it: `kiln build` of a blueprint with a
//! hostname, a user (SSH key and password), an extra package, an enabled service, a file,
//! a timezone and a kernel argument, as qcow2, raw, vmdk and vhdx in one run (one
//! depsolve, one OS tree), twice from empty stores (the qcow2 and raw images must be
//! bit-for-bit equal); then the qcow2 booted under UEFI, logged into over SSH as that user and every
//! customization checked from inside; then the raw image booted under legacy BIOS to its
//! login prompt. QEMU runs under KVM when the probe finds it usable, else TCG (about 90 s
//! to a login prompt on 2 cores): two boots in all.
//!
//! Uses the real archive through the host's apt sources, root, bubblewrap, QEMU and OVMF
//! (`scripts/install-deps`).

mod common;
use common::{run, sha256};
use kiln_vm::{Firmware, Vm, VmConfig};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const PASSWORD: &str = "kiln-e2e-Secret";

fn blueprint(dir: &Path, pubkey: &str) -> std::path::PathBuf {
    let text = format!(
        r#"name = "boot-e2e"
description = "every customization the boot test checks"
version = "1.0.0"

[[packages]]
name = "sudo"

[[packages]]
name = "tree"

[customizations]
hostname = "kiln-e2e"

[customizations.kernel]
append = "kiln.e2e=1"

[[customizations.user]]
name = "alice"
description = "Alice E2E"
password = "{PASSWORD}"
key = "{pubkey}"
groups = ["sudo"]
shell = "/bin/bash"

[customizations.timezone]
timezone = "Europe/Paris"

[customizations.services]
enabled = ["getty@tty2.service"]

[[customizations.files]]
path = "/etc/kiln-e2e.conf"
mode = "0640"
data = "built by kiln\n"
"#
    );
    let path = dir.join("boot-e2e.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn qcow2_under_uefi_over_ssh_and_raw_under_bios() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key));
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let bp = blueprint(dir.path(), pubkey.trim());
    let build = |store: &Path, out: &Path| {
        run(Command::new(env!("CARGO_BIN_EXE_kiln"))
            .arg("--store")
            .arg(store)
            .arg("build")
            .arg(&bp)
            .args(["--distro", "debian-12", "--progress", "none"])
            .args([
                "--type", "qcow2", "--type", "raw", "--type", "vmdk", "--type", "vhdx",
            ])
            .arg("--output")
            .arg(out)
            // The same manifest whatever the archive's Release dates say.
            .env("SOURCE_DATE_EPOCH", "1700000000"));
    };
    let out = dir.path().join("out");
    build(&dir.path().join("store"), &out);
    let qcow2 = out.join("disk.qcow2");
    let raw = out.join("disk.raw");

    // Bit for bit: a second build from another empty store, at another time, gives the
    // same images.
    let again = dir.path().join("again");
    build(&dir.path().join("store2"), &again);
    for f in ["disk.qcow2", "disk.raw", "disk.vmdk"] {
        assert_eq!(
            sha256(&out.join(f)),
            sha256(&again.join(f)),
            "{f} is not reproducible"
        );
    }
    std::fs::remove_dir_all(dir.path().join("store2")).unwrap();
    std::fs::remove_dir_all(&again).unwrap();

    // The files are what they claim to be.
    for (file, format) in [
        ("disk.qcow2", "qcow2"),
        ("disk.vmdk", "vmdk"),
        ("disk.vhdx", "vhdx"),
    ] {
        let path = out.join(file);
        let info = run(Command::new("qemu-img")
            .args(["info", "--output=json"])
            .arg(&path));
        let info: serde_json::Value = serde_json::from_str(&info).unwrap();
        assert_eq!(info["format"], format, "{file}");
        if format == "vmdk" {
            assert_eq!(
                info["format-specific"]["data"]["create-type"],
                "streamOptimized"
            );
            assert_eq!(info["virtual-size"], 4u64 << 30);
        }
        run(Command::new("qemu-img").arg("check").arg(&path));
    }
    let info = run(Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&qcow2));
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], 10u64 << 30);
    let table = run(Command::new("sfdisk").args(["--json"]).arg(&raw));
    let table: serde_json::Value = serde_json::from_str(&table).unwrap();
    let types: Vec<&str> = table["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "21686148-6449-6E6F-744E-656564454649",
            "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
            "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
        ]
    );

    // UEFI, SSH as the blueprint's user, every customization from inside.
    let mut config = VmConfig::new(&qcow2);
    config.ssh_user = "alice".into();
    config.ssh_key = Some(key.clone());
    config.serial_log = Some(dir.path().join("uefi-console.log"));
    let vm = Vm::start(config).unwrap();
    eprintln!(
        "booting {} under UEFI with {:?}",
        qcow2.display(),
        vm.accel()
    );
    vm.wait_for_ssh(Duration::from_secs(900)).unwrap();
    let sh = |cmd: &str| -> String {
        let o = vm.ssh(cmd).unwrap();
        assert!(
            o.status.success(),
            "{cmd} failed in the guest: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    assert_eq!(sh("hostname"), "kiln-e2e");
    assert!(sh("id -nG").split_whitespace().any(|g| g == "sudo"));
    assert_eq!(
        sh("getent passwd alice | cut -d: -f5,7"),
        "Alice E2E:/bin/bash"
    );
    // The password is the blueprint's: sudo accepts it.
    assert_eq!(sh(&format!("echo '{PASSWORD}' | sudo -S -p '' id -u")), "0");
    assert_eq!(
        sh("readlink /etc/localtime"),
        "/usr/share/zoneinfo/Europe/Paris"
    );
    assert_eq!(sh("date +%Z"), sh("TZ=Europe/Paris date +%Z"));
    assert!(
        sh("cat /proc/cmdline")
            .split_whitespace()
            .any(|a| a == "kiln.e2e=1")
    );
    assert_eq!(
        sh("dpkg-query -W -f '${Status}' tree"),
        "install ok installed"
    );
    assert_eq!(sh("systemctl is-enabled getty@tty2.service"), "enabled");
    assert_eq!(
        sh(&format!(
            "echo '{PASSWORD}' | sudo -S -p '' cat /etc/kiln-e2e.conf"
        )),
        "built by kiln"
    );
    assert_eq!(sh("stat -c %a /etc/kiln-e2e.conf"), "640");
    assert!(sh("test -d /sys/firmware/efi && echo uefi") == "uefi");
    assert_eq!(sh("findmnt -n -o FSTYPE /"), "ext4");
    assert_eq!(sh("findmnt -n -o FSTYPE /boot/efi"), "vfat");
    // Host keys were made on this machine, not in the image.
    assert!(sh("ls /etc/ssh/").contains("ssh_host_ed25519_key"));
    vm.shutdown().unwrap();

    // Legacy BIOS: GRUB from the MBR and the BIOS boot partition, up to a login prompt.
    let mut config = VmConfig::new(&raw);
    config.firmware = Firmware::Bios;
    config.serial_log = Some(dir.path().join("bios-console.log"));
    let vm = Vm::start(config).unwrap();
    vm.wait_for_console("kiln-e2e login:", Duration::from_secs(900))
        .unwrap();
    assert!(vm.console_text().contains("GRUB"), "not booted by GRUB?");
    vm.kill();
}
