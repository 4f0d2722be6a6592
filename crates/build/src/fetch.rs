//! Downloads a manifest's sources into the store: a few worker threads, each URL tried in
//! order with retries, resumed from a partial download, verified (size and sha256) by the
//! store before the blob becomes visible.

use kiln_store::{BlobSlot, Sha256Digest, Store};
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One download.
#[derive(Debug, Clone)]
pub struct FetchItem {
    pub sha256: Sha256Digest,
    pub size: u64,
    pub urls: Vec<String>,
}

const ATTEMPTS: u32 = 3;

/// Downloads `items` (those not already in the store) with `jobs` parallel workers.
/// `progress(done, total, bytes)` is called after each finished download.
pub fn fetch_all(
    store: &Store,
    items: Vec<FetchItem>,
    jobs: usize,
    progress: &(dyn Fn(usize, usize, u64) + Sync),
) -> Result<(), String> {
    let total = items.len();
    if total == 0 {
        return Ok(());
    }
    let queue = Arc::new(Mutex::new(items));
    let done = AtomicUsize::new(0);
    let bytes = AtomicU64::new(0);
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, total) {
            s.spawn(|| {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        errors
                            .lock()
                            .unwrap()
                            .push(format!("cannot start a runtime: {e}"));
                        return;
                    }
                };
                let client = match reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(30))
                    .read_timeout(Duration::from_secs(60))
                    .build()
                {
                    Ok(c) => c,
                    Err(e) => {
                        errors
                            .lock()
                            .unwrap()
                            .push(format!("cannot make an HTTP client: {e}"));
                        return;
                    }
                };
                loop {
                    if !errors.lock().unwrap().is_empty() {
                        return;
                    }
                    let Some(item) = queue.lock().unwrap().pop() else {
                        return;
                    };
                    match rt.block_on(fetch_one(store, &client, &item, &bytes)) {
                        Ok(()) => {
                            let d = done.fetch_add(1, Ordering::SeqCst) + 1;
                            progress(d, total, bytes.load(Ordering::SeqCst));
                        }
                        Err(e) => errors.lock().unwrap().push(e),
                    }
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap();
    match errors.into_iter().next() {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

async fn fetch_one(
    store: &Store,
    client: &reqwest::Client,
    item: &FetchItem,
    bytes: &AtomicU64,
) -> Result<(), String> {
    let hex = item.sha256.to_hex();
    let mut last = String::from("no URL");
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
        }
        for url in &item.urls {
            match try_url(store, client, item, url, bytes).await {
                Ok(()) => return Ok(()),
                Err(e) => last = format!("{url}: {e}"),
            }
        }
    }
    Err(format!("cannot download sha256:{hex}: {last}"))
}

async fn try_url(
    store: &Store,
    client: &reqwest::Client,
    item: &FetchItem,
    url: &str,
    bytes: &AtomicU64,
) -> Result<(), String> {
    let mut w = match store
        .blob_writer(&item.sha256, Some(item.size))
        .map_err(|e| e.to_string())?
    {
        BlobSlot::Present(_) => return Ok(()),
        BlobSlot::Writer(w) => w,
    };
    let offset = w.offset();
    let mut req = client.get(url);
    if offset > 0 && offset < item.size {
        req = req.header("Range", format!("bytes={offset}-"));
    }
    let mut resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    if status.as_u16() == 206 {
        // resumed
    } else if status.is_success() {
        if w.offset() > 0 {
            w.restart().map_err(|e| e.to_string())?;
        }
    } else {
        return Err(format!("HTTP {status}"));
    }
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        w.write_all(&chunk).map_err(|e| e.to_string())?;
        bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    w.commit().map_err(|e| e.to_string())?;
    Ok(())
}
