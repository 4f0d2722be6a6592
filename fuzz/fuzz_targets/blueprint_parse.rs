//! Arbitrary bytes (as lossy UTF-8) into the TOML and JSON parsers; what parses must validate
//! and round-trip without a panic. The body lives in `kiln_blueprint::fuzzing` so that a unit
//! test runs it over the seed corpus in CI.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kiln_blueprint::fuzzing::fuzz_one(data);
});
