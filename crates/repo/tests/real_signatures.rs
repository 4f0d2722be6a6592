//! Verifies the real Debian-signed `InRelease` files apt left on this machine against the
//! Debian archive keyring. Skipped (with a message) when those files are absent.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kiln_repo::openpgp::{Keyring, VerifyError, verify_cleartext};
use kiln_repo::release::ReleaseInfo;

const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
const LISTS: &str = "/var/lib/apt/lists";

fn debian_inreleases() -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(LISTS) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with("_InRelease"))
                && std::fs::read_to_string(p).is_ok_and(|t| t.contains("\nOrigin: Debian\n"))
        })
        .collect();
    v.sort();
    v
}

fn debian_keyring() -> Option<Keyring> {
    let bytes = std::fs::read(KEYRING).ok()?;
    let mut k = Keyring::new();
    k.add_bytes(&bytes, KEYRING)
        .expect("the Debian keyring loads");
    Some(k)
}

/// The `Date:` of a signed Release (its files are old: "now" must be when they were valid).
fn release_date(data: &[u8]) -> SystemTime {
    let text = String::from_utf8_lossy(data);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Date: "))
        .expect("a Date field");
    // Reuse the crate's parser through ReleaseInfo.
    let info = ReleaseInfo::parse(
        format!("Date: {line}\nSHA256:\n").as_bytes(),
        String::new(),
        vec![],
    )
    .unwrap();
    info.date.unwrap()
}

fn inputs() -> Option<(Keyring, Vec<PathBuf>)> {
    let files = debian_inreleases();
    let keyring = debian_keyring();
    match (keyring, files.is_empty()) {
        (Some(k), false) => Some((k, files)),
        _ => {
            eprintln!("SKIPPED: no {KEYRING} or no Debian InRelease in {LISTS}");
            None
        }
    }
}

#[test]
fn real_debian_inrelease_files_verify() {
    let Some((keyring, files)) = inputs() else {
        return;
    };
    assert!(keyring.len() >= 4, "the Debian keyring has several keys");
    for f in &files {
        let data = std::fs::read(f).unwrap();
        let now = release_date(&data) + Duration::from_secs(3600);
        let t = std::time::Instant::now();
        let v = verify_cleartext(&data, &keyring, now)
            .unwrap_or_else(|e| panic!("{}: {e:?}", f.display()));
        eprintln!(
            "{}: {} good signature(s) in {:?}: {:?}",
            f.display(),
            v.signers.len(),
            t.elapsed(),
            v.signers
        );
        assert!(!v.signers.is_empty());
        // Debian's archive keys expire: the verification holds until the latest of the
        // good signatures' keys expires (so a cached verification is redone then).
        assert!(v.expires.is_some_and(|e| e > now), "{:?}", v.expires);
        // The payload is the Release text: it parses and has the SHA256 list.
        let info = ReleaseInfo::parse(&v.payload, String::new(), v.signers.clone()).unwrap();
        assert_eq!(info.origin.as_deref(), Some("Debian"));
        assert!(!info.files.is_empty());
        assert!(v.payload.starts_with(b"Origin: Debian\n"));
        assert!(!String::from_utf8_lossy(&v.payload).contains("PGP"));
    }
}

#[test]
fn tampered_real_inrelease_is_rejected() {
    let Some((keyring, files)) = inputs() else {
        return;
    };
    let data = std::fs::read(&files[0]).unwrap();
    let now = release_date(&data) + Duration::from_secs(3600);
    // Change one hash digit in the signed text.
    let text = String::from_utf8(data.clone()).unwrap();
    let pos = text.find("SHA256:\n ").expect("SHA256 list") + "SHA256:\n ".len();
    let mut bytes = data.clone();
    bytes[pos] = if bytes[pos] == b'0' { b'1' } else { b'0' };
    match verify_cleartext(&bytes, &keyring, now) {
        Err(VerifyError::Rejected { reasons }) => {
            assert!(
                reasons.iter().any(|r| r.contains("BAD signature")),
                "{reasons:?}"
            )
        }
        other => panic!("expected a bad signature, got {other:?}"),
    }
    // Text after the signature block is refused.
    let mut trailing = data.clone();
    trailing.extend_from_slice(b"Origin: Evil\n");
    assert!(verify_cleartext(&trailing, &keyring, now).is_err());
    // Text before the signed block too.
    let mut leading = b"Origin: Evil\n".to_vec();
    leading.extend_from_slice(&data);
    assert!(verify_cleartext(&leading, &keyring, now).is_err());
}

#[test]
fn real_inrelease_with_expired_keys_or_wrong_keyring() {
    let Some((keyring, files)) = inputs() else {
        return;
    };
    let data = std::fs::read(&files[0]).unwrap();
    // In 2100 every Debian archive key has expired.
    let far = UNIX_EPOCH + Duration::from_secs(4_102_444_800);
    match verify_cleartext(&data, &keyring, far) {
        Err(VerifyError::Rejected { reasons }) => {
            assert!(reasons.iter().all(|r| r.contains("expired")), "{reasons:?}")
        }
        other => panic!("expected expired keys, got {other:?}"),
    }
    // A keyring without the signing keys: every signature is by an unknown key, and the
    // error names them.
    let mut other = Keyring::new();
    let other_key = Path::new("/usr/share/keyrings/debian-archive-removed-keys.gpg");
    if other_key.exists() {
        other
            .add_bytes(&std::fs::read(other_key).unwrap(), "removed")
            .unwrap();
        match verify_cleartext(&data, &other, release_date(&data)) {
            Err(VerifyError::UnknownKey { key_ids }) => {
                assert!(!key_ids.is_empty());
                assert!(
                    key_ids.iter().all(|k| k.len() == 40 || k.len() == 16),
                    "{key_ids:?}"
                );
            }
            other => panic!("expected unknown keys, got {other:?}"),
        }
    }
}

#[test]
fn gpgv_agrees() {
    let Some((_, files)) = inputs() else {
        return;
    };
    let Ok(status) = std::process::Command::new("gpgv")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()
    else {
        eprintln!("SKIPPED: gpgv not installed");
        return;
    };
    assert!(status.success());
    let mut compared = 0;
    for f in &files {
        let out = std::process::Command::new("gpgv")
            .args(["--keyring", KEYRING, "--output", "-"])
            .arg(f)
            .output()
            .unwrap();
        let keyring = debian_keyring().unwrap();
        let data = std::fs::read(f).unwrap();
        let ours = verify_cleartext(&data, &keyring, release_date(&data)).unwrap();
        if out.status.success() {
            assert_eq!(
                ours.payload,
                out.stdout,
                "{}: same payload as gpgv",
                f.display()
            );
            compared += 1;
        }
    }
    assert!(compared > 0, "gpgv verified none of the files");
}
