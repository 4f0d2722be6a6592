//! Lossless round trips: TOML → model → TOML → model, and → JSON → model, give the same model;
//! the written TOML keeps osbuild's key order and the user's size spellings.

mod common;

use common::{data, toml_corpus};
use kiln_blueprint::{
    Blueprint, Customizations, FilesystemCustomization, Package, Size, UserCustomization,
};
use proptest::prelude::*;

#[track_caller]
fn assert_round_trips(bp: &Blueprint) {
    let toml = bp.to_toml().expect("to_toml");
    let back = Blueprint::from_toml(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    assert_eq!(&back, bp, "TOML round trip:\n{toml}");
    assert_eq!(back.to_toml().unwrap(), toml, "TOML output is stable");
    let json = bp.to_json().expect("to_json");
    let back = Blueprint::from_json(&json).unwrap_or_else(|e| panic!("{e}\n{json}"));
    assert_eq!(&back, bp, "JSON round trip:\n{json}");
}

#[test]
fn corpus_round_trips() {
    for (name, src) in toml_corpus() {
        let bp = Blueprint::from_toml(&src).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_round_trips(&bp);
    }
    let bp = Blueprint::from_json(&data("minimal.json")).unwrap();
    assert_round_trips(&bp);
}

#[test]
fn full_toml_written_back_in_osbuild_order() {
    let bp = Blueprint::from_toml(&data("full.toml")).unwrap();
    let out = bp.to_toml().unwrap();
    let pos = |needle: &str| {
        out.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing from\n{out}"))
    };
    let order = [
        "name = \"web-server\"",
        "description = ",
        "version = \"1.2.3\"",
        "distro = \"debian-13\"",
        "architecture = ",
        "[[packages]]",
        "[[modules]]",
        "[[enabled_modules]]",
        "[[groups]]",
        "[[containers]]",
        "[customizations]",
    ];
    for w in order.windows(2) {
        assert!(pos(w[0]) < pos(w[1]), "{} before {}\n{out}", w[0], w[1]);
    }
    assert!(out.starts_with("name = \"web-server\"\n"), "{out}");
    // Sizes keep the spelling the user chose.
    assert!(out.contains("minsize = \"20 GiB\""), "{out}");
    assert!(out.contains("minsize = 2147483648"), "{out}");
    assert!(out.contains("minsize = \"2.5 GiB\""), "{out}");
    // Keys with hyphens are written with hyphens.
    for key in [
        "tls-verify",
        "local-storage",
        "sudo-nopasswd",
        "menu-timeout",
        "[customizations.containers-storage]",
        "destination-path",
    ] {
        assert!(out.contains(key), "{key} missing\n{out}");
    }
    // Absent keys stay absent.
    assert!(!out.contains("minimal"), "{out}");
    assert_eq!(out.matches("type = \"plain\"").count(), 1, "{out}");
}

#[test]
fn json_keys_match_osbuild() {
    let bp = Blueprint::from_toml(&data("full.toml")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&bp.to_json().unwrap()).unwrap();
    let c = &v["customizations"];
    assert_eq!(
        c["containers-storage"]["destination-path"],
        "/var/lib/containers/storage"
    );
    assert_eq!(c["installer"]["sudo-nopasswd"][0], "admin");
    assert_eq!(c["installer"]["bootloader"]["grub2"]["menu-timeout"], 10);
    assert_eq!(c["disk"]["partitions"][3]["type"], "lvm");
    assert_eq!(c["disk"]["partitions"][2]["minsize"], 2_147_483_648_u64);
    assert_eq!(c["firstboot"]["scripts"][2]["type"], "aap");
    assert_eq!(v["containers"][0]["tls-verify"], true);
    assert_eq!(c["directories"][1]["user"], 1200);
    assert!(v.get("minimal").is_none());
    // serde_json::Value sorts keys, so check the order on the text itself.
    let json = bp.to_json().unwrap();
    let at = |k: &str| {
        json.find(&format!("\n  \"{k}\":"))
            .unwrap_or_else(|| panic!("{k}"))
    };
    let order = [
        "name",
        "description",
        "version",
        "distro",
        "architecture",
        "packages",
        "customizations",
    ];
    for w in order.windows(2) {
        assert!(at(w[0]) < at(w[1]), "{} before {}", w[0], w[1]);
    }
}

#[test]
fn empty_and_absent_are_preserved() {
    let src = "name = \"x\"\ndescription = \"\"\n[customizations]\n[customizations.kernel]\n";
    let bp = Blueprint::from_toml(src).unwrap();
    assert_eq!(bp.description.as_deref(), Some(""));
    assert!(bp.version.is_none());
    assert_eq!(
        bp.customizations.as_ref().unwrap().kernel,
        Some(Default::default())
    );
    assert_round_trips(&bp);
}

fn text() -> impl Strategy<Value = String> {
    // Anything printable plus the characters that need escaping in TOML and JSON.
    prop_oneof![
        "[a-zA-Z0-9 ._/-]{0,16}",
        "\\PC{0,12}",
        "[\\x00-\\x1f\\x7f\\u{85}\\u{2028}]{0,4}",
        Just("quote \" backslash \\ tab \t newline \n".to_owned()),
        Just("'''\"\"\"".to_owned()),
    ]
}

fn size() -> impl Strategy<Value = Size> {
    prop_oneof![
        (0u64..=(i64::MAX as u64)).prop_map(|b| Size::from_bytes(b).unwrap()),
        (
            0u64..1_000_000,
            prop::sample::select(vec![
                "", " ", "kB", " KiB", "MB", " MiB", "GB", "GiB", "TB", " TiB"
            ])
        )
            .prop_map(|(n, u)| Size::parse(&format!("{n}{u}")).unwrap()),
    ]
}

prop_compose! {
    fn user()(name in "[a-z_][a-z0-9_-]{0,10}", password in prop::option::of(text()),
              home in prop::option::of(text()), groups in prop::collection::vec(text(), 0..3),
              uid in prop::option::of(any::<i64>()), reset in prop::option::of(any::<bool>()))
              -> UserCustomization {
        UserCustomization { name, password, home, groups, uid, force_password_reset: reset, ..Default::default() }
    }
}

prop_compose! {
    fn blueprint()(name in text(), description in prop::option::of(text()),
                   version in prop::option::of(text()),
                   packages in prop::collection::vec((text(), prop::option::of(text())), 0..4),
                   users in prop::collection::vec(user(), 0..3),
                   fs in prop::collection::vec((text(), prop::option::of(size()), prop::option::of(size())), 0..3),
                   hostname in prop::option::of(text()),
                   with_custom in any::<bool>()) -> Blueprint {
        let customizations = with_custom.then(|| Customizations {
            hostname,
            user: users,
            filesystem: fs.into_iter().map(|(mountpoint, minsize, size)| FilesystemCustomization { mountpoint, minsize, size }).collect(),
            ..Default::default()
        });
        Blueprint {
            name, description, version,
            packages: packages.into_iter().map(|(name, version)| Package { name, version }).collect(),
            customizations,
            ..Default::default()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn generated_blueprints_round_trip(bp in blueprint()) {
        assert_round_trips(&bp);
    }

    #[test]
    fn size_strings_round_trip(s in size()) {
        let again = match s.repr() {
            kiln_blueprint::SizeRepr::Number => Size::from_bytes(s.bytes()).unwrap(),
            kiln_blueprint::SizeRepr::Text(t) => Size::parse(t).unwrap(),
        };
        prop_assert_eq!(&again, &s);
        prop_assert_eq!(again.to_string(), s.to_string());
    }
}
