//! `image.convert` to a fixed VHD (written by kiln, not qemu-img): QEMU's own reader must
//! recognise it, with the raw data unchanged and the virtual size a whole number of MiB,
//! and the same input must give the same bytes.

use kiln_build::stages::{self, InputData, StageContext};
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

fn convert(input: &Path, out: &Path, uuid: &str) -> Result<(), String> {
    let options = serde_json::json!({
        "source": "disk.raw", "filename": "disk.vhd", "format": "vpc", "uuid": uuid
    });
    let mut log = |_: &str| {};
    let mut ctx = StageContext {
        tree: out,
        options: &options,
        inputs: BTreeMap::from([("tree".to_owned(), InputData::Tree(input.to_path_buf()))]),
        source_epoch: Some(1_700_000_000),
        bwrap: None,
        build_root: None,
        log: &mut log,
    };
    stages::run("image.convert", &mut ctx)
}

#[test]
fn fixed_vhd_is_read_by_qemu_and_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let raw = std::fs::File::create(input.join("disk.raw")).unwrap();
    raw.set_len(16 << 20).unwrap();
    raw.write_all_at(b"kiln", 1 << 20).unwrap();
    drop(raw);
    let uuid = "6f1b7c1e-3a57-4b4e-9d2a-0c5e1f2a3b4c";
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for d in [&a, &b] {
        std::fs::create_dir(d).unwrap();
        convert(&input, d, uuid).unwrap();
    }
    let vhd = a.join("disk.vhd");
    assert_eq!(
        std::fs::read(&vhd).unwrap(),
        std::fs::read(b.join("disk.vhd")).unwrap()
    );
    assert_eq!(std::fs::metadata(&vhd).unwrap().len(), (16 << 20) + 512);

    let out = Command::new("qemu-img")
        // A fixed VHD has no header, only a footer: QEMU probes it as raw unless told.
        .args(["info", "-f", "vpc", "--output=json"])
        .arg(&vhd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["format"], "vpc");
    assert_eq!(info["virtual-size"], 16u64 << 20);
    // The data reads back through QEMU's VHD driver.
    let back = dir.path().join("back.raw");
    let st = Command::new("qemu-img")
        .args(["convert", "-f", "vpc", "-O", "raw"])
        .arg(&vhd)
        .arg(&back)
        .status()
        .unwrap();
    assert!(st.success());
    let data = std::fs::read(&back).unwrap();
    assert_eq!(data.len(), 16 << 20);
    assert_eq!(&data[1 << 20..(1 << 20) + 4], b"kiln");

    // A size that is not a whole number of MiB is refused (Azure would reject it).
    std::fs::File::options()
        .write(true)
        .open(input.join("disk.raw"))
        .unwrap()
        .set_len((16 << 20) + 512)
        .unwrap();
    let c = dir.path().join("c");
    std::fs::create_dir(&c).unwrap();
    let e = convert(&input, &c, uuid).unwrap_err();
    assert!(e.contains("whole number of MiB"), "{e}");
}
