//! The path agent on the real stack, on both daemons: a LUN in use (activated by the
//! packaged driver), a path pulled and pushed back, and the PBD's `mpath-<SCSIid>` in xapi
//! follows: `[1, 2]`, then `[2, 2]`.
//!
//! Everything runs in the guest: the xapi simulator (`xapi-sim` from the shared build
//! directory, on a unix socket as the dom0's xapi), the agent (`sm-mpath-agent`: the RPM's
//! when it carries one, else the shared build's), the driver (the RPM's `LUNoISCSISR`).
//!
//! The fabric is topology B (software iSCSI, tgtd, two portals): a LUN on a virtio-scsi HBA
//! is a disk of the server, which the driver rightly refuses to use as an SR's LUN. A path is
//! pulled the way a hot-unplug looks to the host — the SCSI device of one session deleted
//! (`device/delete`: the kernel's remove uevents, multipathd drops the path) — and pushed back
//! by rescanning that session's SCSI host (add uevents, multipathd adds the path back).
//!
//! The latencies reported end when the value in xapi changes (a poller in the guest reading
//! the key through XenAPI every 50 ms) and start at two kernel uevents (stamped by the kernel,
//! logged by `udevadm monitor`): the path's (a disk removed or added: the earliest multipathd
//! can know) and the map's next one (multipathd reloading the map without or with the path —
//! "multipathd has seen it" — or, for a pull, the kernel failing the path just before).
//! Medians over several pulls, reported, never asserted: under software emulation on a shared
//! 2-core machine they say how fast it was, not whether it is right.
//!
//! The key's history (printed) shows it absent for a moment around each change: a value is
//! written as `remove_from_other_config` + `add_to_other_config` (xapi has no atomic put of one
//! map key; stock mpathcount writes the same way), and the poller sometimes reads in between.

use std::time::Duration;

use sm_testkit::realstack::guest_xapi::{self, xe};
use sm_testkit::realstack::{self, Daemon, Probe, Topology, Vm, report, wait_for};

const IQN: &str = "iqn.2026-01.invalid.sm-rs:tgt-lun1";
const WWID: &str = "360000000000000000000000000000001";
const PORTALS: &str = "127.0.0.2,127.0.0.3";
/// The portal whose path is pulled.
const PULLED_PORTAL: &str = "127.0.0.3:3260";
const SR_NAME: &str = "realstack-luns";
const DROP_IN: &str = "/etc/multipath/conf.d/00-sm-rs.conf";
const PULLS: usize = 3;

/// Reads the PBD's key through XenAPI (XML-RPC on xapi's unix socket, as stock Python tools
/// do) every 50 ms; prints `<uptime> <value>` when it changes.
const KEY_POLLER: &str = r#"
import http.client, socket, sys, time, xmlrpc.client

class Unix(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect("/var/lib/xcp/xapi")

class Transport(xmlrpc.client.Transport):
    def make_connection(self, host):
        return Unix("localhost")

def value(reply):
    if reply["Status"] != "Success":
        raise SystemExit(reply)
    return reply["Value"]

xapi = xmlrpc.client.ServerProxy("http://localhost/", transport=Transport(), allow_none=True)
session = value(xapi.session.login_with_password("root", "", "1.0", "realstack-keypoll"))
pbd = value(xapi.PBD.get_by_uuid(session, sys.argv[1]))
last = None
while True:
    now = value(xapi.PBD.get_other_config(session, pbd)).get(sys.argv[2], "")
    if now != last:
        print(open("/proc/uptime").read().split()[0], now, flush=True)
        last = now
    time.sleep(0.05)
"#;

/// The HA path's call: plug the SR as its config says and attach the LUN (no session).
fn attach_call(sr_uuid: &str) -> String {
    guest_xapi::attach_from_config(sr_uuid, "5c6f0d2e-realstack-agent-vdi", PORTALS, IQN, WWID)
}

/// The guest's uptime now, in seconds (the clock of the syslog stamps and the key log).
fn uptime(vm: &mut Vm) -> f64 {
    vm.sh("cut -d' ' -f1 /proc/uptime")
        .expect("uptime")
        .trim()
        .parse()
        .expect("a number")
}

/// The key's values as the poller logged them: (uptime, value), on each change.
fn key_log(vm: &mut Vm) -> Vec<(f64, String)> {
    vm.sh("cat /tmp/keylog")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (t, v) = l.split_once(' ')?;
            Some((t.parse().ok()?, v.to_string()))
        })
        .collect()
}

/// Waits until the key reads `value` at an uptime after `since`; that uptime.
fn key_becomes(vm: &mut Vm, value: &str, since: f64) -> f64 {
    let (at, _) = wait_for(
        &format!("mpath-{WWID} = {value}"),
        Duration::from_secs(60),
        || {
            let log = key_log(vm);
            Ok(match log.iter().find(|(t, v)| *t >= since && v == value) {
                Some((t, _)) => Probe::Ready(*t),
                None => Probe::Pending(format!("{:?}", log.last())),
            })
        },
    )
    .unwrap_or_else(|e| {
        let agent = vm
            .sh("tail -30 /tmp/agent.log; cat /tmp/keypoll.err")
            .unwrap_or_default();
        panic!("{e}\nagent log:\n{agent}")
    });
    at
}

/// The kernel's stamp of the first uevent after `since` that `action` (`remove`, `add`,
/// `change`) a block device whose name starts with `device` (`sd`, `dm-`), as `udevadm
/// monitor` logged it.
fn uevent(vm: &mut Vm, action: &str, device: &str, since: f64) -> f64 {
    let (at, _) = wait_for(
        &format!("a {action} uevent of {device}*"),
        Duration::from_secs(60),
        || {
            let log = vm.sh("cat /tmp/uevents").unwrap_or_default();
            Ok(
                match log
                    .lines()
                    .filter(|l| {
                        l.split_whitespace().nth(1) == Some(action)
                            && l.contains(&format!("/block/{device}"))
                    })
                    .filter_map(|l| {
                        l.strip_prefix("KERNEL[")?
                            .split(']')
                            .next()?
                            .parse::<f64>()
                            .ok()
                    })
                    .find(|t| *t >= since)
                {
                    Some(t) => Probe::Ready(t),
                    None => Probe::Pending("not yet".into()),
                },
            )
        },
    )
    .expect("the uevent");
    at
}

/// The disk and SCSI host of the pulled portal's path, if it is there.
fn pulled_path(vm: &mut Vm) -> Option<(String, String)> {
    let paths = vm.sh("smrs-paths").expect("paths");
    paths.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() == 4 && f[2] == "iscsi" && f[3] == PULLED_PORTAL).then(|| {
            let host = f[1].split(':').next().unwrap_or_default().to_string();
            (f[0].to_string(), host)
        })
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn agent_follows(daemon: Daemon) {
    let Some(stack) = realstack::prepare().expect("real stack") else {
        return;
    };
    if !stack.has(daemon).expect("daemon") {
        return;
    }
    let Some(packaged) = stack.packaged().expect("the RPM") else {
        return;
    };
    let sm_dir = packaged.guest_path("/opt/xensource/sm").expect("driver");
    let agent = match packaged.guest_path("/usr/libexec/sm-rs/sm-mpath-agent") {
        Ok(path) => path,
        Err(_) => {
            eprintln!("the RPM carries no sm-mpath-agent (yet): the shared build's runs instead");
            stack
                .guest_binary("sm-mpath-agent")
                .expect("the agent is built")
        }
    };
    stack.guest_binary("xapi-sim").expect("xapi-sim is built");
    stack.guest_binary("xe").expect("xe is built");
    let dropin = packaged.guest_path(DROP_IN).expect("drop-in");
    let mut vm = stack.boot_on(Topology::IscsiTgt, daemon).expect("boot B");

    // As on a host with sm-rs installed: our drop-in, no map for a LUN nobody uses.
    match daemon {
        Daemon::Debian094 => vm.sh(&format!(
            "mkdir -p /etc/multipath/conf.d && install -m 0644 {dropin} {DROP_IN} && : > /etc/multipath/wwids && multipathd reconfigure"
        )),
        Daemon::Dom0Xs => vm.sh(&format!(
            "sed -i '\\|/{WWID}/|d' /etc/multipath/wwids && multipath -f {WWID}"
        )),
    }
    .expect("unmap the LUN");
    wait_for("the unused map to go", Duration::from_secs(60), || {
        let maps = vm.sh("smrs-mpathd-send 'show maps raw format \"%w\"'; echo")?;
        Ok(if maps.contains(WWID) {
            Probe::Pending(maps)
        } else {
            Probe::Ready(())
        })
    })
    .expect("no map");

    // xapi: one host (this one) and the packaged drivers; the SR created as an
    // administrator creates it, which plugs its PBD (sr_attach: discovery, the logins, the
    // PBD keys) through the driver.
    vm.sh(&format!(
        "mkdir -p /opt/xensource && ln -sfn {sm_dir} /opt/xensource/sm"
    ))
    .expect("install the driver");
    let host = guest_xapi::start(&mut vm, "/opt/xensource/sm", None).expect("xapi in the guest");
    let sr = xe(
        &mut vm,
        &format!(
            "sr-create type=lunoiscsi shared=true name-label={SR_NAME} device-config:target={PORTALS} \
             device-config:targetIQN={IQN} device-config:SCSIid={WWID}"
        ),
    );
    let pbd = xe(&mut vm, &format!("pbd-list sr-uuid={sr} --minimal"));
    assert!(
        !host.contains(',') && !pbd.contains(',') && !pbd.is_empty(),
        "one host, one PBD: {host} {sr} {pbd}"
    );
    let attached = xe(
        &mut vm,
        &format!("pbd-param-get uuid={pbd} param-name=currently-attached"),
    );
    assert_eq!(attached, "true", "the SR is plugged");

    // The poller: the key's value as xapi has it, stamped with the guest's uptime, on each
    // change (one long-lived XML-RPC client, so it costs the guest little); and the
    // kernel's block uevents, stamped by the kernel.
    vm.run_with_stdin("cat > /tmp/keypoll.py", KEY_POLLER)
        .expect("poller")
        .success()
        .expect("poller written");
    vm.sh(&format!(
        "setsid -f python3 /tmp/keypoll.py {pbd} mpath-{WWID} </dev/null >/tmp/keylog 2>/tmp/keypoll.err; \
         setsid -f udevadm monitor --kernel --subsystem-match=block </dev/null >/tmp/uevents 2>&1"
    ))
    .expect("pollers");
    // The agent, its log lines stamped with the guest's uptime.
    vm.sh(&format!(
        "setsid -f bash -c '{agent} --foreground 2>&1 | while IFS= read -r l; do \
             read -r up _ < /proc/uptime; echo \"$up $l\"; done >> /tmp/agent.log' </dev/null >/dev/null 2>&1"
    ))
    .expect("agent");

    // The LUN in use: the packaged driver makes the map and the mpInuse link (the HA
    // path's call, which needs no VM: the SR is plugged already).
    let since = uptime(&mut vm);
    let out = vm
        .run_with_stdin(
            "x=$(cat); SM_RS_LOG=stderr /opt/xensource/sm/LUNoISCSISR \"$x\"",
            &attach_call(&sr),
        )
        .expect("the driver runs");
    assert!(
        out.stdout.contains(&format!("/dev/disk/mpInuse/{WWID}")),
        "vdi_attach_from_config: {out:?}"
    );
    let first = key_becomes(&mut vm, "[2, 2]", since);
    eprintln!(
        "the agent published [2, 2] {:.2} s after the attach began",
        first - since
    );

    // Per change: from the path's uevent, and from the map's (multipathd reloading it, or
    // for a pull the kernel failing the path first) to the value in xapi.
    let mut pulled = Vec::new();
    let mut pulled_map = Vec::new();
    let mut pushed = Vec::new();
    let mut pushed_map = Vec::new();
    for round in 1..=PULLS {
        let (dev, scsi_host) = pulled_path(&mut vm).expect("the path of portal 2");
        let since = uptime(&mut vm);
        vm.sh(&format!("echo 1 > /sys/block/{dev}/device/delete"))
            .expect("pull");
        let gone = uevent(&mut vm, "remove", "sd", since);
        let map = uevent(&mut vm, "change", "dm-", gone);
        let published = key_becomes(&mut vm, "[1, 2]", since);
        pulled.push(published - gone);
        pulled_map.push(published - map);

        let since = uptime(&mut vm);
        vm.sh(&format!(
            "echo '- - -' > /sys/class/scsi_host/host{scsi_host}/scan"
        ))
        .expect("push back");
        let back = uevent(&mut vm, "add", "sd", since);
        let map = uevent(&mut vm, "change", "dm-", back);
        let published = key_becomes(&mut vm, "[2, 2]", since);
        pushed.push(published - back);
        pushed_map.push(published - map);
        eprintln!(
            "round {round}: pulled {:.2} s ({:.2} s after the map's uevent), pushed back {:.2} s ({:.2} s after the map's uevent), from the path's uevent to the value in xapi",
            pulled[round - 1],
            pulled_map[round - 1],
            pushed[round - 1],
            pushed_map[round - 1]
        );
    }
    // (the agent's log, the key's history and the uevents, for the record)
    let agent_log = vm.sh("cat /tmp/agent.log").unwrap_or_default();
    let uevents = vm
        .sh("grep -E ' (add|remove|change) ' /tmp/uevents | tail -40")
        .unwrap_or_default();
    let keys = vm.sh("cat /tmp/keylog").unwrap_or_default();
    vm.stop().expect("stop");
    eprintln!("key log:\n{keys}\nagent log:\n{agent_log}\nlast uevents:\n{uevents}");
    for (what, values) in [
        ("path pulled, from the path's uevent", &mut pulled),
        ("path pulled, from the map's uevent", &mut pulled_map),
        ("path pushed back, from the path's uevent", &mut pushed),
        ("path pushed back, from the map's uevent", &mut pushed_map),
    ] {
        report(
            &format!(
                "agent on {daemon}: {what} to mpath-<SCSIid> changed in xapi (median of {PULLS}, key polled every 50 ms)"
            ),
            Duration::from_secs_f64(median(values).max(0.0)),
        );
    }
}

#[test]
fn realstack_agent_follows_a_pulled_path() {
    agent_follows(Daemon::Debian094);
}

#[test]
fn realstack_agent_follows_a_pulled_path_dom0_049xs() {
    agent_follows(Daemon::Dom0Xs);
}
