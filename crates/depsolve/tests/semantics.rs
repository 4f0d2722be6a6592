//! Solver semantics on small synthetic Packages files.

use kiln_deb::index::RelKind;
use kiln_deb::relation::Op;
use kiln_deb::{Index, IndexBuilder, version};
use kiln_depsolve::{PackageSpec, Request, Solution, SolveError, solve};
use proptest::prelude::*;

fn index(text: &str) -> Index {
    let mut b = IndexBuilder::new();
    b.add_packages(text.as_bytes())
        .expect("valid Packages text");
    Index::from_bytes(b.finish()).expect("valid index")
}

/// Stanzas from a compact form: `name version [Field: value]...` per line, fields
/// separated by ` ; `; the architecture defaults to amd64.
fn packages(spec: &str) -> String {
    let mut out = String::new();
    for line in spec.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut parts = line.split(" ; ");
        let head = parts.next().unwrap_or_default();
        let (name, version) = head.split_once(' ').expect("name version");
        out.push_str(&format!("Package: {name}\nVersion: {version}\n"));
        let mut has_arch = false;
        for field in parts {
            has_arch |= field.starts_with("Architecture:");
            out.push_str(field);
            out.push('\n');
        }
        if !has_arch {
            out.push_str("Architecture: amd64\n");
        }
        out.push('\n');
    }
    out
}

fn run(indexes: &[&Index], names: &[&str]) -> Result<Solution, SolveError> {
    solve(indexes, "amd64", &Request::new(names.iter().copied()))
}

/// `name=version` of each selected package, sorted.
fn installed(indexes: &[&Index], sol: &Solution) -> Vec<String> {
    sol.packages
        .iter()
        .map(|s| {
            let p = s.package(indexes).expect("selected package exists");
            format!("{}={}", p.name(), p.version())
        })
        .collect()
}

fn ok(indexes: &[&Index], names: &[&str]) -> Vec<String> {
    match run(indexes, names) {
        Ok(sol) => installed(indexes, &sol),
        Err(e) => panic!("{names:?} should be solvable: {e}"),
    }
}

fn unsat(indexes: &[&Index], names: &[&str]) -> String {
    match run(indexes, names) {
        Err(SolveError::Unsatisfiable { explanation }) => explanation,
        other => panic!("{names:?} should be unsatisfiable, got {other:?}"),
    }
}

#[test]
fn first_installable_alternative_wins() {
    let idx = index(&packages(
        "app 1 ; Depends: b | c
         b 1
         c 1",
    ));
    assert_eq!(ok(&[&idx], &["app"]), ["app=1", "b=1"]);

    // b cannot be installed (its dependency is missing): apt falls back to c.
    let idx = index(&packages(
        "app 1 ; Depends: b | c
         b 1 ; Depends: missing
         c 1",
    ));
    assert_eq!(ok(&[&idx], &["app"]), ["app=1", "c=1"]);
}

#[test]
fn real_package_before_virtual_alternative() {
    // `debconf (>= 0.5) | debconf-2.0`: the real package, written first, is taken.
    let idx = index(&packages(
        "app 1 ; Depends: debconf (>= 0.5) | debconf-2.0
         debconf 1.5 ; Provides: debconf-2.0
         cdebconf 0.2 ; Provides: debconf-2.0",
    ));
    assert_eq!(ok(&[&idx], &["app"]), ["app=1", "debconf=1.5"]);
}

#[test]
fn requested_provider_satisfies_a_virtual_alternative() {
    // `default-mta | mail-transport-agent` with postfix requested: apt keeps postfix and
    // does not pull in the default MTA.
    let idx = index(&packages(
        "mailer 1 ; Depends: default-mta | mail-transport-agent
         exim4 1 ; Provides: default-mta, mail-transport-agent ; Conflicts: mail-transport-agent
         postfix 1 ; Provides: mail-transport-agent ; Conflicts: mail-transport-agent",
    ));
    assert_eq!(ok(&[&idx], &["mailer"]), ["exim4=1", "mailer=1"]);
    assert_eq!(
        ok(&[&idx], &["mailer", "postfix"]),
        ["mailer=1", "postfix=1"]
    );
}

#[test]
fn versioned_provides() {
    let idx = index(&packages(
        "app 1 ; Depends: virt (>= 1.0)
         old 1 ; Provides: virt (= 0.9)
         new 1 ; Provides: virt (= 1.0)",
    ));
    assert_eq!(ok(&[&idx], &["app"]), ["app=1", "new=1"]);
}

#[test]
fn unversioned_provides_never_satisfies_a_versioned_dependency() {
    let idx = index(&packages(
        "app 1 ; Depends: virt (>= 1.0)
         prov 1 ; Provides: virt",
    ));
    let why = unsat(&[&idx], &["app"]);
    assert!(why.contains("app") && why.contains("virt"), "{why}");
    // Unversioned, it is fine.
    let idx = index(&packages(
        "app 1 ; Depends: virt
         prov 1 ; Provides: virt",
    ));
    assert_eq!(ok(&[&idx], &["app"]), ["app=1", "prov=1"]);
}

#[test]
fn conflicts_and_breaks_with_a_virtual_name_hit_all_providers() {
    let idx = index(&packages(
        "a 1 ; Conflicts: virt
         b 1 ; Provides: virt
         c 1 ; Breaks: virt
         d 1 ; Provides: virt",
    ));
    let why = unsat(&[&idx], &["a", "b"]);
    assert!(why.contains("a 1") && why.contains("b"), "{why}");
    assert!(why.contains("Conflicts: virt"), "{why}");
    let why = unsat(&[&idx], &["c", "d"]);
    assert!(why.contains("Breaks: virt"), "{why}");
    assert_eq!(ok(&[&idx], &["a", "c"]), ["a=1", "c=1"]);
}

#[test]
fn provides_conflicts_replaces_idiom_does_not_conflict_with_itself() {
    let idx = index(&packages(
        "mta-a 1 ; Provides: mta ; Conflicts: mta ; Replaces: mta
         mta-b 1 ; Provides: mta ; Conflicts: mta ; Replaces: mta
         app 1 ; Depends: mta",
    ));
    assert_eq!(ok(&[&idx], &["mta-a"]), ["mta-a=1"]);
    assert_eq!(ok(&[&idx], &["app", "mta-b"]), ["app=1", "mta-b=1"]);
    unsat(&[&idx], &["mta-a", "mta-b"]);
}

#[test]
fn versioned_breaks_selects_a_newer_version() {
    let main = index(&packages(
        "a 1 ; Breaks: b (<< 2)
         b 1",
    ));
    let updates = index(&packages("b 2"));
    assert_eq!(ok(&[&main, &updates], &["a", "b"]), ["a=1", "b=2"]);
    // With only the old version, they cannot be installed together.
    let why = unsat(&[&main], &["a", "b"]);
    assert!(why.contains("Breaks: b (<< 2)"), "{why}");
}

#[test]
fn multi_arch_any_needs_multi_arch_allowed() {
    let idx = index(&packages(
        "tool 1 ; Depends: python3:any
         python3 3.11 ; Multi-Arch: allowed
         tool2 1 ; Depends: perl:any
         perl 5.36",
    ));
    assert_eq!(ok(&[&idx], &["tool"]), ["python3=3.11", "tool=1"]);
    let why = unsat(&[&idx], &["tool2"]);
    assert!(why.contains("perl"), "{why}");
}

#[test]
fn multi_arch_any_through_provides_of_an_allowed_package() {
    let idx = index(&packages(
        "tool 1 ; Depends: python3-any-virt:any
         impl 1 ; Multi-Arch: allowed ; Provides: python3-any-virt
         tool2 1 ; Depends: other-virt:any
         impl2 1 ; Multi-Arch: foreign ; Provides: other-virt",
    ));
    assert_eq!(ok(&[&idx], &["tool"]), ["impl=1", "tool=1"]);
    unsat(&[&idx], &["tool2"]);
}

#[test]
fn architecture_qualifiers_and_arch_all() {
    let idx = index(&packages(
        "a 1 ; Depends: lib:amd64, data:native
         lib 1 ; Multi-Arch: same
         data 1 ; Architecture: all
         b 1 ; Depends: lib:i386
         lib 2 ; Architecture: i386",
    ));
    assert_eq!(ok(&[&idx], &["a"]), ["a=1", "data=1", "lib=1"]);
    // A foreign architecture is not available, and i386 packages are not ours.
    unsat(&[&idx], &["b"]);
}

#[test]
fn highest_version_across_indexes_and_first_index_for_duplicates() {
    let main = index(&packages(
        "a 1.0-1 ; Depends: b
         b 1.0",
    ));
    let security = index(&packages(
        "a 1.0-1+deb12u1 ; Depends: b
         b 1.0",
    ));
    let sol = run(&[&main, &security], &["a"]).unwrap();
    assert_eq!(
        installed(&[&main, &security], &sol),
        ["a=1.0-1+deb12u1", "b=1.0"]
    );
    let repos: Vec<usize> = sol.packages.iter().map(|s| s.repo).collect();
    // a comes from security (newer); b is in both with the same version: index 0 wins.
    assert_eq!(repos, [1, 0]);
}

#[test]
fn version_globs() {
    let idx = index(&packages(
        "web 2.4.57-2 ; Depends: lib (>= 1)
         web 2.6.1-1 ; Depends: lib (>= 1)
         lib 1:1.2-3",
    ));
    let req = |glob: &str, pkg: &str| Request {
        packages: vec![PackageSpec::with_version(pkg, glob)],
        recommends: false,
    };
    let got = |r: &Request| installed(&[&idx], &solve(&[&idx], "amd64", r).unwrap());
    assert_eq!(got(&req("2.4.*", "web")), ["lib=1:1.2-3", "web=2.4.57-2"]);
    assert_eq!(got(&req("*", "web")), ["lib=1:1.2-3", "web=2.6.1-1"]);
    assert_eq!(got(&req("2.6.1-1", "web")), ["lib=1:1.2-3", "web=2.6.1-1"]);
    // The epoch may be given or left out.
    assert_eq!(got(&req("1.2-3", "lib")), ["lib=1:1.2-3"]);
    assert_eq!(got(&req("1:1.2-*", "lib")), ["lib=1:1.2-3"]);
    match solve(&[&idx], "amd64", &req("3.*", "web")) {
        Err(e @ SolveError::NoMatchingVersion { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("web")
                    && msg.contains("3.*")
                    && msg.contains("2.4.57-2")
                    && msg.contains("2.6.1-1"),
                "{msg}"
            );
        }
        other => panic!("expected NoMatchingVersion, got {other:?}"),
    }
}

#[test]
fn a_glob_restricts_the_requested_package_only() {
    // Pinning web to 1.* forces the older lib its strict dependency wants.
    let idx = index(&packages(
        "web 1.0 ; Depends: lib (= 1.0)
         web 2.0 ; Depends: lib (= 2.0)
         lib 1.0
         lib 2.0",
    ));
    let r = Request {
        packages: vec![PackageSpec::with_version("web", "1.*")],
        recommends: false,
    };
    let sol = solve(&[&idx], "amd64", &r).unwrap();
    assert_eq!(installed(&[&idx], &sol), ["lib=1.0", "web=1.0"]);
}

#[test]
fn recommends_on_and_off() {
    let idx = index(&packages(
        "app 1 ; Depends: base ; Recommends: extra | alt, broken-rec
         base 1 ; Recommends: base-extra
         extra 1
         alt 1
         base-extra 1
         broken-rec 1 ; Depends: does-not-exist",
    ));
    assert_eq!(ok(&[&idx], &["app"]), ["app=1", "base=1"]);
    let with = Request {
        recommends: true,
        ..Request::new(["app"])
    };
    let sol = solve(&[&idx], "amd64", &with).unwrap();
    // Best effort: the uninstallable recommendation is skipped, not an error.
    assert_eq!(
        installed(&[&idx], &sol),
        ["app=1", "base=1", "base-extra=1", "extra=1"]
    );
}

#[test]
fn pre_depends_count_as_depends() {
    let idx = index(&packages(
        "a 1 ; Pre-Depends: b (>= 2)
         b 1
         b 2",
    ));
    assert_eq!(ok(&[&idx], &["a"]), ["a=1", "b=2"]);
}

#[test]
fn unknown_and_virtual_requests() {
    let idx = index(&packages(
        "nginx 1
         awk-a 1 ; Provides: awk
         awk-b 1 ; Provides: awk
         only 1 ; Provides: lonely-virtual",
    ));
    match run(&[&idx], &["ngnix"]) {
        Err(e @ SolveError::UnknownPackage { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("package ngnix is not in any configured source"),
                "{msg}"
            );
            assert!(msg.contains("nginx"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    match run(&[&idx], &["awk"]) {
        Err(SolveError::VirtualPackage { package, providers }) => {
            assert_eq!(package, "awk");
            assert_eq!(providers, ["awk-a", "awk-b"]);
        }
        other => panic!("{other:?}"),
    }
    // A virtual package with one provider installs the provider, as apt does.
    assert_eq!(ok(&[&idx], &["lonely-virtual"]), ["only=1"]);
    // Architecture qualifiers naming our architecture are accepted.
    assert_eq!(ok(&[&idx], &["nginx:amd64"]), ["nginx=1"]);
    assert_eq!(ok(&[&idx], &["nginx:native"]), ["nginx=1"]);
    assert!(matches!(
        run(&[&idx], &["nginx:i386"]),
        Err(SolveError::UnknownPackage { .. })
    ));
}

#[test]
fn unsatisfiable_explanations_name_the_packages() {
    let idx = index(&packages(
        "server 1 ; Depends: libssl (>= 3)
         libssl 1.1
         client 1 ; Depends: ghost",
    ));
    let why = unsat(&[&idx], &["server"]);
    assert!(
        why.contains("server") && why.contains("libssl (>= 3)"),
        "{why}"
    );
    let why = unsat(&[&idx], &["client"]);
    assert!(why.contains("client") && why.contains("ghost"), "{why}");
    assert!(
        run(&[&idx], &["client"])
            .unwrap_err()
            .to_string()
            .starts_with("the requested packages cannot be installed"),
    );
}

#[test]
fn a_conflict_pushes_the_choice_to_another_alternative() {
    // apt's marking takes b, which conflicts with the requested c; the result must
    // still be consistent: d satisfies the group instead.
    let idx = index(&packages(
        "a 1 ; Depends: b | d
         b 1 ; Conflicts: c
         c 1
         d 1",
    ));
    assert_eq!(ok(&[&idx], &["a", "c"]), ["a=1", "c=1", "d=1"]);
}

#[test]
fn empty_request_and_empty_indexes() {
    let idx = index("");
    assert_eq!(run(&[&idx], &[]).unwrap(), Solution::default());
    assert!(matches!(
        run(&[], &["x"]),
        Err(SolveError::UnknownPackage { .. })
    ));
}

#[test]
fn long_dependency_chains_and_cycles_do_not_overflow() {
    let n = 5000;
    let mut text = String::new();
    for i in 0..n {
        let dep = if i + 1 < n {
            format!("Depends: p{}\n", i + 1)
        } else {
            "Depends: p0\n".to_string()
        };
        text.push_str(&format!(
            "Package: p{i}\nVersion: 1\nArchitecture: amd64\n{dep}\n"
        ));
    }
    let idx = index(&text);
    let sol = run(&[&idx], &["p0"]).unwrap();
    assert_eq!(sol.packages.len(), n);
}

// --- Property: random small universes never panic and every solution is consistent.

/// Checks a solution independently of the solver: every Depends/Pre-Depends group has
/// a satisfier in the solution, nothing conflicts, one version per name.
fn check_consistent(indexes: &[&Index], sol: &Solution) -> Result<(), String> {
    let pkgs: Vec<_> = sol
        .packages
        .iter()
        .map(|s| s.package(indexes).unwrap())
        .collect();
    let provides = |p: &kiln_deb::Package<'_>, name: &str, c: Option<(Op, &str)>| {
        (p.name() == name && c.is_none_or(|(op, v)| op.accepts(version::compare(p.version(), v))))
            || p.relations(RelKind::Provides).flatten().any(|pr| {
                pr.name == name
                    && match (c, pr.constraint) {
                        (None, _) => true,
                        (Some((op, v)), Some((Op::Eq, pv))) => op.accepts(version::compare(pv, v)),
                        _ => false,
                    }
            })
    };
    for (i, p) in pkgs.iter().enumerate() {
        if pkgs[..i].iter().any(|q| q.name() == p.name()) {
            return Err(format!("{} twice", p.name()));
        }
        for kind in [RelKind::PreDepends, RelKind::Depends] {
            for group in p.relations(kind) {
                let group: Vec<_> = group.collect();
                if !group
                    .iter()
                    .any(|alt| pkgs.iter().any(|q| provides(q, alt.name, alt.constraint)))
                {
                    return Err(format!("{p:?}: unmet {group:?}"));
                }
            }
        }
        for kind in [RelKind::Conflicts, RelKind::Breaks] {
            for rel in p.relations(kind).flatten() {
                if let Some(q) = pkgs
                    .iter()
                    .find(|q| q.name() != p.name() && provides(q, rel.name, rel.constraint))
                {
                    return Err(format!("{p:?} conflicts with {q:?}"));
                }
            }
        }
    }
    Ok(())
}

fn arb_universe() -> impl Strategy<Value = String> {
    let names = ["a", "b", "c", "d", "e", "v"];
    let rel = (0..names.len(), prop::option::of((0..3usize, 1..4u32))).prop_map(move |(n, c)| {
        let op = ["<<", ">=", "="];
        match c {
            Some((o, v)) => format!("{} ({} {v})", names[n], op[o]),
            None => names[n].to_string(),
        }
    });
    let group = prop::collection::vec(rel.clone(), 1..3).prop_map(|alts| alts.join(" | "));
    let stanza = (
        0..5usize,
        1..4u32,
        prop::collection::vec(group, 0..3),
        prop::collection::vec(rel.clone(), 0..2),
        prop::option::of(1..4u32),
    )
        .prop_map(move |(n, v, deps, conflicts, provides)| {
            let mut s = format!("{} {v}", names[n]);
            if !deps.is_empty() {
                s.push_str(&format!(" ; Depends: {}", deps.join(", ")));
            }
            if !conflicts.is_empty() {
                s.push_str(&format!(" ; Conflicts: {}", conflicts.join(", ")));
            }
            if let Some(pv) = provides {
                s.push_str(&format!(" ; Provides: v (= {pv})"));
            }
            s
        });
    prop::collection::vec(stanza, 1..8).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn random_universes_solve_consistently(spec in arb_universe(), want in prop::collection::vec(0..5usize, 1..3)) {
        let idx = index(&packages(&spec));
        let names = ["a", "b", "c", "d", "e"];
        let wanted: Vec<&str> = want.iter().map(|&i| names[i]).collect();
        match run(&[&idx], &wanted) {
            Ok(sol) => {
                if let Err(e) = check_consistent(&[&idx], &sol) {
                    return Err(TestCaseError::fail(format!("{e}\n{spec}\nrequest {wanted:?}")));
                }
                for w in &wanted {
                    let present = sol.packages.iter().any(|s| s.package(&[&idx]).unwrap().name() == *w);
                    prop_assert!(present, "{} missing\n{}", w, spec);
                }
            }
            Err(SolveError::Unsatisfiable { explanation }) => prop_assert!(!explanation.is_empty()),
            Err(SolveError::UnknownPackage { .. } | SolveError::VirtualPackage { .. }) => {}
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n{spec}"))),
        }
    }
}
