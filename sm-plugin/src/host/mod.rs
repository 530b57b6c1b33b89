//! Everything that touches the machine (DESIGN.md rule 5): external programs by argv with a
//! deadline and a log line, sysfs, files under `/dev`, `/run` and `/etc`, locks, syslog.
//! Every path hangs off [`mpathutil::HostRoot`] (`SM_RS_ROOT`), so a test points the real
//! code at a simulated host.

pub mod attached;
pub mod bootdisk;
pub mod command;
pub mod devfs;
pub mod dmstatus;
pub mod ibft;
pub mod initiator;
pub mod inuse;
pub mod iscsiadm;
pub mod iscsid;
pub mod lock;
pub mod log;
pub mod portal;
pub mod scheduler;
pub mod srref;
pub mod sysfs;
pub mod udev;
pub mod udevdb;
pub mod wwids;
