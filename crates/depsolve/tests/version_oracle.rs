//! `kiln_deb::version::compare` against `dpkg --compare-versions` as the oracle.
//! Skips (with a message) when dpkg is not installed.

use kiln_deb::version::compare;
use proptest::prelude::*;
use std::cmp::Ordering;
use std::process::Command;

fn have_dpkg() -> bool {
    Command::new("dpkg")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// dpkg's verdict, `None` when dpkg rejects one of the versions.
fn dpkg_compare(a: &str, b: &str) -> Option<Ordering> {
    let run = |op: &str| {
        let status = Command::new("dpkg")
            .args(["--compare-versions", a, op, b])
            .output()
            .ok()?;
        match status.status.code() {
            Some(0) => Some(true),
            Some(1) => Some(false),
            _ => None,
        }
    };
    if run("lt")? {
        Some(Ordering::Less)
    } else if run("eq")? {
        Some(Ordering::Equal)
    } else {
        Some(Ordering::Greater)
    }
}

/// Debian-ish versions: `[epoch:]upstream[-revision]` over digits, letters and `.+~`.
fn version() -> impl Strategy<Value = String> {
    let epoch = prop::option::weighted(0.2, prop::sample::select(vec!["0", "1", "2", "10"]));
    let upstream = (
        prop::sample::select(vec!['0', '1', '2', '9']),
        prop::collection::vec(
            prop::sample::select(vec![
                '0', '1', '2', '5', '9', '0', 'a', 'b', 'z', 'A', 'Z', '.', '.', '+', '~', '~', '-',
            ]),
            0..8,
        ),
    );
    let revision = prop::option::weighted(
        0.6,
        prop::collection::vec(
            prop::sample::select(vec!['0', '1', '2', '9', 'a', 'b', '.', '+', '~']),
            1..5,
        ),
    );
    (epoch, upstream, revision).prop_map(|(e, (first, rest), rev)| {
        let mut s = String::new();
        if let Some(e) = e {
            s.push_str(e);
            s.push(':');
        }
        s.push(first);
        s.extend(rest);
        match rev {
            Some(r) => {
                s.push('-');
                s.extend(r);
            }
            // A hyphen in the upstream part needs a revision after it.
            None if s.contains('-') => s.push_str("-1"),
            None => {}
        }
        s
    })
}

/// A pair of versions, often close to each other so that comparisons go deep.
fn version_pair() -> impl Strategy<Value = (String, String)> {
    version().prop_flat_map(|a| {
        let near = (
            0..=a.len(),
            prop::sample::select(vec!["", "~", "+", ".0", "0", "a", "~~", "-1", "1"]),
        )
            .prop_map({
                let a = a.clone();
                move |(cut, tail)| {
                    let mut cut = cut;
                    while !a.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    format!("{}{tail}", &a[..cut])
                }
            });
        // An empty string is not a version (dpkg's command line treats it as "not
        // installed", lower than anything).
        (
            Just(a),
            prop_oneof![version(), near.prop_filter("empty", |b| !b.is_empty())],
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn compare_matches_dpkg((a, b) in version_pair()) {
        if !have_dpkg() {
            return Ok(());
        }
        // dpkg rejects some generated strings (e.g. an empty revision); skip those.
        if let Some(want) = dpkg_compare(&a, &b) {
            prop_assert_eq!(compare(&a, &b), want, "{} vs {}", a, b);
            prop_assert_eq!(compare(&b, &a), want.reverse(), "{} vs {}", b, a);
        }
    }
}

#[test]
fn tricky_cases_match_dpkg() {
    if !have_dpkg() {
        eprintln!("SKIP: dpkg is not installed");
        return;
    }
    let cases = [
        ("1.0~rc1", "1.0"),
        ("1.0", "1.0-0"),
        ("1:0", "0:999"),
        ("1.0a", "1.0+"),
        ("1.0~~a", "1.0~"),
        ("0001", "1"),
        ("1.00", "1.0"),
        ("2.36-9+deb12u10", "2.36-9+deb12u9"),
        ("1.2.3-1~bpo12+1", "1.2.3-1"),
        ("1-2-3", "1-2"),
        ("9", "10"),
        ("1.0-1", "1.0-1.0"),
        ("1.0.", "1.0"),
        ("1.0-", "1.0"),
        ("a1", "1"),
        ("1:1.0-1", "1.0-1"),
        ("1.0-a", "1.0-1"),
        ("1.0+~", "1.0+"),
        ("12345678901234567890", "12345678901234567891"),
    ];
    for (a, b) in cases {
        if let Some(want) = dpkg_compare(a, b) {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }
}
