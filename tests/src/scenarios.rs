//! Ready-made fabrics.
//!
//! [`seed_fabric`] is the reference scenario of `seeds/000_*`: an Intel Modular Server with
//! two storage controller modules (SCM1 active/optimized, SCM2 standby; the array answers
//! TEST UNIT READY on its standby port, so both paths read `ready`), one 100 GiB LUN over an
//! mptsas SAS HBA, multipath grouping by ALUA priority (50 and 1), round-robin,
//! `queue_if_no_path`. [`SEED_STEPS`] replays what the log's author did to it.

use crate::fabric::{
    AluaState, ArrayId, ArraySpec, ControllerSpec, Fabric, Failback, LunSpec, NoPathRetry, Policy,
    PortSpec, StandbyTur, Transport,
};

/// The seed LUN's SCSIid.
pub const SEED_WWID: &str = "22202000155fdb615";

/// The array and LUN of the seed log, seen by one host, scanned.
pub fn seed_fabric() -> (Fabric, ArrayId) {
    let mut fabric = Fabric::new();
    fabric.add_host_port(Transport::Sas);
    let array = fabric.add_array(ArraySpec {
        vendor: "Intel".into(),
        product: "Multi-Flex".into(),
        revision: "0308".into(),
        controllers: vec![
            ControllerSpec {
                name: "SCM1".into(),
                ports: vec![PortSpec::new("SCM1-P0", 0)],
            },
            ControllerSpec {
                name: "SCM2".into(),
                ports: vec![PortSpec::new("SCM2-P0", 1)],
            },
        ],
        tpgs: vec![(0, AluaState::ActiveOptimized), (1, AluaState::Standby)],
        standby_tur: StandbyTur::Ready,
        policy: Policy {
            features: "1 queue_if_no_path".into(),
            failback: Failback::Immediate,
            no_path_retry: NoPathRetry::Queue,
            ..Policy::alua("round-robin 0")
        },
    });
    fabric.add_lun(
        array,
        LunSpec {
            lun: 0,
            wwid: SEED_WWID.into(),
            size_bytes: 100 << 30,
            serial: "155fdb615".into(),
        },
    );
    fabric.scan();
    (fabric, array)
}

/// One step of the seed log: its fixture name, what the administrator did, and the change.
pub struct SeedStep {
    pub name: &'static str,
    pub action: &'static str,
    pub apply: fn(&mut Fabric, ArrayId),
}

/// The seed log, step by step: pull SCM2 and push it back, twice; then SCM1, twice.
pub const SEED_STEPS: [SeedStep; 9] = [
    SeedStep {
        name: "0-initial",
        action: "both controllers in",
        apply: |_, _| {},
    },
    SeedStep {
        name: "1-scm2-pulled",
        action: "pull out SCM2",
        apply: |f, a| f.pull_controller(a, "SCM2"),
    },
    SeedStep {
        name: "2-scm2-back",
        action: "push SCM2 back in",
        apply: |f, a| drop(f.push_controller(a, "SCM2")),
    },
    SeedStep {
        name: "3-scm2-pulled-again",
        action: "pull out SCM2 again",
        apply: |f, a| f.pull_controller(a, "SCM2"),
    },
    SeedStep {
        name: "4-scm2-back-again",
        action: "push SCM2 back in again",
        apply: |f, a| drop(f.push_controller(a, "SCM2")),
    },
    SeedStep {
        name: "5-scm1-pulled",
        action: "pull out SCM1 (the active/optimized controller)",
        apply: |f, a| f.pull_controller(a, "SCM1"),
    },
    SeedStep {
        name: "6-scm1-back",
        action: "push SCM1 back in",
        apply: |f, a| drop(f.push_controller(a, "SCM1")),
    },
    SeedStep {
        name: "7-scm1-pulled-again",
        action: "pull out SCM1 again",
        apply: |f, a| f.pull_controller(a, "SCM1"),
    },
    SeedStep {
        name: "8-scm1-back-again",
        action: "push SCM1 back in again",
        apply: |f, a| drop(f.push_controller(a, "SCM1")),
    },
];

/// A large FC fabric: `luns` LUNs on a dual-controller ALUA array, each reached through two
/// HBA ports and two controller ports (four paths per LUN), all scanned.
pub fn large_fabric(luns: usize) -> Fabric {
    let mut fabric = Fabric::new();
    fabric.add_host_port(Transport::Fc);
    fabric.add_host_port(Transport::Fc);
    let port = |name: &str, tpg: u16, n: u32| PortSpec {
        wwpn: Some(format!("0x5006016{n}41e0f2d1")),
        wwnn: Some("0x50060160c1e0f2d1".into()),
        ..PortSpec::new(name, tpg)
    };
    let array = fabric.add_array(ArraySpec {
        vendor: "DGC".into(),
        product: "VRAID".into(),
        revision: "0533".into(),
        controllers: vec![
            ControllerSpec {
                name: "SPA".into(),
                ports: vec![port("SPA-0", 1, 0)],
            },
            ControllerSpec {
                name: "SPB".into(),
                ports: vec![port("SPB-0", 2, 8)],
            },
        ],
        tpgs: vec![
            (1, AluaState::ActiveOptimized),
            (2, AluaState::ActiveNonOptimized),
        ],
        standby_tur: StandbyTur::Ghost,
        policy: Policy {
            features: "1 queue_if_no_path".into(),
            no_path_retry: NoPathRetry::Retries(12),
            ..Policy::alua("service-time 0")
        },
    });
    for i in 0..luns {
        fabric.add_lun(
            array,
            LunSpec {
                lun: i as u64,
                wwid: format!("36006016015301d00{i:016x}"),
                size_bytes: 64 << 30,
                serial: format!("CKM00{i:08}"),
            },
        );
    }
    fabric.scan();
    fabric
}

/// The target IQN of [`iscsi_fabric`].
pub const ISCSI_TARGET: &str = "iqn.2026-01.com.example:array1";
/// Its portals: one per controller, on loopback addresses the host simulator serves over TCP
/// (see `host_sim::portals`), so the driver's reachability check meets a real listener.
pub const ISCSI_PORTALS: [&str; 2] = ["127.0.0.101:3260", "127.0.0.102:3260"];

/// A dual-controller ALUA iSCSI array (like LIO with two target port groups): one portal
/// per controller, both serving the same target; `luns` LUNs of 16 GiB. The host has no
/// session yet: a driver logs in.
pub fn iscsi_fabric(luns: usize) -> (Fabric, ArrayId) {
    let mut fabric = Fabric::new();
    let portal = |name: &str, tpg: u16, at: &str| PortSpec {
        target_iqn: Some(ISCSI_TARGET.into()),
        portal: Some(at.into()),
        ..PortSpec::new(name, tpg)
    };
    let array = fabric.add_array(ArraySpec {
        vendor: "LIO-ORG".into(),
        product: "lun".into(),
        revision: "4.0".into(),
        controllers: vec![
            ControllerSpec {
                name: "CTRL-A".into(),
                ports: vec![portal("A-eth1", 1, ISCSI_PORTALS[0])],
            },
            ControllerSpec {
                name: "CTRL-B".into(),
                ports: vec![portal("B-eth1", 2, ISCSI_PORTALS[1])],
            },
        ],
        tpgs: vec![
            (1, AluaState::ActiveOptimized),
            (2, AluaState::ActiveNonOptimized),
        ],
        standby_tur: StandbyTur::Ghost,
        policy: Policy {
            features: "1 queue_if_no_path".into(),
            no_path_retry: NoPathRetry::Retries(12),
            ..Policy::alua("service-time 0")
        },
    });
    for i in 0..luns {
        fabric.add_lun(
            array,
            LunSpec {
                lun: i as u64,
                wwid: format!("36001405{i:025x}"),
                size_bytes: 16 << 30,
                serial: format!("lio{i:08}"),
            },
        );
    }
    (fabric, array)
}
