//! `keyboard`: the keyboard layout of the console and of X11/Wayland. Options:
//! `{"keymap": "de-nodeadkeys", "layout": "de", "variant": "nodeadkeys"}` (`variant`
//! optional).
//!
//! - `/etc/vconsole.conf` gets `KEYMAP=<keymap>` (systemd's console setup);
//! - `/etc/default/keyboard` (Debian's console-setup and keyboard-configuration, also read
//!   by systemd-localed for X11) gets `XKBLAYOUT="<layout>"` and `XKBVARIANT="<variant>"`;
//!   other lines of both files are kept, a missing `/etc/default/keyboard` is written with
//!   Debian's defaults (`pc105`, no options).
//!
//! When the tree has XKB data (`/usr/share/X11/xkb/symbols`, package xkb-data), the layout
//! and the variant must exist in it.

use serde::Deserialize;

use super::StageContext;
use super::treefs::{self, Meta, Tree};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    keymap: String,
    layout: String,
    #[serde(default)]
    variant: Option<String>,
}

fn word(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty()
        || s.len() > 64
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-+".contains(&b))
    {
        return Err(format!("invalid keyboard {what} {s:?}"));
    }
    Ok(())
}

/// `lines` with every `KEY=` line replaced by `new` (added when absent).
fn set_vars(text: &str, vars: &[(&str, String)]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for (key, value) in vars {
        let line = format!("{key}={value}");
        let prefix = format!("{key}=");
        match lines
            .iter()
            .position(|l| l.trim_start().starts_with(&prefix))
        {
            Some(i) => {
                lines[i] = line;
                let mut j = i + 1;
                while j < lines.len() {
                    if lines[j].trim_start().starts_with(&prefix) {
                        lines.remove(j);
                    } else {
                        j += 1;
                    }
                }
            }
            None => lines.push(line),
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let opts: Options = treefs::options("keyboard", ctx)?;
    word("keymap", &opts.keymap)?;
    word("layout", &opts.layout)?;
    let variant = opts.variant.clone().unwrap_or_default();
    if !variant.is_empty() {
        word("variant", &variant)?;
    }
    let tree = Tree::open(ctx.tree)?;
    if tree.resolve_type("/usr/share/X11/xkb/symbols")? == Some(rustix::fs::FileType::Directory) {
        let symbols = tree
            .read_string(&format!("/usr/share/X11/xkb/symbols/{}", opts.layout))
            .ok()
            .flatten()
            .ok_or_else(|| {
                format!(
                    "unknown keyboard layout {:?}: it is not in the image's /usr/share/X11/xkb/symbols",
                    opts.layout
                )
            })?;
        if !variant.is_empty() && !symbols.contains(&format!("xkb_symbols \"{variant}\"")) {
            return Err(format!(
                "unknown variant {variant:?} of keyboard layout {:?} (see /usr/share/X11/xkb/symbols/{})",
                opts.layout, opts.layout
            ));
        }
    }
    let vconsole = tree.read_string("/etc/vconsole.conf")?.unwrap_or_default();
    tree.write(
        "/etc/vconsole.conf",
        set_vars(&vconsole, &[("KEYMAP", opts.keymap.clone())]).as_bytes(),
        Meta::root(0o644),
    )?;
    let keyboard = tree.read_string("/etc/default/keyboard")?.unwrap_or_else(|| {
        "# KEYBOARD CONFIGURATION FILE\n\n# Consult the keyboard(5) manual page.\n\n\
         XKBMODEL=\"pc105\"\nXKBLAYOUT=\"us\"\nXKBVARIANT=\"\"\nXKBOPTIONS=\"\"\n\nBACKSPACE=\"guess\"\n"
            .to_owned()
    });
    tree.write(
        "/etc/default/keyboard",
        set_vars(
            &keyboard,
            &[
                ("XKBLAYOUT", format!("\"{}\"", opts.layout)),
                ("XKBVARIANT", format!("\"{variant}\"")),
            ],
        )
        .as_bytes(),
        Meta::root(0o644),
    )?;
    (ctx.log)(&format!(
        "KEYMAP={} in /etc/vconsole.conf, XKBLAYOUT={} XKBVARIANT={variant:?} in /etc/default/keyboard",
        opts.keymap, opts.layout
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vars_are_replaced_or_added() {
        assert_eq!(
            set_vars("A=1\nKEYMAP=us\nKEYMAP=fr\n", &[("KEYMAP", "de".into())]),
            "A=1\nKEYMAP=de\n"
        );
        assert_eq!(set_vars("", &[("K", "v".into())]), "K=v\n");
    }
}
