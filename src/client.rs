//! Who sent a request, as the crate records it: the client's address and
//! user agent ([`ClientInfo`]), and the forms forwarding headers write
//! addresses in. Reading them from a request, through the trusted proxies, is
//! the web layer's job.

use std::net::{IpAddr, SocketAddr};

/// User agents longer than this are cut before they are stored.
const MAX_USER_AGENT_LEN: usize = 256;

/// Where a request came from: recorded on the session at login and refresh,
/// shown in the user's list of devices, counted by throttling. A request guard
/// that never fails.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ClientInfo {
    /// The client's IP address: the socket's peer, or, behind a configured
    /// trusted proxy, the address it forwarded (see `trusted_proxies`).
    /// IPv4-mapped IPv6 addresses are given as IPv4.
    pub ip: Option<IpAddr>,
    /// The `User-Agent` header, cut to 256 bytes.
    pub user_agent: Option<String>,
    /// What the request's DPoP proof showed (RFC 9449): a login or refresh
    /// with a valid one binds, or must match, the session's key.
    pub(crate) proof: ProofOutcome,
}

/// A request's DPoP proof, as the web layer checked it (once per request).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum ProofOutcome {
    /// No `DPoP` header (or DPoP is off).
    #[default]
    Absent,
    /// A valid proof by the key with this RFC 7638 thumbprint.
    Key(String),
    /// A proof that failed a check: the request is refused (400
    /// `invalid_dpop_proof`, or `use_dpop_nonce` when `nonce` says the
    /// client should retry with the server's nonce). `reason` is for a debug
    /// log line.
    Refused { nonce: bool, reason: &'static str },
}

impl ClientInfo {
    /// A client at `ip` with `user_agent` (cut to 256 bytes), for a login
    /// made outside a request (a test, a job). Fields may be added in a minor
    /// version: build it with this.
    pub fn new(ip: Option<IpAddr>, user_agent: Option<&str>) -> ClientInfo {
        ClientInfo {
            ip: ip.map(crate::client::canonical),
            user_agent: user_agent.map(ClientInfo::cut_user_agent),
            proof: ProofOutcome::Absent,
        }
    }

    /// A user agent as the crate keeps it: cut to 256 bytes, on a character
    /// boundary.
    pub(crate) fn cut_user_agent(agent: &str) -> String {
        let mut end = agent.len().min(MAX_USER_AGENT_LEN);
        while !agent.is_char_boundary(end) {
            end -= 1;
        }
        agent[..end].to_string()
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The value of `key` in one `Forwarded` element (`for=…;proto=…`), unquoted.
pub(crate) fn forwarded_pair<'a>(element: &'a str, key: &str) -> Option<&'a str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case(key)
            .then(|| value.trim().trim_matches('"'))
    })
}

/// An address as forwarding headers write it: `192.0.2.1`, `192.0.2.1:4711`,
/// `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:4711`.
pub(crate) fn address(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
        .or_else(|| text.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

/// `ip` as `to_string` writes it; an IPv4 address's four numbers written
/// here, without the formatting machinery (`Display` took ~1,300
/// instructions of each refresh, `scripts/instructions.sh`).
pub(crate) fn ip_text(ip: std::net::IpAddr) -> String {
    let std::net::IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

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

    #[test]
    fn addresses_are_written_as_to_string_writes_them() {
        for octet in 0..=255u8 {
            for ip in [
                [octet, 0, 9, 255],
                [10, octet, 100, 1],
                [1, 99, octet, 0],
                [255, 255, 10, octet],
            ] {
                let ip = IpAddr::V4(Ipv4Addr::from(ip));
                assert_eq!(super::ip_text(ip), ip.to_string());
            }
        }
        for ip in [
            Ipv6Addr::LOCALHOST,
            "2001:db8::8:800:200c:417a".parse().unwrap(),
            "::ffff:1.2.3.4".parse().unwrap(),
        ] {
            assert_eq!(super::ip_text(IpAddr::V6(ip)), ip.to_string());
        }
    }
}
