//! Build manifests.
//!
//! A manifest is the only input of a build: every download pinned by sha256, every
//! option (UUIDs, seeds, `SOURCE_DATE_EPOCH`) written out, so the builder never invents a
//! value. It is a list of pipelines; a pipeline is an ordered list of stages, optionally
//! run with the tools of another (build) pipeline's tree. Stages take inputs: downloads
//! (`sources`) or another pipeline's finished tree.
//!
//! Each stage has a content-addressed id, a Merkle chain over what determines its
//! output: `sha256(canonical JSON of {kind, implementation version, options, input ids,
//! parent stage id, build pipeline id, source epoch})`. A pipeline's id is its last
//! stage's id. Equal ids mean equal outputs, which is what lets the store reuse them.

mod canonical;

pub use canonical::to_canonical_json;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap};
use thiserror::Error;

/// The manifest format version this crate reads and writes.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("the manifest is not valid JSON or has the wrong shape: {0}")]
    Json(String),
    #[error(
        "manifest format version {found} is not supported (this kiln reads version {FORMAT_VERSION})"
    )]
    Version { found: u32 },
    #[error("pipeline {pipeline:?}: {message}")]
    Pipeline { pipeline: String, message: String },
    #[error("source {digest:?}: {message}")]
    Source { digest: String, message: String },
    #[error("stage kind {kind:?} (pipeline {pipeline:?}) is not known to this kiln")]
    UnknownStage { pipeline: String, kind: String },
}

/// A download: where to get it and how big it is. Keyed by `sha256:<hex>` in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceItem {
    /// Mirrors to try in order.
    pub urls: Vec<String>,
    pub size: u64,
}

/// What a stage reads besides its own tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Input {
    /// Downloads, by digest, in the given order.
    Sources { refs: Vec<String> },
    /// The finished tree of another pipeline.
    Pipeline { name: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// The stage implementation, e.g. `deb.unpack`, `hostname`, `archive.tar`.
    pub kind: String,
    /// A JSON object; absent means `{}`.
    #[serde(default = "empty_object", skip_serializing_if = "is_empty_object")]
    pub options: serde_json::Value,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, Input>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

fn is_empty_object(v: &serde_json::Value) -> bool {
    v.is_null() || v.as_object().is_some_and(|o| o.is_empty())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    pub name: String,
    /// The pipeline whose tree provides the tools this one runs (`None`: no tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// `SOURCE_DATE_EPOCH` for the stages: clamps mtimes, seeds timestamps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_epoch: Option<u64>,
    pub stages: Vec<Stage>,
}

/// A file a pipeline produces for the user (an image, an archive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Export {
    pub pipeline: String,
    /// Path of the file inside the pipeline's tree; also the artifact's file name.
    pub filename: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mime: String,
}

/// Information about how the manifest was made; not part of any stage id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub generator: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    #[serde(default, skip_serializing_if = "is_default_metadata")]
    pub metadata: Metadata,
    #[serde(default)]
    pub sources: BTreeMap<String, SourceItem>,
    pub pipelines: Vec<Pipeline>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exports: Vec<Export>,
}

fn is_default_metadata(m: &Metadata) -> bool {
    *m == Metadata::default()
}

/// The ids of one pipeline's stages, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineIds {
    pub name: String,
    pub stages: Vec<String>,
}

impl PipelineIds {
    /// The pipeline's id: its last stage's id (an empty pipeline hashes its name away:
    /// it has no output worth sharing).
    pub fn id(&self) -> Option<&str> {
        self.stages.last().map(String::as_str)
    }
}

impl Manifest {
    pub fn new() -> Manifest {
        Manifest {
            version: FORMAT_VERSION,
            metadata: Metadata::default(),
            sources: BTreeMap::new(),
            pipelines: Vec::new(),
            exports: Vec::new(),
        }
    }

    /// Parses and validates a manifest.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let v: VersionOnly =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        if v.version != FORMAT_VERSION {
            return Err(ManifestError::Version { found: v.version });
        }
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    /// The canonical serialization: sorted keys, no insignificant white space. The same
    /// content always gives the same bytes.
    pub fn to_canonical_json(&self) -> Vec<u8> {
        let value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        to_canonical_json(&value)
    }

    /// Pretty JSON for people (keys sorted too, so diffs between manifests are stable).
    pub fn to_pretty_json(&self) -> String {
        let value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        serde_json::to_string_pretty(&value).unwrap_or_default()
    }

    /// The sha256 of the canonical serialization, as `sha256:<hex>`.
    pub fn digest(&self) -> String {
        format!("sha256:{}", hex(&Sha256::digest(self.to_canonical_json())))
    }

    /// Checks references: unique pipeline names, build pipelines and pipeline inputs
    /// defined earlier, source references present, digests well-formed.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.version != FORMAT_VERSION {
            return Err(ManifestError::Version {
                found: self.version,
            });
        }
        for (digest, item) in &self.sources {
            if !is_sha256_digest(digest) {
                return Err(ManifestError::Source {
                    digest: digest.clone(),
                    message: "a source key must be `sha256:` followed by 64 lowercase hex digits"
                        .into(),
                });
            }
            if item.urls.is_empty() {
                return Err(ManifestError::Source {
                    digest: digest.clone(),
                    message: "no URL to download it from".into(),
                });
            }
        }
        let mut seen: Vec<&str> = Vec::new();
        for p in &self.pipelines {
            let bad = |message: String| ManifestError::Pipeline {
                pipeline: p.name.clone(),
                message,
            };
            if p.name.is_empty()
                || !p
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(bad("a pipeline name must be non-empty and use only letters, digits, `-`, `_` and `.`".into()));
            }
            if seen.contains(&p.name.as_str()) {
                return Err(bad("defined twice".into()));
            }
            if let Some(b) = &p.build
                && !seen.contains(&b.as_str())
            {
                return Err(bad(format!(
                    "its build pipeline {b:?} must be defined before it"
                )));
            }
            for (i, stage) in p.stages.iter().enumerate() {
                if !stage.options.is_null() && !stage.options.is_object() {
                    return Err(bad(format!(
                        "stage {i} ({}): options must be a JSON object",
                        stage.kind
                    )));
                }
                for (name, input) in &stage.inputs {
                    match input {
                        Input::Pipeline { name: dep } if !seen.contains(&dep.as_str()) => {
                            return Err(bad(format!(
                                "stage {i} ({}): input {name:?} refers to pipeline {dep:?}, which is not defined before it",
                                stage.kind
                            )));
                        }
                        Input::Sources { refs } => {
                            if let Some(r) = refs.iter().find(|r| !self.sources.contains_key(*r)) {
                                return Err(bad(format!(
                                    "stage {i} ({}): input {name:?} refers to {r}, which is not in `sources`",
                                    stage.kind
                                )));
                            }
                        }
                        Input::Pipeline { .. } => {}
                    }
                }
            }
            seen.push(&p.name);
        }
        for e in &self.exports {
            if !seen.contains(&e.pipeline.as_str()) {
                return Err(ManifestError::Pipeline {
                    pipeline: e.pipeline.clone(),
                    message: "exported but not defined".into(),
                });
            }
        }
        Ok(())
    }

    /// Computes every stage's id. `impl_version(kind)` gives the version of the stage
    /// implementation that will run it (bumped whenever its output would change), or
    /// `None` for an unknown kind.
    pub fn stage_ids(
        &self,
        impl_version: impl Fn(&str) -> Option<u32>,
    ) -> Result<Vec<PipelineIds>, ManifestError> {
        self.validate()?;
        let mut out: Vec<PipelineIds> = Vec::with_capacity(self.pipelines.len());
        let mut pipeline_id: HashMap<&str, Option<String>> = HashMap::new();
        for p in &self.pipelines {
            let build = p
                .build
                .as_deref()
                .and_then(|b| pipeline_id.get(b).cloned().flatten());
            let mut parent: Option<String> = None;
            let mut ids = Vec::with_capacity(p.stages.len());
            for stage in &p.stages {
                let version =
                    impl_version(&stage.kind).ok_or_else(|| ManifestError::UnknownStage {
                        pipeline: p.name.clone(),
                        kind: stage.kind.clone(),
                    })?;
                let inputs: BTreeMap<&str, serde_json::Value> = stage
                    .inputs
                    .iter()
                    .map(|(name, input)| {
                        let v = match input {
                            Input::Sources { refs } => serde_json::json!({ "sources": refs }),
                            Input::Pipeline { name } => serde_json::json!({
                                "tree": pipeline_id.get(name.as_str()).cloned().flatten()
                            }),
                        };
                        (name.as_str(), v)
                    })
                    .collect();
                let identity = serde_json::json!({
                    "kind": stage.kind,
                    "version": version,
                    "options": if stage.options.is_null() { serde_json::json!({}) } else { stage.options.clone() },
                    "inputs": inputs,
                    "parent": parent,
                    "build": build,
                    "source_epoch": p.source_epoch,
                });
                let id = hex(&Sha256::digest(to_canonical_json(&identity)));
                parent = Some(id.clone());
                ids.push(id);
            }
            pipeline_id.insert(&p.name, parent);
            out.push(PipelineIds {
                name: p.name.clone(),
                stages: ids,
            });
        }
        Ok(out)
    }
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest::new()
    }
}

fn is_sha256_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
