//! The code under test against the real daemon: the host's `mpathutil` binary, run in the
//! guest from the 9p share, must say what the guest's multipathd says, in every state.
//!
//! `list` and `status` are compared byte for byte with `show maps json` names and
//! `show topology`; `status --json`, `count` and `paths` field by field with `show maps json`,
//! the guest's disks (H:C:T:L) and an oracle of the counting rule written here from its
//! specification (`mpathutil/src/health.rs`, module documentation), not from its code:
//!
//! - a path the kernel failed (`dm_st failed`) is failed, whatever its checker says;
//! - else by checker state: `ready` active, `ghost` standby, `faulty`/`shaky`/`disconnected`
//!   failed, `i/o pending`/`i/o timeout`/`delayed`/`undef` pending, any other word failed;
//! - `active` counts every path that is not failed, `total` the paths listed, `max` the most
//!   paths listed since the map appeared (a map that disappears is forgotten);
//! - health: `down` with no active path, `degraded` with fewer than `max`, else `ok`.
//!
//! The outputs are compared with the settled view of the daemon taken just before; an output
//! that differs gets a second chance against a fresh view (a checker tick may fall between). Where multipathd prints `##` (it
//! does not know), `mpathutil`'s JSON has `null`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::{Error, Result};
use super::multipathd::{Map, MapPath, Snapshot};
use super::scenario::StateCheck;
use super::vm::Vm;

/// Where the guest keeps `mpathutil`'s state (`SM_RS_ROOT`): fresh with every boot.
const GUEST_ROOT: &str = "/run/smrs-root";

/// The verdict the rule gives one path.
pub fn verdict(path: &MapPath) -> &'static str {
    if path.dm_st == "failed" {
        return "failed";
    }
    match path.chk_st.as_str() {
        "ready" => "active",
        "ghost" => "standby",
        "i/o pending" | "i/o timeout" | "delayed" | "undef" => "pending",
        _ => "failed",
    }
}

fn health(active: u32, max: u32) -> &'static str {
    if active == 0 {
        "down"
    } else if active < max {
        "degraded"
    } else {
        "ok"
    }
}

/// `[active, total]` of a map by the rule.
fn counts(map: &Map) -> (u32, u32) {
    let mut active = 0;
    let mut total = 0;
    for (_, path) in map.all_paths() {
        total += 1;
        if verdict(path) != "failed" {
            active += 1;
        }
    }
    (active, total)
}

/// Runs `mpathutil` in the guest and checks it at every state it is shown.
pub struct MpathutilCheck {
    binary: String,
    /// The high-water marks the rule predicts (WWID → most paths listed).
    max: BTreeMap<String, u32>,
    /// States checked so far.
    pub states: usize,
}

impl MpathutilCheck {
    /// `binary` is the guest path of the `mpathutil` under test (see `Stack::guest_binary`).
    pub fn new(vm: &mut Vm, binary: &str) -> Result<MpathutilCheck> {
        vm.sh(&format!("rm -rf {GUEST_ROOT} && mkdir -p {GUEST_ROOT}"))?;
        Ok(MpathutilCheck {
            binary: binary.to_string(),
            max: BTreeMap::new(),
            states: 0,
        })
    }

    /// Runs `list`, `status`, `status --json`, `count` and `paths` and compares each with
    /// the daemon's own view `settled` (taken just before); `state` names the state in errors.
    pub fn check(&mut self, vm: &mut Vm, state: &str, settled: &Snapshot) -> Result<()> {
        let outputs = self.run_all(vm)?;

        // The ledger saw the maps of this state: the rule's high-water marks follow.
        let mut max = BTreeMap::new();
        for map in &settled.maps.maps {
            let (_, total) = counts(map);
            let known = self.max.get(&map.uuid).copied().unwrap_or(0);
            max.insert(map.uuid.clone(), known.max(total));
        }
        self.max = max;

        let mut later: Option<Snapshot> = None;
        for (args, stdout) in &outputs {
            let Err(why) = self.compare(args, stdout, settled) else {
                continue;
            };
            // a checker tick may have fallen between the snapshot and the run: look again
            if later.is_none() {
                later = Some(Snapshot::take(vm)?);
            }
            if let Some(view) = &later
                && self.compare(args, stdout, view).is_err()
            {
                return Err(Error::Protocol(format!(
                    "mpathutil {args} disagrees with multipathd in state '{state}': {why}\n\
                     --- mpathutil {args}:\n{stdout}\n--- show topology:\n{}\n--- show maps json:\n{}",
                    settled.topology_text, settled.maps_json_text
                )));
            }
        }
        self.states += 1;
        Ok(())
    }

    /// Runs every subcommand in one guest command (a round trip costs more than a run);
    /// returns each one's stdout, or the first failure.
    fn run_all(&self, vm: &mut Vm) -> Result<Vec<(&'static str, String)>> {
        const SUBCOMMANDS: [&str; 5] = ["list", "status", "status --json", "count", "paths"];
        let dir = "/run/smrs-mpathutil";
        let mut script = format!("rm -rf {dir}; mkdir -p {dir}; ");
        for (i, args) in SUBCOMMANDS.iter().enumerate() {
            script.push_str(&format!(
                "SM_RS_ROOT={GUEST_ROOT} {} --wait 10 {args} >{dir}/{i}.out 2>{dir}/{i}.err; \
                 echo $? >{dir}/{i}.rc; ",
                self.binary
            ));
        }
        // each run as: RS rc NL stdout US stderr (ASCII record and unit separators)
        script.push_str(&format!(
            "for i in 0 1 2 3 4; do printf '\\036%s\\n' \"$(cat {dir}/$i.rc)\"; cat {dir}/$i.out; \
             printf '\\037'; cat {dir}/$i.err; done"
        ));
        let out = vm.sh(&script)?;
        let chunks: Vec<&str> = out.split('\u{1e}').skip(1).collect();
        if chunks.len() != SUBCOMMANDS.len() {
            return Err(Error::Protocol(format!(
                "mpathutil runs came back garbled: {out:?}"
            )));
        }
        let mut outputs = Vec::new();
        for (args, chunk) in SUBCOMMANDS.iter().zip(chunks) {
            let (rc, rest) = chunk.split_once('\n').unwrap_or((chunk, ""));
            let (stdout, stderr) = rest.split_once('\u{1f}').unwrap_or((rest, ""));
            if rc.trim() != "0" {
                return Err(Error::Command {
                    cmd: format!("mpathutil {args}"),
                    rc: rc.trim().parse().unwrap_or(-1),
                    timed_out: false,
                    stdout: stdout.to_string(),
                    stderr: stderr.to_string(),
                });
            }
            outputs.push((*args, stdout.to_string()));
        }
        Ok(outputs)
    }

    fn compare(
        &self,
        args: &str,
        stdout: &str,
        view: &Snapshot,
    ) -> std::result::Result<(), String> {
        match args {
            "list" => {
                let want: String = view
                    .maps
                    .maps
                    .iter()
                    .map(|m| format!("{}\n", m.name))
                    .collect();
                same_text(stdout, &want)
            }
            "status" => {
                let mut want = format!("show topology\n{}", view.topology_raw);
                if !want.ends_with('\n') {
                    want.push('\n');
                }
                same_text(stdout, &want)
            }
            "status --json" => self.compare_json(stdout, view),
            "count" => {
                let want: String = view
                    .maps
                    .maps
                    .iter()
                    .map(|m| {
                        let (active, _) = counts(m);
                        let max = self.max_of(m);
                        format!("{} [{active}, {max}] {}\n", m.uuid, health(active, max))
                    })
                    .collect();
                same_text(stdout, &want)
            }
            "paths" => self.compare_paths(stdout, view),
            other => Err(format!("no comparison for `{other}`")),
        }
    }

    fn max_of(&self, map: &Map) -> u32 {
        self.max.get(&map.uuid).copied().unwrap_or(0)
    }

    fn compare_json(&self, stdout: &str, view: &Snapshot) -> std::result::Result<(), String> {
        let got: Value = serde_json::from_str(stdout).map_err(|e| format!("not JSON: {e}"))?;
        let maps = got["maps"].as_array().ok_or("no \"maps\" array")?;
        if maps.len() != view.maps.maps.len() {
            return Err(format!(
                "{} maps, multipathd has {}",
                maps.len(),
                view.maps.maps.len()
            ));
        }
        for (m, real) in maps.iter().zip(&view.maps.maps) {
            let (active, total) = counts(real);
            let max = self.max_of(real);
            let expect = [
                ("name", Value::from(real.name.as_str())),
                ("wwid", real.uuid.as_str().into()),
                ("sysfs", real.sysfs.as_str().into()),
                ("vendor", known(&real.vend)),
                ("product", known(&real.prod)),
                ("features", real.features.as_str().into()),
                ("hwhandler", real.hwhandler.as_str().into()),
                ("dm_state", real.dm_st.as_str().into()),
                ("active", active.into()),
                ("total", total.into()),
                ("max", max.into()),
                ("health", health(active, max).into()),
            ];
            for (key, want) in expect {
                if m[key] != want {
                    return Err(format!(
                        "{}: {key} is {}, multipathd says {want}",
                        real.name, m[key]
                    ));
                }
            }
            let groups = m["groups"].as_array().ok_or("no groups array")?;
            if groups.len() != real.path_groups.len() {
                return Err(format!(
                    "{}: {} groups, multipathd has {}",
                    real.name,
                    groups.len(),
                    real.path_groups.len()
                ));
            }
            for (g, rg) in groups.iter().zip(&real.path_groups) {
                let expect = [
                    ("group", Value::from(rg.group)),
                    ("selector", rg.selector.as_str().into()),
                    ("priority", rg.pri.into()),
                    ("state", rg.dm_st.as_str().into()),
                ];
                for (key, want) in expect {
                    if g[key] != want {
                        return Err(format!(
                            "{} group {}: {key} is {}, not {want}",
                            real.name, rg.group, g[key]
                        ));
                    }
                }
                let paths = g["paths"].as_array().ok_or("no paths array")?;
                let rpaths: Vec<&MapPath> = rg.paths.iter().collect();
                if paths.len() != rpaths.len() {
                    return Err(format!(
                        "{} group {}: {} paths, not {}",
                        real.name,
                        rg.group,
                        paths.len(),
                        rpaths.len()
                    ));
                }
                for (p, rp) in paths.iter().zip(rpaths) {
                    let hcil = view
                        .disks
                        .iter()
                        .find(|d| d.dev == rp.dev)
                        .map_or(Value::Null, |d| d.hctl.as_str().into());
                    let expect = [
                        ("dev", Value::from(rp.dev.as_str())),
                        ("dev_t", rp.dev_t.as_str().into()),
                        ("hcil", hcil),
                        ("dm_state", rp.dm_st.as_str().into()),
                        ("checker_state", rp.chk_st.as_str().into()),
                        ("dev_state", rp.dev_st.as_str().into()),
                        ("checker", rp.checker.as_str().into()),
                        ("priority", rp.pri.into()),
                        ("verdict", verdict(rp).into()),
                    ];
                    for (key, want) in expect {
                        if p[key] != want {
                            return Err(format!(
                                "{} path {}: {key} is {}, not {want}",
                                real.name, rp.dev, p[key]
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// `verdict map hcil dev checker-state priority group`, columns padded; the checker state
    /// may be two words.
    fn compare_paths(&self, stdout: &str, view: &Snapshot) -> std::result::Result<(), String> {
        let mut want = Vec::new();
        for map in &view.maps.maps {
            for (group, path) in map.all_paths() {
                let hcil = view
                    .disks
                    .iter()
                    .find(|d| d.dev == path.dev)
                    .map_or("#:#:#:#", |d| d.hctl.as_str());
                want.push(format!(
                    "{} {} {hcil} {} {} {} {}",
                    verdict(path),
                    map.name,
                    path.dev,
                    path.chk_st,
                    path.pri,
                    group.group
                ));
            }
        }
        let got: Vec<String> = stdout
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if got == want {
            Ok(())
        } else {
            Err(format!("paths lines {got:?}, expected {want:?}"))
        }
    }
}

/// multipathd prints `##` for what it does not know (the vendor of a map without paths);
/// `mpathutil` says `null`. 0.4.9-xs prints vendor and product as the INQUIRY data has them,
/// space-padded to 8 and 16 bytes (0.9 trims them); `mpathutil` gives them trimmed.
fn known(word: &str) -> Value {
    if word == "##" {
        Value::Null
    } else {
        word.trim_end().into()
    }
}

impl StateCheck for MpathutilCheck {
    fn state(&mut self, vm: &mut Vm, state: &str, snapshot: &Snapshot) -> Result<()> {
        self.check(vm, state, snapshot)
    }
}

fn same_text(got: &str, want: &str) -> std::result::Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("printed {got:?}, expected {want:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(dm_st: &str, chk_st: &str) -> MapPath {
        MapPath {
            dev: "sda".into(),
            dev_t: "8:0".into(),
            dm_st: dm_st.into(),
            dev_st: "running".into(),
            chk_st: chk_st.into(),
            checker: "tur".into(),
            pri: 1,
        }
    }

    #[test]
    fn the_rule_as_specified() {
        assert_eq!(verdict(&path("active", "ready")), "active");
        assert_eq!(
            verdict(&path("failed", "ready")),
            "failed",
            "the kernel's word wins"
        );
        assert_eq!(verdict(&path("active", "ghost")), "standby");
        assert_eq!(verdict(&path("active", "i/o pending")), "pending");
        assert_eq!(verdict(&path("active", "faulty")), "failed");
        assert_eq!(
            verdict(&path("active", "new-word")),
            "failed",
            "unknown words are down"
        );
        assert_eq!(health(0, 2), "down");
        assert_eq!(health(1, 2), "degraded");
        assert_eq!(health(2, 2), "ok");
    }
}
