//! The workspace's binaries, for tests that run them as a person or xapi would.

use std::path::PathBuf;

/// The path of a workspace binary built next to the running test (`target/<profile>/`).
///
/// `cargo nextest run --workspace` (and `cargo test --workspace`) builds every binary of
/// the workspace before running tests; a missing binary means it was not built.
pub fn path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the running test has a path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a target directory");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is not built: run `cargo build -p {name}` (or the workspace tests) first",
        bin.display()
    );
    bin
}
