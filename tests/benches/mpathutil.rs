//! What multipath costs sm-rs at scale: 1024 maps × 4 paths (4096 disks).
//!
//! - parsing `show maps json` (beside serde_json reading the same reply) and the topology
//!   text, in process;
//! - whole `mpathutil status --json` and `mpathutil count` processes against the simulated
//!   multipathd, as an administrator (or a script) runs them.
//!
//! The whole-process benchmarks run the release binary:
//! `cargo build --release -p mpathutil && cargo bench -p sm-testkit --bench mpathutil`.

#![allow(clippy::unwrap_used)] // Benchmark code: a failed unwrap is a failed run.

use criterion::{Criterion, criterion_group, criterion_main};
use mpathutil::parse::{parse_maps_json, parse_topology};
use mpathutil::{Config, Multipathd};
use sm_testkit::bins;
use sm_testkit::multipathd_sim::{DaemonConfig, MultipathdSim};
use sm_testkit::scenarios::large_fabric;
use std::hint::black_box;
use std::process::Command;

const MAPS: usize = 1024;

fn parse(c: &mut Criterion) {
    let sim = MultipathdSim::start(large_fabric(MAPS), DaemonConfig::default()).unwrap();
    let mut daemon = Multipathd::connect(&Config::for_socket(sim.socket_name())).unwrap();
    let json = daemon.send("show maps json").unwrap();
    let topology = daemon.topology_text().unwrap();
    eprintln!(
        "show maps json: {} bytes; show topology: {} bytes",
        json.len(),
        topology.len()
    );
    assert_eq!(parse_maps_json(&json).unwrap().maps.len(), MAPS);
    assert_eq!(parse_topology(&topology).unwrap().maps.len(), MAPS);

    // Each parse writes its model into fresh memory, as a one-shot reader's does, and
    // is dropped outside the timing (`iter_with_large_drop`). With a drop after every
    // parse, glibc handed the freed model back to the kernel or kept it depending on the
    // thresholds earlier frees in the process had set: the same parse measured 3.0 ms in
    // one bench process and 5.2 ms in the next, 400 page faults apart.
    c.bench_function("parse show maps json (1024 maps x 4 paths)", |b| {
        b.iter_with_large_drop(|| parse_maps_json(black_box(&json)).unwrap())
    });
    // The peer, side by side: the same reply read by serde_json into its generic value
    // tree, as a tool without a reader of its own would read it. The ratio between the
    // two holds when this machine's speed drifts.
    c.bench_function("peer: serde_json::Value of show maps json", |b| {
        b.iter_with_large_drop(|| {
            serde_json::from_str::<serde_json::Value>(black_box(&json)).unwrap()
        })
    });
    c.bench_function("parse show topology (1024 maps x 4 paths)", |b| {
        b.iter_with_large_drop(|| parse_topology(black_box(&topology)).unwrap())
    });
}

fn whole_process(c: &mut Criterion) {
    let sim = MultipathdSim::start(large_fabric(MAPS), DaemonConfig::default()).unwrap();
    let root = tempfile::tempdir().unwrap();
    let binary = bins::path("mpathutil");
    let run = |args: &[&str]| {
        let out = Command::new(&binary)
            .args(args)
            .env_clear()
            .env("MULTIPATH_SOCKET_NAME", sim.socket_name())
            .env("SM_RS_ROOT", root.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout.len()
    };
    let mut group = c.benchmark_group("whole process, 1024 maps x 4 paths");
    group.sample_size(30);
    group.bench_function("mpathutil status --json", |b| {
        b.iter(|| run(&["status", "--json"]))
    });
    group.bench_function("mpathutil count", |b| b.iter(|| run(&["count"])));
    group.finish();
}

criterion_group!(benches, parse, whole_process);
criterion_main!(benches);
