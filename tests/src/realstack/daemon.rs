//! Which multipathd a guest runs. One image carries both (`tests/realstack/build-image.sh`);
//! the kernel command line picks one (`smrs.daemon=`, read by `tests/realstack/guest/init`).

use std::fmt;

/// The multipathd of a test VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Daemon {
    /// Debian bookworm's multipath-tools 0.9.4 with the guest's own multipath.conf
    /// (`find_multipaths no`: every LUN gets a map at boot).
    #[default]
    Debian094,
    /// The dom0's device-mapper-multipath 0.4.9-136.xs8 (XCP-ng 8.3 / XenServer 8), with stock
    /// sm's /etc/multipath.conf and custom.conf and our drop-in: a LUN gets a map only once
    /// its WWID is listed in /etc/multipath/wwids.
    Dom0Xs,
}

impl Daemon {
    pub const ALL: [Daemon; 2] = [Daemon::Debian094, Daemon::Dom0Xs];

    /// The name the image and the guest's init know it by.
    pub fn name(self) -> &'static str {
        match self {
            Daemon::Debian094 => "debian-0.9.4",
            Daemon::Dom0Xs => "dom0-0.4.9-xs",
        }
    }

    /// Short label for reports and messages.
    pub fn label(self) -> &'static str {
        match self {
            Daemon::Debian094 => "0.9.4",
            Daemon::Dom0Xs => "0.4.9-xs",
        }
    }

    /// Path checker interval: the guest's conf sets 2 s for 0.9.4; stock sm's conf leaves
    /// 0.4.9 at its default of 5 s (and backs off to 4 x 5 s for healthy paths).
    pub fn polling_interval(self) -> u32 {
        match self {
            Daemon::Debian094 => 2,
            Daemon::Dom0Xs => 5,
        }
    }

    /// Whether a LUN gets a map at boot, before anything lists its WWID.
    pub fn maps_at_boot(self) -> bool {
        self == Daemon::Debian094
    }
}

impl fmt::Display for Daemon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_init_and_the_builder_know_both_names() {
        let dir = super::super::image::inputs_dir();
        let init = std::fs::read_to_string(dir.join("guest/init")).expect("init");
        let builder = std::fs::read_to_string(dir.join("build-image.sh")).expect("builder");
        for daemon in Daemon::ALL {
            assert!(init.contains(&format!("{})", daemon.name())), "{daemon}");
            assert!(
                builder.contains(&format!("\"{}\"", daemon.name())),
                "{daemon}"
            );
        }
    }
}
