//! Lazy activation on the real stack: stock multipath-tools (Debian 12's 0.9.4) with our
//! multipath.conf drop-in, the real `sm-driver` run in the guest as the HA statefile path runs
//! it (a generated `vdi_attach_from_config`, no xapi needed): no map exists for an unused
//! LUN; `vdi_attach` makes one; an open map is refused and left as it was; `vdi_detach`
//! removes it.

use std::time::{Duration, Instant};

use sm_testkit::realstack::{self, Topology, Vm, scsi_lun_wwid};

const DROP_IN: &str = include_str!("../../packaging/multipath/sm-rs.conf");

fn call(command: &str, wwid: &str) -> String {
    format!(
        "<methodCall><methodName>{command}</methodName><params><param><value><struct>\
         <member><name>command</name><value>{command}</value></member>\
         <member><name>args</name><value><array><data/></array></value></member>\
         <member><name>device_config</name><value><struct>\
         <member><name>SRmaster</name><value>true</value></member>\
         <member><name>multipathing</name><value>true</value></member>\
         <member><name>multipathhandle</name><value>dmp</value></member>\
         </struct></value></member>\
         <member><name>sr_uuid</name><value>5c6f0d2e-realstack-sr</value></member>\
         <member><name>vdi_uuid</name><value>5c6f0d2e-realstack-vdi</value></member>\
         <member><name>vdi_location</name><value>{wwid}</value></member>\
         </struct></value></param></params></methodCall>"
    )
}

/// Runs the driver in the guest with a methodCall; its stdout.
fn driver(vm: &mut Vm, xml: &str) -> String {
    let out = vm
        .run_with_stdin("x=$(cat); SM_RS_LOG=stderr /tmp/sm/LUNoHBASR \"$x\"", xml)
        .expect("the driver runs");
    assert_eq!(out.rc, 0, "exit status 0 always: {out:?}");
    eprintln!("driver stderr: {}", out.stderr);
    out.stdout
}

fn maps(vm: &mut Vm) -> String {
    vm.sh("multipathd show maps raw format '%w'")
        .unwrap_or_default()
}

fn wait_maps(vm: &mut Vm, wwid: &str, present: bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while maps(vm).lines().any(|l| l.trim() == wwid) != present {
        assert!(
            Instant::now() < deadline,
            "map {wwid} present={present} never came"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn realstack_driver_lazy_activation() {
    let Some(stack) = realstack::prepare().expect("real stack") else {
        return;
    };
    let driver_binary = stack.guest_binary("sm-driver").expect("sm-driver is built");
    let mut vm = stack.boot(Topology::ScsiTwoHbas).expect("boot topology A");
    let wwid = scsi_lun_wwid();
    vm.run(&format!(
        "mkdir -p /tmp/sm && ln -sf {driver_binary} /tmp/sm/LUNoHBASR"
    ))
    .expect("install the driver");
    // Our drop-in, an empty wwids file: multipathd flushes the unused map.
    vm.run_with_stdin(
        "mkdir -p /etc/multipath/conf.d && cat > /etc/multipath/conf.d/sm-rs.conf && : > /etc/multipath/wwids && multipathd reconfigure",
        DROP_IN,
    )
    .expect("configure multipathd");
    wait_maps(&mut vm, &wwid, false);

    // vdi_attach makes the map.
    let out = driver(&mut vm, &call("vdi_attach_from_config", &wwid));
    assert!(out.contains(&format!("/dev/disk/mpInuse/{wwid}")), "{out}");
    wait_maps(&mut vm, &wwid, true);
    let state = vm
        .sh(&format!(
            "test -e /dev/mapper/{wwid} && test -L /dev/disk/mpInuse/{wwid} && grep -c '^/{wwid}/$' /etc/multipath/wwids"
        ))
        .expect("node, link and WWID");
    assert_eq!(state.trim(), "1");

    // Held open (a VM's disk), the map is refused and left as it was.
    let holder = vm
        .sh(&format!(
            "sh -c 'exec 3</dev/mapper/{wwid}; exec sleep 120' >/dev/null 2>&1 & echo $!"
        ))
        .expect("hold the map");
    std::thread::sleep(Duration::from_secs(1));
    let out = driver(&mut vm, &call("vdi_detach_from_config", &wwid));
    assert!(out.contains("<i4>24</i4>"), "{out}");
    wait_maps(&mut vm, &wwid, true);
    let state = vm
        .sh(&format!(
            "test -L /dev/disk/mpInuse/{wwid} && grep -c '^/{wwid}/$' /etc/multipath/wwids"
        ))
        .expect("link and WWID kept");
    assert_eq!(state.trim(), "1");

    // Closed, vdi_detach removes it.
    vm.run(&format!("kill {}", holder.trim()))
        .expect("close the map");
    std::thread::sleep(Duration::from_secs(1));
    let out = driver(&mut vm, &call("vdi_detach_from_config", &wwid));
    assert!(!out.contains("<fault>"), "{out}");
    wait_maps(&mut vm, &wwid, false);
    let gone = vm
        .sh(&format!(
            "test ! -e /dev/disk/mpInuse/{wwid} && grep -c '^/{wwid}/$' /etc/multipath/wwids; true"
        ))
        .expect("link and WWID gone");
    assert_eq!(gone.trim(), "0");
    vm.stop().expect("stop");
}
