//! Child processes that cannot outlive kiln: QEMU tied with `PR_SET_PDEATHSIG`, killed on
//! drop; commands with deadlines; the interrupt flag.

use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

/// How often waits look at the clock, the child and the interrupt flag.
pub(crate) const POLL: Duration = Duration::from_millis(50);

/// How much of QEMU's stderr is kept.
const STDERR_KEEP: usize = 64 * 1024;

static INTERRUPTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

fn flag() -> &'static Arc<AtomicBool> {
    INTERRUPTED.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Makes `SIGINT`, `SIGTERM` and `SIGHUP` end every wait of this crate with
/// [`crate::Error::Interrupted`] instead of killing the process, so that callers unwind and
/// their [`crate::Vm`]s are dropped (QEMU stopped, temporary files removed). A second
/// signal exits at once with status 130; QEMU then still dies through `PR_SET_PDEATHSIG`.
/// For programs (`kiln boot`); tests need not call it.
pub fn handle_signals() -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        // The order matters: the conditional exit sees the flag as it was before this
        // signal set it.
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(flag()))?;
        signal_hook::flag::register(sig, Arc::clone(flag()))?;
    }
    Ok(())
}

/// Whether [`handle_signals`] saw a signal.
pub(crate) fn interrupted() -> bool {
    flag().load(Ordering::Relaxed)
}

/// A point in time to give up at; `None` is never.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    pub(crate) fn after(d: Duration) -> Deadline {
        Deadline(Instant::now().checked_add(d))
    }

    pub(crate) fn passed(self) -> bool {
        self.0.is_some_and(|t| Instant::now() >= t)
    }

    /// The earlier of the two.
    pub(crate) fn min(self, other: Deadline) -> Deadline {
        match (self.0, other.0) {
            (Some(a), Some(b)) => Deadline(Some(a.min(b))),
            (a, b) => Deadline(a.or(b)),
        }
    }
}

/// Sleeps `d`, in slices, unless interrupted; `false` when interrupted.
pub(crate) fn sleep(d: Duration) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if interrupted() {
            return false;
        }
        thread::sleep(POLL.min(end.saturating_duration_since(Instant::now())));
    }
    !interrupted()
}

/// What QEMU printed on stderr (the last [`STDERR_KEEP`] bytes), and whether it reported
/// a KVM internal error.
#[derive(Default)]
struct Stderr {
    text: String,
    kvm_internal_error: bool,
}

/// A running QEMU (or any program that must not outlive kiln): started from a thread
/// that lives until this is dropped, with `PR_SET_PDEATHSIG` (so the kernel sends
/// `SIGTERM` when kiln dies); stderr captured; terminated and reaped on drop.
pub(crate) struct Tied {
    /// std's `Child` remembers the status once reaped, so the pid is never reused under
    /// us: it is only reaped through this lock.
    child: Mutex<Child>,
    stderr: Arc<Mutex<Stderr>>,
    pid: u32,
    /// Dropping it ends the thread QEMU was forked from.
    _keepalive: mpsc::Sender<()>,
}

impl Tied {
    /// Spawns `cmd` with stderr piped (stdin and stdout as the caller set them).
    pub(crate) fn spawn(mut cmd: Command) -> io::Result<Tied> {
        cmd.stderr(Stdio::piped());
        let parent = rustix::process::getpid();
        // SAFETY: the closure runs between fork and exec and only makes two system calls
        // (prctl, getppid), which are async-signal-safe; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                rustix::process::set_parent_process_death_signal(Some(Signal::TERM))?;
                // The parent may have died before prctl took effect.
                if rustix::process::getppid() != Some(parent) {
                    return Err(io::Error::other("parent exited"));
                }
                Ok(())
            });
        }
        // PDEATHSIG fires when the *thread* that forked exits, so fork from a thread that
        // lives exactly as long as this handle.
        let (child_tx, child_rx) = mpsc::channel();
        let (keepalive, until_dropped) = mpsc::channel::<()>();
        thread::Builder::new()
            .name("kiln-vm-parent".into())
            .spawn(move || {
                let _ = child_tx.send(cmd.spawn());
                let _ = until_dropped.recv();
            })?;
        let mut child = child_rx
            .recv()
            .map_err(|_| io::Error::other("spawner thread died"))??;
        let stderr = Arc::new(Mutex::new(Stderr::default()));
        if let Some(pipe) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            let pid = child.id();
            thread::Builder::new()
                .name("kiln-vm-stderr".into())
                .spawn(move || read_stderr(pipe, pid, &sink))?;
        }
        Ok(Tied {
            pid: child.id(),
            child: Mutex::new(child),
            stderr,
            _keepalive: keepalive,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn take_stdout(&self) -> Option<ChildStdout> {
        self.child.lock().unwrap().stdout.take()
    }

    /// The exit status once it has exited (reaping it).
    pub(crate) fn try_wait(&self) -> Option<ExitStatus> {
        self.child.lock().unwrap().try_wait().ok().flatten()
    }

    /// Waits until it exits or the deadline passes (or a signal arrives).
    pub(crate) fn wait_until(&self, deadline: Deadline) -> Option<ExitStatus> {
        loop {
            if let Some(st) = self.try_wait() {
                return Some(st);
            }
            if deadline.passed() || interrupted() {
                return None;
            }
            thread::sleep(POLL);
        }
    }

    /// `SIGTERM`, `grace` to exit (QEMU restores the terminal), then `SIGKILL`; reaped.
    pub(crate) fn terminate(&self, grace: Duration) -> ExitStatus {
        if let Some(st) = self.try_wait() {
            return st;
        }
        {
            // Holding the lock: not reaped, so the pid is still ours (at worst a zombie).
            let _child = self.child.lock().unwrap();
            if let Some(pid) = Pid::from_raw(self.pid as i32) {
                let _ = rustix::process::kill_process(pid, Signal::TERM);
            }
        }
        let end = Instant::now() + grace;
        while Instant::now() < end {
            if let Some(st) = self.try_wait() {
                return st;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let mut child = self.child.lock().unwrap();
        let _ = child.kill();
        child.wait().expect("waiting for a killed child")
    }

    /// What it printed on stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().text.clone()
    }

    /// Whether QEMU printed `KVM internal error` (it then stops the guest but lives on).
    pub(crate) fn kvm_internal_error(&self) -> bool {
        self.stderr.lock().unwrap().kvm_internal_error
    }
}

impl Drop for Tied {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            tracing::debug!("stopping QEMU (pid {})", self.pid);
            self.terminate(Duration::from_secs(3));
        }
    }
}

fn read_stderr(pipe: impl Read, pid: u32, sink: &Mutex<Stderr>) {
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        tracing::debug!("qemu[{pid}]: {}", text.trim_end());
        let mut s = sink.lock().unwrap();
        if text.contains("KVM internal error") {
            s.kvm_internal_error = true;
        }
        s.text.push_str(&text);
        if s.text.len() > STDERR_KEEP {
            let mut cut = s.text.len() - STDERR_KEEP / 2;
            while !s.text.is_char_boundary(cut) {
                cut += 1;
            }
            s.text.drain(..cut);
        }
    }
}

/// Why [`run`] did not return an output.
#[derive(Debug)]
pub(crate) enum RunError {
    Spawn(io::Error),
    TimedOut,
    Interrupted,
}

/// Runs `cmd` (stdin closed) until it exits, the deadline passes or a signal arrives
/// (then it is killed). With `capture`, stdout and stderr are collected; else they are
/// inherited and the output's are empty.
pub(crate) fn run(
    cmd: &mut Command,
    deadline: Deadline,
    capture: bool,
) -> Result<Output, RunError> {
    cmd.stdin(Stdio::null());
    if capture {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let mut child = cmd.spawn().map_err(RunError::Spawn)?;
    let collect = |pipe: Option<Box<dyn Read + Send>>| {
        pipe.map(|mut p| {
            thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = p.read_to_end(&mut buf);
                buf
            })
        })
    };
    let out = collect(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = collect(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Ok(st),
            Ok(None) => {}
            Err(e) => break Err(RunError::Spawn(e)),
        }
        if deadline.passed() || interrupted() {
            let _ = child.kill();
            let _ = child.wait();
            break Err(if interrupted() {
                RunError::Interrupted
            } else {
                RunError::TimedOut
            });
        }
        thread::sleep(POLL);
    };
    // A grandchild holding the pipes open must not block us: ssh does not fork.
    let join =
        |h: Option<thread::JoinHandle<Vec<u8>>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
    let (stdout, stderr) = (join(out), join(err));
    Ok(Output {
        status: status?,
        stdout,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tied_child_is_terminated_on_drop_and_reaped() {
        let mut cmd = Command::new("sleep");
        cmd.arg("1000");
        let t = Tied::spawn(cmd).unwrap();
        let pid = t.pid();
        assert!(t.try_wait().is_none());
        drop(t);
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn run_kills_at_the_deadline_and_captures_output() {
        let out = run(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Deadline::after(Duration::from_secs(30)),
            true,
        )
        .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        let t = Instant::now();
        let e = run(
            Command::new("sleep").arg("100"),
            Deadline::after(Duration::from_millis(200)),
            true,
        );
        assert!(matches!(e, Err(RunError::TimedOut)));
        assert!(t.elapsed() < Duration::from_secs(10));
    }
}
