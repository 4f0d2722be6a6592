//! Structured progress events of a build, one JSON object per line with `--progress=json`.

use serde::Serialize;

/// One progress event. Serialized with a `"event"` tag, e.g.
/// `{"event":"stage-done","pipeline":"os","stage":"hostname","index":1,"total":3,...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// Downloads: `done` of `total` sources, `bytes` downloaded so far.
    Fetch {
        done: usize,
        total: usize,
        bytes: u64,
        message: String,
    },
    /// A stage starts running.
    StageStart {
        pipeline: String,
        stage: String,
        index: usize,
        total: usize,
        id: String,
    },
    /// A stage ran and its tree was committed, or was found in the store.
    StageDone {
        pipeline: String,
        stage: String,
        index: usize,
        total: usize,
        id: String,
        cached: bool,
        /// Wall-clock seconds the stage took (0 when cached).
        seconds: f64,
        /// The stage's log file, when the build has an output directory.
        #[serde(skip_serializing_if = "Option::is_none")]
        log: Option<String>,
    },
    /// A stage failed: nothing of it was committed; the build stops.
    StageFailed {
        pipeline: String,
        stage: String,
        index: usize,
        total: usize,
        id: String,
        seconds: f64,
        /// The stage's error.
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        log: Option<String>,
        /// Where the failed tree was kept (`--keep-failed`).
        #[serde(skip_serializing_if = "Option::is_none")]
        kept: Option<String>,
    },
    /// A line of a stage's output.
    Log {
        pipeline: String,
        stage: String,
        message: String,
    },
    /// An exported file was written.
    Export { pipeline: String, path: String },
}

impl Event {
    /// The event as one line of JSON (no trailing newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
