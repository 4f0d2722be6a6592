//! Identifiers written into manifests (filesystem UUIDs, partition GUIDs, volume ids).
//!
//! The builder never invents a value, so the manifest must hold them; and a rebuild of
//! the same blueprint must give the same manifest, or nothing could be cached. They are
//! therefore derived from a seed (the blueprint's name and the distro) and their purpose:
//! the same blueprint always gets the same identifiers, two blueprints different ones.

use sha2::{Digest, Sha256};

fn digest(seed: &str, purpose: &str) -> [u8; 32] {
    Sha256::digest(format!("kiln-id\0{seed}\0{purpose}").as_bytes()).into()
}

/// A version-4-shaped UUID (random-looking, RFC 9562 variant bits), lowercase.
pub fn uuid(seed: &str, purpose: &str) -> String {
    let mut b = digest(seed, purpose);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b[..16].iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A FAT volume id: eight uppercase hex digits in two groups, as `7B77-95E7`.
pub fn volume_id(seed: &str, purpose: &str) -> String {
    let b = digest(seed, purpose);
    format!("{:02X}{:02X}-{:02X}{:02X}", b[0], b[1], b[2], b[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_distinct_and_well_formed() {
        let a = uuid("bp:debian-12", "root");
        assert_eq!(a, uuid("bp:debian-12", "root"));
        assert_ne!(a, uuid("bp:debian-12", "esp"));
        assert_ne!(a, uuid("other:debian-12", "root"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        let v = volume_id("bp", "esp");
        assert_eq!(v.len(), 9);
        assert_eq!(&v[4..5], "-");
    }
}
