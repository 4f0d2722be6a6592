//! Semantic checks of a parsed blueprint (osbuild's rules from `pkg/blueprint` and
//! `pkg/policies`, plus a few more where osbuild would build a broken image).
//!
//! Every problem is collected, not just the first, and each message says what is wrong and
//! how to fix it.

use std::collections::{HashMap, HashSet};

use crate::model::{
    Blueprint, Customizations, DirectoryCustomization, DiskCustomization, FileCustomization,
    FirstbootScript, Owner, PartitionCustomization, PartitionKind,
};
use crate::parse::Seg;
use crate::policy::{self, PathPolicies, PolicyViolation};
use crate::size::Size;

/// A problem at a field path.
pub(crate) struct Problem {
    pub segs: Vec<Seg>,
    pub message: String,
}

/// Field path under construction.
#[derive(Clone)]
struct P(Vec<Seg>);

impl P {
    fn root() -> P {
        P(Vec::new())
    }
    fn k(&self, key: &str) -> P {
        let mut v = self.0.clone();
        v.push(Seg::Key(key.to_owned()));
        P(v)
    }
    fn i(&self, idx: usize) -> P {
        let mut v = self.0.clone();
        v.push(Seg::Index(idx));
        P(v)
    }
    fn text(&self) -> String {
        crate::parse::format_path(&self.0)
    }
}

#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn err(&mut self, path: &P, message: impl Into<String>) {
        self.problems.push(Problem {
            segs: path.0.clone(),
            message: message.into(),
        });
    }
}

/// Runs every check.
pub(crate) fn check(bp: &Blueprint) -> Vec<Problem> {
    let mut c = Checker::default();
    let root = P::root();
    check_top(&mut c, bp, &root);
    if let Some(cust) = &bp.customizations {
        check_customizations(&mut c, cust, &root.k("customizations"));
    }
    c.problems
}

// ---------------------------------------------------------------------------------------------
// small predicates

fn is_blueprint_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,31}$` (osbuild fsnode user names; also used for accounts).
fn is_user_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && (b[0].is_ascii_alphanumeric() || matches!(b[0], b'_' | b'.'))
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `^[A-Za-z0-9_][A-Za-z0-9_-]{0,31}$` (osbuild fsnode group names).
fn is_group_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'))
}

const MAX_ID: i64 = 4_294_967_294; // (uid_t)-1 is reserved

fn check_id(c: &mut Checker, path: &P, what: &str, id: i64) {
    if !(0..=MAX_ID).contains(&id) {
        c.err(
            path,
            format!("{what} {id} is out of range; use a number between 0 and {MAX_ID}"),
        );
    }
}

/// `^0?[0-7]{3}$`.
fn is_mode(s: &str) -> bool {
    let digits = s.strip_prefix('0').filter(|r| r.len() == 3).unwrap_or(s);
    digits.len() == 3 && digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_hostname(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 64
        && s.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn is_timezone(s: &str) -> bool {
    if matches!(
        s,
        "UTC" | "GMT" | "UCT" | "Universal" | "Zulu" | "Greenwich"
    ) {
        return true;
    }
    let parts: Vec<&str> = s.split('/').collect();
    (2..=3).contains(&parts.len())
        && parts[0].starts_with(|ch: char| ch.is_ascii_uppercase())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+'))
        })
}

fn is_url_like(s: &str) -> bool {
    match s.split_once("://") {
        Some((scheme, rest)) => {
            !scheme.is_empty()
                && scheme.starts_with(|ch: char| ch.is_ascii_alphabetic())
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
                && !rest.is_empty()
                && !rest.contains(char::is_whitespace)
        }
        None => false,
    }
}

fn is_http_url(s: &str) -> bool {
    is_url_like(s) && (s.starts_with("http://") || s.starts_with("https://"))
}

/// Checks that a string holds one or more PEM certificates with base64 bodies.
fn check_pem_bundle(text: &str) -> Result<(), String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut rest = text;
    let mut count = 0;
    while let Some(start) = rest.find(BEGIN) {
        let after = &rest[start + BEGIN.len()..];
        let Some(end) = after.find(END) else {
            return Err(format!("a certificate has no {END:?} line"));
        };
        let body: String = after[..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let trimmed = body.trim_end_matches('=');
        if body.is_empty()
            || !body.len().is_multiple_of(4)
            || body.len() - trimmed.len() > 2
            || !trimmed
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        {
            return Err(format!(
                "certificate #{} does not contain valid base64 data",
                count + 1
            ));
        }
        count += 1;
        rest = &after[end + END.len()..];
    }
    if count == 0 {
        return Err(format!(
            "no certificate found; paste the PEM text including the {BEGIN:?} and {END:?} lines"
        ));
    }
    Ok(())
}

fn policy_message(what: &str, path: &str, v: &PolicyViolation) -> String {
    let hint = match v {
        PolicyViolation::NotAbsolute => format!(" (e.g. \"/{}\")", path.trim_start_matches('/')),
        PolicyViolation::NotCanonical(_) => String::new(),
        PolicyViolation::Denied(_) | PolicyViolation::ExactOnly(_) => {
            format!("; choose another {what}")
        }
    };
    format!("{what} {path:?} {v}{hint}")
}

fn check_path_policy(c: &mut Checker, path: &P, what: &str, value: &str, pol: &PathPolicies) {
    if let Err(v) = pol.check(value) {
        c.err(path, policy_message(what, value, &v));
    }
}

fn check_nonzero_size(c: &mut Checker, path: &P, size: &Size) {
    if size.bytes() == 0 {
        c.err(
            path,
            "size must be greater than 0; give a size such as \"1 GiB\"",
        );
    }
}

fn check_nonempty_entries(c: &mut Checker, path: &P, what: &str, list: &[String]) {
    for (i, v) in list.iter().enumerate() {
        if v.trim().is_empty() {
            c.err(
                &path.i(i),
                format!("empty {what}; remove the entry or fill it in"),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// top level

fn check_top(c: &mut Checker, bp: &Blueprint, root: &P) {
    if bp.name.is_empty() {
        c.err(
            &root.k("name"),
            "empty blueprint name not allowed; set name = \"my-image\"",
        );
    } else if !is_blueprint_name(&bp.name) {
        c.err(
            &root.k("name"),
            format!(
                "blueprint name {:?} may only contain letters, digits, '.', '_' and '-' (e.g. {:?})",
                bp.name,
                bp.name
                    .chars()
                    .map(|ch| if ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-') {
                        ch
                    } else {
                        '-'
                    })
                    .collect::<String>()
            ),
        );
    }
    if let Some(v) = bp.version.as_deref().filter(|v| !v.is_empty())
        && let Err(e) = semver::Version::parse(v)
    {
        c.err(
            &root.k("version"),
            format!(
                "invalid 'version' {v:?}, must use Semantic Versioning MAJOR.MINOR.PATCH such as \"1.0.0\" ({e})"
            ),
        );
    }
    for (key, list) in [("packages", &bp.packages), ("modules", &bp.modules)] {
        for (i, pkg) in list.iter().enumerate() {
            if pkg.name.trim().is_empty() {
                let detail = match pkg.version.as_deref() {
                    Some(v) if !v.is_empty() => format!("has version {v:?} but no name"),
                    _ => "has no name".to_owned(),
                };
                c.err(
                    &root.k(key).i(i).k("name"),
                    format!(
                        "all package entries need to contain the name of the package: entry #{} {detail}; set name = \"...\" or remove the entry",
                        i + 1
                    ),
                );
            }
        }
    }
    for (i, g) in bp.groups.iter().enumerate() {
        if g.name.trim().is_empty() {
            c.err(
                &root.k("groups").i(i).k("name"),
                "package group entry has no name; set the group id or remove the entry",
            );
        }
    }
    for (i, m) in bp.enabled_modules.iter().enumerate() {
        let p = root.k("enabled_modules").i(i);
        if m.name.trim().is_empty() {
            c.err(&p.k("name"), "module entry has no name; set name = \"...\"");
        }
        if m.stream.as_deref().is_none_or(|s| s.trim().is_empty()) {
            c.err(
                &p.k("stream"),
                "a module stream is required to enable a module; set stream = \"...\"",
            );
        }
    }
    for (i, ct) in bp.containers.iter().enumerate() {
        if ct.source.trim().is_empty() {
            c.err(
                &root.k("containers").i(i).k("source"),
                "container source is empty; set it to an image reference such as \"quay.io/fedora/fedora:latest\"",
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// customizations

fn check_customizations(c: &mut Checker, cu: &Customizations, p: &P) {
    if let Some(h) = &cu.hostname
        && !is_hostname(h)
    {
        c.err(
            &p.k("hostname"),
            format!(
                "hostname {h:?} is not valid: use up to 64 letters, digits and '-' (not at the start or end of a label), with '.' between labels (e.g. \"web-01.example.com\")"
            ),
        );
    }
    if let Some(k) = &cu.kernel
        && let Some(name) = &k.name
        && name.trim().is_empty()
    {
        c.err(
            &p.k("kernel").k("name"),
            "kernel name is empty; remove the key to use the distribution's kernel",
        );
    }
    for (i, key) in cu.sshkey.iter().enumerate() {
        let kp = p.k("sshkey").i(i);
        if key.user.trim().is_empty() {
            c.err(
                &kp.k("user"),
                "sshkey entry has no user; set user = \"root\" (or another existing user)",
            );
        }
        if key.key.trim().is_empty() {
            c.err(
                &kp.k("key"),
                "sshkey entry has an empty key; paste the public key line",
            );
        }
    }
    check_users_groups(c, cu, p);
    if let Some(tz) = &cu.timezone {
        if let Some(zone) = &tz.timezone
            && !is_timezone(zone)
        {
            c.err(
                &p.k("timezone").k("timezone"),
                format!(
                    "timezone {zone:?} is not a time zone name; use an Area/City name such as \"Europe/Berlin\" or \"America/New_York\", or \"UTC\""
                ),
            );
        }
        check_nonempty_entries(
            c,
            &p.k("timezone").k("ntpservers"),
            "NTP server",
            &tz.ntpservers,
        );
    }
    if let Some(loc) = &cu.locale {
        check_nonempty_entries(c, &p.k("locale").k("languages"), "language", &loc.languages);
        if let Some(kb) = &loc.keyboard
            && kb.trim().is_empty()
        {
            c.err(
                &p.k("locale").k("keyboard"),
                "keyboard is empty; set a keymap such as \"us\" or remove the key",
            );
        }
    }
    if let Some(fw) = &cu.firewall {
        let fp = p.k("firewall");
        for (i, port) in fw.ports.iter().enumerate() {
            if let Err(e) = check_firewall_port(port) {
                c.err(&fp.k("ports").i(i), e);
            }
        }
        if let Some(s) = &fw.services {
            check_nonempty_entries(c, &fp.k("services").k("enabled"), "service", &s.enabled);
            check_nonempty_entries(c, &fp.k("services").k("disabled"), "service", &s.disabled);
        }
        for (i, z) in fw.zones.iter().enumerate() {
            check_nonempty_entries(c, &fp.k("zones").i(i).k("sources"), "source", &z.sources);
        }
    }
    if let Some(s) = &cu.services {
        let sp = p.k("services");
        check_nonempty_entries(c, &sp.k("enabled"), "unit name", &s.enabled);
        check_nonempty_entries(c, &sp.k("disabled"), "unit name", &s.disabled);
        check_nonempty_entries(c, &sp.k("masked"), "unit name", &s.masked);
        for (i, unit) in s.enabled.iter().enumerate() {
            if s.disabled.contains(unit) || s.masked.contains(unit) {
                c.err(
                    &sp.k("enabled").i(i),
                    format!("unit {unit:?} is both enabled and disabled/masked; keep it in one list only"),
                );
            }
        }
    }
    check_filesystems(c, cu, p);
    if let Some(d) = &cu.disk {
        check_disk(c, d, &p.k("disk"));
    }
    if let Some(mode) = &cu.partitioning_mode {
        match mode.as_str() {
            "" | "auto-lvm" | "lvm" | "raw" => {}
            "btrfs" => c.err(
                &p.k("partitioning_mode"),
                "partitioning mode \"btrfs\" is not supported; use \"auto-lvm\", \"lvm\" or \"raw\", or describe a btrfs layout in customizations.disk",
            ),
            other => c.err(
                &p.k("partitioning_mode"),
                format!("invalid partitioning mode {other:?}; use \"auto-lvm\" (default), \"lvm\" or \"raw\""),
            ),
        }
    }
    if let Some(dev) = &cu.installation_device
        && !(dev.starts_with("/dev/") && dev.len() > 5)
    {
        c.err(
            &p.k("installation_device"),
            format!("installation device {dev:?} must be a device path such as \"/dev/sda\" or \"/dev/disk/by-id/...\""),
        );
    }
    if let Some(f) = &cu.fdo {
        let fp = p.k("fdo");
        match f.manufacturing_server_url.as_deref() {
            None | Some("") => c.err(
                &fp.k("manufacturing_server_url"),
                "fdo requires manufacturing_server_url; set it to the URL of the FDO manufacturing server",
            ),
            Some(u) if !is_http_url(u) => c.err(
                &fp.k("manufacturing_server_url"),
                format!("{u:?} is not an http(s) URL; use e.g. \"http://fdo.example.com:8080\""),
            ),
            Some(_) => {}
        }
        let set = [
            &f.diun_pub_key_insecure,
            &f.diun_pub_key_hash,
            &f.diun_pub_key_root_certs,
        ]
        .iter()
        .filter(|v| v.as_deref().is_some_and(|s| !s.is_empty()))
        .count();
        if set != 1 {
            c.err(
                &fp,
                format!(
                    "fdo needs exactly one of diun_pub_key_insecure, diun_pub_key_hash or diun_pub_key_root_certs ({set} set)"
                ),
            );
        }
    }
    if let Some(o) = &cu.openscap {
        let op = p.k("openscap");
        if o.profile_id.as_deref().is_none_or(|s| s.trim().is_empty()) {
            c.err(
                &op.k("profile_id"),
                "openscap requires profile_id; set it to a profile such as \"xccdf_org.ssgproject.content_profile_cis\"",
            );
        }
        if o.tailoring.is_some() && o.json_tailoring.is_some() {
            c.err(
                &op.k("json_tailoring"),
                "tailoring and json_tailoring cannot both be set; keep one of them",
            );
        }
        if let Some(j) = &o.json_tailoring {
            if j.profile_id.as_deref().is_none_or(str::is_empty) {
                c.err(
                    &op.k("json_tailoring").k("profile_id"),
                    "json_tailoring requires profile_id",
                );
            }
            match j.filepath.as_deref() {
                None | Some("") => c.err(
                    &op.k("json_tailoring").k("filepath"),
                    "json_tailoring requires filepath, the absolute path of the JSON tailoring file",
                ),
                Some(fp) if !fp.starts_with('/') => c.err(
                    &op.k("json_tailoring").k("filepath"),
                    format!("filepath {fp:?} must be an absolute path"),
                ),
                Some(_) => {}
            }
        }
    }
    if let Some(ig) = &cu.ignition {
        let ip = p.k("ignition");
        if ig.embedded.is_some() && ig.firstboot.is_some() {
            c.err(
                &ip,
                "ignition.embedded and ignition.firstboot cannot be used together; keep one of them",
            );
        }
        if let Some(e) = &ig.embedded
            && e.config.as_deref().is_none_or(str::is_empty)
        {
            c.err(
                &ip.k("embedded").k("config"),
                "ignition.embedded requires config (a base64-encoded Ignition config)",
            );
        }
        if let Some(f) = &ig.firstboot {
            let has_url = f.url.as_deref().is_some_and(|u| !u.is_empty());
            let empty = f.empty == Some(true);
            if has_url && empty {
                c.err(
                    &ip.k("firstboot"),
                    "ignition.firstboot.url is mutually exclusive with ignition.firstboot.empty; remove one of them",
                );
            } else if !has_url && !empty {
                c.err(
                    &ip.k("firstboot").k("url"),
                    "ignition.firstboot requires a provisioning url (or empty = true to boot with an empty config)",
                );
            }
        }
    }
    check_fsnodes(c, &cu.directories, &cu.files, p);
    check_repositories(c, cu, p);
    if let Some(inst) = &cu.installer {
        let ip = p.k("installer");
        if inst
            .kickstart
            .as_ref()
            .is_some_and(|k| !k.contents.is_empty())
        {
            if inst.unattended == Some(true) {
                c.err(
                    &ip.k("unattended"),
                    "installer.unattended is not supported when adding custom kickstart contents; put the options in the kickstart instead",
                );
            }
            if !inst.sudo_nopasswd.is_empty() {
                c.err(
                    &ip.k("sudo-nopasswd"),
                    "installer.sudo-nopasswd is not supported when adding custom kickstart contents; put a sudoers rule in the kickstart instead",
                );
            }
        }
        if let Some(m) = &inst.modules
            && m.disable.iter().any(|d| d == USERS_MODULE)
            && !(cu.user.is_empty() && cu.group.is_empty())
        {
            c.err(
                &ip.k("modules").k("disable"),
                format!("blueprint contains user or group customizations but disables the required Users Anaconda module ({USERS_MODULE}); remove it from the list"),
            );
        }
    }
    if let Some(ca) = &cu.cacerts {
        for (i, pem) in ca.pem_certs.iter().enumerate() {
            if let Err(e) = check_pem_bundle(pem) {
                c.err(
                    &p.k("cacerts").k("pem_certs").i(i),
                    format!("not a PEM certificate bundle: {e}"),
                );
            }
        }
    }
    if let Some(cs) = &cu.containers_storage
        && let Some(dp) = &cs.destination_path
        && let Err(v) = policy::MOUNTPOINTS.check(dp).and_then(|()| {
            if dp == "/" {
                Err(PolicyViolation::Denied("/"))
            } else {
                Ok(())
            }
        })
    {
        c.err(
            &p.k("containers-storage").k("destination-path"),
            policy_message("destination-path", dp, &v),
        );
    }
    if let Some(fb) = &cu.firstboot {
        check_firstboot(c, &fb.scripts, &p.k("firstboot").k("scripts"));
    }
    if let Some(iso) = &cu.iso {
        let ip = p.k("iso");
        if let Some(v) = &iso.volume_id
            && (v.is_empty()
                || v.len() > 32
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'$' | b'-')))
        {
            c.err(
                &ip.k("volume_id"),
                format!("invalid volume id {v:?}: use 1 to 32 letters, numbers, '-', '_', '.' and '$' only"),
            );
        }
        for (key, val) in [
            ("application_id", &iso.application_id),
            ("publisher", &iso.publisher),
        ] {
            if let Some(v) = val
                && v.len() > 128
            {
                c.err(
                    &ip.k(key),
                    format!(
                        "{key} is {} bytes long; ISO 9660 allows at most 128",
                        v.len()
                    ),
                );
            }
        }
    }
    if let Some(s) = &cu.sshd {
        let sp = p.k("sshd");
        if let Some(v) = &s.permit_root_login
            && !matches!(
                v.as_str(),
                "yes" | "no" | "prohibit-password" | "without-password" | "forced-commands-only"
            )
        {
            c.err(
                &sp.k("permit_root_login"),
                format!("permit_root_login {v:?} is not valid; use \"yes\", \"no\", \"prohibit-password\" or \"forced-commands-only\""),
            );
        }
        if let Some(i) = s.client_alive_interval
            && i < 0
        {
            c.err(
                &sp.k("client_alive_interval"),
                format!(
                    "client_alive_interval {i} is negative; use a number of seconds (0 disables it)"
                ),
            );
        }
    }
}

/// Anaconda's D-Bus name of the module that creates users and groups.
const USERS_MODULE: &str = "org.fedoraproject.Anaconda.Modules.Users";

fn check_users_groups(c: &mut Checker, cu: &Customizations, p: &P) {
    let mut seen_users: HashMap<&str, usize> = HashMap::new();
    for (i, u) in cu.user.iter().enumerate() {
        let up = p.k("user").i(i);
        if u.name.is_empty() {
            c.err(&up.k("name"), "user name is required; set name = \"...\"");
        } else if !is_user_name(&u.name) {
            c.err(
                &up.k("name"),
                format!("user name {:?} is not valid: use up to 32 letters, digits, '_', '.' or '-', not starting with '-'", u.name),
            );
        } else if let Some(first) = seen_users.insert(u.name.as_str(), i) {
            c.err(
                &up.k("name"),
                format!("user {:?} is defined twice (also customizations.user[{first}]); merge the two entries", u.name),
            );
        }
        for (key, val) in [("home", &u.home), ("shell", &u.shell)] {
            if let Some(v) = val
                && !v.starts_with('/')
            {
                c.err(
                    &up.k(key),
                    format!(
                        "{key} {v:?} must be an absolute path (e.g. \"/{}\")",
                        v.trim_start_matches('/')
                    ),
                );
            }
        }
        for (gi, g) in u.groups.iter().enumerate() {
            if !is_group_name(g) {
                c.err(
                    &up.k("groups").i(gi),
                    format!("group name {g:?} is not valid: use up to 32 letters, digits, '_' or '-', not starting with '-'"),
                );
            }
        }
        if let Some(id) = u.uid {
            check_id(c, &up.k("uid"), "uid", id);
        }
        if let Some(id) = u.gid {
            check_id(c, &up.k("gid"), "gid", id);
        }
    }
    let mut seen_names: HashMap<&str, usize> = HashMap::new();
    let mut seen_gids: HashMap<i64, usize> = HashMap::new();
    for (i, g) in cu.group.iter().enumerate() {
        let gp = p.k("group").i(i);
        if g.name.is_empty() {
            c.err(&gp.k("name"), "group name is required; set name = \"...\"");
        } else if !is_group_name(&g.name) {
            c.err(
                &gp.k("name"),
                format!("group name {:?} is not valid: use up to 32 letters, digits, '_' or '-', not starting with '-'", g.name),
            );
        } else if let Some(first) = seen_names.insert(g.name.as_str(), i) {
            c.err(
                &gp.k("name"),
                format!("duplicate group name {:?} (also customizations.group[{first}]); group names must be unique", g.name),
            );
        }
        if let Some(gid) = g.gid {
            check_id(c, &gp.k("gid"), "gid", gid);
            if let Some(first) = seen_gids.insert(gid, i) {
                c.err(
                    &gp.k("gid"),
                    format!("duplicate gid {gid} (also customizations.group[{first}]); group ids must be unique"),
                );
            }
        }
    }
}

fn check_firewall_port(port: &str) -> Result<(), String> {
    let usage = "use \"PORT:PROTOCOL\", \"FROM-TO:PROTOCOL\" or \"SERVICE:PROTOCOL\" (e.g. \"22:tcp\", \"5900-5910:tcp\", \"imap:tcp\") with protocol tcp, udp, sctp or dccp";
    let Some((ports, proto)) = port.rsplit_once(':') else {
        return Err(format!("firewall port {port:?} has no protocol; {usage}"));
    };
    if !matches!(proto, "tcp" | "udp" | "sctp" | "dccp") {
        return Err(format!(
            "firewall port {port:?} has unknown protocol {proto:?}; {usage}"
        ));
    }
    let parse = |s: &str| -> Option<u32> {
        if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u32>().ok().filter(|n| (1..=65535).contains(n))
    };
    if ports.starts_with(|ch: char| ch.is_ascii_digit()) {
        let ok = match ports.split_once('-') {
            Some((a, b)) => matches!((parse(a), parse(b)), (Some(x), Some(y)) if x <= y),
            None => parse(ports).is_some(),
        };
        if !ok {
            return Err(format!(
                "firewall port {port:?} is not a valid port or range (ports are 1-65535, ranges FROM-TO with FROM <= TO); {usage}"
            ));
        }
    } else if ports.is_empty()
        || !ports.starts_with(|ch: char| ch.is_ascii_alphabetic())
        || !ports
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+'))
    {
        return Err(format!(
            "firewall port {port:?} is not a port number or service name; {usage}"
        ));
    }
    Ok(())
}

fn check_filesystems(c: &mut Checker, cu: &Customizations, p: &P) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, fs) in cu.filesystem.iter().enumerate() {
        let fp = p.k("filesystem").i(i);
        match (&fs.minsize, &fs.size) {
            (Some(_), Some(_)) => c.err(
                &fp.k("size"),
                "size and minsize cannot both be set (size is a deprecated alias for minsize); keep only minsize",
            ),
            (None, None) => c.err(&fp.k("minsize"), "minsize is required; set e.g. minsize = \"10 GiB\""),
            (Some(s), None) => check_nonzero_size(c, &fp.k("minsize"), s),
            (None, Some(s)) => check_nonzero_size(c, &fp.k("size"), s),
        }
        check_path_policy(
            c,
            &fp.k("mountpoint"),
            "mountpoint",
            &fs.mountpoint,
            &policy::MOUNTPOINTS,
        );
        if let Some(first) = seen.insert(fs.mountpoint.as_str(), i) {
            c.err(
                &fp.k("mountpoint"),
                format!(
                    "duplicate mountpoint {:?} (also customizations.filesystem[{first}])",
                    fs.mountpoint
                ),
            );
        }
    }
    if !cu.filesystem.is_empty() && cu.disk.is_some() {
        c.err(
            &p.k("disk"),
            "the filesystem and disk customizations cannot be used together; describe every mountpoint in customizations.disk.partitions instead",
        );
    }
}

const PLAIN_FS_TYPES: &[&str] = &["ext4", "xfs", "vfat"];

fn check_disk(c: &mut Checker, d: &DiskCustomization, p: &P) {
    let table = d.table_type.as_deref().unwrap_or("");
    match table {
        "" | "gpt" => {}
        "dos" => {
            if d.partitions.len() > 4 {
                c.err(
                    &p.k("partitions"),
                    format!("\"dos\" partition table type only supports up to 4 partitions: got {}; use type = \"gpt\" or merge partitions", d.partitions.len()),
                );
            }
        }
        other => c.err(
            &p.k("type"),
            format!("unknown partition table type {other:?}; use \"gpt\" or \"dos\""),
        ),
    }
    if let Some(s) = d.sector_size
        && !(s > 0 && (s & (s - 1)) == 0)
    {
        c.err(
            &p.k("sector_size"),
            format!("sector_size must be a power of 2 (e.g. 512 or 4096), got {s}"),
        );
    }
    if let Some(s) = &d.minsize {
        check_nonzero_size(c, &p.k("minsize"), s);
    }
    let mut mountpoints: HashMap<String, String> = HashMap::new();
    let mut vg_names: HashSet<&str> = HashSet::new();
    let (mut lvm, mut btrfs) = (0usize, 0usize);
    for (i, part) in d.partitions.iter().enumerate() {
        let pp = p.k("partitions").i(i);
        check_nonzero_size(c, &pp.k("minsize"), &part.minsize);
        check_partition_ids(c, part, table, &pp);
        match part.kind() {
            PartitionKind::Plain => check_plain(c, part, &pp, &mut mountpoints),
            PartitionKind::Lvm => {
                lvm += 1;
                if let Some(name) = part.name.as_deref() {
                    if let Err(e) = check_lvm_name(name) {
                        c.err(&pp.k("name"), format!("volume group name {name:?} {e}"));
                    }
                    if !vg_names.insert(name) {
                        c.err(&pp.k("name"), format!("duplicate LVM volume group name {name:?}; volume group names must be unique"));
                    }
                }
                check_lvm(c, part, &pp, &mut mountpoints);
            }
            PartitionKind::Btrfs => {
                btrfs += 1;
                check_btrfs(c, part, &pp, &mut mountpoints);
            }
        }
    }
    if lvm > 0 && btrfs > 0 {
        c.err(
            &p.k("partitions"),
            "btrfs and lvm partitioning cannot be combined; use one of them",
        );
    } else if lvm > 1 {
        c.err(&p.k("partitions"), "multiple LVM volume groups are not supported; put all logical volumes in one lvm partition");
    } else if btrfs > 1 {
        c.err(
            &p.k("partitions"),
            "multiple btrfs volumes are not supported; put all subvolumes in one btrfs partition",
        );
    }
}

fn check_partition_ids(c: &mut Checker, part: &PartitionCustomization, table: &str, pp: &P) {
    if let Some(pt) = part.part_type.as_deref().filter(|s| !s.is_empty()) {
        let is_dos = pt.len() == 2 && pt.bytes().all(|b| b.is_ascii_hexdigit());
        let ok = match table {
            "gpt" => is_uuid(pt),
            "dos" => is_dos,
            _ => is_uuid(pt) || is_dos,
        };
        if !ok {
            let want = match table {
                "gpt" => "a partition type GUID such as \"0fc63daf-8483-4772-8e79-3d69d8477de4\"",
                "dos" => "a 2-digit hex partition type such as \"83\"",
                _ => {
                    "a GUID for GPT partition tables or a 2-digit hex number for DOS partition tables"
                }
            };
            c.err(
                &pp.k("part_type"),
                format!("invalid part_type {pt:?}: must be {want}"),
            );
        }
    }
    if let Some(u) = part.part_uuid.as_deref().filter(|s| !s.is_empty()) {
        if table == "dos" {
            c.err(&pp.k("part_uuid"), "part_uuid is not supported for dos partition tables; remove it or use type = \"gpt\"");
        } else if !is_uuid(u) {
            c.err(&pp.k("part_uuid"), format!("invalid part_uuid {u:?}: must be a UUID such as \"6a4d0d8a-2f4c-4b6e-9c3a-1d2e3f405162\""));
        }
    }
    if let Some(l) = part.part_label.as_deref().filter(|s| !s.is_empty()) {
        if table == "dos" {
            c.err(&pp.k("part_label"), "part_label is not supported for dos partition tables; remove it or use type = \"gpt\"");
        } else if l.encode_utf16().count() > 36 {
            c.err(
                &pp.k("part_label"),
                "part_label is too long: GPT labels hold at most 36 UTF-16 characters",
            );
        }
    }
}

/// Mountpoint shape, policy and uniqueness shared by partitions, LVs and subvolumes.
fn check_disk_mountpoint(
    c: &mut Checker,
    path: &P,
    mp: Option<&str>,
    mountpoints: &mut HashMap<String, String>,
) -> bool {
    let Some(mp) = mp.filter(|m| !m.is_empty()) else {
        c.err(path, "mountpoint is required (e.g. \"/var\")");
        return false;
    };
    if let Err(v) = policy::MOUNTPOINTS.check(mp) {
        c.err(path, policy_message("mountpoint", mp, &v));
        return false;
    }
    let here = path.text();
    if let Some(first) = mountpoints.get(mp) {
        c.err(
            path,
            format!("duplicate mountpoint {mp:?} in partitioning customizations (also {first})"),
        );
        return false;
    }
    mountpoints.insert(mp.to_owned(), here);
    true
}

fn check_plain(
    c: &mut Checker,
    part: &PartitionCustomization,
    pp: &P,
    mps: &mut HashMap<String, String>,
) {
    match part.fs_type.as_deref() {
        Some(t @ ("swap" | "none")) => {
            if let Some(mp) = part.mountpoint.as_deref().filter(|m| !m.is_empty()) {
                c.err(
                    &pp.k("mountpoint"),
                    format!("mountpoint for {t} partition must be empty (got {mp:?}); remove it"),
                );
            }
        }
        fs => {
            let mp_ok =
                check_disk_mountpoint(c, &pp.k("mountpoint"), part.mountpoint.as_deref(), mps);
            match fs {
                Some(f) if PLAIN_FS_TYPES.contains(&f) => {
                    if mp_ok && let Some(mp) = &part.mountpoint {
                        check_fs_for_mountpoint(c, &pp.k("fs_type"), mp, f);
                    }
                }
                Some(f) => c.err(
                    &pp.k("fs_type"),
                    format!("unknown or invalid filesystem type (fs_type) {f:?}; use ext4, xfs, vfat, swap or none"),
                ),
                None => c.err(&pp.k("fs_type"), "fs_type is required for a plain partition; use ext4, xfs, vfat, swap or none"),
            }
        }
    }
}

fn check_fs_for_mountpoint(c: &mut Checker, path: &P, mp: &str, fs: &str) {
    let ok = match mp {
        "/boot" => matches!(fs, "xfs" | "ext4"),
        "/boot/efi" => fs == "vfat",
        _ => true,
    };
    if !ok {
        let want = if mp == "/boot" { "xfs or ext4" } else { "vfat" };
        c.err(
            path,
            format!("unsupported filesystem type for {mp:?}: {fs}; use {want}"),
        );
    }
}

/// LVM object names: `[A-Za-z0-9+_.-]`, not starting with '-', not `.`/`..`, at most 127.
fn check_lvm_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty()
        || name.len() > 127
        || name.starts_with('-')
        || name == "."
        || name == ".."
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'_' | b'.' | b'-'))
    {
        return Err(
            "is not valid: use up to 127 letters, digits, '+', '_', '.' or '-', not starting with '-'",
        );
    }
    Ok(())
}

fn check_lvm(
    c: &mut Checker,
    part: &PartitionCustomization,
    pp: &P,
    mps: &mut HashMap<String, String>,
) {
    if part.logical_volumes.is_empty() {
        c.err(&pp.k("logical_volumes"), "an lvm partition needs at least one logical volume ([[...logical_volumes]] with minsize and mountpoint)");
    }
    let mut lv_names: HashSet<&str> = HashSet::new();
    for (i, lv) in part.logical_volumes.iter().enumerate() {
        let lp = pp.k("logical_volumes").i(i);
        check_nonzero_size(c, &lp.k("minsize"), &lv.minsize);
        if let Some(name) = lv.name.as_deref() {
            if let Err(e) = check_lvm_name(name) {
                c.err(&lp.k("name"), format!("logical volume name {name:?} {e}"));
            }
            if !lv_names.insert(name) {
                c.err(
                    &lp.k("name"),
                    format!("duplicate LVM logical volume name {name:?} in the volume group"),
                );
            }
        }
        if lv.fs_type.as_deref() == Some("swap") {
            if let Some(mp) = lv.mountpoint.as_deref().filter(|m| !m.is_empty()) {
                c.err(
                    &lp.k("mountpoint"),
                    format!(
                        "mountpoint for a swap logical volume must be empty (got {mp:?}); remove it"
                    ),
                );
            }
            continue;
        }
        let mp_ok = check_disk_mountpoint(c, &lp.k("mountpoint"), lv.mountpoint.as_deref(), mps);
        if mp_ok
            && let Some(mp) = lv.mountpoint.as_deref()
            && matches!(mp, "/boot" | "/boot/efi")
        {
            c.err(&lp.k("mountpoint"), format!("invalid mountpoint {mp:?} for a logical volume: it must be on a plain partition"));
        }
        match lv.fs_type.as_deref() {
            Some(f) if PLAIN_FS_TYPES.contains(&f) => {}
            Some(f) => c.err(&lp.k("fs_type"), format!("unknown or invalid filesystem type (fs_type) {f:?} for a logical volume; use ext4, xfs, vfat or swap")),
            None => c.err(&lp.k("fs_type"), "fs_type is required for a logical volume; use ext4, xfs, vfat or swap"),
        }
    }
}

fn check_btrfs(
    c: &mut Checker,
    part: &PartitionCustomization,
    pp: &P,
    mps: &mut HashMap<String, String>,
) {
    if part.subvolumes.is_empty() {
        c.err(
            &pp.k("subvolumes"),
            "btrfs volume requires subvolumes ([[...subvolumes]] with name and mountpoint)",
        );
    }
    let mut names: HashSet<&str> = HashSet::new();
    for (i, sv) in part.subvolumes.iter().enumerate() {
        let sp = pp.k("subvolumes").i(i);
        if sv.name.is_empty() {
            c.err(
                &sp.k("name"),
                "btrfs subvolume with empty name; set name = \"root\" (for example)",
            );
        } else if !names.insert(sv.name.as_str()) {
            c.err(
                &sp.k("name"),
                format!("duplicate btrfs subvolume name {:?}", sv.name),
            );
        }
        if check_disk_mountpoint(c, &sp.k("mountpoint"), Some(&sv.mountpoint), mps)
            && sv.mountpoint == "/boot/efi"
        {
            c.err(&sp.k("mountpoint"), "invalid mountpoint \"/boot/efi\" for a btrfs subvolume: it must be a vfat plain partition");
        }
    }
}

fn check_owner(c: &mut Checker, path: &P, owner: &Owner, is_user: bool) {
    match owner {
        Owner::Name(n) => {
            let ok = if is_user {
                is_user_name(n)
            } else {
                is_group_name(n)
            };
            if !ok {
                let rule = if is_user {
                    "letters, digits, '_', '.' or '-' (up to 32, not starting with '-')"
                } else {
                    "letters, digits, '_' or '-' (up to 32, not starting with '-')"
                };
                c.err(
                    path,
                    format!(
                        "{:?} is not a valid {} name: use {rule}, or a numeric id",
                        n,
                        if is_user { "user" } else { "group" }
                    ),
                );
            }
        }
        Owner::Id(id) => check_id(c, path, if is_user { "uid" } else { "gid" }, *id),
    }
}

fn check_fsnodes(
    c: &mut Checker,
    dirs: &[DirectoryCustomization],
    files: &[FileCustomization],
    p: &P,
) {
    // path -> (field path text, is_file)
    let mut nodes: HashMap<&str, (String, bool)> = HashMap::new();
    for (i, d) in dirs.iter().enumerate() {
        let dp = p.k("directories").i(i);
        check_node_common(
            c,
            &dp,
            &d.path,
            d.user.as_ref(),
            d.group.as_ref(),
            d.mode.as_deref(),
            &policy::CUSTOM_DIRECTORIES,
            "directory",
        );
        if let Some((first, _)) = nodes.get(d.path.as_str()) {
            c.err(
                &dp.k("path"),
                format!(
                    "duplicate files / directory customization path {:?} (also {first})",
                    d.path
                ),
            );
        } else {
            nodes.insert(d.path.as_str(), (dp.text(), false));
        }
    }
    for (i, f) in files.iter().enumerate() {
        let fp = p.k("files").i(i);
        check_node_common(
            c,
            &fp,
            &f.path,
            f.user.as_ref(),
            f.group.as_ref(),
            f.mode.as_deref(),
            &policy::CUSTOM_FILES,
            "file",
        );
        if f.data.is_some() && f.uri.is_some() {
            c.err(
                &fp,
                "data and uri cannot both be set; keep the inline data or the file:// uri",
            );
        }
        if let Some(u) = &f.uri {
            match u.strip_prefix("file://") {
                Some(local) if local.starts_with('/') && local.len() > 1 => {}
                Some(_) => c.err(&fp.k("uri"), format!("uri {u:?} must name an absolute path: \"file:///path/on/build/host\"")),
                None => c.err(&fp.k("uri"), format!("uri {u:?} is not supported: only file:// URIs (\"file:///path/on/build/host\") are allowed")),
            }
        }
        if let Some((first, _)) = nodes.get(f.path.as_str()) {
            c.err(
                &fp.k("path"),
                format!(
                    "duplicate files / directory customization path {:?} (also {first})",
                    f.path
                ),
            );
        } else {
            nodes.insert(f.path.as_str(), (fp.text(), true));
        }
    }
    // A file cannot be the parent of another node.
    let all = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| (d.path.as_str(), p.k("directories").i(i).k("path")))
        .chain(
            files
                .iter()
                .enumerate()
                .map(|(i, f)| (f.path.as_str(), p.k("files").i(i).k("path"))),
        );
    for (path, at) in all {
        let mut parent = path;
        while let Some(idx) = parent.rfind('/') {
            parent = &parent[..idx];
            if parent.is_empty() {
                break;
            }
            if let Some((first, true)) = nodes.get(parent) {
                c.err(
                    &at,
                    format!(
                        "{path:?} is below {parent:?}, which is a file ({first}); a file cannot be the parent of another file or directory"
                    ),
                );
                break;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn check_node_common(
    c: &mut Checker,
    np: &P,
    path: &str,
    user: Option<&Owner>,
    group: Option<&Owner>,
    mode: Option<&str>,
    pol: &PathPolicies,
    what: &str,
) {
    if path == "/" {
        c.err(
            &np.k("path"),
            format!("the {what} path cannot be the root directory \"/\""),
        );
    } else {
        check_path_policy(c, &np.k("path"), &format!("{what} path"), path, pol);
    }
    if let Some(u) = user {
        check_owner(c, &np.k("user"), u, true);
    }
    if let Some(g) = group {
        check_owner(c, &np.k("group"), g, false);
    }
    if let Some(m) = mode
        && !is_mode(m)
    {
        c.err(
            &np.k("mode"),
            format!("invalid mode {m:?}: must be an octal number such as \"0644\" or \"755\""),
        );
    }
}

fn check_repositories(c: &mut Checker, cu: &Customizations, p: &P) {
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (i, r) in cu.repositories.iter().enumerate() {
        let rp = p.k("repositories").i(i);
        if r.id.trim().is_empty() {
            c.err(
                &rp.k("id"),
                "repository ID is required; set id = \"my-repo\"",
            );
        } else if let Some(first) = ids.insert(r.id.as_str(), i) {
            c.err(&rp.k("id"), format!("duplicate repository id {:?} (also customizations.repositories[{first}]); ids must be unique", r.id));
        }
        let fname = r.effective_filename();
        let stem_ok = fname.strip_suffix(".repo").is_some_and(|stem| {
            !stem.is_empty()
                && stem.len() <= 250
                && stem
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        });
        if !stem_ok {
            let at = if r.filename.as_deref().is_some_and(|f| !f.is_empty()) {
                rp.k("filename")
            } else {
                rp.k("id")
            };
            c.err(
                &at,
                format!("repository filename {fname:?} is invalid: use letters, digits, '_', '.' and '-' only, ending in \".repo\""),
            );
        }
        let has_source = !r.baseurls.is_empty()
            || r.mirrorlist.as_deref().is_some_and(|s| !s.is_empty())
            || r.metalink.as_deref().is_some_and(|s| !s.is_empty());
        if !has_source {
            c.err(&rp, "repository base URL, mirrorlist or metalink is required; set baseurls = [\"https://...\"]");
        }
        for (bi, u) in r.baseurls.iter().enumerate() {
            if !is_url_like(u) {
                c.err(
                    &rp.k("baseurls").i(bi),
                    format!("base URL {u:?} is not a URL; use e.g. \"https://example.com/repo/\""),
                );
            }
        }
        if r.gpgcheck == Some(true) && r.gpgkeys.is_empty() {
            c.err(&rp.k("gpgkeys"), "repository gpg check is set to true but no gpg keys are provided; add gpgkeys or set gpgcheck = false");
        }
        for (ki, key) in r.gpgkeys.iter().enumerate() {
            let armored = key.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----")
                && key.contains("-----END PGP PUBLIC KEY BLOCK-----");
            if !armored && !is_url_like(key) {
                c.err(
                    &rp.k("gpgkeys").i(ki),
                    "repository gpg key is not a valid URL or a valid ASCII-armored gpg key",
                );
            }
        }
    }
}

fn check_firstboot(c: &mut Checker, scripts: &[FirstbootScript], p: &P) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, s) in scripts.iter().enumerate() {
        let sp = p.i(i);
        if let Some(name) = s.name() {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
            {
                c.err(&sp.k("name"), format!("firstboot script name {name:?} may only contain letters, digits, '-' and '_'"));
            } else if let Some(first) = names.insert(name, i) {
                c.err(&sp.k("name"), format!("duplicate firstboot script name {name:?} (also scripts[{first}]); names must be unique"));
            }
        }
        let (after, before, cacerts) = match s {
            FirstbootScript::Custom(cs) => {
                if cs.contents.trim().is_empty() {
                    c.err(&sp.k("contents"), "custom firstboot script has empty contents; put the script text in contents");
                }
                (&cs.after, &cs.before, None)
            }
            FirstbootScript::Satellite(ss) => {
                if ss.command.trim().is_empty() {
                    c.err(&sp.k("command"), "missing command field for satellite firstboot customization; paste the registration command");
                }
                (&ss.after, &ss.before, Some(&ss.cacerts))
            }
            FirstbootScript::Aap(a) => {
                if !is_http_url(&a.job_template_url) {
                    c.err(&sp.k("job_template_url"), format!("job_template_url {:?} must be an http(s) URL such as \"https://aap.example.com/api/v2/job_templates/9/callback/\"", a.job_template_url));
                }
                if a.host_config_key.trim().is_empty() {
                    c.err(
                        &sp.k("host_config_key"),
                        "missing host_config_key for aap firstboot customization",
                    );
                }
                (&a.after, &a.before, Some(&a.cacerts))
            }
        };
        check_nonempty_entries(c, &sp.k("after"), "unit name", after);
        check_nonempty_entries(c, &sp.k("before"), "unit name", before);
        if let Some(certs) = cacerts {
            for (ci, pem) in certs.iter().enumerate() {
                if let Err(e) = check_pem_bundle(pem) {
                    c.err(
                        &sp.k("cacerts").i(ci),
                        format!("not a PEM certificate bundle: {e}"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates() {
        assert!(
            is_mode("0644")
                && is_mode("755")
                && !is_mode("0999")
                && !is_mode("00644")
                && !is_mode("64")
        );
        assert!(is_uuid("0fc63daf-8483-4772-8e79-3d69d8477de4") && !is_uuid("0fc63daf84834772"));
        assert!(
            is_timezone("Europe/Berlin")
                && is_timezone("UTC")
                && is_timezone("America/Argentina/Buenos_Aires")
        );
        assert!(
            is_timezone("Etc/GMT+5") && !is_timezone("Berlin") && !is_timezone("europe/berlin")
        );
        assert!(is_hostname("web-01.example.com") && !is_hostname("bad_host") && !is_hostname(""));
        assert!(check_firewall_port("22:tcp").is_ok());
        assert!(check_firewall_port("5900-5910:udp").is_ok());
        assert!(check_firewall_port("imap:tcp").is_ok());
        for bad in [
            "22",
            "22:xyz",
            "0:tcp",
            "65536:tcp",
            "10-5:tcp",
            ":tcp",
            "a b:tcp",
            "1-:tcp",
        ] {
            assert!(check_firewall_port(bad).is_err(), "{bad}");
        }
        assert!(is_user_name("alice") && !is_user_name("-x") && !is_user_name(&"a".repeat(33)));
        assert!(is_group_name("wheel") && !is_group_name("a.b"));
    }
}
