//! `sr_get_driver_info` (`sm-facts.md` §1.4): what xapi registers as the SM record.
//!
//! `required_api_version` is "1.1". xapi treats every version below 2.0 as SMAPIv1
//! (`xapi_sm.ml` `is_v1`: nothing re-registered at plug, the driver run by sm_exec as any
//! other), and nothing else in xapi compares it except against "3.0" and "5.0" (both
//! thresholds we stay under). What "1.1" changes is stock sm's `sr_health_check` timer: it
//! loads the driver of every plugged SR whose SM has exactly "1.0" as a Python module,
//! which an ELF is not — it would crash on our SRs and stop checking the stock SRs after
//! them. Stock ships two SMAPIv1 drivers with "1.1" already (`udevSR`, the removable
//! storage of every host, and `DummySR`), so XenCenter and other clients know the value.
//! `SR_MULTIPATH` tells XenCenter the type is multipath-capable. `VDI_CREATE` and
//! `VDI_INTRODUCE` are how an administrator claims a LUN for VMs (the scans list LUNs
//! unmanaged, as stock LUN-per-VDI does): `xe vdi-create` takes the LUN named by
//! `sm-config:SCSIid`, or the smallest free one of the size asked, and writes nothing to it. `VDI_ACTIVATE`/`VDI_DEACTIVATE` make xapi call us around each VBD
//! plug; for a raw LUN they check and do nothing else.

use crate::drivers::SrType;
use crate::smapi::response::{string_struct, structure};
use dxr::Value;

/// See the module's words.
pub const REQUIRED_API_VERSION: &str = "1.1";

pub const CAPABILITIES: [&str; 10] = [
    "SR_PROBE",
    "SR_UPDATE",
    "SR_MULTIPATH",
    "VDI_CREATE",
    "VDI_INTRODUCE",
    "VDI_ATTACH",
    "VDI_DETACH",
    "VDI_ACTIVATE",
    "VDI_DEACTIVATE",
    "VDI_GENERATE_CONFIG",
];

const ISCSI_CONFIGURATION: [(&str, &str); 9] = [
    (
        "target",
        "IP addresses or host names of the target's portals, comma-separated (required)",
    ),
    ("port", "TCP port of the portals (optional, default 3260)"),
    (
        "targetIQN",
        "IQN of the target; * for every target the portals report (required; probe without it to list them)",
    ),
    ("chapuser", "CHAP user name (optional)"),
    ("chappassword", "CHAP password (optional; never logged)"),
    (
        "chappassword_secret",
        "uuid of a XenAPI secret holding the CHAP password (optional, instead of chappassword)",
    ),
    (
        "multihomed",
        "log in to every portal the target reports: true or false (optional, defaults to the host's multipathing)",
    ),
    (
        "SCSIid",
        "only these LUNs, by SCSIid, comma-separated (optional, default every LUN of the target that no other SR uses)",
    ),
    (
        "localIQN",
        "initiator IQN to use (optional, default host.other_config:iscsi_iqn)",
    ),
];

const HBA_CONFIGURATION: [(&str, &str); 1] = [(
    "SCSIid",
    "only these LUNs, by SCSIid, comma-separated (optional, default every LUN reached over the host's FC, SAS and offload-iSCSI HBAs that no other SR uses)",
)];

/// The driver-info struct of a type.
pub fn driver_info(sr_type: SrType) -> Value {
    let (name, description, configuration): (&str, &str, &[(&str, &str)]) = match sr_type {
        SrType::Iscsi => (
            "LUN-per-VDI over iSCSI",
            "SR plugin which represents each LUN of an iSCSI target as a VDI, with per-host dm-multipathing and device-mapper maps only for LUNs in use (sm-rs)",
            &ISCSI_CONFIGURATION,
        ),
        SrType::Hba => (
            "LUN-per-VDI over HBA",
            "SR plugin which represents each LUN on FC, SAS or offload-iSCSI HBAs as a VDI, with per-host dm-multipathing and device-mapper maps only for LUNs in use (sm-rs)",
            &HBA_CONFIGURATION,
        ),
    };
    let base = [
        ("name", name),
        ("description", description),
        ("vendor", "sm-rs"),
        ("copyright", "(C) 2026 the sm-rs authors"),
        ("driver_version", env!("CARGO_PKG_VERSION")),
        ("required_api_version", REQUIRED_API_VERSION),
    ];
    let Value::Struct(mut members) = string_struct(base) else {
        return Value::Nil;
    };
    members.insert(
        "capabilities".into(),
        Value::Array(
            CAPABILITIES
                .iter()
                .map(|c| Value::String((*c).to_string()))
                .collect(),
        ),
    );
    members.insert(
        "configuration".into(),
        Value::Array(
            configuration
                .iter()
                .map(|(key, description)| {
                    structure([
                        ("key", Value::String((*key).to_string())),
                        ("description", Value::String((*description).to_string())),
                    ])
                })
                .collect(),
        ),
    );
    Value::Struct(members)
}
