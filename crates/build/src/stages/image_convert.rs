//! `image.convert`: converts a raw disk image (input `tree`, file `source`) to another
//! format with the build root's `qemu-img`, or writes a fixed VHD itself.
//!
//! Options: `{"source": "disk.raw", "filename": "disk.qcow2", "format": "qcow2"}`, format
//! one of `qcow2`, `vmdk` (streamOptimized), `vhdx`, `vpc` (a fixed VHD: see below).
//! `"uuid"` is required for `vpc`, `"cid"` (eight hex digits, the VMDK content id) for
//! `vmdk`: qemu-img would put a random one in, and the same manifest must give the same
//! bytes.
//!
//! A fixed VHD is the raw data followed by a 512-byte footer. kiln writes the footer
//! itself: `qemu-img` puts the wall-clock time and a random UUID in it, and Azure needs
//! the virtual size to be a whole number of MiB, which the manifest's size already is.

use super::StageContext;
use kiln_sandbox::TREE_PATH;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;

const INPUT: &str = "/run/kiln/input";

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let source = ctx.option_str("source")?.to_owned();
    let filename = ctx.option_str("filename")?.to_owned();
    let format = ctx.option_str("format")?.to_owned();
    for n in [&source, &filename] {
        if n.is_empty() || n.contains('/') || n.starts_with('.') {
            return Err(format!("invalid file name {n:?}"));
        }
    }
    let input = ctx.input_tree("tree")?.to_path_buf();
    if !input.join(&source).is_file() {
        return Err(format!("input has no file {source:?}"));
    }
    if format == "vpc" {
        let uuid = ctx.option_str("uuid")?.to_owned();
        return write_fixed_vhd(ctx, &input.join(&source), &filename, &uuid);
    }
    let (fmt, opts): (&str, &str) = match format.as_str() {
        "qcow2" => ("qcow2", "compat=1.1"),
        "vmdk" => ("vmdk", "subformat=streamOptimized,adapter_type=lsilogic"),
        "vhdx" => ("vhdx", "subformat=dynamic"),
        other => return Err(format!("unknown format {other:?} (qcow2, vmdk, vhdx, vpc)")),
    };
    let cid = match fmt {
        "vmdk" => {
            let cid = ctx.option_str("cid")?.to_owned();
            if cid.len() != 8 || !cid.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("cid {cid:?} must be eight hex digits"));
            }
            Some(cid)
        }
        _ => None,
    };
    let sb = ctx.build_sandbox()?.bind_ro(&input, INPUT);
    let src = format!("{INPUT}/{source}");
    let dst = format!("{TREE_PATH}/{filename}");
    // The output bypasses the page cache where the filesystem allows (`-t none`): same
    // bytes, a third of the time here (see `sparse::copy_file`).
    let cache = if crate::sparse::supports_direct_io(ctx.tree) {
        "none"
    } else {
        "writeback"
    };
    (ctx.log)(&format!("qemu-img convert -O {fmt} -o {opts} -t {cache}"));
    ctx.run_logged(
        &sb,
        "qemu-img",
        &[
            "convert", "-f", "raw", "-O", fmt, "-o", opts, "-t", cache, &src, &dst,
        ],
    )?;
    if let Some(cid) = cid {
        set_vmdk_cid(&ctx.tree.join(&filename), &cid)?;
    }
    Ok(())
}

/// Replaces the `CID=` value of the VMDK's embedded descriptor: qemu-img makes it random,
/// the manifest gives it. qemu-img prints it without leading zeros (`CID=%x`), so the
/// descriptor is rewritten in its reserved sectors (header fields `descriptorOffset` and
/// `descriptorSize`), padded with zeros as qemu-img leaves it.
pub(super) fn set_vmdk_cid(path: &std::path::Path, cid: &str) -> Result<(), String> {
    let f = File::options()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut header = [0u8; 44];
    f.read_exact_at(&mut header, 0)
        .map_err(|e| format!("cannot read the VMDK header: {e}"))?;
    if &header[..4] != b"KDMV" {
        return Err("not a sparse VMDK (no KDMV header)".into());
    }
    let sectors = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().expect("8 bytes"));
    let (offset, size) = (sectors(28) * 512, sectors(36) * 512);
    if offset == 0 || size == 0 || size > 1 << 20 {
        return Err(format!(
            "the VMDK has no embedded descriptor ({offset}, {size} bytes)"
        ));
    }
    let mut area = vec![0u8; size as usize];
    f.read_exact_at(&mut area, offset)
        .map_err(|e| format!("cannot read the VMDK descriptor: {e}"))?;
    let text = area.split(|&b| b == 0).next().unwrap_or_default();
    let text = std::str::from_utf8(text).map_err(|_| "the VMDK descriptor is not text")?;
    let mut replaced = 0;
    let new: String = text
        .split_inclusive('\n')
        .map(|line| match line.strip_prefix("CID=") {
            Some(v)
                if v.trim_end().len() <= 8
                    && v.trim_end().bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                replaced += 1;
                format!("CID={}\n", cid.to_ascii_lowercase())
            }
            _ => line.to_owned(),
        })
        .collect();
    if replaced != 1 {
        return Err("the VMDK descriptor has no CID line of hex digits".into());
    }
    if new.len() > area.len() {
        return Err("the VMDK descriptor does not fit its sectors with the new CID".into());
    }
    area.fill(0);
    area[..new.len()].copy_from_slice(new.as_bytes());
    f.write_all_at(&area, offset).map_err(|e| e.to_string())?;
    f.sync_all().map_err(|e| e.to_string())
}

fn write_fixed_vhd(
    ctx: &mut StageContext<'_>,
    src: &std::path::Path,
    filename: &str,
    uuid: &str,
) -> Result<(), String> {
    let dest = ctx.tree.join(filename);
    crate::sparse::copy_file(src, &dest).map_err(|e| format!("cannot copy the disk: {e}"))?;
    let size = fs::metadata(&dest).map_err(|e| e.to_string())?.len();
    if size % (1 << 20) != 0 {
        return Err(format!(
            "a VHD for Azure needs a whole number of MiB; the disk has {size} bytes"
        ));
    }
    // VHD epoch is 2000-01-01; the timestamp comes from the manifest.
    let stamp = ctx
        .source_epoch
        .unwrap_or(946_684_800)
        .saturating_sub(946_684_800) as u32;
    let footer = vhd_footer(
        size,
        stamp,
        &crate::gpt::guid_bytes(uuid).map(|mut b| {
            // VHD stores the UUID big-endian: undo GPT's mixed-endian order.
            b[0..4].reverse();
            b[4..6].reverse();
            b[6..8].reverse();
            b
        })?,
    );
    let f = File::options()
        .write(true)
        .open(&dest)
        .map_err(|e| e.to_string())?;
    f.write_all_at(&footer, size).map_err(|e| e.to_string())?;
    f.sync_all().map_err(|e| e.to_string())?;
    (ctx.log)(&format!("wrote a fixed VHD of {size} bytes + footer"));
    Ok(())
}

/// The 512-byte footer of a fixed VHD (Microsoft's VHD specification, "Hard Disk Footer").
pub fn vhd_footer(size: u64, timestamp: u32, uuid: &[u8; 16]) -> [u8; 512] {
    let mut f = [0u8; 512];
    f[0..8].copy_from_slice(b"conectix");
    f[8..12].copy_from_slice(&2u32.to_be_bytes()); // features: reserved bit
    f[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes()); // format version
    f[16..24].copy_from_slice(&u64::MAX.to_be_bytes()); // data offset: none (fixed)
    f[24..28].copy_from_slice(&timestamp.to_be_bytes());
    // Creator "qem2" is what `qemu-img -o force_size` writes: readers (QEMU among them)
    // then take the size field as the disk size instead of rounding it to a CHS geometry.
    f[28..32].copy_from_slice(b"qem2");
    f[32..36].copy_from_slice(&0x0001_0000u32.to_be_bytes()); // creator version
    f[36..40].copy_from_slice(b"Wi2k"); // creator host OS, as Azure's tools write
    f[40..48].copy_from_slice(&size.to_be_bytes()); // original size
    f[48..56].copy_from_slice(&size.to_be_bytes()); // current size
    let (c, h, s) = chs(size);
    f[56..58].copy_from_slice(&c.to_be_bytes());
    f[58] = h;
    f[59] = s;
    f[60..64].copy_from_slice(&2u32.to_be_bytes()); // disk type: fixed
    f[68..84].copy_from_slice(uuid);
    let sum: u32 = f.iter().map(|&b| b as u32).sum();
    f[64..68].copy_from_slice(&(!sum).to_be_bytes());
    f
}

/// CHS geometry as the VHD specification computes it.
fn chs(size: u64) -> (u16, u8, u8) {
    let mut total = (size / 512).min(65535 * 16 * 255);
    let (spt, heads, cyl_heads);
    if total >= 65535 * 16 * 63 {
        spt = 255u64;
        heads = 16u64;
        cyl_heads = total / spt;
    } else {
        let mut s = 17u64;
        let mut ch = total / s;
        let mut h = ch.div_ceil(1024).max(4);
        if ch >= h * 1024 || h > 16 {
            s = 31;
            h = 16;
            ch = total / s;
        }
        if ch >= h * 1024 {
            s = 63;
            h = 16;
            ch = total / s;
        }
        spt = s;
        heads = h;
        cyl_heads = ch;
    }
    total = cyl_heads / heads;
    (total as u16, heads as u8, spt as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footer_checksum_and_geometry() {
        let f = vhd_footer(4 << 30, 0, &[7u8; 16]);
        let stored = u32::from_be_bytes(f[64..68].try_into().unwrap());
        let mut z = f;
        z[64..68].fill(0);
        let sum: u32 = z.iter().map(|&b| b as u32).sum();
        assert_eq!(stored, !sum);
        assert_eq!(&f[0..8], b"conectix");
        // 4 GiB: 8322 cylinders, 16 heads, 63 sectors (as qemu-img computes it).
        assert_eq!(chs(4 << 30), (8322, 16, 63));
    }

    #[test]
    fn the_content_id_is_the_manifests() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("d.raw");
        std::fs::write(&raw, vec![7u8; 1 << 20]).unwrap();
        let sums: Vec<Vec<u8>> = ["a", "b"]
            .iter()
            .map(|n| {
                let vmdk = dir.path().join(format!("{n}/x.vmdk"));
                std::fs::create_dir_all(vmdk.parent().unwrap()).unwrap();
                let st = std::process::Command::new("qemu-img")
                    .args(["convert", "-f", "raw", "-O", "vmdk", "-o"])
                    .arg("subformat=streamOptimized")
                    .arg(&raw)
                    .arg(&vmdk)
                    .status()
                    .expect("qemu-img (apt-get install qemu-utils)");
                assert!(st.success());
                if *n == "b" {
                    // qemu-img prints the CID without leading zeros: one in 16 is shorter.
                    set_vmdk_cid(&vmdk, "abc").unwrap();
                }
                set_vmdk_cid(&vmdk, "0badcafe").unwrap();
                let info = std::process::Command::new("qemu-img")
                    .args(["info", "--output=json"])
                    .arg(&vmdk)
                    .output()
                    .unwrap();
                let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
                assert_eq!(info["format-specific"]["data"]["cid"], 0x0bad_cafe_u32);
                std::fs::read(&vmdk).unwrap()
            })
            .collect();
        // qemu-img's random CID (and its length) was the only difference.
        assert!(sums[0] == sums[1], "two conversions differ");
    }
}
