//! The blueprint customizations of the OS tree, as stages of kiln-build and the packages
//! they need.
//!
//! [`os_customization`] maps every customization below to stages with explicit,
//! self-contained options (a stage never sees the blueprint), in this fixed order:
//!
//! | # | stage | from | extra packages |
//! |---|---|---|---|
//! | 1 | `apt.sources` | `[[repositories]]` | |
//! | 2 | `ca.certificates` | `cacerts`, firstboot `cacerts` | ca-certificates |
//! | 3 | `timezone` | `timezone.timezone` | tzdata |
//! | 4 | `timesyncd.ntp` | `timezone.ntpservers` | systemd-timesyncd |
//! | 5 | `locale` | `locale.languages` | locales (unless only C/POSIX/C.UTF-8) |
//! | 6 | `keyboard` | `locale.keyboard` | console-setup |
//! | 7 | `sshd.config` | `sshd` | openssh-server |
//! | 8 | `firewall.nftables` | `firewall` | nftables, netbase |
//! | 9 | `groups` | `[[group]]`, `wheel` (below) | passwd |
//! | 10 | `users` | `[[sshkey]]`, `[[user]]` | passwd, sudo for `wheel` |
//! | 11 | `directories` | `[[directories]]` | |
//! | 12 | `files` | `[[files]]` | |
//! | 13 | `firstboot` | `firstboot` | curl for satellite/aap |
//! | 14 | `systemd.units` | `services` | |
//!
//! Packages' own configuration comes first; groups before users, users before files and
//! directories (owners are looked up by name in the tree), and units last, so that a
//! blueprint can enable a unit it adds as a file, or disable one an earlier stage enabled
//! (`nftables.service`). `hostname`, `kernel`, `filesystem`, `disk` and the
//! installer/cloud customizations are not handled here.
//!
//! # Decisions
//!
//! - **Users.** `[[sshkey]]` entries and `[[user]]` entries of the same name are merged:
//!   the user's fields win, keys accumulate (all go to `authorized_keys`). New users get
//!   `/bin/bash` unless they name a shell (Debian's `useradd` default is `/bin/sh`;
//!   osbuild users expect bash, as with Debian's `adduser`). Plain-text passwords are
//!   hashed (SHA-512 crypt) with a salt derived from the blueprint name, the user and the
//!   password, so the same blueprint gives the same manifest and reuses the store;
//!   `Blueprint::hash_passwords` (random salt) should run when a blueprint is stored.
//! - **`wheel`.** osbuild blueprints put administrators in `wheel`, which Debian does not
//!   have (its administrators' group is `sudo`). A `wheel` group (a blueprint `[[group]]`
//!   or one a user lists) is created as a system group when missing and given full sudo
//!   rights through `/etc/sudoers.d`, and `sudo` is installed: members can `sudo`, and
//!   `id` shows `wheel` as the blueprint says. Other missing groups are errors at build time.
//! - **Repositories** become deb822 apt sources. osbuild's fields have no suite or
//!   components, so a base URL must point at the metadata of one suite and component,
//!   `…/dists/SUITE/COMPONENT` (several base URLs of one archive merge into one stanza), or
//!   else is a flat repository (`Suites: ./`, the directory holding `Release`). apt checks
//!   one signature, the Release file's: `repo_gpgcheck` (or `gpgcheck` when only that is
//!   set) `false` means `Trusted: yes`; both set to different values is an error.
//!   `metalink`, `mirrorlist`, `priority`, `sslverify = false`, `module_hotfixes = true`
//!   and key URLs (keys are not fetched at build time: paste the armored key) are errors.
//!   `install_from` is about the build, not the image, and is not looked at here.
//! - **Firewall**: nftables (see the `firewall.nftables` stage): firewalld's default zone
//!   (`ssh`, `dhcpv6-client`) plus `services.enabled` minus `services.disabled`; zones
//!   `trusted`, `drop` and `block` map to accepting, dropping and rejecting their sources,
//!   other zones are errors.
//! - **Keyboard**: the blueprint names a console keymap (`us`, `de-nodeadkeys`,
//!   `de-latin1-nodeadkeys`); the XKB layout is its first part and the variant the rest,
//!   without `latin0/1/9` (console-only), `uk` is XKB's `gb` and `dvorak` is `us`/`dvorak`.
//! - **First boot**: `custom` scripts as they are; `satellite` runs its command, `aap`
//!   calls the job template callback with curl; their `cacerts` go to the trust store
//!   first. Script files are numbered in order (`01-NAME`).
//! - **Images that do not boot** (`bootable == false`: tar, container): `firstboot`,
//!   `services`, `firewall` and `timezone.ntpservers` only act in a booted system and are
//!   [`DistroError::Unsupported`].
//! - `files[].uri` (a file on the build host) is [`DistroError::Unsupported`] for now.

use std::collections::{BTreeMap, BTreeSet};

use kiln_blueprint::{Blueprint, password};
use kiln_blueprint::{
    Customizations, FirewallCustomization, FirstbootScript, Owner, RepositoryCustomization,
};
use kiln_manifest::Stage;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::DistroError;

/// Stages and packages for the customizations of the OS tree.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OsCustomization {
    /// In the order they must run (see the module documentation).
    pub stages: Vec<Stage>,
    /// Packages the stages need, sorted, without duplicates.
    pub packages: Vec<String>,
}

/// The `[customizations]` keys [`os_customization`] handles (for the lead's check of
/// what an image type supports).
pub const CUSTOMIZATIONS: &[&str] = &[
    "sshkey",
    "user",
    "group",
    "timezone",
    "locale",
    "firewall",
    "services",
    "directories",
    "files",
    "repositories",
    "cacerts",
    "firstboot",
    "sshd",
];

/// Services firewalld's default zone allows.
pub const DEFAULT_FIREWALL_SERVICES: &[&str] = &["ssh", "dhcpv6-client"];

/// Shell of the users kiln creates when the blueprint names none.
pub const DEFAULT_SHELL: &str = "/bin/bash";

fn stage(kind: &str, options: Value) -> Stage {
    Stage {
        kind: kind.to_owned(),
        options,
        inputs: BTreeMap::new(),
    }
}

fn invalid(msg: String) -> DistroError {
    DistroError::Invalid(msg)
}

fn id32(what: &str, v: i64) -> Result<u32, DistroError> {
    u32::try_from(v)
        .ok()
        .filter(|v| *v != u32::MAX)
        .ok_or_else(|| invalid(format!("{what} {v} is out of range (0 to 4294967294)")))
}

fn owner(what: &str, o: &Owner) -> Result<Value, DistroError> {
    Ok(match o {
        Owner::Name(n) => json!(n),
        Owner::Id(i) => json!(id32(what, *i)?),
    })
}

/// Stages (in a fixed, documented order) and extra packages for every customization of
/// the module documentation that `bp` sets. `bootable` is false for image types without
/// a kernel or init (tar, container): customizations that need a booted system are then
/// [`DistroError::Unsupported`], naming the customization and the image type.
pub fn os_customization(
    bp: &Blueprint,
    image_type: &str,
    bootable: bool,
) -> Result<OsCustomization, DistroError> {
    let Some(c) = &bp.customizations else {
        return Ok(OsCustomization::default());
    };
    if !bootable {
        check_bootable_only(c, image_type)?;
    }
    let mut packages: BTreeSet<&str> = BTreeSet::new();
    let mut stages = Vec::new();

    // 1. Repositories.
    if !c.repositories.is_empty() {
        let sources = c
            .repositories
            .iter()
            .enumerate()
            .map(|(i, r)| apt_source(i, r))
            .collect::<Result<Vec<_>, _>>()?;
        stages.push(stage("apt.sources", json!({ "sources": sources })));
    }

    // 2. CA certificates (the blueprint's, then the first-boot scripts').
    let mut certs: Vec<String> = c
        .cacerts
        .as_ref()
        .map(|ca| ca.pem_certs.clone())
        .unwrap_or_default();
    if let Some(fb) = &c.firstboot {
        for s in &fb.scripts {
            match s {
                FirstbootScript::Satellite(s) => certs.extend(s.cacerts.iter().cloned()),
                FirstbootScript::Aap(s) => certs.extend(s.cacerts.iter().cloned()),
                FirstbootScript::Custom(_) => {}
            }
        }
    }
    if !certs.is_empty() {
        packages.insert("ca-certificates");
        stages.push(stage("ca.certificates", json!({ "certs": certs })));
    }

    // 3, 4. Time zone and NTP.
    if let Some(tz) = &c.timezone {
        if let Some(zone) = tz.timezone.as_deref().filter(|z| !z.is_empty()) {
            packages.insert("tzdata");
            stages.push(stage("timezone", json!({ "zone": zone })));
        }
        if !tz.ntpservers.is_empty() {
            packages.insert("systemd-timesyncd");
            stages.push(stage("timesyncd.ntp", json!({ "servers": tz.ntpservers })));
        }
    }

    // 5, 6. Locale and keyboard.
    if let Some(loc) = &c.locale {
        if let Some(first) = loc.languages.first() {
            let builtin = |l: &str| matches!(l, "C" | "POSIX" | "C.UTF-8" | "C.utf8");
            if !loc.languages.iter().all(|l| builtin(l)) {
                packages.insert("locales");
            }
            stages.push(stage(
                "locale",
                json!({ "default": first, "generate": loc.languages }),
            ));
        }
        if let Some(kb) = loc.keyboard.as_deref().filter(|k| !k.trim().is_empty()) {
            let (layout, variant) = xkb_for(kb);
            packages.insert("console-setup");
            let mut o = json!({ "keymap": kb, "layout": layout });
            if let Some(v) = variant {
                o["variant"] = json!(v);
            }
            stages.push(stage("keyboard", o));
        }
    }

    // 7. sshd.
    if let Some(s) = &c.sshd {
        let mut o = serde_json::Map::new();
        if let Some(b) = s.password_authentication {
            o.insert("password_authentication".into(), json!(b));
        }
        if let Some(b) = s.kbd_interactive_authentication {
            o.insert("kbd_interactive_authentication".into(), json!(b));
        }
        if let Some(n) = s.client_alive_interval {
            let n = u32::try_from(n).map_err(|_| {
                invalid(format!(
                    "customizations.sshd.client_alive_interval {n} is out of range"
                ))
            })?;
            o.insert("client_alive_interval".into(), json!(n));
        }
        if let Some(p) = &s.permit_root_login {
            o.insert("permit_root_login".into(), json!(p));
        }
        if !o.is_empty() {
            packages.insert("openssh-server");
            stages.push(stage("sshd.config", Value::Object(o)));
        }
    }

    // 8. Firewall.
    if let Some(fw) = &c.firewall {
        packages.insert("nftables");
        packages.insert("netbase");
        stages.push(stage("firewall.nftables", firewall(fw, image_type)?));
    }

    // 9, 10. Groups and users.
    let users = users(bp, c)?;
    let wheel_wanted = users.iter().any(|u| {
        u["groups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g == "wheel"))
    });
    let mut groups = Vec::new();
    for (i, g) in c.group.iter().enumerate() {
        let mut o = json!({ "name": g.name });
        if let Some(gid) = g.gid {
            o["gid"] = json!(id32(&format!("customizations.group[{i}].gid"), gid)?);
        }
        if g.name == "wheel" {
            o["sudo"] = json!(true);
        }
        groups.push(o);
    }
    if wheel_wanted && !c.group.iter().any(|g| g.name == "wheel") {
        groups.push(json!({ "name": "wheel", "system": true, "sudo": true }));
    }
    if groups.iter().any(|g| g["sudo"] == json!(true)) {
        packages.insert("sudo");
    }
    if !groups.is_empty() {
        packages.insert("passwd");
        stages.push(stage("groups", json!({ "groups": groups })));
    }
    if !users.is_empty() {
        packages.insert("passwd");
        stages.push(stage(
            "users",
            json!({ "default_shell": DEFAULT_SHELL, "users": users }),
        ));
    }

    // 11. Directories.
    if !c.directories.is_empty() {
        let mut dirs = Vec::new();
        for (i, d) in c.directories.iter().enumerate() {
            let at = format!("customizations.directories[{i}]");
            let mut o = json!({ "path": d.path });
            if let Some(m) = &d.mode {
                o["mode"] = json!(m);
            }
            if let Some(u) = &d.user {
                o["user"] = owner(&format!("{at}.user"), u)?;
            }
            if let Some(g) = &d.group {
                o["group"] = owner(&format!("{at}.group"), g)?;
            }
            if d.ensure_parents == Some(true) {
                o["ensure_parents"] = json!(true);
            }
            dirs.push(o);
        }
        stages.push(stage("directories", json!({ "directories": dirs })));
    }

    // 12. Files.
    if !c.files.is_empty() {
        let mut files = Vec::new();
        for (i, f) in c.files.iter().enumerate() {
            let at = format!("customizations.files[{i}]");
            if f.uri.is_some() {
                return Err(DistroError::Unsupported {
                    image_type: image_type.to_owned(),
                    what: format!(
                        "{at}.uri (files from the build host are not supported yet; put the content in `data`)"
                    ),
                });
            }
            let mut o = json!({ "path": f.path, "data": f.data.clone().unwrap_or_default() });
            if let Some(m) = &f.mode {
                o["mode"] = json!(m);
            }
            if let Some(u) = &f.user {
                o["user"] = owner(&format!("{at}.user"), u)?;
            }
            if let Some(g) = &f.group {
                o["group"] = owner(&format!("{at}.group"), g)?;
            }
            files.push(o);
        }
        stages.push(stage("files", json!({ "files": files })));
    }

    // 13. First boot.
    if let Some(fb) = &c.firstboot
        && !fb.scripts.is_empty()
    {
        let (o, needs_curl) = firstboot(&fb.scripts)?;
        if needs_curl {
            packages.insert("curl");
            packages.insert("ca-certificates");
        }
        stages.push(stage("firstboot", o));
    }

    // 14. Units.
    if let Some(s) = &c.services
        && !(s.enabled.is_empty() && s.disabled.is_empty() && s.masked.is_empty())
    {
        stages.push(stage(
            "systemd.units",
            json!({ "enabled": s.enabled, "disabled": s.disabled, "masked": s.masked }),
        ));
    }

    Ok(OsCustomization {
        stages,
        packages: packages.into_iter().map(str::to_owned).collect(),
    })
}

/// Errors for customizations that only act in a booted system.
fn check_bootable_only(c: &Customizations, image_type: &str) -> Result<(), DistroError> {
    let unsupported = |what: &str| {
        Err(DistroError::Unsupported {
            image_type: image_type.to_owned(),
            what: format!(
                "{what} (it only acts when the image boots with systemd, and this image type does not boot)"
            ),
        })
    };
    if c.firstboot.as_ref().is_some_and(|f| !f.scripts.is_empty()) {
        return unsupported("customizations.firstboot");
    }
    if c.services
        .as_ref()
        .is_some_and(|s| !(s.enabled.is_empty() && s.disabled.is_empty() && s.masked.is_empty()))
    {
        return unsupported("customizations.services");
    }
    if c.firewall.is_some() {
        return unsupported("customizations.firewall");
    }
    if c.timezone
        .as_ref()
        .is_some_and(|t| !t.ntpservers.is_empty())
    {
        return unsupported("customizations.timezone.ntpservers");
    }
    Ok(())
}

/// The XKB layout and variant of a console keymap name.
pub fn xkb_for(keymap: &str) -> (String, Option<String>) {
    let parts: Vec<&str> = keymap
        .split('-')
        .filter(|p| !matches!(*p, "latin0" | "latin1" | "latin9"))
        .collect();
    let (layout, rest) = match parts.split_first() {
        Some((l, rest)) => (*l, rest.join("-")),
        None => (keymap, String::new()),
    };
    match (layout, rest.as_str()) {
        ("dvorak", "") => ("us".into(), Some("dvorak".into())),
        ("uk", r) => ("gb".into(), (!r.is_empty()).then(|| r.to_owned())),
        (l, "") => (l.to_owned(), None),
        (l, r) => (l.to_owned(), Some(r.to_owned())),
    }
}

/// The users of `bp` as `users` stage entries (`[[sshkey]]` merged in).
fn users(bp: &Blueprint, c: &Customizations) -> Result<Vec<Value>, DistroError> {
    let mut order: Vec<String> = Vec::new();
    let mut map: BTreeMap<String, serde_json::Map<String, Value>> = BTreeMap::new();
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let touch = |name: &str, order: &mut Vec<String>| {
        if !order.iter().any(|n| n == name) {
            order.push(name.to_owned());
        }
    };
    for k in &c.sshkey {
        touch(&k.user, &mut order);
        keys.entry(k.user.clone()).or_default().push(k.key.clone());
    }
    for (i, u) in c.user.iter().enumerate() {
        let at = format!("customizations.user[{i}]");
        touch(&u.name, &mut order);
        let o = map.entry(u.name.clone()).or_default();
        if let Some(d) = &u.description {
            o.insert("description".into(), json!(d));
        }
        if let Some(p) = u.password.as_deref().filter(|p| !p.is_empty()) {
            let hash = if password::is_crypted(p) {
                p.to_owned()
            } else {
                let salt: [u8; 32] = Sha256::digest(
                    format!("kiln password salt v1\0{}\0{}\0{p}", bp.name, u.name).as_bytes(),
                )
                .into();
                password::sha512_crypt_with_salt(p, &salt[..12])
                    .map_err(|e| invalid(format!("{at}.password: cannot hash it: {e}")))?
            };
            o.insert("password".into(), json!(hash));
        }
        if let Some(k) = &u.key {
            keys.entry(u.name.clone()).or_default().push(k.clone());
        }
        if let Some(h) = &u.home {
            let h = h.trim_end_matches('/');
            o.insert("home".into(), json!(if h.is_empty() { "/" } else { h }));
        }
        if let Some(s) = &u.shell {
            o.insert("shell".into(), json!(s));
        }
        if !u.groups.is_empty() {
            o.insert("groups".into(), json!(u.groups));
        }
        if let Some(uid) = u.uid {
            o.insert("uid".into(), json!(id32(&format!("{at}.uid"), uid)?));
        }
        if let Some(gid) = u.gid {
            o.insert("gid".into(), json!(id32(&format!("{at}.gid"), gid)?));
        }
        if let Some(e) = u.expiredate {
            o.insert("expiredate".into(), json!(e));
        }
        if u.force_password_reset == Some(true) {
            o.insert("force_password_reset".into(), json!(true));
        }
    }
    Ok(order
        .into_iter()
        .map(|name| {
            let mut o = map.remove(&name).unwrap_or_default();
            if let Some(k) = keys.remove(&name) {
                let mut uniq: Vec<String> = Vec::new();
                for key in k {
                    let key = key.trim().to_owned();
                    if !key.is_empty() && !uniq.contains(&key) {
                        uniq.push(key);
                    }
                }
                o.insert("keys".into(), json!(uniq));
            }
            o.insert("name".into(), json!(name));
            Value::Object(o)
        })
        .collect())
}

/// One `apt.sources` entry.
fn apt_source(i: usize, r: &RepositoryCustomization) -> Result<Value, DistroError> {
    let at = format!("customizations.repositories[{i}] ({})", r.id);
    let refuse = |what: &str, why: &str| {
        Err(invalid(format!(
            "{at}: {what} has no meaning for apt repositories; {why}"
        )))
    };
    if r.metalink.as_deref().is_some_and(|s| !s.is_empty()) {
        return refuse("metalink", "list the mirrors in baseurls");
    }
    if r.mirrorlist.as_deref().is_some_and(|s| !s.is_empty()) {
        return refuse("mirrorlist", "list the mirrors in baseurls");
    }
    if r.priority.is_some() {
        return refuse(
            "priority",
            "set apt pinning with a file in /etc/apt/preferences.d ([[customizations.files]])",
        );
    }
    if r.sslverify == Some(false) {
        return refuse(
            "sslverify = false",
            "configure Acquire::https::Verify-Peer with a file in /etc/apt/apt.conf.d",
        );
    }
    if r.module_hotfixes == Some(true) {
        return refuse("module_hotfixes", "remove it");
    }
    let check = match (r.repo_gpgcheck, r.gpgcheck) {
        (Some(a), Some(b)) if a != b => {
            return Err(invalid(format!(
                "{at}: apt checks one signature (the repository's Release file), so gpgcheck and repo_gpgcheck must agree"
            )));
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => true,
    };
    let mut keys = Vec::new();
    for (k, key) in r.gpgkeys.iter().enumerate() {
        if key
            .trim_start()
            .starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----")
        {
            keys.push(key.clone());
        } else {
            return Err(invalid(format!(
                "{at}: gpgkeys[{k}] {key:?}: kiln does not download keys at build time; paste the ASCII-armored key instead"
            )));
        }
    }
    if !check && !keys.is_empty() {
        return Err(invalid(format!(
            "{at}: gpgkeys are given but signature checking is turned off"
        )));
    }
    if r.baseurls.is_empty() {
        return Err(invalid(format!("{at}: no baseurls")));
    }
    // (uri, suite) -> components, in first-seen order.
    let mut groups: Vec<((String, String), Vec<String>)> = Vec::new();
    for (b, url) in r.baseurls.iter().enumerate() {
        let (uri, suite, component) =
            parse_baseurl(url).map_err(|e| invalid(format!("{at}: baseurls[{b}] {url:?}: {e}")))?;
        let key = (uri, suite);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, comps)) => {
                if let Some(c) = component
                    && !comps.contains(&c)
                {
                    comps.push(c);
                }
            }
            None => groups.push((key, component.into_iter().collect())),
        }
    }
    // Archives with the same suite and components are mirrors: one stanza.
    let mut stanzas: Vec<(Vec<String>, String, Vec<String>)> = Vec::new();
    for ((uri, suite), comps) in groups {
        match stanzas
            .iter_mut()
            .find(|(_, s, c)| *s == suite && *c == comps)
        {
            Some((uris, _, _)) => uris.push(uri),
            None => stanzas.push((vec![uri], suite, comps)),
        }
    }
    let stem = r.effective_filename();
    let stem = stem.strip_suffix(".repo").unwrap_or(&stem);
    let mut o = json!({
        "filename": stem,
        "enabled": r.enabled.unwrap_or(true),
        "trusted": !check,
        "stanzas": stanzas
            .into_iter()
            .map(|(uris, suite, comps)| json!({ "uris": uris, "suites": [suite], "components": comps }))
            .collect::<Vec<_>>(),
        "keys": keys,
    });
    if let Some(n) = r.name.as_deref().filter(|n| !n.is_empty()) {
        o["name"] = json!(n);
    }
    Ok(o)
}

/// `…/dists/SUITE/COMPONENT` → (`…/`, SUITE, COMPONENT); any other URL is a flat
/// repository (`URL/`, `./`, none).
fn parse_baseurl(url: &str) -> Result<(String, String, Option<String>), String> {
    if !url.contains("://") || url.contains(char::is_whitespace) {
        return Err("not a URL".into());
    }
    match url.rfind("/dists/") {
        Some(pos) => {
            let base = &url[..=pos];
            let rest: Vec<&str> = url[pos + "/dists/".len()..]
                .split('/')
                .filter(|s| !s.is_empty())
                .collect();
            match rest.split_last() {
                Some((comp, suite)) if !suite.is_empty() => {
                    Ok((base.to_owned(), suite.join("/"), Some((*comp).to_owned())))
                }
                _ => Err(
                    "a base URL into a Debian archive names a suite and a component: …/dists/SUITE/COMPONENT (e.g. https://deb.example/debian/dists/bookworm/main)"
                        .into(),
                ),
            }
        }
        None => {
            let mut u = url.to_owned();
            if !u.ends_with('/') {
                u.push('/');
            }
            Ok((u, "./".into(), None))
        }
    }
}

/// The `firewall.nftables` options.
fn firewall(fw: &FirewallCustomization, image_type: &str) -> Result<Value, DistroError> {
    let mut ports = Vec::new();
    for (i, p) in fw.ports.iter().enumerate() {
        let bad = || {
            invalid(format!(
                "customizations.firewall.ports[{i}] {p:?}: use PORT:PROTOCOL, FROM-TO:PROTOCOL or SERVICE:PROTOCOL"
            ))
        };
        let (what, proto) = p.rsplit_once(':').ok_or_else(bad)?;
        if what.starts_with(|c: char| c.is_ascii_digit()) {
            let (a, b) = what.split_once('-').unwrap_or((what, what));
            let a: u16 = a.parse().map_err(|_| bad())?;
            let b: u16 = b.parse().map_err(|_| bad())?;
            if a == 0 || b < a {
                return Err(bad());
            }
            ports.push(json!({ "from": a, "to": b, "protocol": proto }));
        } else {
            ports.push(json!({ "service": what, "protocol": proto }));
        }
    }
    let mut services: Vec<String> = DEFAULT_FIREWALL_SERVICES
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    if let Some(s) = &fw.services {
        for e in &s.enabled {
            if !services.contains(e) {
                services.push(e.clone());
            }
        }
        services.retain(|x| !s.disabled.contains(x));
    }
    let mut sources = Vec::new();
    for (i, z) in fw.zones.iter().enumerate() {
        let name = z.name.as_deref().unwrap_or_default();
        let action = match name {
            "trusted" => "accept",
            "drop" => "drop",
            "block" => "reject",
            "" => {
                return Err(invalid(format!(
                    "customizations.firewall.zones[{i}] has no name"
                )));
            }
            other => {
                return Err(DistroError::Unsupported {
                    image_type: image_type.to_owned(),
                    what: format!(
                        "customizations.firewall.zones[{i}] (zone {other:?}: kiln's nftables firewall knows the zones trusted, drop and block)"
                    ),
                });
            }
        };
        for s in &z.sources {
            sources.push(json!({ "address": s, "action": action }));
        }
    }
    Ok(json!({ "ports": ports, "services": services, "sources": sources }))
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The `firstboot` options, and whether curl is needed.
fn firstboot(scripts: &[FirstbootScript]) -> Result<(Value, bool), DistroError> {
    let mut out = Vec::new();
    let mut after: Vec<String> = Vec::new();
    let mut before: Vec<String> = Vec::new();
    let mut curl = false;
    for (i, s) in scripts.iter().enumerate() {
        let name = s.name().unwrap_or("script");
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(invalid(format!(
                "customizations.firstboot.scripts[{i}]: invalid name {name:?} (letters, digits, '_' and '-')"
            )));
        }
        let (contents, ignore, a, b) = match s {
            FirstbootScript::Custom(c) => {
                (c.contents.clone(), c.ignore_failure, &c.after, &c.before)
            }
            FirstbootScript::Satellite(c) => {
                curl = true;
                (
                    format!(
                        "#!/bin/sh\n# Red Hat Satellite registration (written by kiln).\nset -e\n{}\n",
                        c.command
                    ),
                    c.ignore_failure,
                    &c.after,
                    &c.before,
                )
            }
            FirstbootScript::Aap(c) => {
                curl = true;
                (
                    format!(
                        "#!/bin/sh\n# Ansible Automation Platform callback (written by kiln).\nset -e\n\
                         exec curl --fail --silent --show-error --retry 5 --retry-all-errors \
                         --data {} {}\n",
                        sh_quote(&format!("host_config_key={}", c.host_config_key)),
                        sh_quote(&c.job_template_url)
                    ),
                    c.ignore_failure,
                    &c.after,
                    &c.before,
                )
            }
        };
        for u in a {
            if !after.contains(u) {
                after.push(u.clone());
            }
        }
        for u in b {
            if !before.contains(u) {
                before.push(u.clone());
            }
        }
        out.push(json!({
            "name": format!("{:02}-{name}", i + 1),
            "contents": contents,
            "ignore_failure": ignore == Some(true),
        }));
    }
    Ok((
        json!({ "scripts": out, "after": after, "before": before }),
        curl,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bp(text: &str) -> Blueprint {
        Blueprint::from_toml_validated(text).unwrap()
    }

    fn kinds(c: &OsCustomization) -> Vec<&str> {
        c.stages.iter().map(|s| s.kind.as_str()).collect()
    }

    const FULL: &str = r#"
name = "full"
[[customizations.sshkey]]
user = "alice"
key = "ssh-ed25519 AAAAold alice@old"
[[customizations.user]]
name = "alice"
password = "secret"
key = "ssh-ed25519 AAAAnew alice@new"
groups = ["wheel", "adm"]
home = "/home/alice/"
uid = 1200
[[customizations.group]]
name = "devs"
gid = 1500
[customizations.timezone]
timezone = "Europe/Paris"
ntpservers = ["0.pool.ntp.org"]
[customizations.locale]
languages = ["de_DE.UTF-8", "en_US.UTF-8"]
keyboard = "de-latin1-nodeadkeys"
[customizations.firewall]
ports = ["8000-8080:tcp", "imap:tcp", "53:udp"]
[customizations.firewall.services]
enabled = ["http"]
disabled = ["dhcpv6-client"]
[[customizations.firewall.zones]]
name = "trusted"
sources = ["10.0.0.0/8"]
[customizations.services]
enabled = ["nginx"]
masked = ["ctrl-alt-del.target"]
[[customizations.directories]]
path = "/srv/data"
user = "alice"
mode = "0750"
ensure_parents = true
[[customizations.files]]
path = "/etc/motd"
data = "hi\n"
[[customizations.repositories]]
id = "extra"
name = "Extra"
baseurls = ["https://repo.example/debian/dists/bookworm/main", "https://repo.example/debian/dists/bookworm/contrib"]
[customizations.cacerts]
pem_certs = ["-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"]
[customizations.sshd]
password_authentication = false
[[customizations.firstboot.scripts]]
type = "custom"
name = "hello"
contents = "echo hi"
after = ["cloud-init.service"]
"#;

    #[test]
    fn order_and_packages() {
        let c = os_customization(&bp(FULL), "qcow2", true).unwrap();
        assert_eq!(
            kinds(&c),
            [
                "apt.sources",
                "ca.certificates",
                "timezone",
                "timesyncd.ntp",
                "locale",
                "keyboard",
                "sshd.config",
                "firewall.nftables",
                "groups",
                "users",
                "directories",
                "files",
                "firstboot",
                "systemd.units"
            ]
        );
        assert_eq!(
            c.packages,
            [
                "ca-certificates",
                "console-setup",
                "locales",
                "netbase",
                "nftables",
                "openssh-server",
                "passwd",
                "sudo",
                "systemd-timesyncd",
                "tzdata"
            ]
        );
        // Same blueprint, same stages (the plain-text password's salt is derived).
        assert_eq!(c, os_customization(&bp(FULL), "qcow2", true).unwrap());
    }

    #[test]
    fn the_full_blueprint_uses_every_handled_key() {
        let value = serde_json::to_value(bp(FULL).customizations.unwrap()).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for k in CUSTOMIZATIONS {
            assert!(keys.contains(k), "{k}");
        }
        assert!(keys.iter().all(|k| CUSTOMIZATIONS.contains(k)), "{keys:?}");
    }

    #[test]
    fn users_merge_sshkeys_and_hash_passwords() {
        let c = os_customization(&bp(FULL), "qcow2", true).unwrap();
        let users = &c.stages.iter().find(|s| s.kind == "users").unwrap().options;
        assert_eq!(users["default_shell"], "/bin/bash");
        let alice = &users["users"][0];
        assert_eq!(alice["name"], "alice");
        assert_eq!(alice["home"], "/home/alice");
        assert_eq!(alice["uid"], 1200);
        assert_eq!(
            alice["keys"],
            json!([
                "ssh-ed25519 AAAAold alice@old",
                "ssh-ed25519 AAAAnew alice@new"
            ])
        );
        let hash = alice["password"].as_str().unwrap();
        assert!(hash.starts_with("$6$"), "{hash}");
        assert!(password::verify("secret", hash));
        let groups = &c
            .stages
            .iter()
            .find(|s| s.kind == "groups")
            .unwrap()
            .options;
        assert_eq!(
            groups["groups"],
            json!([{"name": "devs", "gid": 1500}, {"name": "wheel", "system": true, "sudo": true}])
        );
    }

    #[test]
    fn firewall_locale_repos_mapping() {
        let c = os_customization(&bp(FULL), "qcow2", true).unwrap();
        let opt = |k: &str| &c.stages.iter().find(|s| s.kind == k).unwrap().options;
        let fw = opt("firewall.nftables");
        assert_eq!(fw["services"], json!(["ssh", "http"]));
        assert_eq!(
            fw["ports"],
            json!([
                {"from": 8000, "to": 8080, "protocol": "tcp"},
                {"service": "imap", "protocol": "tcp"},
                {"from": 53, "to": 53, "protocol": "udp"}
            ])
        );
        assert_eq!(
            fw["sources"],
            json!([{"address": "10.0.0.0/8", "action": "accept"}])
        );
        assert_eq!(
            opt("keyboard"),
            &json!({"keymap": "de-latin1-nodeadkeys", "layout": "de", "variant": "nodeadkeys"})
        );
        assert_eq!(
            opt("locale"),
            &json!({"default": "de_DE.UTF-8", "generate": ["de_DE.UTF-8", "en_US.UTF-8"]})
        );
        assert_eq!(
            opt("apt.sources")["sources"],
            json!([{
                "filename": "extra", "name": "Extra", "enabled": true, "trusted": false, "keys": [],
                "stanzas": [{"uris": ["https://repo.example/debian/"], "suites": ["bookworm"],
                             "components": ["main", "contrib"]}]
            }])
        );
        let fb = opt("firstboot");
        assert_eq!(fb["scripts"][0]["name"], "01-hello");
        assert_eq!(fb["after"], json!(["cloud-init.service"]));
    }

    #[test]
    fn keymaps() {
        assert_eq!(xkb_for("us"), ("us".into(), None));
        assert_eq!(xkb_for("uk"), ("gb".into(), None));
        assert_eq!(xkb_for("dvorak"), ("us".into(), Some("dvorak".into())));
        assert_eq!(xkb_for("fr-latin9"), ("fr".into(), None));
        assert_eq!(
            xkb_for("de-nodeadkeys"),
            ("de".into(), Some("nodeadkeys".into()))
        );
    }

    #[test]
    fn baseurls() {
        assert_eq!(
            parse_baseurl("http://a/debian/dists/bookworm-backports/main/").unwrap(),
            (
                "http://a/debian/".into(),
                "bookworm-backports".into(),
                Some("main".into())
            )
        );
        assert_eq!(
            parse_baseurl("http://a/flat").unwrap(),
            ("http://a/flat/".into(), "./".into(), None)
        );
        assert!(parse_baseurl("http://a/debian/dists/bookworm").is_err());
    }

    #[test]
    fn not_bootable_refuses_boot_time_customizations() {
        let b = bp(FULL);
        let e = os_customization(&b, "tar", false).unwrap_err();
        assert!(
            matches!(&e, DistroError::Unsupported { image_type, what }
            if image_type == "tar" && what.contains("customizations.firstboot")),
            "{e}"
        );
        let ok = bp(
            "name = \"t\"\n[[customizations.user]]\nname = \"bob\"\n[customizations.timezone]\ntimezone = \"UTC\"\n",
        );
        let c = os_customization(&ok, "tar", false).unwrap();
        assert_eq!(kinds(&c), ["timezone", "users"]);
        let ntp = bp("name = \"t\"\n[customizations.timezone]\nntpservers = [\"ntp.example\"]\n");
        let e = os_customization(&ntp, "tar", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("ntpservers") && e.contains("\"tar\""), "{e}");
    }

    #[test]
    fn apt_nonsense_is_refused() {
        for (extra, needle) in [
            ("metalink = \"https://m.example/x\"\n", "metalink"),
            ("priority = 10\n", "priority"),
            ("sslverify = false\n", "sslverify"),
            (
                "gpgcheck = true\nrepo_gpgcheck = false\ngpgkeys = [\"https://k.example/key.asc\"]\n",
                "agree",
            ),
            ("gpgkeys = [\"https://k.example/key.asc\"]\n", "armored"),
        ] {
            let b = bp(&format!(
                "name = \"t\"\n[[customizations.repositories]]\nid = \"x\"\nbaseurls = [\"https://r.example/debian/dists/bookworm/main\"]\n{extra}"
            ));
            let e = os_customization(&b, "qcow2", true).unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
        let b = bp(
            "name = \"t\"\n[[customizations.repositories]]\nid = \"x\"\nbaseurls = [\"https://r.example/flat/\"]\ngpgcheck = false\n",
        );
        let c = os_customization(&b, "qcow2", true).unwrap();
        assert_eq!(c.stages[0].options["sources"][0]["trusted"], true);
        assert_eq!(
            c.stages[0].options["sources"][0]["stanzas"][0]["suites"],
            json!(["./"])
        );
    }

    #[test]
    fn zones_files_and_firstboot_types() {
        let b = bp(
            "name = \"t\"\n[[customizations.firewall.zones]]\nname = \"internal\"\nsources = [\"10.0.0.0/8\"]\n",
        );
        let e = os_customization(&b, "qcow2", true).unwrap_err().to_string();
        assert!(e.contains("internal"), "{e}");
        let b = bp(
            "name = \"t\"\n[[customizations.files]]\npath = \"/etc/x\"\nuri = \"file:///etc/hostname\"\n",
        );
        assert!(
            os_customization(&b, "qcow2", true)
                .unwrap_err()
                .to_string()
                .contains("uri")
        );
        let b = bp(
            "name = \"t\"\n[[customizations.firstboot.scripts]]\ntype = \"aap\"\nname = \"aap\"\n\
             job_template_url = \"https://aap.example/api/v2/job_templates/9/callback/\"\n\
             host_config_key = \"k'ey\"\ncacerts = [\"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n\"]\n",
        );
        let c = os_customization(&b, "qcow2", true).unwrap();
        assert_eq!(kinds(&c), ["ca.certificates", "firstboot"]);
        assert!(c.packages.contains(&"curl".to_owned()));
        let script = c.stages[1].options["scripts"][0]["contents"]
            .as_str()
            .unwrap();
        assert!(script.contains(r"'host_config_key=k'\''ey'"), "{script}");
    }
}
