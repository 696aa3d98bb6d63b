//! The local addresses the peer gathers ICE candidates on.
//!
//! libnice skips loopback interfaces unless it is given addresses to use,
//! and then it uses only those. A WHIP server on loopback (a MediaMTX or a
//! test peer on this machine) may offer only 127.0.0.1 or ::1 candidates,
//! which the bridge's candidates must pair with. So for a loopback endpoint
//! the peer gathers on every address of every interface that is up,
//! loopback included. For any other endpoint libnice keeps its own choice.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

/// Returns the addresses to hand to libnice for `endpoint`, or an empty
/// list to let libnice choose, as it does for a server on another host.
pub fn for_endpoint(endpoint: &Url) -> Vec<IpAddr> {
    if !is_loopback(endpoint) {
        return Vec::new();
    }
    let mut addresses = interface_addresses();
    // When getifaddrs fails, 127.0.0.1 alone still pairs with a server that
    // offers it. ::1 is not added, as a host without IPv6 cannot bind it.
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    if !addresses.contains(&loopback) {
        addresses.push(loopback);
    }
    addresses
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(address)) => address.is_loopback(),
        Some(Host::Ipv6(address)) => address.is_loopback(),
        None => false,
    }
}

/// Returns the IPv4 and IPv6 addresses of the interfaces that are up, in
/// the order `getifaddrs` lists them, or none when it fails.
fn interface_addresses() -> Vec<IpAddr> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list that freeifaddrs releases below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Vec::new();
    }
    let mut addresses = Vec::new();
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: `entry` is a node of the list getifaddrs returned, which
        // stays valid until freeifaddrs.
        let interface = unsafe { &*entry };
        let up = interface.ifa_flags & libc::IFF_UP as libc::c_uint != 0;
        // SAFETY: ifa_addr is null or points to a sockaddr of the family it
        // names, within the same list.
        let address = unsafe { socket_address(interface.ifa_addr) };
        if let Some(address) = address.filter(|_| up) {
            if !addresses.contains(&address) {
                addresses.push(address);
            }
        }
        entry = interface.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is released once.
    unsafe { libc::freeifaddrs(list) };
    addresses
}

/// Reads an IPv4 or IPv6 address from a `sockaddr`.
///
/// # Safety
/// `address` is null or points to a valid `sockaddr` of the size its
/// family implies.
unsafe fn socket_address(address: *const libc::sockaddr) -> Option<IpAddr> {
    if address.is_null() {
        return None;
    }
    match i32::from((*address).sa_family) {
        libc::AF_INET => {
            let v4 = &*(address as *const libc::sockaddr_in);
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))))
        }
        libc::AF_INET6 => {
            let v6 = &*(address as *const libc::sockaddr_in6);
            Some(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
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
    fn loopback_endpoint_adds_loopback() {
        for endpoint in [
            "http://127.0.0.1:8889/inputs/x/whip",
            "http://localhost:8889/inputs/x/whip",
            "http://[::1]:8889/inputs/x/whip",
        ] {
            let addresses = for_endpoint(&url(endpoint));
            assert!(
                addresses.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)),
                "{endpoint}: {addresses:?}"
            );
        }
    }

    #[test]
    fn interface_addresses_include_loopback() {
        let addresses = interface_addresses();
        assert!(
            addresses.iter().any(IpAddr::is_loopback),
            "getifaddrs listed no loopback address: {addresses:?}"
        );
    }
}
