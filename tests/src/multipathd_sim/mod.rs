//! A multipathd simulator: serves multipathd's real control-socket protocol from a
//! simulated fabric, so the real `mpathutil` and driver code can be pointed at it through
//! `MULTIPATH_SOCKET_NAME`.
//!
//! Frames, command language, replies and printers are multipath-tools 0.9's (0.9.4 or
//! 0.9.8+ reply conventions) or the dom0's 0.4.9-136.xs8 (its own command table, replies and
//! printers), see [`ReplyStyle`]; the daemon's state follows the fabric
//! (see [`daemon`]). Faults can be injected: `timeout` answers, stalled replies, raw bytes.

mod cli;
pub mod daemon;
pub mod print;

pub use daemon::{
    Daemon, DaemonConfig, FindMultipaths, MISSING_MAP_DELAY_0_4_9, PeerPolicy, ReplyStyle,
    stock_sm_default_policy,
};

use crate::fabric::Fabric;
use std::io::{self, Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// multipathd's request buffer.
const MAX_CMD_LEN: usize = 512;

/// Told of the world after every change: how a simulated host renders the fabric and the
/// maps into its files (`/sys`, `/dev/mapper`), as the kernel and udev would.
pub type Observer = Box<dyn FnMut(&Fabric, &Daemon) + Send>;

/// The fabric and the daemon's view of it.
pub struct World {
    pub fabric: Fabric,
    pub daemon: Daemon,
    observer: Option<Observer>,
}

impl World {
    fn notify(&mut self) {
        if let Some(observer) = self.observer.as_mut() {
            observer(&self.fabric, &self.daemon);
        }
    }
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("fabric", &self.fabric)
            .field("daemon", &self.daemon)
            .finish_non_exhaustive()
    }
}

/// Misbehaviour to inject, each for the next N requests.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Locked commands answer `timeout`, as while a reconfigure holds the lock (0.9 only:
    /// 0.4.9's lock blocks, and it has no such reply; there this fault is not applied).
    pub timeouts: u32,
    /// The reply is sent only after this long.
    pub stall: Option<(u32, Duration)>,
    /// These bytes are sent instead of a reply frame.
    pub raw: Option<(u32, Vec<u8>)>,
    /// Every command that starts with this text is carried out, but its reply is sent only
    /// after this long (to catch a client between "done" and "told").
    pub stall_command: Option<(String, Duration)>,
}

struct Shared {
    socket: String,
    world: Mutex<World>,
    faults: Mutex<Faults>,
    log: Mutex<Vec<String>>,
    stop: AtomicBool,
    connections: AtomicU32,
}

/// A running simulator; it stops when dropped.
pub struct MultipathdSim {
    shared: Arc<Shared>,
    socket: String,
    accept: Option<JoinHandle<()>>,
}

impl MultipathdSim {
    /// Starts on a fresh abstract socket.
    pub fn start(fabric: Fabric, config: DaemonConfig) -> io::Result<Self> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "@sm-rs-multipathd-sim-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        Self::start_at(&name, fabric, config)
    }

    /// Starts on `socket`: `@name` is abstract, anything else a path.
    pub fn start_at(socket: &str, fabric: Fabric, config: DaemonConfig) -> io::Result<Self> {
        let listener = match socket.strip_prefix('@') {
            Some(name) => UnixListener::bind_addr(&SocketAddr::from_abstract_name(name)?)?,
            None => UnixListener::bind(socket)?,
        };
        let mut daemon = Daemon::new(config);
        daemon.sync(&fabric);
        let shared = Arc::new(Shared {
            socket: socket.to_string(),
            world: Mutex::new(World {
                fabric,
                daemon,
                observer: None,
            }),
            faults: Mutex::new(Faults::default()),
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            connections: AtomicU32::new(0),
        });
        let accept = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("multipathd-sim".into())
                .spawn(move || accept_loop(listener, shared))?
        };
        Ok(Self {
            shared,
            socket: socket.to_string(),
            accept: Some(accept),
        })
    }

    /// What to put in `MULTIPATH_SOCKET_NAME`.
    pub fn socket_name(&self) -> &str {
        &self.socket
    }

    /// Changes the world (the fabric, the daemon); the daemon catches up afterwards, as it
    /// would on the uevents.
    pub fn with<R>(&self, change: impl FnOnce(&mut World) -> R) -> R {
        let mut world = lock(&self.shared.world);
        let result = change(&mut world);
        let World { fabric, daemon, .. } = &mut *world;
        daemon.sync(fabric);
        world.notify();
        result
    }

    /// Sets the observer told of the world after every change (and once now).
    pub fn observe(&self, observer: Observer) {
        let mut world = lock(&self.shared.world);
        world.observer = Some(observer);
        world.notify();
    }

    /// Changes the fabric (pull a controller, cut a port, …).
    pub fn fabric<R>(&self, change: impl FnOnce(&mut Fabric) -> R) -> R {
        self.with(|world| change(&mut world.fabric))
    }

    /// Injects misbehaviour for the next requests.
    pub fn inject(&self, faults: Faults) {
        *lock(&self.shared.faults) = faults;
    }

    /// Every command received, in order.
    pub fn commands(&self) -> Vec<String> {
        lock(&self.shared.log).clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u32 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Whether the daemon is still serving (a `shutdown` command stops it).
    pub fn running(&self) -> bool {
        !self.shared.stop.load(Ordering::Relaxed)
    }
}

impl Drop for MultipathdSim {
    fn drop(&mut self) {
        stop(&self.shared);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in a test thread must not take the simulator down with it.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Stops serving: the accept loop is woken to see the flag and closes the socket.
fn stop(shared: &Shared) {
    if !shared.stop.swap(true, Ordering::Relaxed) {
        let _ = connect(&shared.socket);
    }
}

fn connect(socket: &str) -> io::Result<UnixStream> {
    match socket.strip_prefix('@') {
        Some(name) => UnixStream::connect_addr(&SocketAddr::from_abstract_name(name)?),
        None => UnixStream::connect(socket),
    }
}

fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let Ok(stream) = stream else { continue };
        shared.connections.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::clone(&shared);
        let _ = thread::Builder::new()
            .name("multipathd-sim-client".into())
            .spawn(move || serve(stream, &shared));
    }
}

/// multipathd reads the peer's credentials once, at accept.
fn peer_is_root(stream: &UnixStream, shared: &Shared) -> bool {
    let policy = lock(&shared.world).daemon.config.peers;
    match policy {
        PeerPolicy::AllUnprivileged => false,
        PeerPolicy::Credentials => {
            // The simulator's own user stands for root, as the daemon's user: the suite runs
            // unprivileged on a developer's machine, and its driver is root's peer there.
            rustix::net::sockopt::socket_peercred(stream)
                .is_ok_and(|cred| cred.uid.is_root() || cred.uid == rustix::process::geteuid())
        }
    }
}

fn serve(mut stream: UnixStream, shared: &Shared) {
    let root = peer_is_root(&stream, shared);
    // Poll the stop flag while idle.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(250)));
    loop {
        let mut header = [0u8; size_of::<usize>()];
        match read_full(&mut stream, &mut header, shared) {
            Ok(true) => {}
            _ => return,
        }
        let len = usize::from_ne_bytes(header);
        if len == 0 && lock(&shared.world).daemon.config.style.is_0_4_9() {
            // 0.4.9 logs a null request and keeps the client, answering nothing.
            continue;
        }
        if len == 0 || len > MAX_CMD_LEN {
            // multipathd drops such a client without a word.
            return;
        }
        let mut body = vec![0u8; len];
        if !matches!(read_full(&mut stream, &mut body, shared), Ok(true)) {
            return;
        }
        let end = body.iter().position(|b| *b == 0).unwrap_or(body.len());
        let cmd = String::from_utf8_lossy(&body[..end]).into_owned();
        lock(&shared.log).push(cmd.clone());

        let (raw, stall, reply) = {
            let mut faults = lock(&shared.faults);
            let raw = take_one(&mut faults.raw);
            let stall = take_one(&mut faults.stall).or_else(|| {
                faults
                    .stall_command
                    .as_ref()
                    .filter(|(prefix, _)| cmd.starts_with(prefix.as_str()))
                    .map(|(_, delay)| *delay)
            });
            let mut busy = faults.timeouts;
            let reply = {
                let mut world = lock(&shared.world);
                let reply = cli::answer(&mut world, &cmd, root, &mut busy);
                world.notify();
                reply
            };
            faults.timeouts = busy;
            (raw, stall, reply)
        };
        if let Some(delay) = stall {
            thread::sleep(delay);
        }
        let frame = match raw {
            Some(bytes) => bytes,
            None => {
                let mut frame = Vec::with_capacity(size_of::<usize>() + reply.text.len() + 1);
                frame.extend_from_slice(&(reply.text.len() + 1).to_ne_bytes());
                frame.extend_from_slice(reply.text.as_bytes());
                frame.push(0);
                frame
            }
        };
        if stream.write_all(&frame).is_err() {
            return;
        }
        if reply.shutdown {
            stop(shared);
            return;
        }
    }
}

/// Takes one use of a counted fault.
fn take_one<T: Clone>(slot: &mut Option<(u32, T)>) -> Option<T> {
    let (left, value) = slot.as_mut()?;
    let value = value.clone();
    *left -= 1;
    if *left == 0 {
        *slot = None;
    }
    Some(value)
}

/// Reads exactly `buf`; `Ok(false)` when the client went away or the simulator stops.
fn read_full(stream: &mut UnixStream, buf: &mut [u8], shared: &Shared) -> io::Result<bool> {
    let mut at = 0;
    while at < buf.len() {
        match stream.read(&mut buf[at..]) {
            Ok(0) => return Ok(false),
            Ok(n) => at += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if shared.stop.load(Ordering::Relaxed) {
                    return Ok(false);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
