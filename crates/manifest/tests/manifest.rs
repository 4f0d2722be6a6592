use kiln_manifest::{
    Input, Manifest, ManifestError, Pipeline, SourceItem, Stage, to_canonical_json,
};
use serde_json::json;

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn stage(kind: &str, options: serde_json::Value) -> Stage {
    Stage {
        kind: kind.into(),
        options,
        inputs: Default::default(),
    }
}

fn sample() -> Manifest {
    let mut m = Manifest::new();
    m.sources.insert(
        D1.into(),
        SourceItem {
            urls: vec!["http://127.0.0.1/pool/a.deb".into()],
            size: 10,
        },
    );
    let mut unpack = stage("deb.unpack", json!({}));
    unpack.inputs.insert(
        "packages".into(),
        Input::Sources {
            refs: vec![D1.into()],
        },
    );
    m.pipelines.push(Pipeline {
        name: "build".into(),
        build: None,
        source_epoch: Some(1_700_000_000),
        stages: vec![unpack.clone()],
    });
    m.pipelines.push(Pipeline {
        name: "os".into(),
        build: Some("build".into()),
        source_epoch: Some(1_700_000_000),
        stages: vec![
            unpack,
            stage("hostname", json!({"hostname": "a"})),
            stage("timezone", json!({"zone": "UTC"})),
        ],
    });
    let mut tar = stage("archive.tar", json!({"filename": "root.tar"}));
    tar.inputs
        .insert("tree".into(), Input::Pipeline { name: "os".into() });
    m.pipelines.push(Pipeline {
        name: "tar".into(),
        build: Some("build".into()),
        source_epoch: Some(1_700_000_000),
        stages: vec![tar],
    });
    m
}

fn ids(m: &Manifest) -> Vec<Vec<String>> {
    m.stage_ids(|_| Some(1))
        .unwrap()
        .into_iter()
        .map(|p| p.stages)
        .collect()
}

#[test]
fn canonical_json_is_independent_of_key_order() {
    let a = json!({"b": 1, "a": {"y": [1, 2], "x": "s\"q"}});
    let b: serde_json::Value =
        serde_json::from_str(r#"{"a":{"x":"s\"q","y":[1,2]},"b":1}"#).unwrap();
    assert_eq!(to_canonical_json(&a), to_canonical_json(&b));
    assert_eq!(
        String::from_utf8(to_canonical_json(&a)).unwrap(),
        r#"{"a":{"x":"s\"q","y":[1,2]},"b":1}"#
    );
}

#[test]
fn round_trip_and_digest_are_stable() {
    let m = sample();
    let bytes = m.to_canonical_json();
    let back = Manifest::from_json(&bytes).unwrap();
    assert_eq!(back, m);
    assert_eq!(back.to_canonical_json(), bytes);
    assert_eq!(back.digest(), m.digest());
    let pretty = Manifest::from_json(m.to_pretty_json().as_bytes()).unwrap();
    assert_eq!(pretty.digest(), m.digest());
}

#[test]
fn changing_a_stage_changes_it_and_what_follows_only() {
    let m = sample();
    let before = ids(&m);
    let mut changed = m.clone();
    changed.pipelines[1].stages[1].options = json!({"hostname": "b"});
    let after = ids(&changed);
    assert_eq!(before[0], after[0], "build pipeline untouched");
    assert_eq!(
        before[1][0], after[1][0],
        "stages before the change keep their id"
    );
    assert_ne!(before[1][1], after[1][1]);
    assert_ne!(before[1][2], after[1][2], "a later stage's parent changed");
    assert_ne!(
        before[2][0], after[2][0],
        "a pipeline consuming the tree changes"
    );
}

#[test]
fn ids_depend_on_build_root_epoch_and_implementation() {
    let m = sample();
    let base = ids(&m);
    let mut other_build = m.clone();
    other_build.pipelines[0].stages[0].options = json!({"variant": "x"});
    assert_ne!(
        ids(&other_build)[1][1],
        base[1][1],
        "the build root is part of the id"
    );
    let mut epoch = m.clone();
    epoch.pipelines[1].source_epoch = Some(1);
    assert_ne!(ids(&epoch)[1][0], base[1][0]);
    let v2: Vec<_> = m
        .stage_ids(|k| Some(if k == "timezone" { 2 } else { 1 }))
        .unwrap()
        .into_iter()
        .map(|p| p.stages)
        .collect();
    assert_eq!(v2[1][1], base[1][1]);
    assert_ne!(
        v2[1][2], base[1][2],
        "a new stage implementation invalidates its outputs"
    );
    assert_eq!(
        m.stage_ids(|k| (k != "hostname").then_some(1)).unwrap_err(),
        ManifestError::UnknownStage {
            pipeline: "os".into(),
            kind: "hostname".into()
        }
    );
}

#[test]
fn validation_rejects_dangling_references() {
    let mut m = sample();
    m.pipelines[1].build = Some("later".into());
    assert!(m.validate().unwrap_err().to_string().contains("later"));

    let mut m = sample();
    m.pipelines.swap(1, 2);
    let err = m.validate().unwrap_err().to_string();
    assert!(err.contains("\"os\""), "{err}");

    let mut m = sample();
    m.pipelines[0].stages[0].inputs.insert(
        "more".into(),
        Input::Sources {
            refs: vec![format!("sha256:{}", "2".repeat(64))],
        },
    );
    assert!(
        m.validate()
            .unwrap_err()
            .to_string()
            .contains("not in `sources`")
    );

    let mut m = sample();
    m.sources.insert(
        "md5:abc".into(),
        SourceItem {
            urls: vec!["x".into()],
            size: 1,
        },
    );
    assert!(matches!(m.validate(), Err(ManifestError::Source { .. })));

    let err = Manifest::from_json(br#"{"version": 9, "pipelines": []}"#).unwrap_err();
    assert_eq!(err, ManifestError::Version { found: 9 });
    let err = Manifest::from_json(br#"{"version": 1, "pipelines": [], "extra": 1}"#).unwrap_err();
    assert!(err.to_string().contains("extra"), "{err}");
}
