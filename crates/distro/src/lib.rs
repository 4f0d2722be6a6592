//! kiln-distro: the only place that maps blueprints to stages.
//!
//! [`manifest`] turns a blueprint, a distro, an architecture, an image type and the
//! depsolved packages into a [`Manifest`]. Image types so far:
//!
//! - `tar`: the root filesystem as a sorted, reproducible tar archive. Pipelines:
//!   `os` (`deb.install` of every package, `hostname` if the blueprint sets one,
//!   `tree.normalize`) and `tar` (`archive.tar` of `os` as `root.tar`), exporting
//!   `tar/root.tar`.
//!
//! A blueprint customization an image type cannot honour is an error, never ignored.
//!
//! `SOURCE_DATE_EPOCH` is an argument: the caller decides it (the kiln CLI uses the
//! `SOURCE_DATE_EPOCH` environment variable, else the newest `Date` of the Release files
//! the packages were resolved from, so that the same archive snapshot gives the same
//! manifest), and it is written in every pipeline.

use kiln_blueprint::Blueprint;
use kiln_manifest::{Export, Input, Manifest, Pipeline, SourceItem, Stage};
use std::collections::BTreeMap;

/// The image types kiln can make.
pub const IMAGE_TYPES: &[&str] = &["tar"];

/// A package chosen by depsolving, with where to get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPackage {
    pub name: String,
    pub version: String,
    /// Lowercase hex sha256 of the `.deb`.
    pub sha256: String,
    pub url: String,
    pub size: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DistroError {
    #[error("unknown image type {0:?} (kiln can make: {types})", types = IMAGE_TYPES.join(", "))]
    UnknownImageType(String),
    #[error("image type {image_type:?} does not support {what} yet; remove it from the blueprint")]
    Unsupported { image_type: String, what: String },
    #[error("package {name}: {message}")]
    Package { name: String, message: String },
}

/// The manifest of `image_type` for `bp`. `packages` must be the complete, dependency-
/// closed set to install (the blueprint's packages and the distro's Essential and
/// Priority: required ones, resolved).
pub fn manifest(
    bp: &Blueprint,
    distro: &str,
    arch: &str,
    image_type: &str,
    packages: &[ResolvedPackage],
    source_epoch: u64,
) -> Result<Manifest, DistroError> {
    if !IMAGE_TYPES.contains(&image_type) {
        return Err(DistroError::UnknownImageType(image_type.to_owned()));
    }
    check_supported(bp, image_type)?;

    let mut m = Manifest::new();
    m.metadata.generator = format!("kiln-distro {}", env!("CARGO_PKG_VERSION"));
    let labels = &mut m.metadata.labels;
    labels.insert("blueprint".into(), bp.name.clone());
    if let Some(v) = &bp.version {
        labels.insert("blueprint-version".into(), v.clone());
    }
    labels.insert("distro".into(), distro.to_owned());
    labels.insert("arch".into(), arch.to_owned());
    labels.insert("image-type".into(), image_type.to_owned());

    let mut sorted: Vec<&ResolvedPackage> = packages.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name).then(a.version.cmp(&b.version)));
    let mut refs = Vec::with_capacity(sorted.len());
    for p in sorted {
        let hex = p.sha256.to_ascii_lowercase();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DistroError::Package {
                name: p.name.clone(),
                message: format!("invalid sha256 {:?}", p.sha256),
            });
        }
        let key = format!("sha256:{hex}");
        m.sources.insert(
            key.clone(),
            SourceItem {
                urls: vec![p.url.clone()],
                size: p.size,
            },
        );
        refs.push(key);
    }

    let mut os = vec![Stage {
        kind: "deb.install".into(),
        options: serde_json::json!({ "arch": arch }),
        inputs: BTreeMap::from([("packages".to_owned(), Input::Sources { refs })]),
    }];
    if let Some(h) = bp.customizations.as_ref().and_then(|c| c.hostname.as_ref()) {
        os.push(Stage {
            kind: "hostname".into(),
            options: serde_json::json!({ "hostname": h }),
            inputs: BTreeMap::new(),
        });
    }
    os.push(Stage {
        kind: "tree.normalize".into(),
        options: serde_json::json!({}),
        inputs: BTreeMap::new(),
    });
    m.pipelines.push(Pipeline {
        name: "os".into(),
        build: None,
        source_epoch: Some(source_epoch),
        stages: os,
    });
    m.pipelines.push(Pipeline {
        name: "tar".into(),
        build: None,
        source_epoch: Some(source_epoch),
        stages: vec![Stage {
            kind: "archive.tar".into(),
            options: serde_json::json!({ "filename": "root.tar" }),
            inputs: BTreeMap::from([("tree".to_owned(), Input::Pipeline { name: "os".into() })]),
        }],
    });
    m.exports.push(Export {
        pipeline: "tar".into(),
        filename: "root.tar".into(),
        mime: "application/x-tar".into(),
    });
    Ok(m)
}

/// Errors for every part of `bp` that `image_type` cannot honour yet.
fn check_supported(bp: &Blueprint, image_type: &str) -> Result<(), DistroError> {
    let unsupported = |what: String| DistroError::Unsupported {
        image_type: image_type.to_owned(),
        what,
    };
    if !bp.groups.is_empty() {
        return Err(unsupported("package groups ([[groups]])".into()));
    }
    if !bp.containers.is_empty() {
        return Err(unsupported("containers ([[containers]])".into()));
    }
    if !bp.enabled_modules.is_empty() {
        return Err(unsupported("enabled modules ([[enabled_modules]])".into()));
    }
    if let Some(c) = &bp.customizations {
        let value = serde_json::to_value(c).unwrap_or_default();
        if let Some(obj) = value.as_object() {
            let other: Vec<String> = obj
                .keys()
                .filter(|k| k.as_str() != "hostname")
                .map(|k| format!("customizations.{k}"))
                .collect();
            if !other.is_empty() {
                return Err(unsupported(other.join(", ")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, byte: char) -> ResolvedPackage {
        ResolvedPackage {
            name: name.into(),
            version: "1.0-1".into(),
            sha256: byte.to_string().repeat(64),
            url: format!("http://archive.invalid/pool/{name}_1.0-1_amd64.deb"),
            size: 10,
        }
    }

    fn bp(text: &str) -> Blueprint {
        Blueprint::from_toml_validated(text).unwrap()
    }

    #[test]
    fn tar_manifest_shape() {
        let b = bp(
            "name = \"t\"\n[[packages]]\nname = \"bash\"\n[customizations]\nhostname = \"box\"\n",
        );
        let m = manifest(
            &b,
            "debian-12",
            "amd64",
            "tar",
            &[pkg("dash", 'b'), pkg("bash", 'a')],
            1_700_000_000,
        )
        .unwrap();
        m.validate().unwrap();
        let kinds: Vec<Vec<&str>> = m
            .pipelines
            .iter()
            .map(|p| p.stages.iter().map(|s| s.kind.as_str()).collect())
            .collect();
        assert_eq!(
            kinds,
            [
                vec!["deb.install", "hostname", "tree.normalize"],
                vec!["archive.tar"]
            ]
        );
        assert_eq!(m.sources.len(), 2);
        match &m.pipelines[0].stages[0].inputs["packages"] {
            Input::Sources { refs } => assert!(refs[0].starts_with("sha256:aaaa")),
            other => panic!("{other:?}"),
        }
        assert!(
            m.pipelines
                .iter()
                .all(|p| p.source_epoch == Some(1_700_000_000))
        );
        assert_eq!(m.exports[0].filename, "root.tar");
        // Same inputs, same bytes.
        let again = manifest(
            &b,
            "debian-12",
            "amd64",
            "tar",
            &[pkg("bash", 'a'), pkg("dash", 'b')],
            1_700_000_000,
        )
        .unwrap();
        assert_eq!(m.to_canonical_json(), again.to_canonical_json());
        // Round trip.
        assert_eq!(Manifest::from_json(&m.to_canonical_json()).unwrap(), m);
    }

    #[test]
    fn no_hostname_no_stage() {
        let m = manifest(&bp("name = \"t\"\n"), "debian-12", "amd64", "tar", &[], 0).unwrap();
        assert_eq!(m.pipelines[0].stages.len(), 2);
    }

    #[test]
    fn unsupported_customizations_and_types_are_errors() {
        let b = bp("name = \"t\"\n[customizations.timezone]\ntimezone = \"UTC\"\n");
        let e = manifest(&b, "debian-12", "amd64", "tar", &[], 0).unwrap_err();
        assert!(e.to_string().contains("customizations.timezone"), "{e}");
        let e = manifest(&bp("name = \"t\"\n"), "debian-12", "amd64", "qcow2", &[], 0).unwrap_err();
        assert!(matches!(e, DistroError::UnknownImageType(_)));
    }
}
