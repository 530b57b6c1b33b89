//! The multipath drop-in the RPM installs (`/etc/multipath/conf.d/00-sm-rs.conf`), loaded by
//! both multipathd a host may run: `multipathd show config` then carries each of its array
//! entries (Intel Multi-Flex, Pillar Axiom, Hitachi OPEN-V) with every setting the drop-in
//! gives, and neither the daemon (its log after `reconfigure`) nor the `multipath` tool
//! (which parses the files anew; on 0.9.x only: 0.4.9-xs's `multipath -t` reports nothing)
//! reports a problem with the configuration.
//!
//! The warning detector is checked too: a file with a keyword no multipathd knows, put beside
//! the drop-in for a moment, must be reported, so "no warning" means something.

use std::time::Duration;

use sm_testkit::realstack::{self, Daemon, Probe, Topology, Vm, wait_for};

const INSTALLED: &str = "/etc/multipath/conf.d/00-sm-rs.conf";

/// A `device { … }` section: its settings in order, quotes removed.
type Device = Vec<(String, String)>;

/// The `device` sections of a configuration text (a file, or `show config`'s output).
fn devices(config: &str) -> Vec<Device> {
    let mut found = Vec::new();
    let mut current: Option<Device> = None;
    for line in config.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line == "device {" {
            current = Some(Vec::new());
        } else if line == "}" {
            if let Some(device) = current.take() {
                found.push(device);
            }
        } else if let Some(device) = current.as_mut()
            && let Some((key, value)) = line.split_once(char::is_whitespace)
        {
            device.push((key.to_string(), value.trim().trim_matches('"').to_string()));
        }
    }
    found
}

fn setting<'a>(device: &'a Device, key: &str) -> Option<&'a str> {
    device
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The daemon's log since line `from`: its warnings and errors (both daemons log a
/// configuration problem at warning level: `condlog(1, …)`).
fn config_complaints(log: &str, from: usize) -> Vec<String> {
    log.lines()
        .skip(from)
        .filter(|l| l.contains("multipath"))
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|facility_severity| {
                    ["warning", "err", "crit", "alert", "emerg"]
                        .iter()
                        .any(|s| facility_severity.ends_with(&format!(".{s}")))
                })
        })
        .map(String::from)
        .collect()
}

/// `reconfigure`, then waits until `show config` reflects `expect` (0.9.4 reconfigures
/// asynchronously). Returns the daemon's log lines about the configuration.
fn reconfigure(vm: &mut Vm, expect: impl Fn(&str) -> bool) -> (String, Vec<String>) {
    let mark = vm.syslog().expect("syslog").lines().count();
    vm.sh("smrs-mpathd-send reconfigure").expect("reconfigure");
    let (config, _) = wait_for(
        "multipathd's new configuration",
        Duration::from_secs(60),
        || {
            let config = vm.sh("smrs-mpathd-send 'show config'")?;
            Ok(if expect(&config) {
                Probe::Ready(config)
            } else {
                Probe::Pending("not yet".into())
            })
        },
    )
    .expect("reconfigured");
    // the daemon logs what it parsed before it answers show config with the new one
    let complaints = config_complaints(&vm.syslog().expect("syslog"), mark);
    (config, complaints)
}

/// `multipath -t` parses the configuration files itself and prints what they cost on stderr.
fn tool_complaints(vm: &mut Vm) -> String {
    let out = vm.run("multipath -t >/dev/null").expect("multipath -t");
    assert_eq!(out.rc, 0, "multipath -t: {out:?}");
    out.stderr.trim().to_string()
}

fn dropin_loads(daemon: Daemon) {
    let Some(stack) = realstack::prepare().expect("real stack") else {
        return;
    };
    if !stack.has(daemon).expect("daemon") {
        return;
    }
    let Some(packaged) = stack.packaged().expect("the RPM") else {
        return;
    };
    let dropin = packaged
        .read(INSTALLED)
        .expect("the RPM's multipath drop-in");
    let ours = devices(&dropin);
    assert_eq!(ours.len(), 3, "the drop-in's array entries: {ours:?}");
    let mut vm = stack.boot_on(Topology::Bare, daemon).expect("boot");

    // Installed as the RPM installs it (the dom0 image boots with a copy named sm-rs.conf).
    let source = packaged.guest_path(INSTALLED).expect("in the RPM");
    vm.sh(&format!(
        "rm -f /etc/multipath/conf.d/sm-rs.conf; mkdir -p /etc/multipath/conf.d; install -m 0644 {source} {INSTALLED}"
    ))
    .expect("install the drop-in");
    let has_ours = |config: &str| config.contains("Multi-Flex") && config.contains("Axiom");
    let (config, complaints) = reconfigure(&mut vm, has_ours);
    let tool = tool_complaints(&mut vm);
    eprintln!(
        "multipathd {daemon}: show config has {} device entries; daemon log about the configuration: {complaints:#?}; multipath -t stderr: {tool:?}",
        devices(&config).len()
    );

    // Each entry of ours is in the daemon's table with every setting it gives.
    let loaded = devices(&config);
    let mut missing = Vec::new();
    for entry in &ours {
        let vendor = setting(entry, "vendor").expect("vendor");
        let product = setting(entry, "product").expect("product");
        let found = loaded.iter().any(|device| {
            entry
                .iter()
                .all(|(key, value)| setting(device, key) == Some(value.as_str()))
        });
        if !found {
            let near: Vec<&Device> = loaded
                .iter()
                .filter(|d| setting(d, "product") == Some(product))
                .collect();
            missing.push(format!(
                "{vendor} {product}: {entry:?}; the daemon's entries of that product: {near:?}"
            ));
        }
    }
    // The defaults: the WWID names both read; "strict" only 0.9.x knows (0.4.9-xs ignores the
    // line and keeps stock's "yes", which its should_multipath patch makes as strict).
    let defaults = config.split("blacklist {").next().unwrap_or("");
    let find_multipaths = defaults
        .lines()
        .find_map(|l| l.trim().strip_prefix("find_multipaths "))
        .map(|v| v.trim().trim_matches('"').to_string());
    let expected = match daemon {
        Daemon::Debian094 => "strict",
        Daemon::Dom0Xs => "yes",
    };
    vm.sh("smrs-mpathd-send 'show config' | grep -q 'user_friendly_names \"\\?no'")
        .expect("user_friendly_names no");

    // The detector sees a bad keyword: a file beside ours with one no multipathd knows.
    vm.sh("printf 'defaults {\\n\\tsmrs_no_such_keyword yes\\n}\\n' > /etc/multipath/conf.d/zz-smrs-probe.conf")
        .expect("bad file");
    let (_, probe_complaints) = reconfigure(&mut vm, has_ours);
    let probe_tool = tool_complaints(&mut vm);
    eprintln!(
        "with a bad keyword: daemon log {probe_complaints:#?}; multipath -t stderr {probe_tool:?}"
    );
    vm.sh("rm /etc/multipath/conf.d/zz-smrs-probe.conf")
        .expect("remove the bad file");
    vm.stop().expect("stop");

    assert!(
        missing.is_empty(),
        "on multipathd {daemon}, entries of the drop-in not in show config:\n  {}",
        missing.join("\n  ")
    );
    assert_eq!(
        find_multipaths.as_deref(),
        Some(expected),
        "find_multipaths on {daemon}"
    );
    assert!(
        probe_complaints
            .iter()
            .any(|l| l.contains("smrs_no_such_keyword")),
        "the daemon's log does not show a bad keyword on {daemon}: {probe_complaints:?}"
    );
    assert!(
        complaints.is_empty(),
        "multipathd {daemon} complains about the configuration with our drop-in: {complaints:?}"
    );
    // 0.9.x's tool reports a bad keyword on stderr; 0.4.9-xs's says nothing (it logs the
    // problem nowhere the caller sees), so there only the daemon's log counts.
    if probe_tool.contains("smrs_no_such_keyword") {
        assert!(
            tool.is_empty(),
            "multipath -t on {daemon} complains about the configuration with our drop-in: {tool:?}"
        );
    } else {
        eprintln!(
            "multipath -t on {daemon} does not report a bad keyword: only the daemon's log is checked"
        );
    }
}

#[test]
fn realstack_dropin_loads_on_debian_094() {
    dropin_loads(Daemon::Debian094);
}

#[test]
fn realstack_dropin_loads_on_dom0_049xs() {
    dropin_loads(Daemon::Dom0Xs);
}

#[cfg(test)]
mod parse {
    use super::*;

    #[test]
    fn reads_device_sections() {
        let text = "devices {\n\tdevice {\n\t\tvendor \"(HITACHI|HP)\"\n\t\tproduct \"^OPEN-\" # x\n\t\tno_path_retry 10\n\t}\n}\n";
        let d = devices(text);
        assert_eq!(d.len(), 1);
        assert_eq!(setting(&d[0], "vendor"), Some("(HITACHI|HP)"));
        assert_eq!(setting(&d[0], "no_path_retry"), Some("10"));
    }
}
