//! `lunoiscsi`: LUNs through software iSCSI (open-iscsi), the way stock BaseISCSI reaches
//! them (`sm-facts.md` §4.8).
//!
//! Plug: SendTargets discovery on every configured portal; log in to every portal of the
//! target when multipathing (or `multihomed=true`), to the configured portal alone
//! otherwise; `node.session.timeo.replacement_timeout` 15 with multipathing (fail a dead
//! path fast, multipath queues), 144 without (ride out a portal failover), each changed only
//! from the other well-known value or 120, so an administrator's own value stays; CHAP set
//! or cleared on every node. Unplug: log out when the last SR using the target lets go
//! (`/run/sr-ref/<iqn>`, shared with stock). A session is a SCSI host; the SR's LUNs are the
//! disks on the hosts of its targets' sessions.

use crate::drivers::Ctx;
use crate::drivers::luns::{self, Lun, xml_escape};
use crate::errors::{Code, SrError};
use crate::host::iscsiadm::{self, Chap, IscsiError, Node, Portal};
use crate::host::{initiator, lock, srref, sysfs, udev};
use crate::multipath::setting::Setting;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const DEFAULT_PORT: u16 = 3260;
const MPATH_REPLACEMENT_TIMEOUT: &str = "15";
const DEFAULT_REPLACEMENT_TIMEOUT: &str = "144";
const STANDARD_REPLACEMENT_TIMEOUT: &str = "120";
const REPLACEMENT_TIMEOUT: &str = "node.session.timeo.replacement_timeout";
/// How long a plug waits for xapi's set-iscsi-initiator (or another plug's logins).
const INITIATOR_WAIT: Duration = Duration::from_secs(120);

/// The device_config of an iSCSI SR.
#[derive(Debug, Clone)]
pub struct Config {
    pub portals: Vec<Portal>,
    /// `None`: not given (probe lists the targets); `Some("*")`: every target found.
    pub target_iqn: Option<String>,
    pub chap: Option<Chap>,
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
        let chap = match (
            call.config("chapuser"),
            call.config("chappassword"),
            call.config("chappassword_secret"),
        ) {
            (Some(user), Some(secret), _) => {
                crate::host::log::protect(secret);
                Some(Chap {
                    user: user.to_string(),
                    secret: secret.to_string(),
                })
            }
            (Some(user), None, Some(uuid)) => {
                let secret = ctx.xapi()?.secret_value(uuid)?;
                crate::host::log::protect(&secret);
                Some(Chap {
                    user: user.to_string(),
                    secret,
                })
            }
            _ => None,
        };
        let multihomed = call.config("multihomed").map(|v| v == "true");
        Ok(Self {
            portals,
            target_iqn: call.config("targetIQN").map(str::to_string),
            chap,
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

fn iscsi_error(code: Code, what: &str, e: &IscsiError) -> SrError {
    SrError::with(code, format!("{what}: {e}"))
}

/// Discovery on every portal; the nodes found, and what failed where.
fn discover_all(config: &Config) -> (Vec<Node>, Vec<(Portal, IscsiError)>) {
    let mut nodes = Vec::new();
    let mut failures = Vec::new();
    for portal in &config.portals {
        match iscsiadm::discover(portal, config.chap.as_ref()) {
            Ok(found) => {
                for node in found {
                    if !nodes.contains(&node) {
                        nodes.push(node);
                    }
                }
            }
            Err(e) => {
                tracing::warn!("discovery on {portal} failed: {e}");
                failures.push((portal.clone(), e));
            }
        }
    }
    (nodes, failures)
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

/// Plugs the SR: logs in as the setting says; returns the target IQNs logged in to.
pub fn attach(
    ctx: &Ctx<'_>,
    config: &Config,
    setting: Setting,
    sr_uuid: &str,
) -> Result<Vec<String>, SrError> {
    if config.target_iqn.is_none() {
        return Err(missing_target(config));
    }
    // xapi's set-iscsi-initiator must not change the name between our check and our logins.
    let initiator_lock = lock::initiator(&ctx.root, INITIATOR_WAIT).map_err(|e| {
        SrError::with(
            Code::ISCSILogin,
            format!("taking the initiator name lock of set-iscsi-initiator: {e}"),
        )
    })?;
    ensure_initiator(ctx)?;
    let (nodes, failures) = discover_all(config);
    let nodes: Vec<Node> = nodes.into_iter().filter(|n| config.wants(&n.iqn)).collect();
    if nodes.is_empty() {
        if failures.is_empty() {
            return Err(SrError::with(
                Code::ISCSIDiscovery,
                format!(
                    "the portals {} report no target {} (probe without targetIQN to list them)",
                    portal_list(&config.portals),
                    config.target_iqn.as_deref().unwrap_or("*")
                ),
            ));
        }
        return Err(discovery_error(&failures));
    }
    let all_portals = config.multihomed.unwrap_or(setting.multipath());
    let first = &config.portals[0];
    let chosen: Vec<&Node> = nodes
        .iter()
        .filter(|n| all_portals || n.portal.address == first.address)
        .collect();
    if chosen.is_empty() {
        return Err(SrError::with(
            Code::ISCSIDiscovery,
            format!(
                "portal {first} does not report itself for the target; set multihomed=true or name another portal"
            ),
        ));
    }
    let targets: BTreeSet<String> = chosen.iter().map(|n| n.iqn.clone()).collect();
    // Counted as a user before the login, not after as stock does: a stock detach between a
    // login and the count would see no user and log out the session we are about to use.
    for iqn in &targets {
        srref::add(&ctx.root, iqn, sr_uuid).map_err(|e| {
            SrError::with(
                Code::SMGeneral,
                format!("recording {} as a user of {iqn}: {e}", user_name(sr_uuid)),
            )
        })?;
    }
    let logged_in = match log_in(config, setting, &targets, &chosen) {
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
    Ok(logged_in.into_iter().collect())
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

/// Sets the timeouts and CHAP of the chosen nodes and logs in to them; the targets logged in
/// to (at least one).
fn log_in(
    config: &Config,
    setting: Setting,
    targets: &BTreeSet<String>,
    chosen: &[&Node],
) -> Result<BTreeSet<String>, SrError> {
    for iqn in targets {
        set_replacement_timeout(iqn, chosen, setting.multipath())?;
    }
    let mut logged_in = BTreeSet::new();
    let mut login_failures = Vec::new();
    for node in chosen {
        let result = set_chap(node, config.chap.as_ref())
            .and_then(|()| iscsiadm::login(&node.iqn, &node.portal));
        match result {
            Ok(()) => {
                logged_in.insert(node.iqn.clone());
            }
            Err(e) => {
                tracing::warn!("login to {} on {} failed: {e}", node.iqn, node.portal);
                login_failures.push((node, e));
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
        let detail: Vec<String> = login_failures
            .iter()
            .map(|(n, e)| format!("login to {} on portal {}: {e}", n.iqn, n.portal))
            .collect();
        return Err(SrError::with(code, detail.join("; ")));
    }
    Ok(logged_in)
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
        std::thread::sleep(Duration::from_millis(50));
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

fn set_chap(node: &Node, chap: Option<&Chap>) -> Result<(), IscsiError> {
    let p = Some(&node.portal);
    match chap {
        Some(chap) => {
            iscsiadm::set(&node.iqn, p, "node.session.auth.authmethod", "CHAP", false)?;
            iscsiadm::set(
                &node.iqn,
                p,
                "node.session.auth.username",
                &chap.user,
                false,
            )?;
            iscsiadm::set(
                &node.iqn,
                p,
                "node.session.auth.password",
                &chap.secret,
                true,
            )
        }
        None => iscsiadm::set(&node.iqn, p, "node.session.auth.authmethod", "None", false),
    }
}

/// 15 s with multipathing, 144 s without; an administrator's own value is kept.
fn set_replacement_timeout(iqn: &str, nodes: &[&Node], multipath: bool) -> Result<(), SrError> {
    let Some(node) = nodes.iter().find(|n| n.iqn == iqn) else {
        return Ok(());
    };
    let current = iscsiadm::settings(iqn, &node.portal)
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
    iscsiadm::set(iqn, None, REPLACEMENT_TIMEOUT, wanted, false).map_err(|e| {
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
fn missing_target(config: &Config) -> SrError {
    let (nodes, failures) = discover_all(config);
    if nodes.is_empty() && !failures.is_empty() {
        return discovery_error(&failures);
    }
    eprint!("{}", targets_xml(&nodes));
    SrError::with(
        Code::ConfigTargetIQNMissing,
        format!(
            "choose device-config:targetIQN among the {} target(s) the portals report (listed on stderr)",
            nodes
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
    if config.target_iqn.is_none() {
        return Err(missing_target(&config));
    }
    // The probe logs in under its own name, so a plugged SR on the target stays logged in.
    let probe_user = srref::call_user("probe");
    let targets = attach(ctx, &config, setting, &probe_user)?;
    let found = luns(ctx, &targets, &config.filter);
    if let Err(e) = detach(ctx, &targets, &probe_user) {
        tracing::warn!("after the probe: {e}");
    }
    Ok(found)
}
