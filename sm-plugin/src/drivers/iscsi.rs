//! `lunoiscsi`: LUNs through software iSCSI (open-iscsi), the way stock BaseISCSI reaches
//! them (`sm-facts.md` §4.8).
//!
//! Plug, all under one deadline ([`CONNECT_DEADLINE`]): iscsid started if it is not
//! running; every configured portal's name resolved and a short TCP connect tried on all
//! of them at once ([`portal`]); SendTargets discovery on every one that answered, at once
//! (an iBFT boot target's node records kept safe around it); then log in, at once, to every
//! portal of the target that answers a TCP connect when multipathing (or
//! `multihomed=true`), to the first configured portal that answered otherwise (by address:
//! a target given by name matches the addresses the name resolves to). Portals that do not
//! answer are skipped and named in the log; the plug fails only when none works.
//! `node.session.timeo.replacement_timeout` 15 with multipathing (fail a dead path fast,
//! multipath queues), 144 without (ride out a portal failover), each changed only from the
//! other well-known value or 120, so an administrator's own value stays; CHAP (and mutual
//! CHAP) set or cleared on every node. Next to stock: every iscsiadm run holds stock's
//! iscsiadm lock (shared by the threads of one call, so the logins stay parallel);
//! set-iscsi-initiator's lock is held from the initiator-name check until the logins are
//! done; the user is recorded in `/run/sr-ref/<iqn>` before the logins. Unplug: log out
//! when the last user of the target lets go (`/run/sr-ref/<iqn>`, shared with stock). A session is a SCSI host; the SR's LUNs are the
//! disks on the hosts of its targets' sessions.

use crate::drivers::Ctx;
use crate::drivers::luns::{self, Lun, xml_escape};
use crate::errors::{Code, SrError};
use crate::host::iscsiadm::{self, Chap, IscsiError, Node, Portal};
use crate::host::portal::{self, Check};
use crate::host::{ibft, initiator, iscsid, lock, srref, sysfs, udev};
use crate::multipath::setting::Setting;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// The whole connect of a plug or probe (name resolution, TCP checks, discoveries,
/// logins) ends by then: the worst a single iscsiadm call could take before, now the bound
/// of them all, since xapi holds a host-wide lock meanwhile and has no timeout of its own.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(120);

const DEFAULT_PORT: u16 = 3260;
const MPATH_REPLACEMENT_TIMEOUT: &str = "15";
const DEFAULT_REPLACEMENT_TIMEOUT: &str = "144";
const STANDARD_REPLACEMENT_TIMEOUT: &str = "120";
const REPLACEMENT_TIMEOUT: &str = "node.session.timeo.replacement_timeout";

/// The device_config of an iSCSI SR.
#[derive(Debug, Clone)]
pub struct Config {
    pub portals: Vec<Portal>,
    /// `None`: not given (probe lists the targets); `Some("*")`: every target found.
    pub target_iqn: Option<String>,
    pub chap: Option<Chap>,
    /// Mutual CHAP: how the target proves itself to us (`incoming_chapuser`,
    /// `incoming_chappassword[_secret]`); used only with `chap`, as stock does.
    pub incoming_chap: Option<Chap>,
    pub multihomed: Option<bool>,
    pub filter: Vec<String>,
}

impl Config {
    pub fn read(ctx: &Ctx<'_>) -> Result<Self, SrError> {
        let call = ctx.call;
        let target = call.config("target").ok_or_else(|| {
            SrError::with(
                Code::ConfigTargetMissing,
                "device-config:target names no portal",
            )
        })?;
        let port = match call.config("port") {
            None => DEFAULT_PORT,
            Some(p) => p
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| {
                    SrError::with(Code::ISCSIPort, format!("device-config:port is {p:?}"))
                })?,
        };
        let portals: Vec<Portal> = target
            .split(',')
            .filter(|t| !t.trim().is_empty())
            .map(|t| {
                Portal::parse(t, port).ok_or_else(|| {
                    SrError::with(
                        Code::ConfigTargetMissing,
                        format!("cannot read portal {t:?} of device-config:target"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        if portals.is_empty() {
            return Err(SrError::with(
                Code::ConfigTargetMissing,
                "device-config:target names no portal",
            ));
        }
        let chap = read_chap(ctx, "")?;
        let incoming_chap = read_chap(ctx, "incoming_")?;
        if chap.is_none() && incoming_chap.is_some() {
            // Mutual CHAP is the target proving itself after we proved ourselves: without
            // chapuser there is nothing for it to answer (stock ignores it the same way).
            tracing::warn!(
                "device-config:incoming_chapuser is ignored: mutual CHAP needs chapuser and \
                 chappassword too"
            );
        }
        let multihomed = call.config("multihomed").map(|v| v == "true");
        Ok(Self {
            portals,
            target_iqn: call.config("targetIQN").map(str::to_string),
            chap,
            incoming_chap,
            multihomed,
            filter: luns::scsiid_filter(call.config("SCSIid")),
        })
    }

    fn wants(&self, iqn: &str) -> bool {
        match self.target_iqn.as_deref() {
            None | Some("*") => true,
            Some(t) => t == iqn,
        }
    }
}

/// `<prefix>chapuser` with `<prefix>chappassword` or `<prefix>chappassword_secret` (a
/// xapi secret's uuid); the password is registered for scrubbing before anything else.
fn read_chap(ctx: &Ctx<'_>, prefix: &str) -> Result<Option<Chap>, SrError> {
    let call = ctx.call;
    let user = call.config(&format!("{prefix}chapuser"));
    let given = call.config(&format!("{prefix}chappassword"));
    let secret_uuid = call.config(&format!("{prefix}chappassword_secret"));
    let secret = match (user, given, secret_uuid) {
        (Some(_), Some(secret), _) => secret.to_string(),
        (Some(_), None, Some(uuid)) => ctx.xapi()?.secret_value(uuid)?,
        _ => return Ok(None),
    };
    crate::host::log::protect(&secret);
    Ok(Some(Chap {
        user: user.unwrap_or_default().to_string(),
        secret,
    }))
}

fn iscsi_error(code: Code, what: &str, e: &IscsiError) -> SrError {
    SrError::with(code, format!("{what}: {e}"))
}

/// How many iscsiadm runs go at once: every portal of an array at once, while a
/// `targetIQN=*` SR on an array with a target per LUN (hundreds of nodes) does not flood
/// iscsid with as many logins.
const AT_ONCE: usize = 16;

/// `work` on every item, up to [`AT_ONCE`] at a time; the results in the items' order
/// (`None` only where a worker died).
fn on_each<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<Option<R>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    thread::scope(|s| {
        for _ in 0..items.len().min(AT_ONCE) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let result = work(item);
                    results.lock().unwrap_or_else(PoisonError::into_inner)[i] = Some(result);
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(PoisonError::into_inner)
}

/// What the configured portals gave: each one's check, the nodes their discoveries
/// reported, and the discoveries that failed.
struct Discovered {
    checks: Vec<Check>,
    nodes: Vec<Node>,
    failures: Vec<(Portal, IscsiError)>,
}

impl Discovered {
    /// The configured portals that did not answer, and why.
    fn unreachable(&self) -> Vec<(Portal, String)> {
        self.checks
            .iter()
            .filter_map(|c| {
                c.answered
                    .as_ref()
                    .err()
                    .map(|w| (c.portal.clone(), w.clone()))
            })
            .collect()
    }
}

/// Resolves and checks every configured portal, then runs SendTargets discovery on every
/// one that answered, all at once; an error when none answered.
fn discover_all(ctx: &Ctx<'_>, config: &Config, deadline: Instant) -> Result<Discovered, SrError> {
    let checks = portal::check_all(&config.portals, deadline);
    let reached: Vec<Portal> = checks.iter().filter_map(Check::reached).collect();
    if reached.is_empty() {
        return Err(unreachable_error(
            &checks
                .iter()
                .map(|c| {
                    (
                        c.portal.clone(),
                        c.answered.clone().err().unwrap_or_default(),
                        c.unresolved(),
                    )
                })
                .collect::<Vec<_>>(),
        ));
    }
    let saved = ibft::save(&ctx.root);
    let results = on_each(&reached, |portal| {
        iscsiadm::discover(portal, config.chap.as_ref(), deadline)
    });
    if let Some(saved) = saved {
        saved.restore(&ctx.root);
    }
    let mut nodes = Vec::new();
    let mut failures = Vec::new();
    for (portal, result) in reached.into_iter().zip(results) {
        match result.unwrap_or_else(|| Ok(Vec::new())) {
            Ok(found) => {
                for node in found {
                    if !nodes.contains(&node) {
                        nodes.push(node);
                    }
                }
            }
            Err(e) => {
                tracing::warn!("discovery on {portal} failed: {e}");
                failures.push((portal, e));
            }
        }
    }
    Ok(Discovered {
        checks,
        nodes,
        failures,
    })
}

/// No portal answered: 140 when no name resolved, else 141; every portal and why.
fn unreachable_error(portals: &[(Portal, String, bool)]) -> SrError {
    let code = if portals.iter().all(|(_, _, unresolved)| *unresolved) {
        Code::DNSError
    } else {
        Code::ISCSITarget
    };
    let detail: Vec<String> = portals
        .iter()
        .map(|(p, why, _)| format!("portal {p} is unreachable ({why})"))
        .collect();
    SrError::with(code, detail.join("; "))
}

/// The error for "no portal answered": unreachable portals are 141, refused CHAP 68,
/// anything else 83; the opterr names every portal and what iscsiadm said.
fn discovery_error(failures: &[(Portal, IscsiError)]) -> SrError {
    let code = if failures.iter().all(|(_, e)| {
        matches!(
            e.status(),
            Some(iscsiadm::ERR_TRANS | iscsiadm::ERR_TRANS_TIMEOUT)
        )
    }) {
        Code::ISCSITarget
    } else if failures
        .iter()
        .any(|(_, e)| matches!(e.status(), Some(iscsiadm::ERR_LOGIN_AUTH_FAILED)))
    {
        Code::ISCSILogin
    } else {
        Code::ISCSIDiscovery
    };
    let detail: Vec<String> = failures
        .iter()
        .map(|(p, e)| format!("discovery on portal {p}: {e}"))
        .collect();
    SrError::with(code, detail.join("; "))
}

/// The target list a probe without `targetIQN` prints on stderr (stock `print_entries`).
fn targets_xml(nodes: &[Node]) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" ?>\n<iscsi-target-iqns>\n");
    let mut entries: Vec<(String, u16, String)> = nodes
        .iter()
        .map(|n| (n.portal.address.clone(), n.portal.port, n.iqn.clone()))
        .collect();
    // Stock ends the list with a wildcard entry for "every target".
    if let Some(first) = nodes.first() {
        entries.push((first.portal.address.clone(), first.portal.port, "*".into()));
    }
    for (index, (address, port, iqn)) in entries.iter().enumerate() {
        xml.push_str(&format!(
            "\t<TGT>\n\t\t<Index>{index}</Index>\n\t\t<IPAddress>{}</IPAddress>\n",
            xml_escape(address)
        ));
        if *port != DEFAULT_PORT {
            xml.push_str(&format!("\t\t<Port>{port}</Port>\n"));
        }
        xml.push_str(&format!(
            "\t\t<TargetIQN>{}</TargetIQN>\n\t</TGT>\n",
            xml_escape(iqn)
        ));
    }
    xml.push_str("</iscsi-target-iqns>\n");
    xml
}

/// Makes sure iscsid uses the host's initiator name.
fn ensure_initiator(ctx: &Ctx<'_>) -> Result<(), SrError> {
    let iqn = match ctx.call.config("localIQN") {
        Some(iqn) => iqn.to_string(),
        None => ctx
            .host_other_config()?
            .get("iscsi_iqn")
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or_else(|| {
                SrError::with(
                    Code::ConfigISCSIIQNMissing,
                    "host.other_config:iscsi_iqn is not set",
                )
            })?,
    };
    if initiator::current(&ctx.root).as_deref() == Some(iqn.as_str()) {
        return Ok(());
    }
    if !sysfs::iscsi_sessions(&ctx.root).is_empty() {
        return Err(SrError::with(
            Code::ISCSILogin,
            format!(
                "iscsid runs with initiator name {:?} and has sessions, but this host's IQN is \
                 {iqn}: log the sessions out or fix host.other_config:iscsi_iqn",
                initiator::current(&ctx.root).unwrap_or_default()
            ),
        ));
    }
    let alias = ctx
        .host_other_config()
        .ok()
        .and_then(|c| c.get("hostname").cloned())
        .unwrap_or_else(|| "xenserver".into());
    initiator::set(&ctx.root, &iqn, &alias).map_err(|e| {
        SrError::with(
            Code::ISCSILogin,
            format!("setting the initiator name {iqn}: {e}"),
        )
    })
}

/// Makes sure iscsid runs (stock starts it when it is not active).
fn ensure_iscsid() -> Result<(), SrError> {
    iscsid::ensure_running().map(drop).map_err(|e| {
        SrError::with(
            Code::ISCSIQueryDaemon,
            format!("iscsid is not running and cannot be started: {e}"),
        )
    })
}

/// Plugs the SR: logs in as the setting says; returns the target IQNs logged in to.
pub fn attach(
    ctx: &Ctx<'_>,
    config: &Config,
    setting: Setting,
    sr_uuid: &str,
) -> Result<Vec<String>, SrError> {
    let started = Instant::now();
    let deadline = started + CONNECT_DEADLINE;
    ensure_iscsid()?;
    if config.target_iqn.is_none() {
        return Err(missing_target(ctx, config, deadline));
    }
    // xapi's set-iscsi-initiator must not change the name between our check and our logins.
    let left = deadline.saturating_duration_since(Instant::now());
    let initiator_lock = lock::initiator(&ctx.root, left).map_err(|e| {
        SrError::with(
            Code::ISCSILogin,
            format!("taking the initiator name lock of set-iscsi-initiator: {e}"),
        )
    })?;
    ensure_initiator(ctx)?;
    let found = discover_all(ctx, config, deadline)?;
    let nodes: Vec<Node> = found
        .nodes
        .iter()
        .filter(|n| config.wants(&n.iqn))
        .cloned()
        .collect();
    if nodes.is_empty() {
        if found.failures.is_empty() {
            return Err(SrError::with(
                Code::ISCSIDiscovery,
                format!(
                    "the portals {} report no target {} (probe without targetIQN to list them)",
                    portal_list(&config.portals),
                    config.target_iqn.as_deref().unwrap_or("*")
                ),
            ));
        }
        return Err(discovery_error(&found.failures));
    }
    let all_portals = config.multihomed.unwrap_or(setting.multipath());
    let chosen: Vec<&Node> = if all_portals {
        nodes.iter().collect()
    } else {
        // The first configured portal that answered; by address, as a name stands for
        // the addresses it resolves to.
        let Some(first) = found.checks.iter().find(|c| c.answered.is_ok()) else {
            return Err(discovery_error(&found.failures));
        };
        let chosen: Vec<&Node> = nodes
            .iter()
            .filter(|n| first.stands_for(&n.portal.address))
            .collect();
        if chosen.is_empty() {
            return Err(SrError::with(
                Code::ISCSIDiscovery,
                format!(
                    "portal {} does not report itself for the target; set multihomed=true or name another portal",
                    first.portal
                ),
            ));
        }
        chosen
    };
    // The TCP check of every chosen portal the configured ones did not already cover.
    let mut answered: BTreeMap<SocketAddr, Result<(), String>> = BTreeMap::new();
    for check in &found.checks {
        match &check.answered {
            Ok(address) => {
                answered.insert(*address, Ok(()));
            }
            Err(why) => {
                for address in &check.addresses {
                    answered.entry(*address).or_insert_with(|| Err(why.clone()));
                }
            }
        }
    }
    let known = |p: &Portal| p.address.parse().ok().map(|ip| SocketAddr::new(ip, p.port));
    let unchecked: Vec<Portal> = chosen
        .iter()
        .map(|n| n.portal.clone())
        .filter(|p| known(p).is_none_or(|a| !answered.contains_key(&a)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut unreachable: Vec<(Portal, String)> = found.unreachable();
    for check in portal::check_all(&unchecked, deadline) {
        match (&check.answered, known(&check.portal)) {
            (Ok(_), Some(address)) => {
                answered.insert(address, Ok(()));
            }
            (Ok(_), None) => {}
            (Err(why), address) => {
                if let Some(address) = address {
                    answered.insert(address, Err(why.clone()));
                }
                unreachable.push((check.portal.clone(), why.clone()));
            }
        }
    }
    let (reachable, skipped): (Vec<&Node>, Vec<&Node>) = chosen.into_iter().partition(|n| {
        known(&n.portal).is_none_or(|a| answered.get(&a).is_some_and(Result::is_ok))
    });
    for node in &skipped {
        tracing::warn!(
            "skipping portal {} of {}: it does not answer a TCP connect",
            node.portal,
            node.iqn
        );
    }
    if reachable.is_empty() {
        return Err(SrError::with(
            Code::ISCSITarget,
            format!(
                "no portal of the target answers: {}",
                unreachable
                    .iter()
                    .map(|(p, why)| format!("portal {p} is unreachable ({why})"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ));
    }
    let targets: BTreeSet<String> = reachable.iter().map(|n| n.iqn.clone()).collect();
    // Counted as a user before the login, not after as stock does: a stock detach between a
    // login and the count would see no user and log out the session we are about to use.
    for iqn in &targets {
        if let Err(e) = srref::add(&ctx.root, iqn, sr_uuid) {
            let_go(ctx, targets.iter(), sr_uuid);
            return Err(SrError::with(
                Code::SMGeneral,
                format!("recording {} as a user of {iqn}: {e}", user_name(sr_uuid)),
            ));
        }
    }
    let login = Login {
        config,
        setting,
        deadline,
        started,
    };
    let logged_in = match login.log_in(&targets, &reachable, &unreachable) {
        Ok(logged_in) => logged_in,
        Err(e) => {
            let_go(ctx, targets.iter(), sr_uuid);
            return Err(e);
        }
    };
    let_go(ctx, targets.difference(&logged_in), sr_uuid);
    drop(initiator_lock);
    // A login makes the kernel scan the target; let udev make the links.
    udev::settle(Duration::from_secs(30));
    wait_for_sessions(ctx, &logged_in);
    // Sessions that were already there (another SR's, or a plug before) were not scanned
    // by the login: LUNs mapped since would stay unseen (stock: `refresh_luns`).
    let targets: Vec<String> = logged_in.iter().cloned().collect();
    rescan(ctx, &targets);
    Ok(targets)
}

/// The name of a user of a target in messages: an SR, or a call of ours.
fn user_name(user: &str) -> String {
    match user.split_once(" sm-rs ") {
        Some((_, call)) => format!("this call ({call})"),
        None => format!("SR {user}"),
    }
}

/// Drops the user from targets it did not log in to (no logout: it made no session).
fn let_go<'a>(ctx: &Ctx<'_>, targets: impl Iterator<Item = &'a String>, user: &str) {
    for iqn in targets {
        if let Err(e) = srref::remove(&ctx.root, iqn, user) {
            tracing::warn!("dropping {} as a user of {iqn}: {e}", user_name(user));
        }
    }
}

/// What the logins of one plug go by.
struct Login<'a> {
    config: &'a Config,
    setting: Setting,
    deadline: Instant,
    started: Instant,
}

impl Login<'_> {
    /// Sets the timeouts of the targets, then the CHAP of every reachable node and logs in
    /// to it, all nodes at once; the targets logged in to (at least one).
    fn log_in(
        &self,
        targets: &BTreeSet<String>,
        reachable: &[&Node],
        unreachable: &[(Portal, String)],
    ) -> Result<BTreeSet<String>, SrError> {
        let deadline = self.deadline;
        for iqn in targets {
            set_replacement_timeout(iqn, reachable, self.setting.multipath(), deadline)?;
        }
        let chap = (
            self.config.chap.as_ref(),
            self.config.incoming_chap.as_ref(),
        );
        let results = on_each(reachable, |node| {
            set_chap(node, chap.0, chap.1, deadline)
                .and_then(|()| iscsiadm::login(&node.iqn, &node.portal, deadline))
        });
        let mut logged_in = BTreeSet::new();
        let mut login_failures = Vec::new();
        for (node, result) in reachable.iter().zip(results) {
            let result = result.unwrap_or_else(|| {
                Err(IscsiError::Failed {
                    command: format!("login to {} on {}", node.iqn, node.portal),
                    status: -1,
                    said: "not run".into(),
                })
            });
            match result {
                Ok(()) => {
                    logged_in.insert(node.iqn.clone());
                }
                Err(e) => {
                    tracing::warn!("login to {} on {} failed: {e}", node.iqn, node.portal);
                    login_failures.push((*node, e));
                }
            }
        }
        if logged_in.is_empty() {
            let auth = login_failures.iter().any(|(_, e)| {
                matches!(
                    e.status(),
                    Some(
                        iscsiadm::ERR_LOGIN_AUTH_FAILED
                            | iscsiadm::ERR_LOGIN
                            | iscsiadm::ERR_FATAL_LOGIN
                    )
                )
            });
            let code = if auth {
                Code::ISCSILogin
            } else {
                Code::ISCSITarget
            };
            let mut detail: Vec<String> = login_failures
                .iter()
                .map(|(n, e)| format!("login to {} on portal {}: {e}", n.iqn, n.portal))
                .collect();
            detail.extend(
                unreachable
                    .iter()
                    .map(|(p, why)| format!("portal {p} skipped, unreachable ({why})")),
            );
            return Err(SrError::with(code, detail.join("; ")));
        }
        let logged = reachable.len() - login_failures.len();
        let elapsed = self.started.elapsed().as_millis();
        if unreachable.is_empty() {
            tracing::info!(
                "logged in through {logged} of {} portal(s) in {elapsed} ms",
                reachable.len(),
            );
        } else {
            tracing::warn!(
                "logged in through {logged} of {} reachable portal(s) in {elapsed} ms; skipped \
                 the unreachable portal(s) {}",
                reachable.len(),
                unreachable
                    .iter()
                    .map(|(p, _)| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Ok(logged_in)
    }
}

/// Asks the SCSI host of every session to the targets to scan for LUNs (`- - -`), and lets
/// udev catch up: how LUNs mapped after the login appear (stock `BaseISCSI.refresh`).
pub fn rescan(ctx: &Ctx<'_>, targets: &[String]) {
    let hosts: BTreeSet<u32> = sysfs::iscsi_sessions(&ctx.root)
        .into_iter()
        .filter(|s| targets.contains(&s.target_iqn))
        .map(|s| s.host)
        .collect();
    if hosts.is_empty() {
        return;
    }
    for host in &hosts {
        if let Err(e) = sysfs::rescan(&ctx.root, *host) {
            tracing::warn!("rescan of iSCSI session host {host} failed: {e}");
        }
    }
    udev::settle(Duration::from_secs(30));
}

fn wait_for_sessions(ctx: &Ctx<'_>, targets: &BTreeSet<String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let up: BTreeSet<String> = sysfs::iscsi_sessions(&ctx.root)
            .into_iter()
            .map(|s| s.target_iqn)
            .collect();
        if targets.iter().all(|t| up.contains(t)) {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    tracing::warn!("not every session shows in sysfs 10 s after login");
}

fn portal_list(portals: &[Portal]) -> String {
    portals
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// CHAP on one node: set (with the target's credentials for mutual CHAP, when given) or
/// cleared, so a node never keeps credentials the SR no longer names.
fn set_chap(
    node: &Node,
    chap: Option<&Chap>,
    incoming: Option<&Chap>,
    deadline: Instant,
) -> Result<(), IscsiError> {
    let p = Some(&node.portal);
    let set = |name: &str, value: &str, secret: bool| {
        iscsiadm::set(&node.iqn, p, name, value, secret, deadline)
    };
    match chap {
        Some(chap) => {
            set("node.session.auth.authmethod", "CHAP", false)?;
            set("node.session.auth.username", &chap.user, false)?;
            set("node.session.auth.password", &chap.secret, true)?;
            match incoming {
                Some(incoming) => {
                    set("node.session.auth.username_in", &incoming.user, false)?;
                    set("node.session.auth.password_in", &incoming.secret, true)
                }
                None => {
                    set("node.session.auth.username_in", "", false)?;
                    set("node.session.auth.password_in", "", false)
                }
            }
        }
        None => {
            set("node.session.auth.authmethod", "None", false)?;
            for name in [
                "node.session.auth.username",
                "node.session.auth.password",
                "node.session.auth.username_in",
                "node.session.auth.password_in",
            ] {
                set(name, "", false)?;
            }
            Ok(())
        }
    }
}

/// 15 s with multipathing, 144 s without; an administrator's own value is kept.
fn set_replacement_timeout(
    iqn: &str,
    nodes: &[&Node],
    multipath: bool,
    deadline: Instant,
) -> Result<(), SrError> {
    let Some(node) = nodes.iter().find(|n| n.iqn == iqn) else {
        return Ok(());
    };
    let current = iscsiadm::settings(iqn, &node.portal, deadline)
        .ok()
        .and_then(|s| {
            s.into_iter()
                .find(|(k, _)| k == REPLACEMENT_TIMEOUT)
                .map(|(_, v)| v)
        })
        .unwrap_or_else(|| STANDARD_REPLACEMENT_TIMEOUT.to_string());
    let (wanted, replaceable) = if multipath {
        (
            MPATH_REPLACEMENT_TIMEOUT,
            [DEFAULT_REPLACEMENT_TIMEOUT, STANDARD_REPLACEMENT_TIMEOUT],
        )
    } else {
        (
            DEFAULT_REPLACEMENT_TIMEOUT,
            [MPATH_REPLACEMENT_TIMEOUT, STANDARD_REPLACEMENT_TIMEOUT],
        )
    };
    if current == wanted {
        return Ok(());
    }
    if !replaceable.contains(&current.as_str()) {
        tracing::info!("{iqn}: keeping the administrator's replacement_timeout {current}");
        return Ok(());
    }
    // No portal: every portal of the target shares it (stock does the same).
    iscsiadm::set(iqn, None, REPLACEMENT_TIMEOUT, wanted, false, deadline).map_err(|e| {
        iscsi_error(
            Code::ISCSILogin,
            &format!("setting {REPLACEMENT_TIMEOUT} of {iqn}"),
            &e,
        )
    })
}

/// Unplugs: lets go of each target, logging out when no other SR uses it.
pub fn detach(ctx: &Ctx<'_>, targets: &[String], sr_uuid: &str) -> Result<(), SrError> {
    let mut failures = Vec::new();
    for iqn in targets {
        let left = srref::remove(&ctx.root, iqn, sr_uuid).map_err(|e| {
            SrError::with(Code::SMGeneral, format!("updating the users of {iqn}: {e}"))
        })?;
        if left > 0 {
            tracing::info!("{iqn} stays logged in: {left} other SR(s) use it");
            continue;
        }
        if let Err(e) = iscsiadm::logout(iqn, None) {
            failures.push(format!("logout from {iqn}: {e}"));
            // Keep the reference: the next detach tries again.
            let _ = srref::add(&ctx.root, iqn, sr_uuid);
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(SrError::with(Code::ISCSILogout, failures.join("; ")))
    }
}

/// The PBD's `iscsi_sessions`: the sessions each LUN is reached by, which is its target's.
/// XenCenter paints a LUN's row red when its path count is below this number, so the total
/// over several targets (`targetIQN=*`, a target per LUN) would paint healthy LUNs red.
/// `None` when the targets have different counts: no one number is right for every LUN.
pub fn sessions_to_publish(ctx: &Ctx<'_>, targets: &[String]) -> Option<usize> {
    let sessions = sysfs::iscsi_sessions(&ctx.root);
    let per_target: BTreeSet<usize> = targets
        .iter()
        .map(|t| sessions.iter().filter(|s| &s.target_iqn == t).count())
        .collect();
    match per_target.len() {
        0 => Some(0),
        1 => per_target.into_iter().next(),
        _ => {
            tracing::info!(
                "not publishing iscsi_sessions: the SR's {} targets have different session \
                 counts ({per_target:?})",
                targets.len()
            );
            None
        }
    }
}

/// The LUNs behind the sessions to the given targets.
pub fn luns(ctx: &Ctx<'_>, targets: &[String], filter: &[String]) -> Vec<Lun> {
    let hosts: BTreeSet<u32> = sysfs::iscsi_sessions(&ctx.root)
        .into_iter()
        .filter(|s| targets.contains(&s.target_iqn))
        .map(|s| s.host)
        .collect();
    let disks = sysfs::scsi_disks(&ctx.root)
        .into_iter()
        .filter(|d| hosts.contains(&d.hcil.host));
    luns::group(disks, &sysfs::root_disks(&ctx.root), filter)
}

/// Probe without `targetIQN`: the targets, on stderr, and fault 96.
fn missing_target(ctx: &Ctx<'_>, config: &Config, deadline: Instant) -> SrError {
    let found = match discover_all(ctx, config, deadline) {
        Ok(found) => found,
        Err(e) => return e,
    };
    if found.nodes.is_empty() && !found.failures.is_empty() {
        return discovery_error(&found.failures);
    }
    eprint!("{}", targets_xml(&found.nodes));
    SrError::with(
        Code::ConfigTargetIQNMissing,
        format!(
            "choose device-config:targetIQN among the {} target(s) the portals report (listed on stderr)",
            found
                .nodes
                .iter()
                .map(|n| n.iqn.as_str())
                .collect::<BTreeSet<_>>()
                .len()
        ),
    )
}

/// `sr_probe`: without `targetIQN` the targets (fault 96); without `SCSIid` the LUNs
/// (fault 107), found by logging in for the probe and out again; with both, the SRs of this
/// type already on the target.
pub fn probe(ctx: &Ctx<'_>, setting: Setting) -> Result<Vec<Lun>, SrError> {
    let config = Config::read(ctx)?;
    // The probe logs in under its own name, so a plugged SR on the target stays logged in.
    let probe_user = srref::call_user("probe");
    let targets = attach(ctx, &config, setting, &probe_user)?;
    let found = luns(ctx, &targets, &config.filter);
    if let Err(e) = detach(ctx, &targets, &probe_user) {
        tracing::warn!("after the probe: {e}");
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_each_keeps_the_order_and_bounds_the_workers() {
        let items: Vec<usize> = (0..50).collect();
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let results = on_each(&items, |i| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(2));
            running.fetch_sub(1, Ordering::SeqCst);
            i * 2
        });
        let results: Vec<usize> = results.into_iter().flatten().collect();
        assert_eq!(results, (0..50).map(|i| i * 2).collect::<Vec<_>>());
        assert!(most.load(Ordering::SeqCst) <= AT_ONCE);
        assert!(on_each(&[] as &[usize], |i| *i).is_empty());
    }
}
