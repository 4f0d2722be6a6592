//! Runs the `blueprint_parse` fuzz target's body over a seed corpus so that CI exercises it
//! without a fuzzer: every seed and every regression input must go through without a panic.

mod common;

use kiln_blueprint::fuzzing::fuzz_one;

/// Inputs that once broke something, or that poke at edges of the formats.
const REGRESSIONS: &[&str] = &[
    "",
    "\u{0}",
    "{}",
    "[]",
    "null",
    "name = \"\"",
    "{\"name\": \"\"}",
    "{\"name\": \"x\", \"packages\": null, \"customizations\": null}",
    "name = \"x\"\n[customizations]\n",
    "name = \"x\"\n[[customizations.firewall.zones]]\n",
    "name = \"x\"\n[[customizations.filesystem]]\nmountpoint = \"\"\nminsize = 9223372036854775807\n",
    "{\"name\":\"x\",\"customizations\":{\"filesystem\":[{\"mountpoint\":\"/\",\"minsize\":18446744073709551615}]}}",
    "{\"name\":\"x\",\"customizations\":{\"filesystem\":[{\"mountpoint\":\"/\",\"minsize\":1e300}]}}",
    "{\"name\":\"x\",\"customizations\":{\"directories\":[{\"path\":\"/a\",\"user\":-1e18}]}}",
    "name = \"x\"\n[[customizations.filesystem]]\nmountpoint = \"/\"\nminsize = \"99999999999999999999.99999999999999999999 TiB\"\n",
    "name = \"x\"\n[[customizations.filesystem]]\nmountpoint = \"/\"\nminsize = \"0.00000000000000000000000000001 TiB\"\n",
    "name = \"x\"\n[[customizations.files]]\npath = \"/\u{e9}/\u{e9}\"\n[[customizations.files]]\npath = \"/\u{e9}\"\n",
    "name = \"x\"\n[[customizations.directories]]\npath = \"relative/x\"\n[[customizations.files]]\npath = \"relative\"\n",
    "name = \"x\"\n[[customizations.firstboot.scripts]]\ntype = \"custom\"\ncontents = \"\"\"\n'''\n\"\"\"\n",
    "name = \"x\"\n[[customizations.disk.partitions]]\nminsize = 1\n[[customizations.disk.partitions.logical_volumes]]\nminsize = 1\n",
    "name = \"\u{1F600}\"\nversion = \"\u{0}\"\n",
    "name = 'x'\n[customizations]\nhostname = \"\"\"\n\n\"\"\"\n",
    "\u{feff}name = \"bom\"",
    "name = \"x\"\n[[customizations.sshkey]]\nuser = \"u\"\nkey = \"\\u0000\"\n",
];

#[test]
fn seed_corpus_does_not_panic() {
    let mut count = 0;
    for input in REGRESSIONS {
        fuzz_one(input.as_bytes());
        count += 1;
    }
    for (_, src) in common::toml_corpus() {
        fuzz_one(src.as_bytes());
        count += 1;
    }
    fuzz_one(common::data("minimal.json").as_bytes());
    count += 1;
    let seeds = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds");
    if let Ok(entries) = std::fs::read_dir(seeds) {
        for entry in entries.flatten() {
            let bytes = std::fs::read(entry.path()).unwrap();
            fuzz_one(&bytes);
            count += 1;
        }
    }
    assert!(count >= REGRESSIONS.len() + 4);
}

#[test]
fn truncations_and_byte_flips_do_not_panic() {
    // A cheap deterministic mutation pass over the full blueprint (what a fuzzer does first).
    let src = common::data("full.toml");
    let bytes = src.as_bytes();
    for cut in (0..bytes.len()).step_by(97) {
        fuzz_one(&bytes[..cut]);
    }
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..200 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut m = bytes.to_vec();
        let len = m.len() as u64;
        #[allow(clippy::cast_possible_truncation)]
        let at = (state % len) as usize;
        m[at] = (state >> 32) as u8;
        fuzz_one(&m);
    }
}
