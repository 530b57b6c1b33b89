//! The real-stack harness: a qemu VM running the real kernel dm-multipath, multipathd,
//! open-iscsi, tgt and LIO, driven from Rust tests.
//!
//! ```no_run
//! use sm_testkit::realstack::{self, Topology};
//! let Some(stack) = realstack::prepare().expect("real stack") else {
//!     return; // this machine cannot run it; the reason was printed
//! };
//! let mut vm = stack.boot(Topology::ScsiTwoHbas).expect("boot");
//! let topology = vm.sh("multipathd show topology").expect("multipathd");
//! ```
//!
//! - The guest image is built on first use and cached (`image`); everything it runs comes
//!   from `tests/realstack/`.
//! - The host's build output (`target/debug`) is shared read-only at `/mnt/host`, so the
//!   code under test runs in the guest without rebuilding the image.
//! - Faults come through QMP or guest commands (`faults`); waits poll with deadlines (`poll`).
//! - No qemu outlives its test (`process`).
//!
//! Environment:
//!
//! | variable | meaning |
//! |---|---|
//! | `SM_RS_REALSTACK` | `auto` (default): run if the machine can, else skip with a printed reason; `require`: a machine that cannot is a failure (CI); `off`: skip |
//! | `SM_RS_REALSTACK_CACHE` | image cache, default `~/.cache/sm-rs/realstack` |
//! | `SM_RS_REALSTACK_QEMU` | the qemu binary, default `qemu-system-x86_64` on `PATH` |
//! | `SM_RS_REALSTACK_ACCEL` | qemu accelerator, default `tcg` (KVM is broken on the CI machines) |
//! | `SM_RS_REALSTACK_RPM` | the RPM whose binaries the tests of what ships run ([`Stack::packaged`]); default: built once per run by `cargo xtask dist --profile dist-test` |
//! | `SM_RS_DOM0_MULTIPATHD` | the sources of the dom0's multipathd 0.4.9-xs, default `<project root>/../shared/dom0-multipathd`; without them the image has only Debian's 0.9.4 and the 0.4.9 tests skip (fail under `require`) |
//!
//! Each VM runs one of two multipathd ([`Daemon`], [`Stack::boot_on`], [`Stack::has`]): Debian's
//! 0.9.4 with the guest's own multipath.conf (a map for every LUN at boot), or the dom0's
//! 0.4.9-136.xs8 with stock sm's multipath.conf, custom.conf and our drop-in (a map only for a
//! listed WWID; [`Vm::make_maps_stock_way`]). 0.4.9 logs only to syslog: [`Vm::syslog`].

mod agent;
mod daemon;
mod error;
mod faults;
pub mod guest_xapi;
mod image;
mod io;
mod jsonl;
mod mpathutil_check;
pub mod multipathd;
mod packaged;
mod poll;
mod process;
mod qmp;
pub mod scenario;
mod sim_mirror;
mod timing;
mod topology;
mod vm;

use std::env;
use std::path::{Path, PathBuf};

pub use agent::Output;
pub use daemon::Daemon;
pub use error::{Error, Result};
pub use faults::{
    AluaFailover, AluaState, Controller, CutPortal, PullScsiPath, a_active_b_standby,
    both_paths_ready, scsi_path_port, tgt_portal_port,
};
pub use image::Image;
pub use io::{IoLoop, IoStats, checksum, fill};
pub use mpathutil_check::MpathutilCheck;
pub use multipathd::{Map, Snapshot, StockPathCount, wait_for_map, wait_for_snapshot};
pub use packaged::Packaged;
pub use poll::{Probe, wait_for};
pub use process::is_alive;
pub use qmp::Qmp;
pub use scenario::{CheckFn, PathFault, StateCheck, WalkReport, walk};
pub use sim_mirror::SimMirror;
pub use timing::report;
pub use topology::{SCSI_PATHS, ScsiPath, Topology, scsi_lun_wwid};
pub use vm::{Vm, VmSpec};

/// Whether the real-stack tests must, may or must not run (`SM_RS_REALSTACK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Auto,
    Require,
    Off,
}

impl Mode {
    pub fn from_env() -> Result<Mode> {
        Mode::parse(env::var("SM_RS_REALSTACK").unwrap_or_default().as_str())
    }

    fn parse(value: &str) -> Result<Mode> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(Mode::Auto),
            "require" | "required" | "1" | "yes" => Ok(Mode::Require),
            "off" | "skip" | "0" | "no" => Ok(Mode::Off),
            other => Err(Error::Unavailable(format!(
                "SM_RS_REALSTACK={other:?}: use auto, require or off"
            ))),
        }
    }
}

/// The image cache directory.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = env::var_os("SM_RS_REALSTACK_CACHE").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let base = env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(base.join("sm-rs").join("realstack"))
}

/// A machine ready to boot test VMs.
pub struct Stack {
    pub image: Image,
    qemu: PathBuf,
    accel: String,
    build_dir: Option<PathBuf>,
}

/// Checks that this machine can run the real stack and builds (or finds) the guest image.
/// `Ok(None)`: it cannot and need not (the reason is printed); `Err`: it cannot but must
/// (`SM_RS_REALSTACK=require`), or building the image failed.
pub fn prepare() -> Result<Option<Stack>> {
    let mode = Mode::from_env()?;
    if mode == Mode::Off {
        eprintln!("realstack: SKIPPED: SM_RS_REALSTACK=off");
        return Ok(None);
    }
    let cache =
        cache_dir().ok_or_else(|| Error::Unavailable("no HOME to put the image cache in".into()));
    let found = cache.and_then(|cache| check_host(&cache).map(|qemu| (cache, qemu)));
    let (cache, qemu) = match found {
        Ok(found) => found,
        Err(Error::Unavailable(reason)) if mode == Mode::Auto => {
            eprintln!(
                "realstack: SKIPPED: {reason} (`cargo xtask test` installs the tools as root, \
                 and leaves out what cannot run so that it counts as skipped, not passed; \
                 SM_RS_REALSTACK=require makes this a failure)"
            );
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let (image, built) = image::ensure(&cache)?;
    if let Some(took) = built {
        report(
            &format!("guest image build (kernel {})", image.kernel_version()),
            took,
        );
    }
    Ok(Some(Stack {
        image,
        qemu,
        accel: env::var("SM_RS_REALSTACK_ACCEL").unwrap_or_else(|_| "tcg".into()),
        build_dir: build_dir(),
    }))
}

/// `systemctl` in the guest, for the units the driver asks about (iscsid).
const SYSTEMCTL_STAND_IN: &str = "test -x /usr/sbin/systemctl || { printf '%s\\n' '#!/bin/sh' \
    'case \"$1\" in is-active) pidof iscsid >/dev/null ;; start|restart) pidof iscsid >/dev/null || iscsid ;; *) exit 0 ;; esac' \
    >/usr/sbin/systemctl && chmod +x /usr/sbin/systemctl; }";

impl Stack {
    /// Boots a VM of this topology with the build output shared, and reports the boot time.
    pub fn boot(&self, topology: Topology) -> Result<Vm> {
        let mut spec = VmSpec::new(topology);
        spec.share = self.build_dir.clone();
        spec.accel = self.accel.clone();
        self.boot_with(&spec)
    }

    /// Boots a VM of this topology running `daemon`; see [`Stack::has`] first.
    pub fn boot_on(&self, topology: Topology, daemon: Daemon) -> Result<Vm> {
        let mut spec = VmSpec::new(topology);
        spec.daemon = daemon;
        spec.share = self.build_dir.clone();
        spec.accel = self.accel.clone();
        self.boot_with(&spec)
    }

    /// Whether the image carries `daemon`. When it does not (a plain clone has no
    /// `../shared/dom0-multipathd`), the test should return: this prints why it is skipped;
    /// with `SM_RS_REALSTACK=require` it is an error instead.
    pub fn has(&self, daemon: Daemon) -> Result<bool> {
        if self.image.daemons().iter().any(|d| d == daemon.name()) {
            return Ok(true);
        }
        let reason = match image::dom0_sources() {
            Err(why) => why,
            Ok(dir) => format!(
                "the image {} has no {} although {} exists (rebuild it)",
                self.image.dir.display(),
                daemon.name(),
                dir.display()
            ),
        };
        if Mode::from_env()? == Mode::Require {
            return Err(Error::Unavailable(format!(
                "multipathd {daemon}: {reason} (SM_RS_REALSTACK=require)"
            )));
        }
        eprintln!("realstack: SKIPPED on multipathd {daemon}: {reason}");
        Ok(false)
    }

    pub fn boot_with(&self, spec: &VmSpec) -> Result<Vm> {
        let mut vm = Vm::start(&self.image, &self.qemu, spec)?;
        // A dom0 runs systemd and the driver asks it about iscsid (`systemctl is-active`,
        // `start`); the guest runs no systemd, so a stand-in on xapi's PATH answers from the
        // process table, as systemd would for a daemon it started.
        vm.sh(SYSTEMCTL_STAND_IN)?;
        report(
            &format!(
                "boot {:?} on multipathd {} (qemu start to agent ready)",
                spec.topology, spec.daemon
            ),
            vm.boot_time,
        );
        if spec.topology.guest_setup().is_some() {
            report(&format!("target setup {:?}", spec.topology), vm.setup_time);
        }
        Ok(vm)
    }

    /// The host's `target/<profile>` directory the tests were built into, shared with the
    /// guest at `/mnt/host`.
    pub fn build_dir(&self) -> Option<&Path> {
        self.build_dir.as_deref()
    }

    /// The RPM `cargo xtask dist` builds, unpacked where the guest sees it at
    /// [`Packaged::guest_path`]; built once per test run (see `packaged`). Call it before
    /// booting the VM that uses it. `Ok(None)`: this machine cannot build the RPM and need
    /// not (the reason is printed).
    pub fn packaged(&self) -> Result<Option<Packaged>> {
        let dir = self
            .build_dir
            .as_deref()
            .ok_or_else(|| Error::Unavailable("cannot tell the build directory".into()))?;
        packaged::ensure(dir)
    }

    /// Where the guest finds a binary of the workspace (e.g. `mpathutil`), after checking
    /// that it was built.
    pub fn guest_binary(&self, name: &str) -> Result<String> {
        let dir = self
            .build_dir
            .as_deref()
            .ok_or_else(|| Error::Unavailable("cannot tell the build directory".into()))?;
        if !dir.join(name).is_file() {
            return Err(Error::Unavailable(format!(
                "{name} is not built in {} (cargo build --workspace)",
                dir.display()
            )));
        }
        Ok(format!("/mnt/host/{name}"))
    }
}

/// `target/<profile>`, from the running test binary (`target/<profile>/deps/<test>-<hash>`).
fn build_dir() -> Option<PathBuf> {
    let exe = env::current_exe().ok()?;
    let deps = exe.parent()?;
    if deps.file_name()? != "deps" {
        return None;
    }
    Some(deps.parent()?.to_path_buf())
}

/// What the host lacks to run the real stack, if anything; else the qemu binary.
fn check_host(cache: &Path) -> Result<PathBuf> {
    let unavailable = |why: String| Error::Unavailable(why);
    let qemu = match env::var_os("SM_RS_REALSTACK_QEMU") {
        Some(q) => PathBuf::from(q),
        None => find_program("qemu-system-x86_64")
            .ok_or_else(|| unavailable("qemu-system-x86_64 is not installed".into()))?,
    };
    let hash = image::image_hash()?;
    if cache.join("images").join(&hash).join("READY").exists() {
        return Ok(qemu); // nothing to build
    }
    if !rustix::process::geteuid().is_root() {
        return Err(unavailable(
            "building the guest image needs root (debootstrap, chroot)".into(),
        ));
    }
    for tool in [
        "debootstrap",
        "mkfs.ext4",
        "cpio",
        "gzip",
        "apt-get",
        "dpkg-deb",
        "chroot",
    ] {
        if find_program(tool).is_none() {
            return Err(unavailable(format!(
                "{tool} is not installed (needed to build the guest image)"
            )));
        }
    }
    if !Path::new("/bin/busybox").is_file() {
        return Err(unavailable(
            "busybox-static is not installed (needed for the guest's initrd)".into(),
        ));
    }
    Ok(qemu)
}

/// Looks a program up on `PATH` and in the sbin directories a non-login root shell may lack.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_words() {
        assert_eq!(Mode::parse("").expect("empty"), Mode::Auto);
        assert_eq!(Mode::parse("require").expect("require"), Mode::Require);
        assert_eq!(Mode::parse(" OFF ").expect("off"), Mode::Off);
        assert!(Mode::parse("sometimes").is_err());
    }

    #[test]
    fn finds_programs_outside_path_too() {
        assert!(find_program("sh").is_some());
        assert!(find_program("no-such-program-smrs").is_none());
    }
}
