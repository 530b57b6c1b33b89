//! Path health: which paths count as active, and what that means for a map.
//!
//! The stock mpathcount counts a path as up unless its checker state is `faulty`, `shaky` or
//! `failed` (`sm-facts.md` §4.5); XenCenter and mpathalert read the result as `[active, max]`.
//! We keep that rule and make two choices explicit, because an administrator reads "active"
//! as "can carry I/O now":
//!
//! - a path the kernel has failed (`dm_st failed`, e.g. after `multipathd fail path`) is down
//!   even while its checker still says `ready`; the kernel sends it no I/O;
//! - a checker word we do not know is down: we do not claim a path works when we cannot tell.
//!
//! `ghost` (ALUA standby) counts as active, as in stock: the path is there and the array
//! will use it after a failover.

use crate::model::{CheckerState, Map, Path, PathDmState};
use serde::Serialize;
use std::fmt;

/// What one path is worth right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PathVerdict {
    /// Ready and used by the kernel.
    Active,
    /// An ALUA standby (`ghost`) path: usable after a failover.
    Standby,
    /// Present and not failed, but the checker has no firm answer yet (`i/o pending`,
    /// `i/o timeout`, `delayed`, `undef`): counted as active, as stock does.
    Pending,
    /// Down: faulty, shaky, disconnected, failed by the kernel, or in a state we do not know.
    Failed,
}

impl PathVerdict {
    pub fn of(path: &Path) -> Self {
        if matches!(path.dm_state, Some(PathDmState::Failed)) {
            return Self::Failed;
        }
        match &path.checker_state {
            Some(CheckerState::Ready) => Self::Active,
            Some(CheckerState::Ghost) => Self::Standby,
            Some(
                CheckerState::Faulty
                | CheckerState::Shaky
                | CheckerState::Disconnected
                | CheckerState::Unknown(_),
            ) => Self::Failed,
            Some(
                CheckerState::IoPending
                | CheckerState::IoTimeout
                | CheckerState::Delayed
                | CheckerState::Undef,
            )
            | None => Self::Pending,
        }
    }

    /// Whether the path counts toward `active` in `[active, max]`.
    pub fn counts_as_active(self) -> bool {
        self != Self::Failed
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Standby => "standby",
            Self::Pending => "pending",
            Self::Failed => "failed",
        }
    }
}

impl fmt::Display for PathVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The paths of one map, counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PathCounts {
    /// Paths that count as active (see the module rule).
    pub active: u32,
    /// Paths present in the map now.
    pub total: u32,
}

impl PathCounts {
    pub fn of(map: &Map) -> Self {
        let mut counts = Self {
            active: 0,
            total: 0,
        };
        for path in map.paths() {
            counts.total += 1;
            if PathVerdict::of(path).counts_as_active() {
                counts.active += 1;
            }
        }
        counts
    }
}

/// A map's health against the most paths it has had (`max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Every path it has had is active.
    Ok,
    /// Some path is missing or down, at least one still works.
    Degraded,
    /// No path works: I/O queues (`queue_if_no_path`) or fails.
    Down,
}

impl Health {
    pub fn judge(active: u32, max: u32) -> Self {
        if active == 0 {
            Self::Down
        } else if active < max {
            Self::Degraded
        } else {
            Self::Ok
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Degraded => "degraded",
            Self::Down => "down",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value XenCenter and mpathalert parse (`"[%d, %d]"`): one space after the comma.
pub fn path_count_value(active: u32, max: u32) -> String {
    format!("[{active}, {max}]")
}

/// Parses a `[active, max]` value as stock mpathcount writes it; anything else is `None`.
pub fn parse_path_count_value(value: &str) -> Option<(u32, u32)> {
    let inner = value.trim().strip_prefix('[')?.strip_suffix(']')?;
    let (active, max) = inner.split_once(',')?;
    Some((active.trim().parse().ok()?, max.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Path, PathGroup};

    fn path(dm: &str, chk: &str) -> Path {
        Path {
            dm_state: Some(PathDmState::from_word(dm)),
            checker_state: Some(CheckerState::from_word(chk)),
            ..Path::default()
        }
    }

    #[test]
    fn verdicts_follow_the_stock_rule_with_kernel_failures_down() {
        assert_eq!(
            PathVerdict::of(&path("active", "ready")),
            PathVerdict::Active
        );
        assert_eq!(
            PathVerdict::of(&path("active", "ghost")),
            PathVerdict::Standby
        );
        assert_eq!(
            PathVerdict::of(&path("failed", "faulty")),
            PathVerdict::Failed
        );
        assert_eq!(
            PathVerdict::of(&path("active", "shaky")),
            PathVerdict::Failed
        );
        assert_eq!(
            PathVerdict::of(&path("failed", "ready")),
            PathVerdict::Failed
        );
        assert_eq!(
            PathVerdict::of(&path("active", "i/o pending")),
            PathVerdict::Pending
        );
        assert_eq!(
            PathVerdict::of(&path("active", "sparkly")),
            PathVerdict::Failed
        );
        assert!(PathVerdict::Pending.counts_as_active());
        assert!(PathVerdict::Standby.counts_as_active());
        assert!(!PathVerdict::Failed.counts_as_active());
    }

    #[test]
    fn counts_and_health() {
        let map = Map {
            groups: vec![
                PathGroup {
                    paths: vec![path("active", "ready")],
                    ..PathGroup::default()
                },
                PathGroup {
                    paths: vec![path("failed", "faulty")],
                    ..PathGroup::default()
                },
            ],
            ..Map::default()
        };
        assert_eq!(
            PathCounts::of(&map),
            PathCounts {
                active: 1,
                total: 2
            }
        );
        assert_eq!(Health::judge(1, 2), Health::Degraded);
        assert_eq!(Health::judge(2, 2), Health::Ok);
        assert_eq!(Health::judge(0, 2), Health::Down);
        assert_eq!(Health::judge(0, 0), Health::Down);
    }

    #[test]
    fn the_value_format_is_the_contract() {
        assert_eq!(path_count_value(1, 2), "[1, 2]");
        assert_eq!(parse_path_count_value("[1, 2]"), Some((1, 2)));
        assert_eq!(parse_path_count_value("[3,4]"), Some((3, 4)));
        assert_eq!(parse_path_count_value("1/2"), None);
        assert_eq!(parse_path_count_value("[x, 2]"), None);
    }
}
