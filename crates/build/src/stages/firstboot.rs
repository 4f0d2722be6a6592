//! `firstboot`: scripts that run once, in order, when the image first boots. Options:
//!
//! ```json
//! {"scripts": [{"name": "01-register", "contents": "#!/bin/sh\n...", "ignore_failure": false}],
//!  "after": ["cloud-init.service"], "before": []}
//! ```
//!
//! - Each script is installed as `/usr/local/libexec/kiln-firstboot/scripts/<name>`
//!   (0755; names `[A-Za-z0-9_-]`, unique). One without a `#!` line runs with `/bin/sh`.
//! - `/usr/local/libexec/kiln-firstboot/run` runs them in the given order. A script that
//!   succeeded (or whose failure is ignored) leaves `/var/lib/kiln/firstboot/<name>.done`
//!   and is never run again; the first failing script stops the run and fails the unit
//!   (`systemctl --failed` shows it), and the next boot retries from that script. When all
//!   are done, `/var/lib/kiln/firstboot-done` is written.
//! - `/etc/systemd/system/kiln-firstboot.service` (oneshot, `Wants=`/`After=`
//!   `network-online.target` and the `after` units, `Before=` the `before` units,
//!   `ConditionPathExists=!/var/lib/kiln/firstboot-done`, output to the journal and the
//!   console) is enabled with the tree's `systemctl`. One unit runs all scripts, so the
//!   scripts' `after`/`before` units are merged; a unit in both is an error.

use serde::Deserialize;

use super::StageContext;
use super::treefs::{self, Meta, Tree};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    scripts: Vec<Script>,
    #[serde(default)]
    after: Vec<String>,
    #[serde(default)]
    before: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Script {
    name: String,
    contents: String,
    #[serde(default)]
    ignore_failure: bool,
}

pub const DIR: &str = "/usr/local/libexec/kiln-firstboot";
pub const UNIT: &str = "/etc/systemd/system/kiln-firstboot.service";
pub const DONE: &str = "/var/lib/kiln/firstboot-done";

fn runner(scripts: &[Script]) -> String {
    let mut s = String::from(
        "#!/bin/sh\n\
         # kiln-firstboot: runs the image's first-boot scripts once, in order (written by kiln).\n\
         # A script that succeeded, or whose failure is ignored, is not run again; the first\n\
         # failing script stops the run and the next boot retries from it.\n\
         set -u\n\
         state=/var/lib/kiln/firstboot\n\
         mkdir -p \"$state\" || exit 1\n\
         run() { # NAME IGNORE_FAILURE HAS_SHEBANG\n\
         \t[ -e \"$state/$1.done\" ] && return 0\n\
         \techo \"kiln-firstboot: running $1\"\n\
         \tscript=/usr/local/libexec/kiln-firstboot/scripts/$1\n\
         \tif [ \"$3\" = yes ]; then \"$script\"; else /bin/sh \"$script\"; fi\n\
         \trc=$?\n\
         \tif [ \"$rc\" -ne 0 ]; then\n\
         \t\tif [ \"$2\" = yes ]; then\n\
         \t\t\techo \"kiln-firstboot: $1 failed with status $rc (ignored)\" >&2\n\
         \t\telse\n\
         \t\t\techo \"kiln-firstboot: $1 failed with status $rc\" >&2\n\
         \t\t\texit \"$rc\"\n\
         \t\tfi\n\
         \tfi\n\
         \ttouch \"$state/$1.done\"\n\
         }\n",
    );
    let yn = |b: bool| if b { "yes" } else { "no" };
    for sc in scripts {
        s.push_str(&format!(
            "run {} {} {}\n",
            sc.name,
            yn(sc.ignore_failure),
            yn(sc.contents.starts_with("#!"))
        ));
    }
    s.push_str("touch /var/lib/kiln/firstboot-done\necho \"kiln-firstboot: done\"\n");
    s
}

fn unit(after: &[String], before: &[String]) -> String {
    let mut after_line = vec!["network-online.target".to_owned()];
    after_line.extend(after.iter().cloned());
    let mut s = format!(
        "# Written by kiln from the blueprint's firstboot customization.\n\
         [Unit]\n\
         Description=kiln first-boot scripts\n\
         Documentation=file:{DIR}/run\n\
         Wants=network-online.target\n\
         After={}\n",
        after_line.join(" ")
    );
    if !before.is_empty() {
        s.push_str(&format!("Before={}\n", before.join(" ")));
    }
    s.push_str(&format!(
        "ConditionPathExists=!{DONE}\n\n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         ExecStart={DIR}/run\n\
         StandardOutput=journal+console\n\
         StandardError=journal+console\n\
         TimeoutStartSec=infinity\n\n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    ));
    s
}

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let opts: Options = treefs::options("firstboot", ctx)?;
    if opts.scripts.is_empty() {
        return Err("firstboot: no scripts".into());
    }
    let mut names = std::collections::BTreeSet::new();
    for sc in &opts.scripts {
        if sc.name.is_empty()
            || sc.name.len() > 100
            || !sc
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            || sc.name.starts_with('-')
        {
            return Err(format!(
                "invalid first-boot script name {:?}: letters, digits, '_' and '-' only",
                sc.name
            ));
        }
        if !names.insert(sc.name.clone()) {
            return Err(format!("first-boot script {:?} is given twice", sc.name));
        }
    }
    let mut after = Vec::new();
    let mut before = Vec::new();
    for (list, out) in [(&opts.after, &mut after), (&opts.before, &mut before)] {
        for u in list {
            let u = treefs::checked_unit(u)?;
            if !out.contains(&u) {
                out.push(u);
            }
        }
    }
    if let Some(u) = after.iter().find(|u| before.contains(u)) {
        return Err(format!(
            "first-boot scripts must run both after and before {u}: kiln runs them in one unit, so that cannot be satisfied"
        ));
    }
    let tree = Tree::open(ctx.tree)?;
    if !tree.is_executable("/usr/bin/systemctl") && !tree.is_executable("/bin/systemctl") {
        return Err("first-boot scripts need systemd in the image (systemctl is missing)".into());
    }
    for sc in &opts.scripts {
        tree.write(
            &format!("{DIR}/scripts/{}", sc.name),
            sc.contents.as_bytes(),
            Meta::root(0o755),
        )?;
    }
    tree.write(
        &format!("{DIR}/run"),
        runner(&opts.scripts).as_bytes(),
        Meta::root(0o755),
    )?;
    tree.write(UNIT, unit(&after, &before).as_bytes(), Meta::root(0o644))?;
    let sb = ctx.chroot_sandbox();
    treefs::run(
        ctx,
        &sb,
        "enabling kiln-firstboot.service",
        "systemctl",
        &["enable", "kiln-firstboot.service"],
    )?;
    (ctx.log)(&format!(
        "{} first-boot script(s) installed, kiln-firstboot.service enabled",
        opts.scripts.len()
    ));
    Ok(())
}
