//! Benchmarks of the path agent, not tests (`--run-ignored only`): figures are printed.
//!
//! - a controller pulled and pushed back at 256 LUNs in use × 2 paths: latency from the
//!   uevents to xapi's acknowledgement of each key, and the XenAPI calls made;
//! - a flap storm on one LUN: the agent's CPU time and peak RSS, writes per key.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use common::*;
use sm_testkit::agent_lab::tap::XapiTap;
use sm_testkit::agent_lab::uevents::KernelView;
use sm_testkit::agent_lab::{AgentProc, wait_until};
use sm_testkit::fabric::{Fabric, LunSpec};
use sm_testkit::lab::Lab;
use sm_testkit::multipathd_sim::ReplyStyle;
use sm_testkit::scenarios::seed_fabric;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The seed array with `luns` LUNs: two paths each (one per controller), SAS.
fn seed_like(luns: usize) -> Fabric {
    let (mut fabric, array) = seed_fabric();
    for i in 1..luns {
        fabric.add_lun(
            array,
            LunSpec {
                lun: i as u64,
                wwid: format!("2220200015{i:07x}"),
                size_bytes: 16 << 30,
                serial: format!("S{i:08}"),
            },
        );
    }
    fabric.scan();
    fabric
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Applies a change, sends its uevents, waits for every key to read `want`; per-key
/// latency from the first uevent to xapi's answer to the key's last write, and the calls.
fn storm(
    lab: &Lab,
    tap: &XapiTap,
    agent: &AgentProc,
    sr: &xenapi::Ref<xenapi::refs::Sr>,
    keys: &[String],
    want: &str,
    change: impl FnOnce(&mut Fabric),
) {
    let sim = &lab.host(0).sim;
    let relay = agent.relay();
    let before = KernelView::read(sim);
    sim.fabric(change);
    let after = KernelView::read(sim);
    let events = relay.events_between(&before, &after);
    let from = Instant::now();
    let t0 = Instant::now();
    for e in &events {
        relay.send(e);
    }
    let sent = t0.elapsed();
    wait_until("every key", || {
        let config = lab.pbd_other_config(0, sr);
        keys.iter()
            .all(|k| config.get(k).map(String::as_str) == Some(want))
    });
    let done = t0.elapsed();
    let calls = tap.calls_since(from);
    let mut last: BTreeMap<String, Instant> = BTreeMap::new();
    for c in &calls {
        if let Some(k) = c.key().filter(|k| k.starts_with("mpath-")) {
            last.insert(k.to_string(), c.answered);
        }
    }
    let mut latencies: Vec<Duration> = last.values().map(|a| *a - t0).collect();
    latencies.sort();
    let writes = calls.iter().filter(|c| c.is_write()).count();
    println!(
        "{want}: {} uevents sent in {:.1} ms; all {} keys right after {:.0} ms; per key from \
         the uevents to xapi's answer: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; XenAPI calls \
         {} ({writes} writes, {:.2} per changed key)",
        events.len(),
        sent.as_secs_f64() * 1e3,
        keys.len(),
        done.as_secs_f64() * 1e3,
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
        calls.len(),
        calls.len() as f64 / keys.len() as f64,
    );
}

#[test]
#[ignore = "benchmark: cargo nextest run -p sm-testkit --test agent_bench --run-ignored only --no-capture"]
fn bench_a_controller_pulled_at_256_luns() {
    const LUNS: usize = 256;
    let lab = lab_with(1, || seed_like(LUNS), ReplyStyle::V0_9_8);
    multipath_on(&lab, 0);
    let sr = lab.create_sr("lunohba", "Seed", &[]).unwrap();
    let tap = XapiTap::in_front_of(&lab).unwrap();
    let agent = AgentProc::start(&lab, 0, &tap, &[]);
    let vdis = lab.claim_all(&sr).unwrap();
    assert_eq!(vdis.len(), LUNS);
    let started = Instant::now();
    for (vdi, _, _) in &vdis {
        lab.attach(0, vdi).unwrap();
    }
    let keys: Vec<String> = vdis.iter().map(|(_, _, l)| format!("mpath-{l}")).collect();
    wait_until("all attached counts", || {
        let config = lab.pbd_other_config(0, &sr);
        keys.iter()
            .all(|k| config.get(k).map(String::as_str) == Some("[2, 2]"))
    });
    println!(
        "{LUNS} LUNs attached and published in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let array = seed_fabric().1;
    let from = Instant::now();
    agent.kick_passes(2);
    let (cpu, _) = agent.usage().unwrap();
    let t = Instant::now();
    agent.kick_passes(10);
    let (cpu2, rss) = agent.usage().unwrap();
    println!(
        "a consistent pass at {LUNS} LUNs: {} XenAPI calls; about {:.1} ms of CPU per pass \
         ({} passes in {:.0} ms); last pass {:.1} ms; peak RSS {rss} KiB",
        tap.calls_since(from).len(),
        (cpu2 - cpu).as_secs_f64() * 1e3 / 10.0,
        10,
        t.elapsed().as_secs_f64() * 1e3,
        agent.health()["last_pass_ms"].as_f64().unwrap_or(0.0),
    );
    // Let the last kick's pass go by, so the storm's first pass is the uevents'.
    std::thread::sleep(Duration::from_secs(1));
    storm(&lab, &tap, &agent, &sr, &keys, "[1, 2]", |f| {
        f.pull_controller(array, "SCM2")
    });
    std::thread::sleep(Duration::from_secs(1));
    storm(&lab, &tap, &agent, &sr, &keys, "[2, 2]", |f| {
        f.push_controller(array, "SCM2");
    });
    // Stock mpathcount for the same storm, from its code (sm-facts.md §4.5): per run
    // login, host.get_by_uuid, host.get_other_config, PBD.get_all_records_where, then per
    // PBD SR.get_type and SR.get_sm_config, then 4 calls per changed key (remove and add
    // of `multipathed` and of the key), logout; one `multipathd -k` process per LUN.
    let stock = 6 + 2 + 4 * LUNS;
    println!(
        "stock mpathcount, one run for this storm: {stock} XenAPI calls and {LUNS} multipathd \
         processes (each further kick that lands during a run costs another {} calls)",
        8
    );
}

#[test]
#[ignore = "benchmark: cargo nextest run -p sm-testkit --test agent_bench --run-ignored only --no-capture"]
fn bench_a_flap_storm() {
    let lab = lab_with(1, || seed_fabric().0, ReplyStyle::V0_9_8);
    multipath_on(&lab, 0);
    let sr = lab.create_sr("lunohba", "Seed", &[]).unwrap();
    let tap = XapiTap::in_front_of(&lab).unwrap();
    let agent = AgentProc::start(&lab, 0, &tap, &[]);
    let vdi = lab.claim(&sr, SEED).unwrap();
    lab.attach(0, &vdi).unwrap();
    let key = format!("mpath-{SEED}");
    wait_until("the count", || {
        lab.pbd_other_config(0, &sr).get(&key).map(String::as_str) == Some("[2, 2]")
    });
    let sim = &lab.host(0).sim;
    let array = seed_fabric().1;
    let relay = agent.relay();
    // The two events of one flap, as the kernel sends them.
    let up = KernelView::read(sim);
    sim.fabric(|f| f.fail_port(array, "SCM2-P0"));
    let down = KernelView::read(sim);
    sim.fabric(|f| f.restore_port(array, "SCM2-P0"));
    let failed = relay.events_between(&up, &down);
    let back = relay.events_between(&down, &up);
    assert!(!failed.is_empty() && !back.is_empty());
    let (cpu0, _) = agent.usage().unwrap();
    let from = Instant::now();
    let start = Instant::now();
    let mut flaps = 0u64;
    while start.elapsed() < Duration::from_secs(10) {
        let fail = flaps.is_multiple_of(2);
        sim.fabric(|f| {
            if fail {
                f.fail_port(array, "SCM2-P0")
            } else {
                f.restore_port(array, "SCM2-P0")
            }
        });
        for e in if fail { &failed } else { &back } {
            relay.send(e);
        }
        flaps += 1;
        // 1000 a second at most.
        let due = start + Duration::from_micros(1000 * flaps);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let elapsed = start.elapsed();
    // End on a failed path: the final state must say so.
    sim.fabric(|f| f.fail_port(array, "SCM2-P0"));
    for e in &failed {
        relay.send(e);
    }
    wait_until("the final state", || {
        lab.pbd_other_config(0, &sr).get(&key).map(String::as_str) == Some("[1, 2]")
    });
    agent.kick_passes(2);
    let (cpu, rss) = agent.usage().unwrap();
    let writes = tap
        .calls_since(from)
        .iter()
        .filter(|c| c.is_write() && c.key() == Some(key.as_str()))
        .count();
    println!(
        "{flaps} flaps in {:.1} s ({:.0}/s): agent CPU {:.2} s, peak RSS {rss} KiB, {} passes, \
         {writes} XenAPI writes of the key ({:.1}/s; bound: one value per pass, a pass at most \
         every debounce = 200 ms, so ≤ 2 calls × 5 passes/s = 10 calls/s), final value {}",
        elapsed.as_secs_f64(),
        flaps as f64 / elapsed.as_secs_f64(),
        (cpu - cpu0).as_secs_f64(),
        agent.counter("passes"),
        writes as f64 / elapsed.as_secs_f64(),
        lab.pbd_other_config(0, &sr)[&key],
    );
}
