//! `oci.archive`: writes the tree of input `tree` as an OCI image archive (the layout of
//! the OCI image specification in a tar, what `skopeo`/`podman` call `oci-archive`) named
//! by option `filename` into the stage's tree.
//!
//! Options: `{"filename": "container.tar", "architecture": "amd64", "os": "linux",
//! "cmd": ["/bin/bash"], "ref_name": "latest", "labels": {...}}`.
//!
//! The archive holds `oci-layout`, `index.json` and `blobs/sha256/`: the image config,
//! the manifest and one uncompressed layer, the tree as `archive.tar` writes it (sorted,
//! mtimes clamped, numeric owners). Reproducible: `created` is the pipeline's
//! `SOURCE_DATE_EPOCH`, the JSON documents have a fixed key order, and the outer tar's
//! entries have fixed order, owner, mode and mtime.

use super::StageContext;
use super::archive_tar::write_tar;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Scratch directory inside the stage's tree (removed before the tree is committed).
const WORK: &str = ".kiln-oci-work";

const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MT_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let src = ctx.input_tree("tree")?.to_path_buf();
    let filename = plain_name(ctx.option_str("filename")?)?.to_owned();
    let arch = ctx.option_str("architecture")?.to_owned();
    let os = ctx.option_str("os")?.to_owned();
    let cmd = ctx.options.get("cmd").cloned().unwrap_or(json!([]));
    let ref_name = ctx
        .options
        .get("ref_name")
        .and_then(Value::as_str)
        .unwrap_or("latest")
        .to_owned();
    let labels = ctx.options.get("labels").cloned().unwrap_or(json!({}));
    if !cmd.is_array() || !labels.is_object() {
        return Err("option \"cmd\" must be an array and \"labels\" an object".into());
    }
    let epoch = ctx.source_epoch.unwrap_or(0);
    let work = ctx.tree.join(WORK);
    fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;

    // The layer: written once to a scratch file while hashing, then copied into the
    // archive (its digest goes into the config and its name before its bytes).
    let layer_path = work.join("layer.tar");
    let f = File::create(&layer_path).map_err(|e| format!("cannot create the layer: {e}"))?;
    let w = write_tar(
        &src,
        HashWriter::new(BufWriter::with_capacity(1 << 20, f)),
        epoch,
    )
    .map_err(|e| format!("cannot archive {}: {e}", src.display()))?;
    let (layer_digest, layer_size, inner) = w.finish();
    inner
        .into_inner()
        .map_err(|e| format!("cannot write the layer: {e}"))?;
    (ctx.log)(&format!("layer: {layer_size} bytes, sha256:{layer_digest}"));

    let created = rfc3339(epoch);
    let config = json!({
        "created": created,
        "architecture": arch,
        "os": os,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": cmd,
            "Labels": labels,
        },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{layer_digest}")] },
        "history": [{ "created": created, "created_by": "kiln oci.archive" }],
    });
    let config = serde_json::to_vec(&config).map_err(|e| e.to_string())?;
    let config_digest = hex_sha256(&config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": { "mediaType": MT_CONFIG, "digest": format!("sha256:{config_digest}"), "size": config.len() },
        "layers": [{ "mediaType": MT_LAYER, "digest": format!("sha256:{layer_digest}"), "size": layer_size }],
    });
    let manifest = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
    let manifest_digest = hex_sha256(&manifest);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [{
            "mediaType": MT_MANIFEST,
            "digest": format!("sha256:{manifest_digest}"),
            "size": manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": ref_name },
        }],
    });
    let index = serde_json::to_vec(&index).map_err(|e| e.to_string())?;

    let out = ctx.tree.join(&filename);
    let file = File::create(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut b = tar::Builder::new(BufWriter::with_capacity(1 << 20, file));
    let res: io::Result<()> = (|| {
        append_bytes(
            &mut b,
            "oci-layout",
            br#"{"imageLayoutVersion":"1.0.0"}"#,
            epoch,
        )?;
        append_bytes(&mut b, "index.json", &index, epoch)?;
        append_dir(&mut b, "blobs/", epoch)?;
        append_dir(&mut b, "blobs/sha256/", epoch)?;
        append_bytes(
            &mut b,
            &format!("blobs/sha256/{config_digest}"),
            &config,
            epoch,
        )?;
        append_bytes(
            &mut b,
            &format!("blobs/sha256/{manifest_digest}"),
            &manifest,
            epoch,
        )?;
        let layer = File::open(&layer_path)?;
        let mut h = header(tar::EntryType::Regular, 0o644, epoch);
        h.set_size(layer_size);
        b.append_data(&mut h, format!("blobs/sha256/{layer_digest}"), layer)?;
        b.finish()
    })();
    res.map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    let w = b
        .into_inner()
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    let file = w
        .into_inner()
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    file.sync_all()
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    fs::remove_dir_all(&work).map_err(|e| format!("cannot remove {}: {e}", work.display()))?;
    (ctx.log)(&format!(
        "wrote {filename}: manifest sha256:{manifest_digest}, {} bytes",
        file.metadata().map(|m| m.len()).unwrap_or(0)
    ));
    Ok(())
}

pub(crate) fn plain_name(n: &str) -> Result<&str, String> {
    if n.is_empty() || n.contains('/') || n.starts_with('.') {
        return Err(format!(
            "invalid file name {n:?}: a plain file name is expected"
        ));
    }
    Ok(n)
}

/// A ustar header with the archive's fixed owner and time.
pub(crate) fn header(kind: tar::EntryType, mode: u32, epoch: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(epoch);
    h.set_size(0);
    h
}

pub(crate) fn append_bytes<W: Write>(
    b: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
    epoch: u64,
) -> io::Result<()> {
    let mut h = header(tar::EntryType::Regular, 0o644, epoch);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, name, data)
}

fn append_dir<W: Write>(b: &mut tar::Builder<W>, name: &str, epoch: u64) -> io::Result<()> {
    let mut h = header(tar::EntryType::Directory, 0o755, epoch);
    b.append_data(&mut h, name, io::empty())
}

pub(crate) fn hex_sha256(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The sha256 of a file, streamed.
pub(crate) fn file_sha256(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    io::copy(&mut f, &mut h)?;
    Ok(hex(&h.finalize()))
}

/// A writer that hashes and counts what passes through it.
pub(crate) struct HashWriter<W> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> HashWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hash: Sha256::new(),
            len: 0,
        }
    }

    /// The hex digest, the byte count and the inner writer.
    pub(crate) fn finish(self) -> (String, u64, W) {
        (hex(&self.hash.finalize()), self.len, self.inner)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `SOURCE_DATE_EPOCH` as RFC 3339 in UTC (`2023-11-14T22:13:20Z`).
pub fn rfc3339(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
