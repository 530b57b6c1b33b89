//! `sm-testkit`: what the tests stand on.
//!
//! - [`agent_lab`]: the path agent on a lab host, uevents as the kernel sends them, and a tap
//!   that counts the agent's XenAPI calls;
//! - [`fabric`]: arrays, controllers, ports, ALUA groups, LUNs and the host's SCSI disks,
//!   with the faults storage administrators meet (a controller pulled, a port cut, …);
//! - [`multipathd_sim`]: multipathd's socket protocol served from a fabric;
//! - [`host_sim`]: a simulated host root (sysfs, `/dev`, the wwids file, syslog) kept in step
//!   with a fabric and a multipathd simulator, and the programs a driver runs there;
//! - [`lab`]: a pool on the simulated default with the driver installed, for tests and demos;
//! - [`scenarios`]: ready-made fabrics: the seed log's array, and large ones for benchmarks;
//! - [`xapi_sim`]: an xapi pool speaking XenAPI (XML-RPC and JSON-RPC) that runs SMAPIv1
//!   drivers as xapi's sm_exec does;
//! - [`realstack`]: a qemu VM with the real kernel dm-multipath, multipathd, open-iscsi, tgt
//!   and LIO, driven from the tests.

pub mod agent_lab;
pub mod bins;
pub mod fabric;
pub mod host_sim;
pub mod lab;
pub mod multipathd_sim;
pub mod realstack;
pub mod scenarios;
pub mod xapi_sim;
