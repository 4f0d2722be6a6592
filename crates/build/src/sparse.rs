//! Copying and writing sparse files (disk images are mostly holes: a 10 GiB image may
//! hold 700 MB of data, and copying it must not write the other 9.3 GB as zeros).

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use rustix::fs::SeekFrom as RSeek;

const CHUNK: usize = 1 << 20;

/// The data extents of `f` as `(offset, length)`, found with `SEEK_DATA`/`SEEK_HOLE`
/// (a filesystem without them reports the whole file as data).
pub fn data_extents(f: &File) -> io::Result<Vec<(u64, u64)>> {
    let len = f.metadata()?.len();
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < len {
        let start = match rustix::fs::seek(f, RSeek::Data(pos)) {
            Ok(s) => s,
            Err(rustix::io::Errno::NXIO) => break, // only a hole remains
            Err(e) => return Err(e.into()),
        };
        let end = match rustix::fs::seek(f, RSeek::Hole(start)) {
            Ok(e) => e.min(len),
            Err(e) => return Err(e.into()),
        };
        if end > start {
            out.push((start, end - start));
        }
        pos = end;
    }
    Ok(out)
}

/// Copies `src` to a new file `dest` (which must not exist), keeping holes, and makes
/// the copy durable (fsync) before returning.
///
/// Both files are read and written with `O_DIRECT` where the filesystem allows it: an
/// image is hundreds of megabytes that nobody reads back soon, and moving them through
/// the page cache costs more than the disk on these machines (702 MB: 0.5 s direct,
/// 1.4–2.8 s through the cache, measured on the development VM; BENCHMARKS.md).
pub fn copy_file(src: &Path, dest: &Path) -> io::Result<()> {
    let input = File::open(src)?;
    let len = input.metadata()?.len();
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)?;
    let direct_out = open_direct(dest, true);
    match direct_out {
        Some(direct_out) => {
            let direct_in = open_direct(src, false);
            let reader = direct_in.as_ref().unwrap_or(&input);
            copy_direct(&input, reader, &direct_out, &out, len)?;
        }
        None => copy_range_sparse(&input, &mut out, 0, len, 0)?,
    }
    out.set_len(len)?;
    out.sync_all()
}

/// `path` opened with `O_DIRECT` (for writing, or for reading), if its filesystem allows.
fn open_direct(path: &Path, write: bool) -> Option<File> {
    std::fs::OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(path)
        .ok()
}

/// Whether files in `dir` can be opened with `O_DIRECT` (not on every filesystem).
pub fn supports_direct_io(dir: &Path) -> bool {
    let Ok(probe) = tempfile::Builder::new()
        .prefix(".kiln-direct-probe")
        .tempfile_in(dir)
    else {
        return false;
    };
    open_direct(probe.path(), true).is_some()
}

/// Alignment of `O_DIRECT` offsets, lengths and buffers (the largest logical block size
/// in use: 4 KiB).
const DIRECT_ALIGN: usize = 4096;

/// Copies the data extents of `input` to the destination: block-aligned pieces are read
/// through `reader` (the source, opened with `O_DIRECT` if possible) and written through
/// `direct` (the destination opened with `O_DIRECT`); the rest (a file's unaligned tail)
/// through `input` and `buffered`, the same files opened normally. All-zero chunks stay
/// holes.
fn copy_direct(
    input: &File,
    reader: &File,
    direct: &File,
    buffered: &File,
    len: u64,
) -> io::Result<()> {
    // A chunk-sized window of a slightly larger buffer, starting at an aligned address.
    let mut backing = vec![0u8; CHUNK + DIRECT_ALIGN];
    let skip = backing.as_ptr().align_offset(DIRECT_ALIGN);
    let buf = &mut backing[skip..skip + CHUNK];
    let align = DIRECT_ALIGN as u64;
    for (start, size) in data_extents(input)? {
        let end = (start + size).min(len);
        let mut pos = start;
        while pos < end {
            let n = ((end - pos) as usize).min(CHUNK);
            let aligned = pos.is_multiple_of(align) && (n as u64).is_multiple_of(align);
            let (from, to) = if aligned {
                (reader, direct)
            } else {
                (input, buffered)
            };
            from.read_exact_at(&mut buf[..n], pos)?;
            if buf[..n].iter().any(|&b| b != 0) {
                to.write_all_at(&buf[..n], pos)?;
            }
            pos += n as u64;
        }
    }
    Ok(())
}

/// Writes bytes `[offset, offset+len)` of `input` to `out` at `dest_offset`, skipping
/// the holes of `input` and all-zero blocks (which stay holes in `out` if it is new).
pub fn copy_range_sparse(
    input: &File,
    out: &mut File,
    offset: u64,
    len: u64,
    dest_offset: u64,
) -> io::Result<()> {
    let end = offset + len;
    let mut buf = vec![0u8; CHUNK];
    for (start, size) in data_extents(input)? {
        let (s, e) = (start.max(offset), (start + size).min(end));
        let mut pos = s;
        while pos < e {
            let n = ((e - pos) as usize).min(CHUNK);
            input.read_exact_at(&mut buf[..n], pos)?;
            if buf[..n].iter().any(|&b| b != 0) {
                out.write_all_at(&buf[..n], dest_offset + (pos - offset))?;
            }
            pos += n as u64;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom};

    /// Whether `a` and `b` hold the same bytes (holes read as zeros).
    pub fn same_content(a: &Path, b: &Path) -> io::Result<bool> {
        let (mut fa, mut fb) = (File::open(a)?, File::open(b)?);
        if fa.metadata()?.len() != fb.metadata()?.len() {
            return Ok(false);
        }
        fa.seek(SeekFrom::Start(0))?;
        fb.seek(SeekFrom::Start(0))?;
        let (mut ba, mut bb) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
        loop {
            let n = fa.read(&mut ba)?;
            if n == 0 {
                return Ok(true);
            }
            fb.read_exact(&mut bb[..n])?;
            if ba[..n] != bb[..n] {
                return Ok(false);
            }
        }
    }

    #[test]
    fn holes_survive_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a");
        let f = File::create(&src).unwrap();
        f.set_len(64 << 20).unwrap();
        f.write_all_at(b"head", 0).unwrap();
        f.write_all_at(b"tail", (64 << 20) - 4).unwrap();
        f.write_all_at(&[0u8; 4096], 8 << 20).unwrap(); // written zeros become a hole
        drop(f);
        let dest = dir.path().join("b");
        copy_file(&src, &dest).unwrap();
        assert!(same_content(&src, &dest).unwrap());
        let used = std::fs::metadata(&dest).map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.blocks() * 512
        });
        assert!(used.unwrap() < 4 << 20, "the copy is not sparse");
        assert!(
            copy_file(&src, &dest).is_err(),
            "an existing destination is refused"
        );
    }

    /// Data that ends off a block boundary: the aligned part goes through O_DIRECT, the
    /// tail through the page cache, and the bytes are the same.
    #[test]
    fn unaligned_tail_is_copied() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a");
        let len = (3 << 20) + 4097;
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8 | 1).collect();
        std::fs::write(&src, &data).unwrap();
        let dest = dir.path().join("b");
        copy_file(&src, &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), data);
    }
}
