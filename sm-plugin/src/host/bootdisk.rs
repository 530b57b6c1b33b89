//! Whether dom0 boots from a multipathed disk (boot from SAN), found by what holds `/`: the
//! device of the root filesystem, then down through partitions and device-mapper slaves
//! (an LVM volume, a partition map `part1-mpath-<wwid>`) to a multipath map, whose
//! `dm/uuid` is `mpath-<wwid>`. Stock mpathcount instead assumes the first map multipathd
//! lists is the root disk whenever `/` is on device-mapper at all.

use mpathutil::HostRoot;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Where stock sm installs mpathcount (XenServer 8 / XCP-ng 8.3, and the upstream layout).
/// While it is there it keeps the host's `mpath-boot` itself, from every udev kick.
pub const STOCK_MPATHCOUNT: [&str; 2] = [
    "/opt/xensource/sm/mpathcount.py",
    "/usr/libexec/sm/mpathcount",
];

/// The name of the multipath map that holds `/`, if any.
pub fn root_map(root: &HostRoot) -> Option<String> {
    let dev = fs::metadata(root.as_path()).ok()?.dev();
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    let start = fs::canonicalize(root.path(format!("/sys/dev/block/{major}:{minor}"))).ok()?;
    find_map(&start, 0)
}

fn find_map(dir: &Path, depth: u32) -> Option<String> {
    if depth > 8 {
        return None;
    }
    let read = |p: &str| {
        fs::read_to_string(dir.join(p))
            .ok()
            .map(|s| s.trim().to_string())
    };
    if read("dm/uuid").is_some_and(|u| u.starts_with("mpath-")) {
        return read("dm/name");
    }
    if dir.join("partition").exists() {
        return find_map(dir.parent()?, depth + 1);
    }
    fs::read_dir(dir.join("slaves"))
        .ok()?
        .flatten()
        .filter_map(|slave| fs::canonicalize(slave.path()).ok())
        .find_map(|slave| find_map(&slave, depth + 1))
}

/// Whether stock sm's mpathcount is installed on this host.
pub fn stock_mpathcount(root: &HostRoot) -> bool {
    STOCK_MPATHCOUNT.iter().any(|p| root.path(p).exists())
}
