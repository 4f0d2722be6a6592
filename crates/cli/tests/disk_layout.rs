//! A custom disk layout end to end: `kiln build` of a blueprint whose
//! `[customizations.disk]` has a plain ext4 partition for `/home` and an LVM volume group
//! with logical volumes for `/`, `/var` (the extra filesystem) and swap; the raw image's
//! partition table checked from outside, the image booted under UEFI and every mount
//! checked from inside over SSH (`findmnt`, `lsblk`, `lvs`): the right filesystem on the
//! right device of the right size. Then the disk stage alone is run again (its stored
//! tree removed, the OS tree reused): the same sha256.
//!
//! Uses the real archive through the host's apt sources, root, bubblewrap, QEMU and OVMF
//! (`scripts/install-deps`); one boot (TCG about 90 s).

mod common;
use common::{run, sha256};
use kiln_vm::{Vm, VmConfig};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const PASSWORD: &str = "kiln-layout-Secret";
const MIB: u64 = 1 << 20;

fn blueprint(dir: &Path, pubkey: &str) -> PathBuf {
    let text = format!(
        r#"name = "disk-layout"
version = "1.0.0"

[[packages]]
name = "sudo"

[customizations]
hostname = "kiln-layout"

[[customizations.user]]
name = "alice"
password = "{PASSWORD}"
key = "{pubkey}"
groups = ["sudo"]

[[customizations.disk.partitions]]
type = "plain"
mountpoint = "/home"
fs_type = "ext4"
label = "home"
minsize = "300 MiB"

[[customizations.disk.partitions]]
type = "lvm"
name = "vg0"
minsize = "5 GiB"

[[customizations.disk.partitions.logical_volumes]]
name = "root"
mountpoint = "/"
fs_type = "ext4"
minsize = "3 GiB"

[[customizations.disk.partitions.logical_volumes]]
mountpoint = "/var"
fs_type = "ext4"
minsize = "1 GiB"

[[customizations.disk.partitions.logical_volumes]]
name = "swap"
fs_type = "swap"
minsize = "64 MiB"
"#
    );
    let path = dir.join("disk-layout.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The store's tree holding the raw disk (the `disk.image` stage's output).
fn disk_tree(store: &Path) -> PathBuf {
    // kiln keeps its object store in `<store>/objects` (kiln-compose's Env).
    let found: Vec<PathBuf> = std::fs::read_dir(store.join("objects/trees"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("data/disk.raw").exists())
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

#[test]
fn lvm_and_plain_partitions_boot_and_rebuild_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key));
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let bp = blueprint(dir.path(), pubkey.trim());
    let store = dir.path().join("store");
    let build = |out: &Path| {
        run(Command::new(env!("CARGO_BIN_EXE_kiln"))
            .arg("--store")
            .arg(&store)
            .arg("build")
            .arg(&bp)
            .args(["--distro", "debian-12", "--progress", "none"])
            .args(["--type", "raw"])
            .arg("--output")
            .arg(out)
            .env("SOURCE_DATE_EPOCH", "1700000000"));
    };
    let out = dir.path().join("out");
    build(&out);
    let raw = out.join("disk.raw");

    // The disk stage again on the stored OS tree: the same bytes.
    std::fs::remove_dir_all(disk_tree(&store)).unwrap();
    let again = dir.path().join("again");
    build(&again);
    let sum = sha256(&raw);
    assert_eq!(
        sum,
        sha256(&again.join("disk.raw")),
        "disk.raw is not reproducible"
    );
    eprintln!("disk.raw sha256 {sum} (two runs of disk.image)");
    std::fs::remove_dir_all(&again).unwrap();

    // From outside: GPT order and sizes; the volume group last, to the end of the disk.
    assert_eq!(std::fs::metadata(&raw).unwrap().len(), 10 << 30);
    let table = run(Command::new("sfdisk").args(["--json"]).arg(&raw));
    let table: serde_json::Value = serde_json::from_str(&table).unwrap();
    let parts: Vec<(String, u64, u64)> = table["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["type"].as_str().unwrap().to_owned(),
                p["start"].as_u64().unwrap() * 512,
                p["size"].as_u64().unwrap() * 512,
            )
        })
        .collect();
    let expect = [
        ("21686148-6449-6E6F-744E-656564454649", MIB, MIB),
        ("C12A7328-F81F-11D2-BA4B-00A0C93EC93B", 2 * MIB, 200 * MIB),
        ("0FC63DAF-8483-4772-8E79-3D69D8477DE4", 202 * MIB, 300 * MIB),
        (
            "E6D6D379-F507-44C2-A23C-238F2A3DF928",
            502 * MIB,
            (10 << 30) - 503 * MIB,
        ),
    ];
    let got: Vec<(&str, u64, u64)> = parts.iter().map(|(t, s, z)| (t.as_str(), *s, *z)).collect();
    assert_eq!(got, expect);

    // From inside, under UEFI.
    let mut config = VmConfig::new(&raw);
    config.ssh_user = "alice".into();
    config.ssh_key = Some(key.clone());
    config.serial_log = Some(dir.path().join("console.log"));
    let vm = Vm::start(config).unwrap();
    eprintln!("booting {} under UEFI with {:?}", raw.display(), vm.accel());
    if let Err(e) = vm.wait_for_ssh(Duration::from_secs(900)) {
        panic!("no SSH: {e}\n{}", vm.console_tail(80));
    }
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
    let sudo = |cmd: &str| sh(&format!("echo '{PASSWORD}' | sudo -S -p '' {cmd}"));
    let findmnt = sh("findmnt -rn -o TARGET,SOURCE,FSTYPE");
    let lsblk = sh("lsblk -b -rn -o NAME,SIZE,TYPE,FSTYPE,MOUNTPOINT");
    let lvs = sudo("lvs --noheadings --units b --nosuffix -o vg_name,lv_name,lv_size,devices");
    let swaps = sh("cat /proc/swaps");
    eprintln!("findmnt:\n{findmnt}\nlsblk:\n{lsblk}\nlvs:\n{lvs}\n/proc/swaps:\n{swaps}");

    let mount = |target: &str| -> (String, String) {
        let l = findmnt
            .lines()
            .find(|l| l.split(' ').next() == Some(target))
            .unwrap_or_else(|| panic!("{target} is not mounted:\n{findmnt}"));
        let f: Vec<&str> = l.split(' ').collect();
        (f[1].to_owned(), f[2].to_owned())
    };
    assert_eq!(mount("/"), ("/dev/mapper/vg0-root".into(), "ext4".into()));
    assert_eq!(
        mount("/var"),
        ("/dev/mapper/vg0-varlv".into(), "ext4".into())
    );
    assert_eq!(mount("/home"), ("/dev/vda3".into(), "ext4".into()));
    assert_eq!(mount("/boot/efi"), ("/dev/vda2".into(), "vfat".into()));
    let dev = |name: &str| -> Vec<String> {
        lsblk
            .lines()
            .find(|l| l.split(' ').next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in lsblk:\n{lsblk}"))
            .split(' ')
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(dev("vda3")[1], (300 * MIB).to_string());
    assert_eq!(dev("vda4")[3], "LVM2_member");
    assert_eq!(dev("vg0-root")[1], (3u64 << 30).to_string());
    assert_eq!(dev("vg0-varlv")[1], (1u64 << 30).to_string());
    assert_eq!(dev("vg0-swap")[1], (64 * MIB).to_string());
    assert_eq!(dev("vg0-swap")[3], "swap");
    let mut lv: Vec<Vec<&str>> = lvs
        .lines()
        .map(|l| l.split_whitespace().take(3).collect())
        .collect();
    lv.sort();
    assert_eq!(
        lv,
        [
            ["vg0", "root", "3221225472"],
            ["vg0", "swap", "67108864"],
            ["vg0", "varlv", "1073741824"]
        ],
        "{lvs}"
    );
    // One linear segment each, on the partition.
    assert!(lvs.lines().all(|l| l.contains("/dev/vda4(")), "{lvs}");
    assert!(swaps.contains("/dev/dm-"), "swap is not on: {swaps}");
    // The files are on the filesystems they belong to: /var's own, /home's empty but for
    // lost+found, and the root's /var and /home are only mount points.
    assert!(sh("test -f /var/lib/dpkg/status && echo ok") == "ok");
    assert_eq!(sudo("ls /home"), "alice\nlost+found");
    vm.shutdown().unwrap();
}
