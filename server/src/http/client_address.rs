//! The client's network address, as AuditEvents record it
//! (`agent.network.address` of the client agent).
//!
//! Behind a load balancer every connection comes from the balancer, so its
//! address would be recorded for every request. A balancer names the
//! client in `X-Forwarded-For`; but any client can send that header, so it
//! is believed only from the proxies the deployment names in
//! `FHIRLEDGER_TRUSTED_PROXIES`, and only as far as the chain of trusted
//! proxies goes: the address recorded is the right-most one in the chain
//! that is not a trusted proxy (each proxy appends the address it saw).
//! With no trusted proxies (the default) the header is ignored.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// A malformed `FHIRLEDGER_TRUSTED_PROXIES` entry.
#[derive(Debug, thiserror::Error)]
#[error("'{0}' is neither an IP address nor a CIDR range (like 10.0.0.0/8)")]
pub struct BadProxy(String);

impl FromStr for TrustedProxies {
    type Err = BadProxy;

    /// Comma-separated IP addresses and CIDR ranges; empty for none.
    fn from_str(list: &str) -> Result<Self, BadProxy> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                IpNet::from_str(entry)
                    .or_else(|_| IpAddr::from_str(entry).map(IpNet::from))
                    .map_err(|_| BadProxy(entry.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }
}

impl TrustedProxies {
    fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client's address: the connection's peer, unless the peer is a
    /// trusted proxy; then, walking `X-Forwarded-For` (every such header,
    /// in order) from the right, the first address that is not a trusted
    /// proxy. An entry that is not an address ends the walk at the last
    /// trusted hop: what lies left of it was not written by a proxy we trust.
    pub fn client_address<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl Iterator<Item = &'a str>,
    ) -> IpAddr {
        let peer = canonical(peer);
        if self.0.is_empty() || !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for
            .flat_map(|header| header.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match parse_hop(hop) {
                Some(address) => {
                    client = address;
                    if !self.trusts(address) {
                        break;
                    }
                }
                None => break,
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, possibly with a port
/// (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(address) = IpAddr::from_str(hop) {
        return Some(canonical(address));
    }
    if let Ok(socket) = std::net::SocketAddr::from_str(hop) {
        return Some(canonical(socket.ip()));
    }
    None
}

/// IPv4 clients of a dual-stack listener arrive as `::ffff:a.b.c.d`:
/// recorded and matched as the IPv4 address they are.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    fn proxies(s: &str) -> TrustedProxies {
        s.parse().expect("a proxy list")
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_address(ip("10.0.0.5"), ["203.0.113.9"].into_iter()),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn a_client_that_is_not_a_trusted_proxy_cannot_name_another_address() {
        let lb = proxies("10.0.0.0/8");
        assert_eq!(
            lb.client_address(ip("198.51.100.7"), ["203.0.113.9"].into_iter()),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn behind_a_trusted_balancer_the_client_it_saw_is_recorded() {
        let lb = proxies("10.0.0.2, 127.0.0.1");
        assert_eq!(
            lb.client_address(ip("10.0.0.2"), ["203.0.113.9"].into_iter()),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn an_address_forged_by_the_client_left_of_the_proxies_is_not_believed() {
        // The client sent "X-Forwarded-For: 192.0.2.66"; the balancer
        // appended the address it saw.
        let lb = proxies("10.0.0.0/8");
        assert_eq!(
            lb.client_address(ip("10.0.0.2"), ["192.0.2.66, 203.0.113.9"].into_iter()),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn a_chain_of_trusted_proxies_is_walked_across_several_headers() {
        let chain = proxies("10.0.0.0/8,172.16.0.0/12");
        assert_eq!(
            chain.client_address(
                ip("10.0.0.2"),
                ["203.0.113.9", "172.16.4.4:5555"].into_iter()
            ),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn garbage_in_the_chain_stops_at_the_last_trusted_hop() {
        let lb = proxies("10.0.0.0/8");
        assert_eq!(
            lb.client_address(ip("10.0.0.2"), ["unknown, 10.1.1.1"].into_iter()),
            ip("10.1.1.1")
        );
        assert_eq!(
            lb.client_address(ip("10.0.0.2"), std::iter::empty()),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn ipv4_mapped_and_bracketed_ipv6_addresses_are_understood() {
        let lb = proxies("127.0.0.1");
        assert_eq!(
            lb.client_address(ip("::ffff:127.0.0.1"), ["[2001:db8::1]:443"].into_iter()),
            ip("2001:db8::1")
        );
        assert_eq!(
            lb.client_address(ip("::ffff:127.0.0.1"), ["::ffff:192.0.2.1"].into_iter()),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn a_malformed_list_is_refused_with_the_entry() {
        let e = "10.0.0.0/8, lb.internal"
            .parse::<TrustedProxies>()
            .expect_err("a host name is not an address");
        assert!(e.to_string().contains("lb.internal"));
        assert_eq!(proxies(" "), TrustedProxies::default());
    }
}
