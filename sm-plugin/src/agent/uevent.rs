//! Kernel uevents: what wakes the agent when a path changes.
//!
//! The kernel multicasts every uevent on `NETLINK_KOBJECT_UEVENT` group 1 as one datagram:
//! `ACTION@DEVPATH\0KEY=VALUE\0…`. dm-multipath adds `DM_ACTION=PATH_FAILED` or
//! `PATH_REINSTATED`, `DM_PATH` (the path's `major:minor`), `DM_SEQNUM`,
//! `DM_NR_VALID_PATHS`, `DM_NAME` and `DM_UUID` to a `change` of the map's `dm-N`
//! (`drivers/md/dm-uevent.c`). The agent only needs to know that something worth a look
//! happened: the events say "look now", every pass re-reads the state.
//!
//! Where the datagrams come from is a [`Source`]: the kernel's netlink socket in production,
//! or a unix datagram socket fed in the same format (`--uevents unix:PATH`) by whoever
//! relays them: a test, or a udev rule on a host where the agent may not open netlink.

use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{AddressFamily, SocketFlags, SocketType};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use tokio::net::UnixDatagram;

/// The kernel's multicast group of uevents (udev's rebroadcast is group 2, with a header).
const KERNEL_GROUP: u32 = 1;
/// The kernel's uevent buffer is 2 KiB; leave room.
pub const MAX_UEVENT: usize = 8192;

/// One uevent, as the kernel sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uevent {
    pub action: String,
    pub devpath: String,
    pub vars: BTreeMap<String, String>,
}

impl Uevent {
    /// Parses one datagram; `None` for what is not a kernel uevent (udev's `libudev`
    /// rebroadcast, a truncated or foreign datagram).
    pub fn parse(datagram: &[u8]) -> Option<Self> {
        let mut parts = datagram.split(|b| *b == 0).filter(|p| !p.is_empty());
        let header = std::str::from_utf8(parts.next()?).ok()?;
        let (action, devpath) = header.split_once('@')?;
        let mut vars = BTreeMap::new();
        for part in parts {
            let Ok(text) = std::str::from_utf8(part) else {
                continue;
            };
            if let Some((k, v)) = text.split_once('=') {
                vars.insert(k.to_string(), v.to_string());
            }
        }
        if vars.get("ACTION").is_some_and(|a| a != action) {
            return None;
        }
        Some(Self {
            action: action.to_string(),
            devpath: devpath.to_string(),
            vars,
        })
    }

    /// The datagram the kernel would send for this event.
    pub fn to_datagram(&self) -> Vec<u8> {
        let mut out = format!("{}@{}", self.action, self.devpath).into_bytes();
        out.push(0);
        for (k, v) in &self.vars {
            out.extend_from_slice(k.as_bytes());
            out.push(b'=');
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
        out
    }

    pub fn var(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// The kernel name (`sdb`, `dm-3`): `DEVNAME`, else the last part of the devpath.
    pub fn kernel_name(&self) -> &str {
        self.var("DEVNAME")
            .map(|n| n.rsplit('/').next().unwrap_or(n))
            .unwrap_or_else(|| self.devpath.rsplit('/').next().unwrap_or(""))
    }

    /// What this event says about multipath, if anything: a SCSI disk appearing or going, a
    /// dm device appearing, going or changing (a path failed or reinstated, a table reload
    /// that added or dropped a path). Partitions and every other subsystem are noise.
    pub fn kind(&self) -> Option<EventKind> {
        if self.var("SUBSYSTEM") != Some("block") || self.var("DEVTYPE") == Some("partition") {
            return None;
        }
        let name = self.kernel_name();
        if name.starts_with("sd") {
            return match self.action.as_str() {
                "add" | "remove" => Some(EventKind::Disk),
                _ => None,
            };
        }
        if name.starts_with("dm-") {
            return match (self.action.as_str(), self.var("DM_ACTION")) {
                ("change", Some("PATH_FAILED")) => Some(EventKind::PathFailed),
                ("change", Some("PATH_REINSTATED")) => Some(EventKind::PathReinstated),
                ("add" | "remove" | "change", _) => Some(EventKind::Map),
                _ => None,
            };
        }
        None
    }
}

/// Why an event is worth a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// An `sd*` disk added or removed.
    Disk,
    /// A dm device added, removed or reloaded.
    Map,
    PathFailed,
    PathReinstated,
}

/// Where uevents come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// The kernel (`NETLINK_KOBJECT_UEVENT`, group 1).
    Netlink,
    /// A unix datagram socket the agent binds, fed datagrams in the kernel's format.
    Relay(PathBuf),
    /// None: kicks and the periodic reconcile only.
    Off,
}

impl SourceSpec {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "netlink" => Ok(Self::Netlink),
            "off" => Ok(Self::Off),
            _ => text
                .strip_prefix("unix:")
                .filter(|p| !p.is_empty())
                .map(|p| Self::Relay(PathBuf::from(p)))
                .ok_or_else(|| format!("--uevents {text:?}: say netlink, unix:PATH or off")),
        }
    }
}

/// An open source of uevent datagrams. Both are datagram sockets read with `recv(2)`; the
/// netlink one rides on tokio's datagram type, which never looks at the address family,
/// so the agent needs no unsafe registration of its own.
pub struct Source {
    socket: UnixDatagram,
    /// The relay's path, removed when the source closes.
    bound: Option<PathBuf>,
}

impl Source {
    pub fn open(spec: &SourceSpec) -> io::Result<Option<Self>> {
        match spec {
            SourceSpec::Off => Ok(None),
            SourceSpec::Netlink => {
                let fd = rustix::net::socket_with(
                    AddressFamily::NETLINK,
                    SocketType::DGRAM,
                    SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
                    Some(netlink::KOBJECT_UEVENT),
                )?;
                // A burst of path events (hundreds of LUNs) must not overflow the queue; we
                // only need to know that something happened, but a full queue loses that too.
                let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&fd, 4 << 20);
                rustix::net::bind(&fd, &SocketAddrNetlink::new(0, KERNEL_GROUP))?;
                let socket = UnixDatagram::from_std(std::os::unix::net::UnixDatagram::from(fd))?;
                Ok(Some(Self {
                    socket,
                    bound: None,
                }))
            }
            SourceSpec::Relay(path) => {
                let _ = std::fs::remove_file(path);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let socket = UnixDatagram::bind(path)?;
                Ok(Some(Self {
                    socket,
                    bound: Some(path.clone()),
                }))
            }
        }
    }

    /// The next datagram.
    pub async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.recv(buf).await
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        if let Some(path) = &self.bound {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A relay socket's usual place under a host root.
pub fn relay_path(run_dir: &Path) -> PathBuf {
    run_dir.join("uevents.sock")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(text: &str) -> Vec<u8> {
        text.replace('|', "\0").into_bytes()
    }

    #[test]
    fn dm_path_events_are_read_as_the_kernel_sends_them() {
        let datagram = event(
            "change@/devices/virtual/block/dm-3|ACTION=change|DEVPATH=/devices/virtual/block/dm-3|\
             SUBSYSTEM=block|DM_TARGET=multipath|DM_ACTION=PATH_FAILED|DM_SEQNUM=2|DM_PATH=8:16|\
             DM_NR_VALID_PATHS=1|DM_NAME=3600a0b80|DM_UUID=mpath-3600a0b80|MAJOR=253|MINOR=3|\
             DEVNAME=dm-3|DEVTYPE=disk|SEQNUM=4242|",
        );
        let e = Uevent::parse(&datagram).unwrap();
        assert_eq!(e.kind(), Some(EventKind::PathFailed));
        assert_eq!(e.var("DM_PATH"), Some("8:16"));
        assert_eq!(Uevent::parse(&e.to_datagram()), Some(e));
    }

    #[test]
    fn only_block_disks_and_maps_count() {
        let add_sd = event(
            "add@/devices/platform/host7/target7:0:0/7:0:0:4/block/sdab|ACTION=add|\
             SUBSYSTEM=block|DEVNAME=sdab|DEVTYPE=disk|SEQNUM=1|",
        );
        assert_eq!(
            Uevent::parse(&add_sd).unwrap().kind(),
            Some(EventKind::Disk)
        );
        let partition =
            event("add@/x/sdab/sdab1|ACTION=add|SUBSYSTEM=block|DEVNAME=sdab1|DEVTYPE=partition|");
        assert_eq!(Uevent::parse(&partition).unwrap().kind(), None);
        let usb = event("add@/devices/usb1|ACTION=add|SUBSYSTEM=usb|");
        assert_eq!(Uevent::parse(&usb).unwrap().kind(), None);
        let reload = event(
            "change@/devices/virtual/block/dm-0|ACTION=change|SUBSYSTEM=block|DEVNAME=dm-0|DEVTYPE=disk|",
        );
        assert_eq!(Uevent::parse(&reload).unwrap().kind(), Some(EventKind::Map));
        // udev's rebroadcast starts with its own header, not ACTION@DEVPATH.
        assert_eq!(Uevent::parse(b"libudev\0\xfe\xed\xca\xfe"), None);
        assert_eq!(Uevent::parse(b""), None);
    }

    #[test]
    fn sources_are_named() {
        assert_eq!(SourceSpec::parse("netlink"), Ok(SourceSpec::Netlink));
        assert_eq!(
            SourceSpec::parse("unix:/run/x"),
            Ok(SourceSpec::Relay("/run/x".into()))
        );
        assert!(SourceSpec::parse("unix:").is_err());
    }
}
