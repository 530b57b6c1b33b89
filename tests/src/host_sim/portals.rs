//! iSCSI portals as TCP sees them, so the driver's real reachability check and the
//! `iscsiadm` stand-in meet real sockets: a portal that answers is a listener that accepts
//! (and drops) every connection; a portal that never answers is a listener whose accept
//! queue is full, so the kernel drops every further SYN and a connect waits until its own
//! timeout, as it does for a portal on a subnet the host cannot reach.
//!
//! Listeners live as long as the test process. A fixed portal (the scenarios' constants) is
//! bound with `SO_REUSEPORT`, so test processes running side by side each serve it.

use rustix::net::{self, AddressFamily, SocketType};
use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::sync::Mutex;
use std::time::Duration;

static SERVED: Mutex<BTreeSet<SocketAddr>> = Mutex::new(BTreeSet::new());
static DEAD: Mutex<BTreeSet<SocketAddr>> = Mutex::new(BTreeSet::new());
/// The silent listeners and the connections that fill their queues, kept open.
static KEPT: Mutex<Vec<OwnedFd>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A portal text (`a.b.c.d:port`, `[v6]:port`, a name) as socket addresses.
pub fn addresses(portal: &str) -> Vec<SocketAddr> {
    let portal = portal.split(',').next().unwrap_or(portal);
    let with_port = if portal.starts_with('[') || portal.matches(':').count() == 1 {
        portal.to_string()
    } else {
        format!("{portal}:3260")
    };
    with_port
        .to_socket_addrs()
        .map(Iterator::collect)
        .unwrap_or_default()
}

fn listener(at: SocketAddr, reuse_port: bool, backlog: i32) -> io::Result<OwnedFd> {
    let family = if at.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = net::socket(family, SocketType::STREAM, None)?;
    if reuse_port {
        net::sockopt::set_socket_reuseport(&fd, true)?;
    }
    net::bind(&fd, &at)?;
    net::listen(&fd, backlog)?;
    Ok(fd)
}

fn accept_forever(listener: TcpListener) {
    let _ = std::thread::Builder::new()
        .name("portal".into())
        .spawn(move || {
            for stream in listener.incoming() {
                drop(stream);
            }
        });
}

/// Serves a portal that answers at `portal`'s address, once per process; an address
/// that is not this machine's (or a portal made [`unreachable`]) stays as it is.
pub fn serve(portal: &str) {
    for at in addresses(portal) {
        if lock(&DEAD).contains(&at) || !lock(&SERVED).insert(at) {
            continue;
        }
        match listener(at, true, 128) {
            Ok(fd) => accept_forever(TcpListener::from(fd)),
            Err(e) => tracing::debug!("portal {at} is not served here: {e}"),
        }
    }
}

/// A new portal that answers, on `ip` and a free port.
pub fn new_live(ip: IpAddr) -> io::Result<SocketAddr> {
    let fd = listener(SocketAddr::new(ip, 0), false, 128)?;
    let listener = TcpListener::from(fd);
    let at = listener.local_addr()?;
    lock(&SERVED).insert(at);
    accept_forever(listener);
    Ok(at)
}

/// A new portal that never answers, on `ip` and a free port: its accept queue is filled
/// and never drained.
pub fn new_unreachable(ip: IpAddr) -> io::Result<SocketAddr> {
    let fd = listener(SocketAddr::new(ip, 0), false, 0)?;
    let at = TcpListener::from(fd.try_clone()?).local_addr()?;
    let mut kept = vec![fd];
    // Fill the queue: connect until the kernel stops completing handshakes.
    let mut silent = false;
    for _ in 0..16 {
        match TcpStream::connect_timeout(&at, Duration::from_millis(300)) {
            Ok(stream) => kept.push(OwnedFd::from(stream)),
            Err(_) => {
                silent = true;
                break;
            }
        }
    }
    if !silent {
        return Err(io::Error::other(format!(
            "{at}: the kernel keeps accepting; cannot make a silent portal"
        )));
    }
    lock(&DEAD).insert(at);
    lock(&KEPT).extend(kept);
    Ok(at)
}
