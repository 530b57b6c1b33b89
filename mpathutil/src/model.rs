//! The topology model: map → path groups → paths, as multipathd reports them.
//!
//! Every field a source may lack is an `Option`: `show maps json` has no size and no H:C:T:L,
//! the topology text has no per-path priority or WWNs, the 0.4.x text has no device state.
//! State words are enums holding every word multipath-tools prints; a word we do not know is
//! kept verbatim in `Unknown` so nothing is lost and nothing panics.
//!
//! Text fields are [`CompactString`]s: almost every value multipathd prints (device names,
//! WWNs, adapters, vendor strings) fits its inline buffer, so a topology of thousands of
//! paths is read without an allocation per field.

pub use compact_str::CompactString;
use serde::{Serialize, Serializer};
use std::fmt;

/// Defines a state-word enum: known words map to variants, anything else to `Unknown(word)`.
macro_rules! state_words {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)+
            /// A word this version of sm-rs does not know, kept as printed.
            Unknown(String),
        }

        impl $name {
            /// Parses a state word exactly as multipath-tools prints it.
            pub fn from_word(word: &str) -> Self {
                match word {
                    $($word => Self::$variant,)+
                    other => Self::Unknown(other.to_string()),
                }
            }

            /// The word as multipath-tools prints it.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $word,)+
                    Self::Unknown(word) => word,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

state_words! {
    /// A map's device-mapper state (`%t` of a map).
    MapDmState { Active = "active", Suspend = "suspend", Undef = "undef" }
}

state_words! {
    /// Whether the map is writable (`%r`, `wp=`).
    WriteProt { Rw = "rw", Ro = "ro", Undef = "undef" }
}

state_words! {
    /// The kernel's view of a path (`%t` of a path): the last `A`/`F` of the status line.
    PathDmState { Active = "active", Failed = "failed", Undef = "undef" }
}

state_words! {
    /// The path checker's verdict (`%T`, `chk_st`).
    CheckerState {
        Ready = "ready",
        Faulty = "faulty",
        Shaky = "shaky",
        Ghost = "ghost",
        IoPending = "i/o pending",
        IoTimeout = "i/o timeout",
        Delayed = "delayed",
        Disconnected = "disconnected",
        Undef = "undef",
    }
}

state_words! {
    /// The SCSI device state from sysfs (`%o`, `dev_st`).
    ///
    /// multipath-tools prints `unknown` for a path that belongs to no map: that is `Orphan`.
    DevState { Running = "running", Offline = "offline", Orphan = "unknown" }
}

state_words! {
    /// A path group's kernel state (`status=`, group `dm_st`).
    GroupState { Active = "active", Enabled = "enabled", Disabled = "disabled", Undef = "undef" }
}

state_words! {
    /// Marginal path groups (`marginal_st`).
    Marginal { Normal = "normal", Marginal = "marginal" }
}

/// Host:Channel:Target:LUN of a SCSI path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hcil {
    pub host: u32,
    pub channel: u32,
    pub target: u32,
    pub lun: u64,
}

impl Hcil {
    /// Parses `h:c:t:l`; `#:#:#:#` (no SCSI address) and anything malformed give `None`.
    pub fn parse(text: &str) -> Option<Self> {
        // By hand: this runs for every path line of every topology.
        let mut fields = [0u64; 4];
        let mut field = 0;
        let mut digits = 0;
        for b in text.bytes() {
            match b {
                b'0'..=b'9' => {
                    fields[field] = fields[field]
                        .checked_mul(10)?
                        .checked_add(u64::from(b - b'0'))?;
                    digits += 1;
                }
                b':' if digits > 0 && field < 3 => {
                    field += 1;
                    digits = 0;
                }
                _ => return None,
            }
        }
        if field != 3 || digits == 0 {
            return None;
        }
        Some(Self {
            host: u32::try_from(fields[0]).ok()?,
            channel: u32::try_from(fields[1]).ok()?,
            target: u32::try_from(fields[2]).ok()?,
            lun: fields[3],
        })
    }
}

impl fmt::Display for Hcil {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.host, self.channel, self.target, self.lun
        )
    }
}

impl Serialize for Hcil {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Written without `fmt`: a topology has thousands of these.
        let mut text = CompactString::default();
        for (i, n) in [
            u64::from(self.host),
            u64::from(self.channel),
            u64::from(self.target),
            self.lun,
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                text.push(':');
            }
            text.push_str(itoa::Buffer::new().format(n));
        }
        s.serialize_str(&text)
    }
}

/// Everything multipathd reported in one read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Topology {
    pub maps: Vec<Map>,
}

impl Topology {
    /// The map whose name or WWID is `id`.
    pub fn map(&self, id: &str) -> Option<&Map> {
        self.maps.iter().find(|m| m.wwid == id || m.name == id)
    }
}

/// One multipath map (a dm-multipath device).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Map {
    /// The alias, or the WWID when user_friendly_names is off (as on XenServer).
    pub name: CompactString,
    /// The WWID; on XenServer this is the SCSIid.
    pub wwid: CompactString,
    /// `dm-N`, or `None` when multipathd printed `undef` or did not say.
    pub sysfs: Option<CompactString>,
    pub vendor: Option<CompactString>,
    pub product: Option<CompactString>,
    pub revision: Option<CompactString>,
    /// As multipath prints it, e.g. `100G`.
    pub size: Option<CompactString>,
    /// The feature words, e.g. `1 queue_if_no_path`.
    pub features: Option<CompactString>,
    pub hwhandler: Option<CompactString>,
    pub write_prot: Option<WriteProt>,
    pub dm_state: Option<MapDmState>,
    /// `%Q`: `off`, `on`, `-`, `N sec`, `N chk`.
    pub queueing: Option<CompactString>,
    pub failback: Option<CompactString>,
    /// The last configure action (`create`, `reload`, …), when multipathd said.
    pub action: Option<CompactString>,
    /// Paths multipathd itself counts as usable (`%N`: checker up or ghost).
    pub usable_paths_reported: Option<u32>,
    pub path_faults: Option<u64>,
    pub groups: Vec<PathGroup>,
}

impl Map {
    /// Whether I/O queues when no path is left (`queue_if_no_path` in the features).
    pub fn queue_if_no_path(&self) -> bool {
        self.features
            .as_deref()
            .is_some_and(|f| f.split_whitespace().any(|w| w == "queue_if_no_path"))
    }

    /// Every path of every group, in group order.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.groups.iter().flat_map(|g| g.paths.iter())
    }

    /// The shape of the map on one line, for log lines and comparisons:
    /// `<prio> <status> [<hcil> <dev> <dev_t> <dm> <chk>, …] | …`, one part per group.
    pub fn describe(&self) -> String {
        fn word<T: fmt::Display>(value: Option<T>) -> String {
            value.map_or_else(|| "?".to_string(), |v| v.to_string())
        }
        self.groups
            .iter()
            .map(|g| {
                let paths: Vec<String> = g
                    .paths
                    .iter()
                    .map(|p| {
                        format!(
                            "{} {} {} {} {}",
                            word(p.hcil),
                            word(p.dev.as_deref()),
                            word(p.dev_t.as_deref()),
                            word(p.dm_state.as_ref()),
                            word(p.checker_state.as_ref()),
                        )
                    })
                    .collect();
                format!(
                    "{} {} [{}]",
                    word(g.priority),
                    word(g.state.as_ref()),
                    paths.join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

/// A path group: the kernel uses one group at a time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathGroup {
    /// The path selector with its argument count, e.g. `service-time 0`.
    pub selector: Option<CompactString>,
    pub priority: Option<i32>,
    pub state: Option<GroupState>,
    pub marginal: Option<Marginal>,
    pub paths: Vec<Path>,
}

/// One path to the LUN: a SCSI device through one initiator port and one target port.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Path {
    pub hcil: Option<Hcil>,
    /// Kernel name, e.g. `sdb`; `None` when multipathd printed `-`.
    pub dev: Option<CompactString>,
    /// `major:minor`.
    pub dev_t: Option<CompactString>,
    pub dm_state: Option<PathDmState>,
    pub checker_state: Option<CheckerState>,
    pub dev_state: Option<DevState>,
    pub checker: Option<CompactString>,
    pub priority: Option<i32>,
    pub host_wwnn: Option<CompactString>,
    pub target_wwnn: Option<CompactString>,
    pub host_wwpn: Option<CompactString>,
    pub target_wwpn: Option<CompactString>,
    pub host_adapter: Option<CompactString>,
    pub lun_hex: Option<CompactString>,
    pub marginal: Option<Marginal>,
}
