//! `tree.normalize`: removes non-reproducible noise and clamps mtimes to the pipeline's
//! `SOURCE_DATE_EPOCH` (see [`crate::normalize`]).

use super::StageContext;

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let epoch = ctx
        .source_epoch
        .ok_or("the pipeline has no source_epoch; tree.normalize needs one")?;
    (ctx.log)(&format!(
        "removing non-reproducible files, clamping mtimes to SOURCE_DATE_EPOCH={epoch}"
    ));
    crate::normalize::normalize(ctx.tree, epoch).map_err(|e| e.to_string())?;
    (ctx.log)("tree normalized");
    Ok(())
}
