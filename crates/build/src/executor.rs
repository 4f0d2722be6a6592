//! Builds a manifest: fetches the missing sources, resumes every pipeline from the longest
//! prefix of its stages already in the store, runs and commits the remaining stages, and
//! copies the exports to the output directory.

use crate::events::Event;
use crate::fetch::{FetchItem, fetch_all};
use crate::stages::{self, InputData, StageContext};
use kiln_manifest::{Input, Manifest};
use kiln_store::{CommitMeta, Sha256Digest, Store, TreeRef};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
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
    /// The `bwrap` binary for sandboxed stages (default: from `PATH`).
    pub bwrap: Option<PathBuf>,
    /// Parallel downloads (0: 4).
    pub fetch_jobs: usize,
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
    pub seconds: f64,
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
    #[error("pipeline {pipeline:?}, stage {index} ({kind}) failed: {message}")]
    Stage {
        pipeline: String,
        index: usize,
        kind: String,
        message: String,
    },
    #[error("export {filename:?} of pipeline {pipeline:?}: {message}")]
    Export {
        pipeline: String,
        filename: String,
        message: String,
    },
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

    let mut report = BuildReport {
        fetched,
        ..BuildReport::default()
    };
    // The committed output tree of every finished pipeline (pinned while we hold it).
    let mut outputs: HashMap<String, TreeRef> = HashMap::new();
    for (pi, p) in manifest.pipelines.iter().enumerate() {
        let pids = &ids[pi].stages;
        let total = p.stages.len();
        let mut last: Option<TreeRef> = None;
        for (i, (stage, id)) in p.stages.iter().zip(pids).enumerate().take(resume[pi]) {
            report.stages.push(StageReport {
                pipeline: p.name.clone(),
                index: i,
                kind: stage.kind.clone(),
                id: id.clone(),
                status: StageStatus::Cached,
                seconds: 0.0,
            });
            emit(Event::StageDone {
                pipeline: p.name.clone(),
                stage: stage.kind.clone(),
                index: i,
                total,
                id: id.clone(),
                cached: true,
                seconds: 0.0,
            });
        }
        if resume[pi] > 0 {
            last = store.lookup_tree(&pids[resume[pi] - 1])?;
            if last.is_none() {
                // Evicted since we planned: rebuild the pipeline from its start.
                report.stages.retain(|s| s.pipeline != p.name);
                resume[pi] = 0;
            }
        }
        for (i, (stage, id)) in p.stages.iter().zip(pids).enumerate().skip(resume[pi]) {
            let stage_err = |message: String| BuildError::Stage {
                pipeline: p.name.clone(),
                index: i,
                kind: stage.kind.clone(),
                message,
            };
            emit(Event::StageStart {
                pipeline: p.name.clone(),
                stage: stage.kind.clone(),
                index: i,
                total,
                id: id.clone(),
            });
            let t = Instant::now();
            let mut inputs = BTreeMap::new();
            for (name, input) in &stage.inputs {
                let data = match input {
                    Input::Sources { refs } => {
                        let mut files = Vec::with_capacity(refs.len());
                        for r in refs {
                            let d = parse_digest(r).map_err(&stage_err)?;
                            let path = store.blob_path(&d).ok_or_else(|| {
                                stage_err(format!("source {r} is not in the store"))
                            })?;
                            files.push(path);
                        }
                        InputData::Files(files)
                    }
                    Input::Pipeline { name: dep } => {
                        let tree = outputs.get(dep).ok_or_else(|| {
                            stage_err(format!("input pipeline {dep:?} has no output tree"))
                        })?;
                        InputData::Tree(tree.path())
                    }
                };
                inputs.insert(name.clone(), data);
            }
            let builder = match &last {
                None => store.begin_tree()?,
                Some(parent) => store.begin_tree_from(parent.id())?,
            };
            let mut log = |line: &str| {
                emit(Event::Log {
                    pipeline: p.name.clone(),
                    stage: stage.kind.clone(),
                    message: line.to_owned(),
                })
            };
            let mut ctx = StageContext {
                tree: builder.path(),
                options: &stage.options,
                inputs,
                source_epoch: p.source_epoch,
                bwrap: opts.bwrap.clone(),
                log: &mut log,
            };
            stages::run(&stage.kind, &mut ctx).map_err(&stage_err)?;
            let tree = store.commit_tree(builder, id, CommitMeta::new(stage.kind.clone()))?;
            let seconds = t.elapsed().as_secs_f64();
            emit(Event::StageDone {
                pipeline: p.name.clone(),
                stage: stage.kind.clone(),
                index: i,
                total,
                id: id.clone(),
                cached: false,
                seconds,
            });
            report.stages.push(StageReport {
                pipeline: p.name.clone(),
                index: i,
                kind: stage.kind.clone(),
                id: id.clone(),
                status: StageStatus::Ran,
                seconds,
            });
            last = Some(tree);
        }
        if let Some(tree) = last {
            outputs.insert(p.name.clone(), tree);
        }
    }

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
    let result = std::fs::copy(&src, &tmp)
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
