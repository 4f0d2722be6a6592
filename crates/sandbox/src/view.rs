//! The sandbox's file system as seen from the host, to look programs up before starting
//! bubblewrap (so that a missing tool gives a clear error instead of an `execvp` failure).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// One mount of the sandbox: a path inside and the host directory it shows, or `None`
/// for a fresh tmpfs (empty when the command starts).
#[derive(Debug, Clone)]
pub(crate) struct Mount {
    pub inside: PathBuf,
    pub host: Option<PathBuf>,
}

/// The mounts in the order bubblewrap makes them (later ones cover earlier ones).
#[derive(Debug, Default, Clone)]
pub(crate) struct View {
    pub mounts: Vec<Mount>,
}

const MAX_SYMLINKS: usize = 40;

enum Step {
    Root,
    Up,
    Name(OsString),
}

fn steps(path: &Path) -> impl Iterator<Item = Step> + '_ {
    path.components().filter_map(|c| match c {
        Component::RootDir | Component::Prefix(_) => Some(Step::Root),
        Component::ParentDir => Some(Step::Up),
        Component::CurDir => None,
        Component::Normal(n) => Some(Step::Name(n.to_os_string())),
    })
}

impl View {
    pub fn push(&mut self, inside: impl Into<PathBuf>, host: Option<PathBuf>) {
        self.mounts.push(Mount {
            inside: inside.into(),
            host,
        });
    }

    /// Host path showing `inside` (absolute, already free of symlinks and `..`).
    fn host_of(&self, inside: &Path) -> Option<PathBuf> {
        let mount = self
            .mounts
            .iter()
            .rev()
            .filter(|m| inside.starts_with(&m.inside))
            .max_by_key(|m| m.inside.components().count())?;
        let rest = inside.strip_prefix(&mount.inside).ok()?;
        Some(mount.host.as_ref()?.join(rest))
    }

    /// Resolves an absolute path inside the sandbox to the host file it names, following
    /// symlinks the way the sandboxed kernel view would (absolute targets from the
    /// sandbox's `/`, not the host's). `None` when it does not exist.
    pub fn resolve(&self, path: &Path) -> Option<PathBuf> {
        let mut queue: VecDeque<Step> = steps(path).collect();
        let mut cur = PathBuf::from("/");
        let mut links = 0;
        while let Some(step) = queue.pop_front() {
            match step {
                Step::Root => cur = PathBuf::from("/"),
                Step::Up => {
                    cur.pop();
                }
                Step::Name(name) => {
                    let next = cur.join(&name);
                    let Some(host) = self.host_of(&next) else {
                        // A directory on a tmpfs that bubblewrap makes as the mount point
                        // of a deeper mount (/run/kiln for /run/kiln/tree).
                        if self
                            .mounts
                            .iter()
                            .any(|m| m.inside.starts_with(&next) && m.inside != next)
                        {
                            cur = next;
                            continue;
                        }
                        return None;
                    };
                    let meta = fs::symlink_metadata(&host).ok()?;
                    if meta.file_type().is_symlink() {
                        links += 1;
                        if links > MAX_SYMLINKS {
                            return None;
                        }
                        let target = fs::read_link(&host).ok()?;
                        let target: Vec<Step> = steps(&target).collect();
                        for s in target.into_iter().rev() {
                            queue.push_front(s);
                        }
                    } else {
                        cur = next;
                    }
                }
            }
        }
        self.host_of(&cur)
    }

    /// Finds `command` the way `execvp` does with `path` (the sandbox's `PATH`) and
    /// `cwd`; returns the host path of the executable.
    pub fn find_program(&self, command: &str, path: &str, cwd: &Path) -> Option<PathBuf> {
        let is_exec = |p: &Path| {
            fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        };
        if command.contains('/') {
            let inside = cwd.join(command);
            return self.resolve(&inside).filter(|p| is_exec(p));
        }
        path.split(':')
            .filter(|d| d.starts_with('/'))
            .filter_map(|d| self.resolve(&Path::new(d).join(command)))
            .find(|p| is_exec(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn exe(p: &Path) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, "#!/bin/sh\n").unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn absolute_symlinks_resolve_inside_the_view_not_on_the_host() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        exe(&root.join("usr/bin/tool"));
        symlink("usr/bin", root.join("bin")).unwrap();
        // An absolute link: must be read as <root>/usr/bin/tool, never /usr/bin/tool of the host.
        symlink("/usr/bin/tool", root.join("usr/bin/alias")).unwrap();
        symlink("/bin/sh-does-not-exist-here", root.join("usr/bin/dangling")).unwrap();
        let mut v = View::default();
        v.push("/", Some(root.clone()));
        v.push("/tmp", None);
        assert_eq!(
            v.find_program("alias", "/bin", Path::new("/")),
            Some(root.join("usr/bin/tool"))
        );
        assert_eq!(v.find_program("dangling", "/bin", Path::new("/")), None);
        assert_eq!(
            v.find_program("tool", "/sbin:/bin", Path::new("/")),
            Some(root.join("usr/bin/tool"))
        );
        assert_eq!(
            v.find_program("./bin/tool", "", Path::new("/")),
            Some(root.join("usr/bin/tool"))
        );
        // /tmp is a fresh tmpfs: nothing there.
        exe(&root.join("tmp/x"));
        assert_eq!(v.find_program("/tmp/x", "", Path::new("/")), None);
    }

    #[test]
    fn later_and_deeper_mounts_win() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let tree = d.path().join("tree");
        exe(&tree.join("usr/bin/only-in-tree"));
        exe(&root.join("usr/bin/only-in-root"));
        let mut v = View::default();
        v.push("/", Some(root.clone()));
        v.push("/run", None);
        v.push("/run/kiln/tree", Some(tree.clone()));
        assert_eq!(
            v.find_program("/run/kiln/tree/usr/bin/only-in-tree", "", Path::new("/")),
            Some(tree.join("usr/bin/only-in-tree"))
        );
        assert_eq!(
            v.find_program("only-in-tree", "/usr/bin", Path::new("/")),
            None
        );
        // Not executable -> not found.
        fs::write(root.join("usr/bin/plain"), "").unwrap();
        assert_eq!(v.find_program("plain", "/usr/bin", Path::new("/")), None);
    }

    #[test]
    fn symlink_loops_end() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().to_path_buf();
        symlink("b", root.join("a")).unwrap();
        symlink("a", root.join("b")).unwrap();
        let mut v = View::default();
        v.push("/", Some(root));
        assert_eq!(v.resolve(Path::new("/a")), None);
    }
}
