//! The reference scenario (`seeds/000_*`) replayed on the simulated fabric: controllers
//! pulled and pushed back, twice each. After every step the real `mpathutil` binary, pointed
//! at the simulator through `MULTIPATH_SOCKET_NAME`, shows what the log shows.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use mpathutil::parse::parse_topology;
use sm_testkit::bins;
use sm_testkit::multipathd_sim::{DaemonConfig, MultipathdSim};
use sm_testkit::scenarios::{SEED_STEPS, SEED_WWID, seed_fabric};
use std::path::Path;
use std::process::Command;

/// The `multipath -ll` block the log recorded after a step.
fn logged(step: &str) -> mpathutil::Map {
    let path = format!(
        "{}/../mpathutil/tests/fixtures/seed000/{step}.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    parse_topology(&text).unwrap().maps.remove(0)
}

fn mpathutil(sim: &MultipathdSim, root: &Path, args: &[&str]) -> String {
    let out = Command::new(bins::path("mpathutil"))
        .args(args)
        .env_clear()
        .env("MULTIPATH_SOCKET_NAME", sim.socket_name())
        .env("SM_RS_ROOT", root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mpathutil {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "mpathutil {args:?} said: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_seed_log_step_by_step() {
    let (fabric, array) = seed_fabric();
    let sim = MultipathdSim::start(fabric, DaemonConfig::default()).unwrap();
    let root = tempfile::tempdir().unwrap();

    for step in &SEED_STEPS {
        sim.fabric(|f| (step.apply)(f, array));
        let expected = logged(step.name);

        // status: the stock output, the echoed command then multipathd's topology.
        let status = mpathutil(&sim, root.path(), &["status"]);
        let topology = status
            .strip_prefix("show topology\n")
            .unwrap_or_else(|| panic!("{status}"));
        let shown = parse_topology(topology).unwrap().maps.remove(0);
        assert_eq!(
            shown.describe(),
            expected.describe(),
            "{}: {status}",
            step.name
        );
        for (field, got, want) in [
            ("wwid", Some(&shown.wwid), Some(&expected.wwid)),
            ("vendor", shown.vendor.as_ref(), expected.vendor.as_ref()),
            ("product", shown.product.as_ref(), expected.product.as_ref()),
            ("size", shown.size.as_ref(), expected.size.as_ref()),
            (
                "features",
                shown.features.as_ref(),
                expected.features.as_ref(),
            ),
            (
                "hwhandler",
                shown.hwhandler.as_ref(),
                expected.hwhandler.as_ref(),
            ),
        ] {
            assert_eq!(got, want, "{}: {field}", step.name);
        }
        assert_eq!(shown.write_prot, expected.write_prot, "{}", step.name);
        let selectors: Vec<_> = shown.groups.iter().map(|g| g.selector.clone()).collect();
        let logged_selectors: Vec<_> = expected.groups.iter().map(|g| g.selector.clone()).collect();
        assert_eq!(selectors, logged_selectors, "{}", step.name);

        // count: [active, max]; a pulled controller is [1, 2], never [1, 1].
        let present = expected.paths().count();
        let want = match present {
            2 => format!("{SEED_WWID} [2, 2] ok\n"),
            _ => format!("{SEED_WWID} [1, 2] degraded\n"),
        };
        assert_eq!(
            mpathutil(&sim, root.path(), &["count"]),
            want,
            "{}",
            step.name
        );

        // status --json: the same groups and paths, with the counts.
        let json: serde_json::Value =
            serde_json::from_str(&mpathutil(&sim, root.path(), &["status", "--json"])).unwrap();
        let map = &json["maps"][0];
        assert_eq!(map["wwid"], SEED_WWID);
        assert_eq!(map["active"], present);
        assert_eq!(map["total"], present);
        assert_eq!(map["max"], 2);
        assert_eq!(map["health"], if present == 2 { "ok" } else { "degraded" });
        assert_eq!(map["queue_if_no_path"], true);
        let groups = map["groups"].as_array().unwrap();
        assert_eq!(groups.len(), expected.groups.len(), "{}", step.name);
        for (group, logged) in groups.iter().zip(&expected.groups) {
            assert_eq!(group["priority"], logged.priority.unwrap(), "{}", step.name);
            assert_eq!(
                group["state"],
                logged.state.as_ref().unwrap().as_str(),
                "{}",
                step.name
            );
            for (path, logged) in group["paths"].as_array().unwrap().iter().zip(&logged.paths) {
                assert_eq!(
                    path["hcil"],
                    logged.hcil.unwrap().to_string(),
                    "{}",
                    step.name
                );
                assert_eq!(path["dev"], logged.dev.as_deref().unwrap(), "{}", step.name);
                assert_eq!(path["checker_state"], "ready", "{}", step.name);
                assert_eq!(path["verdict"], "active", "{}", step.name);
                // ALUA: one port group per controller, so a path's priority is its group's.
                assert_eq!(path["priority"], group["priority"], "{}", step.name);
            }
        }
    }
}
