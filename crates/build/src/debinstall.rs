//! Installing a dependency-closed set of `.deb` files into an empty tree, without apt and
//! without the host's dpkg.
//!
//! # Approach
//!
//! 1. **Raw unpack, in kiln** (fast, safe): merged-/usr symlinks are created first (`bin`,
//!    `sbin`, `lib`, `lib64` → `usr/...`, as debootstrap and mmdebstrap do for bookworm),
//!    then every package's data member is extracted with [`kiln_deb::archive`], whose
//!    in-root resolution guarantees that no entry lands outside the tree.
//! 2. **dpkg database, as `dpkg --unpack` leaves it**: `status` (control fields in dpkg's
//!    field order, `Status: install ok unpacked`, sorted by name), `info/PKG.list` (`/.`
//!    first, then archive order), `info/PKG.{md5sums,conffiles,preinst,...}` (scripts
//!    0755), `PKG:ARCH.*` for `Multi-Arch: same`, `info/format`, `arch`, empty
//!    `available`/`diversions`/`statoverride`, `updates/`, and the trigger interests
//!    (`triggers/File`, `triggers/NAME`) that dpkg registers at unpack. Conffiles are placed
//!    at their final path and recorded in `Conffiles:` with the md5 of the unpacked file,
//!    as after configuration (dpkg finds no `.dpkg-new` and keeps them).
//! 3. **Configure with the tree's own dpkg** in a [`kiln_sandbox`] chroot (tree as `/`, no
//!    network): each package's `preinst install` runs in Pre-Depends/Depends order;
//!    before a preinst whose package has Pre-Depends, the Pre-Depends and their dependency
//!    closure are configured (`dpkg --configure`), which is what Pre-Depends promises.
//!    Then `dpkg --configure -a`, then every registered trigger is activated
//!    (`dpkg-trigger --no-await`) and processed (`dpkg --triggers-only --pending`), which
//!    stands in for the activations an unpack by dpkg would have made.
//!
//! This is debootstrap's/mmdebstrap's "extract, then let dpkg do it properly", without
//! unpacking everything a second time with `dpkg --install`: the only thing that pass adds
//! is running preinsts before the files exist, which we run right after instead.
//!
//! During configuration `/usr/sbin/policy-rc.d` exits 101 (no daemon starts), and
//! initramfs generation is deferred to its own stage in two ways: `INITRD=No` (honoured by
//! the kernel's `/etc/kernel/postinst.d/initramfs-tools` hook) and
//! `update_initramfs=no` in `/etc/initramfs-tools/update-initramfs.conf` (honoured by
//! `update-initramfs -u` from triggers); both are undone afterwards, byte for byte.
//! The environment is `DEBIAN_FRONTEND=noninteractive`, `DEBCONF_NONINTERACTIVE_SEEN=true`,
//! `LC_ALL=C.UTF-8` and `SOURCE_DATE_EPOCH` (Python then writes hash-based `.pyc`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use kiln_deb::archive::{ArchiveError, DebArchive, EntryKind, UnpackOptions};
use kiln_sandbox::{Sandbox, SandboxError, Stream, TreeMode};
use md5::{Digest, Md5};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use thiserror::Error;

/// Where dpkg keeps its database, relative to the tree.
pub const ADMINDIR: &str = "var/lib/dpkg";

/// Control files installed executable into `info/`.
const SCRIPTS: &[&str] = &["preinst", "postinst", "prerm", "postrm", "config"];

/// Merged-/usr links created before unpacking (amd64, as debootstrap in bookworm).
const MERGED_USR: &[&str] = &["bin", "sbin", "lib", "lib64"];

const INITRAMFS_CONF: &str = "etc/initramfs-tools/update-initramfs.conf";

/// dpkg's order of known fields in `status` (lib/dpkg/parse.c); other fields follow in
/// their control-file order.
const FIELD_ORDER: &[&str] = &[
    "Package",
    "Essential",
    "Protected",
    "Status",
    "Priority",
    "Section",
    "Installed-Size",
    "Origin",
    "Maintainer",
    "Bugs",
    "Architecture",
    "Multi-Arch",
    "Source",
    "Version",
    "Config-Version",
    "Replaces",
    "Provides",
    "Depends",
    "Pre-Depends",
    "Recommends",
    "Suggests",
    "Breaks",
    "Conflicts",
    "Enhances",
    "Conffiles",
    "Description",
    "Triggers-Pending",
    "Triggers-Awaited",
];

/// Options of [`install`].
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// dpkg's native architecture (`/var/lib/dpkg/arch`). Default `amd64`.
    pub arch: String,
    /// `SOURCE_DATE_EPOCH` for maintainer scripts (from the manifest).
    pub source_date_epoch: Option<u64>,
    /// Create the merged-/usr symlinks before unpacking. Default true.
    pub merged_usr: bool,
    /// Run maintainer scripts (preinst, `dpkg --configure -a`, triggers) in the sandbox.
    /// When false the tree is left as after `dpkg --unpack` of every package.
    pub configure: bool,
    /// The `bwrap` binary (default: looked up in `PATH`).
    pub bwrap: Option<PathBuf>,
    /// Limit for each sandboxed command.
    pub timeout: Option<Duration>,
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions {
            arch: "amd64".to_owned(),
            source_date_epoch: None,
            merged_usr: true,
            configure: true,
            bwrap: None,
            timeout: None,
        }
    }
}

/// What [`install`] did.
#[derive(Debug, Clone, Default)]
pub struct InstallReport {
    /// The packages installed, by name, sorted.
    pub packages: Vec<String>,
    /// Entries unpacked (all packages).
    pub entries: usize,
    /// Time spent unpacking and writing the database.
    pub unpack_time: Duration,
    /// Time spent in the sandbox (preinsts, configure, triggers).
    pub configure_time: Duration,
    /// Output of the sandboxed commands (stdout and stderr lines).
    pub log: Vec<String>,
}

/// Why an install failed.
#[derive(Debug, Error)]
pub enum InstallError {
    #[error("{}: {source}", .path.display())]
    Archive {
        path: PathBuf,
        #[source]
        source: ArchiveError,
    },
    #[error("{}: {why}", .path.display())]
    BadPackage { path: PathBuf, why: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{what}: {source}")]
    Sandbox {
        what: String,
        #[source]
        source: SandboxError,
    },
    #[error("refusing to write through {}: it is not a plain directory inside the tree", .0.display())]
    UnsafePath(PathBuf),
    #[error("{0}")]
    Invalid(String),
    #[error("after configuration these packages are not `install ok installed`: {0:?}")]
    NotInstalled(Vec<String>),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> InstallError {
    let what = what.into();
    move |source| InstallError::Io { what, source }
}

/// One unpacked package.
#[derive(Debug, Clone)]
struct Pkg {
    name: String,
    arch: String,
    same: bool,
    fields: Vec<(String, String)>,
    conffiles: Vec<String>,
    pre_depends: Vec<Vec<String>>,
    depends: Vec<Vec<String>>,
    provides: Vec<String>,
    has_preinst: bool,
    essential: bool,
    /// Essential or `Priority: required`: the base system, configured before the rest.
    required: bool,
    /// (trigger name or path, noawait) interests from the `triggers` control file.
    interests: Vec<(String, bool)>,
}

impl Pkg {
    /// The name used for `info/` files and trigger interests (`pkg:arch` for M-A: same).
    fn info_name(&self) -> String {
        if self.same {
            format!("{}:{}", self.name, self.arch)
        } else {
            self.name.clone()
        }
    }
}

/// Installs `debs` (a complete, dependency-closed set) into `tree` (an existing, normally
/// empty directory). See the module documentation.
pub fn install(
    tree: &Path,
    debs: &[PathBuf],
    opts: &InstallOptions,
) -> Result<InstallReport, InstallError> {
    install_with_log(tree, debs, opts, &mut |_| {})
}

/// [`install`], also handing every line the sandboxed commands print to `on_line` as it
/// comes (live logs, and output that is still there when a maintainer script fails).
pub fn install_with_log(
    tree: &Path,
    debs: &[PathBuf],
    opts: &InstallOptions,
    on_line: &mut dyn FnMut(&str),
) -> Result<InstallReport, InstallError> {
    let start = Instant::now();
    if !tree.is_dir() {
        return Err(InstallError::Invalid(format!(
            "tree {} is not a directory",
            tree.display()
        )));
    }
    let tree = std::path::absolute(tree).map_err(io_err("resolving the tree"))?;
    let mut report = InstallReport::default();

    if opts.merged_usr {
        for d in MERGED_USR {
            checked_dir(&tree, &format!("usr/{d}"))?;
            let link = tree.join(d);
            if fs::symlink_metadata(&link).is_err() {
                symlink(format!("usr/{d}"), &link)
                    .map_err(io_err(format!("creating {}", link.display())))?;
            }
        }
    }

    let unpack_opts = UnpackOptions::default();
    let mut pkgs = Vec::with_capacity(debs.len());
    let mut lists = Vec::with_capacity(debs.len());
    for deb in debs {
        let (pkg, list, n) = unpack_one(&tree, deb, &unpack_opts)?;
        report.entries += n;
        lists.push(list);
        pkgs.push(pkg);
    }
    {
        let mut seen = HashSet::new();
        for p in &pkgs {
            if !seen.insert(p.info_name()) {
                return Err(InstallError::Invalid(format!(
                    "package {} is given twice",
                    p.info_name()
                )));
            }
        }
    }
    write_database(&tree, &pkgs, &lists, opts)?;
    report.packages = {
        let mut v: Vec<String> = pkgs.iter().map(|p| p.name.clone()).collect();
        v.sort();
        v
    };
    report.unpack_time = start.elapsed();

    if opts.configure {
        let t = Instant::now();
        let mut lines = Vec::new();
        let result = configure(&tree, &pkgs, opts, &mut |l: &str| {
            on_line(l);
            lines.push(l.to_owned());
        });
        report.log = lines;
        result?;
        report.configure_time = t.elapsed();
    }
    Ok(report)
}

/// Unpacks one package's data and its `info/` files; returns the package, its `.list`
/// lines and the number of entries.
fn unpack_one(
    tree: &Path,
    deb: &Path,
    opts: &UnpackOptions,
) -> Result<(Pkg, Vec<String>, usize), InstallError> {
    let arch_err = |source| InstallError::Archive {
        path: deb.to_path_buf(),
        source,
    };
    let bad = |why: String| InstallError::BadPackage {
        path: deb.to_path_buf(),
        why,
    };
    let mut archive = DebArchive::open(deb).map_err(arch_err)?;
    let control = archive.control().map_err(arch_err)?;
    let fields: Vec<(String, String)> = control
        .fields()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let name = get("Package")
        .ok_or_else(|| bad("no Package field".into()))?
        .to_owned();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
    {
        return Err(bad(format!("invalid package name {name:?}")));
    }
    get("Version").ok_or_else(|| bad("no Version field".into()))?;
    let arch = get("Architecture")
        .ok_or_else(|| bad("no Architecture field".into()))?
        .to_owned();
    let same = get("Multi-Arch") == Some("same");
    let essential = get("Essential") == Some("yes");
    let required = essential || get("Priority") == Some("required");
    let rel = |field: &str| -> Result<Vec<Vec<String>>, InstallError> {
        match get(field) {
            None => Ok(Vec::new()),
            Some(text) => kiln_deb::relation::parse(text)
                .map(|groups| {
                    groups
                        .iter()
                        .map(|g| g.iter().map(|r| r.name.to_owned()).collect())
                        .collect()
                })
                .map_err(|e| bad(format!("{field}: {e}"))),
        }
    };
    let pre_depends = rel("Pre-Depends")?;
    let depends = rel("Depends")?;
    let provides = rel("Provides")?.into_iter().flatten().collect();
    let control_files: Vec<(String, Vec<u8>)> = archive.control_files().to_vec();
    drop(control);

    let entries = archive.unpack_data(tree, opts).map_err(arch_err)?;
    let mut list = vec!["/.".to_owned()];
    let mut seen: HashSet<String> = HashSet::from(["/.".to_owned()]);
    for e in &entries {
        let p = e.dpkg_path().to_string_lossy().into_owned();
        if seen.insert(p.clone()) {
            list.push(p);
        }
    }

    let mut pkg = Pkg {
        name,
        arch,
        same,
        fields,
        conffiles: Vec::new(),
        pre_depends,
        depends,
        provides,
        has_preinst: false,
        essential,
        required,
        interests: Vec::new(),
    };
    let info = checked_dir(tree, &format!("{ADMINDIR}/info"))?;
    let iname = pkg.info_name();
    for (file, bytes) in &control_files {
        if file == "control" || file.contains('/') || file.starts_with('.') {
            continue;
        }
        let path = info.join(format!("{iname}.{file}"));
        write_file(&path, bytes)?;
        let mode = if SCRIPTS.contains(&file.as_str()) {
            0o755
        } else {
            0o644
        };
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(io_err(format!("chmod {}", path.display())))?;
        match file.as_str() {
            "preinst" => pkg.has_preinst = true,
            "conffiles" => {
                for line in String::from_utf8_lossy(bytes).lines() {
                    let line = line.trim();
                    if !line.is_empty() {
                        let mut words = line.split_whitespace();
                        let path = words.next().unwrap_or_default();
                        let flags: Vec<&str> = words.collect();
                        let md5 = file_md5(tree, path);
                        let mut s = format!("{path} {md5}");
                        for f in flags {
                            s.push(' ');
                            s.push_str(f);
                        }
                        pkg.conffiles.push(s);
                    }
                }
            }
            "triggers" => {
                for line in String::from_utf8_lossy(bytes).lines() {
                    let mut w = line.split_whitespace();
                    let (Some(kind), Some(what)) = (w.next(), w.next()) else {
                        continue;
                    };
                    match kind {
                        "interest" | "interest-await" => {
                            pkg.interests.push((what.to_owned(), false))
                        }
                        "interest-noawait" => pkg.interests.push((what.to_owned(), true)),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if !control_files.iter().any(|(f, _)| f == "md5sums") {
        // dpkg computes the sums of the regular files when a package ships none.
        let mut sums = String::new();
        for e in &entries {
            if matches!(e.kind, EntryKind::File | EntryKind::HardLink { .. }) {
                let rel = e.path.to_string_lossy();
                let _ = writeln!(sums, "{}  {rel}", file_md5(tree, &rel));
            }
        }
        if !sums.is_empty() {
            write_file(&info.join(format!("{iname}.md5sums")), sums.as_bytes())?;
        }
    }
    Ok((pkg, list, entries.len()))
}

/// md5 of a file in the tree, resolved in-root (a symlink cannot lead out of the tree);
/// `newconffile` (dpkg's marker) when it cannot be read.
fn file_md5(tree: &Path, path: &str) -> String {
    let read = || -> io::Result<String> {
        let root = fs::File::open(tree)?;
        let fd = rustix::fs::openat2(
            &root,
            path.trim_start_matches('/'),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT,
        )?;
        let mut f = fs::File::from(fd);
        if !f.metadata()?.is_file() {
            return Err(io::Error::other("not a file"));
        }
        let mut h = Md5::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(h.finalize().iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        }))
    };
    read().unwrap_or_else(|_| "newconffile".to_owned())
}

/// `tree/rel` as a directory, created if missing, refusing any component that is a
/// symlink or not a directory (a package could have made `var` a link out of the tree).
fn checked_dir(tree: &Path, rel: &str) -> Result<PathBuf, InstallError> {
    let mut p = tree.to_path_buf();
    for c in Path::new(rel).components() {
        let Component::Normal(c) = c else {
            return Err(InstallError::UnsafePath(tree.join(rel)));
        };
        p.push(c);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(InstallError::UnsafePath(p)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&p).map_err(io_err(format!("creating {}", p.display())))?;
                fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
                    .map_err(io_err(format!("chmod {}", p.display())))?;
            }
            Err(e) => return Err(io_err(format!("inspecting {}", p.display()))(e)),
        }
    }
    Ok(p)
}

/// The `status` stanza of a package in dpkg's field order.
fn status_stanza(p: &Pkg, status: &str) -> String {
    let mut known: BTreeMap<usize, String> = BTreeMap::new();
    let mut other = String::new();
    for (k, v) in &p.fields {
        if k.eq_ignore_ascii_case("Status") || k.eq_ignore_ascii_case("Conffiles") {
            continue;
        }
        if k.eq_ignore_ascii_case("Essential") || k.eq_ignore_ascii_case("Protected") {
            // dpkg writes these booleans only when "yes".
            if v != "yes" {
                continue;
            }
        }
        match FIELD_ORDER.iter().position(|f| f.eq_ignore_ascii_case(k)) {
            Some(i) => {
                known.insert(i, format!("{}: {v}\n", FIELD_ORDER[i]));
            }
            None => {
                let _ = writeln!(other, "{k}: {v}");
            }
        }
    }
    let pos = |f: &str| FIELD_ORDER.iter().position(|x| *x == f).unwrap_or(0);
    known.insert(pos("Status"), format!("Status: {status}\n"));
    if !p.conffiles.is_empty() {
        let mut s = String::from("Conffiles:\n");
        for c in &p.conffiles {
            let _ = writeln!(s, " {c}");
        }
        known.insert(pos("Conffiles"), s);
    }
    // Arbitrary fields come after Description and before the trigger fields, as dpkg
    // writes them at the end of the known ones it has (no Triggers-* when unpacked).
    let mut out = String::new();
    for (i, line) in &known {
        if *i > pos("Description") && !other.is_empty() {
            out.push_str(&other);
            other.clear();
        }
        out.push_str(line);
    }
    out.push_str(&other);
    out
}

/// Writes a file in a directory known to be inside the tree; whatever a package may have
/// put at that name (a symlink to a host file, say) is replaced, never followed.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), InstallError> {
    let what = || format!("writing {}", path.display());
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => return Err(InstallError::UnsafePath(path.to_path_buf())),
        Ok(_) => fs::remove_file(path).map_err(io_err(what()))?,
        Err(_) => {}
    }
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut f| {
            io::Write::write_all(&mut f, bytes)?;
            // Not the umask's choice: the tree must not depend on the caller.
            f.set_permissions(fs::Permissions::from_mode(0o644))
        })
        .map_err(io_err(what()))
}

/// Writes the dpkg database as `dpkg --unpack` of every package leaves it.
fn write_database(
    tree: &Path,
    pkgs: &[Pkg],
    lists: &[Vec<String>],
    opts: &InstallOptions,
) -> Result<(), InstallError> {
    let admin = checked_dir(tree, ADMINDIR)?;
    let info = checked_dir(tree, &format!("{ADMINDIR}/info"))?;
    checked_dir(tree, &format!("{ADMINDIR}/updates"))?;
    checked_dir(tree, &format!("{ADMINDIR}/alternatives"))?;
    let triggers = checked_dir(tree, &format!("{ADMINDIR}/triggers"))?;

    for (p, list) in pkgs.iter().zip(lists) {
        let mut text = list.join("\n");
        text.push('\n');
        write_file(
            &info.join(format!("{}.list", p.info_name())),
            text.as_bytes(),
        )?;
    }
    write_file(&info.join("format"), b"1\n")?;

    let mut order: Vec<&Pkg> = pkgs.iter().collect();
    order.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
    let mut status = String::new();
    for p in &order {
        status.push_str(&status_stanza(p, "install ok unpacked"));
        status.push('\n');
    }
    write_file(&admin.join("status"), status.as_bytes())?;
    for f in ["available", "diversions", "statoverride"] {
        write_file(&admin.join(f), b"")?;
    }
    write_file(&admin.join("arch"), format!("{}\n", opts.arch).as_bytes())?;

    // Trigger interests, as dpkg registers them at unpack.
    let mut files: Vec<String> = Vec::new();
    let mut named: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in &order {
        for (what, noawait) in &p.interests {
            let who = format!(
                "{}{}",
                p.info_name(),
                if *noawait { "/noawait" } else { "" }
            );
            if what.starts_with('/') {
                files.push(format!("{what} {who}\n"));
            } else if !what.contains('/') && !what.starts_with('.') && !what.is_empty() {
                named.entry(what.clone()).or_default().push(who + "\n");
            }
        }
    }
    if !files.is_empty() {
        write_file(&triggers.join("File"), files.concat().as_bytes())?;
    }
    for (name, who) in &named {
        write_file(&triggers.join(name), who.concat().as_bytes())?;
    }
    Ok(())
}

/// Names, via Provides too, to package indexes.
fn resolver(pkgs: &[Pkg]) -> HashMap<&str, usize> {
    let mut map = HashMap::new();
    for (i, p) in pkgs.iter().enumerate() {
        map.insert(p.name.as_str(), i);
    }
    for (i, p) in pkgs.iter().enumerate() {
        for v in &p.provides {
            map.entry(v.as_str()).or_insert(i);
        }
    }
    map
}

fn resolve(map: &HashMap<&str, usize>, groups: &[Vec<String>]) -> Vec<usize> {
    groups
        .iter()
        .filter_map(|g| g.iter().find_map(|n| map.get(n.as_str()).copied()))
        .collect()
}

/// Package indexes so that Pre-Depends, then Depends, come before their dependants
/// (cycles broken at the first package met, in name order).
fn install_order(pkgs: &[Pkg]) -> Vec<usize> {
    let map = resolver(pkgs);
    let mut state = vec![0u8; pkgs.len()];
    let mut out = Vec::with_capacity(pkgs.len());
    fn visit(
        i: usize,
        pkgs: &[Pkg],
        map: &HashMap<&str, usize>,
        state: &mut [u8],
        out: &mut Vec<usize>,
    ) {
        if state[i] != 0 {
            return;
        }
        state[i] = 1;
        for j in resolve(map, &pkgs[i].pre_depends)
            .into_iter()
            .chain(resolve(map, &pkgs[i].depends))
        {
            visit(j, pkgs, map, state, out);
        }
        state[i] = 2;
        out.push(i);
    }
    let mut by_name: Vec<usize> = (0..pkgs.len()).collect();
    by_name.sort_by(|&a, &b| pkgs[a].name.cmp(&pkgs[b].name));
    for i in by_name {
        visit(i, pkgs, &map, &mut state, &mut out);
    }
    out
}

/// The Depends/Pre-Depends closure of `start`.
fn closure(pkgs: &[Pkg], map: &HashMap<&str, usize>, start: &[usize]) -> Vec<usize> {
    let mut seen: HashSet<usize> = HashSet::new();
    let mut stack = start.to_vec();
    while let Some(i) = stack.pop() {
        if seen.insert(i) {
            stack.extend(resolve(map, &pkgs[i].pre_depends));
            stack.extend(resolve(map, &pkgs[i].depends));
        }
    }
    let mut v: Vec<usize> = seen.into_iter().collect();
    v.sort();
    v
}

/// One step before `dpkg --configure -a`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Run `preinst install` of these packages, in order.
    Preinst(Vec<usize>),
    /// `dpkg --configure` these packages (the Pre-Depends closure of `before`).
    Configure { before: usize, pkgs: Vec<usize> },
    /// `dpkg --configure` the base system (Essential and `Priority: required` packages
    /// and their dependencies) before the rest, as debootstrap and mmdebstrap do: other
    /// packages' scripts may use its tools without depending on them (`awk`, whose
    /// alternative mawk's postinst makes, in locales' config script).
    ConfigureBase(Vec<usize>),
}

/// When each preinst runs. First, in one batch, the preinsts of every package without
/// Pre-Depends (they may rely only on Essential packages being unpacked, which they are;
/// base-passwd's creates `/etc/passwd` here, before anything is configured). Then, in
/// install order, the preinsts of packages with Pre-Depends, each after its Pre-Depends
/// and their dependency closure are configured.
fn preinst_plan(pkgs: &[Pkg]) -> Vec<Step> {
    let order = install_order(pkgs);
    let map = resolver(pkgs);
    let mut steps = Vec::new();
    let mut first: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&i| pkgs[i].has_preinst && resolve(&map, &pkgs[i].pre_depends).is_empty())
        .collect();
    // Essential packages first: base-passwd's preinst creates /etc/passwd, which others'
    // (libc6's, through debconf) look users up in.
    first.sort_by_key(|&i| !pkgs[i].essential);
    if !first.is_empty() {
        steps.push(Step::Preinst(first));
    }
    let mut configured: HashSet<usize> = HashSet::new();
    let mut batch = Vec::new();
    for i in order {
        let pre = resolve(&map, &pkgs[i].pre_depends);
        if pre.is_empty() || !pkgs[i].has_preinst {
            continue;
        }
        let todo: Vec<usize> = closure(pkgs, &map, &pre)
            .into_iter()
            .filter(|j| !configured.contains(j))
            .collect();
        if !todo.is_empty() {
            if !batch.is_empty() {
                steps.push(Step::Preinst(std::mem::take(&mut batch)));
            }
            configured.extend(todo.iter().copied());
            steps.push(Step::Configure {
                before: i,
                pkgs: todo,
            });
        }
        batch.push(i);
    }
    if !batch.is_empty() {
        steps.push(Step::Preinst(batch));
    }
    let required: Vec<usize> = (0..pkgs.len()).filter(|&i| pkgs[i].required).collect();
    let base: Vec<usize> = closure(pkgs, &map, &required)
        .into_iter()
        .filter(|j| !configured.contains(j))
        .collect();
    if !base.is_empty() {
        steps.push(Step::ConfigureBase(base));
    }
    steps
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs maintainer scripts in the sandbox; see the module documentation.
fn configure(
    tree: &Path,
    pkgs: &[Pkg],
    opts: &InstallOptions,
    log: &mut dyn FnMut(&str),
) -> Result<(), InstallError> {
    // Keep daemons from starting and defer the initramfs.
    let sbin = checked_dir(tree, "usr/sbin")?;
    let policy = sbin.join("policy-rc.d");
    let had_policy = fs::symlink_metadata(&policy).is_ok();
    if !had_policy {
        write_file(&policy, b"#!/bin/sh\nexit 101\n")?;
        fs::set_permissions(&policy, fs::Permissions::from_mode(0o755))
            .map_err(io_err("chmod policy-rc.d"))?;
    }
    let conf = tree.join(INITRAMFS_CONF);
    let saved_conf = match fs::symlink_metadata(&conf) {
        Ok(m) if m.is_file() => {
            checked_dir(tree, "etc/initramfs-tools")?;
            let orig = fs::read(&conf).map_err(io_err("reading update-initramfs.conf"))?;
            let text = String::from_utf8_lossy(&orig);
            let mut new: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("update_initramfs="))
                .map(|l| format!("{l}\n"))
                .collect();
            new.push_str("update_initramfs=no\n");
            write_file(&conf, new.as_bytes())?;
            Some(orig)
        }
        _ => None,
    };

    let result = run_configure(tree, pkgs, opts, log);

    if !had_policy {
        fs::remove_file(&policy).map_err(io_err("removing policy-rc.d"))?;
    }
    if let Some(orig) = saved_conf {
        write_file(&conf, &orig)?;
    }
    result?;

    let not_installed = not_installed(tree)?;
    if !not_installed.is_empty() {
        return Err(InstallError::NotInstalled(not_installed));
    }
    Ok(())
}

/// Packages whose `Status` in the tree's `status` file is not `install ok installed`.
pub fn not_installed(tree: &Path) -> Result<Vec<String>, InstallError> {
    let status = fs::read(tree.join(ADMINDIR).join("status")).map_err(io_err("reading status"))?;
    let mut bad = Vec::new();
    for p in kiln_deb::control::Paragraphs::new(&status) {
        let p = p.map_err(|e| InstallError::Invalid(format!("status file: {e}")))?;
        if p.field("Status") != Some("install ok installed") {
            bad.push(format!(
                "{} ({})",
                p.field("Package").unwrap_or("?"),
                p.field("Status").unwrap_or("?")
            ));
        }
    }
    Ok(bad)
}

fn run_configure(
    tree: &Path,
    pkgs: &[Pkg],
    opts: &InstallOptions,
    log: &mut dyn FnMut(&str),
) -> Result<(), InstallError> {
    let mut sb = Sandbox::new(tree)
        .tree(tree, TreeMode::Chroot)
        .env("DEBCONF_NONINTERACTIVE_SEEN", "true")
        .env("INITRD", "No");
    if let Some(e) = opts.source_date_epoch {
        sb = sb.source_date_epoch(e);
    }
    if let Some(b) = &opts.bwrap {
        sb = sb.bwrap(b);
    }
    if let Some(t) = opts.timeout {
        sb = sb.timeout(t);
    }
    let run = |what: &str, script: &str, log: &mut dyn FnMut(&str)| -> Result<(), InstallError> {
        let r = sb.run_streaming("/bin/sh", ["-c", script], |s, l| match s {
            Stream::Stdout => log(l),
            Stream::Stderr => log(&format!("stderr: {l}")),
        });
        r.map(|_| ()).map_err(|source| InstallError::Sandbox {
            what: what.to_owned(),
            source,
        })
    };

    for step in preinst_plan(pkgs) {
        match step {
            Step::Configure { before, pkgs: idx } => {
                let names: Vec<String> = idx.iter().map(|&j| pkgs[j].info_name()).collect();
                run(
                    &format!("configuring the Pre-Depends of {}", pkgs[before].name),
                    &format!("dpkg --force-unsafe-io --configure {}", names.join(" ")),
                    log,
                )?;
            }
            Step::ConfigureBase(idx) => {
                let names: Vec<String> = idx.iter().map(|&j| pkgs[j].info_name()).collect();
                run(
                    "configuring the base system (Essential and Priority: required)",
                    &format!("dpkg --force-unsafe-io --configure {}", names.join(" ")),
                    log,
                )?;
            }
            Step::Preinst(idx) => {
                let mut script = String::new();
                for i in idx {
                    let p = &pkgs[i];
                    let _ = writeln!(
                        script,
                        "echo \"kiln: preinst install of {n}\" >&2; \
                         DPKG_MAINTSCRIPT_PACKAGE={n} DPKG_MAINTSCRIPT_ARCH={a} \
                         DPKG_MAINTSCRIPT_NAME=preinst DPKG_MAINTSCRIPT_PACKAGE_REFCOUNT=1 \
                         DPKG_ADMINDIR=/var/lib/dpkg DPKG_ROOT= \
                         /var/lib/dpkg/info/{q}.preinst install || \
                         {{ echo \"preinst of {n} failed: $?\" >&2; exit 1; }}",
                        q = sh_quote(&p.info_name()),
                        n = sh_quote(&p.name),
                        a = sh_quote(&p.arch),
                    );
                }
                run("preinst", &script, log)?;
            }
        }
    }
    run(
        "dpkg --configure -a",
        "dpkg --force-unsafe-io --configure -a",
        log,
    )?;

    // Activate every registered trigger once, as unpacking with dpkg would have.
    let mut names: Vec<String> = pkgs
        .iter()
        .flat_map(|p| p.interests.iter().map(|(w, _)| w.clone()))
        .collect();
    names.sort();
    names.dedup();
    if !names.is_empty() {
        let mut script = String::new();
        for n in &names {
            let _ = writeln!(script, "dpkg-trigger --no-await {} || exit 1", sh_quote(n));
        }
        script.push_str("dpkg --force-unsafe-io --triggers-only --pending\n");
        run("processing triggers", &script, log)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, pre: &[&str], dep: &[&str]) -> Pkg {
        Pkg {
            name: name.into(),
            arch: "amd64".into(),
            same: false,
            fields: vec![],
            conffiles: vec![],
            pre_depends: pre.iter().map(|n| vec![n.to_string()]).collect(),
            depends: dep.iter().map(|n| vec![n.to_string()]).collect(),
            provides: vec![],
            has_preinst: false,
            essential: false,
            required: false,
            interests: vec![],
        }
    }

    #[test]
    fn order_puts_pre_depends_first_and_survives_cycles() {
        let pkgs = vec![
            pkg("a", &["c"], &["b"]),
            pkg("b", &[], &["a"]),
            pkg("c", &[], &["d"]),
            pkg("d", &[], &[]),
        ];
        let names: Vec<&str> = install_order(&pkgs)
            .into_iter()
            .map(|i| pkgs[i].name.as_str())
            .collect();
        assert_eq!(names, ["d", "c", "b", "a"]);
    }

    #[test]
    fn preinsts_without_pre_depends_first_then_pre_depends_configured() {
        let mut pkgs = vec![
            pkg("libc6", &[], &[]),
            pkg("base-passwd", &[], &[]),
            pkg("perl-base", &["libc6"], &[]),
            pkg("debconf", &["perl-base"], &[]),
            pkg("pam", &["debconf"], &["libc6"]),
            pkg("tool", &["libc6"], &[]),
        ];
        for p in &mut pkgs {
            p.has_preinst = p.name != "tool";
            p.essential = p.name == "base-passwd";
        }
        let idx = |n: &str| pkgs.iter().position(|p| p.name == n).unwrap();
        let plan = preinst_plan(&pkgs);
        assert_eq!(
            plan,
            [
                Step::Preinst(vec![idx("base-passwd"), idx("libc6")]),
                Step::Configure {
                    before: idx("perl-base"),
                    pkgs: vec![idx("libc6")]
                },
                Step::Preinst(vec![idx("perl-base")]),
                Step::Configure {
                    before: idx("debconf"),
                    pkgs: vec![idx("perl-base")]
                },
                Step::Preinst(vec![idx("debconf")]),
                Step::Configure {
                    before: idx("pam"),
                    pkgs: vec![idx("debconf")]
                },
                Step::Preinst(vec![idx("pam")]),
            ]
        );
    }

    #[test]
    fn stanza_follows_dpkg_field_order() {
        let mut p = pkg("x", &[], &[]);
        p.fields = [
            ("Package", "x"),
            ("Version", "1"),
            ("Architecture", "amd64"),
            ("Maintainer", "m"),
            ("Homepage", "h"),
            ("Essential", "no"),
            ("Description", "d\n more"),
            ("Depends", "y"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        p.conffiles = vec!["/etc/x 0123".into()];
        assert_eq!(
            status_stanza(&p, "install ok unpacked"),
            "Package: x\nStatus: install ok unpacked\nMaintainer: m\nArchitecture: amd64\n\
             Version: 1\nDepends: y\nConffiles:\n /etc/x 0123\nDescription: d\n more\n\
             Homepage: h\n"
        );
    }

    #[test]
    fn the_base_system_is_configured_before_the_rest() {
        let mut pkgs = vec![
            pkg("libc6", &[], &[]),
            pkg("mawk", &[], &["libc6"]),
            pkg("locales", &[], &["libc6"]),
        ];
        pkgs[1].required = true;
        let plan = preinst_plan(&pkgs);
        assert_eq!(plan, [Step::ConfigureBase(vec![0, 1])]);
    }
}
