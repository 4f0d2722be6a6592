//! Small helpers: atomic file writes, hashing, RFC 2822 dates.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::error::RepoError;

/// Writes `bytes` to `path` so that the file is either absent/old or complete: a temporary
/// file in the same directory, fsync, rename over `path`, then fsync of the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RepoError> {
    let dir = path.parent().ok_or_else(|| {
        RepoError::Internal(format!("{} has no parent directory", path.display()))
    })?;
    std::fs::create_dir_all(dir).map_err(|e| RepoError::write(dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| RepoError::write(dir, e))?;
    tmp.write_all(bytes)
        .map_err(|e| RepoError::write(tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| RepoError::write(tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| RepoError::write(path, e.error))?;
    // The rename is durable only once the directory is synced; failure here is not fatal
    // for correctness (the file is complete either way).
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Parses the dates used in Release files (`Sat, 10 Jun 2023 08:53:33 UTC`, also with
/// `GMT`, `Z`, `+0000` style offsets, and without the weekday).
pub(crate) fn parse_release_date(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let s = match s.split_once(',') {
        Some((_, rest)) => rest.trim(),
        None => s,
    };
    let mut parts = s.split_whitespace();
    let day: u32 = parts.next()?.parse().ok()?;
    let month = match parts.next()?.to_ascii_lowercase().as_str() {
        "jan" => 1,
        "feb" => 2,
        "mar" => 3,
        "apr" => 4,
        "may" => 5,
        "jun" => 6,
        "jul" => 7,
        "aug" => 8,
        "sep" => 9,
        "oct" => 10,
        "nov" => 11,
        "dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':');
    let h: i64 = hms.next()?.parse().ok()?;
    let m: i64 = hms.next()?.parse().ok()?;
    let sec: i64 = hms.next().unwrap_or("0").parse().ok()?;
    if !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let offset_secs: i64 = match parts.next() {
        None => 0,
        Some(z) if z.eq_ignore_ascii_case("UTC") || z.eq_ignore_ascii_case("GMT") || z == "Z" => 0,
        Some(z) if (z.starts_with('+') || z.starts_with('-')) && z.len() == 5 => {
            let v: i64 = z[1..].parse().ok()?;
            let secs = (v / 100) * 3600 + (v % 100) * 60;
            if z.starts_with('-') { -secs } else { secs }
        }
        Some(_) => return None,
    };
    let days = days_from_civil(year, month, day);
    let t = days * 86400 + h * 3600 + m * 60 + sec - offset_secs;
    if t < 0 {
        return None;
    }
    Some(UNIX_EPOCH + Duration::from_secs(t as u64))
}

/// Formats a time as `2023-06-10 08:53:33 UTC` for messages.
pub(crate) fn format_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

// Howard Hinnant's algorithms.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_dates() {
        let t = parse_release_date("Sat, 10 Jun 2023 08:53:33 UTC").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap().as_secs(), 1686387213);
        assert_eq!(format_time(t), "2023-06-10 08:53:33 UTC");
        let t2 = parse_release_date("Sat, 10 Jun 2023 10:53:33 +0200").unwrap();
        assert_eq!(t, t2);
        assert!(parse_release_date("10 Foo 2023 08:53:33 UTC").is_none());
        assert!(parse_release_date("garbage").is_none());
        assert_eq!(
            format_time(parse_release_date("Thu, 29 Feb 2024 00:00:00 GMT").unwrap()),
            "2024-02-29 00:00:00 UTC"
        );
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/file");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let n = std::fs::read_dir(p.parent().unwrap()).unwrap().count();
        assert_eq!(n, 1, "no temp files left behind");
    }
}
