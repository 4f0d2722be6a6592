//! Warm loads (reuse of an unchanged InRelease's verification, conditional requests),
//! retries, progress events, Release dates and the cache lock shared by processes,
//! against repositories the tests build and serve on 127.0.0.1. Needs `gpg` and
//! `dpkg-deb`.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kiln_repo::{
    LoadOptions, LoadStats, MetadataCache, ProgressEvent, RepoError, Source, Universe,
};
use support::*;

/// The `Date` of the published Release files (Sat, 10 Jun 2023 08:53:33 UTC).
const DATE: u64 = 1_686_387_213;
const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

async fn load(cache: &MetadataCache, src: &Source) -> Result<Universe, RepoError> {
    load_at(cache, src, None).await
}

async fn load_at(
    cache: &MetadataCache,
    src: &Source,
    now: Option<SystemTime>,
) -> Result<Universe, RepoError> {
    let opts = LoadOptions {
        now,
        ..LoadOptions::default()
    };
    cache.load(std::slice::from_ref(src), "amd64", &opts).await
}

fn at(secs: u64) -> Option<SystemTime> {
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

fn stats(verified: usize, reused: usize, not_modified: usize, built: usize) -> LoadStats {
    LoadStats {
        releases_verified: verified,
        releases_reused: reused,
        not_modified,
        indexes_built: built,
    }
}

fn req(path: &str, status: u16, conditional: bool) -> Logged {
    Logged {
        path: path.into(),
        status,
        conditional,
    }
}

/// A published, served `dists/stable` repository and a source for it.
fn served(f: &Fixture, p: &Publish) -> (Server, Source) {
    publish_dists(&f.repo, &f.gpg, &PKGS, p);
    let server = Server::start(&f.repo);
    let src = dists_source("test", server.url("").trim_end_matches('/'), &f.keyring);
    (server, src)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_inrelease_is_not_verified_again() {
    let f = fixture();
    let (server, src) = served(&f, &Publish::new(Sign::InRelease(f.fpr.clone())));
    let cache = MetadataCache::new(&f.cache_dir);
    const INRELEASE: &str = "/dists/stable/InRelease";

    let cold = load(&cache, &src).await.unwrap();
    assert_eq!(cold.stats, stats(1, 0, 0, 2));
    let expected = names(&cold);
    assert_eq!(server.take_requests()[0], req(INRELEASE, 200, false));

    // Warm: a conditional request answered with 304; nothing verified or built.
    let warm = load(&cache, &src).await.unwrap();
    assert_eq!(names(&warm), expected);
    assert_eq!(warm.stats, stats(0, 1, 1, 0));
    assert_eq!(warm.repos[0].release_info, cold.repos[0].release_info);
    assert_eq!(server.take_requests(), vec![req(INRELEASE, 304, true)]);

    // A server without validators sends the same bytes: reused all the same. (The
    // entry then has no validators, so the next request is unconditional; the one after
    // is conditional again.)
    server.set_validators(false);
    let u = load(&cache, &src).await.unwrap();
    assert_eq!(u.stats, stats(0, 1, 0, 0));
    assert_eq!(server.take_requests(), vec![req(INRELEASE, 200, true)]);
    server.set_validators(true);
    assert_eq!(load(&cache, &src).await.unwrap().stats, stats(0, 1, 0, 0));
    assert_eq!(server.take_requests(), vec![req(INRELEASE, 200, false)]);
    assert_eq!(load(&cache, &src).await.unwrap().stats, stats(0, 1, 1, 0));
    assert_eq!(server.take_requests(), vec![req(INRELEASE, 304, true)]);

    // The same key, armored: other keyring bytes, so the signature is verified again.
    std::fs::write(&f.keyring, f.gpg.export_armor(&f.fpr)).unwrap();
    let u = load(&cache, &src).await.unwrap();
    assert_eq!(u.stats, stats(1, 0, 0, 0));
    assert_eq!(names(&u), expected);
    assert_eq!(server.take_requests(), vec![req(INRELEASE, 200, false)]);
    assert_eq!(load(&cache, &src).await.unwrap().stats, stats(0, 1, 1, 0));

    // A keyring without the signing key: the unchanged InRelease is refused.
    let other = f
        .gpg
        .gen_key("other <other@kiln.invalid>", "ed25519", "sign", "0", None);
    let armored = std::fs::read(&f.keyring).unwrap();
    std::fs::write(&f.keyring, f.gpg.export(&other)).unwrap();
    let e = load(&cache, &src).await.unwrap_err();
    assert!(matches!(e, RepoError::UnknownKey { .. }), "{e:?}");
    // Only for a key filter that excludes the signer too.
    std::fs::write(&f.keyring, &armored).unwrap();
    let mut filtered = src.clone();
    filtered.key_fingerprints = vec![other.clone()];
    let e = load(&cache, &filtered).await.unwrap_err();
    assert!(e.to_string().contains("Signed-By"), "{e}");
    // Back to the keyring of the cached entry: reused again.
    assert_eq!(load(&cache, &src).await.unwrap().stats, stats(0, 1, 1, 0));

    // check_gpg off: the Release is taken again, unverified (the indexes are reused);
    // then on again: the unverified entry is not trusted.
    let mut unchecked = src.clone();
    unchecked.check_gpg = false;
    let u = load(&cache, &unchecked).await.unwrap();
    assert_eq!(u.stats, stats(1, 0, 0, 0));
    assert!(u.repos[0].release_info.signed_by.is_empty());
    assert_eq!(
        load(&cache, &unchecked).await.unwrap().stats,
        stats(0, 1, 1, 0)
    );
    let u = load(&cache, &src).await.unwrap();
    assert_eq!(u.stats, stats(1, 0, 0, 0));
    assert_eq!(u.repos[0].release_info.signed_by.len(), 1);
    server.take_requests();

    // A changed InRelease is verified; only the changed Packages file is built.
    let mut pkgs = PKGS.to_vec();
    pkgs[0].version = "1.1-1";
    publish_dists(
        &f.repo,
        &f.gpg,
        &pkgs,
        &Publish::new(Sign::InRelease(f.fpr.clone())),
    );
    let u = load(&cache, &src).await.unwrap();
    assert_eq!(u.stats, stats(1, 0, 0, 1));
    assert!(names(&u).contains(&"hello=1.1-1".to_string()));
    let reqs = server.take_requests();
    assert_eq!(reqs[0], req(INRELEASE, 200, true));
    assert_eq!(reqs.len(), 2, "{reqs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_until_and_date_are_checked_on_warm_loads() {
    let f = fixture();
    let mut p = Publish::new(Sign::InRelease(f.fpr.clone()));
    p.valid_until = Some("Sat, 17 Jun 2023 08:53:33 UTC".into());
    let (_server, src) = served(&f, &p);
    let cache = MetadataCache::new(&f.cache_dir);

    let u = load_at(&cache, &src, at(DATE + HOUR)).await.unwrap();
    assert_eq!(u.stats, stats(1, 0, 0, 2));
    let u = load_at(&cache, &src, at(DATE + 2 * DAY)).await.unwrap();
    assert_eq!(u.stats, stats(0, 1, 1, 0));

    // Past Valid-Until: refused, although the file is unchanged and was verified.
    let e = load_at(&cache, &src, at(DATE + 8 * DAY)).await.unwrap_err();
    assert!(matches!(e, RepoError::ReleaseExpired { .. }), "{e:?}");
    assert!(e.to_string().contains("2023-06-17"), "{e}");

    // Date more than a day ahead: not valid yet (as apt says).
    let e = load_at(&cache, &src, at(DATE - 2 * DAY)).await.unwrap_err();
    assert!(matches!(e, RepoError::ReleaseNotYetValid { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("not valid yet")
            && msg.contains("invalid for another 1d")
            && msg.contains("2023-06-10 08:53:33"),
        "{msg}"
    );
    // Less than a day ahead: accepted (clock skew).
    let u = load_at(&cache, &src, at(DATE - 23 * HOUR)).await.unwrap();
    assert_eq!(u.stats, stats(0, 1, 1, 0));

    // Without check_gpg too, cold or warm; Valid-Until is not checked then (as before).
    let mut unchecked = src.clone();
    unchecked.check_gpg = false;
    let cold = MetadataCache::new(f.cache_dir.join("unchecked"));
    let e = load_at(&cold, &unchecked, at(DATE - 3 * DAY))
        .await
        .unwrap_err();
    assert!(matches!(e, RepoError::ReleaseNotYetValid { .. }), "{e:?}");
    assert!(e.to_string().contains("invalid for another 2d"), "{e}");
    load_at(&cold, &unchecked, at(DATE + 30 * DAY))
        .await
        .unwrap();
    let e = load_at(&cold, &unchecked, at(DATE - 3 * DAY))
        .await
        .unwrap_err();
    assert!(matches!(e, RepoError::ReleaseNotYetValid { .. }), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_expired_since_the_last_verification_is_noticed() {
    let f = fixture();
    let key = f
        .gpg
        .gen_key("short <short@kiln.invalid>", "ed25519", "sign", "1d", None);
    std::fs::write(&f.keyring, f.gpg.export(&key)).unwrap();
    let (_server, src) = served(&f, &Publish::new(Sign::InRelease(key.clone())));
    let cache = MetadataCache::new(&f.cache_dir);
    let now = SystemTime::now();

    load_at(&cache, &src, Some(now)).await.unwrap();
    let u = load_at(&cache, &src, Some(now + Duration::from_secs(12 * HOUR)))
        .await
        .unwrap();
    assert_eq!(u.stats, stats(0, 1, 1, 0), "still within the key's life");
    let e = load_at(&cache, &src, Some(now + Duration::from_secs(2 * DAY)))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, RepoError::BadSignature { reasons, .. } if reasons.iter().any(|r| r.contains("expired"))),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_are_retried_with_backoff() {
    let f = fixture();
    let (server, src) = served(&f, &Publish::new(Sign::InRelease(f.fpr.clone())));
    let fresh = |tag: &str| MetadataCache::new(f.cache_dir.join(tag));

    // 503 twice, then 200: loads, after waiting 200 ms + 400 ms.
    server.inject("InRelease", Fault::Status(503), 2);
    let t = Instant::now();
    let u = load(&fresh("a"), &src).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(600),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(names(&u).len(), 3);
    let statuses: Vec<u16> = server
        .take_requests()
        .iter()
        .filter(|r| r.path.ends_with("/InRelease"))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![503, 503, 200]);

    // A connection dropped in the middle of a Packages file.
    server.inject("binary-amd64", Fault::DropMidBody, 1);
    let u = load(&fresh("b"), &src).await.unwrap();
    assert_eq!(names(&u).len(), 3);
    let amd64 = server
        .take_log()
        .into_iter()
        .filter(|p| p.contains("binary-amd64"))
        .count();
    assert_eq!(amd64, 2, "the truncated download is tried again");

    // Always 503: gives up after 3 attempts, and says so.
    server.inject("InRelease", Fault::Status(503), 3);
    let e = load(&fresh("c"), &src).await.unwrap_err();
    assert!(
        matches!(
            e,
            RepoError::HttpStatus {
                status: 503,
                attempts: 3,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("after 3 attempts"), "{e}");
    assert_eq!(server.take_log().len(), 3);

    // Nothing listens: connection errors are retried too.
    let dead = dists_source(
        "dead",
        &format!("http://127.0.0.1:{}", closed_port()),
        &f.keyring,
    );
    let e = load(&fresh("d"), &dead).await.unwrap_err();
    assert!(matches!(e, RepoError::Fetch { attempts: 3, .. }), "{e:?}");
    assert!(e.to_string().contains("after 3 attempts"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_are_not_retried() {
    let f = fixture();
    let (server, src) = served(&f, &Publish::new(Sign::InRelease(f.fpr.clone())));
    let fresh = |tag: &str| MetadataCache::new(f.cache_dir.join(tag));
    let no_repeats = |log: Vec<String>| {
        let mut sorted = log.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), log.len(), "a request was repeated: {log:?}");
    };

    // 403.
    server.inject("InRelease", Fault::Status(403), 1);
    let e = load(&fresh("a"), &src).await.unwrap_err();
    assert!(
        matches!(
            e,
            RepoError::HttpStatus {
                status: 403,
                attempts: 1,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.to_string().contains("attempts"), "{e}");
    assert_eq!(server.take_log().len(), 1);

    // 404: a wrong suite.
    let mut nosuite = src.clone();
    nosuite.layout = kiln_repo::Layout::Dists {
        suite: "nosuch".into(),
        components: vec!["main".into()],
    };
    let e = load(&fresh("b"), &nosuite).await.unwrap_err();
    assert!(
        e.to_string().contains("neither InRelease nor Release"),
        "{e}"
    );
    assert_eq!(
        server.take_log(),
        vec!["/dists/nosuch/InRelease", "/dists/nosuch/Release"]
    );

    // A Packages file whose hash does not match the Release.
    let dir = f.repo.join("dists/stable/main/binary-amd64");
    for e in std::fs::read_dir(dir.join("by-hash/SHA256")).unwrap() {
        std::fs::write(e.unwrap().path(), b"not the right content").unwrap();
    }
    let e = load(&fresh("c"), &src).await.unwrap_err();
    assert!(matches!(e, RepoError::Mismatch { .. }), "{e:?}");
    no_repeats(server.take_log());

    // A bad signature.
    let p = f.repo.join("dists/stable/InRelease");
    let t = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, t.replacen("Label: kiln-test", "Label: kiln-tesT", 1)).unwrap();
    let e = load(&fresh("d"), &src).await.unwrap_err();
    assert!(matches!(e, RepoError::BadSignature { .. }), "{e:?}");
    assert_eq!(server.take_log(), vec!["/dists/stable/InRelease"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_events_for_cold_and_warm_loads() {
    let f = fixture();
    let (server, src) = served(&f, &Publish::new(Sign::InRelease(f.fpr.clone())));
    let cache = MetadataCache::new(&f.cache_dir);
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let opts = LoadOptions {
        progress: Some(Arc::new(move |e| sink.lock().unwrap().push(e))),
        ..LoadOptions::default()
    };
    let take = || std::mem::take(&mut *events.lock().unwrap());

    cache
        .load(std::slice::from_ref(&src), "amd64", &opts)
        .await
        .unwrap();
    let ev = take();
    assert_eq!(ev.last(), Some(&ProgressEvent::Done));
    assert_eq!(ev.iter().filter(|e| **e == ProgressEvent::Done).count(), 1);
    // Every request that got a body: started with its size, then fetched in full.
    let log = server.take_log();
    assert_eq!(log.len(), 3, "{log:?}");
    for path in &log {
        let url = server.url(path.trim_start_matches('/'));
        let size = std::fs::metadata(f.repo.join(path.trim_start_matches('/')))
            .unwrap()
            .len();
        let started = ev
            .iter()
            .position(|e| {
                *e == ProgressEvent::FetchStarted {
                    url: url.clone(),
                    total: Some(size),
                }
            })
            .unwrap_or_else(|| panic!("no FetchStarted for {url}: {ev:?}"));
        let fetched = ev
            .iter()
            .position(|e| {
                *e == ProgressEvent::Fetched {
                    url: url.clone(),
                    bytes: size,
                }
            })
            .unwrap_or_else(|| panic!("no Fetched for {url}: {ev:?}"));
        assert!(started < fetched);
    }
    let mut indexing: Vec<String> = ev
        .iter()
        .filter_map(|e| match e {
            ProgressEvent::Indexing { source_id, path } => {
                assert_eq!(source_id, "test");
                Some(path.clone())
            }
            _ => None,
        })
        .collect();
    indexing.sort();
    assert_eq!(
        indexing,
        vec!["main/binary-all/Packages", "main/binary-amd64/Packages"]
    );

    // Warm (304): nothing downloaded, nothing indexed.
    cache
        .load(std::slice::from_ref(&src), "amd64", &opts)
        .await
        .unwrap();
    assert_eq!(take(), vec![ProgressEvent::Done]);

    // A failed load ends with Done too.
    let dead = dists_source(
        "dead",
        &format!("http://127.0.0.1:{}", closed_port()),
        &f.keyring,
    );
    MetadataCache::new(f.cache_dir.join("dead"))
        .load(&[dead], "amd64", &opts)
        .await
        .unwrap_err();
    assert_eq!(take(), vec![ProgressEvent::Done]);
}

/// The cache's files: one Release entry, the two indexes and the lock; no temporary files.
fn assert_consistent_cache(dir: &std::path::Path) {
    let files = files_below(dir);
    let count = |prefix: &str| files.iter().filter(|f| f.starts_with(prefix)).count();
    assert_eq!(count("release/"), 1, "{files:?}");
    assert_eq!(count("index/"), 2, "{files:?}");
    assert!(files.contains(&"lock".to_string()), "{files:?}");
    assert!(files.iter().all(|f| !f.contains(".tmp")), "{files:?}");
    assert_eq!(files.len(), 4, "{files:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_loads_of_a_cold_cache_in_one_process() {
    let f = fixture();
    let (_server, src) = served(&f, &Publish::new(Sign::InRelease(f.fpr.clone())));
    let (a, b, c) = (
        MetadataCache::new(&f.cache_dir),
        MetadataCache::new(&f.cache_dir),
        MetadataCache::new(&f.cache_dir),
    );
    let (ra, rb, rc) = tokio::join!(load(&a, &src), load(&b, &src), load(&c, &src));
    let expected = names(&ra.unwrap());
    assert_eq!(names(&rb.unwrap()), expected);
    assert_eq!(names(&rc.unwrap()), expected);
    assert_consistent_cache(&f.cache_dir);
    let offline = LoadOptions {
        offline: true,
        ..LoadOptions::default()
    };
    let u = a
        .load(std::slice::from_ref(&src), "amd64", &offline)
        .await
        .unwrap();
    assert_eq!(names(&u), expected);
}

const CHILD_ENV: &str = "KILN_TEST_CHILD_LOAD";

/// Loads a cold cache from two processes at once (this test binary, running
/// [`child_load`]); both succeed and leave a consistent cache.
#[test]
fn two_processes_load_the_same_cold_cache() {
    let f = fixture();
    let (server, src) = served(&f, &Publish::new(Sign::InRelease(f.fpr.clone())));
    let go = f.cache_dir.with_file_name("go");
    let spec = format!(
        "{}\n{}\n{}\n{}",
        f.cache_dir.display(),
        src.url,
        f.keyring.display(),
        go.display()
    );
    let exe = std::env::current_exe().unwrap();
    let children: Vec<std::process::Child> = (0..2)
        .map(|_| {
            std::process::Command::new(&exe)
                .args(["--ignored", "--exact", "child_load", "--nocapture"])
                .env(CHILD_ENV, &spec)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Both start loading at the same moment.
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&go, b"").unwrap();
    let mut outputs = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success() && stdout.contains("CHILD LOADED"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push(
            stdout
                .lines()
                .find_map(|l| l.strip_prefix("CHILD LOADED "))
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], "hello-doc=1:0.5~rc1 hello=1.0-1 libhello=1.0-1");
    let inreleases = server
        .take_log()
        .iter()
        .filter(|p| p.ends_with("/InRelease"))
        .count();
    assert_eq!(inreleases, 2, "one per process");
    assert_consistent_cache(&f.cache_dir);
    let offline = LoadOptions {
        offline: true,
        ..LoadOptions::default()
    };
    let u = MetadataCache::new(&f.cache_dir)
        .load_blocking(&[src], "amd64", &offline)
        .unwrap();
    assert_eq!(names(&u).join(" "), outputs[0]);
}

/// The child of [`two_processes_load_the_same_cold_cache`]; does nothing on its own.
#[test]
#[ignore = "run by two_processes_load_the_same_cold_cache"]
fn child_load() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.lines().collect();
    let [cache_dir, url, keyring, go] = parts[..] else {
        panic!("bad {CHILD_ENV}: {spec:?}");
    };
    let src = dists_source(
        "test",
        url.trim_end_matches('/'),
        std::path::Path::new(keyring),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::path::Path::new(go).exists() {
        assert!(Instant::now() < deadline, "never told to go");
        std::thread::sleep(Duration::from_millis(2));
    }
    let u = MetadataCache::new(cache_dir)
        .load_blocking(&[src], "amd64", &LoadOptions::default())
        .unwrap();
    println!("CHILD LOADED {}", names(&u).join(" "));
}

#[test]
fn writers_wait_for_the_cache_lock() {
    let f = fixture();
    let (server, src) = served(&f, &Publish::new(Sign::InRelease(f.fpr.clone())));
    std::fs::create_dir_all(&f.cache_dir).unwrap();
    let lock = std::fs::File::create(f.cache_dir.join("lock")).unwrap();
    lock.lock().unwrap();

    let cache = MetadataCache::new(&f.cache_dir);
    let loader = {
        let (cache, src) = (cache.clone(), src.clone());
        std::thread::spawn(move || cache.load_blocking(&[src], "amd64", &LoadOptions::default()))
    };
    // The downloads happen, but nothing is written while another process holds the lock.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut requests = 0;
    while requests < 3 {
        requests += server.take_requests().len();
        assert!(Instant::now() < deadline, "the downloads did not happen");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(!loader.is_finished());
    assert_eq!(files_below(&f.cache_dir), vec!["lock"]);
    lock.unlock().unwrap();
    let u = loader.join().unwrap().unwrap();
    assert_eq!(names(&u).len(), 3);
    assert_consistent_cache(&f.cache_dir);

    // prune waits for the lock too.
    lock.lock().unwrap();
    let pruner = {
        let cache = cache.clone();
        std::thread::spawn(move || cache.prune())
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!pruner.is_finished());
    drop(lock);
    assert_eq!(pruner.join().unwrap().unwrap(), 0);
}
