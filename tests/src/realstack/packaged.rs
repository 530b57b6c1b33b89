//! The binaries a dom0 gets: the RPM `cargo xtask dist` builds (static musl binaries, the
//! multipath drop-in), unpacked where the guest sees it, so a real-stack test runs what ships
//! rather than this machine's debug build.
//!
//! The RPM is built with the packaging test's `dist-test` profile (the `dist` profile's static
//! musl binaries without its slow optimiser passes) once per test run: a nextest run shares
//! one build between its test processes (keyed on `NEXTEST_RUN_ID`, under a file lock); a
//! plain `cargo test` process builds it once (cargo itself makes a repeat cheap).
//! `SM_RS_REALSTACK_RPM=<file.rpm>` uses a given RPM instead, e.g. the shipped one from
//! `cargo xtask dist`.
//!
//! The unpacked tree lives under the shared build directory (`target/<profile>/realstack-rpm/
//! root`), which the guest mounts at `/mnt/host`; it must be in place before the VM boots (the
//! guest caches the share).

use std::env;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use super::error::{Error, Result};
use super::{Mode, find_program};

/// The cargo profile the RPM's binaries are built with (as the packaging test builds them).
pub const PROFILE: &str = "dist-test";
const TARGET: &str = "x86_64-unknown-linux-musl";
/// Under the shared build directory.
const DIR: &str = "realstack-rpm";

/// An unpacked RPM.
#[derive(Debug, Clone)]
pub struct Packaged {
    pub rpm: PathBuf,
    /// The unpacked tree on the host.
    pub root: PathBuf,
    /// The same tree in the guest.
    guest_root: String,
}

impl Packaged {
    /// Where the guest finds a file the RPM installs at `installed` (an absolute path on a
    /// dom0), after checking that the RPM has it.
    pub fn guest_path(&self, installed: &str) -> Result<String> {
        let relative = installed.trim_start_matches('/');
        let host = self.root.join(relative);
        if fs::symlink_metadata(&host).is_err() {
            return Err(Error::Unavailable(format!(
                "the RPM {} has no {installed}",
                self.rpm.display()
            )));
        }
        Ok(format!("{}/{relative}", self.guest_root))
    }

    /// Whether the RPM installs `installed`.
    pub fn has(&self, installed: &str) -> bool {
        fs::symlink_metadata(self.root.join(installed.trim_start_matches('/'))).is_ok()
    }

    /// The contents of a file the RPM installs.
    pub fn read(&self, installed: &str) -> Result<String> {
        let path = self.root.join(installed.trim_start_matches('/'));
        fs::read_to_string(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))
    }
}

/// One build per process even when several tests of one binary ask at once.
static BUILT: Mutex<Option<Packaged>> = Mutex::new(None);

/// Builds (or reuses this run's) RPM and unpacks it under `build_dir`. `Ok(None)`: this
/// machine cannot build it and need not (the reason is printed); under
/// `SM_RS_REALSTACK=require` that is an error.
pub fn ensure(build_dir: &Path) -> Result<Option<Packaged>> {
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(packaged) = built.as_ref() {
        return Ok(Some(packaged.clone()));
    }
    let given = env::var_os("SM_RS_REALSTACK_RPM").filter(|v| !v.is_empty());
    if given.is_none()
        && let Some(missing) = missing_tools()
    {
        let why = format!(
            "building the RPM needs {missing} (.ci/install.d/20-packaging.sh installs them)"
        );
        if Mode::from_env()? == Mode::Require {
            return Err(Error::Unavailable(format!(
                "{why} (SM_RS_REALSTACK=require)"
            )));
        }
        eprintln!("realstack: SKIPPED the packaged binaries' test: {why}");
        return Ok(None);
    }
    let dir = build_dir.join(DIR);
    fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    // Several test processes of one run (and other runs on this worktree) meet here.
    let lock =
        File::create(dir.join("lock")).map_err(|e| Error::io("creating the RPM build lock", e))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| Error::io("locking the RPM build", e.into()))?;

    let stamp = dir.join("built-for");
    let this_run = match &given {
        Some(rpm) => format!("given {}", Path::new(rpm).display()),
        None => match env::var("NEXTEST_RUN_ID") {
            Ok(id) => format!("nextest run {id}"),
            Err(_) => format!("process {}", std::process::id()),
        },
    };
    let root = dir.join("root");
    let out = dir.join("out");
    let given = given.map(PathBuf::from);
    // a given RPM is unpacked anew every time: it may have been rebuilt in place
    let fresh = given.is_none()
        && fs::read_to_string(&stamp).is_ok_and(|s| s == this_run)
        && root.is_dir()
        && (given.is_some() || rpm_name(&out).is_some());
    if !fresh {
        let rpm = match &given {
            Some(rpm) => rpm.clone(),
            None => build(&out)?,
        };
        unpack(&rpm, &root)?;
        fs::write(&stamp, &this_run).map_err(|e| Error::io("writing the RPM stamp", e))?;
    }
    let rpm = match given {
        Some(rpm) => rpm,
        None => out
            .join(rpm_name(&out).ok_or_else(|| Error::Build("the RPM build left no RPM".into()))?),
    };
    let packaged = Packaged {
        rpm,
        root,
        guest_root: format!("/mnt/host/{DIR}/root"),
    };
    *built = Some(packaged.clone());
    Ok(Some(packaged))
}

/// What the machine lacks to build and unpack the RPM, if anything.
fn missing_tools() -> Option<String> {
    let mut missing: Vec<String> = ["musl-gcc", "rpmbuild", "rpm2cpio", "cpio"]
        .into_iter()
        .filter(|tool| find_program(tool).is_none())
        .map(String::from)
        .collect();
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let has_target = sysroot.is_some_and(|s| {
        Path::new(&s)
            .join("lib/rustlib")
            .join(TARGET)
            .join("lib")
            .is_dir()
    });
    if !has_target {
        missing.push(format!("the {TARGET} target (rustup target add {TARGET})"));
    }
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// The one `.rpm` in `out`.
fn rpm_name(out: &Path) -> Option<String> {
    fs::read_dir(out)
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(".x86_64.rpm"))
}

/// `cargo xtask dist --profile dist-test --out <out>`; the RPM it made.
fn build(out: &Path) -> Result<PathBuf> {
    let started = std::time::Instant::now();
    if out.exists() {
        fs::remove_dir_all(out).map_err(|e| Error::io(format!("clearing {}", out.display()), e))?;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let cargo = env::var_os("CARGO")
        .or_else(|| option_env!("CARGO").map(Into::into))
        .unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(&workspace)
        .args(["run", "--quiet", "--locked", "-p", "xtask", "--"])
        .args(["dist", "--profile", PROFILE, "--out"])
        .arg(out)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("running cargo xtask dist", e))?;
    if !output.status.success() {
        return Err(Error::Build(format!(
            "cargo xtask dist --profile {PROFILE}: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let rpm = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    if !rpm.is_file() {
        return Err(Error::Build(format!(
            "cargo xtask dist printed no RPM: {stdout}"
        )));
    }
    super::report(
        &format!("RPM build (cargo xtask dist --profile {PROFILE})"),
        started.elapsed(),
    );
    Ok(rpm)
}

/// `rpm2cpio <rpm> | cpio -idm` into a fresh `root`.
fn unpack(rpm: &Path, root: &Path) -> Result<()> {
    if root.exists() {
        fs::remove_dir_all(root)
            .map_err(|e| Error::io(format!("clearing {}", root.display()), e))?;
    }
    fs::create_dir_all(root).map_err(|e| Error::io(format!("creating {}", root.display()), e))?;
    let mut rpm2cpio = Command::new("rpm2cpio")
        .arg(rpm)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("running rpm2cpio", e))?;
    let payload = rpm2cpio
        .stdout
        .take()
        .ok_or_else(|| Error::Protocol("rpm2cpio has no stdout".into()))?;
    let cpio = Command::new("cpio")
        .args(["-idm", "--quiet", "--no-absolute-filenames"])
        .current_dir(root)
        .stdin(payload)
        .output()
        .map_err(|e| Error::io("running cpio", e))?;
    let converted = rpm2cpio
        .wait()
        .map_err(|e| Error::io("waiting for rpm2cpio", e))?;
    if !converted.success() || !cpio.status.success() {
        return Err(Error::Build(format!(
            "unpacking {}: rpm2cpio {converted}, cpio {}: {}",
            rpm.display(),
            cpio.status,
            String::from_utf8_lossy(&cpio.stderr)
        )));
    }
    Ok(())
}
