//! Password hashing on push: plain text becomes SHA-512 crypt, existing hashes are kept, empty
//! passwords are dropped; the produced hash is what glibc/OpenSSL compute.

use std::process::Command;

use kiln_blueprint::{Blueprint, password};

const SRC: &str = r#"
name = "x"

[[customizations.user]]
name = "plain"
password = "correct horse"

[[customizations.user]]
name = "sha512"
password = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"

[[customizations.user]]
name = "sha256"
password = "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"

[[customizations.user]]
name = "bcrypt"
password = "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"

[[customizations.user]]
name = "yescrypt"
password = "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7"

[[customizations.user]]
name = "empty"
password = ""

[[customizations.user]]
name = "nopassword"
"#;

fn hashed() -> Blueprint {
    let mut bp = Blueprint::from_toml(SRC).unwrap();
    bp.hash_passwords().unwrap();
    bp
}

fn pw<'a>(bp: &'a Blueprint, user: &str) -> Option<&'a str> {
    bp.customizations
        .as_ref()
        .unwrap()
        .user
        .iter()
        .find(|u| u.name == user)
        .unwrap()
        .password
        .as_deref()
}

#[test]
fn plain_text_becomes_sha512_crypt() {
    let bp = hashed();
    let h = pw(&bp, "plain").unwrap();
    assert!(h.starts_with("$6$"), "{h}");
    let salt = h.split('$').nth(2).unwrap();
    assert_eq!(salt.len(), 16, "16-character salt in {h}");
    assert!(
        salt.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/'),
        "crypt alphabet: {salt}"
    );
    assert!(password::verify("correct horse", h));
    assert!(!password::verify("correct horse ", h));
    // The original text is gone from the serialized blueprint.
    assert!(!bp.to_toml().unwrap().contains("correct horse"));
}

#[test]
fn existing_hashes_are_kept_and_empty_dropped() {
    let before = Blueprint::from_toml(SRC).unwrap();
    let bp = hashed();
    for user in ["sha512", "sha256", "bcrypt", "yescrypt"] {
        assert_eq!(pw(&bp, user), pw(&before, user), "{user}");
    }
    assert_eq!(pw(&bp, "empty"), None);
    assert_eq!(pw(&bp, "nopassword"), None);
    assert!(password::verify("Hello world!", pw(&bp, "sha512").unwrap()));
}

#[test]
fn hashing_is_idempotent_and_salted() {
    let mut bp = hashed();
    let first = pw(&bp, "plain").unwrap().to_owned();
    bp.hash_passwords().unwrap();
    assert_eq!(
        pw(&bp, "plain").unwrap(),
        first,
        "already hashed: unchanged"
    );
    let other = hashed();
    assert_ne!(pw(&other, "plain").unwrap(), first, "fresh random salt");
}

#[test]
fn no_customizations_is_fine() {
    let mut bp = Blueprint::from_toml("name = \"x\"\n").unwrap();
    bp.hash_passwords().unwrap();
    assert!(bp.customizations.is_none());
}

/// Cross-checks with OpenSSL's implementation when the `openssl` tool is installed.
#[test]
fn matches_openssl_passwd() {
    let Ok(probe) = Command::new("openssl").arg("version").output() else {
        eprintln!("openssl not installed; skipping the cross-check");
        return;
    };
    if !probe.status.success() {
        eprintln!("openssl not usable; skipping the cross-check");
        return;
    }
    for plain in ["correct horse", "p@ss w0rd $6$ ünïcödé", "x"] {
        let ours = password::sha512_crypt(plain).unwrap();
        let salt = ours.split('$').nth(2).unwrap();
        let out = Command::new("openssl")
            .args(["passwd", "-6", "-salt", salt, plain])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs = String::from_utf8(out.stdout).unwrap();
        assert_eq!(ours, theirs.trim_end(), "password {plain:?}");
    }
}
