//! xapi inside the guest, for tests of what the driver and the agent publish there: the xapi
//! simulator on the dom0's socket (so the driver, the agent and `xe` find it with no knob),
//! `xe` against it, and this host set up as a multipathed dom0 (its initiator name in the
//! host record, `INSTALLATION_UUID` in the inventory, as the agent finds its host).

use super::{Result, Vm};

/// Where a dom0's xapi listens, and where the simulator in the guest does.
pub const XAPI_SOCKET: &str = "/var/lib/xcp/xapi";

/// `xe ARGS` in the guest, its output trimmed. A failed `xe` fails the test, with its words.
pub fn xe(vm: &mut Vm, args: &str) -> String {
    vm.sh(&format!("/mnt/host/xe {args}"))
        .unwrap_or_else(|e| panic!("xe {args}: {e}"))
        .trim()
        .to_string()
}

/// Starts the simulator (`xapi-sim` from the shared build) with the drivers found in
/// `driver_dir`, run with `driver_path` as their `PATH` where given (else xapi's), and makes
/// this host a multipathed dom0. The host's uuid.
pub fn start(vm: &mut Vm, driver_dir: &str, driver_path: Option<&str>) -> Result<String> {
    let env = driver_path
        .map(|p| format!("--driver-env PATH={p}"))
        .unwrap_or_default();
    vm.sh(&format!(
        "mkdir -p /var/lib/xcp && setsid -f /mnt/host/xapi-sim --socket {XAPI_SOCKET} \
         --state /tmp/pool.json --hosts 1 --driver-dir {driver_dir} {env} \
         </dev/null >/tmp/xapi-sim.log 2>&1; \
         for i in $(seq 100); do [ -S {XAPI_SOCKET} ] && break; sleep 0.1; done; [ -S {XAPI_SOCKET} ]"
    ))?;
    let host = xe(vm, "host-list --minimal");
    xe(
        vm,
        &format!(
            "host-param-set uuid={host} other-config:multipathing=true \
             other-config:multipathhandle=dmp \
             other-config:iscsi_iqn=$(sed -n 's/^InitiatorName=//p' /etc/iscsi/initiatorname.iscsi)"
        ),
    );
    vm.sh(&format!(
        "printf \"INSTALLATION_UUID='%s'\\n\" {host} > /etc/xensource-inventory"
    ))?;
    Ok(host)
}

/// The HA path's call (`vdi_attach_from_config`: no session, the SR plugged as its config
/// says), activating the LUN `scsiid` of a multipathed iSCSI SR on `target`/`target_iqn`.
pub fn attach_from_config(
    sr_uuid: &str,
    vdi_uuid: &str,
    target: &str,
    target_iqn: &str,
    scsiid: &str,
) -> String {
    format!(
        "<methodCall><methodName>vdi_attach_from_config</methodName><params><param><value><struct>\
         <member><name>command</name><value>vdi_attach_from_config</value></member>\
         <member><name>args</name><value><array><data/></array></value></member>\
         <member><name>device_config</name><value><struct>\
         <member><name>SRmaster</name><value>true</value></member>\
         <member><name>multipathing</name><value>true</value></member>\
         <member><name>multipathhandle</name><value>dmp</value></member>\
         <member><name>target</name><value>{target}</value></member>\
         <member><name>targetIQN</name><value>{target_iqn}</value></member>\
         <member><name>SCSIid</name><value>{scsiid}</value></member>\
         </struct></value></member>\
         <member><name>sr_uuid</name><value>{sr_uuid}</value></member>\
         <member><name>vdi_uuid</name><value>{vdi_uuid}</value></member>\
         <member><name>vdi_location</name><value>{scsiid}</value></member>\
         </struct></value></param></params></methodCall>"
    )
}
