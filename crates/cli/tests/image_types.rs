//! The image types packed from a disk or a tree, end to end: `kiln build` of one blueprint
//! as `ova`, `gce`, `container` and `iso` in one run (one depsolve per OS variant, the
//! trees shared), then each file checked with the tools its platform would use:
//!
//! * ova: a ustar archive with the OVF descriptor first, the manifest next, then the
//!   VMDK; the manifest's SHA256 sums match; the descriptor is well-formed XML (xmllint)
//!   and names the disk's capacity, populated size and file size; the VMDK is a
//!   streamOptimized VMDK to `qemu-img`.
//! * gce: a gzip without a name or a time holding one GNU tar member `disk.raw`, sparse,
//!   with a GPT holding an EFI system partition.
//! * container: an OCI archive `skopeo` reads and copies (which verifies every digest),
//!   with `created` from `SOURCE_DATE_EPOCH` and one layer without a kernel.
//! * iso: El Torito entries for BIOS and UEFI (xorriso's report), a GPT with the EFI
//!   image, and a boot under UEFI from the CD-ROM to a login prompt (the one QEMU boot).
//!
//! Then the stages that pack ova, gce and container run again on the stored trees and
//! must give the same bytes.
//!
//! Uses the real archive through the host's apt sources, root, bubblewrap, QEMU, OVMF,
//! skopeo, xorriso and xmllint (`scripts/install-deps`).

mod common;
use common::{run, sha256};
use kiln_vm::{Vm, VmConfig};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const EPOCH: &str = "1700000000";

fn build(bp: &Path, store: &Path, out: &Path, types: &[&str]) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.arg("--store").arg(store).arg("build").arg(bp).args([
        "--distro",
        "debian-12",
        "--progress",
        "none",
    ]);
    for t in types {
        cmd.args(["--type", t]);
    }
    // The same manifest whatever the archive's Release dates say.
    run(cmd.arg("--output").arg(out).env("SOURCE_DATE_EPOCH", EPOCH));
}

/// The members of a tar file: (name, offset of the data, size, typeflag, magic).
fn tar_members(path: &Path) -> Vec<(String, u64, u64, u8, Vec<u8>)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).unwrap();
    let mut out = Vec::new();
    let mut pos = 0u64;
    loop {
        let mut h = [0u8; 512];
        f.seek(SeekFrom::Start(pos)).unwrap();
        f.read_exact(&mut h).unwrap();
        if h.iter().all(|&b| b == 0) {
            return out;
        }
        let name = String::from_utf8_lossy(&h[..100])
            .trim_end_matches('\0')
            .to_owned();
        let size = u64::from_str_radix(
            String::from_utf8_lossy(&h[124..136]).trim_matches(|c: char| c == '\0' || c == ' '),
            8,
        )
        .unwrap();
        out.push((name, pos + 512, size, h[156], h[257..265].to_vec()));
        pos += 512 + size.div_ceil(512) * 512;
    }
}

fn read_range(path: &Path, offset: u64, len: u64) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len as usize];
    std::fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut buf, offset)
        .unwrap();
    buf
}

fn check_ova(ova: &Path, dir: &Path) {
    let members = tar_members(ova);
    let names: Vec<&str> = members.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(
        names,
        ["types-e2e.ovf", "types-e2e.mf", "types-e2e-disk1.vmdk"]
    );
    for m in &members {
        assert_eq!(m.4, b"ustar\x0000", "{} is not a ustar entry", m.0);
    }
    let x = dir.join("ova");
    std::fs::create_dir_all(&x).unwrap();
    run(Command::new("tar").arg("-xf").arg(ova).arg("-C").arg(&x));
    let mf = std::fs::read_to_string(x.join("types-e2e.mf")).unwrap();
    let mut listed = 0;
    for line in mf.lines() {
        let (file, sum) = line
            .strip_prefix("SHA256(")
            .and_then(|l| l.split_once(")= "))
            .unwrap_or_else(|| panic!("bad manifest line {line:?}"));
        assert_eq!(sha256(&x.join(file)), sum, "{file}");
        listed += 1;
    }
    assert_eq!(listed, 2, "{mf}");
    let ovf = x.join("types-e2e.ovf");
    run(Command::new("xmllint").arg("--noout").arg(&ovf));
    let xpath = |expr: &str| {
        run(Command::new("xmllint").args(["--xpath", expr]).arg(&ovf))
            .trim()
            .to_owned()
    };
    let vmdk = x.join("types-e2e-disk1.vmdk");
    let vmdk_size = std::fs::metadata(&vmdk).unwrap().len();
    assert_eq!(
        xpath("string(//*[local-name()='File']/@*[local-name()='size'])"),
        vmdk_size.to_string()
    );
    assert_eq!(
        xpath("string(//*[local-name()='Disk']/@*[local-name()='capacity'])"),
        (4u64 << 30).to_string()
    );
    let populated: u64 = xpath("string(//*[local-name()='Disk']/@*[local-name()='populatedSize'])")
        .parse()
        .unwrap();
    assert!(
        populated > 100 << 20 && populated < 4 << 30,
        "populated {populated}"
    );
    assert_eq!(
        xpath(
            "string(//*[local-name()='Config'][@*[local-name()='key']='firmware']/@*[local-name()='value'])"
        ),
        "efi"
    );
    assert_eq!(
        xpath("count(//*[local-name()='Item'][*[local-name()='ResourceType']='6'])"),
        "1",
        "one SCSI controller"
    );
    let info = run(Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&vmdk));
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["format"], "vmdk");
    assert_eq!(
        info["format-specific"]["data"]["create-type"],
        "streamOptimized"
    );
    assert_eq!(info["virtual-size"], 4u64 << 30);
    run(Command::new("qemu-img").arg("check").arg(&vmdk));
    std::fs::remove_dir_all(&x).unwrap();
}

fn check_gce(targz: &Path, dir: &Path) {
    let head = read_range(targz, 0, 10);
    assert_eq!(&head[..3], b"\x1f\x8b\x08", "not gzip");
    assert_eq!(head[3] & 0x08, 0, "gzip stores a file name");
    assert_eq!(&head[4..8], b"\0\0\0\0", "gzip stores a time");
    let x = dir.join("gce");
    std::fs::create_dir_all(&x).unwrap();
    let list = run(Command::new("tar")
        .args(["-tvzf"])
        .arg(targz)
        .arg("--numeric-owner"));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 1, "{list}");
    assert!(
        lines[0].contains(" 0/0 ") && lines[0].ends_with(" disk.raw"),
        "{list}"
    );
    assert!(
        lines[0].contains("2023-11-14"),
        "mtime is not SOURCE_DATE_EPOCH: {list}"
    );
    // GNU format: the header's magic is "ustar  \0"; the member is stored sparse ('S').
    let raw_tar = x.join("image.tar");
    run(Command::new("sh").arg("-c").arg(format!(
        "gzip -dc '{}' | head -c 512 > '{}'",
        targz.display(),
        raw_tar.display()
    )));
    let h = std::fs::read(&raw_tar).unwrap();
    assert_eq!(&h[257..265], b"ustar  \0", "not a GNU tar header");
    assert_eq!(h[156], b'S', "disk.raw is not stored as a sparse file");
    run(Command::new("tar")
        .args(["-xzSf"])
        .arg(targz)
        .arg("-C")
        .arg(&x));
    let disk = x.join("disk.raw");
    let md = std::fs::metadata(&disk).unwrap();
    assert_eq!(md.len(), 20u64 << 30);
    use std::os::unix::fs::MetadataExt;
    assert!(md.blocks() * 512 < 4 << 30, "disk.raw came out dense");
    let table = run(Command::new("sfdisk").arg("--json").arg(&disk));
    let table: serde_json::Value = serde_json::from_str(&table).unwrap();
    assert_eq!(table["partitiontable"]["label"], "gpt");
    assert!(
        table["partitiontable"]["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["type"] == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),
        "no EFI system partition: {table}"
    );
    std::fs::remove_dir_all(&x).unwrap();
}

fn check_container(archive: &Path, dir: &Path) {
    let names: Vec<String> = tar_members(archive).into_iter().map(|m| m.0).collect();
    assert_eq!(&names[..2], ["oci-layout", "index.json"]);
    let target = format!("oci-archive:{}", archive.display());
    let inspect = run(Command::new("skopeo").args(["inspect", &target]));
    eprintln!("skopeo inspect: {inspect}");
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["Architecture"], "amd64");
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(inspect["Created"], "2023-11-14T22:13:20Z");
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 1);
    assert_eq!(
        inspect["Labels"]["org.opencontainers.image.title"],
        "types-e2e"
    );
    let config = run(Command::new("skopeo").args(["inspect", "--config", &target]));
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["config"]["Cmd"][0], "/bin/bash");
    // skopeo copy reads every blob and checks it against its digest.
    let copy = dir.join("oci-dir");
    run(Command::new("skopeo")
        .args(["copy", "--quiet", &target])
        .arg(format!("dir:{}", copy.display())));
    let layer = inspect["Layers"][0]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let files = run(Command::new("tar").arg("-tf").arg(copy.join(layer)));
    assert!(
        files.lines().any(|l| l == "etc/hostname"),
        "no /etc/hostname"
    );
    assert!(files.lines().any(|l| l == "usr/bin/bash"), "no bash");
    assert!(
        !files
            .lines()
            .any(|l| l.starts_with("boot/vmlinuz") || l.starts_with("usr/lib/modules/")),
        "the container has a kernel"
    );
    std::fs::remove_dir_all(&copy).unwrap();
}

fn check_iso(iso: &Path, dir: &Path) {
    let report = run(Command::new("xorriso")
        .args(["-indev"])
        .arg(iso)
        .args(["-report_el_torito", "plain"]));
    eprintln!("xorriso -report_el_torito: {report}");
    assert!(
        report
            .lines()
            .any(|l| l.contains("BIOS") && l.contains(" y ")),
        "no bootable BIOS El Torito entry: {report}"
    );
    assert!(
        report.lines().any(|l| l.contains("UEFI")),
        "no UEFI El Torito entry: {report}"
    );
    let table = run(Command::new("sfdisk").arg("--json").arg(iso));
    let table: serde_json::Value = serde_json::from_str(&table).unwrap();
    assert_eq!(table["partitiontable"]["label"], "gpt", "{table}");
    assert!(
        table["partitiontable"]["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["type"] == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),
        "no EFI system partition for USB sticks: {table}"
    );

    // UEFI from the CD-ROM to a login prompt on the serial console.
    let mut config = VmConfig::new(iso);
    config.serial_log = Some(dir.join("iso-uefi-console.log"));
    let vm = Vm::start(config).unwrap();
    eprintln!("booting {} under UEFI with {:?}", iso.display(), vm.accel());
    vm.wait_for_console("kiln-types login:", Duration::from_secs(900))
        .unwrap();
    let console = vm.console_text();
    assert!(console.contains("live"), "not booted by live-boot?");
    vm.kill();
}

#[test]
fn ova_gce_container_iso() {
    let dir = tempfile::tempdir().unwrap();
    let bp: PathBuf = dir.path().join("types-e2e.toml");
    std::fs::write(
        &bp,
        "name = \"types-e2e\"\nversion = \"1.0.0\"\n\n[customizations]\nhostname = \"kiln-types\"\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    build(
        &bp,
        &dir.path().join("store"),
        &out,
        &["ova", "gce", "container", "iso"],
    );
    check_ova(&out.join("image.ova"), dir.path());
    check_gce(&out.join("image.tar.gz"), dir.path());
    check_container(&out.join("container.tar"), dir.path());
    check_iso(&out.join("live.iso"), dir.path());

    // Bit for bit: the packing stages run again on the stored trees (that the trees
    // themselves are the same from an empty store is boot_e2e's and build_tar's check):
    // their stored outputs are removed, the build is repeated, the files must not change.
    let store = dir.path().join("store");
    let files = ["image.ova", "image.tar.gz", "container.tar"];
    let mut removed = 0;
    for tree in std::fs::read_dir(store.join("objects/trees")).unwrap() {
        let tree = tree.unwrap().path();
        if files.iter().any(|f| tree.join("data").join(f).exists()) {
            std::fs::remove_dir_all(&tree).unwrap();
            removed += 1;
        }
    }
    assert_eq!(removed, files.len(), "one stored tree per packed file");
    let again = dir.path().join("again");
    build(&bp, &store, &again, &["ova", "gce", "container"]);
    for f in files {
        assert_eq!(
            sha256(&out.join(f)),
            sha256(&again.join(f)),
            "{f} is not reproducible"
        );
    }
}
