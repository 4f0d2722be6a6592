//! The full load path against signed repositories that the tests build and serve on
//! 127.0.0.1: dists and flat layouts, the cache, the offline fallback, and bad input.
//! Needs `gpg` and `dpkg-deb`.

mod support;

use std::path::Path;
use std::time::SystemTime;

use kiln_repo::{
    KeySource, Layout, LoadOptions, MetadataCache, RepoError, Source, SourceConfig, Universe,
};
use support::*;

async fn load(cache: &MetadataCache, sources: &[Source]) -> Result<Universe, RepoError> {
    cache.load(sources, "amd64", &LoadOptions::default()).await
}

/// The cache holds no Release entry (nothing that looks like a complete load) and no
/// temporary files.
fn assert_no_release_cached(cache_dir: &Path) {
    let files = files_below(cache_dir);
    assert!(
        files
            .iter()
            .all(|f| !f.starts_with("release/") && !f.contains(".tmp")),
        "{files:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dists_repository_loads_and_warm_start_uses_the_cache() {
    let f = fixture();
    publish_dists(
        &f.repo,
        &f.gpg,
        &PKGS,
        &Publish::new(Sign::InRelease(f.fpr.clone())),
    );
    let server = Server::start(&f.repo);
    let src = dists_source("test", &server.url("debian"), &f.keyring);
    // Serve the repo under /debian/.
    std::fs::create_dir_all(f.repo.parent().unwrap()).unwrap();
    let served = f.repo.join("debian");
    std::fs::create_dir_all(&served).unwrap();
    for d in ["dists", "pool"] {
        std::fs::rename(f.repo.join(d), served.join(d)).unwrap();
    }

    let cache = MetadataCache::new(&f.cache_dir);
    let u = load(&cache, std::slice::from_ref(&src)).await.unwrap();
    assert_eq!(
        names(&u),
        vec!["hello-doc=1:0.5~rc1", "hello=1.0-1", "libhello=1.0-1"]
    );
    assert!(u.warnings.is_empty());
    assert_eq!(u.repos.len(), 2, "binary-amd64 and binary-all");
    let r = &u.repos[0];
    assert_eq!(r.packages_path, "main/binary-amd64/Packages");
    assert_eq!(r.base_url, server.url("debian/"));
    assert!(!r.stale);
    assert_eq!(r.release_info.origin.as_deref(), Some("kiln-test"));
    assert_eq!(r.release_info.signed_by.len(), 1);
    assert!(r.release_info.signed_by[0].starts_with(&f.fpr));
    // The download URL of a package points at the .deb the repository serves, with the
    // hash the index carries.
    let hello = r.index.iter().find(|p| p.name() == "hello").unwrap();
    let deb = std::fs::read(served.join(hello.filename())).unwrap();
    assert_eq!(hello.sha256_hex().unwrap(), sha256_hex(&deb));
    assert_eq!(hello.size(), deb.len() as u64);

    let log = server.take_log();
    assert_eq!(log[0], "/debian/dists/stable/InRelease");
    assert!(
        log.iter()
            .any(|p| p.starts_with("/debian/dists/stable/main/binary-amd64/by-hash/SHA256/")),
        "by-hash is used: {log:?}"
    );
    assert_eq!(log.len(), 3, "InRelease + 2 Packages: {log:?}");

    // Warm start with a new cache object: only InRelease is fetched, the indexes are the
    // files built by the cold start (not rebuilt).
    let idx_before: Vec<(String, SystemTime)> = files_below(&f.cache_dir.join("index"))
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(f.cache_dir.join("index").join(&p))
                .unwrap()
                .modified()
                .unwrap();
            (p, m)
        })
        .collect();
    assert_eq!(idx_before.len(), 2);
    let cache2 = MetadataCache::new(&f.cache_dir);
    let u2 = load(&cache2, std::slice::from_ref(&src)).await.unwrap();
    assert_eq!(names(&u2), names(&u));
    assert_eq!(server.take_log(), vec!["/debian/dists/stable/InRelease"]);
    for (p, m) in &idx_before {
        let now = std::fs::metadata(f.cache_dir.join("index").join(p))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(&now, m, "{p} was not rewritten");
    }

    // The repository changes: a new version of hello. Only the changed Packages file is
    // fetched again (binary-all is unchanged and content-addressed).
    let mut pkgs = PKGS.to_vec();
    pkgs[0].version = "1.1-1";
    publish_dists(
        &served,
        &f.gpg,
        &pkgs,
        &Publish::new(Sign::InRelease(f.fpr.clone())),
    );
    let u3 = load(&cache2, std::slice::from_ref(&src)).await.unwrap();
    assert!(names(&u3).contains(&"hello=1.1-1".to_string()));
    let log = server.take_log();
    assert_eq!(
        log.len(),
        2,
        "InRelease + the changed Packages file: {log:?}"
    );
    assert!(log[1].contains("binary-amd64"));
    let u4 = load(&cache2, std::slice::from_ref(&src)).await.unwrap();
    let expected = names(&u3);
    assert_eq!(names(&u4), expected);
    assert_eq!(server.take_log().len(), 1);

    // Pruning removes the index of the replaced Packages file (files younger than an hour
    // are kept, so age them first), and the warm load still needs no Packages download.
    let index_dir = f.cache_dir.join("index");
    assert_eq!(files_below(&index_dir).len(), 3);
    assert_eq!(cache2.prune().unwrap(), 0, "recent files are kept");
    let old = SystemTime::now() - std::time::Duration::from_secs(7200);
    for p in files_below(&index_dir) {
        std::fs::File::options()
            .write(true)
            .open(index_dir.join(p))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    assert_eq!(cache2.prune().unwrap(), 1);
    assert_eq!(files_below(&index_dir).len(), 2);
    let u4b = load(&cache2, std::slice::from_ref(&src)).await.unwrap();
    assert_eq!(names(&u4b), expected);
    assert_eq!(server.take_log().len(), 1);
    drop(u4b);
    // (The cache never writes a file in place, so live mmaps stay valid; the test below
    // does, so drop the live indexes first.)
    drop((u, u2, u3, u4));

    // A corrupt cached index is discarded and rebuilt (no panic).
    for p in files_below(&f.cache_dir.join("index")) {
        std::fs::write(f.cache_dir.join("index").join(p), b"garbage").unwrap();
    }
    let u5 = load(&cache2, std::slice::from_ref(&src)).await.unwrap();
    assert_eq!(names(&u5), expected);
    // A corrupt Release entry too.
    for p in files_below(&f.cache_dir.join("release")) {
        std::fs::write(
            f.cache_dir.join("release").join(p),
            b"kiln-release-cache 1\n{",
        )
        .unwrap();
    }
    let u6 = load(&cache2, std::slice::from_ref(&src)).await.unwrap();
    assert_eq!(names(&u6), expected);

    // Offline mode uses the cache without any request.
    server.take_log();
    let u7 = cache2
        .load(
            std::slice::from_ref(&src),
            "amd64",
            &LoadOptions {
                offline: true,
                ..LoadOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(names(&u7), expected);
    assert!(server.take_log().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_mirror_falls_back_to_the_cache_with_a_warning() {
    let f = fixture();
    let cache = MetadataCache::new(&f.cache_dir);

    // Nothing cached: a clear network error naming the URL.
    let dead = dists_source(
        "dead",
        &format!("http://127.0.0.1:{}/debian", closed_port()),
        &f.keyring,
    );
    let e = load(&cache, &[dead]).await.unwrap_err();
    assert!(matches!(e, RepoError::Fetch { .. }), "{e:?}");
    assert!(e.to_string().contains("InRelease"), "{e}");
    assert_no_release_cached(&f.cache_dir);

    // Warm the cache, then stop the server: the cached metadata is used, with a warning.
    publish_dists(
        &f.repo,
        &f.gpg,
        &PKGS,
        &Publish::new(Sign::InRelease(f.fpr.clone())),
    );
    let server = Server::start(&f.repo);
    let src = dists_source("test", server.url("").trim_end_matches('/'), &f.keyring);
    let warm = load(&cache, std::slice::from_ref(&src)).await.unwrap();
    drop(server);
    let u = load(&cache, std::slice::from_ref(&src)).await.unwrap();
    assert_eq!(names(&u), names(&warm));
    assert_eq!(u.warnings.len(), 1);
    assert!(
        u.warnings[0].contains("unreachable") && u.warnings[0].contains("test"),
        "{:?}",
        u.warnings
    );
    assert!(u.repos.iter().all(|r| r.stale));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flat_repository_with_release_gpg_and_inline_or_url_keys() {
    let f = fixture();
    let flat = f.repo.join("flat");
    let pkgs = [pkg("flatpkg", "2.0", "amd64"), pkg("flatdoc", "2.0", "all")];
    publish_flat(
        &flat,
        &f.gpg,
        &pkgs,
        &Publish::new(Sign::Detached(f.fpr.clone())),
    );
    std::fs::write(f.repo.join("key.asc"), f.gpg.export_armor(&f.fpr)).unwrap();
    let server = Server::start(&f.repo);

    // Through the weldr source format, with an inline armored key.
    let cfg = SourceConfig::parse(&format!(
        r#"{{"id": "flat", "name": "Flat", "type": "deb-flat", "url": "{}", "gpgkeys": [{:?}]}}"#,
        server.url("flat"),
        f.gpg.export_armor(&f.fpr)
    ))
    .unwrap()
    .validated()
    .unwrap();
    let src = cfg.to_source(None).unwrap();
    assert_eq!(
        src.layout,
        Layout::Flat {
            path: String::new()
        }
    );
    let cache = MetadataCache::new(&f.cache_dir);
    let u = load(&cache, std::slice::from_ref(&src)).await.unwrap();
    assert_eq!(names(&u), vec!["flatdoc=2.0", "flatpkg=2.0"]);
    assert_eq!(u.repos[0].base_url, server.url("flat/"));
    let p = u.repos[0].index.iter().next().unwrap();
    assert!(flat.join(p.filename()).is_file(), "{}", p.filename());
    let log = server.take_log();
    assert_eq!(
        log,
        vec![
            "/flat/InRelease",
            "/flat/Release",
            "/flat/Release.gpg",
            "/flat/Packages.gz"
        ]
    );

    // With the key given by URL.
    let mut src2 = src.clone();
    src2.keys = vec![KeySource::Url(server.url("key.asc"))];
    let cache2 = MetadataCache::new(f.cache_dir.join("2"));
    let u2 = load(&cache2, &[src2]).await.unwrap();
    assert_eq!(names(&u2), names(&u));

    // A flat repository with neither InRelease nor Release.gpg is refused...
    publish_flat(&flat, &f.gpg, &pkgs, &Publish::new(Sign::Unsigned));
    let cache3 = MetadataCache::new(f.cache_dir.join("3"));
    let e = load(&cache3, std::slice::from_ref(&src)).await.unwrap_err();
    assert!(matches!(e, RepoError::Unsigned { .. }), "{e:?}");
    assert!(e.to_string().contains("check_gpg = false"), "{e}");
    assert_no_release_cached(&f.cache_dir.join("3"));
    // ...unless check_gpg = false.
    let mut unchecked = src.clone();
    unchecked.check_gpg = false;
    let u3 = load(&cache3, &[unchecked]).await.unwrap();
    assert_eq!(names(&u3), names(&u));
}

/// Publishes with `p`, loads with a fresh cache, and returns the error (asserting that
/// nothing complete-looking was cached).
async fn load_err(f: &Fixture, pkgs: &[Pkg], p: &Publish, keyring: &Path, tag: &str) -> RepoError {
    let root = f.repo.join(tag);
    publish_dists(&root, &f.gpg, pkgs, p);
    load_err_at(f, &root, keyring, tag, |_| {}).await
}

async fn load_err_at(
    f: &Fixture,
    root: &Path,
    keyring: &Path,
    tag: &str,
    tamper: impl FnOnce(&Path),
) -> RepoError {
    tamper(root);
    let server = Server::start(root);
    let src = dists_source(tag, server.url("").trim_end_matches('/'), keyring);
    let cache_dir = f.cache_dir.join(tag);
    let cache = MetadataCache::new(&cache_dir);
    let e = load(&cache, &[src]).await.unwrap_err();
    assert_no_release_cached(&cache_dir);
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_repositories_are_refused_with_clear_errors() {
    let f = fixture();
    let signed = Publish::new(Sign::InRelease(f.fpr.clone()));

    // Unsigned: Release only.
    let e = load_err(
        &f,
        &PKGS,
        &Publish::new(Sign::Unsigned),
        &f.keyring,
        "unsigned",
    )
    .await;
    assert!(matches!(e, RepoError::Unsigned { .. }), "{e:?}");

    // Bad signature: one byte of the signed text changed.
    let root = f.repo.join("badsig");
    publish_dists(&root, &f.gpg, &PKGS, &signed);
    let e = load_err_at(&f, &root, &f.keyring, "badsig", |r| {
        let p = r.join("dists/stable/InRelease");
        let t = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, t.replacen("Label: kiln-test", "Label: kiln-tesT", 1)).unwrap();
    })
    .await;
    assert!(
        matches!(&e, RepoError::BadSignature { reasons, .. } if reasons.iter().any(|r| r.contains("BAD signature"))),
        "{e:?}"
    );

    // Unknown key: signed by another key; the error names it.
    let other = f
        .gpg
        .gen_key("other <other@kiln.invalid>", "ed25519", "sign", "0", None);
    let e = load_err(
        &f,
        &PKGS,
        &Publish::new(Sign::InRelease(other.clone())),
        &f.keyring,
        "unknown",
    )
    .await;
    match &e {
        RepoError::UnknownKey { key_ids, .. } => assert_eq!(key_ids, &vec![other.clone()]),
        _ => panic!("{e:?}"),
    }
    assert!(
        e.to_string().contains(&other) && e.to_string().contains("gpgkeys"),
        "{e}"
    );

    // Packages whose hash does not match the Release.
    let root = f.repo.join("mismatch");
    publish_dists(&root, &f.gpg, &PKGS, &signed);
    let e = load_err_at(&f, &root, &f.keyring, "mismatch", |r| {
        let dir = r.join("dists/stable/main/binary-amd64");
        let _ = std::fs::remove_dir_all(dir.join("by-hash"));
        let bad = xz(b"Package: evil\nVersion: 1\nArchitecture: amd64\n\n");
        std::fs::write(dir.join("Packages.xz"), bad).unwrap();
    })
    .await;
    match &e {
        RepoError::Mismatch {
            url,
            expected,
            actual,
            ..
        } => {
            assert!(url.ends_with("main/binary-amd64/Packages.xz"), "{url}");
            assert!(
                expected.contains("bytes") || expected.contains("SHA256"),
                "{expected}"
            );
            assert_ne!(expected, actual);
        }
        _ => panic!("{e:?}"),
    }

    // A corrupt compressed Packages file that the (signed) Release vouches for.
    let root = f.repo.join("corrupt");
    let mut p = signed.clone();
    p.by_hash = false;
    publish_dists(&root, &f.gpg, &PKGS, &p);
    let dist = root.join("dists/stable");
    let xz_path = dist.join("main/binary-amd64/Packages.xz");
    let good = std::fs::read(&xz_path).unwrap();
    let truncated = good[..good.len() / 2].to_vec();
    std::fs::write(&xz_path, &truncated).unwrap();
    let rel = std::fs::read_to_string(dist.join("Release")).unwrap();
    let rel = rel.replace(
        &format!(
            "{} {:>8} main/binary-amd64/Packages.xz",
            sha256_hex(&good),
            good.len()
        ),
        &format!(
            "{} {:>8} main/binary-amd64/Packages.xz",
            sha256_hex(&truncated),
            truncated.len()
        ),
    );
    std::fs::write(dist.join("Release"), &rel).unwrap();
    f.gpg.clearsign(
        &f.fpr,
        &dist.join("Release"),
        &dist.join("InRelease"),
        "SHA512",
        None,
    );
    let e = load_err_at(&f, &root, &f.keyring, "corrupt", |_| {}).await;
    assert!(matches!(e, RepoError::Decompress { .. }), "{e:?}");
    assert!(e.to_string().contains("Packages.xz"), "{e}");

    // Expired Valid-Until.
    let mut p = signed.clone();
    p.valid_until = Some("Sun, 11 Jun 2023 08:53:33 UTC".into());
    let e = load_err(&f, &PKGS, &p, &f.keyring, "expired").await;
    assert!(matches!(e, RepoError::ReleaseExpired { .. }), "{e:?}");
    assert!(e.to_string().contains("2023-06-11"), "{e}");

    // An expired key (made and used in 2020, valid one day).
    let old = f.gpg.gen_key(
        "old <old@kiln.invalid>",
        "ed25519",
        "sign",
        "1d",
        Some("20200101T000000"),
    );
    let old_ring = f.repo.join("old.gpg");
    std::fs::write(&old_ring, f.gpg.export(&old)).unwrap();
    let mut p = Publish::new(Sign::InRelease(old.clone()));
    p.faked_time = Some("20200101T010000".into());
    let e = load_err(&f, &PKGS, &p, &old_ring, "oldkey").await;
    assert!(
        matches!(&e, RepoError::BadSignature { reasons, .. } if reasons.iter().any(|r| r.contains("expired on 2020-01-02"))),
        "{e:?}"
    );

    // A revoked key.
    let rev = f
        .gpg
        .gen_key("revoked <rev@kiln.invalid>", "ed25519", "sign", "0", None);
    let root = f.repo.join("revoked");
    publish_dists(
        &root,
        &f.gpg,
        &PKGS,
        &Publish::new(Sign::InRelease(rev.clone())),
    );
    f.gpg.revoke(&rev);
    let rev_ring = f.repo.join("rev.gpg");
    std::fs::write(&rev_ring, f.gpg.export(&rev)).unwrap();
    let e = load_err_at(&f, &root, &rev_ring, "revoked", |_| {}).await;
    assert!(
        matches!(&e, RepoError::BadSignature { reasons, .. } if reasons.iter().any(|r| r.contains("revoked"))),
        "{e:?}"
    );

    // A SHA-1 signature.
    let mut p = signed.clone();
    p.digest = "SHA1".into();
    let e = load_err(&f, &PKGS, &p, &f.keyring, "sha1").await;
    assert!(
        matches!(&e, RepoError::BadSignature { reasons, .. } if reasons.iter().any(|r| r.contains("SHA1"))),
        "{e:?}"
    );

    // A source whose component the repository does not have.
    let root = f.repo.join("nocomp");
    publish_dists(&root, &f.gpg, &PKGS, &signed);
    let server = Server::start(&root);
    let mut src = dists_source("nocomp", server.url("").trim_end_matches('/'), &f.keyring);
    src.layout = Layout::Dists {
        suite: "stable".into(),
        components: vec!["contrib".into()],
    };
    let e = load(&MetadataCache::new(f.cache_dir.join("nocomp")), &[src])
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("contrib/binary-amd64/Packages"),
        "{e}"
    );
    // A wrong suite: neither InRelease nor Release.
    let mut src = dists_source("nosuite", server.url("").trim_end_matches('/'), &f.keyring);
    src.layout = Layout::Dists {
        suite: "nosuch".into(),
        components: vec!["main".into()],
    };
    let e = load(&MetadataCache::new(f.cache_dir.join("nosuite")), &[src])
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("neither InRelease nor Release"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_subkeys_and_several_sources() {
    let f = fixture();
    let primary = f
        .gpg
        .gen_key("sub <sub@kiln.invalid>", "ed25519", "cert", "0", None);
    let sub = f.gpg.add_signing_subkey(&primary);
    // gpg picks the signing subkey; "!" forces it.
    let root = f.repo.join("sub");
    let mut p = Publish::new(Sign::InRelease(format!("{sub}!")));
    p.separate_all = false;
    publish_dists(&root, &f.gpg, &PKGS, &p);
    let ring = f.repo.join("sub.gpg");
    std::fs::write(&ring, f.gpg.export(&primary)).unwrap();
    let server = Server::start(&root);
    let base = server.url("");
    let base = base.trim_end_matches('/');

    // The same repository as two sources, one restricted to the subkey's fingerprint
    // (apt's Signed-By: <fingerprint>).
    let a = dists_source("a", base, &ring);
    let mut b = dists_source("b", base, &ring);
    b.key_fingerprints = vec![sub.clone()];
    b.url = format!("{base}/./");
    let cache = MetadataCache::new(&f.cache_dir);
    let u = load(&cache, &[a.clone(), b]).await.unwrap();
    assert_eq!(
        u.repos.len(),
        2,
        "No-Support-for-Architecture-all: one file per source"
    );
    assert_eq!(u.repos[0].source_id, "a");
    assert_eq!(u.repos[1].source_id, "b");
    assert_eq!(
        u.repos[0].index.len(),
        3,
        "arch all packages inside binary-amd64"
    );

    // A fingerprint filter that matches nothing is an error naming Signed-By.
    let mut c = a.clone();
    c.key_fingerprints = vec!["0000000000000000000000000000000000000000".into()];
    let e = load(&MetadataCache::new(f.cache_dir.join("c")), &[c])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Signed-By"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_distribution_is_a_warning() {
    let f = fixture();
    let mut p = Publish::new(Sign::InRelease(f.fpr.clone()));
    p.suite = "testing".into();
    publish_dists(&f.repo, &f.gpg, &PKGS, &p);
    std::fs::rename(f.repo.join("dists/testing"), f.repo.join("dists/stable")).unwrap();
    let server = Server::start(&f.repo);
    let src = dists_source("moved", server.url("").trim_end_matches('/'), &f.keyring);
    let u = load(&MetadataCache::new(&f.cache_dir), &[src])
        .await
        .unwrap();
    assert_eq!(u.warnings.len(), 1, "{:?}", u.warnings);
    assert!(
        u.warnings[0].contains("conflicting distribution"),
        "{:?}",
        u.warnings
    );
    assert_eq!(names(&u).len(), 3);
}

#[test]
fn keyrings_binary_armored_and_concatenated() {
    use kiln_repo::openpgp::Keyring;
    let gpg = Gpg::new();
    let a = gpg.gen_key("a <a@kiln.invalid>", "ed25519", "sign", "0", None);
    let b = gpg.gen_key("b <b@kiln.invalid>", "rsa2048", "sign", "0", None);

    let mut binary = gpg.export(&a);
    binary.extend(gpg.export(&b));
    let mut k = Keyring::new();
    assert_eq!(k.add_bytes(&binary, "binary").unwrap(), 2);
    assert_eq!(k.fingerprints(), vec![a.clone(), b.clone()]);

    let armored = format!(
        "Some comment before the key\n{}\n{}",
        gpg.export_armor(&a),
        gpg.export_armor(&b)
    );
    let mut k2 = Keyring::new();
    assert_eq!(k2.add_bytes(armored.as_bytes(), "armored").unwrap(), 2);
    k2.retain_fingerprints(&[b.to_lowercase()]);
    assert_eq!(k2.fingerprints(), vec![b.clone()]);

    let mut k3 = Keyring::new();
    assert!(k3.add_bytes(b"not a key", "garbage").is_err());
    assert!(k3.add_bytes(&[0x99, 0x01, 0x02], "truncated").is_err());
    assert!(k3.add_bytes(b"", "empty").is_err());
    assert!(k3.is_empty());
}
