//! Debian 13 (trixie) end to end: `kiln build --distro debian-13 --type qcow2` from an
//! empty store, `qemu-img check`, then a boot under UEFI to the login prompt.
//!
//! The other image tests build Debian 12; trixie's tools differ where kiln drives them
//! (its dumpe2fs no longer takes a `?offset=` device name, its initramfs-tools copies
//! modules with dracut-install and keeps no kiln batching), so one image of it is built
//! and booted on every run.
//!
//! Uses the real archive through the host's apt sources, root, bubblewrap, QEMU and OVMF
//! (`scripts/install-deps`).

mod common;
use common::run;
use kiln_vm::{Vm, VmConfig};
use std::process::Command;
use std::time::Duration;

#[test]
fn trixie_qcow2_builds_and_boots() {
    let dir = tempfile::tempdir().unwrap();
    let bp = dir.path().join("trixie.toml");
    std::fs::write(
        &bp,
        "name = \"trixie\"\nversion = \"1.0.0\"\n\n[customizations]\nhostname = \"kiln-trixie\"\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    run(Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("--store")
        .arg(dir.path().join("store"))
        .arg("build")
        .arg(&bp)
        .args([
            "--distro",
            "debian-13",
            "--type",
            "qcow2",
            "--progress",
            "none",
        ])
        .arg("--output")
        .arg(&out));
    let image = out.join("disk.qcow2");
    run(Command::new("qemu-img").arg("check").arg(&image));
    let info = run(Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&image));
    assert!(info.contains("\"format\": \"qcow2\""), "{info}");

    let log = out.join("logs/os-boot-1-initramfs.log");
    let initramfs = std::fs::read_to_string(&log).unwrap();
    assert!(
        !initramfs.contains("kiln batches the copies"),
        "trixie's initramfs-tools batches by itself:\n{initramfs}"
    );

    let mut config = VmConfig::new(&image);
    config.serial_log = Some(dir.path().join("console.log"));
    let vm = Vm::start(config).unwrap();
    eprintln!(
        "booting {} under UEFI with {:?}",
        image.display(),
        vm.accel()
    );
    vm.wait_for_console("kiln-trixie login:", Duration::from_secs(900))
        .unwrap();
    let console = vm.console_text();
    assert!(console.contains("Debian GNU/Linux 13"), "not trixie?");
    vm.kill();
}
