//! What the simulated multipathd knows: the paths it monitors, its maps, and the state it
//! keeps between events, derived from the fabric the way multipath-tools 0.9 derives it.
//!
//! The daemon follows the fabric through [`Daemon::sync`], its stand-in for uevents and the
//! path checker: vanished disks leave their maps, new disks join or create maps (per
//! `find_multipaths`), checker states and priorities are refreshed. As in the real daemon a
//! map's path groups are laid out only when it is (re)loaded — created, a path added or
//! removed, or, with `group_by_prio`, a usable path's priority changed — so a group keeps
//! its place while its paths fail, and the kernel's current group moves to the next group
//! with a working path.

use crate::fabric::{
    AluaState, DeviceId, Fabric, Failback, Grouping, PathFacts, Policy, Prio, StandbyTur,
};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

/// Which multipath-tools reply conventions to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyStyle {
    /// 0.9.0–0.9.7 (Debian bookworm ships 0.9.4): reasons without `fail`, bare `fail` for
    /// a busy or unknown map.
    V0_9_4,
    /// 0.9.8 and later: `fail\n` + `timeout`, `permission deny…`, `map or partition in
    /// use`, `device not found`.
    V0_9_8,
    /// The XCP-ng 8.3 / XenServer 8 dom0's device-mapper-multipath 0.4.9-136.xs8 (the RHEL 7
    /// line, upstream 67b82ad6 + the RHEL and XenServer series): its own command table (no
    /// `show map X format`, no `show path X`), the help text with no `fail` line for every
    /// command it cannot run, bare `fail` for every handler failure, `add map` that only
    /// adopts a table the kernel already has, `find_multipaths yes` narrowed to the wwids
    /// file by XenServer's `should_multipath` patch, and its printers (no `%L`/`%M`, SCSI
    /// vendor and product as sysfs pads them, JSON without `marginal_st` and `lun_hex`).
    V0_4_9Xs,
}

impl ReplyStyle {
    pub fn version_line(self) -> &'static str {
        match self {
            Self::V0_9_4 => "multipath-tools v0.9.4 (12/19, 2022)\n",
            Self::V0_9_8 => "multipath-tools v0.9.8 (02/15, 2024)\n",
            // VERSION_CODE 0x000409, DATE_CODE 0x052110, each byte printed with %d.
            Self::V0_4_9Xs => "multipath-tools v0.4.9 (05/33, 2016)\n",
        }
    }

    /// The 0.4.9-xs dialect.
    pub fn is_0_4_9(self) -> bool {
        self == Self::V0_4_9Xs
    }
}

/// `find_multipaths`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindMultipaths {
    /// `no`/`off`: every path gets a map.
    Off,
    /// `yes`/`on`: a WWID in the wwids file, or two paths with the same WWID. On 0.4.9-xs
    /// only a WWID in the wwids file (XenServer's `restrict_should_multipath_success_conditions`
    /// patch, CA-136041, drops the two-paths rule).
    On,
    /// `strict` (the built-in default of 0.9): only WWIDs in the wwids file. 0.4.9's parser
    /// knows only yes/no/1/0 and leaves the value as it was: there this acts as `On`.
    Strict,
}

/// Which peers count as root (the daemon lets only root change anything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerPolicy {
    /// By the peer's uid (SO_PEERCRED), as multipathd does; a peer of the simulator's own uid
    /// counts as root too, as a peer of the daemon's (root's) uid does.
    Credentials,
    /// Every peer is treated as non-root: lets a test running as root see the refusal.
    AllUnprivileged,
}

/// The daemon's configuration.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub style: ReplyStyle,
    pub find_multipaths: FindMultipaths,
    /// The wwids file (`/etc/multipath/wwids`), read at every decision and written when a
    /// map is created, as multipathd does.
    pub wwids_file: Option<PathBuf>,
    /// WWIDs known besides the file.
    pub wwids: BTreeSet<String>,
    pub blacklist_wwids: BTreeSet<String>,
    /// Kernel names (prefixes) that are blacklisted, e.g. `vd`.
    pub blacklist_devnodes: Vec<String>,
    pub user_friendly_names: bool,
    pub peers: PeerPolicy,
    pub pid: u32,
    /// Seconds between checks (`polling_interval`), shown in the `next_check` bar.
    pub polling_interval: u32,
    /// 0.4.9-xs only: how long `add map X` / `remove map X` hold the daemon when no
    /// device-mapper table X exists. `dm_get_minor` then reads 0:0 (`DM_DEVICE_INFO`
    /// succeeds with `exists = 0`) and `dm_mapname(0, 0)` retries `DM_DEVICE_STATUS`
    /// 24 times, 200 ms apart, under the daemon's lock: 4.8 s, longer than the 4.1 s a
    /// 0.9-style client waits for a reply. Tests that do not exercise that wait set it short.
    pub missing_map_delay: Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            style: ReplyStyle::V0_9_8,
            find_multipaths: FindMultipaths::Off,
            wwids_file: None,
            wwids: BTreeSet::new(),
            blacklist_wwids: BTreeSet::new(),
            blacklist_devnodes: Vec::new(),
            user_friendly_names: false,
            peers: PeerPolicy::Credentials,
            pid: 4242,
            polling_interval: 5,
            missing_map_delay: MISSING_MAP_DELAY_0_4_9,
        }
    }
}

impl DaemonConfig {
    /// A dom0's multipathd as XCP-ng 8.3 / XenServer 8 runs it: 0.4.9-136.xs8 with stock
    /// sm's `/etc/multipath.conf` (`find_multipaths yes`, `user_friendly_names no`, no
    /// `polling_interval`: 5 s), its devnode blacklist plus the daemon's built-in one
    /// (`^(td|hd|vd)[a-z]`, …, as prefixes). Arrays without a device entry get
    /// [`stock_sm_default_policy`]. The wwids file is the caller's to set.
    pub fn dom0() -> Self {
        Self {
            style: ReplyStyle::V0_4_9Xs,
            find_multipaths: FindMultipaths::On,
            blacklist_devnodes: [
                "ram", "raw", "loop", "fd", "md", "dm-", "sr", "scd", "st", "td", "hd", "vd",
                "dcssblk", "nvme", "scini", "rbd", "nbd", "drbd",
            ]
            .map(String::from)
            .to_vec(),
            polling_interval: 5,
            ..Self::default()
        }
    }
}

/// What 0.4.9-xs under stock sm's multipath.conf sets up for an array with no device entry
/// (a QEMU disk, tgt): its built-in defaults (failover, `service-time 0`, const prio,
/// checker `directio`, hwhandler `0`) with sm's `failback 10` and `no_path_retry 10`, which
/// puts `queue_if_no_path` in the table.
pub fn stock_sm_default_policy() -> Policy {
    Policy {
        checker: "directio".into(),
        failback: Failback::Deferred(10),
        no_path_retry: crate::fabric::NoPathRetry::Retries(10),
        features: "1 queue_if_no_path".into(),
        ..Policy::builtin()
    }
}

/// `MAX_WAIT * LOOPS_PER_SEC - 1` tries of 200 ms in 0.4.9's `dm_mapname`.
pub const MISSING_MAP_DELAY_0_4_9: Duration = Duration::from_millis(4800);

/// The tur checker's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checker {
    Up,
    Down,
    Ghost,
    Pending,
}

impl Checker {
    /// What `%T` / `chk_st` prints.
    pub fn word(self) -> &'static str {
        match self {
            Self::Up => "ready",
            Self::Down => "faulty",
            Self::Ghost => "ghost",
            Self::Pending => "i/o pending",
        }
    }

    /// The internal name `show status` counts by.
    pub fn status_name(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Ghost => "ghost",
            Self::Pending => "pending",
        }
    }

    pub fn usable(self) -> bool {
        matches!(self, Self::Up | Self::Ghost)
    }
}

/// What the checker finds on a path now.
pub fn probe(facts: &PathFacts<'_>) -> Checker {
    if facts.device.offline || !facts.transport_up {
        return Checker::Down;
    }
    match facts.alua {
        None | Some(AluaState::ActiveOptimized | AluaState::ActiveNonOptimized) => Checker::Up,
        Some(AluaState::Standby) => match facts.array.standby_tur {
            StandbyTur::Ghost => Checker::Ghost,
            StandbyTur::Ready => Checker::Up,
        },
        Some(AluaState::Unavailable) => Checker::Down,
        Some(AluaState::Transitioning) => Checker::Pending,
    }
}

/// What the prioritizer gives a path.
pub fn priority(facts: &PathFacts<'_>) -> i32 {
    match (facts.array.policy.prio, facts.alua) {
        (Prio::Const, _) | (Prio::Alua, None) => 1,
        (Prio::Alua, Some(AluaState::ActiveOptimized)) => 50,
        (Prio::Alua, Some(AluaState::ActiveNonOptimized)) => 10,
        (Prio::Alua, Some(AluaState::Standby)) => 1,
        (Prio::Alua, Some(AluaState::Unavailable | AluaState::Transitioning)) => 0,
    }
}

/// One path the daemon monitors.
#[derive(Debug, Clone)]
pub(crate) struct PathState {
    /// The last priority read while the path was usable (-1 before any).
    pub prio: i32,
    pub was_down: bool,
    /// Failed by `fail path`: the checker is off and the path shows this state (down: the
    /// real daemon marks it so on the kernel's PATH_FAILED event) until reinstated.
    pub operator_failed: Option<Checker>,
}

/// One map.
#[derive(Debug, Clone)]
pub(crate) struct MapState {
    pub wwid: String,
    pub alias: String,
    pub minor: u32,
    pub policy: Policy,
    pub size_bytes: u64,
    /// Still as created (`create: ` in the topology); any reload clears it.
    pub created: bool,
    pub map_loads: u32,
    pub path_faults: u32,
    pub switch_grp: u32,
    /// Openers of the map device (a VM's disk, a mount): a flush is refused while > 0.
    pub open: u32,
    /// Path groups as laid out at the last load.
    pub layout: Vec<Vec<DeviceId>>,
    /// The kernel's current group (index into `layout`).
    pub current: usize,
}

/// A reply that is not plain text: the daemon's error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The handler failed without saying why.
    Generic,
    Busy,
    NoDevice,
}

/// The simulated daemon.
#[derive(Debug)]
pub struct Daemon {
    pub config: DaemonConfig,
    pub(crate) pathvec: Vec<DeviceId>,
    /// The monitored paths of each WWID, in `pathvec` order.
    by_wwid: HashMap<String, Vec<DeviceId>>,
    pub(crate) paths: HashMap<DeviceId, PathState>,
    pub(crate) maps: Vec<MapState>,
    seen: HashSet<DeviceId>,
    synced: Option<u64>,
    dirty: bool,
}

impl Daemon {
    pub fn new(config: DaemonConfig) -> Self {
        Self {
            config,
            pathvec: Vec::new(),
            by_wwid: HashMap::new(),
            paths: HashMap::new(),
            maps: Vec::new(),
            seen: HashSet::new(),
            synced: None,
            dirty: true,
        }
    }

    /// The WWIDs of the daemon's maps, in creation order.
    pub fn map_wwids(&self) -> Vec<String> {
        self.maps.iter().map(|m| m.wwid.clone()).collect()
    }

    /// The names of the daemon's maps (the WWIDs without user_friendly_names).
    pub fn map_names(&self) -> Vec<String> {
        self.maps.iter().map(|m| m.alias.clone()).collect()
    }

    /// Marks a map open (as a VM's tapdisk opens it) or closes it again.
    pub fn set_open(&mut self, wwid: &str, open: bool) -> bool {
        match self.maps.iter_mut().find(|m| m.wwid == wwid) {
            Some(map) => {
                map.open = if open {
                    map.open + 1
                } else {
                    map.open.saturating_sub(1)
                };
                true
            }
            None => false,
        }
    }

    /// Follows the fabric: removals, additions, checker and priority changes, reloads,
    /// and the kernel's choice of path group.
    pub fn sync(&mut self, fabric: &Fabric) {
        if self.synced == Some(fabric.generation()) && !self.dirty {
            return;
        }
        self.synced = Some(fabric.generation());
        self.dirty = false;
        let mut reload: BTreeSet<String> = BTreeSet::new();

        // Disks the kernel removed leave the daemon and their maps.
        let gone: Vec<DeviceId> = self
            .pathvec
            .iter()
            .copied()
            .filter(|id| !fabric.device(*id).present)
            .collect();
        for id in gone {
            self.drop_path(fabric, id, &mut reload);
        }

        // New disks arrive as uevents, in the order the kernel made them; multipathd
        // merges a burst of them, so a LUN whose paths appear together gets one map.
        let arrived: Vec<DeviceId> = fabric
            .devices()
            .iter()
            .filter(|d| d.present && self.seen.insert(d.id))
            .map(|d| d.id)
            .collect();
        let mut wwids: Vec<String> = Vec::new();
        for id in arrived {
            if let Some(wwid) = self.monitor(fabric, id)
                && !wwids.contains(&wwid)
            {
                wwids.push(wwid);
            }
        }
        for wwid in wwids {
            if self.maps.iter().any(|m| m.wwid == wwid) {
                reload.insert(wwid);
            } else if self.should_multipath(&wwid) {
                self.create_map(fabric, &wwid);
            }
        }

        // The checker and the prioritizer run on every path of every map.
        for map in &mut self.maps {
            let members: Vec<DeviceId> = map.layout.iter().flatten().copied().collect();
            for id in members {
                let facts = fabric.facts(id);
                let Some(state) = self.paths.get_mut(&id) else {
                    continue;
                };
                let checker = state.operator_failed.unwrap_or_else(|| probe(&facts));
                let down = state.operator_failed.is_some() || checker == Checker::Down;
                if down && !state.was_down {
                    map.path_faults += 1;
                }
                state.was_down = down;
                if checker.usable() {
                    let prio = priority(&facts);
                    if prio != state.prio {
                        state.prio = prio;
                        if map.policy.grouping == Grouping::GroupByPrio {
                            reload.insert(map.wwid.clone());
                        }
                    }
                }
            }
        }

        for wwid in reload {
            // A map whose last path went away is flushed unless something holds it open
            // (ev_remove_path → flush_map_nopaths); an open map is reloaded empty.
            let index = self.maps.iter().position(|m| m.wwid == wwid);
            if let Some(i) = index
                && self.members(&wwid).is_empty()
                && self.flush_map(i).is_ok()
            {
                continue;
            }
            self.reload(fabric, &wwid);
        }
        self.follow_kernel(fabric);
    }

    /// Forces the next [`Daemon::sync`] to look again (after a command changed state).
    pub(crate) fn touch(&mut self) {
        self.dirty = true;
    }

    /// Starts monitoring a new disk unless it is blacklisted; returns its WWID.
    fn monitor(&mut self, fabric: &Fabric, id: DeviceId) -> Option<String> {
        let facts = fabric.facts(id);
        if self.devnode_blacklisted(&facts.device.name)
            || self.config.blacklist_wwids.contains(&facts.lun.wwid)
        {
            return None;
        }
        let checker = probe(&facts);
        if !self.paths.contains_key(&id) {
            self.pathvec.push(id);
            self.by_wwid
                .entry(facts.lun.wwid.clone())
                .or_default()
                .push(id);
        }
        self.paths.entry(id).or_insert(PathState {
            prio: if checker.usable() {
                priority(&facts)
            } else {
                -1
            },
            was_down: checker == Checker::Down,
            operator_failed: None,
        });
        Some(facts.lun.wwid.clone())
    }

    /// `add path`: monitors a path and puts it where it belongs.
    pub(crate) fn add_path(
        &mut self,
        fabric: &Fabric,
        id: DeviceId,
        reload: &mut BTreeSet<String>,
    ) {
        let Some(wwid) = self.monitor(fabric, id) else {
            return;
        };
        if self.maps.iter().any(|m| m.wwid == wwid) {
            reload.insert(wwid);
        } else if self.should_multipath(&wwid) {
            self.create_map(fabric, &wwid);
        }
    }

    /// Stops monitoring a path; its map is reloaded without it.
    pub(crate) fn drop_path(
        &mut self,
        fabric: &Fabric,
        id: DeviceId,
        reload: &mut BTreeSet<String>,
    ) {
        self.pathvec.retain(|p| *p != id);
        self.paths.remove(&id);
        let wwid = &fabric.lun(fabric.device(id).lun).wwid;
        if let Some(members) = self.by_wwid.get_mut(wwid) {
            members.retain(|p| *p != id);
        }
        if self.maps.iter().any(|m| &m.wwid == wwid) {
            reload.insert(wwid.clone());
        }
    }

    /// Creates the map of a WWID from the paths the daemon monitors.
    pub(crate) fn create_map(&mut self, fabric: &Fabric, wwid: &str) -> bool {
        if self.maps.iter().any(|m| m.wwid == wwid) {
            return true;
        }
        let Some(first) = self.members(wwid).first().copied() else {
            return false;
        };
        let facts = fabric.facts(first);
        let minor = (0..)
            .find(|n| !self.maps.iter().any(|m| m.minor == *n))
            .unwrap_or(0);
        let alias = if self.config.user_friendly_names {
            let used: BTreeSet<String> = self.maps.iter().map(|m| m.alias.clone()).collect();
            (0..)
                .map(|i| format!("mpath{}", &crate::fabric::sd_name(i)[2..]))
                .find(|a| !used.contains(a))
                .unwrap_or_default()
        } else {
            wwid.to_string()
        };
        let mut map = MapState {
            wwid: wwid.to_string(),
            alias,
            minor,
            policy: facts.array.policy.clone(),
            size_bytes: facts.lun.size_bytes,
            created: true,
            map_loads: 0,
            path_faults: 0,
            switch_grp: 0,
            open: 0,
            layout: Vec::new(),
            current: 0,
        };
        self.lay_out(fabric, &mut map);
        self.maps.push(map);
        self.remember_wwid(wwid);
        true
    }

    /// Removes a map: refused while it is open.
    pub(crate) fn flush_map(&mut self, index: usize) -> Result<(), Failure> {
        if self.maps[index].open > 0 {
            return Err(Failure::Busy);
        }
        self.maps.remove(index);
        Ok(())
    }

    /// Finds a map the way `find_mp_by_str` does before 0.9.9: `dm-N`, then the alias.
    pub(crate) fn find_map(&self, name: &str) -> Option<usize> {
        let name = name.strip_prefix("/dev/").unwrap_or(name);
        if let Some(minor) = name.strip_prefix("dm-").and_then(|n| n.parse::<u32>().ok()) {
            return self.maps.iter().position(|m| m.minor == minor);
        }
        self.maps.iter().position(|m| m.alias == name)
    }

    /// The map with this name (0.4.9's `find_mp_by_alias`, and what libdevmapper finds by
    /// name).
    pub(crate) fn find_alias(&self, name: &str) -> Option<usize> {
        self.maps.iter().position(|m| m.alias == name)
    }

    /// The monitored path with this kernel name or `major:minor`.
    pub(crate) fn find_path(&self, fabric: &Fabric, name: &str) -> Option<DeviceId> {
        let name = name.strip_prefix("/dev/").unwrap_or(name);
        self.pathvec.iter().copied().find(|id| {
            let d = fabric.device(*id);
            d.name == name || format!("{}:{}", d.dev_t.0, d.dev_t.1) == name
        })
    }

    pub(crate) fn map_of(&self, fabric: &Fabric, id: DeviceId) -> Option<usize> {
        let wwid = &fabric.lun(fabric.device(id).lun).wwid;
        self.maps.iter().position(|m| &m.wwid == wwid)
    }

    pub(crate) fn reload(&mut self, fabric: &Fabric, wwid: &str) {
        let Some(index) = self.maps.iter().position(|m| m.wwid == wwid) else {
            return;
        };
        let mut map = self.maps.remove(index);
        self.lay_out(fabric, &mut map);
        map.created = false;
        self.maps.insert(index, map);
    }

    /// `reconfigure` (multipath-tools 0.9 `configure`): every map is rebuilt from the paths
    /// the configuration allows; a map the configuration no longer allows (with
    /// `find_multipaths strict`, a WWID no longer in the wwids file) is flushed unless it is
    /// open, and an open one is kept and its WWID written back (`coalesce_maps`, then
    /// `remember_wwid` for every map kept).
    pub(crate) fn reconfigure(&mut self, fabric: &Fabric) {
        for state in self.paths.values_mut() {
            state.operator_failed = None;
        }
        if self.config.style.is_0_4_9() {
            // 0.4.9's configure builds every map afresh: its counters start again (and
            // the forced reload counts one load).
            for map in &mut self.maps {
                map.map_loads = 0;
                map.path_faults = 0;
                map.switch_grp = 0;
            }
        }
        let candidates: BTreeSet<String> = self
            .pathvec
            .iter()
            .map(|id| fabric.lun(fabric.device(*id).lun).wwid.clone())
            .collect();
        for index in (0..self.maps.len()).rev() {
            let wwid = self.maps[index].wwid.clone();
            let allowed = candidates.contains(&wwid) && self.should_multipath(&wwid);
            if !allowed && self.maps[index].open == 0 {
                self.maps.remove(index);
            }
        }
        for wwid in candidates {
            if self.maps.iter().any(|m| m.wwid == wwid) {
                self.reload(fabric, &wwid);
            } else if self.should_multipath(&wwid) {
                self.create_map(fabric, &wwid);
            }
        }
        for wwid in self.map_wwids() {
            self.remember_wwid(&wwid);
        }
        self.touch();
    }

    pub(crate) fn devnode_blacklisted(&self, name: &str) -> bool {
        self.config
            .blacklist_devnodes
            .iter()
            .any(|prefix| name.starts_with(prefix.as_str()))
    }

    /// The monitored paths of a WWID, in the daemon's order.
    pub(crate) fn members(&self, wwid: &str) -> Vec<DeviceId> {
        self.by_wwid.get(wwid).cloned().unwrap_or_default()
    }

    /// The checker state shown for a path in a map.
    pub(crate) fn checker(&self, fabric: &Fabric, id: DeviceId) -> Checker {
        self.path_view(fabric, id).0
    }

    /// A path's checker state (frozen by `fail path`, else what the checker finds), whether
    /// the kernel has it failed, and its priority, in one lookup: a listing asks this of
    /// every path.
    pub(crate) fn path_view(&self, fabric: &Fabric, id: DeviceId) -> (Checker, bool, i32) {
        let state = self.paths.get(&id);
        let frozen = state.and_then(|s| s.operator_failed);
        let checker = frozen.unwrap_or_else(|| probe(&fabric.facts(id)));
        let failed = frozen.is_some() || checker == Checker::Down;
        (checker, failed, state.map_or(-1, |s| s.prio))
    }

    /// Whether the kernel has the path failed.
    pub(crate) fn dm_failed(&self, fabric: &Fabric, id: DeviceId) -> bool {
        self.path_view(fabric, id).1
    }

    pub(crate) fn prio(&self, id: DeviceId) -> i32 {
        self.paths.get(&id).map_or(-1, |s| s.prio)
    }

    /// A group's priority: the mean over its usable paths, 0 without any.
    pub(crate) fn group_prio(&self, fabric: &Fabric, group: &[DeviceId]) -> (i32, usize) {
        let usable: Vec<i32> = group
            .iter()
            .filter(|id| self.checker(fabric, **id).usable())
            .map(|id| self.prio(*id))
            .collect();
        if usable.is_empty() {
            (0, 0)
        } else {
            (
                usable.iter().sum::<i32>() / usable.len() as i32,
                usable.len(),
            )
        }
    }

    fn lay_out(&self, fabric: &Fabric, map: &mut MapState) {
        let members = self.members(&map.wwid);
        let mut groups: Vec<Vec<DeviceId>> = match map.policy.grouping {
            Grouping::Failover => members.iter().map(|id| vec![*id]).collect(),
            Grouping::Multibus => {
                if members.is_empty() {
                    Vec::new()
                } else {
                    vec![members.clone()]
                }
            }
            Grouping::GroupByPrio => {
                let mut groups: Vec<Vec<DeviceId>> = Vec::new();
                for id in &members {
                    match groups
                        .iter_mut()
                        .find(|g| self.prio(g[0]) == self.prio(*id))
                    {
                        Some(group) => group.push(*id),
                        None => groups.push(vec![*id]),
                    }
                }
                groups
            }
        };
        // sort_pathgroups: by priority, then usable paths, keeping the order of equals.
        let keys: Vec<(i32, usize)> = groups.iter().map(|g| self.group_prio(fabric, g)).collect();
        let mut order: Vec<usize> = (0..groups.len()).collect();
        order.sort_by(|a, b| keys[*b].cmp(&keys[*a]));
        let mut sorted: Vec<Vec<DeviceId>> = Vec::with_capacity(groups.len());
        for i in order {
            sorted.push(std::mem::take(&mut groups[i]));
        }
        map.layout = sorted;
        map.current = self.best_group(fabric, &map.layout);
        map.map_loads += 1;
    }

    /// `select_path_group`: the highest priority with usable paths, more of them on a tie.
    fn best_group(&self, fabric: &Fabric, layout: &[Vec<DeviceId>]) -> usize {
        let mut best: Option<(usize, i32, usize)> = None;
        for (i, group) in layout.iter().enumerate() {
            let (prio, usable) = self.group_prio(fabric, group);
            if usable == 0 {
                continue;
            }
            match best {
                Some((_, p, u)) if prio < p || (prio == p && usable <= u) => {}
                _ => best = Some((i, prio, usable)),
            }
        }
        best.map_or(0, |(i, _, _)| i)
    }

    /// The kernel leaves a group without working paths for the next one that has some; with
    /// `failback immediate` multipathd switches back to the best group as soon as it works.
    fn follow_kernel(&mut self, fabric: &Fabric) {
        for index in 0..self.maps.len() {
            let map = &self.maps[index];
            let works = |g: &Vec<DeviceId>| g.iter().any(|id| !self.dm_failed(fabric, *id));
            let mut current = map.current;
            if map.layout.get(current).is_some_and(|g| !works(g))
                && let Some(next) = map.layout.iter().position(works)
            {
                current = next;
            }
            let mut switches = 0;
            // The simulator has no clock: a deferred failback is shown done (the state
            // N + 1 seconds on), never pending.
            if matches!(
                map.policy.failback,
                Failback::Immediate | Failback::Deferred(_)
            ) {
                let best = self.best_group(fabric, &map.layout);
                if best != current && map.layout.get(best).is_some_and(works) {
                    current = best;
                    switches = 1;
                }
            }
            let map = &mut self.maps[index];
            map.current = current;
            map.switch_grp += switches;
        }
    }

    fn should_multipath(&self, wwid: &str) -> bool {
        match self.config.find_multipaths {
            FindMultipaths::Off => true,
            FindMultipaths::Strict => self.known_wwids().contains(wwid),
            // XenServer's patch: the wwids file is a white list.
            FindMultipaths::On if self.config.style.is_0_4_9() => self.known_wwids().contains(wwid),
            FindMultipaths::On => {
                self.known_wwids().contains(wwid) || self.members(wwid).len() >= 2
            }
        }
    }

    /// The wwids the daemon knows: its configuration and the wwids file (`/<wwid>/` lines).
    pub(crate) fn known_wwids(&self) -> BTreeSet<String> {
        let mut known = self.config.wwids.clone();
        if let Some(text) = self
            .config
            .wwids_file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
        {
            for line in text.lines() {
                let line = line.trim();
                if let Some(wwid) = line.strip_prefix('/').and_then(|l| l.strip_suffix('/')) {
                    known.insert(wwid.to_string());
                }
            }
        }
        known
    }

    /// multipathd records the WWID of every map it creates in the wwids file, appending
    /// under an fcntl write lock on the whole file as `libmultipath/wwids.c` does (a writer
    /// that does not lock loses other writers' lines).
    fn remember_wwid(&mut self, wwid: &str) {
        use std::io::{Read, Seek, SeekFrom, Write};
        let Some(path) = self.config.wwids_file.clone() else {
            return;
        };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let Ok(mut file) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
        else {
            return;
        };
        if rustix::fs::fcntl_lock(&file, rustix::fs::FlockOperation::LockExclusive).is_err() {
            return;
        }
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        let listed = text.lines().any(|l| {
            l.trim_start()
                .strip_prefix('/')
                .and_then(|r| r.split_once('/'))
                .is_some_and(|(w, _)| w == wwid)
        });
        if !listed && !self.config.wwids.contains(wwid) {
            let mut add = String::new();
            if text.is_empty() {
                add.push_str("# Multipath wwids, Version : 1.0\n# NOTE: This file is automatically maintained by multipath and multipathd.\n# You should not need to edit this file in normal circumstances.\n#\n# Valid WWIDs:\n");
            }
            add.push_str(&format!("/{wwid}/\n"));
            if file.seek(SeekFrom::End(0)).is_ok() {
                let _ = file.write_all(add.as_bytes());
            }
        }
        let _ = rustix::fs::fcntl_lock(&file, rustix::fs::FlockOperation::Unlock);
    }
}
