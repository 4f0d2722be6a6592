//! The compose table in SQLite (`<state>/composes.db`): one row per compose, written
//! (WAL, `synchronous=FULL`) before the API answers, so an acknowledged compose survives
//! a crash of the server or of the machine.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// The weldr states of a compose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Waiting,
    Running,
    Finished,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Waiting => "WAITING",
            Status::Running => "RUNNING",
            Status::Finished => "FINISHED",
            Status::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "WAITING" => Status::Waiting,
            "RUNNING" => Status::Running,
            "FINISHED" => Status::Finished,
            "FAILED" => Status::Failed,
            _ => return None,
        })
    }
}

/// Why a compose failed: the stage (when a stage failed) and the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    pub message: String,
}

impl Failure {
    pub fn message(message: impl Into<String>) -> Failure {
        Failure {
            pipeline: None,
            stage: None,
            message: message.into(),
        }
    }
}

/// One compose.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    pub blueprint_name: String,
    pub blueprint_version: String,
    /// The committed blueprint the compose was started from (JSON).
    pub blueprint: Value,
    /// The blueprint with every package pinned to the version built (JSON; `Null` for
    /// test composes).
    pub frozen: Value,
    /// The depsolved packages (weldr dependency entries).
    pub deps: Value,
    /// Image types; the first is the weldr `compose_type`.
    pub types: Vec<String>,
    pub distro: String,
    pub arch: String,
    pub status: Status,
    pub image_size: u64,
    pub created: f64,
    pub started: Option<f64>,
    pub finished: Option<f64>,
    pub failure: Option<Failure>,
    /// The upload settings as given (`Null` when none).
    pub upload: Value,
    /// How many times a build of it was started.
    pub attempts: u32,
    /// A `?test=1|2` compose: never built.
    pub test: bool,
    /// The process (and process group) id of the running build.
    pub pid: Option<i32>,
}

#[derive(Debug, thiserror::Error)]
#[error("compose database: {0}")]
pub struct DbError(#[from] rusqlite::Error);

type Result<T> = std::result::Result<T, DbError>;

pub struct Db {
    conn: Connection,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").finish()
    }
}

const COLUMNS: &str = "id, blueprint_name, blueprint_version, blueprint, frozen, deps, types, \
    distro, arch, status, image_size, created, started, finished, failure, upload, attempts, \
    test, pid";

fn json_text(v: &Value) -> String {
    v.to_string()
}

fn parse_json(s: String) -> Value {
    serde_json::from_str(&s).unwrap_or(Value::Null)
}

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let status: String = r.get(9)?;
    let failure: Option<String> = r.get(14)?;
    let types: String = r.get(6)?;
    Ok(Row {
        id: r.get(0)?,
        blueprint_name: r.get(1)?,
        blueprint_version: r.get(2)?,
        blueprint: parse_json(r.get(3)?),
        frozen: parse_json(r.get(4)?),
        deps: parse_json(r.get(5)?),
        types: serde_json::from_str(&types).unwrap_or_default(),
        distro: r.get(7)?,
        arch: r.get(8)?,
        // Only this module writes the column.
        status: Status::parse(&status).unwrap_or(Status::Failed),
        image_size: r.get::<_, i64>(10)? as u64,
        created: r.get(11)?,
        started: r.get(12)?,
        finished: r.get(13)?,
        failure: failure.and_then(|f| serde_json::from_str(&f).ok()),
        upload: parse_json(r.get(15)?),
        attempts: r.get(16)?,
        test: r.get(17)?,
        pid: r.get(18)?,
    })
}

/// Now, as Unix seconds (what weldr clients expect for `job_*`).
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

impl Db {
    pub fn open(path: &Path) -> Result<Db> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS composes (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                blueprint_name TEXT NOT NULL,
                blueprint_version TEXT NOT NULL,
                blueprint TEXT NOT NULL,
                frozen TEXT NOT NULL,
                deps TEXT NOT NULL,
                types TEXT NOT NULL,
                distro TEXT NOT NULL,
                arch TEXT NOT NULL,
                status TEXT NOT NULL,
                image_size INTEGER NOT NULL,
                created REAL NOT NULL,
                started REAL,
                finished REAL,
                failure TEXT,
                upload TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                test INTEGER NOT NULL DEFAULT 0,
                pid INTEGER
            );",
        )?;
        Ok(Db { conn })
    }

    pub fn insert(&self, row: &Row) -> Result<()> {
        self.conn.execute(
            &format!(
                "INSERT INTO composes ({COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
            ),
            params![
                row.id,
                row.blueprint_name,
                row.blueprint_version,
                json_text(&row.blueprint),
                json_text(&row.frozen),
                json_text(&row.deps),
                serde_json::to_string(&row.types).unwrap_or_default(),
                row.distro,
                row.arch,
                row.status.as_str(),
                row.image_size as i64,
                row.created,
                row.started,
                row.finished,
                row.failure
                    .as_ref()
                    .map(|f| serde_json::to_string(f).unwrap_or_default()),
                json_text(&row.upload),
                row.attempts,
                row.test,
                row.pid,
            ],
        )?;
        Ok(())
    }

    pub fn get(&self, id: &str) -> Result<Option<Row>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM composes WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()?)
    }

    /// Every compose, oldest first.
    pub fn all(&self) -> Result<Vec<Row>> {
        let mut st = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM composes ORDER BY seq"))?;
        let rows = st.query_map([], from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<Row>>>()?)
    }

    /// Takes the oldest WAITING compose and marks it RUNNING (one more attempt).
    pub fn claim_next(&mut self) -> Result<Option<Row>> {
        let tx = self.conn.transaction()?;
        let id: Option<String> = tx
            .query_row(
                "SELECT id FROM composes WHERE status = 'WAITING' ORDER BY seq LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        let Some(id) = id else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE composes SET status = 'RUNNING', started = ?2, finished = NULL, \
             failure = NULL, attempts = attempts + 1, pid = NULL WHERE id = ?1",
            params![id, now()],
        )?;
        tx.commit()?;
        self.get(&id)
    }

    pub fn set_pid(&self, id: &str, pid: Option<i32>) -> Result<()> {
        self.conn.execute(
            "UPDATE composes SET pid = ?2 WHERE id = ?1",
            params![id, pid],
        )?;
        Ok(())
    }

    /// Ends a RUNNING compose as FINISHED or FAILED.
    pub fn finish(&self, id: &str, status: Status, failure: Option<&Failure>) -> Result<()> {
        self.conn.execute(
            "UPDATE composes SET status = ?2, finished = ?3, failure = ?4, pid = NULL WHERE id = ?1",
            params![
                id,
                status.as_str(),
                now(),
                failure.map(|f| serde_json::to_string(f).unwrap_or_default()),
            ],
        )?;
        Ok(())
    }

    /// Puts a RUNNING compose back in the queue, not counting the attempt (clean stop).
    pub fn requeue(&self, id: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE composes SET status = 'WAITING', pid = NULL, \
             attempts = MAX(attempts - 1, 0) WHERE id = ?1 AND status = 'RUNNING'",
            [id],
        )?;
        Ok(())
    }

    /// Fails a WAITING compose (cancel before it started); false when it was not WAITING.
    pub fn cancel_waiting(&self, id: &str, failure: &Failure) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE composes SET status = 'FAILED', finished = ?2, failure = ?3 \
             WHERE id = ?1 AND status = 'WAITING'",
            params![
                id,
                now(),
                serde_json::to_string(failure).unwrap_or_default()
            ],
        )?;
        Ok(n == 1)
    }

    /// Deletes a FINISHED or FAILED compose; false when it is in another state (or gone).
    pub fn delete_done(&self, id: &str) -> Result<bool> {
        let n = self.conn.execute(
            "DELETE FROM composes WHERE id = ?1 AND status IN ('FINISHED', 'FAILED')",
            [id],
        )?;
        Ok(n == 1)
    }

    /// At start: composes RUNNING when the server died go back to WAITING, unless a build
    /// of them was already started twice (they failed twice with the server, or they
    /// kill it): those fail. Returns the process ids the dead server recorded.
    pub fn recover(&mut self, max_attempts: u32) -> Result<Vec<(String, i32)>> {
        let tx = self.conn.transaction()?;
        let mut pids = Vec::new();
        {
            let mut st = tx.prepare(
                "SELECT id, pid FROM composes WHERE status = 'RUNNING' AND pid IS NOT NULL",
            )?;
            for r in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i32>(1)?)))? {
                pids.push(r?);
            }
        }
        let failure = Failure::message(format!(
            "the server stopped while this compose was building, {max_attempts} times; \
             it is not re-queued again (start a new compose to retry)"
        ));
        tx.execute(
            "UPDATE composes SET status = 'FAILED', finished = ?2, failure = ?3, pid = NULL \
             WHERE status = 'RUNNING' AND attempts >= ?1",
            params![
                max_attempts,
                now(),
                serde_json::to_string(&failure).unwrap_or_default()
            ],
        )?;
        tx.execute(
            "UPDATE composes SET status = 'WAITING', pid = NULL WHERE status = 'RUNNING'",
            [],
        )?;
        tx.commit()?;
        Ok(pids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, status: Status, attempts: u32) -> Row {
        Row {
            id: id.into(),
            blueprint_name: "bp".into(),
            blueprint_version: "0.0.1".into(),
            blueprint: serde_json::json!({"name": "bp"}),
            frozen: Value::Null,
            deps: serde_json::json!([]),
            types: vec!["tar".into()],
            distro: "debian-12".into(),
            arch: "amd64".into(),
            status,
            image_size: 0,
            created: now(),
            started: None,
            finished: None,
            failure: None,
            upload: Value::Null,
            attempts,
            test: false,
            pid: Some(4242),
        }
    }

    #[test]
    fn restart_requeues_once_then_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let db = Db::open(&path).unwrap();
        db.insert(&row("w", Status::Waiting, 0)).unwrap();
        db.insert(&row("r1", Status::Running, 1)).unwrap();
        db.insert(&row("r2", Status::Running, 2)).unwrap();
        db.insert(&row("f", Status::Finished, 1)).unwrap();
        drop(db);
        let mut db = Db::open(&path).unwrap();
        let mut pids = db.recover(2).unwrap();
        pids.sort();
        assert_eq!(pids, [("r1".to_string(), 4242), ("r2".to_string(), 4242)]);
        let st = |id: &str| db.get(id).unwrap().unwrap().status;
        assert_eq!(st("w"), Status::Waiting);
        assert_eq!(st("r1"), Status::Waiting);
        assert_eq!(st("r2"), Status::Failed);
        assert_eq!(st("f"), Status::Finished);
        let f = db.get("r2").unwrap().unwrap().failure.unwrap();
        assert!(f.message.contains("server stopped"), "{f:?}");
        // The queue keeps its order: the waiting one first, then the re-queued one.
        assert_eq!(db.claim_next().unwrap().unwrap().id, "w");
        let r1 = db.claim_next().unwrap().unwrap();
        assert_eq!(
            (r1.id.as_str(), r1.attempts, r1.status),
            ("r1", 2, Status::Running)
        );
        assert!(db.claim_next().unwrap().is_none());
    }
}
