//! Blueprint history in a bare git repository, as lorax-composer kept it.
//!
//! Layout: `<state>/blueprints.git` is a bare repository whose branch `master` holds one
//! file per blueprint, `NAME.toml`, at the root of the tree. Every change is one commit:
//!
//! - push: `Recipe NAME, version X saved.`
//! - undo: `NAME.toml reverted to commit C`
//! - delete: `Recipe NAME.toml deleted` (the file leaves the tree; its history stays)
//!
//! Tags (revisions) are annotated tags `refs/tags/master/NAME.toml/rN` on the commit they
//! number, as lorax made them. The workspace (uncommitted edits) is plain files
//! `<state>/workspace/NAME.toml` beside the repository.
//!
//! Writers are serialised twice: a mutex inside the process and an exclusive file lock
//! (`<state>/blueprints.git/kiln.lock`) between processes, so concurrent pushes never lose
//! a commit. Readers take no lock: git objects never change and ref updates are atomic
//! renames.

use kiln_blueprint::Blueprint;
use std::collections::HashMap;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The branch blueprints live on (lorax's default branch).
pub const BRANCH: &str = "master";
const BRANCH_REF: &str = "refs/heads/master";
const COMMITTER_NAME: &str = "kiln";
const COMMITTER_EMAIL: &str = "kiln@localhost";
/// Longest accepted blueprint name (the file name gets `.toml`).
pub const MAX_NAME: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("git repository {path}: {message}")]
    Git { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Invalid characters in API path")]
    InvalidName,
    #[error("Unknown blueprint: {0}")]
    UnknownBlueprint(String),
    /// The blueprint has no history at all (undo, change).
    #[error("Unknown blueprint")]
    NoHistory,
    #[error("Unknown commit")]
    UnknownCommit,
    #[error("blueprint {name} at commit {commit} cannot be read: {message}")]
    Corrupt {
        name: String,
        commit: String,
        message: String,
    },
    #[error("cannot write blueprint {name}: {message}")]
    Serialize { name: String, message: String },
}

type Result<T> = std::result::Result<T, HistoryError>;

/// One entry of a blueprint's history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// The commit id (40 hex digits).
    pub commit: String,
    /// Commit time, `YYYY-MM-DDTHH:MM:SSZ`.
    pub timestamp: String,
    pub message: String,
    /// The tag number, once tagged.
    pub revision: Option<u32>,
}

/// True for names the weldr API accepts: `^[a-zA-Z0-9._-]+$`, not `.` or `..`, at most
/// [`MAX_NAME`] bytes. Such a name is also a safe file name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn file_name(name: &str) -> String {
    format!("{name}.toml")
}

/// The git-backed blueprint store.
pub struct History {
    repo: gix::ThreadSafeRepository,
    git_dir: PathBuf,
    workspace: PathBuf,
    writer: Mutex<()>,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("git_dir", &self.git_dir)
            .field("workspace", &self.workspace)
            .finish()
    }
}

/// Holds the write lock of the repository: the in-process mutex and the file lock.
struct WriteGuard<'a> {
    _mutex: std::sync::MutexGuard<'a, ()>,
    _file: File,
}

impl History {
    /// Opens `<state>/blueprints.git`, creating it on first use with an initial commit and
    /// one commit per seed blueprint (TOML text). Seeds are only committed when the
    /// repository is created, so a deleted example stays deleted.
    pub fn open(state: &Path, seeds: &[&str]) -> Result<History> {
        let git_dir = state.join("blueprints.git");
        let workspace = state.join("workspace");
        for dir in [state, &workspace] {
            std::fs::create_dir_all(dir).map_err(|source| HistoryError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        if !git_dir.join("HEAD").exists() {
            create(&git_dir, seeds)?;
        }
        let repo = gix::open(&git_dir).map_err(|e| git_err(&git_dir, e))?;
        Ok(History {
            repo: repo.into_sync(),
            git_dir,
            workspace,
            writer: Mutex::new(()),
        })
    }

    /// The bare repository's directory.
    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    fn lock(&self) -> Result<WriteGuard<'_>> {
        let mutex = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.git_dir.join("kiln.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| HistoryError::Io {
                path: path.clone(),
                source,
            })?;
        file.lock()
            .map_err(|source| HistoryError::Io { path, source })?;
        Ok(WriteGuard {
            _mutex: mutex,
            _file: file,
        })
    }

    fn git<E: std::fmt::Display>(&self, e: E) -> HistoryError {
        git_err(&self.git_dir, e)
    }

    /// The names of the committed blueprints, sorted.
    pub fn list(&self) -> Result<Vec<String>> {
        let repo = self.repo.to_thread_local();
        let head = self.head(&repo)?;
        let tree = head.tree().map_err(|e| self.git(e))?;
        let mut names = Vec::new();
        for entry in tree.iter() {
            let entry = entry.map_err(|e| self.git(e))?;
            let file = entry.filename().to_string();
            if let Some(name) = file.strip_suffix(".toml")
                && valid_name(name)
                && entry.mode().is_blob()
            {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    fn head<'r>(&self, repo: &'r gix::Repository) -> Result<gix::Commit<'r>> {
        let mut r = repo.find_reference(BRANCH_REF).map_err(|e| self.git(e))?;
        r.peel_to_commit().map_err(|e| self.git(e))
    }

    /// The blob id of `name` in `commit`'s tree.
    fn entry_in(&self, commit: &gix::Commit<'_>, name: &str) -> Result<Option<gix::ObjectId>> {
        let tree = commit.tree().map_err(|e| self.git(e))?;
        let file = file_name(name);
        Ok(tree
            .find_entry(file.as_str())
            .filter(|e| e.mode().is_blob())
            .map(|e| e.object_id()))
    }

    fn read_blob(
        &self,
        repo: &gix::Repository,
        id: gix::ObjectId,
        name: &str,
        commit: &str,
    ) -> Result<Blueprint> {
        let blob = repo.find_blob(id).map_err(|e| self.git(e))?;
        let text = String::from_utf8(blob.data.clone()).map_err(|e| HistoryError::Corrupt {
            name: name.into(),
            commit: commit.into(),
            message: e.to_string(),
        })?;
        Blueprint::from_toml(&text).map_err(|e| HistoryError::Corrupt {
            name: name.into(),
            commit: commit.into(),
            message: e.to_string(),
        })
    }

    /// The committed blueprint, if there is one.
    pub fn committed(&self, name: &str) -> Result<Option<Blueprint>> {
        check(name)?;
        let repo = self.repo.to_thread_local();
        let head = self.head(&repo)?;
        match self.entry_in(&head, name)? {
            Some(id) => Ok(Some(self.read_blob(
                &repo,
                id,
                name,
                &head.id().to_string(),
            )?)),
            None => Ok(None),
        }
    }

    fn workspace_path(&self, name: &str) -> PathBuf {
        self.workspace.join(file_name(name))
    }

    /// The workspace copy, if there is one.
    pub fn workspace(&self, name: &str) -> Result<Option<Blueprint>> {
        check(name)?;
        let path = self.workspace_path(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Blueprint::from_toml(&text)
                .map(Some)
                .map_err(|e| HistoryError::Corrupt {
                    name: name.into(),
                    commit: "WORKSPACE".into(),
                    message: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(HistoryError::Io { path, source }),
        }
    }

    /// The workspace copy if there is one (`true`), else the committed blueprint.
    pub fn get(&self, name: &str) -> Result<Option<(Blueprint, bool)>> {
        if let Some(bp) = self.workspace(name)? {
            return Ok(Some((bp, true)));
        }
        Ok(self.committed(name)?.map(|bp| (bp, false)))
    }

    /// Commits `bp` (the version bumped as osbuild-composer does) and drops its workspace
    /// copy. Returns the new commit id.
    pub fn push(&self, bp: Blueprint) -> Result<String> {
        check(&bp.name)?;
        let _guard = self.lock()?;
        self.push_locked(bp, None)
    }

    fn push_locked(&self, mut bp: Blueprint, message: Option<String>) -> Result<String> {
        let repo = self.repo.to_thread_local();
        let head = self.head(&repo)?;
        let head_id = head.id;
        let old = match self.entry_in(&head, &bp.name)? {
            Some(id) => Some(self.read_blob(&repo, id, &bp.name, &head_id.to_string())?),
            None => None,
        };
        bp.bump_version(old.as_ref().and_then(|o| o.version.as_deref()));
        let text = bp.to_toml().map_err(|e| HistoryError::Serialize {
            name: bp.name.clone(),
            message: e.to_string(),
        })?;
        let blob = repo.write_blob(text.as_bytes()).map_err(|e| self.git(e))?;
        let tree_id = head.tree_id().map_err(|e| self.git(e))?;
        let mut editor = repo.edit_tree(tree_id).map_err(|e| self.git(e))?;
        editor
            .upsert(
                file_name(&bp.name).as_str(),
                gix::object::tree::EntryKind::Blob,
                blob.detach(),
            )
            .map_err(|e| self.git(e))?;
        let tree = editor.write().map_err(|e| self.git(e))?;
        let message = message.unwrap_or_else(|| {
            format!(
                "Recipe {}, version {} saved.",
                bp.name,
                bp.version.as_deref().unwrap_or_default()
            )
        });
        let id = self.commit(&repo, &message, tree.detach(), head_id)?;
        self.remove_workspace(&bp.name)?;
        tracing::info!(blueprint = %bp.name, commit = %id, "{message}");
        Ok(id)
    }

    fn commit(
        &self,
        repo: &gix::Repository,
        message: &str,
        tree: gix::ObjectId,
        parent: gix::ObjectId,
    ) -> Result<String> {
        let sig = signature();
        let mut buf = gix::date::parse::TimeBuf::default();
        let sig_ref = sig.to_ref(&mut buf);
        let id = repo
            .commit_as(sig_ref, sig_ref, BRANCH_REF, message, tree, [parent])
            .map_err(|e| self.git(e))?;
        Ok(id.to_string())
    }

    fn remove_workspace(&self, name: &str) -> Result<bool> {
        let path = self.workspace_path(name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(HistoryError::Io { path, source }),
        }
    }

    /// Stores `bp` as the workspace copy of its name (written atomically).
    pub fn save_workspace(&self, bp: &Blueprint) -> Result<()> {
        check(&bp.name)?;
        let text = bp.to_toml().map_err(|e| HistoryError::Serialize {
            name: bp.name.clone(),
            message: e.to_string(),
        })?;
        let path = self.workspace_path(&bp.name);
        let tmp = self.workspace.join(format!(
            ".{}.{}.{:?}.tmp",
            bp.name,
            std::process::id(),
            std::thread::current().id()
        ));
        let io = |source| HistoryError::Io {
            path: path.clone(),
            source,
        };
        let mut f = File::create(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(())
    }

    /// Drops the workspace copy; an error when there is none.
    pub fn delete_workspace(&self, name: &str) -> Result<()> {
        check(name)?;
        if self.remove_workspace(name)? {
            Ok(())
        } else {
            Err(HistoryError::UnknownBlueprint(name.to_string()))
        }
    }

    /// Deletes a committed blueprint (a commit removing its file) and its workspace copy.
    pub fn delete(&self, name: &str) -> Result<()> {
        check(name)?;
        let _guard = self.lock()?;
        let repo = self.repo.to_thread_local();
        let head = self.head(&repo)?;
        if self.entry_in(&head, name)?.is_none() {
            return Err(HistoryError::UnknownBlueprint(name.to_string()));
        }
        let tree_id = head.tree_id().map_err(|e| self.git(e))?;
        let mut editor = repo.edit_tree(tree_id).map_err(|e| self.git(e))?;
        editor
            .remove(file_name(name).as_str())
            .map_err(|e| self.git(e))?;
        let tree = editor.write().map_err(|e| self.git(e))?;
        let message = format!("Recipe {} deleted", file_name(name));
        self.commit(&repo, &message, tree.detach(), head.id)?;
        self.remove_workspace(name)?;
        tracing::info!(blueprint = %name, "{message}");
        Ok(())
    }

    /// Revision numbers by commit for `name`'s tags.
    fn revisions(&self, repo: &gix::Repository, name: &str) -> Result<HashMap<String, u32>> {
        let prefix = format!("refs/tags/{BRANCH}/{}/r", file_name(name));
        let mut out: HashMap<String, u32> = HashMap::new();
        let platform = repo.references().map_err(|e| self.git(e))?;
        for r in platform.tags().map_err(|e| self.git(e))? {
            let Ok(mut r) = r else { continue };
            let full = r.name().as_bstr().to_string();
            let Some(n) = full
                .strip_prefix(&prefix)
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(commit) = r.peel_to_commit() else {
                continue;
            };
            let entry = out.entry(commit.id.to_string()).or_insert(n);
            *entry = (*entry).max(n);
        }
        Ok(out)
    }

    /// The history of `name`, newest first: every commit that changed its file (deletions
    /// excluded). `None` when the name never had a commit.
    pub fn changes(&self, name: &str) -> Result<Option<Vec<Change>>> {
        check(name)?;
        let repo = self.repo.to_thread_local();
        let revisions = self.revisions(&repo, name)?;
        let mut out = Vec::new();
        let mut commit = self.head(&repo)?;
        let mut entry = self.entry_in(&commit, name)?;
        let push_prefix = format!("Recipe {name}, version ");
        let revert_prefix = format!("{} reverted to commit ", file_name(name));
        loop {
            let parent = commit.parent_ids().next().map(|p| p.detach());
            let parent_commit = match parent {
                Some(p) => Some(repo.find_commit(p).map_err(|e| self.git(e))?),
                None => None,
            };
            let parent_entry = match &parent_commit {
                Some(p) => self.entry_in(p, name)?,
                None => None,
            };
            if let Some(e) = entry {
                let message = commit.message_raw().map_err(|e| self.git(e))?.to_string();
                let message = message.trim_end().to_string();
                let changed = Some(e) != parent_entry
                    || message.starts_with(&push_prefix)
                    || message.starts_with(&revert_prefix);
                // The root commit is the repository's initial (empty) commit.
                if changed && parent_commit.is_some() {
                    let id = commit.id.to_string();
                    let time = commit.time().map_err(|e| self.git(e))?;
                    out.push(Change {
                        revision: revisions.get(&id).copied(),
                        commit: id,
                        timestamp: iso8601(time.seconds),
                        message,
                    });
                }
            }
            match parent_commit {
                Some(p) => {
                    commit = p;
                    entry = parent_entry;
                }
                None => break,
            }
        }
        Ok((!out.is_empty()).then_some(out))
    }

    /// The blueprint as it was at `commit` (one of its changes).
    pub fn at_commit(&self, name: &str, commit: &str) -> Result<Blueprint> {
        let changes = self.changes(name)?.ok_or(HistoryError::NoHistory)?;
        if !changes.iter().any(|c| c.commit == commit) {
            return Err(HistoryError::UnknownCommit);
        }
        let repo = self.repo.to_thread_local();
        let id =
            gix::ObjectId::from_hex(commit.as_bytes()).map_err(|_| HistoryError::UnknownCommit)?;
        let c = repo.find_commit(id).map_err(|e| self.git(e))?;
        let blob = self
            .entry_in(&c, name)?
            .ok_or(HistoryError::UnknownCommit)?;
        self.read_blob(&repo, blob, name, commit)
    }

    /// Commits the blueprint as it was at `commit` again.
    pub fn undo(&self, name: &str, commit: &str) -> Result<String> {
        let _guard = self.lock()?;
        let bp = self.at_commit(name, commit)?;
        let message = format!("{} reverted to commit {commit}", file_name(name));
        self.push_locked(bp, Some(message))
    }

    /// Tags the newest commit of a committed blueprint with the next revision; a no-op
    /// when it is tagged already.
    pub fn tag(&self, name: &str) -> Result<()> {
        check(name)?;
        let _guard = self.lock()?;
        if self.committed(name)?.is_none() {
            return Err(HistoryError::NoHistory);
        }
        let changes = self.changes(name)?.ok_or(HistoryError::NoHistory)?;
        let newest = &changes[0];
        if newest.revision.is_some() {
            return Ok(());
        }
        let next = changes.iter().filter_map(|c| c.revision).max().unwrap_or(0) + 1;
        let repo = self.repo.to_thread_local();
        let tag = format!("{BRANCH}/{}/r{next}", file_name(name));
        let id = gix::ObjectId::from_hex(newest.commit.as_bytes()).map_err(|e| self.git(e))?;
        let sig = signature();
        let mut buf = gix::date::parse::TimeBuf::default();
        repo.tag(
            &tag,
            id,
            gix::objs::Kind::Commit,
            Some(sig.to_ref(&mut buf)),
            &tag,
            gix::refs::transaction::PreviousValue::MustNotExist,
        )
        .map_err(|e| self.git(e))?;
        tracing::info!(blueprint = %name, revision = next, commit = %newest.commit, "tagged");
        Ok(())
    }
}

fn check(name: &str) -> Result<()> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(HistoryError::InvalidName)
    }
}

fn git_err<E: std::fmt::Display>(path: &Path, e: E) -> HistoryError {
    HistoryError::Git {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn signature() -> gix::actor::Signature {
    gix::actor::Signature {
        name: COMMITTER_NAME.into(),
        email: COMMITTER_EMAIL.into(),
        time: gix::date::Time::now_utc(),
    }
}

/// Creates the repository in a temporary directory next to `git_dir` and renames it into
/// place, so that a crash never leaves a half-seeded repository.
fn create(git_dir: &Path, seeds: &[&str]) -> Result<()> {
    let parent = git_dir.parent().unwrap_or(Path::new("."));
    let tmp = parent.join(format!(".blueprints.git.{}.tmp", std::process::id()));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| HistoryError::Io { path, source }
    };
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    let repo = gix::init_bare(&tmp).map_err(|e| git_err(&tmp, e))?;
    drop(repo);
    // lorax's branch, whatever the host's git defaults to.
    std::fs::write(tmp.join("HEAD"), format!("ref: {BRANCH_REF}\n")).map_err(io(&tmp))?;
    std::fs::write(
        tmp.join("description"),
        "kiln blueprints: one NAME.toml per blueprint on branch master\n",
    )
    .map_err(io(&tmp))?;
    let repo = gix::open(&tmp).map_err(|e| git_err(&tmp, e))?;
    let sig = signature();
    let mut buf = gix::date::parse::TimeBuf::default();
    let sig_ref = sig.to_ref(&mut buf);
    let empty = gix::ObjectId::empty_tree(repo.object_hash());
    let empty = repo
        .write_object(gix::objs::Tree::empty())
        .map(|id| id.detach())
        .unwrap_or(empty);
    repo.commit_as(
        sig_ref,
        sig_ref,
        BRANCH_REF,
        "Initial Recipe repository commit",
        empty,
        std::iter::empty::<gix::ObjectId>(),
    )
    .map_err(|e| git_err(&tmp, e))?;
    let history = History {
        repo: repo.into_sync(),
        git_dir: tmp.clone(),
        workspace: parent.join("workspace"),
        writer: Mutex::new(()),
    };
    for seed in seeds {
        let bp = Blueprint::from_toml_validated(seed).map_err(|e| HistoryError::Corrupt {
            name: "(built-in example)".into(),
            commit: "-".into(),
            message: e.to_string(),
        })?;
        history.push_locked(bp, None)?;
    }
    drop(history);
    std::fs::rename(&tmp, git_dir).map_err(io(git_dir))?;
    Ok(())
}

/// `YYYY-MM-DDTHH:MM:SSZ` of seconds since the epoch (UTC).
pub fn iso8601(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_764_072_000), "2025-11-25T12:00:00Z");
    }

    #[test]
    fn names() {
        assert!(valid_name("example-http-server"));
        assert!(valid_name("a.b_c-1"));
        for bad in ["", ".", "..", "../x", "a/b", "a b", "ｆｕｌｌ", "a%2Fb"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(!valid_name(&"x".repeat(MAX_NAME + 1)));
    }
}
