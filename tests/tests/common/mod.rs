//! What the driver tests share: a pool on the simulated default with the real `sm-driver`.
#![allow(dead_code)]

use sm_testkit::fabric::Fabric;
use sm_testkit::lab::{Lab, LabSpec};
use sm_testkit::multipathd_sim::ReplyStyle;
use sm_testkit::scenarios::{self, SEED_WWID};

pub fn lab_with(hosts: usize, fabric: impl Fn() -> Fabric + 'static, style: ReplyStyle) -> Lab {
    Lab::start(LabSpec {
        hosts,
        fabric: Box::new(fabric),
        driver: sm_testkit::bins::path("sm-driver"),
        standins: sm_testkit::bins::path("sm-sim-tool"),
        style,
        env: Vec::new(),
    })
    .expect("the lab starts")
}

/// One host, the seed array (SAS, two controllers), 0.9.8 replies.
pub fn seed_lab() -> Lab {
    lab_with(1, || scenarios::seed_fabric().0, ReplyStyle::V0_9_8)
}

pub const SEED: &str = SEED_WWID;

pub fn multipath_on(lab: &Lab, host: usize) {
    lab.host_config(
        host,
        &[
            ("multipathing", Some("true")),
            ("multipathhandle", Some("dmp")),
        ],
    )
    .unwrap();
}

/// The stderr of every driver run so far, and every fault string: what a person sees.
pub fn everything_shown(lab: &Lab) -> String {
    let mut text = String::new();
    for call in lab.xapi.driver_calls() {
        text.push_str(&call.stdout);
        text.push_str(&call.stderr);
    }
    for host in &lab.hosts {
        for line in host.sim.syslog_lines() {
            text.push_str(&line);
            text.push('\n');
        }
        if let Ok(smlog) = std::fs::read_to_string(host.sim.root().join("var/log/SMlog")) {
            text.push_str(&smlog);
        }
    }
    text
}

/// The state of one LUN on one host, as the machine has it.
#[derive(Debug, PartialEq, Eq)]
pub struct LunState {
    pub record: bool,
    pub wwid_listed: bool,
    pub map: bool,
    pub node: bool,
    pub link: bool,
}

pub fn lun_state(lab: &Lab, host: usize, scsiid: &str) -> LunState {
    let sim = &lab.host(host).sim;
    let root = sim.root();
    LunState {
        record: root.join("run/sm-rs/in-use").join(scsiid).exists(),
        wwid_listed: sim.wwids().iter().any(|w| w == scsiid),
        map: sim.maps().iter().any(|m| m == scsiid),
        node: root.join("dev/mapper").join(scsiid).exists(),
        link: std::fs::symlink_metadata(root.join("dev/disk/mpInuse").join(scsiid)).is_ok(),
    }
}

pub const ATTACHED: LunState = LunState {
    record: true,
    wwid_listed: true,
    map: true,
    node: true,
    link: true,
};

pub const RELEASED: LunState = LunState {
    record: false,
    wwid_listed: false,
    map: false,
    node: false,
    link: false,
};
