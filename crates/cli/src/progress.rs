//! Progress display on stderr; silent when stderr is not a terminal.

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kiln_repo::{ProgressEvent, ProgressFn};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub fn spinner(message: String) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new_spinner().with_message(message);
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Turns repository-loading events into the spinner's message: what is being fetched or
/// indexed and how many bytes have arrived.
pub fn metadata_progress(bar: ProgressBar) -> ProgressFn {
    let bytes = Arc::new(AtomicU64::new(0));
    Arc::new(move |event| match event {
        ProgressEvent::FetchStarted { url, .. } => {
            let file = url.rsplit('/').next().unwrap_or_default().to_string();
            bar.set_message(format!(
                "fetching {file} ({} so far)",
                HumanBytes(bytes.load(Ordering::Relaxed))
            ));
        }
        ProgressEvent::Fetched { bytes: n, .. } => {
            bytes.fetch_add(n, Ordering::Relaxed);
        }
        ProgressEvent::Indexing { source_id, path } => {
            bar.set_message(format!("indexing {source_id} {path}"));
        }
        _ => {}
    })
}
