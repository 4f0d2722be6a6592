//! Writing a GUID partition table (with its protective MBR) into a disk image file.
//!
//! Small and exact rather than a dependency: kiln always writes a fresh table with 128
//! entries of 128 bytes, 512-byte sectors, every identifier given by the caller, so the
//! same layout always gives the same bytes.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

pub const SECTOR: u64 = 512;
const ENTRIES: u64 = 128;
const ENTRY_SIZE: u64 = 128;
/// Sectors taken by the entry array (128 × 128 bytes).
const ARRAY_SECTORS: u64 = ENTRIES * ENTRY_SIZE / SECTOR;

/// A partition: `[start, start + size)` in bytes, both multiples of [`SECTOR`].
#[derive(Debug, Clone)]
pub struct Partition {
    pub type_guid: String,
    pub uuid: String,
    pub name: String,
    pub start: u64,
    pub size: u64,
    /// GPT attribute bits (bit 2: legacy BIOS bootable).
    pub attributes: u64,
}

/// A GUID in GPT's on-disk byte order (the first three fields little-endian).
pub fn guid_bytes(text: &str) -> Result<[u8; 16], String> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    let groups: Vec<usize> = text.split('-').map(str::len).collect();
    if hex.len() != 32 || groups != [8, 4, 4, 4, 12] || !hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(format!(
            "{text:?} is not a GUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
        ));
    }
    let mut b = [0u8; 16];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    Ok(b)
}

/// The first and last sector a partition may use on a disk of `disk_size` bytes.
pub fn usable(disk_size: u64) -> (u64, u64) {
    let last = disk_size / SECTOR - 1;
    (2 + ARRAY_SECTORS, last - 1 - ARRAY_SECTORS)
}

/// Writes the protective MBR, the primary and the backup GPT of `parts` into `f`
/// (whose length is the disk size). The MBR's boot code area is left as it is.
pub fn write(f: &File, disk_guid: &str, parts: &[Partition]) -> io::Result<()> {
    let inval = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
    let disk_size = f.metadata()?.len();
    if disk_size % SECTOR != 0 || disk_size < 1 << 20 {
        return Err(inval(format!(
            "disk size {disk_size} is not a whole number of sectors ≥ 1 MiB"
        )));
    }
    if parts.len() as u64 > ENTRIES {
        return Err(inval(format!(
            "{} partitions: GPT holds at most {ENTRIES}",
            parts.len()
        )));
    }
    let last = disk_size / SECTOR - 1;
    let (first_usable, last_usable) = usable(disk_size);

    let mut array = vec![0u8; (ENTRIES * ENTRY_SIZE) as usize];
    let mut taken: Vec<(u64, u64, &str)> = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if p.start % SECTOR != 0 || p.size % SECTOR != 0 || p.size == 0 {
            return Err(inval(format!(
                "partition {:?}: start and size must be whole, non-zero sectors",
                p.name
            )));
        }
        let (s, e) = (p.start / SECTOR, (p.start + p.size) / SECTOR - 1);
        if s < first_usable || e > last_usable {
            return Err(inval(format!(
                "partition {:?} (sectors {s}..={e}) is outside the usable area {first_usable}..={last_usable}",
                p.name
            )));
        }
        if let Some((_, _, other)) = taken.iter().find(|(a, b, _)| s <= *b && *a <= e) {
            return Err(inval(format!(
                "partitions {:?} and {other:?} overlap",
                p.name
            )));
        }
        taken.push((s, e, &p.name));
        let entry = &mut array[i * ENTRY_SIZE as usize..(i + 1) * ENTRY_SIZE as usize];
        entry[0..16].copy_from_slice(&guid_bytes(&p.type_guid).map_err(inval)?);
        entry[16..32].copy_from_slice(&guid_bytes(&p.uuid).map_err(inval)?);
        entry[32..40].copy_from_slice(&s.to_le_bytes());
        entry[40..48].copy_from_slice(&e.to_le_bytes());
        entry[48..56].copy_from_slice(&p.attributes.to_le_bytes());
        let name: Vec<u16> = p.name.encode_utf16().collect();
        if name.len() > 36 {
            return Err(inval(format!(
                "partition name {:?} is longer than 36 UTF-16 units",
                p.name
            )));
        }
        for (j, u) in name.iter().enumerate() {
            entry[56 + 2 * j..58 + 2 * j].copy_from_slice(&u.to_le_bytes());
        }
    }
    let array_crc = crc32fast::hash(&array);
    let disk = guid_bytes(disk_guid).map_err(inval)?;

    let header = |current: u64, backup: u64, array_lba: u64| {
        let mut h = vec![0u8; SECTOR as usize];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&current.to_le_bytes());
        h[32..40].copy_from_slice(&backup.to_le_bytes());
        h[40..48].copy_from_slice(&first_usable.to_le_bytes());
        h[48..56].copy_from_slice(&last_usable.to_le_bytes());
        h[56..72].copy_from_slice(&disk);
        h[72..80].copy_from_slice(&array_lba.to_le_bytes());
        h[80..84].copy_from_slice(&(ENTRIES as u32).to_le_bytes());
        h[84..88].copy_from_slice(&(ENTRY_SIZE as u32).to_le_bytes());
        h[88..92].copy_from_slice(&array_crc.to_le_bytes());
        let crc = crc32fast::hash(&h[..92]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    };

    // Protective MBR: one partition of type 0xEE covering the disk (boot code untouched).
    let mut mbr = [0u8; 66];
    let pe = &mut mbr[0..16];
    pe[1..4].copy_from_slice(&[0x00, 0x02, 0x00]); // CHS of LBA 1
    pe[4] = 0xEE;
    pe[5..8].copy_from_slice(&[0xFF, 0xFF, 0xFF]);
    pe[8..12].copy_from_slice(&1u32.to_le_bytes());
    pe[12..16].copy_from_slice(&(last.min(u32::MAX as u64) as u32).to_le_bytes());
    mbr[64] = 0x55;
    mbr[65] = 0xAA;
    f.write_all_at(&mbr, 446)?;
    f.write_all_at(&header(1, last, 2), SECTOR)?;
    f.write_all_at(&array, 2 * SECTOR)?;
    let backup_array = last - ARRAY_SECTORS;
    f.write_all_at(&array, backup_array * SECTOR)?;
    f.write_all_at(&header(last, 1, backup_array), last * SECTOR)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_order_is_mixed_endian() {
        let b = guid_bytes("C12A7328-F81F-11D2-BA4B-00A0C93EC93B").unwrap();
        assert_eq!(
            b,
            [
                0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E,
                0xC9, 0x3B
            ]
        );
        assert!(guid_bytes("C12A7328F81F11D2BA4B00A0C93EC93B").is_err());
    }

    #[test]
    fn overlaps_and_out_of_range_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = File::create(dir.path().join("d")).unwrap();
        f.set_len(8 << 20).unwrap();
        let p = |start, size| Partition {
            type_guid: "0FC63DAF-8483-4772-8E79-3D69D8477DE4".into(),
            uuid: "11111111-2222-3333-4444-555555555555".into(),
            name: "x".into(),
            start,
            size,
            attributes: 0,
        };
        let g = "22222222-2222-2222-2222-222222222222";
        assert!(write(&f, g, &[p(1 << 20, 2 << 20), p(2 << 20, 1 << 20)]).is_err());
        assert!(write(&f, g, &[p(1 << 20, 7 << 20)]).is_err());
        assert!(write(&f, g, &[p(512, 1 << 20)]).is_err());
        write(&f, g, &[p(1 << 20, 6 << 20)]).unwrap();
    }
}
