//! The host root: every host path sm-rs touches hangs off it (DESIGN.md rule 5), so a test
//! can point the real code at a simulated host.

use std::env;
use std::path::{Path, PathBuf};

/// `SM_RS_ROOT`, or `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoot(PathBuf);

impl HostRoot {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self(root.into())
    }

    pub fn from_env() -> Self {
        match env::var_os("SM_RS_ROOT") {
            Some(root) if !root.is_empty() => Self::new(root),
            _ => Self::new("/"),
        }
    }

    /// A host path such as `/run/sm-rs` under this root.
    pub fn path(&self, host_path: impl AsRef<Path>) -> PathBuf {
        let host_path = host_path.as_ref();
        self.0
            .join(host_path.strip_prefix("/").unwrap_or(host_path))
    }

    pub fn as_path(&self) -> &Path {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_paths_hang_off_the_root() {
        assert_eq!(
            HostRoot::new("/").path("/run/sm-rs"),
            PathBuf::from("/run/sm-rs")
        );
        assert_eq!(
            HostRoot::new("/tmp/h").path("/run/sm-rs"),
            PathBuf::from("/tmp/h/run/sm-rs")
        );
        assert_eq!(
            HostRoot::new("/tmp/h").path("dev/mapper"),
            PathBuf::from("/tmp/h/dev/mapper")
        );
    }
}
