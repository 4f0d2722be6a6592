//! `ca.certificates`: adds CA certificates to the image's trust store. Options:
//! `{"certs": ["-----BEGIN CERTIFICATE-----\n...", ...]}` (each entry may hold several
//! certificates).
//!
//! Every certificate becomes `/usr/local/share/ca-certificates/kiln-N.crt` (N from 1, in
//! order; one certificate per file, as `update-ca-certificates` and `openssl rehash` want
//! it), is checked with the tree's `openssl x509`, and then the tree's
//! `update-ca-certificates` (package ca-certificates) rebuilds `/etc/ssl/certs` in the
//! sandbox. Blocks other than certificates (a private key pasted by mistake) are errors.

use serde::Deserialize;

use super::StageContext;
use super::treefs::{self, Meta, Tree};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    certs: Vec<String>,
}

/// The directory the certificates go to.
pub const DIR: &str = "/usr/local/share/ca-certificates";

fn b64_value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

/// Decodes standard base64 (padding required to complete the last group).
fn base64(text: &str) -> Option<Vec<u8>> {
    let bytes: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (i, chunk) in bytes.chunks(4).enumerate() {
        let last = i == bytes.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|&&b| b == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | b64_value(c)?;
        }
        n <<= 6 * pad as u32;
        let b = n.to_be_bytes();
        out.extend_from_slice(&b[1..4 - pad]);
    }
    Some(out)
}

/// The certificates of a PEM text, each re-encoded as a canonical PEM block.
pub fn split_pem(text: &str) -> Result<Vec<String>, String> {
    let mut certs = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            // Text between blocks (openssl's "subject=" lines) is allowed.
            continue;
        };
        if label != "CERTIFICATE" {
            return Err(format!(
                "found a \"{label}\" block: only certificates (-----BEGIN CERTIFICATE-----) can be added to the trust store"
            ));
        }
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        let mut closed = false;
        for l in lines.by_ref() {
            if l == end {
                closed = true;
                break;
            }
            body.push_str(l);
        }
        if !closed {
            return Err(format!("a {label} block has no {end} line"));
        }
        let der = base64(&body).ok_or("a certificate block is not valid base64")?;
        if der.first() != Some(&0x30) || der.len() < 64 {
            return Err("a certificate block does not hold a DER certificate".into());
        }
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for chunk in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        certs.push(pem);
    }
    if certs.is_empty() {
        return Err("no -----BEGIN CERTIFICATE----- block found".into());
    }
    Ok(certs)
}

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let opts: Options = treefs::options("ca.certificates", ctx)?;
    let mut certs = Vec::new();
    for (i, text) in opts.certs.iter().enumerate() {
        certs.extend(split_pem(text).map_err(|e| format!("CA certificate bundle {}: {e}", i + 1))?);
    }
    let tree = Tree::open(ctx.tree)?;
    if !tree.is_executable("/usr/sbin/update-ca-certificates") {
        return Err("CA certificates need the ca-certificates package in the image (update-ca-certificates is missing)".into());
    }
    let sb = ctx.chroot_sandbox();
    for (i, pem) in certs.iter().enumerate() {
        let path = format!("{DIR}/kiln-{}.crt", i + 1);
        tree.write(&path, pem.as_bytes(), Meta::root(0o644))?;
        if tree.is_executable("/usr/bin/openssl") {
            treefs::run(
                ctx,
                &sb,
                &format!("checking {path}"),
                "openssl",
                &["x509", "-noout", "-subject", "-in", &path],
            )?;
        }
    }
    treefs::run(
        ctx,
        &sb,
        "updating the CA trust store",
        "update-ca-certificates",
        &[],
    )?;
    (ctx.log)(&format!("added {} CA certificate(s)", certs.len()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes() {
        assert_eq!(base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64("aGVsbG8h").unwrap(), b"hello!");
        assert_eq!(base64("aGk=").unwrap(), b"hi");
        assert!(base64("aGk").is_none());
        assert!(base64("a=Gk").is_none());
    }

    #[test]
    fn pem_blocks_are_checked() {
        assert!(
            split_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .unwrap_err()
                .contains("PRIVATE KEY")
        );
        assert!(split_pem("nothing").is_err());
        assert!(split_pem("-----BEGIN CERTIFICATE-----\nAAAA\n").is_err());
    }
}
