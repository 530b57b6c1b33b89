//! One test VM: qemu (software emulation) booting the guest image straight from its kernel,
//! with the command agent, a QMP monitor, an optional read-only 9p share of the host's build
//! output, and the hardware of one [`Topology`].

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::agent::{Agent, Output};
use super::daemon::Daemon;
use super::error::{Error, Result};
use super::image::{self, Image};
use super::process;
use super::qmp::Qmp;
use super::topology::{LUN_BYTES, Topology};

/// What to boot.
#[derive(Debug, Clone)]
pub struct VmSpec {
    pub topology: Topology,
    /// The multipathd the guest starts at boot.
    pub daemon: Daemon,
    /// Host directory exported read-only at `/mnt/host` in the guest.
    pub share: Option<PathBuf>,
    /// vCPUs: never more than the machine's 2 cores.
    pub cpus: u32,
    pub mem_mib: u32,
    /// qemu accelerator: `tcg` unless told otherwise (KVM is broken on the CI machines:
    /// `reference/realstack.md`).
    pub accel: String,
}

impl VmSpec {
    pub fn new(topology: Topology) -> VmSpec {
        VmSpec {
            topology,
            daemon: Daemon::default(),
            share: None,
            cpus: 2,
            mem_mib: 1024,
            accel: "tcg".into(),
        }
    }
}

/// Boot (qemu start to agent answering) takes about 10 s on an idle 2-core machine; other
/// builds running at the same time can make it several times slower.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// Time for qemu to create its sockets.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(30);
/// Building the in-guest iSCSI targets and logging in.
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Default limit for one guest command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The qemu process. It is spawned from a keeper thread that lives exactly as long as this
/// value, because `PR_SET_PDEATHSIG` fires when the forking *thread* ends (see `process`).
struct QemuProcess {
    child: Child,
    keeper: Option<mpsc::Sender<()>>,
    keeper_thread: Option<JoinHandle<()>>,
}

impl QemuProcess {
    fn spawn(mut command: Command) -> Result<QemuProcess> {
        let (child_tx, child_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let keeper_thread = thread::Builder::new()
            .name("qemu-keeper".into())
            .spawn(move || {
                let spawned = process::spawn_tied(&mut command);
                let alive = spawned.is_ok();
                let _ = child_tx.send(spawned);
                if alive {
                    // returns when the QemuProcess drops its sender
                    let _ = stop_rx.recv();
                }
            })
            .map_err(|e| Error::io("starting the qemu keeper thread", e))?;
        let child = child_rx
            .recv()
            .map_err(|_| Error::Protocol("the qemu keeper thread died".into()))?
            .map_err(|e| Error::io("starting qemu-system-x86_64", e))?;
        Ok(QemuProcess {
            child,
            keeper: Some(stop_tx),
            keeper_thread: Some(keeper_thread),
        })
    }

    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("unknown ({e})")),
        }
    }
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        process::kill_and_reap(&mut self.child);
        drop(self.keeper.take());
        if let Some(thread) = self.keeper_thread.take() {
            let _ = thread.join();
        }
    }
}

pub struct Vm {
    pub topology: Topology,
    pub daemon: Daemon,
    /// From qemu start until the guest agent answered.
    pub boot_time: Duration,
    /// The topology's target side being built and its map appearing (B and C).
    pub setup_time: Duration,
    agent: Agent,
    qmp: Qmp,
    // Dropped in this order: qemu is dead before its run directory goes away.
    qemu: QemuProcess,
    run_dir: tempfile::TempDir,
}

impl Vm {
    /// Boots a VM and waits until the guest agent answers. The topology's fabric is in place
    /// but the multipath map may still be forming: see `multipathd::wait_for_map`.
    pub fn start(image: &Image, qemu_binary: &Path, spec: &VmSpec) -> Result<Vm> {
        let run_dir = tempfile::Builder::new()
            .prefix("smrs-vm-")
            .tempdir()
            .map_err(|e| Error::io("creating the VM's run directory", e))?;
        let run = run_dir.path();
        let lun_file = run.join("lun1.img");
        if spec.topology.needs_lun_file() {
            File::create(&lun_file)
                .and_then(|f| f.set_len(LUN_BYTES))
                .map_err(|e| Error::io(format!("creating {}", lun_file.display()), e))?;
        }
        let log = run.join("qemu.log");
        let log_file = File::create(&log).map_err(|e| Error::io("creating qemu.log", e))?;
        let log_err = log_file
            .try_clone()
            .map_err(|e| Error::io("duplicating qemu.log", e))?;
        let mut command = Command::new(qemu_binary);
        command
            .args(qemu_args(image, spec, run, &lun_file))
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);

        let started = Instant::now();
        let mut qemu = QemuProcess::spawn(command)?;
        let connected = (|| {
            let deadline = Instant::now() + SOCKET_TIMEOUT;
            let qmp = Qmp::connect(&run.join("qmp.sock"), deadline)?;
            let mut agent = Agent::connect(&run.join("agent.sock"), deadline)?;
            agent.wait_ready(BOOT_TIMEOUT)?;
            Ok((qmp, agent))
        })();
        let (qmp, agent) = match connected {
            Ok(pair) => pair,
            Err(e) => return Err(explain_boot_failure(e, &mut qemu, run)),
        };
        let mut vm = Vm {
            topology: spec.topology,
            daemon: spec.daemon,
            boot_time: started.elapsed(),
            setup_time: Duration::ZERO,
            agent,
            qmp,
            qemu,
            run_dir,
        };
        if let Some(setup) = spec.topology.guest_setup() {
            let setup_started = Instant::now();
            vm.run_timeout(setup, SETUP_TIMEOUT)?.success()?;
            vm.setup_time = setup_started.elapsed();
        }
        Ok(vm)
    }

    /// Runs a shell command (bash) in the guest with the default timeout.
    pub fn run(&mut self, cmd: &str) -> Result<Output> {
        self.run_timeout(cmd, COMMAND_TIMEOUT)
    }

    pub fn run_timeout(&mut self, cmd: &str, timeout: Duration) -> Result<Output> {
        let result = self.agent.run(cmd, timeout, "");
        self.check_alive(result)
    }

    pub fn run_with_stdin(&mut self, cmd: &str, stdin: &str) -> Result<Output> {
        let result = self.agent.run(cmd, COMMAND_TIMEOUT, stdin);
        self.check_alive(result)
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn sh(&mut self, cmd: &str) -> Result<String> {
        Ok(self.run(cmd)?.success()?.stdout)
    }

    /// What the guest's syslog received so far (multipathd 0.4.9 logs only there; so does
    /// the driver when not told to log to stderr): `<uptime> <facility>.<severity> <text>`.
    pub fn syslog(&mut self) -> Result<String> {
        self.sh("cat /run/smrs-syslog.log 2>/dev/null; true")
    }

    /// Makes a map for every LUN the way stock XenServer does on the dom0's daemon: each
    /// path's WWID listed in /etc/multipath/wwids, then the path added (`multipathd add
    /// path`; XenServer's should_multipath patch builds the map of a listed WWID). Nothing
    /// on 0.9.4, which the guest's conf has make every map at boot.
    pub fn make_maps_stock_way(&mut self) -> Result<()> {
        if self.daemon.maps_at_boot() {
            return Ok(());
        }
        self.sh(
            "multipathd show paths raw format '%d %w' | while read -r dev wwid; do \
                 case \"$wwid\" in ''|'[undef]') continue ;; esac; \
                 grep -qxF \"/$wwid/\" /etc/multipath/wwids 2>/dev/null || echo \"/$wwid/\" >> /etc/multipath/wwids; \
                 multipathd add path \"$dev\" >/dev/null || exit 1; \
             done",
        )
        .map(drop)
    }

    /// The qemu monitor, for hardware faults.
    pub fn qmp(&mut self) -> &mut Qmp {
        &mut self.qmp
    }

    pub fn pid(&self) -> u32 {
        self.qemu.child.id()
    }

    pub fn run_dir(&self) -> &Path {
        self.run_dir.path()
    }

    /// The guest's serial console (kernel messages, init's progress), last `lines` lines.
    pub fn console_tail(&self, lines: usize) -> String {
        image::tail(&self.run_dir.path().join("console.log"), lines)
    }

    /// Shuts the VM down through QMP `quit`, killing qemu if it does not exit in time.
    /// Returns how long the shutdown took.
    pub fn stop(mut self) -> Result<Duration> {
        let started = Instant::now();
        // qemu may close the monitor before it answers `quit`: that is success too
        let _ = self.qmp.execute("quit", None);
        while self.qemu.exited().is_none() {
            if started.elapsed() > Duration::from_secs(10) {
                break; // Drop kills it
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(started.elapsed())
    }

    /// A dead qemu explains a failed guest command better than the command's own error.
    fn check_alive<T>(&mut self, result: Result<T>) -> Result<T> {
        match result {
            Err(e) => match self.qemu.exited() {
                Some(status) => Err(Error::QemuDied {
                    status,
                    stderr: image::tail(&self.run_dir.path().join("qemu.log"), 20),
                }),
                None => Err(e),
            },
            ok => ok,
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "realstack: panicking with VM pid {} ({:?}, multipathd {}) up; killing it. Guest console, last lines:\n{}",
                self.pid(),
                self.topology,
                self.daemon,
                self.console_tail(40)
            );
        }
        // the fields drop next: QemuProcess kills qemu, then the run directory is removed
    }
}

fn explain_boot_failure(error: Error, qemu: &mut QemuProcess, run: &Path) -> Error {
    let console = image::tail(&run.join("console.log"), 30);
    match qemu.exited() {
        Some(status) => Error::QemuDied {
            status,
            stderr: format!(
                "{}\nconsole:\n{console}",
                image::tail(&run.join("qemu.log"), 20)
            ),
        },
        None => Error::Protocol(format!("VM did not come up: {error}\nconsole:\n{console}")),
    }
}

fn qemu_args(image: &Image, spec: &VmSpec, run: &Path, lun_file: &Path) -> Vec<String> {
    let cpu = if spec.accel == "tcg" { "max" } else { "host" };
    let mut args: Vec<String> = vec![
        "-name".into(),
        "sm-rs-realstack".into(),
        "-machine".into(),
        format!("q35,accel={}", spec.accel),
        "-cpu".into(),
        cpu.into(),
        "-smp".into(),
        spec.cpus.min(2).to_string(),
        "-m".into(),
        spec.mem_mib.to_string(),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-display".into(),
        "none".into(),
        "-no-reboot".into(),
        "-kernel".into(),
        image.kernel().display().to_string(),
        "-initrd".into(),
        image.initrd().display().to_string(),
        "-append".into(),
        format!(
            "console=ttyS0 root=/dev/vda rw quiet loglevel=4 panic=-1 init=/sbin/smrs-init \
             smrs.daemon={}",
            spec.daemon.name()
        ),
        // snapshot=on: writes go to a throw-away overlay, every boot starts from the image
        "-drive".into(),
        format!(
            "if=none,id=root,format=raw,snapshot=on,file={}",
            image.rootfs().display()
        ),
        "-device".into(),
        "virtio-blk-pci,drive=root".into(),
        "-chardev".into(),
        format!("file,id=console,path={}", run.join("console.log").display()),
        "-serial".into(),
        "chardev:console".into(),
        "-chardev".into(),
        format!(
            "socket,id=qmp,path={},server=on,wait=off",
            run.join("qmp.sock").display()
        ),
        "-mon".into(),
        "chardev=qmp,mode=control".into(),
        "-device".into(),
        "virtio-serial-pci,id=vser".into(),
        "-chardev".into(),
        format!(
            "socket,id=agent,path={},server=on,wait=off",
            run.join("agent.sock").display()
        ),
        "-device".into(),
        "virtserialport,bus=vser.0,chardev=agent,name=smrs.agent".into(),
    ];
    if let Some(share) = &spec.share {
        args.push("-virtfs".into());
        args.push(format!(
            "local,path={},mount_tag=hostbuild,security_model=none,readonly=on,id=hostbuild",
            share.display()
        ));
    }
    args.extend(spec.topology.qemu_args(lun_file));
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_never_asks_for_more_than_two_cpus() {
        let image = Image {
            dir: PathBuf::from("/img"),
        };
        let mut spec = VmSpec::new(Topology::ScsiTwoHbas);
        spec.cpus = 8;
        let args = qemu_args(&image, &spec, Path::new("/run"), Path::new("/run/lun1.img"));
        let smp = args.iter().position(|a| a == "-smp").expect("-smp");
        assert_eq!(args[smp + 1], "2");
        assert!(args.iter().any(|a| a.contains("snapshot=on")));
        assert!(args.iter().any(|a| a.starts_with("scsi-hd,id=path2")));
    }
}
