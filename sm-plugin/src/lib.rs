//! `sm-plugin`: the SR drivers and the path agent.
//!
//! Nothing here yet: the sm-plugin issue fills this crate. It stands on `mpathutil` (everything
//! about dm-multipath) and `xenapi` (the XenAPI client); side effects live only in `host/`.
