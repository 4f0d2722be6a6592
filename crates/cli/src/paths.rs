//! Where kiln keeps its files when the user does not say.
//!
//! As root (a system service or a build host): FHS paths. Otherwise the XDG base
//! directories, so that a user's kiln never needs write access outside their home.

use std::path::PathBuf;

pub struct Dirs {
    /// Content-addressed store and caches (safe to delete; rebuilt on demand).
    pub store: PathBuf,
    /// Durable state: custom sources, later blueprints and composes.
    pub state: PathBuf,
    /// kiln's own configuration file (may be absent).
    pub config: PathBuf,
}

impl Dirs {
    pub fn defaults() -> Dirs {
        if is_root() {
            return Dirs {
                store: "/var/cache/kiln".into(),
                state: "/var/lib/kiln".into(),
                config: "/etc/kiln/kiln.toml".into(),
            };
        }
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        let xdg = |var: &str, fallback: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .unwrap_or_else(|| home.join(fallback))
                .join("kiln")
        };
        Dirs {
            store: xdg("XDG_CACHE_HOME", ".cache"),
            state: xdg("XDG_STATE_HOME", ".local/state"),
            config: xdg("XDG_CONFIG_HOME", ".config").join("kiln.toml"),
        }
    }
}

fn is_root() -> bool {
    // The effective uid of this process, read without libc: /proc/self/status "Uid:" line.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}
