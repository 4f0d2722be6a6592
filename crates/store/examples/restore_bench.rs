//! Measure how fast a committed tree can be materialised with each restore method.
//!
//! ```text
//! cargo run --release -p kiln-store --example restore_bench -- \
//!     [--store DIR] [--files 20000] [--mb 300] [--from DIR] [--runs 3]
//! ```
//!
//! Makes a tree of `--files` files totalling about `--mb` MB (or copies `--from`),
//! commits it (durably: the time includes the size walk and the `syncfs`), then
//! restores it `--runs` times with every method and with `cp -a --reflink=auto`
//! (osbuild's way). Each run starts with the filesystem synced; it prints the best and
//! median restore times, the median time of the `syncfs` that follows (the writeback
//! the copy left), and at the end the median time to delete a copy (and sync). The store
//! defaults to a directory under the system temp dir.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kiln_store::{CommitMeta, RestoreMethod, Store, StoreError};

struct Args {
    store: PathBuf,
    files: usize,
    mb: u64,
    from: Option<PathBuf>,
    runs: usize,
}

fn parse_args() -> Args {
    let mut a = Args {
        store: std::env::temp_dir().join("kiln-restore-bench"),
        files: 20_000,
        mb: 300,
        from: None,
        runs: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--store" => a.store = v.into(),
            "--files" => a.files = v.parse().expect("--files N"),
            "--mb" => a.mb = v.parse().expect("--mb N"),
            "--from" => a.from = Some(v.into()),
            "--runs" => a.runs = v.parse().expect("--runs N"),
            _ => panic!("unknown option {k}"),
        }
    }
    a
}

/// Deterministic file sizes with a long tail (many small files, a few large ones), as
/// in a Debian root filesystem, scaled to add up to `total`.
fn sizes(n: usize, total: u64) -> Vec<u64> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut raw: Vec<u64> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 150 {
                0 => x % (2 << 20),
                1..=15 => x % (100 << 10),
                _ => x % (8 << 10),
            }
        })
        .collect();
    let sum: u64 = raw.iter().sum::<u64>().max(1);
    for s in &mut raw {
        *s = (*s as u128 * total as u128 / sum as u128) as u64;
    }
    raw
}

fn generate(dir: &Path, files: usize, total: u64) -> std::io::Result<()> {
    let pattern: Vec<u8> = (0..(4u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for (i, size) in sizes(files, total).into_iter().enumerate() {
        let sub = dir.join(format!(
            "d{}/d{}/d{}",
            i % 10,
            (i / 10) % 10,
            (i / 100) % 10
        ));
        if i < 1000 {
            std::fs::create_dir_all(&sub)?;
        }
        let p = sub.join(format!("file{i}"));
        let start = i % 1024;
        let mut left = size as usize;
        let mut f = std::fs::File::create(&p)?;
        while left > 0 {
            let n = left.min(pattern.len() - start);
            std::io::Write::write_all(&mut f, &pattern[start..start + n])?;
            left -= n;
        }
        if i % 50 == 0 {
            std::os::unix::fs::symlink(format!("file{i}"), sub.join(format!("link{i}")))?;
        }
        if i % 100 == 1 {
            std::fs::hard_link(&p, sub.join(format!("hard{i}")))?;
        }
    }
    Ok(())
}

fn syncfs(p: &Path) {
    let d = std::fs::File::open(p).expect("open store root");
    rustix::fs::syncfs(&d).expect("syncfs");
}

fn fmt(d: Duration) -> String {
    format!("{:8.3} s", d.as_secs_f64())
}

fn main() -> Result<(), StoreError> {
    let args = parse_args();
    let _ = std::fs::remove_dir_all(&args.store);
    let store = Store::open(&args.store)?;
    let fs_type = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(store.root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("store: {} (filesystem: {fs_type})", store.root().display());

    let b = store.begin_tree()?;
    let t = Instant::now();
    match &args.from {
        Some(src) => {
            kiln_store::copy_tree(src, b.path(), RestoreMethod::Auto)?;
        }
        None => generate(b.path(), args.files, args.mb << 20).map_err(|e| StoreError::Io {
            op: "generate",
            path: b.path().to_path_buf(),
            source: e,
        })?,
    }
    println!("make the tree:            {}", fmt(t.elapsed()));
    let t = Instant::now();
    let tree = store.commit_tree(b, "bench", CommitMeta::new("bench"))?;
    println!(
        "commit (walk + syncfs):   {}   {} entries, {:.0} MB on disk",
        fmt(t.elapsed()),
        tree.meta().entries,
        tree.meta().size as f64 / 1e6
    );
    let t = Instant::now();
    drop(store.lookup_tree("bench")?);
    println!("lookup:                   {}", fmt(t.elapsed()));

    println!(
        "\n{:<18} {:>10} {:>10} {:>10}   notes",
        "method", "best", "median", "+syncfs"
    );
    let methods: [(&str, Option<RestoreMethod>); 6] = [
        ("auto", Some(RestoreMethod::Auto)),
        ("reflink", Some(RestoreMethod::Reflink)),
        ("copy_file_range", Some(RestoreMethod::CopyFileRange)),
        ("read_write", Some(RestoreMethod::ReadWrite)),
        ("hardlink", Some(RestoreMethod::Hardlink)),
        ("cp -a --reflink", None),
    ];
    // Copies are all kept until the end: on a filesystem mounted with `discard`,
    // deleting right before the next run would make that run wait for the discards.
    let mut to_delete = Vec::new();
    for (name, method) in methods {
        let mut times = Vec::new();
        let mut syncs = Vec::new();
        let mut dests = Vec::new();
        let mut note = String::new();
        for run in 0..args.runs {
            let dest = store
                .root()
                .join("tmp")
                .join(format!("bench-{}-{run}", name.replace(' ', "_")));
            // Start every run with nothing dirty, so runs do not pay for each other.
            syncfs(store.root());
            let t = Instant::now();
            let r = match method {
                Some(m) => tree.restore(&dest, m).map(|s| {
                    note = format!(
                        "{} reflinked, {:.0} MB copied, {} hard links",
                        s.reflinked,
                        s.bytes_copied as f64 / 1e6,
                        s.hardlinks
                    );
                }),
                None => {
                    let ok = Command::new("cp")
                        .args(["-a", "--reflink=auto"])
                        .arg(tree.path())
                        .arg(&dest)
                        .status()
                        .map(|s| s.success())
                        .unwrap_or(false);
                    if ok {
                        Ok(())
                    } else {
                        Err(StoreError::Unsupported {
                            method: "cp",
                            reason: "cp failed",
                            path: dest.clone(),
                        })
                    }
                }
            };
            let elapsed = t.elapsed();
            dests.push(dest);
            if let Err(e) = r {
                note = format!("unavailable: {e}");
                break;
            }
            times.push(elapsed);
            let t = Instant::now();
            syncfs(store.root());
            syncs.push(t.elapsed());
        }
        to_delete.push((name, dests));
        if times.is_empty() {
            println!("{name:<18} {:>10} {:>10} {:>10}   {note}", "-", "-", "-");
            continue;
        }
        times.sort();
        syncs.sort();
        println!(
            "{name:<18} {} {} {}   {note}",
            fmt(times[0]),
            fmt(times[times.len() / 2]),
            fmt(syncs[syncs.len() / 2]),
        );
    }
    println!("\ndeleting the copies (median, including syncfs):");
    for (name, dests) in to_delete {
        let mut deletes = Vec::new();
        for d in dests {
            let t = Instant::now();
            let _ = std::fs::remove_dir_all(&d);
            syncfs(store.root());
            deletes.push(t.elapsed());
        }
        deletes.sort();
        println!("{name:<18} {}", fmt(deletes[deletes.len() / 2]));
    }
    drop(tree);
    let _ = std::fs::remove_dir_all(&args.store);
    Ok(())
}
