//! Measured figures. Tests report them, never assert on them: under software emulation on a
//! shared 2-core machine, timings say how fast things were, not whether they are right.

use std::fs::OpenOptions;
use std::io::Write;
use std::time::Duration;

/// Prints one figure as `realstack-timing: <what>: <seconds> s` (shown by nextest for the
/// real-stack tests) and appends it to `timings.log` in the cache directory, the source of the
/// figures in the project's notes.
pub fn report(what: &str, took: Duration) {
    let line = format!("realstack-timing: {what}: {:.2} s", took.as_secs_f64());
    eprintln!("{line}");
    if let Some(cache) = super::cache_dir() {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let _ = std::fs::create_dir_all(&cache);
        if let Ok(mut log) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(cache.join("timings.log"))
        {
            let _ = writeln!(log, "{stamp} {line}");
        }
    }
}
