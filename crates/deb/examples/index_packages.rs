//! Builds an index from a decompressed Packages file and times build and load:
//! `cargo run --release -p kiln-deb --example index_packages -- Packages [out.idx]`.
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let text = std::fs::read(&args[1]).expect("read Packages");
    let t = Instant::now();
    let mut b = kiln_deb::IndexBuilder::new();
    let n = b.add_packages(&text).expect("parse");
    let bytes = b.finish();
    println!(
        "parsed {n} packages in {:?}, index {} bytes",
        t.elapsed(),
        bytes.len()
    );
    let out = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "/tmp/kiln.idx".into());
    std::fs::write(&out, &bytes).unwrap();
    let t = Instant::now();
    let idx = kiln_deb::Index::open(std::path::Path::new(&out)).unwrap();
    println!("opened {} packages in {:?}", idx.len(), t.elapsed());
}
