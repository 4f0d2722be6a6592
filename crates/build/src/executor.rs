//! Builds a manifest: fetches the missing sources, resumes every pipeline from the longest
//! prefix of its stages already in the store, runs and commits the remaining stages, and
//! copies the exports to the output directory.
//!
//! # Logs and timings
//!
//! Every line a stage writes through [`StageContext::log`] (the sandboxed `deb.install`
//! passes on the output of dpkg and the maintainer scripts; the pure-Rust stages say what
//! they do) becomes an [`Event::Log`] and, when the build has an output directory, a line of
//! `<output>/logs/<pipeline>-<index>-<kind>.log` (index from 0, as in the events; characters
//! other than `[A-Za-z0-9._-]` in the pipeline name become `_`). Each log starts with a
//! `# kiln stage log:` header naming the stage id and ends with `# ok in …s` or
//! `# failed after …s: …`. The logs sit beside the exported files rather than in the store
//! so that they can be read (and tailed while the stage runs) without knowing the store's
//! layout. A stage that comes from the store does not run: its log is kept if the file is
//! the log of the same stage id, else replaced by a header and a `# cached` line. Without an
//! output directory the lines are only events. Each stage's wall-clock time is in
//! [`StageReport::seconds`] and in [`Event::StageDone`] / [`Event::StageFailed`].
//!
//! # Failures
//!
//! A failing stage ends the build with [`BuildError::Stage`], which names the pipeline,
//! the stage index and kind, and shows the last [`TAIL_LINES`] lines of the stage's output.
//! Nothing of the failed stage is committed; the stages before it are (they were committed
//! as they finished), so the next build resumes after them. The failed stage's working
//! tree is removed, or with [`BuildOptions::keep_failed`] moved to
//! `<output>/failed-<pipeline>-<index>/` (the current directory when the build has no
//! output directory; an older tree at that path is replaced), whose path the error shows.

use crate::events::Event;
use crate::fetch::{FetchItem, fetch_all};
#[cfg(doc)]
use crate::stages::StageContext;
use crate::stages::{self, InputData};
use kiln_manifest::{Input, Manifest};
use kiln_store::{CommitMeta, RestoreMethod, Sha256Digest, Store, TreeRef};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};
use std::time::Instant;

/// Receives progress events.
pub type EventSink = Box<dyn Fn(&Event) + Sync>;

/// Options of [`build`].
#[derive(Default)]
pub struct BuildOptions {
    /// Where exported files go (`None`: build only, export nothing).
    pub output: Option<PathBuf>,
    /// Run every stage even if its tree is in the store.
    pub no_cache: bool,
    /// Keep the working tree of a failed stage (see the module documentation).
    pub keep_failed: bool,
    /// The `bwrap` binary for sandboxed stages (default: from `PATH`).
    pub bwrap: Option<PathBuf>,
    /// Parallel downloads (0: 4).
    pub fetch_jobs: usize,
    /// Independent pipelines run at once (0: 2; 1: one after the other).
    pub jobs: usize,
    /// Receives every progress event as it happens.
    pub on_event: Option<EventSink>,
}

/// Whether a stage ran or came from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageStatus {
    Ran,
    Cached,
}

#[derive(Debug, Clone)]
pub struct StageReport {
    pub pipeline: String,
    pub index: usize,
    pub kind: String,
    pub id: String,
    pub status: StageStatus,
    /// Wall-clock time the stage took (0 when cached).
    pub seconds: f64,
    /// The stage's log file (`None` without an output directory).
    pub log: Option<PathBuf>,
}

/// What [`build`] did.
#[derive(Debug, Clone, Default)]
pub struct BuildReport {
    pub stages: Vec<StageReport>,
    /// Sources downloaded (not already in the store).
    pub fetched: usize,
    /// Exported files, in the manifest's order.
    pub exports: Vec<PathBuf>,
    pub seconds: f64,
}

impl BuildReport {
    /// `pipeline/kind` of the stages that ran, in order.
    pub fn ran(&self) -> Vec<String> {
        self.stages
            .iter()
            .filter(|s| s.status == StageStatus::Ran)
            .map(|s| format!("{}/{}", s.pipeline, s.kind))
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid manifest: {0}")]
    Manifest(#[from] kiln_manifest::ManifestError),
    #[error("store: {0}")]
    Store(#[from] kiln_store::StoreError),
    #[error("downloading sources: {0}")]
    Fetch(String),
    #[error("{0}")]
    Plan(String),
    #[error("{0}")]
    Stage(Box<StageFailure>),
    #[error("export {filename:?} of pipeline {pipeline:?}: {message}")]
    Export {
        pipeline: String,
        filename: String,
        message: String,
    },
}

/// How many of the last lines of a failed stage's output its error shows.
pub const TAIL_LINES: usize = 30;

/// A stage that failed: what [`BuildError::Stage`] holds.
#[derive(Debug, Clone)]
pub struct StageFailure {
    pub pipeline: String,
    /// Index of the stage in its pipeline (from 0).
    pub index: usize,
    pub kind: String,
    pub id: String,
    /// The stage's error.
    pub message: String,
    /// The last [`TAIL_LINES`] lines of the stage's output.
    pub output: Vec<String>,
    /// The full log, when there is an output directory.
    pub log: Option<PathBuf>,
    /// Where the failed stage's working tree was kept (`--keep-failed`).
    pub kept: Option<PathBuf>,
    /// Why the tree could not be kept, when it was asked for.
    pub keep_error: Option<String>,
}

impl fmt::Display for StageFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pipeline {:?}, stage {} ({}) failed: {}",
            self.pipeline, self.index, self.kind, self.message
        )?;
        if !self.output.is_empty() {
            write!(f, "\n--- last {} line(s) of its output", self.output.len())?;
            if let Some(log) = &self.log {
                write!(f, " (full log: {})", log.display())?;
            }
            write!(f, " ---")?;
            for line in &self.output {
                write!(f, "\n{line}")?;
            }
            write!(f, "\n---")?;
        } else if let Some(log) = &self.log {
            write!(f, "\nlog: {}", log.display())?;
        }
        match (&self.kept, &self.keep_error) {
            (Some(p), _) => write!(f, "\nthe failed stage's tree is kept at {}", p.display()),
            (None, Some(e)) => write!(f, "\nthe failed stage's tree could not be kept: {e}"),
            (None, None) => Ok(()),
        }
    }
}

/// One stage's output: the log file (if any) and the last lines.
struct StageLog {
    file: Option<BufWriter<File>>,
    path: Option<PathBuf>,
    tail: VecDeque<String>,
}

impl StageLog {
    fn header(pipeline: &str, index: usize, kind: &str, id: &str) -> String {
        format!("# kiln stage log: pipeline {pipeline:?}, stage {index} ({kind}), id {id}")
    }

    /// Opens (truncates) the log of a stage that runs. A log that cannot be written is
    /// reported through `warn` and skipped: it must not fail the build.
    fn create(path: Option<PathBuf>, header: &str, warn: &mut dyn FnMut(String)) -> StageLog {
        let mut log = StageLog {
            file: None,
            path: None,
            tail: VecDeque::with_capacity(TAIL_LINES),
        };
        if let Some(path) = path {
            let opened = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| File::create(&path));
            match opened {
                Ok(f) => {
                    let mut w = BufWriter::new(f);
                    let _ = writeln!(w, "{header}");
                    log.file = Some(w);
                    log.path = Some(path);
                }
                Err(e) => warn(format!("cannot write the log {}: {e}", path.display())),
            }
        }
        log
    }

    fn line(&mut self, line: &str) {
        if let Some(w) = &mut self.file {
            let _ = writeln!(w, "{line}");
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.to_owned());
    }

    /// Writes the last line and closes the file.
    fn finish(&mut self, last: &str) {
        if let Some(mut w) = self.file.take() {
            let _ = writeln!(w, "{last}");
            let _ = w.flush();
        }
    }
}

/// `<output>/logs/<pipeline>-<index>-<kind>.log`.
fn log_path(output: Option<&Path>, pipeline: &str, index: usize, kind: &str) -> Option<PathBuf> {
    output.map(|o| {
        o.join("logs").join(format!(
            "{}-{index}-{}.log",
            file_part(pipeline),
            file_part(kind)
        ))
    })
}

/// `s` with every character but `[A-Za-z0-9._-]` replaced by `_` (never `.` or `..`).
fn file_part(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.chars().all(|c| c == '.') {
        out.replace('.', "_") + "_"
    } else {
        out
    }
}

/// The log of a cached stage: kept when it is that stage's log, else a short note.
fn cached_log(path: &Path, header: &str) -> Option<PathBuf> {
    let same = File::open(path)
        .ok()
        .and_then(|f| BufReader::new(f).lines().next())
        .and_then(Result::ok)
        .is_some_and(|first| first == header);
    if same {
        return Some(path.to_path_buf());
    }
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            std::fs::write(
                path,
                format!(
                    "{header}\n# cached: the tree came from the store; the stage did not run\n"
                ),
            )
        });
    written.ok().map(|()| path.to_path_buf())
}

/// Moves the failed stage's working tree to `dest` (copies it when `dest` is on another
/// filesystem); the caller then drops the builder, which removes what is left.
fn keep_tree(src: &Path, dest: &Path) -> Result<(), String> {
    if std::fs::symlink_metadata(dest).is_ok() {
        std::fs::remove_dir_all(dest)
            .map_err(|e| format!("cannot remove the old {}: {e}", dest.display()))?;
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    match std::fs::rename(src, dest) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) => {
            kiln_store::copy_tree(src, dest, RestoreMethod::Auto)
                .map(|_| ())
                .map_err(|e| format!("cannot copy to {}: {e}", dest.display()))
        }
        Err(e) => Err(format!("cannot move to {}: {e}", dest.display())),
    }
}

/// Builds `manifest` with `store`. See the module documentation.
pub fn build(
    manifest: &Manifest,
    store: &Store,
    opts: &BuildOptions,
) -> Result<BuildReport, BuildError> {
    let start = Instant::now();
    let emit = |e: Event| {
        if let Some(f) = &opts.on_event {
            f(&e);
        }
    };
    let ids = manifest.stage_ids(stages::version)?;

    // Plan: for each pipeline, the number of leading stages already stored.
    let mut resume: Vec<usize> = Vec::with_capacity(ids.len());
    for p in &ids {
        let mut k = 0;
        if !opts.no_cache {
            for i in (0..p.stages.len()).rev() {
                if store.has_tree(&p.stages[i]) {
                    k = i + 1;
                    break;
                }
            }
        }
        resume.push(k);
    }

    // Fetch the sources of the stages that will run.
    let mut needed: BTreeSet<&str> = BTreeSet::new();
    for (pi, p) in manifest.pipelines.iter().enumerate() {
        for stage in &p.stages[resume[pi]..] {
            for input in stage.inputs.values() {
                if let Input::Sources { refs } = input {
                    needed.extend(refs.iter().map(String::as_str));
                }
            }
        }
    }
    let mut items = Vec::new();
    for r in &needed {
        let digest = parse_digest(r).map_err(BuildError::Fetch)?;
        if !store.has_blob(&digest) {
            let src = &manifest.sources[*r];
            items.push(FetchItem {
                sha256: digest,
                size: src.size,
                urls: src.urls.clone(),
            });
        }
    }
    let fetched = items.len();
    let jobs = if opts.fetch_jobs == 0 {
        4
    } else {
        opts.fetch_jobs
    };
    fetch_all(store, items, jobs, &|done, total, bytes| {
        emit(Event::Fetch {
            done,
            total,
            bytes,
            message: String::new(),
        })
    })
    .map_err(BuildError::Fetch)?;

    // Pipelines run as soon as the pipelines they take trees from are done, up to
    // `jobs` at once: the build root installs while the OS tree does, on another core.
    let outputs: Mutex<HashMap<String, TreeRef>> = Mutex::new(HashMap::new());
    let reports = schedule(manifest, &ids, opts, |pi| {
        run_pipeline(manifest, store, opts, &ids[pi], pi, resume[pi], &outputs)
    })?;
    let outputs = outputs.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut report = BuildReport {
        fetched,
        stages: reports.into_iter().flatten().collect(),
        ..BuildReport::default()
    };
    if let Some(dir) = &opts.output {
        for e in &manifest.exports {
            let err = |message: String| BuildError::Export {
                pipeline: e.pipeline.clone(),
                filename: e.filename.clone(),
                message,
            };
            let tree = outputs
                .get(&e.pipeline)
                .ok_or_else(|| err("the pipeline has no output tree".into()))?;
            let dest = export_file(&tree.path(), &e.filename, dir).map_err(err)?;
            emit(Event::Export {
                pipeline: e.pipeline.clone(),
                path: dest.display().to_string(),
            });
            report.exports.push(dest);
        }
    }
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

/// Runs `run(pi)` for every pipeline, each once the pipelines it takes trees from (its
/// `build` pipeline and its `pipeline` inputs) are done, up to `opts.jobs` at once, in the
/// manifest's order among those ready. A pipeline that shares a stage with a running one
/// waits for it, then finds that stage in the store instead of building it twice. After a
/// failure no pipeline starts; the running ones finish (their stages stay committed) and the
/// first error is returned. The reports come back in the manifest's order.
fn schedule(
    manifest: &Manifest,
    ids: &[kiln_manifest::PipelineIds],
    opts: &BuildOptions,
    run: impl Fn(usize) -> Result<Vec<StageReport>, BuildError> + Sync,
) -> Result<Vec<Vec<StageReport>>, BuildError> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Waiting,
        Running,
        Done,
        Failed,
    }
    let n = manifest.pipelines.len();
    let index: HashMap<&str, usize> = manifest
        .pipelines
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();
    let deps: Vec<Vec<usize>> = manifest
        .pipelines
        .iter()
        .map(|p| {
            let inputs = p.stages.iter().flat_map(|s| s.inputs.values());
            let names = p
                .build
                .iter()
                .map(String::as_str)
                .chain(inputs.filter_map(|i| match i {
                    Input::Pipeline { name } => Some(name.as_str()),
                    Input::Sources { .. } => None,
                }));
            // An unknown name is not waited for: running the pipeline reports it.
            names.filter_map(|d| index.get(d).copied()).collect()
        })
        .collect();
    let stage_sets: Vec<HashSet<&str>> = ids
        .iter()
        .map(|p| p.stages.iter().map(String::as_str).collect())
        .collect();
    let jobs = if opts.jobs == 0 { 2 } else { opts.jobs };
    let mut state = vec![State::Waiting; n];
    let mut reports: Vec<Vec<StageReport>> = vec![Vec::new(); n];
    let mut first_error: Option<BuildError> = None;
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| {
        let mut running = 0;
        loop {
            for pi in 0..n {
                if first_error.is_some() || running >= jobs {
                    break;
                }
                let ready = state[pi] == State::Waiting
                    && deps[pi].iter().all(|&d| state[d] == State::Done)
                    && !(0..n).any(|j| {
                        state[j] == State::Running && !stage_sets[pi].is_disjoint(&stage_sets[j])
                    });
                if ready {
                    state[pi] = State::Running;
                    running += 1;
                    let (tx, run) = (tx.clone(), &run);
                    scope.spawn(move || {
                        let _ = tx.send((pi, run(pi)));
                    });
                }
            }
            if running == 0 {
                break;
            }
            let Ok((pi, result)) = rx.recv() else { break };
            running -= 1;
            match result {
                Ok(r) => {
                    state[pi] = State::Done;
                    reports[pi] = r;
                }
                Err(e) => {
                    state[pi] = State::Failed;
                    first_error.get_or_insert(e);
                }
            }
        }
    });
    if let Some(e) = first_error {
        return Err(e);
    }
    if let Some(pi) = state.iter().position(|s| *s == State::Waiting) {
        return Err(BuildError::Plan(format!(
            "pipeline {:?} takes a tree from a pipeline that comes after it (or from itself)",
            manifest.pipelines[pi].name
        )));
    }
    Ok(reports)
}

/// Builds pipeline `pi` from its first `resume` stages (found in the store when planned)
/// and puts its output tree into `outputs`. Its dependencies' trees are already there.
fn run_pipeline(
    manifest: &Manifest,
    store: &Store,
    opts: &BuildOptions,
    pids: &kiln_manifest::PipelineIds,
    pi: usize,
    mut resume: usize,
    outputs: &Mutex<HashMap<String, TreeRef>>,
) -> Result<Vec<StageReport>, BuildError> {
    let emit = |e: Event| {
        if let Some(f) = &opts.on_event {
            f(&e);
        }
    };
    let p = &manifest.pipelines[pi];
    let pids = &pids.stages;
    let output = opts.output.as_deref();
    let mut report = Vec::new();
    let total = p.stages.len();
    // The trees this pipeline reads, by pipeline name (pinned by `outputs` until the end
    // of the build).
    let trees: HashMap<String, PathBuf> = outputs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(name, tree)| (name.clone(), tree.path()))
        .collect();
    let build_root = match &p.build {
        Some(b) => Some(trees.get(b).cloned().ok_or_else(|| {
            BuildError::Plan(format!(
                "pipeline {:?}: its build pipeline {b:?} has no output tree (no stages?)",
                p.name
            ))
        })?),
        None => None,
    };
    let mut last: Option<TreeRef> = None;
    // Plan again: an earlier pipeline of this build may have committed the same stages
    // (two image types with the same disk).
    if !opts.no_cache
        && let Some(i) = (resume..pids.len())
            .rev()
            .find(|&i| store.has_tree(&pids[i]))
    {
        resume = i + 1;
    }
    if resume > 0 {
        last = store.lookup_tree(&pids[resume - 1])?;
        if last.is_none() {
            // Evicted since we planned: rebuild the pipeline from its start.
            resume = 0;
        }
    }
    for (i, (stage, id)) in p.stages.iter().zip(pids).enumerate().take(resume) {
        let log = log_path(output, &p.name, i, &stage.kind)
            .and_then(|path| cached_log(&path, &StageLog::header(&p.name, i, &stage.kind, id)));
        report.push(StageReport {
            pipeline: p.name.clone(),
            index: i,
            kind: stage.kind.clone(),
            id: id.clone(),
            status: StageStatus::Cached,
            seconds: 0.0,
            log: log.clone(),
        });
        emit(Event::StageDone {
            pipeline: p.name.clone(),
            stage: stage.kind.clone(),
            index: i,
            total,
            id: id.clone(),
            cached: true,
            seconds: 0.0,
            log: log.map(|l| l.display().to_string()),
        });
    }
    for (i, (stage, id)) in p.stages.iter().zip(pids).enumerate().skip(resume) {
        emit(Event::StageStart {
            pipeline: p.name.clone(),
            stage: stage.kind.clone(),
            index: i,
            total,
            id: id.clone(),
        });
        let t = Instant::now();
        let log_event = |line: &str| {
            emit(Event::Log {
                pipeline: p.name.clone(),
                stage: stage.kind.clone(),
                message: line.to_owned(),
            })
        };
        let mut slog = StageLog::create(
            log_path(output, &p.name, i, &stage.kind),
            &StageLog::header(&p.name, i, &stage.kind, id),
            &mut |w: String| log_event(&w),
        );
        let mut builder = None;
        let result = run_stage(
            store,
            stage,
            p.source_epoch,
            build_root.as_deref(),
            opts,
            &trees,
            last.as_ref(),
            &mut builder,
            &mut |line: &str| {
                slog.line(line);
                log_event(line);
            },
        );
        let seconds = t.elapsed().as_secs_f64();
        if let Err(message) = result {
            slog.finish(&format!("# failed after {seconds:.3}s: {message}"));
            let mut failure = StageFailure {
                pipeline: p.name.clone(),
                index: i,
                kind: stage.kind.clone(),
                id: id.clone(),
                message,
                output: slog.tail.drain(..).collect(),
                log: slog.path.take(),
                kept: None,
                keep_error: None,
            };
            if let Some(b) = builder.take() {
                if opts.keep_failed {
                    let dest = output
                        .unwrap_or(Path::new("."))
                        .join(format!("failed-{}-{i}", file_part(&p.name)));
                    match keep_tree(b.path(), &dest) {
                        Ok(()) => failure.kept = Some(dest),
                        Err(e) => failure.keep_error = Some(e),
                    }
                }
                drop(b); // removes the working directory (or what is left of it)
            }
            emit(Event::StageFailed {
                pipeline: p.name.clone(),
                stage: stage.kind.clone(),
                index: i,
                total,
                id: id.clone(),
                seconds,
                message: failure.message.clone(),
                log: failure.log.as_ref().map(|l| l.display().to_string()),
                kept: failure.kept.as_ref().map(|l| l.display().to_string()),
            });
            return Err(BuildError::Stage(Box::new(failure)));
        }
        let Some(b) = builder.take() else {
            unreachable!("run_stage succeeded without a working tree");
        };
        let tree = store.commit_tree(b, id, CommitMeta::new(stage.kind.clone()))?;
        let seconds = t.elapsed().as_secs_f64();
        slog.finish(&format!("# ok in {seconds:.3}s"));
        emit(Event::StageDone {
            pipeline: p.name.clone(),
            stage: stage.kind.clone(),
            index: i,
            total,
            id: id.clone(),
            cached: false,
            seconds,
            log: slog.path.as_ref().map(|l| l.display().to_string()),
        });
        report.push(StageReport {
            pipeline: p.name.clone(),
            index: i,
            kind: stage.kind.clone(),
            id: id.clone(),
            status: StageStatus::Ran,
            seconds,
            log: slog.path.take(),
        });
        last = Some(tree);
    }
    if let Some(tree) = last {
        outputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(p.name.clone(), tree);
    }
    Ok(report)
}

/// Resolves the inputs of `stage`, starts its working tree (left in `builder`, also on
/// failure, once made) from `parent` and runs the stage. The error is a message for people.
#[allow(clippy::too_many_arguments)]
fn run_stage(
    store: &Store,
    stage: &kiln_manifest::Stage,
    source_epoch: Option<u64>,
    build_root: Option<&Path>,
    opts: &BuildOptions,
    trees: &HashMap<String, PathBuf>,
    parent: Option<&TreeRef>,
    builder: &mut Option<kiln_store::ObjectBuilder>,
    log: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let mut inputs = BTreeMap::new();
    for (name, input) in &stage.inputs {
        let data = match input {
            Input::Sources { refs } => {
                let mut files = Vec::with_capacity(refs.len());
                for r in refs {
                    let d = parse_digest(r)?;
                    let path = store
                        .blob_path(&d)
                        .ok_or_else(|| format!("source {r} is not in the store"))?;
                    files.push(path);
                }
                InputData::Files(files)
            }
            Input::Pipeline { name: dep } => {
                let tree = trees
                    .get(dep)
                    .ok_or_else(|| format!("input pipeline {dep:?} has no output tree"))?;
                InputData::Tree(tree.clone())
            }
        };
        inputs.insert(name.clone(), data);
    }
    let b = match (parent, stages::writable_dirs(&stage.kind)) {
        (None, _) => store.begin_tree(),
        (Some(parent), _) if stages::RESTORE_BY_HARDLINK.contains(&stage.kind.as_str()) => {
            store.begin_tree_from_with(parent.id(), RestoreMethod::Hardlink)
        }
        (Some(parent), Some(dirs)) => store
            .begin_tree_from_with(parent.id(), RestoreMethod::Hardlink)
            .and_then(|b| {
                unshare_dirs(&parent.path(), b.path(), dirs)?;
                Ok(b)
            }),
        (Some(parent), None) => store.begin_tree_from(parent.id()),
    }
    .map_err(|e| format!("cannot start the working tree: {e}"))?;
    let tree = builder.insert(b).path().to_path_buf();
    let mut ctx = stages::StageContext {
        tree: &tree,
        options: &stage.options,
        inputs,
        source_epoch,
        bwrap: opts.bwrap.clone(),
        build_root: build_root.map(Path::to_path_buf),
        log,
    };
    stages::run(&stage.kind, &mut ctx)?;
    // Every committed tree is normalized (noise removed, mtimes clamped): the store only
    // ever holds reproducible trees, whichever stage comes last.
    match source_epoch {
        Some(epoch) if stage.kind != "tree.normalize" => crate::normalize::normalize(&tree, epoch)
            .map_err(|e| format!("normalizing the tree before commit: {e}")),
        _ => Ok(()),
    }
}

/// Replaces the hard-linked contents of `dirs` in `tree` (restored from `parent`) by
/// copies, so that the stage can write there without touching the stored parent.
fn unshare_dirs(parent: &Path, tree: &Path, dirs: &[&str]) -> kiln_store::Result<()> {
    for d in dirs {
        let (src, dest) = (parent.join(d), tree.join(d));
        // A directory the parent lacks (or holds as a symlink) is left as restored.
        if !std::fs::symlink_metadata(&src).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        std::fs::remove_dir_all(&dest)
            .and_then(|()| std::fs::create_dir(&dest))
            .map_err(|e| kiln_store::StoreError::Io {
                op: "replace",
                path: dest.clone(),
                source: e,
            })?;
        kiln_store::copy_tree(&src, &dest, RestoreMethod::Auto)?;
    }
    Ok(())
}

fn parse_digest(r: &str) -> Result<Sha256Digest, String> {
    let hex = r
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("source {r:?} is not a sha256 digest"))?;
    Sha256Digest::from_hex(hex).map_err(|e| e.to_string())
}

/// Copies `tree/filename` to `dir/filename` through a temporary name and a rename.
fn export_file(tree: &Path, filename: &str, dir: &Path) -> Result<PathBuf, String> {
    if filename.is_empty() || filename.split('/').any(|c| c.is_empty() || c == "..") {
        return Err("invalid file name".into());
    }
    let src = tree.join(filename);
    let name = Path::new(filename)
        .file_name()
        .ok_or("invalid file name")?
        .to_owned();
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let dest = dir.join(&name);
    let tmp = dir.join(format!(
        ".{}.kiln-tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = crate::sparse::copy_file(&src, &tmp)
        .map_err(|e| format!("cannot copy {} to {}: {e}", src.display(), tmp.display()))
        .and_then(|_| {
            std::fs::rename(&tmp, &dest)
                .map_err(|e| format!("cannot rename to {}: {e}", dest.display()))
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pipelines `a` and `b` (independent, with `b` sharing no stage with `a`), `c` built
    /// with `a`'s tree as its build root, `d` taking `b`'s tree, and `e`, the same stages as
    /// `a` under another name.
    fn dag() -> (Manifest, Vec<kiln_manifest::PipelineIds>) {
        let host = |h: &str| serde_json::json!({"kind": "hostname", "options": {"hostname": h}});
        let json = serde_json::json!({
            "version": 1,
            "pipelines": [
                {"name": "a", "stages": [host("a")]},
                {"name": "b", "stages": [host("b")]},
                {"name": "c", "build": "a", "stages": [host("c")]},
                {"name": "d", "stages": [{"kind": "archive.tar", "options": {"filename": "x"},
                    "inputs": {"tree": {"type": "pipeline", "name": "b"}}}]},
                {"name": "e", "stages": [host("a")]}
            ]
        });
        let m = Manifest::from_json(json.to_string().as_bytes()).unwrap();
        let ids = m.stage_ids(stages::version).unwrap();
        (m, ids)
    }

    /// The writable directories of a read-only stage get their own copies; everything
    /// else stays a hard link to the stored parent.
    #[test]
    fn unshare_dirs_copies_only_the_writable_directories() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let (parent, tree) = (dir.path().join("parent"), dir.path().join("tree"));
        for t in [&parent, &tree] {
            std::fs::create_dir_all(t.join("boot/grub")).unwrap();
            std::fs::create_dir_all(t.join("etc")).unwrap();
        }
        for f in ["boot/vmlinuz", "boot/grub/grub.cfg", "etc/hostname"] {
            std::fs::write(parent.join(f), f).unwrap();
            std::fs::hard_link(parent.join(f), tree.join(f)).unwrap();
        }
        unshare_dirs(&parent, &tree, &["boot", "var/tmp"]).unwrap();
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        for f in ["boot/vmlinuz", "boot/grub/grub.cfg"] {
            assert_ne!(
                ino(&parent.join(f)),
                ino(&tree.join(f)),
                "{f} is still shared"
            );
            assert_eq!(std::fs::read_to_string(tree.join(f)).unwrap(), f);
        }
        assert_eq!(
            ino(&parent.join("etc/hostname")),
            ino(&tree.join("etc/hostname"))
        );
        assert!(
            !tree.join("var/tmp").exists(),
            "a directory the parent lacks is not made"
        );
    }

    fn one_report(name: &str) -> Vec<StageReport> {
        vec![StageReport {
            pipeline: name.into(),
            index: 0,
            kind: "hostname".into(),
            id: String::new(),
            status: StageStatus::Ran,
            seconds: 0.0,
            log: None,
        }]
    }

    #[test]
    fn independent_pipelines_run_at_once_and_dependents_wait() {
        let (m, ids) = dag();
        let opts = BuildOptions::default();
        let (a_tx, a_rx) = mpsc::channel::<()>();
        let (b_tx, b_rx) = mpsc::channel::<()>();
        let (a_rx, b_rx) = (Mutex::new(a_rx), Mutex::new(b_rx));
        let (a_tx, b_tx) = (Mutex::new(a_tx), Mutex::new(b_tx));
        let log = Mutex::new(Vec::<String>::new());
        let wait = std::time::Duration::from_secs(60);
        let reports = schedule(&m, &ids, &opts, |pi| {
            let name = m.pipelines[pi].name.clone();
            log.lock().unwrap().push(format!("start {name}"));
            // `a` and `b` each wait for the other to have started: this only returns if
            // they run at the same time.
            match name.as_str() {
                "a" => {
                    a_tx.lock().unwrap().send(()).unwrap();
                    b_rx.lock()
                        .unwrap()
                        .recv_timeout(wait)
                        .expect("b never ran beside a");
                }
                "b" => {
                    b_tx.lock().unwrap().send(()).unwrap();
                    a_rx.lock()
                        .unwrap()
                        .recv_timeout(wait)
                        .expect("a never ran beside b");
                }
                _ => {}
            }
            log.lock().unwrap().push(format!("end {name}"));
            Ok(one_report(&name))
        })
        .unwrap();
        let names: Vec<&str> = reports.iter().map(|r| r[0].pipeline.as_str()).collect();
        assert_eq!(
            names,
            ["a", "b", "c", "d", "e"],
            "reports in the manifest's order"
        );
        let log = log.into_inner().unwrap();
        let at = |s: &str| log.iter().position(|l| l == s).unwrap();
        assert!(at("end a") < at("start c"), "{log:?}");
        assert!(at("end b") < at("start d"), "{log:?}");
        // `e` has `a`'s stage: it never runs beside `a`.
        assert!(at("end a") < at("start e"), "{log:?}");
    }

    #[test]
    fn one_job_runs_in_order_and_a_failure_stops_the_rest() {
        let (m, ids) = dag();
        let opts = BuildOptions {
            jobs: 1,
            ..BuildOptions::default()
        };
        let order = Mutex::new(Vec::new());
        let err = schedule(&m, &ids, &opts, |pi| {
            let name = m.pipelines[pi].name.clone();
            order.lock().unwrap().push(name.clone());
            if name == "c" {
                return Err(BuildError::Plan("c broke".into()));
            }
            Ok(one_report(&name))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "c broke");
        assert_eq!(*order.lock().unwrap(), ["a", "b", "c"]);
    }

    #[test]
    fn a_pipeline_needing_a_later_one_is_an_error() {
        // `Manifest::from_json` refuses this order; `schedule` must not hang on it either.
        let pipeline = |name: &str, build: &str| kiln_manifest::Pipeline {
            name: name.into(),
            build: Some(build.into()),
            source_epoch: None,
            stages: vec![kiln_manifest::Stage {
                kind: "tree.normalize".into(),
                options: serde_json::json!({}),
                inputs: BTreeMap::new(),
            }],
        };
        let m = Manifest {
            version: 1,
            metadata: Default::default(),
            sources: BTreeMap::new(),
            pipelines: vec![pipeline("x", "y"), pipeline("y", "x")],
            exports: Vec::new(),
        };
        let ids: Vec<_> = m
            .pipelines
            .iter()
            .map(|p| kiln_manifest::PipelineIds {
                name: p.name.clone(),
                stages: vec![p.name.clone()],
            })
            .collect();
        let err = schedule(&m, &ids, &BuildOptions::default(), |_| Ok(Vec::new())).unwrap_err();
        assert!(err.to_string().contains("pipeline \"x\""), "{err}");
    }

    #[test]
    fn the_log_keeps_every_line_and_the_error_the_last_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(Some(dir.path()), "o s/x", 2, "deb.install").unwrap();
        assert_eq!(path, dir.path().join("logs/o_s_x-2-deb.install.log"));
        let mut log = StageLog::create(Some(path.clone()), "# header", &mut |w| panic!("{w}"));
        for i in 0..100 {
            log.line(&format!("line {i}"));
        }
        log.finish("# failed");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 102);
        let tail: Vec<String> = log.tail.iter().cloned().collect();
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail[0], format!("line {}", 100 - TAIL_LINES));
        assert_eq!(tail[TAIL_LINES - 1], "line 99");
        let shown = StageFailure {
            pipeline: "os".into(),
            index: 2,
            kind: "deb.install".into(),
            id: "x".into(),
            message: "boom".into(),
            output: tail,
            log: Some(path),
            kept: None,
            keep_error: None,
        }
        .to_string();
        assert!(shown.starts_with("pipeline \"os\", stage 2 (deb.install) failed: boom\n"));
        assert!(!shown.contains("line 69\n") && shown.contains("line 70\n"));
        assert!(shown.contains("last 30 line(s)"), "{shown}");
        assert_eq!(file_part(".."), "___");
    }
}
