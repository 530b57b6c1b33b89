//! A simulated host: a host root under a directory, kept as the kernel and udev would keep
//! it for a [`Fabric`], a [`MultipathdSim`] on a socket of its own with its wwids file in the
//! root, the programs a driver runs (`iscsiadm`, `udevadm`, `systemctl`, through the
//! stand-ins of [`relay`]) and a syslog socket at `dev/log`.
//!
//! The real driver runs against it unchanged: `SM_RS_ROOT` is the root,
//! `MULTIPATH_SOCKET_NAME` the daemon's socket, the stand-ins come first in `PATH`.
//!
//! Known differences from a real host, each harmless to what is tested: a write to a SCSI
//! host's `scan` is carried out at the next `udevadm settle` rather than during the write
//! (the driver settles after every scan); device nodes are plain files.

pub mod kernel;
pub mod portals;
pub mod relay;
pub mod render;
pub mod syslog;
pub mod udev;

use crate::fabric::Fabric;
use crate::multipathd_sim::{DaemonConfig, FindMultipaths, MultipathdSim, World};
use kernel::{Gate, Gates, Iscsi, Kernel, Request};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How to make a simulated host.
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// The directory that becomes the host root (created).
    pub root: PathBuf,
    /// The multipathd socket (`@name` abstract).
    pub socket: String,
    /// The daemon's configuration; `wwids_file` is set to the root's.
    pub daemon: DaemonConfig,
}

impl HostSpec {
    /// Our multipath.conf drop-in: `find_multipaths strict`, WWIDs in `etc/multipath/wwids`.
    pub fn new(root: impl Into<PathBuf>, socket: impl Into<String>) -> Self {
        Self {
            root: root.into(),
            socket: socket.into(),
            daemon: DaemonConfig {
                find_multipaths: FindMultipaths::Strict,
                ..DaemonConfig::default()
            },
        }
    }
}

/// A running simulated host; everything stops when dropped.
pub struct HostSim {
    root: PathBuf,
    mpd: Arc<MultipathdSim>,
    pub iscsi: Arc<Mutex<Iscsi>>,
    gates: Arc<Gates>,
    udev_held: Arc<AtomicBool>,
    syslog: syslog::Syslog,
    stop: Arc<AtomicBool>,
    server: Option<JoinHandle<()>>,
}

impl HostSim {
    pub fn start(fabric: Fabric, spec: HostSpec) -> std::io::Result<Self> {
        let root = spec.root.clone();
        std::fs::create_dir_all(&root)?;
        for dir in [
            "sys/block",
            "sys/class/scsi_host",
            "dev/mapper",
            "dev/disk/by-id",
            "etc/multipath",
            "run/lock",
            "var",
        ] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        // As on a dom0: stock sm writes `/var/run/sr-ref` and `/var/lock/sm`, we `/run/…`.
        for (link, to) in [("var/run", "../run"), ("var/lock", "../run/lock")] {
            if std::fs::symlink_metadata(root.join(link)).is_err() {
                std::os::unix::fs::symlink(to, root.join(link))?;
            }
        }
        // Every portal of the fabric answers TCP, unless a test made it silent.
        for (_, port) in fabric.iscsi_ports() {
            if let Some(portal) = &port.portal {
                portals::serve(portal);
            }
        }
        let mut daemon = spec.daemon.clone();
        daemon.wwids_file = Some(root.join("etc/multipath/wwids"));
        let mpd = Arc::new(MultipathdSim::start_at(&spec.socket, fabric, daemon)?);
        let udev_held = Arc::new(AtomicBool::new(false));
        let mut renderer = render::Renderer::new(&root, Arc::clone(&udev_held));
        mpd.observe(Box::new(move |fabric, daemon| {
            renderer.render(fabric, daemon)
        }));
        let syslog = syslog::Syslog::start(&root)?;
        let iscsi = Arc::new(Mutex::new(Iscsi::default()));
        let gates = Arc::new(Gates::default());
        let kernel = Arc::new(Kernel {
            root: root.clone(),
            mpd: Arc::clone(&mpd),
            iscsi: Arc::clone(&iscsi),
            gates: Arc::clone(&gates),
        });
        let socket = root.join(relay::SOCKET);
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket)?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let server = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("host-sim".into())
                .spawn(move || serve(listener, kernel, stop))?
        };
        Ok(Self {
            root,
            mpd,
            iscsi,
            gates,
            udev_held,
            syslog,
            stop,
            server: Some(server),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn multipathd(&self) -> &MultipathdSim {
        &self.mpd
    }

    /// What to put in `MULTIPATH_SOCKET_NAME`.
    pub fn socket_name(&self) -> &str {
        self.mpd.socket_name()
    }

    /// Changes the fabric (pull a controller, cut a port, add a LUN, …).
    pub fn fabric<R>(&self, change: impl FnOnce(&mut Fabric) -> R) -> R {
        self.mpd.fabric(change)
    }

    /// Changes the world (the fabric and the daemon).
    pub fn with<R>(&self, change: impl FnOnce(&mut World) -> R) -> R {
        self.mpd.with(change)
    }

    /// A VM's tapdisk opens (or closes) a map, so multipathd refuses to remove it.
    pub fn set_open(&self, wwid: &str, open: bool) -> bool {
        self.mpd.with(|w| w.daemon.set_open(wwid, open))
    }

    /// The daemon's maps, by name.
    pub fn maps(&self) -> Vec<String> {
        self.mpd.with(|w| w.daemon.map_names())
    }

    /// dom0 stacks a device-mapper device on the disks of a LUN, as LVM does on a stock SR's
    /// physical volume: `sys/block/dm-N/dm/{name,uuid}` and each path's `holders/dm-N`.
    /// Returns the holder's kernel name.
    pub fn hold(&self, wwid: &str, dm_name: &str, dm_uuid: &str) -> String {
        let paths: Vec<String> = self.fabric(|f| {
            f.paths_of(wwid)
                .into_iter()
                .map(|d| d.name.clone())
                .collect()
        });
        let block = self.root.join("sys/block");
        let n = (0..)
            .find(|n| !block.join(format!("dm-{n}")).exists())
            .unwrap_or(0);
        let holder = format!("dm-{n}");
        let dm = block.join(&holder).join("dm");
        let _ = std::fs::create_dir_all(&dm);
        let _ = std::fs::write(dm.join("name"), format!("{dm_name}\n"));
        let _ = std::fs::write(dm.join("uuid"), format!("{dm_uuid}\n"));
        let _ = std::fs::create_dir_all(block.join(&holder).join("holders"));
        for path in paths {
            let dir = block.join(&path).join("holders");
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::os::unix::fs::symlink(format!("../../{holder}"), dir.join(&holder));
        }
        holder
    }

    /// The reverse of [`Self::hold`]: the device-mapper device is removed.
    pub fn release(&self, holder: &str) {
        let block = self.root.join("sys/block");
        for entry in std::fs::read_dir(&block).into_iter().flatten().flatten() {
            let _ = std::fs::remove_file(entry.path().join("holders").join(holder));
        }
        let _ = std::fs::remove_dir_all(block.join(holder));
    }

    /// Holds udev: maps made meanwhile get no `dev/mapper` node until released.
    pub fn hold_udev(&self, held: bool) {
        self.udev_held.store(held, Ordering::SeqCst);
        if !held {
            self.mpd.with(|_| {});
        }
    }

    /// Holds the first run of `program` (`iscsiadm`, `udevadm`, `systemctl`) whose argv
    /// contains `args_contain` until the returned gate opens (or is dropped).
    pub fn gate(&self, program: &str, args_contain: &str) -> Gate {
        self.gates.add(program, args_contain)
    }

    /// An iSCSI target that demands CHAP.
    pub fn require_chap(&self, target_iqn: &str, user: &str, secret: &str) {
        if let Ok(mut iscsi) = self.iscsi.lock() {
            iscsi
                .chap
                .insert(target_iqn.into(), (user.into(), secret.into()));
        }
    }

    /// An iSCSI target that demands mutual CHAP: it proves itself with these credentials,
    /// and a login whose node does not expect exactly them fails.
    pub fn require_mutual_chap(&self, target_iqn: &str, user_in: &str, secret_in: &str) {
        if let Ok(mut iscsi) = self.iscsi.lock() {
            iscsi
                .mutual_chap
                .insert(target_iqn.into(), (user_in.into(), secret_in.into()));
        }
    }

    /// Stops (or starts) iscsid.
    pub fn set_iscsid_running(&self, running: bool) {
        if let Ok(mut iscsi) = self.iscsi.lock() {
            iscsi.iscsid_stopped = !running;
        }
    }

    /// The `systemctl` actions seen, e.g. `start iscsid.service`.
    pub fn systemctl_runs(&self) -> Vec<String> {
        self.iscsi
            .lock()
            .map(|i| i.systemctl.clone())
            .unwrap_or_default()
    }

    /// A node's settings in open-iscsi's database: (target, `address:port`).
    pub fn node_settings(&self, target_iqn: &str, portal: &str) -> BTreeMap<String, String> {
        self.iscsi
            .lock()
            .ok()
            .and_then(|i| i.nodes.get(&(target_iqn.into(), portal.into())).cloned())
            .unwrap_or_default()
    }

    /// The iSCSI sessions: (target, portal).
    pub fn iscsi_sessions(&self) -> Vec<(String, String)> {
        self.iscsi
            .lock()
            .map(|i| i.sessions.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every program the driver ran here, as `program args…`.
    pub fn programs_run(&self) -> Vec<String> {
        self.iscsi
            .lock()
            .map(|i| {
                i.runs
                    .iter()
                    .map(|(p, a)| format!("{p} {}", a.join(" ")))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every syslog datagram received.
    pub fn syslog_lines(&self) -> Vec<String> {
        self.syslog.lines()
    }

    /// The WWIDs listed in the wwids file.
    pub fn wwids(&self) -> Vec<String> {
        std::fs::read_to_string(self.root.join("etc/multipath/wwids"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix('/').and_then(|l| l.strip_suffix('/')))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for HostSim {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

fn serve(listener: UnixListener, kernel: Arc<Kernel>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let kernel = Arc::clone(&kernel);
                let _ = std::thread::Builder::new()
                    .name("host-sim-program".into())
                    .spawn(move || {
                        let _ = stream.set_nonblocking(false);
                        let mut reader = BufReader::new(&stream);
                        let mut line = String::new();
                        if reader.read_line(&mut line).is_err() {
                            return;
                        }
                        let reply = match serde_json::from_str::<Request>(&line) {
                            Ok(request) => kernel.run(&request),
                            Err(e) => kernel::Reply {
                                status: 2,
                                stdout: String::new(),
                                stderr: format!("bad request: {e}\n"),
                            },
                        };
                        let mut text = serde_json::to_string(&reply).unwrap_or_default();
                        text.push('\n');
                        let _ = (&stream).write_all(text.as_bytes());
                    });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
