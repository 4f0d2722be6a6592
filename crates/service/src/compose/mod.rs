//! Composes: the durable queue, the worker pool and the live progress of builds.
//!
//! # State
//!
//! ```text
//! <state>/composes.db                 SQLite: one row per compose (db)
//! <state>/composes/<uuid>/manifest.json   the manifest, written when the compose is started
//! <state>/composes/<uuid>/<file>      the image files (the build's output directory)
//! <state>/composes/<uuid>/logs/       build.log (text), progress.jsonl (the build's
//!                                     events), one log per stage (kiln-build)
//! ```
//!
//! `POST /compose` depsolves the committed blueprint against the warm universe and writes
//! the manifest, as osbuild-composer does when it enqueues a job (so a blueprint that
//! cannot be solved is refused at once with `DepsolveError`); the row is written
//! (`synchronous=FULL`) before the API answers.
//!
//! # Workers
//!
//! `workers` threads (`kiln serve --workers N`, default 1) take the oldest WAITING compose
//! and run `kiln build-manifest <manifest> --output <dir> --progress json` as a child
//! process (the binary is the server's own, or `KILN_BIN`), in its own process group and
//! with `PR_SET_PDEATHSIG`: a crashing build cannot take the server down, cancel stops the
//! whole group (SIGTERM, then SIGKILL after [`KILL_GRACE`]), and a dying server takes its
//! builds with it. Each JSON progress line goes to `logs/progress.jsonl`, a text form to
//! `logs/build.log`, and both to a broadcast channel that `GET /api/v1/compose/events/<id>`
//! relays as server-sent events. A failed stage's pipeline, stage and error are kept in
//! the row (`failure`), shown by `compose/status` and `compose/info`.
//!
//! # Restarts
//!
//! At start, WAITING composes stay queued in their order. A compose that was RUNNING when
//! the server died is queued again: the store kept every committed stage, so the rebuild
//! resumes after the last one. If a build of it had already been started
//! [`MAX_ATTEMPTS`] times (the server died during it before), it is FAILED instead, with a
//! reason saying so, so that a compose that kills the server cannot loop. Build processes
//! of the dead server that are still alive (their process group is in the row) are
//! killed first. A clean stop (SIGTERM, SIGINT) puts running composes back in the queue
//! without counting the attempt. Cancel of a WAITING compose takes it off the queue (FAILED, "canceled"),
//! cancel of a RUNNING one stops its build (FAILED, "canceled"); delete removes the row
//! and the directory.

pub mod db;
mod worker;

pub use db::{Failure, Row, Status};

use db::Db;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Builds of one compose started before it fails at a restart.
pub const MAX_ATTEMPTS: u32 = 2;
/// How long a canceled build gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(10);

/// What the workers need to run builds.
#[derive(Debug, Clone)]
pub struct BuildEnv {
    /// The kiln binary that runs `build-manifest`.
    pub kiln: PathBuf,
    pub env: kiln_compose::Env,
}

/// One line of a build's progress (the JSON of a kiln-build event), numbered from 0.
pub type Line = (u64, Arc<str>);

/// A compose being built.
pub struct Running {
    pub(crate) canceled: AtomicBool,
    /// The child's process group, once spawned.
    pub(crate) pgid: Mutex<Option<i32>>,
    pub(crate) live: Mutex<Live>,
    pub(crate) tx: tokio::sync::broadcast::Sender<Line>,
}

/// The progress written so far (guarded with the log so a subscriber sees every line
/// exactly once: what the file has, then what the channel brings).
pub struct Live {
    pub(crate) lines: u64,
    pub(crate) progress: Option<std::fs::File>,
    pub(crate) text: Option<std::fs::File>,
}

#[derive(Debug, thiserror::Error)]
pub enum ComposesError {
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The composes of a server: the table, the queue and the running builds.
pub struct Composes {
    dir: PathBuf,
    db: Mutex<Db>,
    running: Mutex<HashMap<String, Arc<Running>>>,
    wake: Condvar,
    queue: Mutex<u64>,
    build: BuildEnv,
    /// Set when the server stops: workers take nothing more and record no outcome.
    pub(crate) stopping: AtomicBool,
}

impl std::fmt::Debug for Composes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Composes").field("dir", &self.dir).finish()
    }
}

/// A compose id from a path: a UUID (`8-4-4-4-12` hex digits), lowercased; anything else
/// (`../x`, an encoded slash) is `None`, so no id from a request can name another path.
pub fn parse_id(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let ok = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        });
    ok.then(|| s.to_ascii_lowercase())
}

/// A random (version 4) UUID.
pub fn new_id() -> std::io::Result<String> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ComposesError + '_ {
    move |source| ComposesError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Composes {
    /// Opens `<state>/composes.db`, applies the restart rules and starts `workers`
    /// worker threads.
    pub fn open(
        state: &Path,
        build: BuildEnv,
        workers: usize,
    ) -> Result<Arc<Composes>, ComposesError> {
        let dir = state.join("composes");
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut db = Db::open(&state.join("composes.db"))?;
        for (id, pid) in db.recover(MAX_ATTEMPTS)? {
            worker::kill_leftover(&id, pid);
        }
        let composes = Arc::new(Composes {
            dir,
            db: Mutex::new(db),
            running: Mutex::new(HashMap::new()),
            wake: Condvar::new(),
            queue: Mutex::new(0),
            build,
            stopping: AtomicBool::new(false),
        });
        for n in 0..workers.max(1) {
            let c = composes.clone();
            std::thread::Builder::new()
                .name(format!("compose-worker-{n}"))
                .spawn(move || worker::run(c))
                .map_err(io_err(state))?;
        }
        Ok(composes)
    }

    /// The directory of a compose.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    pub(crate) fn db(&self) -> std::sync::MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn running_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Running>>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, id: &str) -> Result<Option<Row>, ComposesError> {
        Ok(self.db().get(id)?)
    }

    pub fn all(&self) -> Result<Vec<Row>, ComposesError> {
        Ok(self.db().all()?)
    }

    /// Adds a compose (durably) and wakes a worker when it is WAITING.
    pub fn add(&self, row: &Row) -> Result<(), ComposesError> {
        self.db().insert(row)?;
        if row.status == Status::Waiting {
            self.notify();
        }
        Ok(())
    }

    fn notify(&self) {
        let mut n = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        self.wake.notify_all();
    }

    /// Cancels a WAITING or RUNNING compose; waits until a running build has stopped.
    /// `Ok(false)` when it is in neither state.
    pub fn cancel(&self, id: &str) -> Result<bool, ComposesError> {
        let failure = Failure::message("canceled before it started");
        if self.db().cancel_waiting(id, &failure)? {
            return Ok(true);
        }
        let running = self.running_map().get(id).cloned();
        let Some(running) = running else {
            return Ok(false);
        };
        running
            .canceled
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // The worker signals the process group and marks the row; wait for it.
        let deadline = std::time::Instant::now() + KILL_GRACE + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if !self.running_map().contains_key(id) {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(true)
    }

    /// Deletes a FINISHED or FAILED compose and its files; `Ok(false)` in another state.
    pub fn delete(&self, id: &str) -> Result<bool, ComposesError> {
        if !self.db().delete_done(id)? {
            return Ok(false);
        }
        let dir = self.dir(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(io_err(&dir)(e)),
        }
    }

    /// At a clean stop of the server: running builds go back to the queue without
    /// counting as an attempt, and are killed (the store keeps what they committed).
    pub fn shutdown(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let running: Vec<(String, Arc<Running>)> = self
            .running_map()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (id, r) in running {
            if let Err(e) = self.db().requeue(&id) {
                tracing::error!(compose = %id, "cannot put the compose back in the queue: {e}");
            }
            if let Some(pgid) = *r.pgid.lock().unwrap_or_else(|p| p.into_inner()) {
                worker::signal_group(pgid, libc::SIGKILL);
            }
            worker::write_text(&r, "--- the server stopped; the compose stays queued");
            tracing::info!(compose = %id, "build stopped with the server; it stays queued");
        }
        self.notify();
    }

    /// The live build of `id`, if it is running.
    pub fn running(&self, id: &str) -> Option<Arc<Running>> {
        self.running_map().get(id).cloned()
    }
}

impl Running {
    /// The progress lines so far and a receiver for the next ones.
    pub fn subscribe(
        &self,
        progress: &Path,
    ) -> (Vec<String>, tokio::sync::broadcast::Receiver<Line>) {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.tx.subscribe();
        let text = std::fs::read_to_string(progress).unwrap_or_default();
        let lines = text
            .lines()
            .take(live.lines as usize)
            .map(str::to_string)
            .collect();
        (lines, rx)
    }
}
