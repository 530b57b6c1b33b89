//! The kernel's own view of the multipath maps: the device-mapper status line of each
//! multipath target (`dmsetup status --target multipath`, `multipath-facts.md` §5.2). It is
//! what the kernel sends I/O by, and it outlives multipathd: while the daemon restarts,
//! reloads its configuration or answers `timeout`, the maps and their path states are still
//! there. The path agent reads it only when multipathd cannot answer for a LUN in use, so
//! that such a moment never reads as "0 paths".
//!
//! Why a `dmsetup` process rather than the `DM_TABLE_STATUS` ioctl: it runs once per pass
//! and only while multipathd fails (a pass comes at most once per debounce, so never a
//! process per event), and the ioctl would take either the `devicemapper` crate (bindgen
//! and libclang at build time, a musl recipe) or a few hundred lines of our own unsafe
//! `dm_ioctl` code for a path that is rare by design. `dmsetup` ships with device-mapper
//! on every dom0.

use crate::host::command::Program;
use crate::host::sysfs;
use mpathutil::HostRoot;
use mpathutil::parse::{KernelStatus, parse_kernel_status};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long `dmsetup` may take (it asks the kernel; it has nothing to wait for).
pub const DMSETUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The status of every multipath map, by map name.
pub fn multipath_maps() -> Result<BTreeMap<String, KernelStatus>, String> {
    let program = Program::new("dmsetup").args(["status", "--target", "multipath"]);
    let out = program.run(DMSETUP_TIMEOUT).map_err(|e| e.to_string())?;
    if out.status != 0 {
        return Err(format!(
            "`{}` exited {}: {}",
            program.shown(),
            out.status,
            out.stderr.trim()
        ));
    }
    parse_listing(&out.stdout)
}

/// `dmsetup status` output: `<name>: <start> <length> multipath <status>` per map, or
/// `No devices found`.
pub fn parse_listing(text: &str) -> Result<BTreeMap<String, KernelStatus>, String> {
    let mut maps = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("No devices found") {
            continue;
        }
        let Some((name, rest)) = line.split_once(": ") else {
            return Err(format!("dmsetup: unexpected line {line:?}"));
        };
        // One multipath target per map; a second segment would be someone else's table.
        if maps.contains_key(name) {
            continue;
        }
        let status = parse_kernel_status(rest).map_err(|e| format!("dmsetup: map {name}: {e}"))?;
        maps.insert(name.to_string(), status);
    }
    Ok(maps)
}

/// The SCSI disks by `major:minor` (the kernel status names paths so): kernel name and
/// H:C:T:L.
pub fn disks_by_dev_t(root: &HostRoot) -> BTreeMap<String, (String, String)> {
    sysfs::scsi_disks(root)
        .into_iter()
        .filter_map(|d| {
            let (major, minor) = sysfs::dev_t(root, &d.name)?;
            Some((format!("{major}:{minor}"), (d.name, d.hcil.to_string())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_is_read_per_map() {
        let text = "36001: 0 2097152 multipath 2 0 0 0 2 1 A 0 1 2 8:16 A 0 0 1 E 0 1 2 8:32 F 1 0 1\n\
                    36002: 0 2097152 multipath 2 0 0 0 1 1 A 0 2 0 8:48 A 0 8:64 A 0\n";
        let maps = parse_listing(text).unwrap();
        assert_eq!(maps.len(), 2);
        assert_eq!(maps["36001"].active_paths(), 1);
        assert_eq!(maps["36001"].total_paths(), 2);
        assert_eq!(maps["36002"].active_paths(), 2);
        assert!(parse_listing("No devices found\n").unwrap().is_empty());
        assert!(parse_listing("36001: 0 2097152 multipath 2 0 0 0 9\n").is_err());
    }
}
