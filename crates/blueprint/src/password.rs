//! Password hashing: plain-text user passwords must never reach an image or the blueprint
//! store, so they are turned into SHA-512 crypt hashes on push (as osbuild does).

use sha_crypt::{Algorithm, CustomizedPasswordHasher, Params, ShaCrypt};

/// Prefixes of crypt(3) hashes kept as they are: SHA-512, SHA-256, bcrypt, yescrypt (Debian's
/// default since bullseye).
const CRYPT_PREFIXES: &[&str] = &["$6$", "$5$", "$2b$", "$y$"];

/// True when `password` already is a supported crypt hash.
pub fn is_crypted(password: &str) -> bool {
    CRYPT_PREFIXES.iter().any(|p| password.starts_with(p))
}

/// Hashes `password` with SHA-512 crypt, 5000 rounds and a random 16-character salt.
///
/// The result is in glibc's form `$6$<salt>$<hash>` (the default round count is not spelled
/// out), so it is byte-identical to `openssl passwd -6 -salt <salt>`.
///
/// # Errors
/// Fails only when the operating system's random number generator is unavailable.
pub fn sha512_crypt(password: &str) -> Result<String, String> {
    // 12 random bytes encode to exactly 16 salt characters, the SHA-crypt maximum.
    let mut salt = [0u8; 12];
    getrandom::fill(&mut salt).map_err(|e| format!("no random data for the salt: {e}"))?;
    sha512_crypt_with_salt(password, &salt)
}

/// Deterministic variant of [`sha512_crypt`] for tests: `salt` is raw bytes, encoded with the
/// crypt base64 alphabet before use.
///
/// # Errors
/// Fails if the hasher rejects its input (should not happen).
pub fn sha512_crypt_with_salt(password: &str, salt: &[u8]) -> Result<String, String> {
    let hasher = ShaCrypt::new(Algorithm::Sha512Crypt, Params::RECOMMENDED);
    let hash = hasher
        .hash_password_customized(password.as_bytes(), salt, None, None, Params::RECOMMENDED)
        .map_err(|e| e.to_string())?;
    let text = hash.as_str();
    // sha-crypt spells out `rounds=5000`; glibc omits the default, which is equivalent.
    Ok(match text.strip_prefix("$6$rounds=5000$") {
        Some(rest) => format!("$6${rest}"),
        None => text.to_owned(),
    })
}

/// Checks `password` against a `$6$` or `$5$` hash (used by tests and by callers that want
/// to confirm a stored hash).
pub fn verify(password: &str, hash: &str) -> bool {
    use sha_crypt::PasswordVerifier;
    ShaCrypt::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_hashes() {
        assert!(is_crypted("$6$abc$def"));
        assert!(is_crypted("$5$abc$def"));
        assert!(is_crypted("$2b$10$abc"));
        assert!(is_crypted("$y$j9T$abc$def"));
        assert!(!is_crypted("$1$abc$def"));
        assert!(!is_crypted("hunter2"));
    }

    #[test]
    fn produces_verifiable_glibc_hash() {
        let h = sha512_crypt("secret").unwrap();
        assert!(h.starts_with("$6$"), "{h}");
        assert!(!h.contains("rounds="), "{h}");
        let parts: Vec<&str> = h.split('$').collect();
        assert_eq!(parts.len(), 4, "{h}");
        assert_eq!(parts[2].len(), 16, "salt length in {h}");
        assert_eq!(parts[3].len(), 86, "hash length in {h}");
        assert!(verify("secret", &h));
        assert!(!verify("Secret", &h));
        // Two hashes of the same password differ (random salt).
        assert_ne!(h, sha512_crypt("secret").unwrap());
    }

    #[test]
    fn known_vector() {
        // Vector from the SHA-crypt specification: "Hello world!" with salt "saltstring".
        let expected = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
        assert!(verify("Hello world!", expected));
    }
}
