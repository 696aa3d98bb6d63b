//! The local addresses the peer gathers ICE candidates on, unless
//! `--ice-address` names them.
//!
//! libnice skips loopback interfaces unless it is given addresses to use,
//! and then it uses only those. A WHIP server on this machine (a local
//! MediaMTX, a test peer) may offer only 127.0.0.1 or ::1 candidates, so
//! for a loopback endpoint the peer gathers on loopback: traffic to this
//! machine's own addresses goes through loopback anyway. For any other
//! endpoint libnice keeps its own choice.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

/// Returns the addresses to hand to libnice for `endpoint`, or an empty
/// list to let libnice choose, as it does for a server on another host.
pub fn for_endpoint(endpoint: &Url) -> Vec<IpAddr> {
    match endpoint.host() {
        Some(Host::Ipv6(address)) if address.is_loopback() => vec![IpAddr::V6(Ipv6Addr::LOCALHOST)],
        Some(Host::Ipv4(address)) if address.is_loopback() => vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        Some(Host::Domain(name)) if name.eq_ignore_ascii_case("localhost") => {
            vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
        }
        _ => Vec::new(),
    }
}

/// Checks that each of `addresses` belongs to this machine, by binding a
/// UDP socket to it. libnice gathers no candidate on another address, so
/// the session would fail only when ICE times out.
pub fn check_local(addresses: &[IpAddr]) -> Result<(), String> {
    for address in addresses {
        if let Err(error) = std::net::UdpSocket::bind((*address, 0)) {
            return Err(format!(
                "--ice-address {address} cannot be used: {error}; give an address of one of \
                 this machine's interfaces (see `ip address`)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn remote_endpoint_leaves_choice_to_libnice() {
        for endpoint in [
            "https://edge.example:8889/inputs/x/whip",
            "https://192.0.2.10/inputs/x/whip",
            "https://[2001:db8::1]/inputs/x/whip",
        ] {
            assert!(for_endpoint(&url(endpoint)).is_empty(), "{endpoint}");
        }
    }

    #[test]
    fn loopback_endpoint_gathers_on_loopback() {
        let cases = [
            ("http://127.0.0.1:8889/inputs/x/whip", "127.0.0.1"),
            ("http://127.0.0.2:8889/inputs/x/whip", "127.0.0.1"),
            ("http://localhost:8889/inputs/x/whip", "127.0.0.1"),
            ("http://[::1]:8889/inputs/x/whip", "::1"),
        ];
        for (endpoint, expected) in cases {
            let addresses = for_endpoint(&url(endpoint));
            assert_eq!(
                addresses,
                [expected.parse::<IpAddr>().unwrap()],
                "{endpoint}"
            );
        }
    }

    #[test]
    fn foreign_ice_address_rejected() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(check_local(&[loopback]), Ok(()));

        // TEST-NET-1 (RFC 5737) is reserved for documentation, so no
        // interface of a test machine should carry it.
        let foreign: IpAddr = "192.0.2.1".parse().unwrap();
        let error = check_local(&[loopback, foreign]).unwrap_err();
        assert!(error.contains("--ice-address 192.0.2.1"), "{error}");
        assert!(error.contains("this machine's interfaces"), "{error}");
    }
}
