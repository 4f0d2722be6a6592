//! `locale`: generates locales and sets the default one. Options:
//! `{"default": "en_US.UTF-8", "generate": ["en_US.UTF-8", "de_DE.UTF-8"]}`.
//!
//! - Every name in `generate` must be listed in the tree's `/usr/share/i18n/SUPPORTED`
//!   (package `locales`); `C`, `POSIX` and `C.UTF-8` are built into glibc and need nothing.
//!   Each is enabled in `/etc/locale.gen` (its commented line uncommented, or a line
//!   added; other lines kept), then the tree's `locale-gen` runs in the sandbox.
//! - `/etc/default/locale` gets `LANG=<default>` (other lines kept).
//!
//! `locale-gen` removes the old `/usr/lib/locale/locale-archive` before writing a new one;
//! the archive is still given an inode of its own first, in case a `localedef` updates it
//! in place.

use serde::Deserialize;

use super::StageContext;
use super::treefs::{self, Meta, Tree};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    generate: Vec<String>,
}

/// Locales glibc has without generating anything.
pub fn is_builtin(name: &str) -> bool {
    matches!(name, "C" | "POSIX" | "C.UTF-8" | "C.utf8")
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 128
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.@-".contains(&b))
    {
        return Err(format!(
            "invalid locale name {name:?}; use a name such as \"en_US.UTF-8\""
        ));
    }
    Ok(())
}

fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '@')
        .flat_map(char::to_lowercase)
        .collect()
}

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let opts: Options = treefs::options("locale", ctx)?;
    for n in opts.default.iter().chain(&opts.generate) {
        check_name(n)?;
    }
    let tree = Tree::open(ctx.tree)?;
    let wanted: Vec<&str> = opts
        .generate
        .iter()
        .map(String::as_str)
        .filter(|n| !is_builtin(n))
        .collect();
    if !wanted.is_empty() {
        let supported = tree.read_string("/usr/share/i18n/SUPPORTED")?.ok_or(
            "locales need the locales package in the image (/usr/share/i18n/SUPPORTED is missing)",
        )?;
        if !tree.is_executable("/usr/sbin/locale-gen") {
            return Err(
                "locales need the locales package in the image (locale-gen is missing)".into(),
            );
        }
        let entries: Vec<(&str, &str)> = supported
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some((w.next()?, w.next()?))
            })
            .collect();
        let mut lines: Vec<String> = tree
            .read_string("/etc/locale.gen")?
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        for name in &wanted {
            let Some((_, charset)) = entries.iter().find(|(n, _)| n == name) else {
                let near: Vec<&str> = entries
                    .iter()
                    .filter(|(n, _)| squash(n) == squash(name))
                    .map(|(n, _)| *n)
                    .collect();
                let hint = if near.is_empty() {
                    "names look like \"en_US.UTF-8\"".to_owned()
                } else {
                    format!("did you mean {}?", near.join(" or "))
                };
                return Err(format!(
                    "unknown locale {name:?}: it is not in the image's /usr/share/i18n/SUPPORTED; {hint}"
                ));
            };
            let line = format!("{name} {charset}");
            let enabled = lines
                .iter()
                .any(|l| l.split_whitespace().eq(line.split_whitespace()));
            if enabled {
                continue;
            }
            let commented = lines.iter().position(|l| {
                l.trim_start()
                    .strip_prefix('#')
                    .is_some_and(|rest| rest.split_whitespace().eq(line.split_whitespace()))
            });
            match commented {
                Some(i) => lines[i] = line,
                None => lines.push(line),
            }
        }
        let mut text = lines.join("\n");
        text.push('\n');
        tree.write("/etc/locale.gen", text.as_bytes(), Meta::root(0o644))?;
        tree.unshare("/usr/lib/locale/locale-archive")?;
        let sb = ctx.chroot_sandbox();
        treefs::run(ctx, &sb, "generating locales", "locale-gen", &[])?;
    }
    if let Some(lang) = &opts.default {
        if !is_builtin(lang) && !opts.generate.contains(lang) {
            return Err(format!(
                "the default locale {lang:?} is not among the generated ones ({})",
                opts.generate.join(", ")
            ));
        }
        let mut lines: Vec<String> = tree
            .read_string("/etc/default/locale")?
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim_start().starts_with("LANG="))
            .map(str::to_owned)
            .collect();
        lines.insert(0, format!("LANG={lang}"));
        let mut text = lines.join("\n");
        text.push('\n');
        tree.write("/etc/default/locale", text.as_bytes(), Meta::root(0o644))?;
        (ctx.log)(&format!("/etc/default/locale: LANG={lang}"));
    }
    Ok(())
}
