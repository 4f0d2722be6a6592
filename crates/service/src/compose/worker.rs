//! A worker thread: takes the oldest WAITING compose, runs its build as a child process
//! and records the outcome. Threads rather than tasks: `PR_SET_PDEATHSIG` is tied to the
//! thread that forked, and these live as long as the server.

use super::db::{Failure, Status};
use super::{Composes, KILL_GRACE, Live, Row, Running};
use serde_json::Value;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Lines of the build's stderr kept for the failure reason.
const STDERR_TAIL: usize = 20;

pub(super) fn run(c: Arc<Composes>) {
    loop {
        let seen = *c.queue.lock().unwrap_or_else(|p| p.into_inner());
        if c.stopping.load(Ordering::SeqCst) {
            return;
        }
        match claim(&c) {
            Ok(Some((row, running))) => build(&c, row, running),
            Ok(None) => {
                let guard = c.queue.lock().unwrap_or_else(|p| p.into_inner());
                // Woken by a new compose; the timeout covers anything else.
                let _ = c
                    .wake
                    .wait_timeout_while(guard, Duration::from_secs(5), |n| *n == seen);
            }
            Err(e) => {
                tracing::error!("cannot take a compose from the queue: {e}");
                std::thread::sleep(Duration::from_secs(5));
            }
        }
    }
}

fn claim(c: &Composes) -> Result<Option<(Row, Arc<Running>)>, super::db::DbError> {
    // The running map is locked around the claim so that a cancel finds the compose
    // either WAITING in the table or here.
    let mut map = c.running_map();
    let Some(row) = c.db().claim_next()? else {
        return Ok(None);
    };
    let (tx, _) = tokio::sync::broadcast::channel(1024);
    let running = Arc::new(Running {
        canceled: AtomicBool::new(false),
        pgid: Mutex::new(None),
        live: Mutex::new(Live {
            lines: 0,
            progress: None,
            text: None,
        }),
        tx,
    });
    map.insert(row.id.clone(), running.clone());
    Ok(Some((row, running)))
}

fn build(c: &Composes, row: Row, running: Arc<Running>) {
    let id = row.id.clone();
    tracing::info!(compose = %id, attempt = row.attempts, "build starts");
    let failure = match run_build(c, &row, &running) {
        Ok(None) => None,
        Ok(Some(f)) => Some(f),
        Err(e) => Some(Failure::message(e)),
    };
    if c.stopping.load(Ordering::SeqCst) {
        // The server stops: the row was put back in the queue.
        c.running_map().remove(&id);
        return;
    }
    let (status, word) = match &failure {
        None => (Status::Finished, "FINISHED".to_string()),
        Some(f) => (Status::Failed, format!("FAILED: {}", f.message)),
    };
    write_text(&running, &format!("compose {id} {word}"));
    if let Err(e) = c.db().finish(&id, status, failure.as_ref()) {
        tracing::error!(compose = %id, "cannot record the end of the build: {e}");
    }
    tracing::info!(compose = %id, status = status.as_str(), "build ended");
    c.running_map().remove(&id);
}

pub(super) fn write_text(running: &Running, line: &str) {
    let mut live = running.live.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(f) = live.text.as_mut() {
        let _ = writeln!(f, "{line}");
    }
}

/// Runs the build; `Ok(Some)` is a failure of the build itself, `Err` one of the worker.
fn run_build(c: &Composes, row: &Row, running: &Arc<Running>) -> Result<Option<Failure>, String> {
    let dir = c.dir(&row.id);
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
    let open = |name: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs.join(name))
            .map_err(|e| format!("cannot open {}: {e}", logs.join(name).display()))
    };
    {
        let mut live = running.live.lock().unwrap_or_else(|p| p.into_inner());
        live.progress = Some(open("progress.jsonl")?);
        live.text = Some(open("build.log")?);
        // A restart appends to the files: count what the subscribers will read.
        live.lines = std::fs::read_to_string(logs.join("progress.jsonl"))
            .map(|t| t.lines().count() as u64)
            .unwrap_or(0);
    }
    if row.attempts > 1 {
        write_text(
            running,
            &format!(
                "--- the server restarted during the build; attempt {} resumes from the stored stages",
                row.attempts
            ),
        );
    }
    if running.canceled.load(Ordering::SeqCst) {
        return Ok(Some(Failure::message("canceled")));
    }
    let env = &c.build.env;
    let mut cmd = Command::new(&c.build.kiln);
    cmd.arg("--store")
        .arg(&env.store)
        .arg("--state")
        .arg(&env.state);
    if let Some(config) = &env.config {
        cmd.arg("--config").arg(config);
    }
    cmd.arg("build-manifest")
        .arg(dir.join("manifest.json"))
        .arg("--output")
        .arg(&dir)
        .args(["--progress", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: prctl and getppid are async-signal-safe; nothing else runs between fork
    // and exec. The build dies with this thread (that is, with the server).
    let parent = std::process::id() as libc::pid_t;
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                // The server died before prctl: go too.
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", c.build.kiln.display()))?;
    let pid = child.id() as i32;
    *running.pgid.lock().unwrap_or_else(|p| p.into_inner()) = Some(pid);
    if let Err(e) = c.db().set_pid(&row.id, Some(pid)) {
        tracing::warn!(compose = %row.id, "cannot record the build's process id: {e}");
    }
    write_text(
        running,
        &format!(
            "--- build of {} ({}) started, process {pid}",
            row.id,
            row.types.join(", ")
        ),
    );

    let stage_failure: Arc<Mutex<Option<Failure>>> = Arc::default();
    let stderr_tail: Arc<Mutex<VecDeque<String>>> = Arc::default();
    let out = child.stdout.take().map(|stdout| {
        let running = running.clone();
        let stage_failure = stage_failure.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(f) = progress_line(&running, &line) {
                    *stage_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
                }
            }
        })
    });
    let err = child.stderr.take().map(|stderr| {
        let running = running.clone();
        let tail = stderr_tail.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                write_text(&running, &line);
                let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                if t.len() == STDERR_TAIL {
                    t.pop_front();
                }
                t.push_back(line);
            }
        })
    });

    let mut term_sent: Option<Instant> = None;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => return Err(format!("cannot wait for the build process: {e}")),
        }
        if running.canceled.load(Ordering::SeqCst) {
            match term_sent {
                None => {
                    write_text(running, "--- canceled: stopping the build (SIGTERM)");
                    signal_group(pid, libc::SIGTERM);
                    term_sent = Some(Instant::now());
                }
                Some(t) if t.elapsed() > KILL_GRACE => signal_group(pid, libc::SIGKILL),
                Some(_) => {}
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Whatever the build left in its group goes with it.
    signal_group(pid, libc::SIGKILL);
    if let Some(t) = out {
        let _ = t.join();
    }
    if let Some(t) = err {
        let _ = t.join();
    }
    let canceled = running.canceled.load(Ordering::SeqCst);
    if status.success() {
        return Ok(None);
    }
    if canceled {
        return Ok(Some(Failure::message("canceled")));
    }
    if let Some(f) = stage_failure
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        return Ok(Some(f));
    }
    let tail: Vec<String> = stderr_tail
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .cloned()
        .collect();
    Ok(Some(Failure::message(format!(
        "the build exited with {status}{}{}",
        if tail.is_empty() { "" } else { ": " },
        tail.join("\n")
    ))))
}

pub(super) fn signal_group(pgid: i32, sig: libc::c_int) {
    // SAFETY: kill has no memory effects; a negative pid names the process group.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

/// Kills the build of a dead server (found in the row at start) if its process group is
/// still alive and the process with that id is still that build.
pub(super) fn kill_leftover(id: &str, pid: i32) {
    if pid <= 1 {
        return;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok();
    if let Some(c) = cmdline
        && !String::from_utf8_lossy(&c).contains(id)
    {
        // The id was reused by another process.
        return;
    }
    tracing::warn!(
        compose = id,
        pid,
        "killing the build left by the previous server"
    );
    signal_group(pid, libc::SIGKILL);
}

/// Records one line of the build's stdout (a JSON progress event): into progress.jsonl,
/// its text form into build.log, and to the subscribers. A stage failure is returned.
fn progress_line(running: &Running, line: &str) -> Option<Failure> {
    let event: Option<Value> = serde_json::from_str(line).ok();
    let mut live = running.live.lock().unwrap_or_else(|p| p.into_inner());
    let Some(event) = event else {
        if let Some(f) = live.text.as_mut() {
            let _ = writeln!(f, "{line}");
        }
        return None;
    };
    if let Some(f) = live.progress.as_mut() {
        let _ = writeln!(f, "{line}");
    }
    if let Some(text) = text_of(&event)
        && let Some(f) = live.text.as_mut()
    {
        let _ = writeln!(f, "{text}");
    }
    let seq = live.lines;
    live.lines += 1;
    let _ = running.tx.send((seq, Arc::from(line)));
    drop(live);
    (event["event"] == "stage-failed").then(|| Failure {
        pipeline: event["pipeline"].as_str().map(str::to_string),
        stage: event["stage"].as_str().map(str::to_string),
        message: event["message"].as_str().unwrap_or_default().to_string(),
    })
}

/// The text form of a progress event in build.log (as `kiln build` prints it).
pub fn text_of(e: &Value) -> Option<String> {
    let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
    let n = |k: &str| e[k].as_u64().unwrap_or_default();
    let at = || {
        format!(
            "[{} {}/{}] {}",
            s("pipeline"),
            n("index") + 1,
            n("total"),
            s("stage")
        )
    };
    Some(match e["event"].as_str()? {
        "fetch" => {
            let (done, total) = (n("done"), n("total"));
            if done != total && done % 50 != 0 {
                return None;
            }
            format!(
                "fetched {done}/{total} sources ({:.1} MB)",
                n("bytes") as f64 / 1e6
            )
        }
        "stage-start" => format!("{} ...", at()),
        "stage-done" if e["cached"] == true => format!("{}: cached", at()),
        "stage-done" => format!(
            "{}: {:.1}s",
            at(),
            e["seconds"].as_f64().unwrap_or_default()
        ),
        "stage-failed" => format!(
            "{}: FAILED after {:.1}s: {}",
            at(),
            e["seconds"].as_f64().unwrap_or_default(),
            s("message")
        ),
        "log" => format!("  {}", s("message")),
        "export" => format!("wrote {}", s("path")),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::text_of;
    use serde_json::json;

    #[test]
    fn events_as_text() {
        assert_eq!(
            text_of(
                &json!({"event":"stage-done","pipeline":"os","stage":"hostname","index":1,"total":3,"cached":true})
            ),
            Some("[os 2/3] hostname: cached".into())
        );
        assert_eq!(
            text_of(
                &json!({"event":"stage-failed","pipeline":"os","stage":"deb.install","index":0,"total":3,"seconds":1.25,"message":"boom"})
            ),
            Some("[os 1/3] deb.install: FAILED after 1.2s: boom".into())
        );
        assert_eq!(
            text_of(&json!({"event":"fetch","done":3,"total":120,"bytes":1,"message":""})),
            None
        );
        assert_eq!(text_of(&json!({"event":"nonsense"})), None);
    }
}
