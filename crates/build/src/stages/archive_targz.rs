//! `archive.targz`: packs one file of input `tree` (option `source`, e.g. a sparse
//! `disk.raw`) into a gzipped GNU tar named by option `filename`, as Google Compute
//! Engine imports disks: `tar --format=oldgnu -S` (holes kept as holes, so a 20 GiB
//! disk costs only its data), the member keeping its name.
//!
//! Options: `{"source": "disk.raw", "filename": "image.tar.gz"}`. GNU tar and gzip come
//! from the build root. Reproducible: the member's mtime is the pipeline's
//! `SOURCE_DATE_EPOCH`, its owner `0:0` without names, and gzip (`-n`) stores neither a
//! name nor a time.

use super::StageContext;
use super::oci_archive::plain_name;
use kiln_sandbox::TREE_PATH;

const INPUT: &str = "/run/kiln/input";

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let source = plain_name(ctx.option_str("source")?)?.to_owned();
    let filename = plain_name(ctx.option_str("filename")?)?.to_owned();
    let input = ctx.input_tree("tree")?.to_path_buf();
    if !input.join(&source).is_file() {
        return Err(format!("input has no file {source:?}"));
    }
    let epoch = ctx.source_epoch.unwrap_or(0);
    let sb = ctx.build_sandbox()?.bind_ro(&input, INPUT);
    let dst = format!("{TREE_PATH}/{filename}");
    let mtime = format!("--mtime=@{epoch}");
    (ctx.log)(&format!(
        "tar --format=oldgnu -S {source} | gzip -n → {filename}"
    ));
    ctx.run_logged(
        &sb,
        "tar",
        &[
            "--format=oldgnu",
            "--sparse",
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            "--mode=u=rw,go=r",
            &mtime,
            "--use-compress-program=gzip -n -6",
            "-C",
            INPUT,
            "-cf",
            &dst,
            &source,
        ],
    )?;
    let size = std::fs::metadata(ctx.tree.join(&filename))
        .map(|m| m.len())
        .unwrap_or(0);
    (ctx.log)(&format!("wrote {filename}: {size} bytes"));
    Ok(())
}
