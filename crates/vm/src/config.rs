//! What to boot and how: [`VmConfig`], image formats, firmware.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

use crate::{AccelChoice, DEFAULT_QEMU, Error, Result};

/// Everything [`crate::Vm::start`] needs. Start from [`VmConfig::new`] (a disk image) or
/// [`VmConfig::default`] (set [`VmConfig::kernel`] for a direct kernel boot) and change the
/// fields.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// The disk image, attached as a virtio disk (boot index 1).
    pub image: Option<PathBuf>,
    /// Its format; `None` probes with `qemu-img info`, else goes by the extension.
    pub format: Option<ImageFormat>,
    /// Write to the image. By default (`false`) writes go to a throw-away overlay
    /// (`snapshot=on`) and the image is never modified.
    pub persist: bool,
    /// UEFI (OVMF, the default) or legacy BIOS (SeaBIOS).
    pub firmware: Firmware,
    /// A kernel for a direct kernel boot (`-kernel`): a Linux bzImage or a multiboot image.
    pub kernel: Option<PathBuf>,
    /// The initrd of the direct kernel boot (`-initrd`).
    pub initrd: Option<PathBuf>,
    /// The kernel command line of the direct kernel boot (`-append`).
    pub append: Option<String>,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Virtual CPUs.
    pub cpus: u32,
    /// KVM, TCG, or probe ([`AccelChoice::Auto`]).
    pub accel: AccelChoice,
    /// Where the serial console goes.
    pub console: ConsoleMode,
    /// A file that receives everything the serial console prints (truncated first).
    pub serial_log: Option<PathBuf>,
    /// The host port on 127.0.0.1 forwarded to the guest's port 22; `None` picks a free one.
    pub ssh_port: Option<u16>,
    /// The user [`crate::Vm::ssh`] logs in as.
    pub ssh_user: String,
    /// The private key for SSH; `None` leaves it to ssh (agent, `~/.ssh`).
    pub ssh_key: Option<PathBuf>,
    /// How long [`crate::Vm::shutdown`] lets the guest power itself off before QEMU is
    /// told to quit.
    pub shutdown_timeout: Duration,
    /// The QEMU binary.
    pub qemu: PathBuf,
    /// More QEMU arguments, appended last.
    pub extra_args: Vec<OsString>,
}

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig {
            image: None,
            format: None,
            persist: false,
            firmware: Firmware::Uefi,
            kernel: None,
            initrd: None,
            append: None,
            memory_mib: 1024,
            cpus: 2,
            accel: AccelChoice::Auto,
            console: ConsoleMode::Capture,
            serial_log: None,
            ssh_port: None,
            ssh_user: "root".to_string(),
            ssh_key: None,
            shutdown_timeout: Duration::from_secs(60),
            qemu: PathBuf::from(DEFAULT_QEMU),
            extra_args: Vec::new(),
        }
    }
}

impl VmConfig {
    /// Boots `image` with the defaults: UEFI, 1 GiB, 2 CPUs, KVM if it works, console
    /// captured, throw-away overlay.
    pub fn new(image: impl Into<PathBuf>) -> Self {
        VmConfig {
            image: Some(image.into()),
            ..VmConfig::default()
        }
    }
}

/// Where the guest's serial console goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConsoleMode {
    /// Read by kiln: kept in memory (the last megabyte) and copied to
    /// [`VmConfig::serial_log`] when set. QEMU's stdin is empty.
    #[default]
    Capture,
    /// As `Capture`, and also copied to kiln's stdout as it comes (read-only).
    Echo,
    /// Handed to the terminal: QEMU gets kiln's stdin and stdout, with the QEMU monitor
    /// multiplexed in (Ctrl-A C; Ctrl-A X quits). Ctrl-C goes to the guest. Nothing is
    /// kept in memory; [`VmConfig::serial_log`] still gets a copy.
    Terminal,
}

/// The firmware the VM boots with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Firmware {
    /// OVMF from the host (see [`Ovmf::find`]).
    #[default]
    Uefi,
    /// QEMU's default SeaBIOS.
    Bios,
}

impl fmt::Display for Firmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Firmware::Uefi => "UEFI",
            Firmware::Bios => "BIOS",
        })
    }
}

/// The OVMF files a UEFI boot uses: the code (read-only) and the template of the variable
/// store, which is copied for every VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ovmf {
    /// `OVMF_CODE*.fd`.
    pub code: PathBuf,
    /// `OVMF_VARS*.fd` (never written: each VM gets a copy).
    pub vars: PathBuf,
}

/// Where distributions put OVMF, best first: Debian/Ubuntu 4 MiB and 2 MiB builds, Fedora.
const OVMF_CANDIDATES: &[(&str, &str)] = &[
    (
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.fd",
    ),
    (
        "/usr/share/OVMF/OVMF_CODE.fd",
        "/usr/share/OVMF/OVMF_VARS.fd",
    ),
    (
        "/usr/share/edk2/ovmf/OVMF_CODE.fd",
        "/usr/share/edk2/ovmf/OVMF_VARS.fd",
    ),
];

impl Ovmf {
    /// The host's OVMF (package `ovmf`), without Secure Boot.
    pub fn find() -> Result<Ovmf> {
        OVMF_CANDIDATES
            .iter()
            .find(|(code, vars)| Path::new(code).is_file() && Path::new(vars).is_file())
            .map(|(code, vars)| Ovmf {
                code: code.into(),
                vars: vars.into(),
            })
            .ok_or_else(|| Error::OvmfNotFound {
                looked: OVMF_CANDIDATES
                    .iter()
                    .map(|(code, vars)| format!("{code} + {vars}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// The disk image formats kiln builds and boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    /// QEMU copy-on-write v2 (`.qcow2`).
    Qcow2,
    /// A plain disk (`.raw`, `.img`).
    Raw,
    /// VMware (`.vmdk`).
    Vmdk,
    /// Virtual PC / Azure (`.vhd`; QEMU calls it `vpc`).
    Vhd,
    /// Hyper-V (`.vhdx`).
    Vhdx,
    /// An ISO 9660 image (`.iso`), attached as a CD-ROM.
    Iso,
}

impl ImageFormat {
    /// Every format.
    pub const ALL: [ImageFormat; 6] = [
        ImageFormat::Qcow2,
        ImageFormat::Raw,
        ImageFormat::Vmdk,
        ImageFormat::Vhd,
        ImageFormat::Vhdx,
        ImageFormat::Iso,
    ];

    /// kiln's name: `qcow2`, `raw`, `vmdk`, `vhd`, `vhdx`, `iso`.
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Qcow2 => "qcow2",
            ImageFormat::Raw => "raw",
            ImageFormat::Vmdk => "vmdk",
            ImageFormat::Vhd => "vhd",
            ImageFormat::Vhdx => "vhdx",
            ImageFormat::Iso => "iso",
        }
    }

    /// QEMU's name of the block driver (`vhd` is `vpc`, an ISO is `raw` data).
    pub fn qemu_name(self) -> &'static str {
        match self {
            ImageFormat::Vhd => "vpc",
            ImageFormat::Iso => "raw",
            other => other.name(),
        }
    }

    /// From QEMU's driver name (as `qemu-img info` prints it) or kiln's name.
    pub fn from_qemu_name(name: &str) -> Option<ImageFormat> {
        match name {
            "vpc" => Some(ImageFormat::Vhd),
            _ => ImageFormat::ALL.into_iter().find(|f| f.name() == name),
        }
    }

    /// From the file name's extension (`.img` is raw).
    pub fn from_extension(path: &Path) -> Option<ImageFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "img" => Some(ImageFormat::Raw),
            other => ImageFormat::from_qemu_name(other),
        }
    }

    /// Finds the format of an existing image: an ISO 9660 volume descriptor makes it an
    /// ISO (`qemu-img` calls a hybrid ISO `raw`); else `qemu-img info --output=json` reads
    /// its header; when `qemu-img` is missing or fails, the extension decides.
    pub fn probe(path: &Path) -> Result<ImageFormat> {
        if is_iso9660(path) {
            return Ok(ImageFormat::Iso);
        }
        let probed = Command::new("qemu-img")
            .args(["info", "-U", "--output=json"])
            .arg(path)
            .output();
        let detail = match probed {
            Ok(out) if out.status.success() => {
                match serde_json::from_slice::<serde_json::Value>(&out.stdout)
                    .ok()
                    .and_then(|v| v.get("format")?.as_str().map(str::to_string))
                {
                    Some(name) => {
                        // qemu-img knows the header: trust it over the extension.
                        return ImageFormat::from_qemu_name(&name).ok_or_else(|| {
                            Error::UnknownFormat {
                                path: path.to_path_buf(),
                                detail: format!("qemu-img says `{name}`, which kiln does not boot"),
                            }
                        });
                    }
                    None => "qemu-img info printed no format".to_string(),
                }
            }
            Ok(out) => format!(
                "qemu-img info failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                "qemu-img is not installed (`apt-get install qemu-utils`)".to_string()
            }
            Err(e) => format!("cannot run qemu-img: {e}"),
        };
        tracing::debug!("cannot probe {}: {detail}", path.display());
        ImageFormat::from_extension(path).ok_or_else(|| Error::UnknownFormat {
            path: path.to_path_buf(),
            detail: format!(
                "{detail}, and the extension is not one of qcow2, raw, img, vmdk, vhd, vhdx, iso"
            ),
        })
    }
}

/// Whether `path` holds an ISO 9660 filesystem: the primary volume descriptor's
/// `CD001` at byte 32769 (sector 16 of 2048 bytes, after the type byte).
fn is_iso9660(path: &Path) -> bool {
    use std::os::unix::fs::FileExt;
    let mut id = [0u8; 5];
    std::fs::File::open(path)
        .and_then(|f| f.read_exact_at(&mut id, 16 * 2048 + 1))
        .is_ok_and(|()| &id == b"CD001")
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ImageFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ImageFormat::from_qemu_name(&s.to_ascii_lowercase()).ok_or_else(|| {
            Error::Config(format!(
                "unknown image format `{s}`: expected qcow2, raw, vmdk, vhd, vhdx or iso"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_and_extensions() {
        assert_eq!(ImageFormat::Vhd.qemu_name(), "vpc");
        assert_eq!(ImageFormat::from_qemu_name("vpc"), Some(ImageFormat::Vhd));
        assert_eq!("QCOW2".parse::<ImageFormat>().unwrap(), ImageFormat::Qcow2);
        assert!("vdi".parse::<ImageFormat>().is_err());
        for (name, want) in [
            ("a.qcow2", Some(ImageFormat::Qcow2)),
            ("a.img", Some(ImageFormat::Raw)),
            ("a.RAW", Some(ImageFormat::Raw)),
            ("a.vhd", Some(ImageFormat::Vhd)),
            ("a.vhdx", Some(ImageFormat::Vhdx)),
            ("a.vmdk", Some(ImageFormat::Vmdk)),
            ("a.iso", Some(ImageFormat::Iso)),
            ("a", None),
        ] {
            assert_eq!(ImageFormat::from_extension(Path::new(name)), want, "{name}");
        }
    }

    #[test]
    fn probe_reads_the_header_not_the_name() {
        let dir = tempfile::tempdir().unwrap();
        for (fmt, file) in [("qcow2", "disk.raw"), ("vpc", "disk.img"), ("raw", "x")] {
            let path = dir.path().join(file);
            let st = Command::new("qemu-img")
                .args(["create", "-q", "-f", fmt])
                .arg(&path)
                .arg("1M")
                .status()
                .expect("qemu-img (apt-get install qemu-utils)");
            assert!(st.success());
            let want = ImageFormat::from_qemu_name(fmt).unwrap();
            assert_eq!(ImageFormat::probe(&path).unwrap(), want, "{fmt}");
            std::fs::remove_file(&path).unwrap();
        }
        // An ISO 9660 volume is an ISO whatever its name; qemu-img would say raw.
        let iso = dir.path().join("live.raw");
        let mut bytes = vec![0u8; 17 * 2048];
        bytes[16 * 2048..16 * 2048 + 6].copy_from_slice(b"\x01CD001");
        std::fs::write(&iso, &bytes).unwrap();
        assert_eq!(ImageFormat::probe(&iso).unwrap(), ImageFormat::Iso);
        // A format qemu knows but kiln does not boot.
        let vdi = dir.path().join("disk.qcow2");
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "vdi"])
            .arg(&vdi)
            .arg("1M")
            .status()
            .unwrap();
        let err = ImageFormat::probe(&vdi).unwrap_err().to_string();
        assert!(err.contains("`vdi`") && err.contains("--format"), "{err}");
    }
}
