//! `lunohba`: LUNs on the host's storage HBAs (FC, SAS, offload iSCSI), found through
//! sysfs. A plug rescans every HBA (`echo '- - -' > /sys/class/scsi_host/hostN/scan`), so
//! LUNs mapped to the host since boot appear; the LUNs seen are the disks on HBA hosts,
//! less dom0's root, optionally filtered by `SCSIid`; which of them are the SR's (not
//! another SR's, not held by dom0, not the server's own RAID volumes) is [`super::claims`].

use crate::drivers::Ctx;
use crate::drivers::luns::{self, Lun};
use crate::errors::{Code, SrError};
use crate::host::{sysfs, udev};
use std::collections::BTreeSet;
use std::time::Duration;

/// The SCSI hosts that are storage HBAs.
pub fn hba_hosts(ctx: &Ctx<'_>) -> Vec<u32> {
    sysfs::scsi_hosts(&ctx.root)
        .into_iter()
        .filter(|h| sysfs::is_hba_driver(&h.proc_name))
        .map(|h| h.number)
        .collect()
}

/// Rescans every HBA and lets udev catch up.
pub fn rescan(ctx: &Ctx<'_>) -> Result<(), SrError> {
    let hosts = hba_hosts(ctx);
    if hosts.is_empty() {
        return Err(SrError::with(
            Code::InvalidDev,
            "this host has no FC, SAS or offload-iSCSI HBA (/sys/class/scsi_host lists none)",
        ));
    }
    for host in hosts {
        if let Err(e) = sysfs::rescan(&ctx.root, host) {
            tracing::warn!("rescan of SCSI host {host} failed: {e}");
        }
    }
    udev::settle(Duration::from_secs(30));
    Ok(())
}

/// The LUNs on the HBAs.
pub fn luns(ctx: &Ctx<'_>, filter: &[String]) -> Vec<Lun> {
    let hosts: BTreeSet<u32> = hba_hosts(ctx).into_iter().collect();
    let disks = sysfs::scsi_disks(&ctx.root)
        .into_iter()
        .filter(|d| hosts.contains(&d.hcil.host));
    luns::group(disks, &sysfs::root_disks(&ctx.root), filter)
}

/// The `SCSIid` filter of the SR.
pub fn filter(ctx: &Ctx<'_>) -> Vec<String> {
    luns::scsiid_filter(ctx.call.config("SCSIid"))
}
