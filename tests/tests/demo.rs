//! The README's demo (`cargo run -p sm-testkit --bin sm-demo`) runs to its end, and shows the
//! PBD's path count following a pulled and pushed controller by itself, the agent running.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use sm_testkit::bins;
use sm_testkit::scenarios::SEED_WWID;
use std::process::Command;

#[test]
fn the_demo_shows_the_count_following_a_pull_and_a_push_by_itself() {
    let output = Command::new(bins::path("sm-demo")).output().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}\n{errors}");
    let step = |n: u32| {
        let start = text.find(&format!("\n[{n}] ")).unwrap();
        let end = text[start + 1..]
            .find("\n[")
            .map_or(text.len(), |e| start + 1 + e);
        &text[start..end]
    };
    assert!(step(3).contains("systemctl start sm-mpath-agent"));
    let key = format!("mpath-{SEED_WWID}");
    assert!(step(5).contains(&format!("{key}: [1, 2]")), "{}", step(5));
    assert!(step(5).contains("degraded"), "{}", step(5));
    assert!(step(6).contains(&format!("{key}: [2, 2]")), "{}", step(6));
    assert!(
        !text.contains("sr-update uuid"),
        "no sr-update step:\n{text}"
    );
    assert!(step(8).contains("PATH HAS FAILED"), "{}", step(8));
    assert!(step(8).contains("PATH HAS RECOVERED"), "{}", step(8));
    let last = text.lines().last().unwrap();
    assert!(last.contains("`cargo xtask test`"), "{last}");
    assert!(!last.contains("nextest"), "{last}");
}
