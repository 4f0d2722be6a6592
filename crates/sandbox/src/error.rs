//! The errors of a sandboxed run.

use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use crate::Output;

/// Why a sandboxed command could not run or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// `bwrap` is not installed on the host.
    #[error(
        "bubblewrap (`bwrap`) was not found (looked in {searched}); kiln runs build tools \
         and maintainer scripts under it: install it with `apt-get install bubblewrap`"
    )]
    BwrapMissing {
        /// Where it was looked for.
        searched: String,
    },

    /// The program is not in the sandbox's view (the build root, or the tree in chroot mode).
    #[error(
        "command `{command}` not found in the {place} ({root}) with PATH={path}: \
         install the package that provides it into the {place}"
    )]
    CommandNotFound {
        /// The command as given.
        command: String,
        /// "build root" or "tree".
        place: &'static str,
        /// Host path of that build root or tree.
        root: PathBuf,
        /// The sandbox's `PATH`.
        path: String,
    },

    /// The command ran and exited unsuccessfully.
    #[error("`{command}` failed in the sandbox ({status}){}", tail_suffix(.output.stderr_tail(20)))]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// Everything it printed.
        output: Box<Output>,
    },

    /// The command ran longer than its timeout; it and every process it started were killed.
    #[error(
        "`{command}` timed out after {}s and was killed with every process it started{}",
        .timeout.as_secs_f64(),
        tail_suffix(.stderr_tail.clone())
    )]
    Timeout {
        /// The command line.
        command: String,
        /// The limit that was exceeded.
        timeout: Duration,
        /// The last lines it wrote to stderr.
        stderr_tail: String,
    },

    /// bubblewrap itself failed before the command started (a mount, a bind source, ...).
    #[error("bubblewrap could not set up the sandbox for `{command}`: {message}")]
    Setup {
        /// The command line.
        command: String,
        /// bubblewrap's message.
        message: String,
    },

    /// The sandbox was configured wrongly (relative paths, missing bind sources, ...).
    #[error("invalid sandbox configuration: {0}")]
    Config(String),

    /// An I/O error talking to the sandbox process.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn tail_suffix(tail: String) -> String {
    if tail.is_empty() {
        return String::new();
    }
    let mut s = String::from("; last lines of stderr:");
    for line in tail.lines() {
        let _ = write!(s, "\n  | {line}");
    }
    s
}

impl SandboxError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        SandboxError::Io {
            context: context.into(),
            source,
        }
    }

    /// The captured output, when the command ran to completion.
    pub fn output(&self) -> Option<&Output> {
        match self {
            SandboxError::Failed { output, .. } => Some(output),
            _ => None,
        }
    }
}
