//! Writing an LVM2 physical volume with one volume group of linear logical volumes into a
//! disk image file, without a device (what `pvcreate`, `vgcreate` and `lvcreate` would
//! leave on the partition).
//!
//! On-disk format (LVM2's `label.h`, `format_text/layout.h`): sector 1 holds the label
//! (`LABELONE`, its sector number, a CRC of the rest of the sector, the offset of the PV
//! header and `LVM2 001`); the PV header that follows gives the PV UUID, the device size,
//! one data area (from `pe_start` to the end) and one metadata area (4 KiB up to 1 MiB),
//! and the v2 extension (flag "used"). The metadata area starts with its header (CRC,
//! magic, version, its offset and size, one location of the text metadata) and the text
//! metadata right after it: the volume group, its physical volume and the logical
//! volumes, each one linear segment (`striped`, one stripe) in table order.
//! Every value comes from the caller, times from `SOURCE_DATE_EPOCH`, so the same layout
//! gives the same bytes.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

const SECTOR: u64 = 512;
/// Where the metadata area starts, from the start of the physical volume.
const MDA_START: u64 = 4096;
/// Where the first extent starts (LVM's default data alignment).
pub const PE_START: u64 = 1 << 20;
const MDA_MAGIC: &[u8; 16] = b" LVM2 x[5A%r0N*>";
const INITIAL_CRC: u32 = 0xf597_a6cf;

/// A linear logical volume.
#[derive(Debug, Clone)]
pub struct LogicalVolume {
    pub name: String,
    /// 32 characters of `[A-Za-z0-9!#]`.
    pub id: String,
    /// Bytes, a whole number of extents.
    pub size: u64,
}

/// A volume group on one physical volume.
#[derive(Debug, Clone)]
pub struct VolumeGroup {
    pub name: String,
    pub id: String,
    pub pv_id: String,
    pub extent_size: u64,
    pub lvs: Vec<LogicalVolume>,
    /// `creation_time` of the metadata.
    pub time: u64,
}

/// LVM's CRC-32: the IEEE polynomial, reflected, with its own seed and no final inversion.
pub fn crc(data: &[u8]) -> u32 {
    let mut c = INITIAL_CRC;
    for b in data {
        c ^= u32::from(*b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    c
}

/// `abcdef-ghij-...`: how LVM writes an id in text metadata (6-4-4-4-4-4-6).
fn formatted(id: &str) -> String {
    let mut out = String::new();
    let mut at = 0;
    for (i, n) in [6, 4, 4, 4, 4, 4, 6].iter().enumerate() {
        if i > 0 {
            out.push('-');
        }
        out.push_str(&id[at..at + n]);
        at += n;
    }
    out
}

fn check_name(what: &str, n: &str) -> io::Result<()> {
    if n.is_empty()
        || n.len() > 127
        || n.starts_with('-')
        || !n
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'_' | b'.' | b'-'))
    {
        return Err(inval(format!("invalid {what} name {n:?}")));
    }
    Ok(())
}

fn check_id(id: &str) -> io::Result<()> {
    if id.len() != 32
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'!' | b'#'))
    {
        return Err(inval(format!(
            "invalid LVM id {id:?} (32 letters and digits)"
        )));
    }
    Ok(())
}

fn inval(m: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, m)
}

impl VolumeGroup {
    fn check(&self, pv_size: u64) -> io::Result<()> {
        check_name("volume group", &self.name)?;
        check_id(&self.id)?;
        check_id(&self.pv_id)?;
        let e = self.extent_size;
        if e < 1024 * 1024 || !e.is_power_of_two() {
            return Err(inval(format!(
                "extent size {e} is not a power of two ≥ 1 MiB"
            )));
        }
        let total: u64 = self.lvs.iter().map(|l| l.size).sum();
        if pv_size < PE_START + total {
            return Err(inval(format!(
                "the logical volumes ({total} bytes) do not fit the physical volume ({pv_size} bytes)"
            )));
        }
        for lv in &self.lvs {
            check_name("logical volume", &lv.name)?;
            check_id(&lv.id)?;
            if lv.size == 0 || !lv.size.is_multiple_of(e) {
                return Err(inval(format!(
                    "logical volume {}: size {} is not a whole number of extents",
                    lv.name, lv.size
                )));
            }
        }
        Ok(())
    }

    /// Byte offset of each logical volume from the start of the physical volume.
    pub fn offsets(&self) -> Vec<u64> {
        let mut at = PE_START;
        self.lvs
            .iter()
            .map(|l| {
                let o = at;
                at += l.size;
                o
            })
            .collect()
    }

    /// The text metadata, as `vgcfgbackup` would print it (without its comments).
    pub fn metadata(&self, pv_size: u64) -> String {
        let e = self.extent_size;
        let pe_count = (pv_size - PE_START) / e;
        let mut t = format!(
            "{name} {{\nid = \"{id}\"\nseqno = 1\nformat = \"lvm2\"\nstatus = [\"RESIZEABLE\", \"READ\", \"WRITE\"]\nflags = []\nextent_size = {es}\nmax_lv = 0\nmax_pv = 0\nmetadata_copies = 0\n\nphysical_volumes {{\n\npv0 {{\nid = \"{pv}\"\nstatus = [\"ALLOCATABLE\"]\nflags = []\ndev_size = {ds}\npe_start = {ps}\npe_count = {pe_count}\n}}\n}}\n",
            name = self.name,
            id = formatted(&self.id),
            es = e / SECTOR,
            pv = formatted(&self.pv_id),
            ds = pv_size / SECTOR,
            ps = PE_START / SECTOR,
        );
        if !self.lvs.is_empty() {
            t.push_str("\nlogical_volumes {\n");
            let mut extent = 0;
            for lv in &self.lvs {
                let count = lv.size / e;
                t.push_str(&format!(
                    "\n{name} {{\nid = \"{id}\"\nstatus = [\"READ\", \"WRITE\", \"VISIBLE\"]\nflags = []\ncreation_time = {time}\ncreation_host = \"kiln\"\nsegment_count = 1\n\nsegment1 {{\nstart_extent = 0\nextent_count = {count}\n\ntype = \"striped\"\nstripe_count = 1\n\nstripes = [\n\"pv0\", {extent}\n]\n}}\n}}\n",
                    name = lv.name,
                    id = formatted(&lv.id),
                    time = self.time,
                ));
                extent += count;
            }
            t.push_str("}\n");
        }
        t.push_str(&format!(
            "}}\n# Generated by kiln\n\ncontents = \"Text Format Volume Group\"\nversion = 1\n\ndescription = \"\"\n\ncreation_host = \"kiln\"\ncreation_time = {}\n",
            self.time
        ));
        t
    }
}

/// Writes the physical volume of `vg` at `[start, start + size)` of `f`.
pub fn write(f: &File, start: u64, size: u64, vg: &VolumeGroup) -> io::Result<()> {
    vg.check(size)?;
    if !start.is_multiple_of(SECTOR) || !size.is_multiple_of(SECTOR) {
        return Err(inval("the physical volume must be whole sectors".into()));
    }
    let mda_size = PE_START - MDA_START;

    // Label and PV header, sector 1.
    let mut label = vec![0u8; SECTOR as usize];
    label[0..8].copy_from_slice(b"LABELONE");
    label[8..16].copy_from_slice(&1u64.to_le_bytes());
    label[20..24].copy_from_slice(&32u32.to_le_bytes());
    label[24..32].copy_from_slice(b"LVM2 001");
    let mut h = 32;
    let mut put = |label: &mut Vec<u8>, bytes: &[u8]| {
        label[h..h + bytes.len()].copy_from_slice(bytes);
        h += bytes.len();
    };
    put(&mut label, vg.pv_id.as_bytes());
    put(&mut label, &size.to_le_bytes());
    // Data areas: one from pe_start to the end (size 0), then the terminator.
    put(&mut label, &PE_START.to_le_bytes());
    put(&mut label, &0u64.to_le_bytes());
    put(&mut label, &[0u8; 16]);
    // Metadata areas: one, then the terminator.
    put(&mut label, &MDA_START.to_le_bytes());
    put(&mut label, &mda_size.to_le_bytes());
    put(&mut label, &[0u8; 16]);
    // Extension v2: in a volume group; no bootloader areas (terminator).
    put(&mut label, &2u32.to_le_bytes());
    put(&mut label, &1u32.to_le_bytes());
    put(&mut label, &[0u8; 16]);
    let c = crc(&label[20..]);
    label[16..20].copy_from_slice(&c.to_le_bytes());

    // Metadata text (NUL-terminated) right after the metadata area header.
    let mut text = vg.metadata(size).into_bytes();
    text.push(0);
    if text.len() as u64 > mda_size - SECTOR {
        return Err(inval("the LVM metadata does not fit its area".into()));
    }
    let mut mda = vec![0u8; SECTOR as usize];
    mda[4..20].copy_from_slice(MDA_MAGIC);
    mda[20..24].copy_from_slice(&1u32.to_le_bytes());
    mda[24..32].copy_from_slice(&MDA_START.to_le_bytes());
    mda[32..40].copy_from_slice(&mda_size.to_le_bytes());
    mda[40..48].copy_from_slice(&SECTOR.to_le_bytes());
    mda[48..56].copy_from_slice(&(text.len() as u64).to_le_bytes());
    mda[56..60].copy_from_slice(&crc(&text).to_le_bytes());
    let c = crc(&mda[4..]);
    mda[0..4].copy_from_slice(&c.to_le_bytes());

    // Clear what a previous signature could have left in the header area.
    f.write_all_at(&vec![0u8; PE_START as usize], start)?;
    f.write_all_at(&label, start + SECTOR)?;
    f.write_all_at(&mda, start + MDA_START)?;
    f.write_all_at(&text, start + MDA_START + SECTOR)?;
    Ok(())
}

/// A Linux swap area (v1, 4 KiB pages) over `[start, start + size)`, as `mkswap` makes it.
pub fn write_swap(f: &File, start: u64, size: u64, uuid: &str, label: &str) -> io::Result<()> {
    const PAGE: u64 = 4096;
    if size < 10 * PAGE || label.len() > 16 {
        return Err(inval(format!(
            "swap area of {size} bytes (at least 40 KiB) or label {label:?} (at most 16 bytes)"
        )));
    }
    let hex: String = uuid.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(inval(format!("invalid swap UUID {uuid:?}")));
    }
    let mut page = vec![0u8; PAGE as usize];
    page[1024..1028].copy_from_slice(&1u32.to_le_bytes());
    page[1028..1032].copy_from_slice(&((size / PAGE - 1) as u32).to_le_bytes());
    for i in 0..16 {
        page[1036 + i] = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
    page[1052..1052 + label.len()].copy_from_slice(label.as_bytes());
    page[PAGE as usize - 10..].copy_from_slice(b"SWAPSPACE2");
    f.write_all_at(&page, start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(p: &std::path::Path) -> File {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(p)
            .unwrap()
    }

    fn vg() -> VolumeGroup {
        VolumeGroup {
            name: "vg00".into(),
            id: "a".repeat(32),
            pv_id: "B".repeat(32),
            extent_size: 4 << 20,
            lvs: vec![
                LogicalVolume {
                    name: "rootlv".into(),
                    id: "c".repeat(32),
                    size: 8 << 20,
                },
                LogicalVolume {
                    name: "varlv".into(),
                    id: "d".repeat(32),
                    size: 4 << 20,
                },
            ],
            time: 1_700_000_000,
        }
    }

    #[test]
    fn crc_matches_lvm() {
        // LVM's calc_crc of nothing is its seed; of one zero byte, by the definition.
        assert_eq!(crc(&[]), INITIAL_CRC);
        let mut c = INITIAL_CRC;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
        assert_eq!(crc(&[0]), c);
    }

    #[test]
    fn label_metadata_and_segments() {
        let dir = tempfile::tempdir().unwrap();
        let f = rw(&dir.path().join("pv"));
        let size = 16u64 << 20;
        f.set_len(size + (1 << 20)).unwrap();
        write(&f, 1 << 20, size, &vg()).unwrap();
        let mut label = vec![0u8; 512];
        f.read_exact_at(&mut label, (1 << 20) + 512).unwrap();
        assert_eq!(&label[..8], b"LABELONE");
        assert_eq!(&label[24..32], b"LVM2 001");
        assert_eq!(
            u32::from_le_bytes(label[16..20].try_into().unwrap()),
            crc(&label[20..])
        );
        assert_eq!(&label[32..64], "B".repeat(32).as_bytes());
        let mut mda = vec![0u8; 512];
        f.read_exact_at(&mut mda, (1 << 20) + 4096).unwrap();
        assert_eq!(&mda[4..20], MDA_MAGIC);
        assert_eq!(
            u32::from_le_bytes(mda[0..4].try_into().unwrap()),
            crc(&mda[4..])
        );
        let len = u64::from_le_bytes(mda[48..56].try_into().unwrap()) as usize;
        let mut text = vec![0u8; len];
        f.read_exact_at(&mut text, (1 << 20) + 4096 + 512).unwrap();
        assert_eq!(
            u32::from_le_bytes(mda[56..60].try_into().unwrap()),
            crc(&text)
        );
        let text = String::from_utf8(text[..len - 1].to_vec()).unwrap();
        assert!(text.starts_with("vg00 {\nid = \"aaaaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaaaa\""));
        // 16 MiB PV: 1 MiB header, three 4 MiB extents; varlv after rootlv's two extents.
        assert!(text.contains("pe_count = 3\n"), "{text}");
        assert!(text.contains("dev_size = 32768\n"));
        assert!(text.contains("extent_count = 2\n"));
        assert!(text.contains("\"pv0\", 2\n"));
        assert_eq!(vg().offsets(), [1 << 20, 9 << 20]);
    }

    #[test]
    fn bad_volume_groups_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = rw(&dir.path().join("pv"));
        f.set_len(64 << 20).unwrap();
        assert!(
            write(&f, 0, 12 << 20, &vg()).is_err(),
            "12 MiB cannot hold 1 + 12 MiB"
        );
        let mut v = vg();
        v.lvs[0].size = 5 << 20;
        assert!(write(&f, 0, 32 << 20, &v).is_err(), "not whole extents");
        let mut v = vg();
        v.name = "-bad".into();
        assert!(write(&f, 0, 32 << 20, &v).is_err());
        let mut v = vg();
        v.id = "short".into();
        assert!(write(&f, 0, 32 << 20, &v).is_err());
    }

    #[test]
    fn swap_header() {
        let dir = tempfile::tempdir().unwrap();
        let f = rw(&dir.path().join("swap"));
        f.set_len(1 << 20).unwrap();
        write_swap(
            &f,
            0,
            1 << 20,
            "01234567-89ab-cdef-0123-456789abcdef",
            "swap",
        )
        .unwrap();
        let mut page = vec![0u8; 4096];
        f.read_exact_at(&mut page, 0).unwrap();
        assert_eq!(&page[4086..], b"SWAPSPACE2");
        assert_eq!(
            u32::from_le_bytes(page[1028..1032].try_into().unwrap()),
            255
        );
        assert_eq!(page[1036], 0x01);
        assert_eq!(&page[1052..1056], b"swap");
    }
}
