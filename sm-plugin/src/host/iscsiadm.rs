//! open-iscsi's `iscsiadm`, the way stock sm drives it (`sm-facts.md` §4.8): discovery
//! (SendTargets, with CHAP through `discoverydb`), node settings, login, logout.
//!
//! Exit codes are open-iscsi's (`iscsi_err.h`); the ones we act on are named below. CHAP
//! secrets go to iscsiadm as [`Program::secret`] arguments: passed, never shown.

use crate::host::command::{CommandError, Output, Program};
use mpathutil::HostRoot;
use std::fmt;
use std::time::{Duration, Instant};

/// `ISCSI_ERR_TRANS`: could not connect.
pub const ERR_TRANS: i32 = 4;
/// `ISCSI_ERR_LOGIN`.
pub const ERR_LOGIN: i32 = 5;
/// `ISCSI_ERR_TRANS_TIMEOUT`.
pub const ERR_TRANS_TIMEOUT: i32 = 8;
/// `ISCSI_ERR_SESS_EXISTS`: already logged in.
pub const ERR_SESS_EXISTS: i32 = 15;
/// `ISCSI_ERR_FATAL_LOGIN`.
pub const ERR_FATAL_LOGIN: i32 = 19;
/// `ISCSI_ERR_NO_OBJS_FOUND`: no such session or node.
pub const ERR_NO_OBJS_FOUND: i32 = 21;
/// `ISCSI_ERR_LOGIN_AUTH_FAILED`.
pub const ERR_LOGIN_AUTH_FAILED: i32 = 24;

/// How long one iscsiadm may take at most: a login to a dead portal retries for a while.
/// Calls made for a plug or a probe get less: what is left of the caller's deadline.
const TIMEOUT: Duration = Duration::from_secs(120);

/// An iSCSI portal: address and TCP port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Portal {
    pub address: String,
    pub port: u16,
}

impl Portal {
    /// `a.b.c.d[:port]`, `[v6][:port]`, or a name; `default_port` when none is given.
    pub fn parse(text: &str, default_port: u16) -> Option<Self> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        let text = text.split(',').next().unwrap_or(text);
        if let Some(rest) = text.strip_prefix('[') {
            let (address, after) = rest.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None if after.is_empty() => default_port,
                None => return None,
            };
            return Some(Self {
                address: address.to_string(),
                port,
            });
        }
        match text.rsplit_once(':') {
            // More than one colon and no brackets: a bare IPv6 address.
            Some((address, _)) if address.contains(':') => Some(Self {
                address: text.to_string(),
                port: default_port,
            }),
            Some((address, port)) => Some(Self {
                address: address.to_string(),
                port: port.parse().ok()?,
            }),
            None => Some(Self {
                address: text.to_string(),
                port: default_port,
            }),
        }
    }
}

impl fmt::Display for Portal {
    /// As iscsiadm takes and prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.address.contains(':') {
            write!(f, "[{}]:{}", self.address, self.port)
        } else {
            write!(f, "{}:{}", self.address, self.port)
        }
    }
}

/// A node record: a target reachable through a portal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Node {
    pub portal: Portal,
    pub tpgt: String,
    pub iqn: String,
}

/// CHAP credentials.
#[derive(Clone)]
pub struct Chap {
    pub user: String,
    pub secret: String,
}

impl fmt::Debug for Chap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Chap {{ user: {:?}, secret: ****** }}", self.user)
    }
}

/// What went wrong running iscsiadm: the command (secrets masked) and what it said.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IscsiError {
    #[error(transparent)]
    NotRun(#[from] CommandError),
    #[error("`{command}` not run: stock sm's iscsiadm lock: {why}")]
    Locked { command: String, why: String },
    #[error("`{command}` failed with exit {status}: {said}")]
    Failed {
        command: String,
        status: i32,
        said: String,
    },
}

impl IscsiError {
    pub fn status(&self) -> Option<i32> {
        match self {
            Self::Failed { status, .. } => Some(*status),
            Self::NotRun(_) | Self::Locked { .. } => None,
        }
    }
}

fn iscsiadm() -> Program {
    Program::new("iscsiadm")
}

fn run(program: &Program, ok: &[i32]) -> Result<Output, IscsiError> {
    run_until(program, ok, Instant::now() + TIMEOUT)
}

/// Runs one iscsiadm, ending by `deadline` (waiting for stock's lock included).
fn run_until(program: &Program, ok: &[i32], deadline: Instant) -> Result<Output, IscsiError> {
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .min(TIMEOUT)
    };
    let timed_out = || {
        IscsiError::NotRun(CommandError::TimedOut {
            command: program.shown(),
            after: Duration::ZERO,
        })
    };
    if left().is_zero() {
        return Err(timed_out());
    }
    // As stock: no two iscsiadm runs of stock and ours at once (see `lock::stock_iscsiadm`);
    // the threads of one plug share our hold, so parallel logins stay parallel.
    let _stock = crate::host::lock::stock_iscsiadm(&HostRoot::from_env(), left()).map_err(|e| {
        IscsiError::Locked {
            command: program.shown(),
            why: e.to_string(),
        }
    })?;
    let left = left();
    if left.is_zero() {
        return Err(timed_out());
    }
    let out = program.run(left)?;
    if out.status == 0 || ok.contains(&out.status) {
        Ok(out)
    } else {
        Err(IscsiError::Failed {
            command: program.shown(),
            status: out.status,
            said: out.said(),
        })
    }
}

/// SendTargets discovery on one portal: every (portal, tpgt, target) it reports. Only
/// one-way CHAP is set for discovery sessions, as stock does: asking a target to prove
/// itself on discovery too would fail against arrays that do mutual CHAP on logins only.
pub fn discover(
    portal: &Portal,
    chap: Option<&Chap>,
    deadline: Instant,
) -> Result<Vec<Node>, IscsiError> {
    let run = |program: &Program, ok: &[i32]| run_until(program, ok, deadline);
    let base = |mode: &str| {
        iscsiadm()
            .args(["-m", mode, "-t", "st", "-p"])
            .arg(portal.to_string())
    };
    let out = match chap {
        None => run(&base("discovery"), &[])?,
        Some(chap) => {
            run(&base("discoverydb").args(["-o", "new"]), &[])?;
            run(
                &base("discoverydb")
                    .args(["-o", "update"])
                    .args(["-n", "discovery.sendtargets.auth.authmethod", "-v", "CHAP"])
                    .args(["-n", "discovery.sendtargets.auth.username", "-v"])
                    .arg(chap.user.as_str())
                    .args(["-n", "discovery.sendtargets.auth.password", "-v"])
                    .secret(&chap.secret),
                &[],
            )?;
            run(&base("discoverydb").arg("--discover"), &[])?
        }
    };
    Ok(parse_nodes(&out.stdout))
}

/// Lines `<portal>,<tpgt> <iqn>`, as discovery and `-m node` print them.
pub fn parse_nodes(text: &str) -> Vec<Node> {
    let mut nodes: Vec<Node> = text
        .lines()
        .filter_map(|line| {
            let (record, iqn) = line.trim().split_once(char::is_whitespace)?;
            let (portal, tpgt) = record.rsplit_once(',')?;
            Some(Node {
                portal: Portal::parse(portal, 3260)?,
                tpgt: tpgt.to_string(),
                iqn: iqn.trim().to_string(),
            })
        })
        .collect();
    nodes.dedup();
    nodes
}

/// `iscsiadm -m node -T <iqn> -p <portal> --op update -n <name> -v <value>`; without a
/// portal it applies to every portal of the target.
pub fn set(
    iqn: &str,
    portal: Option<&Portal>,
    name: &str,
    value: &str,
    secret: bool,
    deadline: Instant,
) -> Result<(), IscsiError> {
    let mut program = iscsiadm().args(["-m", "node", "-T", iqn]);
    if let Some(portal) = portal {
        program = program.arg("-p").arg(portal.to_string());
    }
    program = program.args(["--op", "update", "-n", name, "-v"]);
    program = if secret {
        program.secret(value)
    } else {
        program.arg(value)
    };
    run_until(&program, &[], deadline).map(drop)
}

/// A node's settings (`key = value`), as `iscsiadm -m node -T -p` shows them.
pub fn settings(
    iqn: &str,
    portal: &Portal,
    deadline: Instant,
) -> Result<Vec<(String, String)>, IscsiError> {
    let out = run_until(
        &iscsiadm()
            .args(["-m", "node", "-T", iqn, "-p"])
            .arg(portal.to_string()),
        &[],
        deadline,
    )?;
    Ok(out
        .stdout
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(" = ")?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect())
}

/// Logs in to one portal of a target; already logged in is success.
pub fn login(iqn: &str, portal: &Portal, deadline: Instant) -> Result<(), IscsiError> {
    run_until(
        &iscsiadm()
            .args(["-m", "node", "-T", iqn, "-p"])
            .arg(portal.to_string())
            .arg("-l"),
        &[ERR_SESS_EXISTS],
        deadline,
    )
    .map(drop)
}

/// Logs out of a target (every portal when `portal` is `None`); no session is success.
pub fn logout(iqn: &str, portal: Option<&Portal>) -> Result<(), IscsiError> {
    let mut program = iscsiadm().args(["-m", "node", "-T", iqn]);
    if let Some(portal) = portal {
        program = program.arg("-p").arg(portal.to_string());
    }
    run(&program.arg("-u"), &[ERR_NO_OBJS_FOUND]).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portals() {
        let p = |t| Portal::parse(t, 3260);
        assert_eq!(p("192.0.2.1").unwrap().to_string(), "192.0.2.1:3260");
        assert_eq!(p(" 192.0.2.1:3261 ").unwrap().port, 3261);
        assert_eq!(p("[fe80::1]:3262").unwrap().to_string(), "[fe80::1]:3262");
        assert_eq!(p("fe80::1").unwrap().to_string(), "[fe80::1]:3260");
        assert_eq!(p("array.example.com").unwrap().address, "array.example.com");
        assert_eq!(p("192.0.2.1:x"), None);
        assert_eq!(p(""), None);
    }

    #[test]
    fn discovery_output() {
        let nodes = parse_nodes(
            "192.0.2.1:3260,1 iqn.2026-01.com.example:array\n[fe80::1]:3260,2 iqn.2026-01.com.example:array\n\n",
        );
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].tpgt, "1");
        assert_eq!(nodes[1].portal.address, "fe80::1");
        assert_eq!(nodes[1].iqn, "iqn.2026-01.com.example:array");
    }

    #[test]
    fn chap_debug_hides_the_secret() {
        let chap = Chap {
            user: "u".into(),
            secret: "hunter22".into(),
        };
        assert!(!format!("{chap:?}").contains("hunter22"));
    }
}
