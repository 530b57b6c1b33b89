//! Whether an iSCSI portal answers at all, asked before iscsiadm is: a name is resolved
//! (getaddrinfo, through std's `ToSocketAddrs`) and a TCP connect tried, for every portal
//! at once, each under [`CONNECT_TIMEOUT`] and all under the caller's deadline.
//!
//! Why: iscsiadm spends up to two minutes on a portal whose SYNs go nowhere (iscsid's
//! 15 s login timeout, 8 retries), and arrays commonly advertise portals on subnets a host
//! cannot reach. Stock sm tries a 5 s connect first (`util._testHost`) for the same reason.
//!
//! [`CONNECT_TIMEOUT`] is 4 s: Linux sends a SYN at 0 s and retransmits it at 1 s and 3 s,
//! so 4 s gives the same three SYNs stock's 5 s gives, and a second for the last answer; a
//! storage network answers a SYN in well under a millisecond. As stock does, one newline
//! is written before closing: Microsoft's iSCSI target otherwise keeps the half-open
//! connection.

use crate::host::iscsiadm::Portal;
use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long one portal has to answer a TCP connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);

/// What became of one portal.
#[derive(Debug, Clone)]
pub struct Check {
    pub portal: Portal,
    /// What the portal's name stands for (an address stands for itself); empty when the
    /// name did not resolve.
    pub addresses: Vec<SocketAddr>,
    /// The address that answered, or why none did.
    pub answered: Result<SocketAddr, String>,
}

impl Check {
    /// Whether `address` is one of this portal's.
    pub fn stands_for(&self, address: &str) -> bool {
        match address.parse::<IpAddr>() {
            Ok(ip) => self.addresses.iter().any(|a| a.ip() == ip),
            Err(_) => address == self.portal.address,
        }
    }

    /// The portal as iscsiadm should be given it: the address that answered.
    pub fn reached(&self) -> Option<Portal> {
        self.answered.as_ref().ok().map(|a| Portal {
            address: a.ip().to_string(),
            port: a.port(),
        })
    }

    /// Whether the name did not resolve (as opposed to: no answer).
    pub fn unresolved(&self) -> bool {
        self.addresses.is_empty()
    }
}

/// Resolves a portal's name; an address literal needs no lookup.
fn resolve(portal: &Portal, deadline: Instant) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = portal.address.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, portal.port)]);
    }
    // getaddrinfo has no timeout of its own: ask on a thread, stop waiting at the deadline.
    let (tx, rx) = mpsc::channel();
    let (name, port) = (portal.address.clone(), portal.port);
    thread::spawn(move || {
        let _ = tx.send(
            (name.as_str(), port)
                .to_socket_addrs()
                .map(Iterator::collect::<Vec<_>>),
        );
    });
    let wait = deadline.saturating_duration_since(Instant::now());
    match rx.recv_timeout(wait) {
        Ok(Ok(addresses)) if !addresses.is_empty() => {
            tracing::debug!("{} resolves to {addresses:?}", portal.address);
            Ok(addresses)
        }
        Ok(Ok(_)) => Err(format!("{} resolves to no address", portal.address)),
        Ok(Err(e)) => Err(format!("cannot resolve {}: {e}", portal.address)),
        Err(_) => Err(format!(
            "resolving {} did not finish in time",
            portal.address
        )),
    }
}

fn connect(
    portal: &Portal,
    addresses: &[SocketAddr],
    deadline: Instant,
) -> Result<SocketAddr, String> {
    let started = Instant::now();
    let until = deadline.min(started + CONNECT_TIMEOUT);
    let mut why = Vec::new();
    for address in addresses {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            why.push(format!("{address}: no time left"));
            break;
        }
        match TcpStream::connect_timeout(address, left) {
            Ok(mut stream) => {
                let _ = stream.write_all(b"\n");
                tracing::debug!(
                    "portal {portal}: {address} answered in {} ms",
                    started.elapsed().as_millis()
                );
                return Ok(*address);
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                why.push(format!(
                    "{address}: no answer to a TCP connect within {} ms",
                    left.as_millis()
                ));
            }
            Err(e) => why.push(format!("{address}: {e}")),
        }
    }
    Err(why.join(", "))
}

/// Resolves and tries every portal at once; the results in the order given.
pub fn check_all(portals: &[Portal], deadline: Instant) -> Vec<Check> {
    if portals.is_empty() {
        return Vec::new();
    }
    let started = Instant::now();
    let checks: Vec<Check> = thread::scope(|s| {
        let running: Vec<_> = portals
            .iter()
            .map(|portal| {
                s.spawn(move || {
                    let (addresses, answered) = match resolve(portal, deadline) {
                        Ok(addresses) => {
                            let answered = connect(portal, &addresses, deadline);
                            (addresses, answered)
                        }
                        Err(why) => (Vec::new(), Err(why)),
                    };
                    Check {
                        portal: portal.clone(),
                        addresses,
                        answered,
                    }
                })
            })
            .collect();
        running
            .into_iter()
            .zip(portals)
            .map(|(h, portal)| {
                h.join().unwrap_or_else(|_| Check {
                    portal: portal.clone(),
                    addresses: Vec::new(),
                    answered: Err("the check panicked".into()),
                })
            })
            .collect()
    });
    for check in &checks {
        if let Err(why) = &check.answered {
            tracing::warn!("portal {} is unreachable: {why}", check.portal);
        }
    }
    tracing::debug!(
        "checked {} portal(s) in {} ms",
        portals.len(),
        started.elapsed().as_millis()
    );
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn portal(address: &str, port: u16) -> Portal {
        Portal {
            address: address.into(),
            port,
        }
    }

    #[test]
    fn a_listener_answers_a_closed_port_does_not() {
        let live = TcpListener::bind("127.0.0.1:0").unwrap();
        let live_port = live.local_addr().unwrap().port();
        let closed_port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let checks = check_all(
            &[
                portal("127.0.0.1", live_port),
                portal("127.0.0.1", closed_port),
                portal("localhost", live_port),
                portal("no-such-name.invalid", 3260),
            ],
            deadline,
        );
        assert!(checks[0].answered.is_ok());
        assert!(checks[1].answered.is_err());
        assert!(!checks[1].unresolved());
        assert!(checks[2].answered.is_ok(), "{:?}", checks[2]);
        assert!(checks[2].stands_for("127.0.0.1"));
        assert_eq!(
            checks[2].reached().unwrap().to_string(),
            format!("127.0.0.1:{live_port}")
        );
        assert!(checks[3].unresolved());
        assert!(
            checks[3]
                .answered
                .as_ref()
                .unwrap_err()
                .contains("no-such-name.invalid")
        );
    }

    #[test]
    fn a_passed_deadline_checks_nothing() {
        let live = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = live.local_addr().unwrap().port();
        let checks = check_all(&[portal("127.0.0.1", port)], Instant::now());
        assert!(checks[0].answered.is_err());
    }
}
