//! The body of the `blueprint_parse` fuzz target, shared with a unit test so CI exercises it
//! without a fuzzer. Not part of the stable API.

use crate::Blueprint;

/// Feeds `data` to both parsers; whatever parses must validate without panicking and survive a
/// TOML and a JSON round trip unchanged. Panics (the fuzzer's signal) when an invariant breaks.
pub fn fuzz_one(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for parsed in [Blueprint::from_toml(&text), Blueprint::from_json(&text)] {
        match parsed {
            Ok(bp) => check_parsed(&bp, &text),
            Err(e) => {
                // Rendering must not panic either.
                let _ = e.to_string();
            }
        }
    }
    // Validation with source locations walks the TOML document again.
    if let Err(errs) = Blueprint::from_toml_validated(&text) {
        let _ = errs.to_string();
    }
}

fn check_parsed(bp: &Blueprint, src: &str) {
    if let Err(errs) = bp.validate() {
        let _ = errs.to_string();
    }
    let toml = match bp.to_toml() {
        Ok(t) => t,
        Err(e) => panic!("to_toml failed: {e}\nsource: {src:?}\nmodel: {bp:?}"),
    };
    match Blueprint::from_toml(&toml) {
        Ok(again) => assert_eq!(&again, bp, "TOML round trip changed the model:\n{toml}"),
        Err(e) => panic!("re-parsing our own TOML failed: {e}\n{toml}"),
    }
    let json = match bp.to_json() {
        Ok(j) => j,
        Err(e) => panic!("to_json failed: {e}\nmodel: {bp:?}"),
    };
    match Blueprint::from_json(&json) {
        Ok(again) => assert_eq!(&again, bp, "JSON round trip changed the model:\n{json}"),
        Err(e) => panic!("re-parsing our own JSON failed: {e}\n{json}"),
    }
}
