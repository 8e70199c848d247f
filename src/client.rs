//! Who sent a request: its address (for the device list and throttling) and
//! scheme (for the CSRF origin check).
//!
//! By default the client is the socket's peer and every forwarding header is
//! ignored: anyone can write `X-Real-IP`. Only when the peer is one of the
//! configured `trusted_proxies` are `Forwarded` (RFC 7239), `X-Forwarded-For`
//! and `X-Real-IP` read (the first of them present), walking the hops from the
//! right: each trusted proxy vouches for the hop before it, so the client is
//! the right-most address that is not a trusted proxy. A client can put what it
//! likes at the left of the list; it cannot get past a proxy that appends the
//! real peer. A hop that is not an address ends the walk at the last trusted
//! one. Rocket's own `ip_header` setting is not used.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use rocket::request::{FromRequest, Outcome, Request};

use crate::manager::Sessions;

/// User agents longer than this are cut before they are stored.
const MAX_USER_AGENT_LEN: usize = 256;

/// Where a request came from: recorded on the session at login and refresh,
/// shown in the user's list of devices, counted by throttling. A request guard
/// that never fails.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The client's IP address: the socket's peer, or, behind a configured
    /// trusted proxy, the address it forwarded (see `trusted_proxies`).
    /// IPv4-mapped IPv6 addresses are given as IPv4.
    pub ip: Option<IpAddr>,
    /// The `User-Agent` header, cut to 256 bytes.
    pub user_agent: Option<String>,
}

impl ClientInfo {
    /// The client of `request`, with the trusted proxies of the managed
    /// [`Sessions`] (none when the fairing is not attached).
    pub fn of(request: &Request<'_>) -> Self {
        let user_agent = request.headers().get_one("User-Agent").map(|agent| {
            let mut end = agent.len().min(MAX_USER_AGENT_LEN);
            while !agent.is_char_boundary(end) {
                end -= 1;
            }
            agent[..end].to_string()
        });
        ClientInfo {
            ip: client_ip(request, trusted_proxies(request)),
            user_agent,
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ClientInfo {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(ClientInfo::of(request))
    }
}

fn trusted_proxies<'r>(request: &'r Request<'_>) -> &'r [IpNet] {
    request
        .rocket()
        .state::<Sessions>()
        .map_or(&[], |sessions| &sessions.inner.settings.trusted_proxies)
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// The peer, when it is one of the trusted proxies.
fn trusted_peer(request: &Request<'_>, trusted: &[IpNet]) -> Option<IpAddr> {
    request
        .remote()
        .map(|peer| canonical(peer.ip()))
        .filter(|peer| is_trusted(*peer, trusted))
}

/// The client's address: see the module docs.
fn client_ip(request: &Request<'_>, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = canonical(request.remote()?.ip());
    if !is_trusted(peer, trusted) {
        return Some(peer);
    }
    let mut client = peer;
    for hop in forwarded_hops(request).iter().rev() {
        match hop {
            Some(ip) => {
                client = canonical(*ip);
                if !is_trusted(client, trusted) {
                    break;
                }
            }
            None => break,
        }
    }
    Some(client)
}

/// The forwarded hops, left (client) to right (nearest proxy), of the first
/// forwarding header present; `None` for a hop that is not an address.
fn forwarded_hops(request: &Request<'_>) -> Vec<Option<IpAddr>> {
    let headers = request.headers();
    let values = |name: &str| headers.get(name).flat_map(|value| value.split(',')).map(str::trim);
    if headers.contains("Forwarded") {
        values("Forwarded")
            .map(|element| forwarded_pair(element, "for").and_then(address))
            .collect()
    } else if headers.contains("X-Forwarded-For") {
        values("X-Forwarded-For").map(address).collect()
    } else {
        headers
            .get_one("X-Real-IP")
            .map(|value| address(value.trim()))
            .into_iter()
            .collect()
    }
}

/// The value of `key` in one `Forwarded` element (`for=…;proto=…`), unquoted.
fn forwarded_pair<'a>(element: &'a str, key: &str) -> Option<&'a str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case(key)
            .then(|| value.trim().trim_matches('"'))
    })
}

/// An address as forwarding headers write it: `192.0.2.1`, `192.0.2.1:4711`,
/// `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn address(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
        .or_else(|| text.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

/// The scheme the client used, when it is known: `https` when Rocket itself
/// serves TLS, else what a trusted proxy says (`Forwarded: proto=`, or
/// `X-Forwarded-Proto`); `None` when nothing says.
pub(crate) fn request_scheme(request: &Request<'_>) -> Option<String> {
    if request.rocket().config().tls_enabled() {
        return Some("https".into());
    }
    trusted_peer(request, trusted_proxies(request))?;
    let headers = request.headers();
    // The nearest proxy's word: the last element of the last header line.
    let last = |name: &str| {
        headers
            .get(name)
            .last()
            .and_then(|value| value.rsplit(',').next())
            .map(str::trim)
    };
    let proto = if headers.contains("Forwarded") {
        last("Forwarded").and_then(|element| forwarded_pair(element, "proto"))
    } else {
        last("X-Forwarded-Proto")
    };
    proto
        .map(|proto| proto.to_ascii_lowercase())
        .filter(|proto| proto == "http" || proto == "https")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_as_forwarding_headers_write_them() {
        for (text, expected) in [
            ("192.0.2.1", Some("192.0.2.1")),
            ("192.0.2.1:4711", Some("192.0.2.1")),
            ("2001:db8::1", Some("2001:db8::1")),
            ("[2001:db8::1]", Some("2001:db8::1")),
            ("[2001:db8::1]:4711", Some("2001:db8::1")),
            ("unknown", None),
            ("_hidden", None),
            ("", None),
        ] {
            assert_eq!(address(text), expected.map(|ip| ip.parse().unwrap()), "{text}");
        }
    }

    #[test]
    fn forwarded_pairs_are_found_whatever_their_case_and_quotes() {
        assert_eq!(
            forwarded_pair(r#"For="[2001:db8::7]:4711";proto=https"#, "for"),
            Some("[2001:db8::7]:4711")
        );
        assert_eq!(forwarded_pair("by=10.0.0.1;proto=HTTPS", "proto"), Some("HTTPS"));
        assert_eq!(forwarded_pair("by=10.0.0.1", "for"), None);
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        assert_eq!(
            canonical("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }
}
