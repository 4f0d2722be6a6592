//! OpenPGP verification of `InRelease` and `Release` + `Release.gpg` with rpgp, plus the
//! policy rpgp leaves to its users:
//!
//! - at least one good signature by a trusted key is required; signatures by unknown keys
//!   are ignored (Debian signs with 2–3 keys);
//! - the signing key (primary or signing subkey with a valid binding and back-signature)
//!   must not be revoked or expired at `now`, and must have a valid self-signature;
//! - signatures using MD5, SHA-1 or RIPEMD-160 are refused, as are expired signatures and
//!   signatures older than their key;
//! - the cleartext payload returned is exactly the signed text (dash-unescaped, line ends
//!   normalised to `\n`); nothing outside the signed block is accepted.

use std::time::{SystemTime, UNIX_EPOCH};

use pgp::composed::{CleartextSignedMessage, Deserializable, DetachedSignature, SignedPublicKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{Signature, SignatureType};
use pgp::types::{KeyDetails, Tag};

use crate::util::format_time;

/// A set of trusted public keys.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
    /// Where the keys came from, for messages.
    pub origins: Vec<String>,
}

/// Why verification failed; turned into a [`crate::RepoError`] with the source's context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// No OpenPGP signature at all.
    NotSigned(String),
    /// The signed file or signature cannot be parsed.
    Malformed(String),
    /// Signatures exist but none is by a key of the keyring.
    UnknownKey { key_ids: Vec<String> },
    /// Signatures by trusted keys exist, but none is acceptable.
    Rejected { reasons: Vec<String> },
}

/// The outcome of a successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signed content (for a cleartext message: dash-unescaped, `\n` line ends, ending
    /// with a newline).
    pub payload: Vec<u8>,
    /// The fingerprints (and first user id) of the keys that made good signatures.
    pub signers: Vec<String>,
    /// When this verification stops holding because a key, subkey or signature expires
    /// (the latest such time over the good signatures); `None`: never.
    pub expires: Option<SystemTime>,
}

impl Keyring {
    pub fn new() -> Keyring {
        Keyring::default()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Adds the keys of a keyring file's bytes: binary (one or more concatenated
    /// transferable public keys, like apt's `.gpg` keyrings) or armored (one or more
    /// `PUBLIC KEY BLOCK`s). Returns how many keys were added.
    pub fn add_bytes(&mut self, bytes: &[u8], origin: &str) -> Result<usize, String> {
        let before = self.keys.len();
        let mut errors = Vec::new();
        if !is_binary_openpgp(bytes) {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| "the armored keyring is not valid UTF-8".to_string())?;
            const END: &str = "-----END PGP PUBLIC KEY BLOCK-----";
            let mut rest = text;
            while let Some(start) = rest.find("-----BEGIN PGP PUBLIC KEY BLOCK-----") {
                let block_and_more = &rest[start..];
                let Some(end) = block_and_more.find(END) else {
                    errors.push("unterminated armored key block".to_string());
                    break;
                };
                let block = &block_and_more[..end + END.len()];
                rest = &block_and_more[end + END.len()..];
                match SignedPublicKey::from_armor_many(block.as_bytes()) {
                    Ok((iter, _)) => {
                        for k in iter {
                            match k {
                                Ok(k) => self.keys.push(k),
                                Err(e) => errors.push(e.to_string()),
                            }
                        }
                    }
                    Err(e) => errors.push(e.to_string()),
                }
            }
        } else {
            match SignedPublicKey::from_bytes_many(bytes) {
                Ok(iter) => {
                    for k in iter {
                        match k {
                            Ok(k) => self.keys.push(k),
                            // A key with an unsupported algorithm is skipped, as gpgv does.
                            Err(e) => errors.push(e.to_string()),
                        }
                    }
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        let added = self.keys.len() - before;
        if added == 0 {
            let detail = if errors.is_empty() {
                "no public key found".to_string()
            } else {
                errors.join("; ")
            };
            return Err(format!("no usable OpenPGP public key in it ({detail})"));
        }
        for e in errors {
            tracing::debug!(origin, "skipped a key: {e}");
        }
        self.origins.push(origin.to_string());
        Ok(added)
    }

    /// Keeps only keys whose primary key or one of whose subkeys has one of these
    /// fingerprints (upper-case hex; apt's `Signed-By: <fingerprint>`).
    pub fn retain_fingerprints(&mut self, fingerprints: &[String]) {
        if fingerprints.is_empty() {
            return;
        }
        let wanted = |fp: String| fingerprints.iter().any(|f| f.eq_ignore_ascii_case(&fp));
        self.keys.retain(|k| {
            wanted(fpr_hex(&k.primary_key))
                || k.public_subkeys.iter().any(|s| wanted(fpr_hex(&s.key)))
        });
    }

    /// The primary key fingerprints, upper-case hex.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys.iter().map(|k| fpr_hex(&k.primary_key)).collect()
    }
}

/// Binary OpenPGP data starts with a packet tag byte, whose high bit is always set;
/// anything else is treated as (possibly commented) ASCII armor.
fn is_binary_openpgp(bytes: &[u8]) -> bool {
    bytes.first().is_some_and(|b| b & 0x80 != 0)
}

fn fpr_hex(k: &impl KeyDetails) -> String {
    format!("{:X}", k.fingerprint())
}

fn keyid_hex(id: &pgp::types::KeyId) -> String {
    crate::util::hex(id.as_ref()).to_ascii_uppercase()
}

fn secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

fn fmt_secs(s: i64) -> String {
    format_time(UNIX_EPOCH + std::time::Duration::from_secs(s.max(0) as u64))
}

fn weak_hash(h: HashAlgorithm) -> bool {
    !matches!(
        h,
        HashAlgorithm::Sha256
            | HashAlgorithm::Sha384
            | HashAlgorithm::Sha512
            | HashAlgorithm::Sha224
            | HashAlgorithm::Sha3_256
            | HashAlgorithm::Sha3_512
    )
}

fn user_label(key: &SignedPublicKey) -> String {
    let fpr = fpr_hex(&key.primary_key);
    match key.details.users.first() {
        Some(u) => format!("{fpr} ({})", String::from_utf8_lossy(u.id.id())),
        None => fpr,
    }
}

/// Which component of a key made a signature.
#[derive(Clone, Copy)]
enum Component<'a> {
    Primary,
    Sub(&'a pgp::composed::SignedPublicSubKey),
}

impl Component<'_> {
    fn fingerprint(&self, key: &SignedPublicKey) -> String {
        match self {
            Component::Primary => fpr_hex(&key.primary_key),
            Component::Sub(s) => fpr_hex(&s.key),
        }
    }
    fn key_id(&self, key: &SignedPublicKey) -> String {
        match self {
            Component::Primary => keyid_hex(&key.primary_key.legacy_key_id()),
            Component::Sub(s) => keyid_hex(&s.key.legacy_key_id()),
        }
    }
}

fn created_secs(s: &Signature) -> u32 {
    s.created().map(|t| t.as_secs()).unwrap_or(0)
}

/// The newer of two signatures (by creation time).
fn newer<'a>(cur: Option<&'a Signature>, s: &'a Signature) -> Option<&'a Signature> {
    match cur {
        Some(c) if created_secs(c) >= created_secs(s) => Some(c),
        _ => Some(s),
    }
}

/// The earlier of two optional expiry times (`None`: never).
fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Checks that the primary key is usable at `now`: a valid self-signature, not revoked,
/// not expired. Returns when it expires.
fn primary_status(key: &SignedPublicKey, now: i64) -> Result<Option<i64>, String> {
    let label = user_label(key);
    let pk = &key.primary_key;
    for rev in &key.details.revocation_signatures {
        if rev.verify_key(pk).is_ok() {
            let why = rev
                .revocation_reason_string()
                .map(|b| format!(": {}", String::from_utf8_lossy(b)))
                .unwrap_or_default();
            return Err(format!("key {label} is revoked{why}"));
        }
    }
    // The newest valid self-signature carries the key's current expiration time.
    let mut newest: Option<&Signature> = None;
    for user in &key.details.users {
        for s in &user.signatures {
            let is_self_cert = matches!(
                s.typ(),
                Some(
                    SignatureType::CertGeneric
                        | SignatureType::CertPersona
                        | SignatureType::CertCasual
                        | SignatureType::CertPositive
                )
            );
            if is_self_cert && s.verify_certification(pk, Tag::UserId, &user.id).is_ok() {
                newest = newer(newest, s);
            }
        }
    }
    for s in &key.details.direct_signatures {
        if s.verify_key(pk).is_ok() {
            newest = newer(newest, s);
        }
    }
    let Some(selfsig) = newest else {
        return Err(format!("key {label} has no valid self-signature"));
    };
    if let Some(d) = selfsig.key_expiration_time().filter(|d| d.as_secs() != 0) {
        let expires = i64::from(pk.created_at().as_secs()) + d.as_secs() as i64;
        if expires <= now {
            return Err(format!("key {label} expired on {}", fmt_secs(expires)));
        }
        return Ok(Some(expires));
    }
    Ok(None)
}

/// Checks that a subkey is usable for signing at `now`. Returns when it expires.
fn subkey_status(
    key: &SignedPublicKey,
    sub: &pgp::composed::SignedPublicSubKey,
    now: i64,
) -> Result<Option<i64>, String> {
    let label = format!("{} (subkey of {})", fpr_hex(&sub.key), user_label(key));
    let pk = &key.primary_key;
    let mut newest: Option<&Signature> = None;
    for s in &sub.signatures {
        if s.verify_subkey_binding(pk, &sub.key).is_err() {
            continue;
        }
        if s.typ() == Some(SignatureType::SubkeyRevocation) {
            return Err(format!("subkey {label} is revoked"));
        }
        newest = newer(newest, s);
    }
    let Some(binding) = newest else {
        return Err(format!("subkey {label} has no valid binding signature"));
    };
    if !binding.key_flags().sign() {
        return Err(format!("subkey {label} is not a signing key"));
    }
    let backsig_ok = binding
        .embedded_signature()
        .is_some_and(|b| b.verify_primary_key_binding(&sub.key, pk).is_ok());
    if !backsig_ok {
        return Err(format!(
            "signing subkey {label} has no valid primary key binding (back-signature)"
        ));
    }
    if let Some(d) = binding.key_expiration_time().filter(|d| d.as_secs() != 0) {
        let expires = i64::from(sub.key.created_at().as_secs()) + d.as_secs() as i64;
        if expires <= now {
            return Err(format!("subkey {label} expired on {}", fmt_secs(expires)));
        }
        return Ok(Some(expires));
    }
    Ok(None)
}

/// Checks each signature against the keyring; `data` is what the signatures cover.
/// Returns the signers and when the verification stops holding (see
/// [`Verified::expires`]).
fn check_signatures(
    signatures: &[Signature],
    data: &[u8],
    keyring: &Keyring,
    now: SystemTime,
) -> Result<(Vec<String>, Option<SystemTime>), VerifyError> {
    if signatures.is_empty() {
        return Err(VerifyError::NotSigned("no signature packets".into()));
    }
    let now = secs(now);
    let mut good = Vec::new();
    // The latest expiry over the good signatures; `None` once one never expires.
    let mut expires: Option<Option<i64>> = None;
    let mut reasons = Vec::new();
    let mut unknown = Vec::new();
    for sig in signatures {
        let issuer_fps: Vec<String> = sig
            .issuer_fingerprint()
            .iter()
            .map(|f| format!("{f:X}"))
            .collect();
        let issuer_ids: Vec<String> = sig.issuer_key_id().iter().map(|k| keyid_hex(k)).collect();
        let anonymous = issuer_fps.is_empty() && issuer_ids.is_empty();
        let mut candidates = Vec::new();
        for key in &keyring.keys {
            let comps = std::iter::once(Component::Primary)
                .chain(key.public_subkeys.iter().map(Component::Sub));
            for c in comps {
                let fp = c.fingerprint(key);
                let id = c.key_id(key);
                if anonymous || issuer_fps.contains(&fp) || issuer_ids.contains(&id) {
                    candidates.push((key, c));
                }
            }
        }
        if candidates.is_empty() {
            let id = issuer_fps
                .first()
                .or(issuer_ids.first())
                .cloned()
                .unwrap_or_else(|| "(no issuer)".into());
            if !unknown.contains(&id) {
                unknown.push(id);
            }
            continue;
        }
        for (key, comp) in candidates {
            let fp = comp.fingerprint(key);
            match check_one(sig, data, key, comp, now) {
                Ok(until) => {
                    good.push(user_label(key));
                    expires = Some(match (expires, until) {
                        (None, u) => u,
                        (Some(Some(a)), Some(b)) => Some(a.max(b)),
                        (Some(_), _) => None,
                    });
                    break;
                }
                Err(r) => {
                    if !anonymous {
                        reasons.push(format!("signature by {fp}: {r}"));
                    }
                }
            }
        }
    }
    if !good.is_empty() {
        let expires = expires
            .flatten()
            .map(|s| UNIX_EPOCH + std::time::Duration::from_secs(s.max(0) as u64));
        return Ok((good, expires));
    }
    if reasons.is_empty() {
        return Err(VerifyError::UnknownKey { key_ids: unknown });
    }
    if !unknown.is_empty() {
        reasons.push(format!(
            "other signatures are by unknown keys {}",
            unknown.join(", ")
        ));
    }
    Err(VerifyError::Rejected { reasons })
}

fn check_one(
    sig: &Signature,
    data: &[u8],
    key: &SignedPublicKey,
    comp: Component<'_>,
    now: i64,
) -> Result<Option<i64>, String> {
    let hash = sig
        .hash_alg()
        .ok_or_else(|| "unsupported signature version".to_string())?;
    if weak_hash(hash) {
        return Err(format!(
            "it uses the hash algorithm {hash}, which is insecure (kiln accepts SHA-2 and SHA-3 only)"
        ));
    }
    match sig.typ() {
        Some(SignatureType::Binary | SignatureType::Text) => {}
        other => return Err(format!("unexpected signature type {other:?}")),
    }
    let verified = match comp {
        Component::Primary => sig.verify(&key.primary_key, data),
        Component::Sub(s) => sig.verify(&s.key, data),
    };
    if let Err(e) = verified {
        return Err(format!("BAD signature ({e})"));
    }
    let mut expires = primary_status(key, now)?;
    let key_created = match comp {
        Component::Primary => key.primary_key.created_at(),
        Component::Sub(s) => {
            expires = earliest(expires, subkey_status(key, s, now)?);
            s.key.created_at()
        }
    };
    let created = sig
        .created()
        .map(|t| i64::from(t.as_secs()))
        .ok_or_else(|| "the signature has no creation time".to_string())?;
    if created < i64::from(key_created.as_secs()) {
        return Err("the signature is older than its key".into());
    }
    if let Some(d) = sig.signature_expiration_time().filter(|d| d.as_secs() != 0) {
        let sig_expires = created + d.as_secs() as i64;
        if sig_expires <= now {
            return Err(format!(
                "the signature expired on {}",
                fmt_secs(sig_expires)
            ));
        }
        expires = earliest(expires, Some(sig_expires));
    }
    Ok(expires)
}

fn normalize_payload(text: &str) -> Vec<u8> {
    let mut s = text.replace("\r\n", "\n");
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
    s.into_bytes()
}

fn parse_cleartext(data: &[u8]) -> Result<CleartextSignedMessage, VerifyError> {
    let text = std::str::from_utf8(data)
        .map_err(|_| VerifyError::Malformed("the file is not valid UTF-8".into()))?;
    if !text
        .trim_start()
        .starts_with("-----BEGIN PGP SIGNED MESSAGE-----")
    {
        return Err(VerifyError::NotSigned(
            "it is not an OpenPGP cleartext signed message".into(),
        ));
    }
    let (msg, _) = CleartextSignedMessage::from_string(text)
        .map_err(|e| VerifyError::Malformed(format!("cannot parse the signed message: {e}")))?;
    Ok(msg)
}

/// Verifies a cleartext-signed file (`InRelease`) and returns its payload.
pub fn verify_cleartext(
    data: &[u8],
    keyring: &Keyring,
    now: SystemTime,
) -> Result<Verified, VerifyError> {
    let msg = parse_cleartext(data)?;
    let signed = msg.signed_text();
    let (signers, expires) = check_signatures(msg.signatures(), signed.as_bytes(), keyring, now)?;
    Ok(Verified {
        payload: normalize_payload(&signed),
        signers,
        expires,
    })
}

/// The payload of a cleartext-signed file without verifying it (for `check_gpg = false`).
/// A file that is not signed at all is returned as it is.
pub fn cleartext_payload_unverified(data: &[u8]) -> Result<Vec<u8>, VerifyError> {
    match parse_cleartext(data) {
        Ok(msg) => Ok(normalize_payload(&msg.signed_text())),
        Err(VerifyError::NotSigned(_)) => Ok(data.to_vec()),
        Err(e) => Err(e),
    }
}

/// Verifies a detached signature (`Release.gpg`, armored or binary) over `content`.
pub fn verify_detached(
    content: &[u8],
    signature: &[u8],
    keyring: &Keyring,
    now: SystemTime,
) -> Result<Verified, VerifyError> {
    let sigs: Vec<Signature> = {
        let iter: Box<dyn Iterator<Item = pgp::errors::Result<DetachedSignature>>> =
            if !is_binary_openpgp(signature) {
                DetachedSignature::from_armor_many(signature)
                    .map_err(|e| {
                        VerifyError::Malformed(format!("cannot parse the signature: {e}"))
                    })?
                    .0
            } else {
                DetachedSignature::from_bytes_many(signature).map_err(|e| {
                    VerifyError::Malformed(format!("cannot parse the signature: {e}"))
                })?
            };
        iter.map(|r| r.map(|d| d.signature))
            .collect::<Result<_, _>>()
            .map_err(|e| VerifyError::Malformed(format!("cannot parse the signature: {e}")))?
    };
    let (signers, expires) = check_signatures(&sigs, content, keyring, now)?;
    Ok(Verified {
        payload: content.to_vec(),
        signers,
        expires,
    })
}
