//! KVM or TCG: a probe that boots the firmware under KVM, and its cached verdict.
//! (Why a probe: see the crate documentation.)

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::process::{self, Tied};
use crate::vm::qemu_path_opt;
use crate::{DEFAULT_QEMU, Error, Ovmf};

/// How long the firmware may take to reach its boot manager under KVM. Working KVM
/// gets there in about a second; only firmware that hangs costs this much (once per boot
/// of the host, as the verdict is cached).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The accelerator QEMU runs the guest with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Accel {
    /// Hardware virtualization (`-accel kvm -cpu host`).
    Kvm,
    /// QEMU's emulator (`-accel tcg -cpu max`): slow but works everywhere.
    Tcg,
}

/// What the caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccelChoice {
    /// KVM if the probe says it works (see [`Accel::detect`]), else TCG.
    #[default]
    Auto,
    /// KVM, without probing.
    Kvm,
    /// TCG.
    Tcg,
}

/// The accelerator chosen, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelDecision {
    /// The accelerator.
    pub accel: Accel,
    /// Why: what the probe saw, or that it was asked for.
    pub reason: String,
    /// Whether the verdict came from the cache of an earlier probe.
    pub cached: bool,
    /// How long this call's probe took (`None` when nothing was probed).
    pub probe_time: Option<Duration>,
}

impl Accel {
    /// QEMU's name (`-accel NAME`).
    pub fn qemu_name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// The CPU model used with it: the host's CPU under KVM, every feature TCG emulates
    /// under TCG.
    pub fn cpu_model(self) -> &'static str {
        match self {
            Accel::Kvm => "host",
            Accel::Tcg => "max",
        }
    }

    /// KVM if it works here, else TCG, with [`DEFAULT_QEMU`]. Never fails: every reason
    /// not to use KVM gives TCG, with the reason.
    pub fn detect() -> AccelDecision {
        Accel::detect_with(Path::new(DEFAULT_QEMU))
    }

    /// [`Accel::detect`] with a given QEMU binary.
    ///
    /// `/dev/kvm` must open read-write; then, unless a verdict for this boot of the host,
    /// kernel, QEMU and firmware is cached, SeaBIOS and OVMF are booted without a disk
    /// under KVM and must reach their boot managers within [`PROBE_TIMEOUT`] without
    /// QEMU reporting a KVM internal error or exiting.
    pub fn detect_with(qemu: &Path) -> AccelDecision {
        let decision = detect_uncached_or_cached(qemu);
        tracing::info!(
            "accelerator: {} ({}{})",
            decision.accel,
            decision.reason,
            match decision.probe_time {
                Some(t) => format!("; probe took {} ms", t.as_millis()),
                None => String::new(),
            }
        );
        decision
    }
}

fn tcg(reason: String) -> AccelDecision {
    AccelDecision {
        accel: Accel::Tcg,
        reason,
        cached: false,
        probe_time: None,
    }
}

fn detect_uncached_or_cached(qemu: &Path) -> AccelDecision {
    if let Err(e) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        return tcg(format!("KVM is not available: cannot open /dev/kvm: {e}"));
    }
    let Some(key) = cache_key(qemu) else {
        return tcg(format!("cannot run `{} --version`", qemu.display()));
    };
    let cache = cache_file();
    if let Some(hit) = cache.as_deref().and_then(|path| read_cache(path, &key)) {
        return AccelDecision {
            accel: if hit.kvm { Accel::Kvm } else { Accel::Tcg },
            reason: format!("{}; verdict cached", hit.reason),
            cached: true,
            probe_time: None,
        };
    }
    let started = Instant::now();
    let verdict = probe(qemu, Accel::Kvm, PROBE_TIMEOUT);
    let took = started.elapsed();
    let (accel, reason) = match verdict {
        Ok(fw) => (
            Accel::Kvm,
            format!(
                "KVM works: {fw} reached the boot manager under KVM in {:.1} s",
                took.as_secs_f64()
            ),
        ),
        Err(why) => (Accel::Tcg, format!("KVM is not usable: {why}")),
    };
    if !process::interrupted()
        && let Some(path) = &cache
    {
        write_cache(
            path,
            &CacheEntry {
                key,
                kvm: accel == Accel::Kvm,
                reason: reason.clone(),
            },
        );
    }
    AccelDecision {
        accel,
        reason,
        cached: false,
        probe_time: Some(took),
    }
}

impl AccelChoice {
    /// The decision for this choice ([`AccelChoice::Auto`] probes with `qemu`).
    pub fn resolve(self, qemu: &Path) -> AccelDecision {
        let forced = |accel| AccelDecision {
            accel,
            reason: "requested explicitly".to_string(),
            cached: false,
            probe_time: None,
        };
        match self {
            AccelChoice::Auto => Accel::detect_with(qemu),
            AccelChoice::Kvm => forced(Accel::Kvm),
            AccelChoice::Tcg => forced(Accel::Tcg),
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG",
        })
    }
}

impl fmt::Display for AccelDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.accel, self.reason)
    }
}

impl FromStr for AccelChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "auto" => Ok(AccelChoice::Auto),
            "kvm" => Ok(AccelChoice::Kvm),
            "tcg" => Ok(AccelChoice::Tcg),
            _ => Err(Error::Config(format!(
                "unknown accelerator `{s}`: expected auto, kvm or tcg"
            ))),
        }
    }
}

/// One firmware booting without a disk, and the output that shows it got to its boot
/// manager.
struct FirmwareRun {
    name: &'static str,
    log: PathBuf,
    milestones: &'static [&'static str],
    qemu: Tied,
    reached: bool,
}

/// Boots SeaBIOS and (when installed) OVMF under `accel`, in parallel and without a disk,
/// and waits until both reach their boot managers. `Ok` names the firmware; `Err` says
/// what went wrong.
pub(crate) fn probe(qemu: &Path, accel: Accel, timeout: Duration) -> Result<String, String> {
    let dir = tempfile::Builder::new()
        .prefix("kiln-kvm-probe-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let common = |log_args: Vec<OsString>| {
        let mut cmd = Command::new(qemu);
        cmd.args(["-machine", "q35", "-accel", accel.qemu_name()])
            .args(["-cpu", accel.cpu_model(), "-m", "128", "-smp", "1"])
            .args(["-nodefaults", "-no-user-config", "-display", "none"])
            .args(log_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        cmd
    };
    let spawn = |cmd: Command| {
        Tied::spawn(cmd).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => format!("{} not found", qemu.display()),
            _ => format!("cannot run {}: {e}", qemu.display()),
        })
    };
    let mut runs = Vec::new();

    // SeaBIOS logs to the debug console at port 0x402; it ends with "Booting from ..."
    // (or "No bootable device.") once it hands over to a boot device.
    let log = dir.path().join("seabios.log");
    let mut args = vec!["-debugcon".into(), qemu_path_opt("file:", &log)];
    args.extend(["-global".into(), "isa-debugcon.iobase=0x402".into()]);
    runs.push(FirmwareRun {
        name: "SeaBIOS",
        qemu: spawn(common(args))?,
        log,
        milestones: &["Booting from ", "No bootable device"],
        reached: false,
    });

    // Debian's OVMF is a release build (nothing on the debug port), but its boot manager
    // (BdsDxe) reports on the serial port which boot option it tries.
    if let Ok(ovmf) = Ovmf::find() {
        let vars = dir.path().join("OVMF_VARS.fd");
        fs::copy(&ovmf.vars, &vars)
            .map_err(|e| format!("cannot copy {}: {e}", ovmf.vars.display()))?;
        let log = dir.path().join("ovmf.log");
        let args = vec![
            "-drive".into(),
            qemu_path_opt("if=pflash,format=raw,unit=0,readonly=on,file=", &ovmf.code),
            "-drive".into(),
            qemu_path_opt("if=pflash,format=raw,unit=1,file=", &vars),
            "-serial".into(),
            qemu_path_opt("file:", &log),
        ];
        runs.push(FirmwareRun {
            name: "OVMF",
            qemu: spawn(common(args))?,
            log,
            milestones: &["BdsDxe"],
            reached: false,
        });
    }

    let started = Instant::now();
    loop {
        for run in runs.iter_mut().filter(|r| !r.reached) {
            if run.qemu.kvm_internal_error() {
                return Err(format!(
                    "QEMU reported a KVM internal error running {} under {accel}{}",
                    run.name,
                    stderr_hint(&run.qemu.stderr())
                ));
            }
            let out = fs::read(&run.log).unwrap_or_default();
            let text = String::from_utf8_lossy(&out);
            if run.milestones.iter().any(|m| text.contains(m)) {
                tracing::debug!(
                    "{} reached its boot manager under {accel} in {} ms",
                    run.name,
                    started.elapsed().as_millis()
                );
                run.reached = true;
            } else if let Some(st) = run.qemu.try_wait() {
                return Err(format!(
                    "QEMU exited ({st}) running {} under {accel}{}",
                    run.name,
                    stderr_hint(&run.qemu.stderr())
                ));
            }
        }
        if runs.iter().all(|r| r.reached) {
            return Ok(runs
                .iter()
                .map(|r| r.name)
                .collect::<Vec<_>>()
                .join(" and "));
        }
        if started.elapsed() > timeout {
            let stuck: Vec<String> = runs
                .iter()
                .filter(|r| !r.reached)
                .map(|r| {
                    let out = fs::read(&r.log).unwrap_or_default();
                    let text = crate::console::clean(&out);
                    match text.lines().rev().find(|l| !l.trim().is_empty()) {
                        Some(last) => format!("{} hangs after \"{}\"", r.name, last.trim()),
                        None => format!("{} printed nothing", r.name),
                    }
                })
                .collect();
            return Err(format!(
                "the firmware made no progress under {accel} in {} s ({})",
                timeout.as_secs(),
                stuck.join("; ")
            ));
        }
        if process::interrupted() {
            return Err("interrupted".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `": <the first line of QEMU's stderr that is not a warning>"`.
fn stderr_hint(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    lines
        .iter()
        .find(|l| !l.contains("warning:"))
        .or(lines.first())
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default()
}

#[derive(Serialize, Deserialize)]
struct CacheEntry {
    key: String,
    kvm: bool,
    reason: String,
}

/// What the verdict depends on: this boot of the host, its kernel, QEMU, the firmware.
fn cache_key(qemu: &Path) -> Option<String> {
    let out = Command::new(qemu)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let version = String::from_utf8_lossy(&out.stdout);
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default().trim().to_string();
    let firmware = Ovmf::find()
        .ok()
        .and_then(|o| fs::metadata(&o.code).ok().map(|m| (o, m)))
        .map(|(o, m)| format!("{}:{}:{}", o.code.display(), m.len(), m.mtime()))
        .unwrap_or_default();
    Some(format!(
        "boot={} kernel={} qemu={} ({}) ovmf={}",
        read("/proc/sys/kernel/random/boot_id"),
        read("/proc/sys/kernel/osrelease"),
        version.lines().next().unwrap_or("").trim(),
        qemu.display(),
        firmware
    ))
}

/// `$XDG_RUNTIME_DIR/kiln/kvm-probe.json`, else `$TMPDIR/kiln-UID/kvm-probe.json`; the
/// directory is made private, and not used unless it is ours.
fn cache_file() -> Option<PathBuf> {
    let uid = rustix::process::getuid().as_raw();
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| Path::new(d).is_dir()) {
        Some(run) => PathBuf::from(run).join("kiln"),
        None => std::env::temp_dir().join(format!("kiln-{uid}")),
    };
    let _ = fs::DirBuilder::new().mode(0o700).create(&dir);
    let meta = fs::symlink_metadata(&dir).ok()?;
    (meta.is_dir() && meta.uid() == uid && meta.mode() & 0o022 == 0)
        .then(|| dir.join("kvm-probe.json"))
}

fn read_cache(path: &Path, key: &str) -> Option<CacheEntry> {
    let entry: CacheEntry = serde_json::from_slice(&fs::read(path).ok()?).ok()?;
    (entry.key == key).then_some(entry)
}

fn write_cache(path: &Path, entry: &CacheEntry) {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let json = serde_json::to_vec_pretty(entry).expect("serializable");
    if let Err(e) = fs::write(&tmp, json).and_then(|()| fs::rename(&tmp, path)) {
        tracing::debug!("cannot cache the KVM verdict in {}: {e}", path.display());
        let _ = fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The milestones the probe waits for must show up when the accelerator works, or
    /// a broken probe would pass for broken KVM: TCG always works.
    #[test]
    fn probe_milestones_are_reached_under_tcg() {
        let t = Instant::now();
        let fw = probe(
            Path::new(DEFAULT_QEMU),
            Accel::Tcg,
            Duration::from_secs(120),
        )
        .expect("SeaBIOS and OVMF must reach their boot managers under TCG");
        assert_eq!(
            fw, "SeaBIOS and OVMF",
            "OVMF is installed (apt-get install ovmf)"
        );
        eprintln!(
            "firmware reached the boot manager under TCG in {:?}",
            t.elapsed()
        );
    }

    /// The verdict on this host, uncached. It cannot be asserted (it depends on the host),
    /// but it must come with a reason, and a "KVM works" verdict must be checkable.
    #[test]
    fn kvm_probe_gives_a_verdict_and_a_reason() {
        let t = Instant::now();
        let verdict = probe(Path::new(DEFAULT_QEMU), Accel::Kvm, PROBE_TIMEOUT);
        let took = t.elapsed();
        eprintln!("KVM probe: {verdict:?} in {took:?}");
        match verdict {
            Ok(fw) => assert!(fw.contains("SeaBIOS")),
            Err(why) => assert!(!why.is_empty()),
        }
        assert!(took < PROBE_TIMEOUT + Duration::from_secs(10));
    }

    #[test]
    fn detect_caches_its_verdict() {
        let t = Instant::now();
        let first = Accel::detect();
        let t1 = t.elapsed();
        let second = Accel::detect();
        eprintln!("detect: {first} in {t1:?}; again in {:?}", t.elapsed() - t1);
        assert_eq!(first.accel, second.accel);
        assert!(!first.reason.is_empty());
        let kvm_opens = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        if kvm_opens && cache_file().is_some() {
            assert!(second.cached, "{second:?}");
            assert!(second.probe_time.is_none());
        }
    }

    #[test]
    fn stderr_hint_skips_warnings() {
        let s = "qemu: warning: host doesn't support requested feature\nqemu: error: failed to set MSR 0x10a\nAborted\n";
        assert_eq!(stderr_hint(s), ": qemu: error: failed to set MSR 0x10a");
        assert_eq!(stderr_hint(""), "");
    }
}
