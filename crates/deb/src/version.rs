//! dpkg version comparison (`deb-version(7)`), on borrowed strings and without allocating.
//!
//! A version is `[epoch:]upstream[-revision]`. Comparison is epoch numerically, then
//! upstream, then revision, each with dpkg's `verrevcmp`: alternating non-digit runs
//! (compared with `~` sorting before everything, even the end of the string, and letters
//! before other characters) and digit runs (compared numerically).

use std::cmp::Ordering;

/// A version split into its three parts, borrowing from the original string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version<'a> {
    pub epoch: u64,
    pub upstream: &'a str,
    /// The Debian revision, `""` when the version has none.
    pub revision: &'a str,
}

impl<'a> Version<'a> {
    /// Splits a version string. It is lenient like dpkg's comparison: it never fails on odd
    /// characters, only a non-numeric epoch is treated as part of the upstream version.
    pub fn parse(s: &'a str) -> Version<'a> {
        let s = s.trim();
        let (epoch, rest) = match s.split_once(':') {
            Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
                (e.parse().unwrap_or(u64::MAX), rest)
            }
            _ => (0, s),
        };
        let (upstream, revision) = match rest.rfind('-') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        Version {
            epoch,
            upstream,
            revision,
        }
    }

    /// The version as apt prints it, without the epoch (`upstream-revision`).
    pub fn without_epoch(&self) -> String {
        if self.revision.is_empty() {
            self.upstream.to_string()
        } else {
            format!("{}-{}", self.upstream, self.revision)
        }
    }
}

impl Ord for Version<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(self.upstream.as_bytes(), other.upstream.as_bytes()))
            .then_with(|| verrevcmp(self.revision.as_bytes(), other.revision.as_bytes()))
    }
}

impl PartialOrd for Version<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Compares two version strings as `dpkg --compare-versions` does.
pub fn compare(a: &str, b: &str) -> Ordering {
    Version::parse(a).cmp(&Version::parse(b))
}

/// Checks that a string is a well-formed Debian version (policy §5.6.12), for input
/// validation: upstream must start with a digit and use only `[A-Za-z0-9.+~-]`
/// (`:` is allowed only after an epoch).
pub fn is_valid(s: &str) -> bool {
    let v = Version::parse(s);
    if s.contains(':')
        && !s
            .split_once(':')
            .is_some_and(|(e, _)| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    let up_ok = v
        .upstream
        .as_bytes()
        .first()
        .is_some_and(u8::is_ascii_digit)
        && v.upstream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"..+~-".contains(&b));
    let rev_ok = v
        .revision
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".+~".contains(&b))
        && (!s.contains('-') || !v.revision.is_empty());
    up_ok && rev_ok
}

/// Sort weight of a non-digit character, as in dpkg's `order()`.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    }
}

fn verrevcmp(mut a: &[u8], mut b: &[u8]) -> Ordering {
    while !a.is_empty() || !b.is_empty() {
        // Non-digit prefix, character by character.
        while a.first().is_some_and(|c| !c.is_ascii_digit())
            || b.first().is_some_and(|c| !c.is_ascii_digit())
        {
            let (ca, cb) = (order(a.first().copied()), order(b.first().copied()));
            if ca != cb {
                return ca.cmp(&cb);
            }
            a = &a[1.min(a.len())..];
            b = &b[1.min(b.len())..];
        }
        // Digit run, numerically: skip leading zeros, then longer is larger, then lexical.
        let skip_zeros = |s: &[u8]| s.iter().take_while(|&&c| c == b'0').count();
        a = &a[skip_zeros(a)..];
        b = &b[skip_zeros(b)..];
        let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
        let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let ord = da.cmp(&db).then_with(|| a[..da].cmp(&b[..db]));
        if ord != Ordering::Equal {
            return ord;
        }
        a = &a[da..];
        b = &b[db..];
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn known_orderings() {
        let cases = [
            ("1.0", "1.0", Equal),
            ("1.0", "1.1", Less),
            ("1.0~rc1", "1.0", Less),
            ("1.0~~", "1.0~", Less),
            ("1.0", "1.0+b1", Less),
            ("1:0.1", "2.0", Greater),
            ("0:1.0", "1.0", Equal),
            ("1.0-1", "1.0-1.1", Less),
            ("1.0-1", "1.0", Greater),
            ("1.0a", "1.0", Greater),
            ("1.0a", "1.0+", Less),
            ("2.36-9+deb12u4", "2.36-9+deb12u10", Less),
            ("10", "9", Greater),
            ("007", "7", Equal),
            ("1.2.3-1~bpo12+1", "1.2.3-1", Less),
            ("1.0-0", "1.0", Equal),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn split() {
        let v = Version::parse("2:1.2-3-4");
        assert_eq!((v.epoch, v.upstream, v.revision), (2, "1.2-3", "4"));
        assert_eq!(v.without_epoch(), "1.2-3-4");
        let v = Version::parse("1.0");
        assert_eq!((v.epoch, v.upstream, v.revision), (0, "1.0", ""));
    }

    #[test]
    fn validity() {
        for ok in ["1.0", "1:2.3-4", "2.36-9+deb12u4", "1.0~rc1-1~bpo1"] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in ["", "a1.0", "1.0-", "x:1.0", "1.0 2", "1.0_1"] {
            assert!(!is_valid(bad), "{bad}");
        }
    }
}
